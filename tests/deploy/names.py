"""The configuration and metric names the project's code defines, for the deployment checks.

Nothing here is listed by hand but what a deployment must set although the code has a default."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]

WORKER_REQUIRED = frozenset({"PERPLEDGER_KAFKA_BOOTSTRAP", "PERPLEDGER_INTERNAL_KEY"})
# The sink's defaults are a broker on 127.0.0.1 and an embedded ClickHouse: not for a deployment.
SINK_REQUIRED = frozenset({"PERPLEDGER_KAFKA_BOOTSTRAP", "PERPLEDGER_CLICKHOUSE_URL"})
# Names of the local broker and test scripts: not the application's settings.
_DEV_ONLY = frozenset({"PERPLEDGER_KAFKA_PORT", "PERPLEDGER_KAFKA_CONTROLLER_PORT", "PERPLEDGER_KAFKA_KEEP"})


@functools.cache
def worker_settings() -> frozenset[str]:
    """Every PERPLEDGER_* name the application code reads (a string literal in streams/)."""
    names = set()
    for path in (ROOT / "streams").rglob("*.py"):
        names.update(re.findall(r"""["'](PERPLEDGER_[A-Z0-9_]+)["']""", path.read_text()))
    return frozenset(names - _DEV_ONLY)


class _NotingEnviron(dict):
    """An empty environment that notes every name looked up in it (every default is taken)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:
        self.names.add(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.names.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        self.names.add(str(key))
        return False


@functools.cache
def sink_settings() -> frozenset[str]:
    """Every PERPLEDGER_* name `perpledger sink` reads: those its settings read from the environment
    (connectors/clickhouse/settings.py, run with nothing set, so every fallback is read too) and
    the codec's schema folder."""
    from connectors.clickhouse.settings import SinkSettings
    from streams.codec import Codec

    environ = _NotingEnviron()
    with mock.patch.object(os, "environ", environ):
        SinkSettings.from_env()
        Codec()
    return frozenset(name for name in environ.names if name.startswith("PERPLEDGER_"))


def _sample_names(registry) -> frozenset[str]:  # a prometheus_client CollectorRegistry
    """The sample names a registry exposes on /metrics, labelled or not (from its families)."""
    samples = set()
    for family in registry.collect():
        if family.type == "counter":
            samples.add(f"{family.name}_total")
        elif family.type == "histogram":
            samples.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            samples.add(family.name)
    return frozenset(samples)


@functools.cache
def worker_metrics() -> frozenset[str]:
    """The sample names a worker exposes on /metrics, from its own registry (nothing is started)."""
    from streams.app.config import Settings
    from streams.app.worker import Ledger

    with mock.patch.dict(os.environ, {"PERPLEDGER_INTERNAL_KEY": "k" * 32}):
        ledger = Ledger(Settings.from_env())
    return _sample_names(ledger.metrics.registry)


@functools.cache
def sink_metrics() -> frozenset[str]:
    """The sample names the sink exposes on /metrics, from its own registry
    (connectors/clickhouse/metrics.py; nothing is started)."""
    from connectors.clickhouse.metrics import SinkMetrics

    return _sample_names(SinkMetrics().registry)


def metric_names_in(expr: str) -> set[str]:
    """The perpledger_* metric names a PromQL expression reads."""
    return set(re.findall(r"\b(perpledger_[a-z0-9_]+)", expr))
