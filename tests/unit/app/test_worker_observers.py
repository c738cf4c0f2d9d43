"""What the worker's observers see and log for each processed record: rejections, signals and dead
letters get a log line with their coordinates. No services (a dict stands in for the table)."""

from __future__ import annotations

import logging

import pytest

from streams.app import internal_auth
from streams.app.processor import PartitionProcessor
from streams.app.worker import Processed, _log_outcome
from streams.codec import Codec
from streams.core.account_stage import AccountStage
from streams.core.market_stage import MarketStage
from streams.topics import ACCOUNT_EVENTS, MARKET_EVENTS
from tests.unit.core.builders import USDT, deposit, fill, listed, mark, withdrawal

KEY = b"k" * 32


class DictTable(dict):
    """A partition table in memory."""

    def set(self, key: bytes, value: bytes) -> None:
        self[key] = value

    def delete(self, key: bytes) -> None:
        self.pop(key, None)


def _processor(engine: type, topic: str) -> PartitionProcessor:
    processor = PartitionProcessor(engine, topic, 1, DictTable(), Codec(), KEY, 7 * 86_400 * 10**6)
    processor.load()
    return processor


def _process(processor: PartitionProcessor, stage: str, offset: int, key: str, value: bytes) -> Processed:
    applied = processor.process(offset, key.encode(), value)
    return Processed(stage, processor.topic, processor.partition, offset, processor, applied, 0.0)


def test_a_rejection_is_logged_with_its_event_and_coordinates(caplog: pytest.LogCaptureFixture) -> None:
    codec, processor = Codec(), _processor(AccountStage, ACCOUNT_EVENTS)
    caplog.set_level(logging.INFO, logger="perpledger.worker")
    _log_outcome(_process(processor, "account", 0, "alice", codec.encode(deposit("alice", 5 * USDT))))
    assert caplog.records == []  # applied: nothing to say
    event = withdrawal("WithdrawalRequested", "alice", 9 * USDT, event_id="w-9")
    _log_outcome(_process(processor, "account", 1, "alice", codec.encode(event)))
    (record,) = caplog.records
    assert record.getMessage() == "event rejected" and record.levelno == logging.INFO
    assert (record.event_id, record.reason, record.stage, record.partition, record.offset, record.key) == (
        "w-9", "INSUFFICIENT_BALANCE", "account", 1, 1, "alice")


def test_a_dead_letter_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    processor = _processor(AccountStage, ACCOUNT_EVENTS)
    _log_outcome(_process(processor, "account", 4, "alice", b"\x00junk"))
    (record,) = caplog.records
    assert record.getMessage() == "dead letter" and record.levelno == logging.WARNING
    assert (record.offset, record.partition) == (4, 1) and record.error_kind


def test_signals_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    codec, market = Codec(), _processor(MarketStage, MARKET_EVENTS)
    caplog.set_level(logging.INFO, logger="perpledger.worker")
    for offset, event in enumerate([listed(), mark(50_000_00, 1)]):
        _log_outcome(_process(market, "market", offset, "BTC-PERP", codec.encode(event)))
    # margin arrives only through the account stage: credit it the way the worker would, then trade
    credits = [{"type": "MarginCredited", "event_id": f"m-{u}:MarginCredited", "source": "ledger", "ts_us": 1_000_000,
                "transfer_id": f"m-{u}", "user": u, "market": "BTC-PERP", "asset": "USDT", "amount": 1_000 * USDT,
                "origin_key": u} for u in ("alice", "bob")]
    for offset, credit in enumerate(credits, start=2):
        tagged = {**credit, "auth_tag": internal_auth.sign(credit, KEY)}
        _log_outcome(_process(market, "market", offset, "BTC-PERP", codec.encode(tagged)))
    _log_outcome(_process(market, "market", 4, "BTC-PERP", codec.encode(fill(1, "alice", "bob", 100, 50_000_00))))
    caplog.clear()
    _log_outcome(_process(market, "market", 5, "BTC-PERP", codec.encode(mark(5_000_00, 2))))  # a crash
    signals = [r for r in caplog.records if r.getMessage() == "signal"]
    assert {r.signal_type for r in signals} >= {"LiquidationTriggered"}
    triggered = next(r for r in signals if r.signal_type == "LiquidationTriggered")
    assert triggered.levelno == logging.WARNING and triggered.offset == 5 and triggered.market == "BTC-PERP"
    assert triggered.user == "alice" and triggered.liquidation_id
