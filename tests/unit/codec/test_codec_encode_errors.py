"""A dict that does not fit its schema raises EncodeError, and nothing is silently coerced."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest

from streams.codec import Codec, EncodeError, topic_record_name_strategy
from streams.codec.registry import InMemorySchemaRegistry
from streams.codec.samples import sample_event

CODEC = Codec()
TRADE = sample_event("TradeFill")
BATCH = sample_event("JournalBatch")


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"event_id": "x"},
        {"type": "NoSuchEvent"},
        {"type": 5},
        {"type": "perpledger.v1.TradeFill"} | {k: v for k, v in TRADE.items() if k != "type"},
    ],
    ids=["empty", "no-type", "unknown-type", "non-str-type", "full-name-type"],
)
def test_type_must_name_a_record(event: dict) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(event)


def test_not_a_mapping() -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": 1.5},
        {"seq": True},
        {"seq": "1"},
        {"seq": None},
        {"seq": 2**63},
        {"ts_us": -(2**63) - 1},
        {"price": 1.0},
        {"price": Decimal(1)},
        {"price": True},
        {"price": "1"},
        {"price": None},
        {"market": 5},
        {"market": b"BTC"},
        {"market": None},
        {"market": "\ud800"},  # a lone surrogate is not UTF-8
        {"unexpected": 1},
    ],
    ids=repr,
)
def test_wrong_field_values(changes: dict) -> None:
    with pytest.raises(EncodeError):
        CODEC.encode(TRADE | changes)


@pytest.mark.parametrize("field", [k for k in TRADE if k != "type"])
def test_missing_field(field: str) -> None:
    event = {k: v for k, v in TRADE.items() if k != field}
    with pytest.raises(EncodeError):
        CODEC.encode(event)


def test_int_field_range() -> None:
    dead = sample_event("DeadLetter")
    CODEC.encode(dead | {"partition": 2**31 - 1})
    with pytest.raises(EncodeError):
        CODEC.encode(dead | {"partition": 2**31})
    with pytest.raises(EncodeError):
        CODEC.encode(dead | {"key": "not bytes"})


def test_nullable_fields() -> None:
    rejection = sample_event("Rejection")
    for changes in ({"input_partition": 2**31}, {"input_offset": 1.5}, {"key": 5}, {"ts_us": "now"}):
        with pytest.raises(EncodeError):
            CODEC.encode(rejection | changes)
    signal = sample_event("Signal")
    for bad in (1.5, Decimal(3), True, "3"):
        with pytest.raises(EncodeError):
            CODEC.encode(signal | {"amount": bad})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b["postings"][0].update(extra=1),
        lambda b: b["postings"][0].pop("kind"),
        lambda b: b["postings"][0].update(amount=1.0),
        lambda b: b["balances"][0].update(balance=None),
        lambda b: b["positions"][0].update(size="1"),
        lambda b: b.update(postings="abc"),
        lambda b: b.update(postings=None),
        lambda b: b.update(postings=[1]),
        lambda b: b.update(balances={"account": "a"}),
        lambda b: b.update(batch_seq=1.0),
    ],
)
def test_nested_records(mutate) -> None:
    batch = copy.deepcopy(BATCH)
    mutate(batch)
    with pytest.raises(EncodeError):
        CODEC.encode(batch)


def test_encode_leaves_the_callers_dict_alone() -> None:
    batch = copy.deepcopy(BATCH)
    CODEC.encode(batch)
    assert batch == BATCH
    assert type(batch["postings"][0]["amount"]) is int


def test_tuples_are_fine_for_arrays() -> None:
    batch = copy.deepcopy(BATCH) | {"postings": tuple(BATCH["postings"])}
    assert CODEC.decode(CODEC.encode(batch)) == BATCH


def test_out_of_range_decimals_are_encoded() -> None:
    # Tests and tools must be able to produce them: the core, not the codec, rejects them.
    event = TRADE | {"price": 10**38, "buyer_fee": -(10**50)}
    assert CODEC.decode(CODEC.encode(event)) == event


def test_topic_record_name_strategy_needs_a_topic() -> None:
    codec = Codec(registry=InMemorySchemaRegistry(), subject_strategy=topic_record_name_strategy)
    with pytest.raises(EncodeError):
        codec.encode(TRADE)


def test_registry_ids_must_fit_four_bytes() -> None:
    codec = Codec(registry=InMemorySchemaRegistry(first_id=2**32))
    with pytest.raises(EncodeError):
        codec.encode(TRADE)
