"""docker-compose.yml, loaded by compose-go (Docker Compose's own loader) since no Docker engine
runs here; every PERPLEDGER_* variable of the project's services is a name the code reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.deploy.conftest import MONITORING, ROOT, run
from tests.deploy.names import SINK_REQUIRED, WORKER_REQUIRED, sink_settings, worker_settings

SECRETS = {"PERPLEDGER_INTERNAL_KEY": "i" * 32, "PERPLEDGER_JWT_SECRET": "j" * 32, "CLICKHOUSE_PASSWORD": "p"}


@pytest.fixture(scope="module")
def project(tools: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("PERPLEDGER_")}
    return json.loads(run(tools / "compose-config", "docker-compose.yml", env={**env, **SECRETS}))


def _ours(project: dict, command: str) -> dict[str, dict]:
    """Services built from the project's Dockerfile that run `perpledger <command>`."""
    return {name: service for name, service in project["services"].items()
            if service.get("build", {}).get("context") == str(ROOT) and service.get("command") == [command]}


def test_the_stack_has_every_part(project: dict) -> None:
    assert {"kafka", "clickhouse", "prometheus", "grafana", "sink"} <= set(project["services"])
    assert len(_ours(project, "worker")) >= 2
    assert set(_ours(project, "sink")) == {"sink"}
    for name, service in project["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert project["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_worker_environment_uses_only_the_workers_settings(project: dict) -> None:
    known = worker_settings()
    for name, service in _ours(project, "worker").items():
        env = set(service["environment"])
        assert env <= known, (name, env - known)
        assert env >= WORKER_REQUIRED, name
        assert service["environment"]["PERPLEDGER_INTERNAL_KEY"] == SECRETS["PERPLEDGER_INTERNAL_KEY"]
        # each worker is reached by the others at its own canonical URL
        assert service["environment"]["PERPLEDGER_CANONICAL_URL"] == f"http://{name}:6066"


def test_sink_environment_uses_only_the_sinks_settings(project: dict) -> None:
    known = sink_settings()
    for name, service in _ours(project, "sink").items():
        env = set(service["environment"])
        assert env <= known, (name, env - known)
        assert env >= SINK_REQUIRED, name
        assert service["environment"]["PERPLEDGER_CLICKHOUSE_URL"].startswith("http://perpledger:p@clickhouse:8123/")


def test_workers_and_sink_listen_where_prometheus_and_health_checks_reach_them(project: dict) -> None:
    """Their web servers bind 127.0.0.1 unless told otherwise; Prometheus scrapes them from its own container."""
    for name, service in {**_ours(project, "worker"), **_ours(project, "sink")}.items():
        assert service["environment"].get("PERPLEDGER_WEB_HOST") == "0.0.0.0", name


def test_each_sink_is_a_static_group_member_of_its_own(project: dict) -> None:
    ids = [service["environment"].get("PERPLEDGER_SINK_INSTANCE_ID") for service in _ours(project, "sink").values()]
    assert all(ids) and len(set(ids)) == len(ids), ids


def test_monitoring_files_are_the_charts(project: dict) -> None:
    """Prometheus and Grafana mount the Helm chart's files: one copy for both."""
    mounts = {volume["source"]: volume["target"] for service in ("prometheus", "grafana")
              for volume in project["services"][service]["volumes"] if volume["type"] == "bind"}
    assert mounts == {
        str(MONITORING / "prometheus/prometheus.yml"): "/etc/prometheus/prometheus.yml",
        str(MONITORING / "prometheus/alerts.yml"): "/etc/prometheus/alerts.yml",
        str(MONITORING / "grafana/provisioning"): "/etc/grafana/provisioning",
        str(MONITORING / "grafana/dashboards"): "/var/lib/grafana/dashboards",
    }
    for source in mounts:
        assert Path(source).exists() and not Path(source).is_symlink(), source


def test_a_missing_secret_is_refused(tools: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    with pytest.raises(AssertionError, match="PERPLEDGER_INTERNAL_KEY"):
        run(tools / "compose-config", "docker-compose.yml", env=env)
