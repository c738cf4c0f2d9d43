"""EventProducer and `perpledger produce` against a real broker: every event lands exactly once, in
order, on its input topic, with its record key, on the partition the Java client would pick."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.cli import main
from streams.codec import Codec, EncodeError
from streams.core.events import INTERNAL_TYPES
from streams.producer import EventProducer, InternalEventError, key_partition
from streams.topics import ACCOUNT_EVENTS, MARKET_EVENTS
from streams.workload import generate
from tests import kafka_broker

pytestmark = pytest.mark.integration

PARTITIONS = 3  # more than one, so a wrong partitioner (librdkafka's CRC32 default) shows

# ledger-spec §3, written out here rather than taken from streams.topics, so that a routing bug there
# fails this test too: the account stage is keyed by the user named first, the market stage by market.
ROUTES: dict[str, tuple[str, str]] = {
    "DepositInitiated": (ACCOUNT_EVENTS, "user"),
    "DepositConfirmed": (ACCOUNT_EVENTS, "user"),
    "WithdrawalRequested": (ACCOUNT_EVENTS, "user"),
    "WithdrawalConfirmed": (ACCOUNT_EVENTS, "user"),
    "WithdrawalRejected": (ACCOUNT_EVENTS, "user"),
    "TransferRequested": (ACCOUNT_EVENTS, "from_user"),
    "MarginTransferRequested": (ACCOUNT_EVENTS, "user"),
    "MarketListed": (MARKET_EVENTS, "market"),
    "RiskParamUpdate": (MARKET_EVENTS, "market"),
    "MarkPriceUpdate": (MARKET_EVENTS, "market"),
    "TradeFill": (MARKET_EVENTS, "market"),
    "FundingRateSnapshot": (MARKET_EVENTS, "market"),
    "FundingEpochSettle": (MARKET_EVENTS, "market"),
    "LiquidationFill": (MARKET_EVENTS, "market"),
    "LiquidationCompleted": (MARKET_EVENTS, "market"),
    "MarginWithdrawRequested": (MARKET_EVENTS, "market"),
    "InsuranceFunded": (MARKET_EVENTS, "market"),
}

# Fits MarginCredited's schema: only its type makes a producer send it wrongly.
INTERNAL_EVENT = {"type": "MarginCredited", "event_id": "mc-1", "source": "api", "ts_us": 1_700_000_000_000_000,
                  "transfer_id": "M1", "user": "u1", "market": "BTC-PERP", "asset": "USDT", "amount": 10,
                  "origin_key": "u1", "auth_tag": b"forged"}

Placement = tuple[str, int]  # (topic, partition)


@pytest.fixture
def topic_suffix(kafka_bootstrap: str) -> Iterator[str]:
    """A fresh pair of input topics, ``ledger.account-events{suffix}`` and ``ledger.market-events{suffix}``,
    PARTITIONS each (created up front: the broker would auto-create them with one partition)."""
    suffix = f".test-{uuid.uuid4().hex[:10]}"
    topics = [ACCOUNT_EVENTS + suffix, MARKET_EVENTS + suffix]
    admin = kafka_broker.admin_client(kafka_bootstrap)
    for topic in topics:
        kafka_broker.create_topic(admin, topic, partitions=PARTITIONS)
    yield suffix
    for future in admin.delete_topics(topics, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            future.result(timeout=15)


def _high_watermark(consumer: Consumer, partition: TopicPartition) -> tuple[int, int]:
    # Right after a topic is created, a client may still see stale metadata for a moment
    # (NOT_LEADER_FOR_PARTITION): retry that, briefly.
    deadline = time.monotonic() + 15
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=10)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_all(bootstrap: str, suffix: str, timeout_s: float = 60.0) -> dict[Placement, list[tuple[str, bytes]]]:
    """Every record of both input topics, as (key, value) in offset order, per (topic, partition)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        remaining: dict[Placement, int] = {}
        for base in (ACCOUNT_EVENTS, MARKET_EVENTS):
            for partition in range(PARTITIONS):
                _, high = _high_watermark(consumer, TopicPartition(base + suffix, partition))
                if high > 0:
                    remaining[(base + suffix, partition)] = high
        consumer.assign([TopicPartition(t, p, 0) for t, p in remaining])
        records: dict[Placement, list[tuple[str, bytes]]] = defaultdict(list)
        deadline = time.monotonic() + timeout_s
        while remaining and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            assert message.error() is None, message.error()
            placement = (message.topic(), message.partition())
            records[placement].append((message.key().decode(), message.value()))
            if message.offset() + 1 >= remaining.get(placement, 0):
                remaining.pop(placement, None)
        assert not remaining, f"timed out reading {sorted(remaining)}"
        return dict(records)
    finally:
        consumer.close()


def expected_placement(event: dict, suffix: str) -> tuple[Placement, str]:
    base, key_field = ROUTES[event["type"]]
    key = event[key_field]
    return (base + suffix, key_partition(key, PARTITIONS)), key


