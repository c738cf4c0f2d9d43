"""Rejections, duplicates and their precedence (ledger-spec §4), the dedup window (§8), ranges (§1)."""

from __future__ import annotations

import pytest

from streams.core.engine import DAY_US
from streams.core.ledger import Ledger
from streams.core.numbers import VALUE_LIMIT
from tests.unit.core.builders import (
    balance,
    deposit,
    fill,
    funded,
    listed,
    mark,
    one,
    run,
)


def _store_snapshot(ledger: Ledger) -> tuple[dict, dict]:
    return dict(ledger.account.store.data), dict(ledger.market.store.data)


@pytest.mark.parametrize("change", [
    {"amount": True},  # a bool is not an amount
    {"amount": 1.5},
    {"amount": "100"},
    {"amount": None},
    {"user": 7},
    {"ts_us": "now"},
    {"event_id": ""},
    {"event_id": "a:b"},  # ':' is the ledger's own
    {"event_id": "x" * 129},
    {"type": "Nope"},
    {"source": None},
])
def test_ac12_envelope_errors_are_invalid_event_and_change_nothing(change: dict) -> None:
    ledger = Ledger()
    before = _store_snapshot(ledger)
    outcome = one(ledger, {**deposit("alice", 100), **change})
    assert (outcome.status, outcome.reason) == ("rejected", "INVALID_EVENT")
    assert _store_snapshot(ledger) == before


@pytest.mark.parametrize(("change", "reason"), [
    ({"amount": 0}, "INVALID_EVENT"),
    ({"amount": -5}, "INVALID_EVENT"),
    ({"user": "al ice"}, "INVALID_EVENT"),
    ({"user": "é"}, "INVALID_EVENT"),
    ({"asset": ""}, "INVALID_EVENT"),
    ({"source": "bad source"}, "INVALID_EVENT"),
    ({"amount": VALUE_LIMIT}, "VALUE_OUT_OF_RANGE"),
    ({"amount": -VALUE_LIMIT}, "VALUE_OUT_OF_RANGE"),
    ({"ts_us": 2**63}, "VALUE_OUT_OF_RANGE"),
    # ranges come before field rules: an out-of-range amount with a bad user is out of range
    ({"amount": VALUE_LIMIT, "user": "bad user"}, "VALUE_OUT_OF_RANGE"),
])
def test_field_rules_and_input_ranges(change: dict, reason: str) -> None:
    assert one(Ledger(), {**deposit("alice", 100), **change}).reason == reason


def test_market_field_rules() -> None:
    ledger = Ledger()
    assert one(ledger, listed(price_decimals=19)).reason == "INVALID_EVENT"
    assert one(ledger, listed(liquidation_fee_ppm=0)).reason == "INVALID_RISK_PARAMS"
    assert one(ledger, listed(maintenance_margin_ppm=100_000)).reason == "INVALID_RISK_PARAMS"
    assert one(ledger, listed(initial_margin_ppm=1_000_001)).reason == "INVALID_RISK_PARAMS"
    assert one(ledger, listed(initial_margin_ppm=2**63)).reason == "VALUE_OUT_OF_RANGE"
    assert one(ledger, listed(initial_margin_ppm=10**6)).status == "applied"
    assert one(ledger, listed()).reason == "MARKET_EXISTS"
    # stateless rules come before state: invalid params on an existing market
    assert one(ledger, listed(liquidation_fee_ppm=0)).reason == "INVALID_RISK_PARAMS"
    assert one(ledger, mark(1, 0)).reason == "INVALID_EVENT"
    assert one(ledger, mark(0, 1)).reason == "INVALID_EVENT"
    assert one(ledger, mark(1, 1, market="NOPE")).reason == "UNKNOWN_MARKET"


def test_record_key_must_match_the_keying_field() -> None:
    ledger = Ledger()
    event = deposit("alice", 5)
    assert ledger.account.apply(event, record_key="bob").reason == "INVALID_EVENT"
    assert ledger.account.apply(event, record_key="alice").status == "applied"


