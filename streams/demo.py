"""`perpledger demo`: a sample workload through a real broker and the ledger, with a summary.

Producers' events are Avro-encoded and written to the two input topics, keyed and acknowledged;
then read back, decoded (undecodable records are counted as dead letters), put back in the order they
were produced (a demo-only header: Kafka orders each partition, not the two topics together) and run
through the ledger core. The result is checked against an offline replay of the same
events: the two must end on the same hashes. A few events of the workload are deliberately malformed:
those that fit no schema are written as JSON, as a broken producer would, and must come back as dead
letters (rejected events change no state, so the hashes still agree).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.codec import Codec, DecodeError, EncodeError
from streams.core.ledger import Ledger
from streams.topics import ACCOUNT_EVENTS, MARKET_EVENTS, input_topic_and_key

# The producers' global order, restored on read-back so the run compares with an offline replay.
ORDER_HEADER = "perpledger-demo-seq"
_POLL_TIMEOUT_S = 1.0
_READ_DEADLINE_S = 120.0


def encode_or_raw(codec: Codec, event: dict) -> tuple[bytes, bool]:
    """The Avro bytes of an event; for one that fits no schema, its JSON, as a broken producer
    would write it (the reader must dead-letter it, not crash)."""
    try:
        return codec.encode(event), True
    except EncodeError:
        return json.dumps(event).encode(), False


def produce(bootstrap: str, events: Iterable[dict], suffix: str, codec: Codec) -> tuple[int, int]:
    """Write events to the input topics and wait until the broker acknowledged every one.

    Returns how many were written, and how many of them were not Avro."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "partitioner": "murmur2_random"})
    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    count = raw = 0
    for seq, event in enumerate(events):
        topic, key = input_topic_and_key(event)
        value, is_avro = encode_or_raw(codec, event)
        raw += not is_avro
        while True:
            try:
                producer.produce(topic + suffix, value, key.encode(), on_delivery=on_delivery,
                                 headers=[(ORDER_HEADER, str(seq).encode())])
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    if remaining or failures:
        raise RuntimeError(f"{remaining} events unacknowledged, {len(failures)} failed: {failures[:3]}")
    return count, raw


def read_back(bootstrap: str, topics: list[str], codec: Codec) -> tuple[list[dict], Counter]:
    """Every record of the topics, decoded, in the producers' order; decode errors counted by kind."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"demo-{uuid.uuid4()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    remaining: dict[tuple[str, int], int] = {}
    metadata = consumer.list_topics(timeout=10)
    assignment = []
    for topic in topics:
        for partition in metadata.topics[topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > 0:
                remaining[(topic, partition)] = high
                assignment.append(TopicPartition(topic, partition, 0))
    consumer.assign(assignment)
    events: list[tuple[int, dict]] = []
    dead_letters: Counter = Counter()
    deadline = time.monotonic() + _READ_DEADLINE_S
    while remaining and time.monotonic() < deadline:
        message = consumer.poll(_POLL_TIMEOUT_S)
        if message is None or message.error() is not None:
            continue
        try:
            order = int(dict(message.headers() or ())[ORDER_HEADER])
            events.append((order, codec.decode(message.value())))
        except DecodeError as error:
            dead_letters[error.kind] += 1
        position = (message.topic(), message.partition())
        if message.offset() + 1 >= remaining.get(position, 0):
            remaining.pop(position, None)
    consumer.close()
    if remaining:
        raise RuntimeError(f"timed out reading back {sorted(remaining)}")
    events.sort(key=lambda pair: pair[0])
    return [event for _, event in events], dead_letters


def run_demo(bootstrap: str, events: list[dict], partitions: int = 3) -> dict:
    suffix = f".demo-{uuid.uuid4().hex[:8]}"
    topics = [ACCOUNT_EVENTS + suffix, MARKET_EVENTS + suffix]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        future.result(timeout=30)
    codec = Codec()
    started = time.perf_counter()
    produced, not_avro = produce(bootstrap, events, suffix, codec)
    produce_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded, dead_letters = read_back(bootstrap, topics, codec)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    ledger, outcomes = Ledger(), Counter()
    for event in decoded:
        for outcome in ledger.submit(event):
            outcomes[outcome.status if outcome.status != "rejected" else f"rejected:{outcome.reason}"] += 1
            for signal in outcome.signals:
                outcomes[f"signal:{signal.type}"] += 1
    apply_s = time.perf_counter() - started
    offline = Ledger()
    for event in events:
        offline.submit(event)
    for future in admin.delete_topics(topics, operation_timeout=10).values():
        future.result(timeout=15)  # no callback left pending when the client goes away
    return {
        "produced": produced, "not_avro": not_avro, "produce_s": produce_s, "read_back": len(decoded), "read_s": read_s,
        "dead_letters": dict(dead_letters), "apply_s": apply_s, "outcomes": dict(sorted(outcomes.items())),
        "hashes": ledger.final_hashes(), "matches_offline_replay": ledger.final_hashes() == offline.final_hashes(),
        "balances": ledger.balances(),
    }


def print_summary(summary: dict) -> None:
    produced, read_back = summary["produced"], summary["read_back"]
    print(f"produced     {produced:>9,} events to Kafka (Avro, acknowledged) in {summary['produce_s']:.1f} s")
    print(f"             {summary['not_avro']:>9,} of them deliberately not Avro (a broken producer)")
    print(f"read back    {read_back:>9,} events decoded in {summary['read_s']:.1f} s; "
          f"dead letters: {sum(summary['dead_letters'].values()):,} {summary['dead_letters']}")
    print(f"applied in   {summary['apply_s']:.1f} s ({read_back / max(summary['apply_s'], 1e-9):,.0f} events/s, "
          "internal events included)")
    print("outcomes:")
    for name, count in summary["outcomes"].items():
        print(f"  {name:<40} {count:>9,}")
    totals: Counter = Counter()
    for (account, asset), balance in summary["balances"].items():
        if account.startswith("external:custody:"):
            totals[asset] -= balance
    print("funds in custody (minor units): " + ", ".join(f"{a} {v:,}" for a, v in sorted(totals.items())))
    print(f"zero-sum per asset: {all(v == 0 for v in _sums(summary['balances']).values())}")
    print(f"final hashes: account {summary['hashes']['account'][:16]}…  market {summary['hashes']['market'][:16]}…")
    print(f"same hashes as an offline replay of the same events: {summary['matches_offline_replay']}")


def _sums(balances: dict[tuple[str, str], int]) -> Counter:
    sums: Counter = Counter()
    for (_, asset), balance in balances.items():
        sums[asset] += balance
    return sums
