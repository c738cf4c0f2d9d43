"""Golden scenarios of funding (ledger-spec §6), numbers computed by hand.

funding(size, price, rate) = rhe(|size| * price * |rate| * 10^6 / (10^5 * 10^9)) = rhe(|size| * price * rate / 10^8).
"""

from __future__ import annotations

from streams.core.ledger import Ledger
from tests.unit.core.builders import balance, fill, funded, listed, one, run, settle, snapshot


def _three_positions() -> Ledger:
    """alice and bob long 1, carol short 2, all at 50_000.00."""
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice", "bob", "carol")
    run(ledger, fill(1, "alice", "carol", 1, 5_000_000), fill(2, "bob", "carol", 1, 5_000_000))
    return ledger


def test_ac20_positive_rate_longs_pay_and_rounding_is_swept_to_insurance() -> None:
    ledger = _three_positions()
    run(ledger, snapshot(1, 100_000, 5_000_500))
    # longs: 1 * 5_000_500 * 100_000 / 10^8 = 5_000.5 -> 5_000 each; carol: 10_001.0 -> 10_001
    settled = one(ledger, settle(1))
    assert [(p.account, p.amount, p.kind) for p in settled.batch.postings] == [
        ("market:BTC-PERP:funding_pool", 5_000, "funding"),
        ("user:alice:margin:BTC-PERP", -5_000, "funding"),
        ("market:BTC-PERP:funding_pool", 5_000, "funding"),
        ("user:bob:margin:BTC-PERP", -5_000, "funding"),
        ("user:carol:margin:BTC-PERP", 10_001, "funding"),
        ("market:BTC-PERP:funding_pool", -10_001, "funding"),
        # the pool paid out 1 more than it took in: the insurance fund covers the rounding
        ("market:BTC-PERP:funding_pool", 1, "funding_sweep"),
        ("market:BTC-PERP:insurance", -1, "funding_sweep"),
    ]
    assert balance(ledger, "market:BTC-PERP:funding_pool") == 0
    assert balance(ledger, "market:BTC-PERP:insurance") == -1


def test_ac20_negative_rate_shorts_pay_and_epochs_settle_in_any_order() -> None:
    ledger = _three_positions()
    run(ledger, snapshot(1, 100_000, 5_000_500), snapshot(2, -100_000, 5_000_500))
    second = one(ledger, settle(2))
    assert [(p.account, p.amount) for p in second.batch.postings] == [
        ("user:alice:margin:BTC-PERP", 5_000),
        ("market:BTC-PERP:funding_pool", -5_000),
        ("user:bob:margin:BTC-PERP", 5_000),
        ("market:BTC-PERP:funding_pool", -5_000),
        ("market:BTC-PERP:funding_pool", 10_001),
        ("user:carol:margin:BTC-PERP", -10_001),
        ("market:BTC-PERP:insurance", 1),  # the pool kept 1 of rounding: swept to insurance
        ("market:BTC-PERP:funding_pool", -1),
    ]
    assert balance(ledger, "market:BTC-PERP:insurance") == 1
    run(ledger, settle(1))
    assert balance(ledger, "market:BTC-PERP:insurance") == 0
    assert balance(ledger, "market:BTC-PERP:funding_pool") == 0
    for user in ("alice", "bob", "carol"):
        assert balance(ledger, f"user:{user}:margin:BTC-PERP") == 1_000_000_000


def test_funding_epoch_reason_codes() -> None:
    ledger = _three_positions()
    assert one(ledger, snapshot(2, 1, 1)).reason == "EPOCH_GAP"
    assert one(ledger, snapshot(0, 1, 1)).reason == "EPOCH_GAP"
    assert one(ledger, settle(1)).reason == "EPOCH_NOT_SNAPSHOT"
    run(ledger, snapshot(1, 1, 1))
    assert one(ledger, snapshot(1, 1, 1)).reason == "EPOCH_GAP"
    assert one(ledger, settle(0)).reason == "EPOCH_GAP"
    assert one(ledger, settle(1)).status == "applied"
    assert one(ledger, settle(1)).reason == "EPOCH_SETTLED"
    assert one(ledger, settle(1, market="ETH-PERP")).reason == "UNKNOWN_MARKET"


def test_zero_payments_post_nothing() -> None:
    ledger = _three_positions()
    run(ledger, snapshot(1, 0, 5_000_000))
    assert one(ledger, settle(1)).batch.postings == ()


def test_funding_can_push_margin_negative_and_triggers_liquidation() -> None:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice", margin=600_000_000)
    funded(ledger, "bob")
    run(ledger, fill(1, "alice", "bob", 100, 5_000_000))
    # 100% funding (10^9 ppb) on 5_000 USDT of notional: alice pays 5_000 USDT she does not have
    run(ledger, snapshot(1, 10**9, 5_000_000))
    outcome = one(ledger, settle(1))
    assert balance(ledger, "user:alice:margin:BTC-PERP") == 600_000_000 - 5_000_000_000
    assert [(s.type, s.user) for s in outcome.signals] == [
        ("ReduceOnlyEntered", "alice"), ("LiquidationTriggered", "alice")]
