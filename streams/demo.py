"""`perpledger demo`: a sample workload through a real broker and the ledger, with a summary.

Producers' events are Avro-encoded and written to the two input topics, keyed and acknowledged;
then read back, decoded (undecodable records are counted as dead letters), put back in event-time
order and run through the ledger core. The result is checked against an offline replay of the same
events: the two must end on the same hashes.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterable

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.codec import Codec, DecodeError
from streams.core.events import ACCOUNT, SPECS
from streams.core.ledger import Ledger

ACCOUNT_TOPIC = "ledger.account-events"
MARKET_TOPIC = "ledger.market-events"
_POLL_TIMEOUT_S = 1.0
_READ_DEADLINE_S = 120.0


def topic_and_key(event: dict) -> tuple[str, str]:
    """The input topic and record key of a producer's event (ledger-spec §3)."""
    spec = SPECS[event["type"]]
    topic = ACCOUNT_TOPIC if spec.stage == ACCOUNT else MARKET_TOPIC
    return topic, event[spec.key_field]


def produce(bootstrap: str, events: Iterable[dict], suffix: str, codec: Codec) -> int:
    """Write events to the input topics and wait until the broker acknowledged every one."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "partitioner": "murmur2_random"})
    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    count = 0
    for event in events:
        topic, key = topic_and_key(event)
        while True:
            try:
                producer.produce(topic + suffix, codec.encode(event), key.encode(), on_delivery=on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    remaining = producer.flush(60)
    if remaining or failures:
        raise RuntimeError(f"{remaining} events unacknowledged, {len(failures)} failed: {failures[:3]}")
    return count


def read_back(bootstrap: str, topics: list[str], codec: Codec) -> tuple[list[dict], Counter]:
    """Every record of the topics, decoded; decode errors counted by kind."""
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
    events: list[dict] = []
    dead_letters: Counter = Counter()
    deadline = time.monotonic() + _READ_DEADLINE_S
    while remaining and time.monotonic() < deadline:
        message = consumer.poll(_POLL_TIMEOUT_S)
        if message is None or message.error() is not None:
            continue
        try:
            events.append(codec.decode(message.value()))
        except DecodeError as error:
            dead_letters[error.kind] += 1
        position = (message.topic(), message.partition())
        if message.offset() + 1 >= remaining.get(position, 0):
            remaining.pop(position, None)
    consumer.close()
    if remaining:
        raise RuntimeError(f"timed out reading back {sorted(remaining)}")
    return events, dead_letters


def run_demo(bootstrap: str, events: list[dict], partitions: int = 3) -> dict:
    suffix = f".demo-{uuid.uuid4().hex[:8]}"
    topics = [ACCOUNT_TOPIC + suffix, MARKET_TOPIC + suffix]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        future.result(timeout=30)
    codec = Codec()
    started = time.perf_counter()
    produced = produce(bootstrap, events, suffix, codec)
    produce_s = time.perf_counter() - started
    started = time.perf_counter()
    decoded, dead_letters = read_back(bootstrap, topics, codec)
    read_s = time.perf_counter() - started
    # Each topic partition keeps its own order; event time restores the producers' global order.
    decoded.sort(key=lambda event: event["ts_us"])
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
    admin.delete_topics(topics)
    return {
        "produced": produced, "produce_s": produce_s, "read_back": len(decoded), "read_s": read_s,
        "dead_letters": dict(dead_letters), "apply_s": apply_s, "outcomes": dict(sorted(outcomes.items())),
        "hashes": ledger.final_hashes(), "matches_offline_replay": ledger.final_hashes() == offline.final_hashes(),
        "balances": ledger.balances(),
    }
