"""Prometheus alert rules and scrape config (helm/perpledger/files/prometheus), checked by promtool."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.conftest import MONITORING, run
from tests.deploy.names import metric_names_in, sink_metrics, worker_metrics

PROMETHEUS = MONITORING / "prometheus"


def test_rules_are_valid(tools: Path) -> None:
    assert "SUCCESS: 10 rules found" in run(tools / "promtool", "check", "rules", "alerts.yml", cwd=PROMETHEUS)


def test_rules_fire_as_their_unit_tests_say(tools: Path) -> None:
    run(tools / "promtool", "test", "rules", "alerts_test.yml", cwd=PROMETHEUS)


def test_scrape_config_is_valid(tools: Path) -> None:
    run(tools / "promtool", "check", "config", "prometheus.yml", cwd=PROMETHEUS)


def test_rules_cover_the_issue_and_read_only_metrics_that_exist() -> None:
    rules = [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    names = {rule["alert"] for rule in rules}
    assert {"PerpLedgerConsumerLagGrowing", "PerpLedgerRejectionSpike", "PerpLedgerWorkerDown",
            "PerpLedgerSinkStalled", "PerpLedgerHashChainBroken"} <= names
    known = worker_metrics() | sink_metrics()
    for rule in rules:
        assert metric_names_in(rule["expr"]) <= known, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
