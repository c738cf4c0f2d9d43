"""Golden scenarios of trade fills (ledger-spec §5), numbers computed by hand.

BTC-PERP: prices with 2 decimals, sizes with 3, USDT with 6, so notional = |q| * p * 10.
"""

from __future__ import annotations

from streams.core.ledger import Ledger
from tests.unit.core.builders import (
    USDT,
    balance,
    fill,
    funded,
    listed,
    mark,
    one,
    position,
    run,
)


def _market(*users: str, margin: int = 1_000 * USDT) -> Ledger:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, *users, margin=margin)
    return ledger


def test_open_increase_reduce_and_flip_book_fees_and_realized_pnl() -> None:
    ledger = _market("alice", "bob", "carol", "dave", "erin")
    opened = one(ledger, fill(1, "alice", "bob", 100, 5_000_000, buyer_fee=1_000, seller_fee=-500))
    assert [(p.account, p.amount, p.kind) for p in opened.batch.postings] == [
        ("market:BTC-PERP:fees", 1_000, "fee"),
        ("user:alice:margin:BTC-PERP", -1_000, "fee"),
        ("user:bob:margin:BTC-PERP", 500, "fee"),  # a negative fee is a rebate paid from fees
        ("market:BTC-PERP:fees", -500, "fee"),
    ]
    assert position(ledger, "alice") == (100, 5_000_000, "healthy")
    assert position(ledger, "bob") == (-100, 5_000_000, "healthy")

    # increase: entry rhe((100 * 5_000_000 + 50 * 5_100_001) / 150) = rhe(5_033_333.67) = 5_033_334
    run(ledger, fill(2, "alice", "carol", 50, 5_100_001))
    assert position(ledger, "alice") == (150, 5_033_334, "healthy")

    # reduce 30 at 52_000.00: pnl = 30 * (5_200_000 - 5_033_334) * 10 = 49_999_800; entry unchanged
    reduced = one(ledger, fill(3, "dave", "alice", 30, 5_200_000))
    assert [(p.account, p.amount, p.kind) for p in reduced.batch.postings] == [
        ("user:alice:margin:BTC-PERP", 49_999_800, "realized_pnl"),
        ("market:BTC-PERP:settlement", -49_999_800, "realized_pnl"),
    ]
    assert position(ledger, "alice") == (120, 5_033_334, "healthy")

    # flip: sell 200 at 49_000.00 closes 120 (pnl 120 * -133_334 * 10 = -160_000_800), opens -80 there
    flipped = one(ledger, fill(4, "erin", "alice", 200, 4_900_000))
    alice = [(p.account, p.amount) for p in flipped.batch.postings if p.kind == "realized_pnl"]
    assert alice == [("market:BTC-PERP:settlement", 160_000_800), ("user:alice:margin:BTC-PERP", -160_000_800)]
    assert position(ledger, "alice") == (-80, 4_900_000, "healthy")
    assert balance(ledger, "user:alice:margin:BTC-PERP") == 1_000 * USDT - 1_000 + 49_999_800 - 160_000_800

    # close: buy back 80 at 48_000.00: pnl = -80 * (4_800_000 - 4_900_000) * 10 = 80_000_000
    run(ledger, fill(5, "alice", "erin", 80, 4_800_000))
    assert position(ledger, "alice") is None
    assert balance(ledger, "user:alice:margin:BTC-PERP") == 889_998_000 + 80_000_000


def test_average_entry_rounds_half_to_even() -> None:
    ledger = _market("alice", "bob")
    run(ledger, fill(1, "alice", "bob", 1, 100), fill(2, "alice", "bob", 1, 101))
    assert position(ledger, "alice") == (2, 100, "healthy")  # 100.5 -> 100
    run(ledger, fill(3, "alice", "bob", 2, 103))
    assert position(ledger, "alice") == (4, 102, "healthy")  # (200 + 206) / 4 = 101.5 -> 102


