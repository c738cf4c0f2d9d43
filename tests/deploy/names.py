"""The configuration and metric names the project's code defines, for the deployment checks."""

from __future__ import annotations

import os
import re
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]

# The ClickHouse sink's settings and metrics (`perpledger sink`, built on its own branch). Until its
# code is here, its names are listed by hand; once it is, derive them from its settings and
# registry as for the workers below.
SINK_SETTINGS = frozenset({
    "PERPLEDGER_KAFKA_BOOTSTRAP", "PERPLEDGER_CLICKHOUSE_URL", "PERPLEDGER_SINK_GROUP", "PERPLEDGER_SINK_BATCH_ROWS",
    "PERPLEDGER_SINK_BATCH_MS", "PERPLEDGER_SINK_WEB_PORT", "PERPLEDGER_LOG_LEVEL", "PERPLEDGER_LOG_FORMAT",
})
SINK_REQUIRED = frozenset({"PERPLEDGER_KAFKA_BOOTSTRAP", "PERPLEDGER_CLICKHOUSE_URL"})
SINK_METRICS = frozenset({
    "perpledger_sink_rows_inserted_total", "perpledger_sink_batches_inserted_total",
    "perpledger_sink_insert_seconds_bucket", "perpledger_sink_insert_seconds_sum",
    "perpledger_sink_insert_seconds_count", "perpledger_sink_insert_errors_total",
    "perpledger_sink_duplicates_dropped_total", "perpledger_sink_dead_letters_total", "perpledger_sink_lag_records",
    "perpledger_sink_last_insert_timestamp_seconds", "perpledger_sink_chain_breaks_total",
})
WORKER_REQUIRED = frozenset({"PERPLEDGER_KAFKA_BOOTSTRAP", "PERPLEDGER_INTERNAL_KEY"})
# Names of the local broker and test scripts: not the application's settings.
_DEV_ONLY = frozenset({"PERPLEDGER_KAFKA_PORT", "PERPLEDGER_KAFKA_CONTROLLER_PORT", "PERPLEDGER_KAFKA_KEEP"})


def worker_settings() -> frozenset[str]:
    """Every PERPLEDGER_* name the application code reads (a string literal in streams/)."""
    names = set()
    for path in (ROOT / "streams").rglob("*.py"):
        names.update(re.findall(r"""["'](PERPLEDGER_[A-Z0-9_]+)["']""", path.read_text()))
    return frozenset(names - _DEV_ONLY)


def worker_metrics() -> frozenset[str]:
    """The sample names a worker exposes on /metrics, from its own registry (nothing is started)."""
    from streams.app.config import Settings
    from streams.app.worker import Ledger

    with mock.patch.dict(os.environ, {"PERPLEDGER_INTERNAL_KEY": "k" * 32}):
        ledger = Ledger(Settings.from_env())
    samples = set()
    for family in ledger.metrics.registry.collect():
        if family.type == "counter":
            samples.add(f"{family.name}_total")
        elif family.type == "histogram":
            samples.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
        else:
            samples.add(family.name)
    return frozenset(samples)


def metric_names_in(expr: str) -> set[str]:
    """The perpledger_* metric names a PromQL expression reads."""
    return set(re.findall(r"\b(perpledger_[a-z0-9_]+)", expr))
