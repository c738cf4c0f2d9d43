"""Avro events through a real broker, in both framings: produce with confluent_kafka, consume, decode."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer

from streams.codec import CONFLUENT, SINGLE_OBJECT, Codec, DecodeError, InMemorySchemaRegistry, SchemaCatalog
from streams.codec.samples import sample_event

pytestmark = pytest.mark.integration

CATALOG = SchemaCatalog.default()


def _events() -> list[dict]:
    """One event of every record type, plus the decimal edge cases the core must see exactly."""
    events = [sample_event(name) for name in sorted(CATALOG.current)]
    fill = sample_event("TradeFill")
    events += [
        fill | {"event_id": "huge", "price": 10**38, "quantity": 10**40 + 1, "buyer_fee": -(2**127), "seq": 2},
        fill | {"event_id": "neg", "seller_fee": -1, "buyer_fee": 0, "ts_us": -(2**63), "seq": 2**63 - 1},
        sample_event("Signal") | {"amount": None, "user": None, "liquidation_id": None},
    ]
    return events


def _key(event: dict) -> bytes:
    for field in ("user", "from_user", "to_user", "market", "key", "topic"):
        if isinstance(event.get(field), str):
            return event[field].encode()
    return b""


def _produce(bootstrap: str, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True})
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)

    for key, value in values:
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    assert errors == []


def _consume(bootstrap: str, topic: str, count: int) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(received) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append(msg)
    finally:
        consumer.close()
    assert len(received) == count, f"consumed {len(received)} of {count} messages in 30 s"
    return received


@pytest.mark.parametrize("framing", [SINGLE_OBJECT, CONFLUENT])
def test_events_round_trip_through_kafka(kafka_bootstrap: str, new_topic, framing: str) -> None:
    topic = new_topic(partitions=1)
    registry = InMemorySchemaRegistry()
    producer_codec = Codec() if framing == SINGLE_OBJECT else Codec(registry=registry)
    events = _events()
    _produce(kafka_bootstrap, topic, [(_key(e), producer_codec.encode(e, topic=topic)) for e in events])

    # A separate consumer-side codec: it knows the schemas (and the registry), nothing the producer cached.
    consumer_codec = Codec(registry=registry, framing=SINGLE_OBJECT)
    received = _consume(kafka_bootstrap, topic, len(events))
    for msg, event in zip(received, events, strict=True):
        value = msg.value()
        assert value.startswith(b"\xc3\x01" if framing == SINGLE_OBJECT else b"\x00")
        assert msg.key() == _key(event)
        decoded = consumer_codec.decode(value)
        assert decoded == event
        assert all(type(decoded[k]) is type(v) for k, v in event.items())


def test_both_framings_on_one_topic(kafka_bootstrap: str, new_topic) -> None:
    """A topic migrating between framings: one consumer decodes both, and bad bytes become DecodeErrors."""
    topic = new_topic(partitions=1)
    registry = InMemorySchemaRegistry()
    single, confluent = Codec(), Codec(registry=registry)
    events = _events()
    values = [(_key(e), (single if i % 2 else confluent).encode(e)) for i, e in enumerate(events)]
    garbage = [(b"k", b"\xc3\x01" + bytes(8)), (b"k", b"\x07junk"), (b"k", single.encode(events[0])[:-1])]
    _produce(kafka_bootstrap, topic, values + garbage)

    codec = Codec(registry=registry, framing=SINGLE_OBJECT)
    received = _consume(kafka_bootstrap, topic, len(values) + len(garbage))
    assert [codec.decode(m.value()) for m in received[: len(values)]] == events
    kinds = []
    for msg in received[len(values) :]:
        with pytest.raises(DecodeError) as info:
            codec.decode(msg.value())
        kinds.append(info.value.kind)
    assert kinds == ["unknown_fingerprint", "bad_magic", "truncated"]
