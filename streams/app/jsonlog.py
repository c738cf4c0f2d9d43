"""JSON logs: one object per line, for `perpledger worker`.

Every line has `ts` (UTC, ISO 8601 with microseconds), `level`, `logger` and `message`; whatever a
call passes in `extra` (event_id, stage, partition, offset, reason, ...) is added as top-level keys,
and an exception as `exc`. Values that are not JSON become their `str`, so a log call can never fail.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has: anything else on a record came from `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
# Keys the formatter writes itself; an `extra` with one of these names is renamed, not dropped.
_RESERVED = frozenset({"ts", "level", "logger", "message", "exc"})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                line[f"extra_{name}" if name in _RESERVED else name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad %-format in someone's log call: keep the line, show what was passed
        return f"{record.msg!r} % {record.args!r}"


def logging_config(level: str | int, *, log_format: str = "json") -> dict[str, Any]:
    """A `logging.config.dictConfig` for the worker: every logger to stderr, as JSON (or plain text)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"format": "[%(asctime)s] %(levelname)s %(name)s: %(message)s"}
    )
    level_name = logging.getLevelName(level) if isinstance(level, int) else str(level).upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"perpledger": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "perpledger", "stream": "ext://sys.stderr"},
        },
        "root": {"level": level_name, "handlers": ["default"]},
    }
