"""Round trips of every record type in both framings (hypothesis: full int ranges, huge decimals)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.codec import (
    CONFLUENT,
    SINGLE_OBJECT,
    Codec,
    InMemorySchemaRegistry,
    SchemaCatalog,
    bytes_to_int,
    int_to_bytes,
    topic_record_name_strategy,
)
from streams.codec.samples import DECIMAL_EDGES, event_strategy, sample_event

CATALOG = SchemaCatalog.default()
RECORDS = sorted(CATALOG.current)
REGISTRY = InMemorySchemaRegistry()
CODECS = {SINGLE_OBJECT: Codec(), CONFLUENT: Codec(registry=REGISTRY)}
# Encodes single-object, knows the registry: decodes the Confluent framing too.
SINGLE_OBJECT_WITH_REGISTRY = Codec(registry=REGISTRY, framing=SINGLE_OBJECT)


def _assert_exact(decoded: object, expected: object) -> None:
    """Equal, and every int really is an int (not a Decimal or float that compares equal)."""
    assert decoded == expected
    if isinstance(expected, dict):
        assert isinstance(decoded, dict)
        for key, value in expected.items():
            _assert_exact(decoded[key], value)
    elif isinstance(expected, list):
        for got, want in zip(decoded, expected, strict=True):  # type: ignore[call-overload]
            _assert_exact(got, want)
    else:
        assert type(decoded) is type(expected), (decoded, expected)


@pytest.mark.parametrize("framing", [SINGLE_OBJECT, CONFLUENT])
@pytest.mark.parametrize("name", RECORDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip_every_record(name: str, framing: str, data: st.DataObject) -> None:
    codec = CODECS[framing]
    event = data.draw(event_strategy(name))
    original = copy.deepcopy(event)
    encoded = codec.encode(event)
    assert event == original  # encode does not touch the caller's dict
    if framing == SINGLE_OBJECT:
        assert encoded[:10] == CATALOG.current[name].single_object_header
    else:
        assert encoded[0] == 0 and len(encoded) > 5
    _assert_exact(codec.decode(encoded), event)
    # Whatever the mode, a codec decodes both framings (the Confluent one needs the registry).
    other = CODECS[CONFLUENT] if framing == SINGLE_OBJECT else SINGLE_OBJECT_WITH_REGISTRY
    _assert_exact(other.decode(encoded), event)


@pytest.mark.parametrize("name", RECORDS)
def test_sample_event_round_trips(name: str) -> None:
    event = sample_event(name)
    for codec in CODECS.values():
        _assert_exact(codec.decode(codec.encode(event)), event)


@given(st.one_of(st.sampled_from(DECIMAL_EDGES), st.integers(), st.integers(-(2**300), 2**300)))
def test_decimal_bytes_are_minimal_twos_complement(value: int) -> None:
    data = int_to_bytes(value)
    assert bytes_to_int(data) == value
    assert data == value.to_bytes(len(data), "big", signed=True)
    if len(data) > 1:  # minimal: one byte fewer would not hold it
        with pytest.raises(OverflowError):
            value.to_bytes(len(data) - 1, "big", signed=True)


def test_decimals_beyond_38_digits_decode_exactly() -> None:
    # fastavro's Decimal reader would round 10^40 + 1 to 1.0E+40 (precision 38): ours must not.
    codec = Codec()
    event = sample_event("TradeFill") | {"price": 10**40 + 1, "quantity": -(10**38), "buyer_fee": 2**127}
    decoded = codec.decode(codec.encode(event))
    assert decoded["price"] == 10**40 + 1 and type(decoded["price"]) is int
    assert decoded["quantity"] == -(10**38)
    assert decoded["buyer_fee"] == 2**127


def test_decimal_wire_bytes_are_avro_decimal() -> None:
    # Interop: a standard Avro decimal reader (fastavro's Decimal path) reads what we wrote.
    import io
    from decimal import Decimal

    from fastavro import parse_schema, schemaless_reader

    codec = Codec()
    event = sample_event("MarkPriceUpdate") | {"price": 6_512_345, "ts_us": 5}
    data = codec.encode(event)
    standard = parse_schema(CATALOG.current["MarkPriceUpdate"].schema, named_schemas={})
    rec = schemaless_reader(io.BytesIO(data[10:]), standard)
    assert rec["price"] == Decimal(6_512_345)


def test_accepts_bytearray_and_memoryview() -> None:
    codec = Codec()
    event = sample_event("Signal")
    data = codec.encode(event)
    assert codec.decode(bytearray(data)) == event
    assert codec.decode(memoryview(data)) == event


def test_nullable_fields_round_trip_as_none() -> None:
    codec = Codec()
    event = sample_event("Rejection") | {
        "key": None,
        "event_id": None,
        "event_type": None,
        "ts_us": None,
        "input_topic": None,
        "input_partition": None,
        "input_offset": None,
    }
    assert codec.decode(codec.encode(event)) == event
    signal = sample_event("Signal") | {"amount": None, "user": None}
    assert codec.decode(codec.encode(signal)) == signal


def test_confluent_ids_are_registered_once_per_record() -> None:
    registry = InMemorySchemaRegistry()
    codec = Codec(registry=registry)
    a = codec.encode(sample_event("TradeFill"))
    b = codec.encode(sample_event("TradeFill") | {"seq": 2})
    c = codec.encode(sample_event("MarkPriceUpdate"))
    assert a[:5] == b[:5] != c[:5]
    assert registry.subjects() == ["perpledger.v1.MarkPriceUpdate", "perpledger.v1.TradeFill"]
    schema_id = int.from_bytes(a[1:5], "big")
    assert registry.get_schema(schema_id) == CATALOG.current["TradeFill"].schema_str
    # A fresh codec sharing the registry (another process) decodes by fetching the schema.
    assert Codec(registry=registry).decode(a) == sample_event("TradeFill")


def test_topic_record_name_strategy() -> None:
    registry = InMemorySchemaRegistry()
    codec = Codec(registry=registry, subject_strategy=topic_record_name_strategy)
    data = codec.encode(sample_event("TradeFill"), topic="ledger.market-events")
    assert registry.subjects() == ["ledger.market-events-perpledger.v1.TradeFill"]
    assert codec.decode(data) == sample_event("TradeFill")


def test_single_object_framing_with_a_registry_still_decodes_confluent() -> None:
    registry = InMemorySchemaRegistry()
    confluent = Codec(registry=registry).encode(sample_event("TradeFill"))
    codec = Codec(registry=registry, framing=SINGLE_OBJECT)
    assert codec.encode(sample_event("TradeFill"))[:2] == b"\xc3\x01"
    assert codec.decode(confluent) == sample_event("TradeFill")


def test_confluent_framing_needs_a_registry() -> None:
    with pytest.raises(ValueError):
        Codec(framing=CONFLUENT)
    with pytest.raises(ValueError):
        Codec(framing="xml")  # type: ignore[arg-type]


def test_union_writer_schema_from_registry() -> None:
    """A producer using Confluent's TopicNameStrategy registers the topic union; the body then starts
    with the branch index (zigzag varint)."""
    import json

    registry = InMemorySchemaRegistry()
    topic = "ledger.market-events"
    union = [CATALOG.current[n].schema for n in CATALOG.topics[topic]]
    schema_id = registry.register(f"{topic}-value", json.dumps(union))
    codec = Codec(registry=registry)
    for index, name in enumerate(CATALOG.topics[topic]):
        event = sample_event(name)
        body = codec.encode_body(CATALOG.current[name], event)
        data = b"\x00" + schema_id.to_bytes(4, "big") + bytes([index * 2]) + body
        assert codec.decode(data) == event
