"""Golden scenarios of margin checks, signals and liquidation (ledger-spec §7).

alice holds 100 (0.1 BTC) long from 50_000.00 on 600 USDT of margin; im 10%, mm 5%, penalty 1%.
"""

from __future__ import annotations

from streams.core.ledger import Ledger
from tests.unit.core.builders import (
    USDT,
    balance,
    fill,
    funded,
    insurance,
    liquidation_completed,
    liquidation_fill,
    listed,
    margin_in,
    mark,
    one,
    position,
    risk_update,
    run,
)


def _alice_long() -> Ledger:
    ledger = Ledger()
    run(ledger, listed(), insurance(200 * USDT))
    funded(ledger, "alice", margin=600 * USDT)
    funded(ledger, "bob", "carol")
    run(ledger, fill(1, "alice", "bob", 100, 5_000_000))
    return ledger


def _signals(outcome) -> list[tuple[str, str]]:
    return [(s.type, s.user) for s in outcome.signals]


def test_mark_moves_enter_reduce_only_then_liquidation_then_exit_reduce_only() -> None:
    ledger = _alice_long()
    # 49_500: equity 600 - 50 = 550 >= im 495
    assert _signals(one(ledger, mark(4_950_000, 1))) == []
    # 47_000: equity 300 < im 470, >= mm 235
    assert _signals(one(ledger, mark(4_700_000, 2))) == [("ReduceOnlyEntered", "alice")]
    assert position(ledger, "alice") == (100, 5_000_000, "reduce_only")
    # 46_000: equity 200 < mm 230
    crash = one(ledger, mark(4_600_000, 3, event_id="crash"))
    assert crash.signals[0].liquidation_id == "liq:BTC-PERP:alice:crash"
    assert _signals(crash) == [("LiquidationTriggered", "alice")]
    # once per liquidation
    assert _signals(one(ledger, mark(4_500_000, 4))) == []
    # 49_000: equity 500 >= im 490: reduce-only ends, the liquidation stays open
    assert _signals(one(ledger, mark(4_900_000, 5))) == [("ReduceOnlyExited", "alice")]
    assert position(ledger, "alice") == (100, 5_000_000, "in_liquidation")


def test_a_drop_straight_below_maintenance_emits_reduce_only_then_liquidation() -> None:
    ledger = _alice_long()
    assert _signals(one(ledger, mark(4_000_000, 1))) == [
        ("ReduceOnlyEntered", "alice"), ("LiquidationTriggered", "alice")]


def test_ac31_liquidation_fills_penalty_cap_insurance_cover_deficit_and_liquidating_again() -> None:
    ledger = _alice_long()
    run(ledger, mark(4_700_000, 1), mark(4_600_000, 2, event_id="crash"), mark(4_900_000, 3))
    liq = "liq:BTC-PERP:alice:crash"

    # carol buys 60 at 45_000: alice realizes 60 * -500_000 * 10 = -300 USDT (margin 300), then pays
    # the penalty: 1% of the notional 60 * 4_500_000 * 10 = 2_700 USDT, 27 USDT, into insurance
    first = one(ledger, liquidation_fill(2, liq, "alice", "carol", 60, 4_500_000, counterparty_fee=2_000))
    assert [(p.account, p.amount, p.kind) for p in first.batch.postings] == [
        ("market:BTC-PERP:fees", 2_000, "fee"),
        ("user:carol:margin:BTC-PERP", -2_000, "fee"),
        ("market:BTC-PERP:settlement", 300_000_000, "realized_pnl"),
        ("user:alice:margin:BTC-PERP", -300_000_000, "realized_pnl"),
        ("market:BTC-PERP:insurance", 27_000_000, "liquidation_penalty"),
        ("user:alice:margin:BTC-PERP", -27_000_000, "liquidation_penalty"),
    ]
    assert position(ledger, "alice") == (40, 5_000_000, "in_liquidation")
    assert position(ledger, "carol") == (60, 4_500_000, "healthy")

    # the rest at 30_000: -800 USDT leaves alice at -527; the penalty (12 USDT) is capped at 0
    second = one(ledger, liquidation_fill(3, liq, "alice", "carol", 40, 3_000_000))
    assert [p.kind for p in second.batch.postings] == ["realized_pnl", "realized_pnl"]
    assert balance(ledger, "user:alice:margin:BTC-PERP") == -527 * USDT
    assert _signals(second) == [("ReduceOnlyEntered", "alice")]  # flat, equity < im = 0
    assert position(ledger, "carol") == (100, 3_900_000, "healthy")

    # insurance holds 200 + 27: it covers 227 of the 527 deficit; 300 stays a debt
    completed = one(ledger, liquidation_completed(liq))
    assert [(p.account, p.amount, p.kind) for p in completed.batch.postings] == [
        ("user:alice:margin:BTC-PERP", 227 * USDT, "insurance_cover"),
        ("market:BTC-PERP:insurance", -227 * USDT, "insurance_cover"),
    ]
    assert [(s.type, s.user, s.amount) for s in completed.signals] == [("DeficitUncovered", "alice", 300 * USDT)]
    assert balance(ledger, "market:BTC-PERP:insurance") == 0
    assert one(ledger, liquidation_completed(liq)).reason == "INVALID_EVENT"  # finished

    # the reference design could never liquidate a position twice: a new check starts a new one
    credited = ledger.submit(margin_in("alice", 100 * USDT, event_id="topup"))[-1]
    assert [(s.type, s.liquidation_id) for s in credited.signals] == [
        ("LiquidationTriggered", "liq:BTC-PERP:alice:topup:MarginCredited")]


