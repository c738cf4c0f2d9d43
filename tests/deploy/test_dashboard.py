"""The Grafana dashboard (helm/perpledger/files/grafana): valid JSON, every query parses, every metric exists."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.deploy.conftest import MONITORING, run
from tests.deploy.names import metric_names_in, sink_metrics, worker_metrics

DASHBOARD = MONITORING / "grafana/dashboards/perpledger.json"


def _queries() -> list[tuple[str, str]]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(panel["title"], target["expr"]) for panel in panels for target in panel.get("targets", [])]


def test_panels_cover_the_issue() -> None:
    titles = " | ".join(panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for topic in ("throughput by event type", "rejections by reason", "latency", "consumer lag", "duplicates",
                  "signals", "rows inserted", "sink lag"):
        assert topic in titles, topic


def test_every_query_reads_a_metric_that_exists() -> None:
    known = worker_metrics() | sink_metrics()
    for title, expr in _queries():
        names = metric_names_in(expr)
        assert names <= known, (title, names - known)
        assert names or "up{job=" in expr, title  # else only Prometheus' own `up`


def test_every_query_is_valid_promql(tools: Path, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana's $__rate_interval set to 1m)."""
    rules = [{"record": f"dashboard:query_{n}", "expr": expr.replace("$__rate_interval", "1m")}
             for n, (_, expr) in enumerate(_queries())]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run(tools / "promtool", "check", "rules", "queries.yml", cwd=tmp_path)


def test_panel_ids_are_unique_and_the_datasource_is_a_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["templating"]["list"][0]["name"] == "datasource"
    provisioning = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/perpledger.yml").read_text())
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
