"""JSON log lines. No services."""

from __future__ import annotations

import io
import json
import logging
import logging.config

from streams.app.jsonlog import JsonFormatter, logging_config


def _line(record_logger: str, level: int, message: str, *args: object, **kwargs: object) -> dict:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(record_logger)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.log(level, message, *args, **kwargs)
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    return json.loads(line)


def test_one_object_per_line_with_the_extras() -> None:
    line = _line("perpledger.test", logging.INFO, "event %s rejected", "e1",
                 extra={"event_id": "e1", "partition": 2, "stage": "account", "reason": "INSUFFICIENT_BALANCE"})
    assert line["message"] == "event e1 rejected"
    assert (line["level"], line["logger"]) == ("INFO", "perpledger.test")
    assert (line["event_id"], line["partition"], line["stage"]) == ("e1", 2, "account")
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert "msg" not in line and "args" not in line


def test_odd_values_exceptions_and_reserved_names_never_break_a_line() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        line = _line("perpledger.test", logging.ERROR, "failed", exc_info=True,
                     extra={"payload": b"\x00\xff", "obj": object(), "level": "mine"})
    assert "ValueError: boom" in line["exc"]
    assert line["payload"] == str(b"\x00\xff") and line["obj"].startswith("<object")
    assert line["level"] == "ERROR" and line["extra_level"] == "mine"
    bad = _line("perpledger.test", logging.WARNING, "%d items", "not a number")
    assert "not a number" in bad["message"]


def test_the_worker_config_is_a_valid_dict_config() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logging.config.dictConfig(logging_config("warning"))
        assert root.level == logging.WARNING
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
        logging.config.dictConfig(logging_config(logging.INFO, log_format="text"))
        assert root.level == logging.INFO and not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