def test_liquidation_reason_codes() -> None:
    ledger = _alice_long()
    run(ledger, mark(4_000_000, 1, event_id="crash"))
    liq = "liq:BTC-PERP:alice:crash"
    assert one(ledger, liquidation_fill(2, liq, "alice", "alice", 1, 1)).reason == "SAME_ACCOUNT"
    assert one(ledger, liquidation_fill(2, liq, "alice", "carol", 1, 1, market="X")).reason == "UNKNOWN_MARKET"
    assert one(ledger, liquidation_fill(3, liq, "alice", "carol", 1, 1)).reason == "SEQUENCE_GAP"
    assert one(ledger, liquidation_fill(2, "liq:nope", "alice", "carol", 1, 1)).reason == "INVALID_EVENT"
    assert one(ledger, liquidation_fill(2, liq, "bob", "carol", 1, 1)).reason == "INVALID_EVENT"
    assert one(ledger, liquidation_fill(2, liq, "alice", "carol", 101, 1)).reason == "LIQUIDATION_SIDE_MISMATCH"
    assert one(ledger, liquidation_completed(liq)).reason == "LIQUIDATION_NOT_FLAT"
    assert one(ledger, liquidation_completed("liq:nope")).reason == "INVALID_EVENT"
    assert position(ledger, "alice") == (100, 5_000_000, "in_liquidation")


def test_a_short_is_liquidated_when_the_mark_rises() -> None:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice", margin=600 * USDT)
    funded(ledger, "bob")
    run(ledger, fill(1, "bob", "alice", 100, 5_000_000))
    # 53_000: equity 600 - 300 = 300 < im 530, >= mm 265
    assert _signals(one(ledger, mark(5_300_000, 1))) == [("ReduceOnlyEntered", "alice")]
    # 54_000: equity 200 < mm 270
    assert _signals(one(ledger, mark(5_400_000, 2))) == [("LiquidationTriggered", "alice")]
    # the liquidated short buys back from bob: the buyer's (alice's) side is booked first
    liq = ledger.market.store.get(("BTC-PERP", "p", "alice")).liquidation_id
    out = one(ledger, liquidation_fill(2, liq, "alice", "bob", 100, 5_400_000))
    assert [p.account for p in out.batch.postings][:2] == ["market:BTC-PERP:settlement", "user:alice:margin:BTC-PERP"]
    assert position(ledger, "alice") is None


def test_ac02_a_losing_close_larger_than_margin_stays_in_its_market() -> None:
    ledger = Ledger()
    run(ledger, listed("BTC-PERP"), listed("ETH-PERP"))
    funded(ledger, "alice", margin=100 * USDT, market="BTC-PERP")
    funded(ledger, "alice", margin=500 * USDT, market="ETH-PERP")
    funded(ledger, "bob", market="BTC-PERP")
    run(ledger, fill(1, "alice", "bob", 10, 5_000_000))
    # the reference design crashed here, or took the loss from other markets' margin
    closing = one(ledger, fill(2, "bob", "alice", 10, 3_000_000))
    assert closing.status == "applied"
    assert balance(ledger, "user:alice:margin:BTC-PERP") == 100 * USDT - 200 * USDT
    assert balance(ledger, "user:alice:margin:ETH-PERP") == 500 * USDT
    assert {p.account for p in closing.batch.postings} <= {
        "user:alice:margin:BTC-PERP", "user:bob:margin:BTC-PERP", "market:BTC-PERP:settlement"}
    # a flat position with a negative margin is a debt: liquidated, completion covers it
    assert _signals(closing) == [("ReduceOnlyEntered", "alice"), ("LiquidationTriggered", "alice")]


def test_risk_param_update_rechecks_every_position() -> None:
    ledger = _alice_long()
    assert one(ledger, risk_update(im=100_000, mm=100_000)).reason == "INVALID_RISK_PARAMS"
    # im 13%: 600 < 650 -> reduce-only; mm 12.5% (625) -> liquidation
    outcome = one(ledger, risk_update(im=130_000, mm=125_000, fee=10_000))
    assert _signals(outcome) == [("ReduceOnlyEntered", "alice"), ("LiquidationTriggered", "alice")]
    assert one(ledger, risk_update(market="ETH-PERP")).reason == "UNKNOWN_MARKET"
