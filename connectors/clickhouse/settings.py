"""The sink's settings, from the environment (README, "ClickHouse")."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


def default_url() -> str:
    """Embedded ClickHouse under the data dir, as an absolute path (chDB needs one)."""
    data_dir = Path(os.environ.get("PERPLEDGER_DATA_DIR", ".run/worker")).resolve()
    return f"chdb://{data_dir / 'clickhouse'}"


@dataclass(frozen=True)
class SinkSettings:
    bootstrap: str
    clickhouse_url: str
    group: str  # consumer group of the sinks
    batch_rows: int  # an insert is made once this many rows are buffered ...
    batch_ms: int  # ... or this long after the first buffered record, whichever comes first
    web_host: str
    web_port: int  # /healthz, /readyz, /metrics; 0 = none
    log_level: str
    log_format: str  # json | text
    # Static group membership (e.g. the pod's name): a restarted sink takes its partitions back at
    # once instead of waiting for the dead member's session to time out. "" = dynamic membership.
    instance_id: str = ""
    topic_suffix: str = ""  # appended to every topic name (tests; several ledgers on one cluster)
    # Child processes that decode records and build their rows while the loop consumes (0: the loop
    # does it; for a single core). See connectors/clickhouse/building.py.
    build_processes: int = 2

    @classmethod
    def from_env(cls, **overrides: object) -> SinkSettings:
        env = os.environ.get
        settings = cls(
            bootstrap=env("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            clickhouse_url=env("PERPLEDGER_CLICKHOUSE_URL") or default_url(),
            group=env("PERPLEDGER_SINK_GROUP", "perpledger-sink"),
            # Each insert makes a part per table: ~12 ms of chDB's file work each, however small, plus the
            # merges that follow. At 10,000 rows those fixed costs alone capped the sink near 40k postings/s.
            batch_rows=int(env("PERPLEDGER_SINK_BATCH_ROWS", "100000")),
            batch_ms=int(env("PERPLEDGER_SINK_BATCH_MS", "1000")),
            web_host=env("PERPLEDGER_WEB_HOST", "127.0.0.1"),
            web_port=int(env("PERPLEDGER_SINK_WEB_PORT", "6067")),
            log_level=env("PERPLEDGER_LOG_LEVEL", "info"),
            log_format=env("PERPLEDGER_LOG_FORMAT", "json"),
            instance_id=env("PERPLEDGER_SINK_INSTANCE_ID", ""),
            build_processes=int(env("PERPLEDGER_SINK_BUILD_PROCESSES", "2")),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
