"""Every way bytes can be bad maps to DecodeError with a stable kind, never another exception."""

from __future__ import annotations

import contextlib
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.codec import (
    DECODE_ERROR_KINDS,
    Codec,
    DecodeError,
    InMemorySchemaRegistry,
    RegistryError,
    SchemaCatalog,
    SchemaNotFoundError,
)
from streams.codec.samples import sample_event

CATALOG = SchemaCatalog.default()
CODEC = Codec()
TRADE = sample_event("TradeFill")
GOOD = CODEC.encode(TRADE)


def _kind(data: object, codec: Codec = CODEC) -> str:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)  # type: ignore[arg-type]
    assert info.value.kind in DECODE_ERROR_KINDS
    assert str(info.value).startswith(info.value.kind + ": ")
    return info.value.kind


def test_empty() -> None:
    assert _kind(b"") == "empty"
    assert _kind(None) == "empty"
    assert _kind(bytearray()) == "empty"


def test_truncated_headers() -> None:
    assert _kind(b"\xc3") == "truncated"
    assert _kind(b"\xc3\x01") == "truncated"
    assert _kind(GOOD[:9]) == "truncated"
    assert _kind(b"\x00") == "truncated"
    assert _kind(b"\x00\x00\x00\x01") == "truncated"


@pytest.mark.parametrize("name", sorted(CATALOG.current))
def test_every_strict_prefix_is_truncated(name: str) -> None:
    registry = InMemorySchemaRegistry()
    for codec in (CODEC, Codec(registry=registry)):
        data = codec.encode(sample_event(name))
        for end in range(1, len(data)):
            assert _kind(data[:end], codec) == "truncated", (name, end)


def test_bad_magic() -> None:
    assert _kind(b"\x01" + GOOD[1:]) == "bad_magic"
    assert _kind(b"{}") == "bad_magic"
    assert _kind(b"\xc3\x02" + GOOD[2:]) == "bad_magic"
    assert _kind(b"\xc3\x00") == "bad_magic"


def test_unknown_fingerprint() -> None:
    data = b"\xc3\x01" + bytes(8) + GOOD[10:]
    with pytest.raises(DecodeError, match="0x0000000000000000") as info:
        CODEC.decode(data)
    assert info.value.kind == "unknown_fingerprint"


def test_unknown_schema_id_without_registry() -> None:
    assert _kind(b"\x00\x00\x00\x00\x07" + GOOD[10:]) == "unknown_schema_id"


def test_unknown_schema_id_in_registry() -> None:
    codec = Codec(registry=InMemorySchemaRegistry())
    assert _kind(b"\x00\x00\x00\x00\x07" + GOOD[10:], codec) == "unknown_schema_id"


@pytest.mark.parametrize(
    "schema",
    [
        "not json",
        '"string"',
        '{"type": "record", "name": "Alien", "namespace": "elsewhere", "fields": []}',
        # our record name in another namespace is not ours
        json.dumps(CATALOG.current["TradeFill"].schema | {"namespace": "elsewhere"}),
        '[{"type": "record", "name": "Alien", "fields": []}]',
        '{"type": "record", "name": "Bad", "fields": [{"name": "x", "type": "nope"}]}',
    ],
)
def test_incompatible_registry_schema(schema: str) -> None:
    registry = InMemorySchemaRegistry()
    schema_id = registry.register("s", schema)
    codec = Codec(registry=registry)
    assert _kind(b"\x00" + schema_id.to_bytes(4, "big") + GOOD[10:], codec) == "incompatible_schema"


def test_unresolvable_version_of_our_record() -> None:
    # Same full name, but a field changed type: Avro schema resolution fails when reading.
    schema = json.loads(CATALOG.current["TradeFill"].schema_str)
    for field in schema["fields"]:
        if field["name"] == "seq":
            field["type"] = "string"
    registry = InMemorySchemaRegistry()
    schema_id = registry.register("s", json.dumps(schema))
    body = GOOD[10:]  # bytes don't matter: resolution fails first
    assert _kind(b"\x00" + schema_id.to_bytes(4, "big") + body, Codec(registry=registry)) == "incompatible_schema"


def test_schema_mismatch_bad_utf8() -> None:
    event = sample_event("MarkPriceUpdate") | {"event_id": "ab"}
    data = CODEC.encode(event)
    bad = data.replace(b"\x04ab", b"\x04\xff\xfe")
    assert bad != data
    assert _kind(bad) == "schema_mismatch"


def test_schema_mismatch_bad_union_index() -> None:
    event = sample_event("Rejection") | {"key": None}
    data = bytearray(CODEC.encode(event))
    # Rejection: stage (string) then key (union): the union index follows the stage string.
    stage_len = len(event["stage"].encode())
    index_at = 10 + 1 + stage_len
    assert data[index_at] == 0  # null branch
    data[index_at] = 0x0A  # branch 5: there are only 2
    assert _kind(bytes(data)) == "schema_mismatch"


def test_trailing_bytes() -> None:
    assert _kind(GOOD + b"\x00") == "trailing_bytes"
    registry = InMemorySchemaRegistry()
    codec = Codec(registry=registry)
    assert _kind(codec.encode(TRADE) + b"garbage", codec) == "trailing_bytes"


def test_decode_error_pickles() -> None:
    err = DecodeError("truncated", "x")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.kind, copy.message, str(copy)) == ("truncated", "x", "truncated: x")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bodies_never_raise_anything_else(body: bytes) -> None:
    for header in (GOOD[:10], CATALOG.current["JournalBatch"].single_object_header, b"", b"\x00\x00\x00\x00\x01"):
        with contextlib.suppress(DecodeError):
            CODEC.decode(header + body)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_records_never_raise_anything_else(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(CATALOG.current)))
    encoded = bytearray(CODEC.encode(sample_event(name)))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(10, len(encoded) - 1))
        encoded[pos] = data.draw(st.integers(0, 255))
    try:
        decoded = CODEC.decode(bytes(encoded))
    except DecodeError:
        return
    assert decoded["type"] == name


class _FlakyRegistry:
    def register(self, subject: str, schema_str: str) -> int:
        raise RegistryError("down")

    def get_schema(self, schema_id: int) -> str:
        raise RegistryError("down")


def test_registry_outage_is_not_a_decode_error() -> None:
    # The bytes may be fine: the record must be retried, not dead-lettered.
    codec = Codec(registry=_FlakyRegistry())
    with pytest.raises(RegistryError):
        codec.decode(b"\x00\x00\x00\x00\x01" + GOOD[10:])


def test_unknown_ids_are_not_cached() -> None:
    # A registry replica may lag behind the producer that registered the id.
    registry = InMemorySchemaRegistry()
    codec = Codec(registry=registry)
    data = Codec(registry=registry).encode(TRADE)
    fresh = Codec(registry=InMemorySchemaRegistry())
    assert _kind(data, fresh) == "unknown_schema_id"
    fresh.registry.register("x", CATALOG.current["TradeFill"].schema_str)  # type: ignore[union-attr]
    assert fresh.decode(data) == TRADE
    assert codec.decode(data) == TRADE
    with pytest.raises(SchemaNotFoundError):
        registry.get_schema(999)
