"""EventProducer without a broker: key partitioning, client-side refusals, failures reported."""

from __future__ import annotations

import socket

import pytest
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from streams.codec import EncodeError
from streams.producer import (
    DeliveryError,
    DeliveryReport,
    EventProducer,
    InternalEventError,
    key_partition,
    send_lines,
)

DEPOSIT = {"type": "DepositConfirmed", "event_id": "dep-1", "source": "custody", "ts_us": 1_700_000_000_000_000,
           "deposit_id": "D1", "user": "u1", "asset": "USDT", "amount": 100}


def _dead_bootstrap() -> str:
    """An address nothing listens on: librdkafka connects lazily, so construction still works."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize(
    ("key", "partition"),
    # Kafka's Java DefaultPartitioner over 1000 partitions (the vectors kafka-python checks against).
    [("", 681), ("a", 524), ("ab", 434), ("abc", 107), ("123456789", 566), ("\x00 ", 742)],
)
def test_key_partition_matches_the_java_client(key: str, partition: int) -> None:
    assert key_partition(key, 1000) == partition


@given(st.text(max_size=40), st.integers(1, 500))
def test_key_partition_matches_aiokafka(key: str, partitions: int) -> None:
    try:
        data = key.encode("utf-8")
    except UnicodeEncodeError:
        return  # lone surrogates are refused before partitioning
    assert key_partition(key, partitions) == (murmur2(data) & 0x7FFFFFFF) % partitions


def test_guarantee_settings_cannot_be_overridden() -> None:
    for setting, value in (("partitioner", "consistent_random"), ("acks", "1"), ("enable.idempotence", False)):
        with pytest.raises(ValueError, match=setting):
            EventProducer(_dead_bootstrap(), config={setting: value})


def test_refusals_raise_before_anything_is_queued() -> None:
    producer = EventProducer(_dead_bootstrap())
    for event_type in ("TransferCredited", "MarginReturned", "MarginCredited"):
        with pytest.raises(InternalEventError, match=f"{event_type} is internal to the ledger"):
            producer.send({**DEPOSIT, "type": event_type})
    with pytest.raises(EncodeError, match="amount"):
        producer.send({**DEPOSIT, "amount": "100"})
    with pytest.raises(EncodeError, match="JSON object"):
        producer.send(["DepositConfirmed"])  # type: ignore[arg-type]
    assert producer.in_flight == 0
    assert producer.flush(timeout_s=0) == DeliveryReport(acked=0)


def test_undeliverable_events_are_reported_with_their_event_id() -> None:
    # No broker: librdkafka fails the message after message.timeout.ms, and the report says which.
    producer = EventProducer(_dead_bootstrap(), config={"message.timeout.ms": 300})
    producer.send(DEPOSIT)
    producer.send({**DEPOSIT, "event_id": "dep-2"})
    assert producer.in_flight == 2
    report = producer.flush(timeout_s=20)
    assert (report.acked, report.failed, report.pending, report.ok) == (0, 2, 0, False)
    assert sorted(report.errors_by_event_id()) == ["dep-1", "dep-2"]
    assert all("timed out" in f.error.lower() and f.key == "u1" for f in report.failures)
    assert report.failures[0].topic == "ledger.account-events"


def test_leaving_the_block_with_unacknowledged_events_raises() -> None:
    producer = EventProducer(_dead_bootstrap(), config={"message.timeout.ms": 300})
    with pytest.raises(DeliveryError, match="1 events failed") as caught, producer:
        producer.send(DEPOSIT)
    assert caught.value.report.failures[0].event_id == "dep-1"


def test_send_lines_reports_what_was_not_sent_by_line_number() -> None:
    producer = EventProducer(_dead_bootstrap(), config={"message.timeout.ms": 300})
    lines = ['{"type": "TradeFil"}', "", "nope", "3", '{"type": "MarginCredited"}']
    summary = send_lines(producer, lines, flush_timeout_s=5)
    assert summary.sent == 0 and not summary.ok
    assert [n for n, _ in summary.refused] == [1, 5]
    assert [n for n, _ in summary.malformed] == [3, 4]
    assert summary.report == DeliveryReport(acked=0)