def test_ac11_duplicates_have_no_effect_and_conflicts_are_rejected() -> None:
    ledger = Ledger()
    event = deposit("alice", 100, event_id="e1")
    assert one(ledger, event).status == "applied"
    before = _store_snapshot(ledger)
    duplicate = one(ledger, dict(event))
    assert (duplicate.status, duplicate.reason, duplicate.batch) == ("duplicate", None, None)
    assert ledger.account.duplicates == 1
    assert one(ledger, {**event, "amount": 101}).reason == "IDEMPOTENCY_CONFLICT"
    assert one(ledger, {**event, "ts_us": event["ts_us"] + 1}).reason == "IDEMPOTENCY_CONFLICT"
    assert one(ledger, {**event, "source": "other"}).reason == "IDEMPOTENCY_CONFLICT"
    # the envelope is checked first: a broken resend is invalid, not a conflict
    assert one(ledger, {**event, "amount": "x"}).reason == "INVALID_EVENT"
    assert _store_snapshot(ledger) == before
    # dedup is per key: bob may use the same event_id
    assert one(ledger, deposit("bob", 100, event_id="e1")).status == "applied"
    assert balance(ledger, "user:alice:wallet:USDT") == 100


def test_ac12_a_rejected_event_sent_again_is_judged_afresh() -> None:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice", "bob")
    early = fill(2, "alice", "bob", 1, 5_000_000, event_id="f2")
    assert one(ledger, early).reason == "SEQUENCE_GAP"
    run(ledger, fill(1, "alice", "bob", 1, 5_000_000))
    assert one(ledger, early).status == "applied"


def test_event_too_old_and_the_dedup_window_forgets() -> None:
    ledger = Ledger(dedup_window_us=DAY_US)
    old = deposit("alice", 1, event_id="old", ts_us=0)
    run(ledger, old)
    assert one(ledger, dict(old)).status == "duplicate"
    run(ledger, deposit("alice", 1, ts_us=10 * DAY_US))
    # the id is forgotten and the event is now older than the window: too old, never applied twice
    assert one(ledger, dict(old)).reason == "EVENT_TOO_OLD"
    assert one(ledger, deposit("alice", 1, ts_us=9 * DAY_US - 1)).reason == "EVENT_TOO_OLD"
    assert one(ledger, deposit("alice", 1, ts_us=9 * DAY_US)).status == "applied"
    # the store is bounded: forgotten ids are gone from it, recent ones kept
    dedup_ids = {k[3] for k in ledger.account.store.data if k[1] == "d"}
    assert "old" not in dedup_ids and len(dedup_ids) == 2
    # the window is per key: bob's clock is his own
    assert one(ledger, deposit("bob", 1, ts_us=0)).status == "applied"


def test_duplicate_precedes_event_too_old() -> None:
    ledger = Ledger(dedup_window_us=DAY_US)
    first = deposit("alice", 1, event_id="a", ts_us=5 * DAY_US)
    run(ledger, first, deposit("alice", 1, ts_us=6 * DAY_US - 1))
    assert one(ledger, dict(first)).status == "duplicate"


def test_results_out_of_range_reject_the_whole_event() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", VALUE_LIMIT - 1))
    before = _store_snapshot(ledger)
    assert one(ledger, deposit("alice", 1)).reason == "VALUE_OUT_OF_RANGE"
    assert _store_snapshot(ledger) == before


def test_amounts_beyond_int64_are_exact() -> None:
    # the reference design overflowed int64: 18-decimal assets need 128 bits
    ledger = Ledger()
    big = 2**63 + 12_345
    run(ledger, deposit("alice", big, asset="ETH"), deposit("alice", big, asset="ETH"))
    assert balance(ledger, "user:alice:wallet:ETH", "ETH") == 2 * big
    assert balance(ledger, "external:custody:ETH", "ETH") == -2 * big


def test_fill_results_out_of_range_are_rejected() -> None:
    ledger = Ledger()
    run(ledger, listed(settlement_decimals=0, price_decimals=0, size_decimals=0))
    funded(ledger, "alice", "bob", margin=10)
    assert one(ledger, fill(1, "alice", "bob", 1, 1, buyer_fee=VALUE_LIMIT - 1)).status == "applied"
    # fees would reach 10^38: the whole fill is rejected and consumes no seq
    assert one(ledger, fill(2, "alice", "bob", 1, 1, seller_fee=1)).reason == "VALUE_OUT_OF_RANGE"
    # a size that would reach 10^38
    assert one(ledger, fill(2, "alice", "bob", VALUE_LIMIT - 1, 1)).reason == "VALUE_OUT_OF_RANGE"
    # a price at the limit: PnL of 10^38 - 2 on each side is still in range
    assert one(ledger, fill(2, "bob", "alice", 1, VALUE_LIMIT - 1)).status == "applied"
