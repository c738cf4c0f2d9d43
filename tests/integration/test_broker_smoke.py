"""Smoke test of the local broker: keyed messages go in and come back out, in order, per partition."""

from __future__ import annotations

import time
from collections import defaultdict

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

pytestmark = pytest.mark.integration

PARTITIONS = 3
KEYS = [f"account-{i}".encode() for i in range(7)]
ROUNDS = 5


def test_keyed_messages_round_trip_in_order(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=PARTITIONS)

    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            # Java's (and aiokafka's) key hashing, so every client of the ledger agrees on which
            # partition an account lives in; librdkafka's default (CRC32) would not.
            "partitioner": "murmur2_random",
        }
    )
    sent: list[tuple[bytes, bytes]] = []
    delivered: list[Message] = []
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        (errors.append(err) if err is not None else delivered.append(msg))

    for round_no in range(ROUNDS):
        for key in KEYS:
            value = b"%s:%d" % (key, round_no)
            sent.append((key, value))
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert errors == []
    assert len(delivered) == len(sent)

    # What the broker acknowledged: partition and offset of every message, by key.
    expected: dict[int, list[tuple[bytes, bytes, int]]] = defaultdict(list)
    partition_of: dict[bytes, int] = {}
    for msg in sorted(delivered, key=lambda m: (m.partition(), m.offset())):
        expected[msg.partition()].append((msg.key(), msg.value(), msg.offset()))
        assert partition_of.setdefault(msg.key(), msg.partition()) == msg.partition(), "key split"
    for key, partition in partition_of.items():
        assert partition == (murmur2(key) & 0x7FFFFFFF) % PARTITIONS, f"{key!r} not on its murmur2 partition"
    assert len(expected) > 1, "all keys landed on one partition: the per-partition checks prove little"
    for partition, rows in expected.items():
        # Offsets of an idempotent producer's messages are dense from 0, in the order produced.
        assert [offset for _, _, offset in rows] == list(range(len(rows)))
        assert [(k, v) for k, v, _ in rows] == [(k, v) for k, v in sent if partition_of[k] == partition]

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.subscribe([topic])
        received: dict[int, list[tuple[bytes, bytes, int]]] = defaultdict(list)
        deadline = time.monotonic() + 30
        count = 0
        while count < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            assert msg.topic() == topic
            received[msg.partition()].append((msg.key(), msg.value(), msg.offset()))
            count += 1
        assert count == len(sent), f"consumed {count} of {len(sent)} messages in 30 s"
        assert dict(received) == dict(expected)

        # Nothing beyond what was produced: each partition ends exactly after our messages.
        for partition, rows in expected.items():
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            assert (low, high) == (0, len(rows))
    finally:
        consumer.close()
