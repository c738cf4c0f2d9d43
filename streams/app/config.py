"""Worker settings, from the environment (every name is documented in the README)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from streams.core.engine import DEFAULT_DEDUP_WINDOW_US


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    bootstrap: str
    app_id: str
    partitions: int
    data_dir: Path
    web_host: str
    web_port: int
    internal_key: bytes  # HMAC key of internal events: only workers hold it
    jwt_secret: bytes
    dedup_window_us: int
    rocksdb_block_cache_bytes: int
    session_timeout_s: float
    log_level: str
    # HTTP API (streams/api/http.py; README "HTTP API").
    canonical_url: str  # how other workers reach this one's web server; "" = http://{web_host}:{web_port}
    api_timeout_s: float  # how long POST /v1/events waits for the outcome (504 after)
    api_max_body_bytes: int
    recent_outcomes: int  # outcomes kept in memory for GET /v1/events and duplicate POSTs, in total
    recent_outcomes_per_type: int  # ... and per (stage, key, event type)
    log_format: str  # json | text
    # Group commit (streams/app/processor.py): records applied in memory are made durable together.
    group_max_records: int  # a stage seals its group once it holds this many input records ...
    group_linger_ms: int  # ... or once its first record has waited this long

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        internal_key = _env("PERPLEDGER_INTERNAL_KEY", "")
        if len(internal_key) < 32:
            raise SystemExit("PERPLEDGER_INTERNAL_KEY must be set to at least 32 bytes (the workers' HMAC key)")
        settings = cls(
            bootstrap=_env("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            app_id=_env("PERPLEDGER_APP_ID", "perpledger"),
            partitions=int(_env("PERPLEDGER_PARTITIONS", "6")),
            data_dir=Path(_env("PERPLEDGER_DATA_DIR", ".run/worker")),
            web_host=_env("PERPLEDGER_WEB_HOST", "127.0.0.1"),
            web_port=int(_env("PERPLEDGER_WEB_PORT", "6066")),
            internal_key=internal_key.encode(),
            jwt_secret=_env("PERPLEDGER_JWT_SECRET", "").encode(),
            dedup_window_us=int(_env("PERPLEDGER_DEDUP_WINDOW_US", str(DEFAULT_DEDUP_WINDOW_US))),
            # Faust's default is 2 GiB per partition: far too much for 6 partitions on a small box.
            rocksdb_block_cache_bytes=int(_env("PERPLEDGER_ROCKSDB_BLOCK_CACHE_BYTES", str(16 * 2**20))),
            session_timeout_s=float(_env("PERPLEDGER_SESSION_TIMEOUT_S", "15")),
            log_level=_env("PERPLEDGER_LOG_LEVEL", "info"),
            canonical_url=_env("PERPLEDGER_CANONICAL_URL", ""),
            api_timeout_s=float(_env("PERPLEDGER_API_TIMEOUT_S", "10")),
            api_max_body_bytes=int(_env("PERPLEDGER_API_MAX_BODY_BYTES", str(64 * 1024))),
            recent_outcomes=int(_env("PERPLEDGER_API_RECENT_OUTCOMES", "50000")),
            recent_outcomes_per_type=int(_env("PERPLEDGER_API_RECENT_PER_TYPE", "64")),
            log_format=_env("PERPLEDGER_LOG_FORMAT", "json"),
            group_max_records=int(_env("PERPLEDGER_GROUP_MAX_RECORDS", "500")),
            group_linger_ms=int(_env("PERPLEDGER_GROUP_LINGER_MS", "5")),
        )
        return replace(settings, **overrides)  # type: ignore[arg-type]