def test_pnl_rounds_half_to_even_once() -> None:
    ledger = Ledger()
    # settlement with 0 decimals: pnl = q * (exit - entry) / 10^5, rounded once
    run(ledger, listed(settlement_decimals=0))
    funded(ledger, "alice", "bob", margin=1_000)
    run(ledger, fill(1, "alice", "bob", 5, 100_000))
    closing = one(ledger, fill(2, "bob", "alice", 5, 110_000))  # +-5 * 10_000 / 10^5 = +-0.5 -> 0
    assert [p for p in closing.batch.postings if p.kind == "realized_pnl"] == []
    run(ledger, fill(3, "alice", "bob", 5, 100_000))
    closing = one(ledger, fill(4, "bob", "alice", 5, 130_000))  # +-1.5 -> +-2
    pnl = {p.account: p.amount for p in closing.batch.postings if p.account.startswith("user:")}
    assert pnl == {"user:bob:margin:BTC-PERP": -2, "user:alice:margin:BTC-PERP": 2}


def test_zero_fees_and_zero_pnl_post_nothing() -> None:
    ledger = _market("alice", "bob")
    run(ledger, fill(1, "alice", "bob", 10, 5_000_000))
    closing = one(ledger, fill(2, "bob", "alice", 10, 5_000_000))
    assert closing.status == "applied" and closing.batch.postings == ()
    assert position(ledger, "alice") is None and position(ledger, "bob") is None


def test_sequence_gap_out_of_order_and_rejected_fill_moves_nothing() -> None:
    ledger = _market("alice", "bob")
    assert one(ledger, fill(1, "alice", "bob", 1, 5_000_000)).status == "applied"
    before = dict(ledger.market.store.data)
    assert one(ledger, fill(3, "alice", "bob", 1, 5_000_000)).reason == "SEQUENCE_GAP"
    assert one(ledger, fill(1, "alice", "bob", 1, 5_000_000)).reason == "OUT_OF_ORDER"
    assert one(ledger, fill(0, "alice", "bob", 1, 5_000_000)).reason == "OUT_OF_ORDER"
    assert one(ledger, fill(2, "alice", "alice", 1, 5_000_000)).reason == "SAME_ACCOUNT"
    # the reference design moved the position of a rejected fill
    assert ledger.market.store.data == before
    # nothing consumed seq 2; another source has its own counter
    assert one(ledger, fill(2, "alice", "bob", 1, 5_000_000)).status == "applied"
    assert one(ledger, fill(1, "alice", "bob", 1, 5_000_000, source="engine2")).status == "applied"
    assert position(ledger, "alice") == (3, 5_000_000, "healthy")


def test_ac21_open_interest_is_zero_after_fills() -> None:
    ledger = _market("alice", "bob", "carol")
    run(ledger, fill(1, "alice", "bob", 7, 5_000_000), fill(2, "carol", "alice", 9, 5_100_000),
        fill(3, "bob", "carol", 3, 4_900_000))
    assert sum(p.size for p in ledger.positions()) == 0


def test_ac30_fill_is_checked_on_balances_after_its_fee() -> None:
    # 500.001 USDT of margin; the fill's 0.002 USDT fee leaves 499.999 < im = 10% of 5_000 USDT
    ledger = _market("alice", "bob", margin=500_001_000)
    outcome = one(ledger, fill(1, "alice", "bob", 100, 5_000_000, buyer_fee=2_000))
    assert [(s.type, s.user) for s in outcome.signals] == [("ReduceOnlyEntered", "alice")]
    assert position(ledger, "alice") == (100, 5_000_000, "reduce_only")


def test_fill_on_unknown_market_is_rejected_before_sequence() -> None:
    ledger = _market("alice", "bob")
    assert one(ledger, fill(7, "alice", "bob", 1, 1, market="ETH-PERP")).reason == "UNKNOWN_MARKET"


def test_mark_updates_use_entry_price_before_the_first_mark() -> None:
    ledger = _market("alice", "bob", margin=600 * USDT)
    run(ledger, fill(1, "alice", "bob", 100, 5_000_000))
    assert position(ledger, "alice") == (100, 5_000_000, "healthy")
    # a stale mark (price_seq not above the last) is accepted and changes nothing
    run(ledger, mark(4_000_000, 2))
    stale = one(ledger, mark(1_000_000, 1))
    assert stale.status == "applied" and stale.signals == () and stale.batch.postings == ()
    assert ledger.market.store.get(("BTC-PERP", "mk")).mark_price == 4_000_000
