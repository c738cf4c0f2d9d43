"""A small known workload whose analytics are computed by hand below (0 decimals: amounts are units).

Market M (USD, price/size/settlement decimals 0: notional = |q| * p, pnl = q * (exit - entry)),
initial margin 10%, maintenance 5%, liquidation fee 1%. Insurance fund 30. Day 0: alice, bob and
carol deposit 1000 each and move 1000, 1000 and 200 into M's margin.

Day 1  T1 alice buys 5 @100 from bob; fees alice 2, bob 1.       alice +5@100, bob -5@100
Day 2  mark 110; T2 bob buys 3 @110 from alice; fees 1 and 1.    bob realizes -3*10 = -30, alice +30
Day 3  funding epoch 1 at 2% on price 110: |2|*110*2% = 4.4 -> 4: alice (long 2) pays 4, bob receives 4
Day 4  T3 carol buys 10 @110 from bob (no fees); mark 92: carol's equity 200 - 180 = 20 < mm 46
       -> ReduceOnlyEntered, LiquidationTriggered. LF1: carol sells 4 @95 to alice: pnl 4*(95-110) = -60,
       penalty 1% of 380 = 3.8 -> 4 (margin 200 - 60 - 4 = 136). LF2: 6 @80: pnl -180, margin -44, penalty
       1% of 480 capped at max(0, -44) = 0. Completed: deficit 44, fund 30 + 4 = 34 covers 34, 10 left
       uncovered (DeficitUncovered).
"""

from __future__ import annotations

from streams.workload import DAY_US, T0_US

M = "M"
LIQUIDATION_ID = "liq:M:carol:mark-2"


def events() -> list[dict]:
    out: list[dict] = []

    def event(type_: str, event_id: str, day: int, source: str = "test", **fields: object) -> None:
        out.append({"type": type_, "event_id": event_id, "source": source,
                    "ts_us": T0_US + day * DAY_US + len(out), **fields})

    event("MarketListed", "list", 0, market=M, settlement_asset="USD", settlement_decimals=0, price_decimals=0,
          size_decimals=0, initial_margin_ppm=100_000, maintenance_margin_ppm=50_000, liquidation_fee_ppm=10_000)
    event("InsuranceFunded", "fund", 0, market=M, amount=30)
    for user, margin in (("alice", 1000), ("bob", 1000), ("carol", 200)):
        event("DepositConfirmed", f"dep-{user}", 0, deposit_id=f"d-{user}", user=user, asset="USD", amount=1000)
        event("MarginTransferRequested", f"mt-{user}", 0, transfer_id=f"t-{user}", user=user, market=M,
              asset="USD", amount=margin)
    fill = {"source": "engine", "market": M}
    event("TradeFill", "T1", 1, trade_id="T1", seq=1, price=100, quantity=5, buyer="alice", seller="bob",
          buyer_fee=2, seller_fee=1, **fill)
    event("MarkPriceUpdate", "mark-1", 2, market=M, price=110, price_seq=1)
    event("TradeFill", "T2", 2, trade_id="T2", seq=2, price=110, quantity=3, buyer="bob", seller="alice",
          buyer_fee=1, seller_fee=1, **fill)
    event("FundingRateSnapshot", "snap-1", 3, market=M, epoch=1, rate_ppb=20_000_000, price=110)
    event("FundingEpochSettle", "settle-1", 3, market=M, epoch=1)
    event("TradeFill", "T3", 4, trade_id="T3", seq=3, price=110, quantity=10, buyer="carol", seller="bob",
          buyer_fee=0, seller_fee=0, **fill)
    event("MarkPriceUpdate", "mark-2", 4, market=M, price=92, price_seq=2)
    for n, (price, quantity) in enumerate(((95, 4), (80, 6)), start=1):
        event("LiquidationFill", f"LF{n}", 4, liquidation_id=LIQUIDATION_ID, trade_id=f"LF{n}", seq=3 + n,
              price=price, quantity=quantity, liquidated_user="carol", counterparty="alice", counterparty_fee=0,
              **fill)
    event("LiquidationCompleted", "done", 4, market=M, liquidation_id=LIQUIDATION_ID)
    return out