def test_workload_lands_exactly_once_on_its_topic_key_and_partition(kafka_bootstrap: str, topic_suffix: str) -> None:
    events = list(generate(seed=11, n_events=2_500, n_markets=3, n_users=100))
    # One of the ledger's own events among them, as a confused producer would send it.
    events.insert(len(events) // 2, {**INTERNAL_EVENT, "market": events[-1].get("market", "M")})
    expected: dict[Placement, list[tuple[str, dict]]] = defaultdict(list)
    refused: list[tuple[dict, EncodeError]] = []
    with EventProducer(kafka_bootstrap, topic_suffix=topic_suffix) as producer:
        for event in events:
            try:
                producer.send(event)
            except EncodeError as error:
                refused.append((event, error))
                continue
            placement, key = expected_placement(event, topic_suffix)
            expected[placement].append((key, event))
        report = producer.flush(timeout_s=60)
    sent = sum(len(v) for v in expected.values())
    assert report.ok, report
    assert report.acked == sent == len(events) - len(refused)

    # The workload's deliberately broken events that fit no schema, and its internal events, are
    # refused; everything that fits a schema is sent (the stages reject the rest, not the producer).
    codec = Codec()
    internal = [e for e, err in refused if isinstance(err, InternalEventError)]
    assert internal == [e for e in events if e.get("type") in INTERNAL_TYPES] != []
    Codec().encode(INTERNAL_EVENT)  # refused for its type, not its shape
    for event, _ in refused:
        if event not in internal:
            with pytest.raises(EncodeError):
                codec.encode(event)

    # Both topics, and more than one partition of each, are used: otherwise this proves little.
    assert {t for t, _ in expected} == {ACCOUNT_EVENTS + topic_suffix, MARKET_EVENTS + topic_suffix}
    assert len(expected) > 3

    records = read_all(kafka_bootstrap, topic_suffix)
    # Per partition: the same keys, in the order sent, each event exactly once (resends of an event
    # by the workload are sent, and arrive, as often as they were sent), decoding to what was sent.
    assert set(records) == set(expected)
    for placement, wanted in expected.items():
        got = records[placement]
        assert [key for key, _ in got] == [key for key, _ in wanted], placement
        assert [codec.decode(value) for _, value in got] == [event for _, event in wanted], placement


def test_internal_and_unfit_events_are_refused_and_nothing_is_sent(kafka_bootstrap: str, topic_suffix: str) -> None:
    internal = INTERNAL_EVENT
    unfit = {"type": "DepositConfirmed", "event_id": "dep-1", "source": "custody", "ts_us": 1_700_000_000_000_000,
             "deposit_id": "D1", "user": "u1", "asset": "USDT", "amount": "100"}
    with EventProducer(kafka_bootstrap, topic_suffix=topic_suffix) as producer:
        with pytest.raises(InternalEventError, match="MarginCredited is internal to the ledger"):
            producer.send(internal)
        for event_type in ("TransferCredited", "MarginReturned"):
            with pytest.raises(InternalEventError, match=event_type):
                producer.send({**internal, "type": event_type})
        with pytest.raises(EncodeError, match="DepositConfirmed"):
            producer.send(unfit)
        with pytest.raises(EncodeError, match="unknown event type"):
            producer.send({"type": "TradeFil", "event_id": "x"})
        report = producer.flush(timeout_s=10)
    assert report == type(report)(acked=0)
    assert producer.sent_by_topic == {}
    assert read_all(kafka_bootstrap, topic_suffix, timeout_s=5) == {}


def test_cli_produce_sends_a_file_and_prints_the_summary(
    kafka_bootstrap: str, topic_suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [e for e in generate(seed=2, n_events=300, n_markets=2, n_users=100) if e.get("type") in ROUTES]
    good = tmp_path / "events.jsonl"
    good.write_text("".join(json.dumps(e) + "\n" for e in events) + "\n")  # a trailing blank line is skipped
    argv = ["produce", "--input", str(good), "--bootstrap", kafka_bootstrap, "--topic-suffix", topic_suffix]
    assert main(argv) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    account = sum(ROUTES[e["type"]][0] == ACCOUNT_EVENTS for e in events)
    assert f"sent       {len(events):>9,}" in out
    assert f"acked      {len(events):>9,}" in out
    assert f"{ACCOUNT_EVENTS + topic_suffix:<40} {account:>9,}" in out
    assert f"{MARKET_EVENTS + topic_suffix:<40} {len(events) - account:>9,}" in out
    assert "refused            0" in out and "failed             0" in out
    records = read_all(kafka_bootstrap, topic_suffix)
    codec = Codec()
    arrived = sorted((codec.decode(v)["event_id"], k) for rs in records.values() for k, v in rs)
    assert arrived == sorted((e["event_id"], e[ROUTES[e["type"]][1]]) for e in events)

    # A file with a malformed line, an unfit event and an internal one: those are reported by line
    # number and not sent; the rest is; the exit code says something was left out.
    bad = tmp_path / "bad.jsonl"
    internal = {**INTERNAL_EVENT, "type": "MarginReturned", "auth_tag": "forged"}
    del internal["market"]
    lines = [json.dumps(events[0]), "{not json", json.dumps({**events[1], "amount": 1.5}), "[1, 2]",
             json.dumps(internal)]
    bad.write_text("\n".join(lines) + "\n")
    assert main([*argv[:2], str(bad), *argv[3:]]) == 1
    out = capsys.readouterr().out
    assert f"sent       {1:>9,}" in out and f"acked      {1:>9,}" in out
    assert "line 2: not JSON" in out and "line 4: a JSON list, not an object" in out
    assert f"line 3: {events[1]['type']}.amount: decimal field needs an int, got float 1.5" in out
    assert "line 5: MarginReturned is internal to the ledger" in out
