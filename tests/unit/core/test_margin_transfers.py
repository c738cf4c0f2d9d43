"""Margin moves between the account and market stages (ledger-spec §3, §4; AC-03)."""

from __future__ import annotations

from streams.core.ledger import Ledger
from tests.unit.core.builders import (
    USDT,
    balance,
    deposit,
    fill,
    funded,
    listed,
    margin_in,
    margin_out,
    mark,
    one,
    run,
    transfer,
)


def test_ac03_margin_transfer_nets_transit_to_zero_over_both_stages() -> None:
    ledger = Ledger()
    run(ledger, listed(), deposit("alice", 100 * USDT))
    debit, credit = ledger.submit(margin_in("alice", 40 * USDT, event_id="m1"))
    assert (debit.stage, credit.stage) == ("account", "market")
    assert credit.event_id == "m1:MarginCredited" and credit.batch.origin_key == "alice"
    assert balance(ledger, "system:transit:USDT") == 0
    assert balance(ledger, "user:alice:margin:BTC-PERP") == 40 * USDT
    assert balance(ledger, "user:alice:wallet:USDT") == 60 * USDT


def test_ac03_margin_credit_to_an_unknown_market_or_asset_is_refunded() -> None:
    ledger = Ledger()
    run(ledger, listed(), deposit("alice", 100 * USDT), deposit("alice", 5, asset="BTC"))
    _, refused, refund = ledger.submit(margin_in("alice", 10, market="ETH-PERP", event_id="m1"))
    assert refused.reason == "UNKNOWN_MARKET" and refused.batch is None
    assert refund.event_id == "m1:MarginCredited:MarginReturned" and refund.stage == "account"
    _, wrong_asset, _ = ledger.submit(margin_in("alice", 5, asset="BTC", event_id="m2"))
    assert wrong_asset.reason == "INVALID_EVENT"
    assert balance(ledger, "user:alice:wallet:USDT") == 100 * USDT
    assert balance(ledger, "user:alice:wallet:BTC", "BTC") == 5
    assert balance(ledger, "system:transit:USDT") == 0 and balance(ledger, "system:transit:BTC", "BTC") == 0


def test_a_redelivered_refused_margin_credit_never_credits_after_its_refund() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 100))
    _, refused, _ = ledger.submit(margin_in("alice", 10, event_id="m1"))  # BTC-PERP not listed yet
    assert refused.reason == "UNKNOWN_MARKET"
    run(ledger, listed())
    credit = {"type": "MarginCredited", "event_id": "m1:MarginCredited", "source": "ledger", "ts_us": 1_000_000,
              "origin_key": "alice", "transfer_id": "m1", "user": "alice", "market": "BTC-PERP", "asset": "USDT",
              "amount": 10}
    assert ledger.market.apply(credit, trusted=True).status == "duplicate"
    assert balance(ledger, "user:alice:margin:BTC-PERP") == 0
    assert balance(ledger, "user:alice:wallet:USDT") == 100


def test_internal_events_from_producers_are_invalid() -> None:
    ledger = Ledger()
    run(ledger, listed())
    forged = {"type": "MarginCredited", "event_id": "x1", "source": "api", "ts_us": 1, "transfer_id": "m1",
              "user": "mallory", "market": "BTC-PERP", "asset": "USDT", "amount": 10**30}
    assert one(ledger, forged).reason == "INVALID_EVENT"
    assert balance(ledger, "user:mallory:margin:BTC-PERP") == 0


def test_internal_events_are_deduplicated_per_emitting_key() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 100), deposit("bob", 100))
    # alice and bob both use event_id "same": carol gets two distinct credits
    run(ledger, transfer("alice", "carol", 7, event_id="same"), transfer("bob", "carol", 5, event_id="same"))
    assert balance(ledger, "user:carol:wallet:USDT") == 12


def test_margin_withdrawal_keeps_initial_margin_and_unrealized_losses() -> None:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice", margin=600 * USDT)
    funded(ledger, "bob", margin=1_000 * USDT)
    run(ledger, fill(1, "alice", "bob", 100, 5_000_000), mark(4_700_000, 1))
    # bob (short) is up 300 USDT, which is not withdrawable: 1_000 - im 470 = 530
    assert one(ledger, margin_out("bob", 530 * USDT + 1)).reason == "INSUFFICIENT_MARGIN"
    out, back = ledger.submit(margin_out("bob", 530 * USDT, event_id="mo"))
    assert back.event_id == "mo:MarginReturned" and back.key == "bob"
    assert balance(ledger, "user:bob:wallet:USDT") == 9_000 * USDT + 530 * USDT
    assert balance(ledger, "system:transit:USDT") == 0
    # alice: 600 - 300 loss - 470 im < 0
    assert one(ledger, margin_out("alice", 1)).reason == "INSUFFICIENT_MARGIN"
    assert one(ledger, margin_out("alice", 1, market="ETH-PERP")).reason == "UNKNOWN_MARKET"
    # bob at exactly im: equity 1_000 - 530 + 300 = 770 >= 470, still healthy
    assert out.signals == ()
