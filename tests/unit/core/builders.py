"""Event builders for core tests: valid defaults, every field overridable.

Markets in these tests settle in USDT with 6 decimals, prices have 2 decimals and sizes 3, so
notional(q, p) = |q| * p * 10^6 / 10^5 = |q| * p * 10 minor units.
"""

from __future__ import annotations

import itertools
from typing import Any

from streams.core.ledger import Ledger
from streams.core.model import Outcome

USDT = 10**6  # one USDT in minor units
_ids = itertools.count(1)


def _event(type_: str, source: str, fields: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    event = {"type": type_, "event_id": f"ev{next(_ids)}", "source": source, "ts_us": 1_000_000, **fields}
    event.update(overrides)
    return event


def listed(market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("MarketListed", "admin", {
        "market": market, "settlement_asset": "USDT", "settlement_decimals": 6, "price_decimals": 2,
        "size_decimals": 3, "initial_margin_ppm": 100_000, "maintenance_margin_ppm": 50_000,
        "liquidation_fee_ppm": 10_000}, kw)


def risk_update(market: str = "BTC-PERP", im: int = 100_000, mm: int = 50_000, fee: int = 10_000,
                **kw: Any) -> dict:
    return _event("RiskParamUpdate", "admin", {
        "market": market, "initial_margin_ppm": im, "maintenance_margin_ppm": mm,
        "liquidation_fee_ppm": fee}, kw)


def deposit_initiated(user: str, amount: int, deposit_id: str = "d1", asset: str = "USDT", **kw: Any) -> dict:
    return _event("DepositInitiated", "custody",
                  {"deposit_id": deposit_id, "user": user, "asset": asset, "amount": amount}, kw)


def deposit(user: str, amount: int, deposit_id: str | None = None, asset: str = "USDT", **kw: Any) -> dict:
    return _event("DepositConfirmed", "custody", {
        "deposit_id": deposit_id or f"dep{next(_ids)}", "user": user, "asset": asset, "amount": amount}, kw)


def withdrawal(type_: str, user: str, amount: int, withdrawal_id: str = "w1", asset: str = "USDT",
               **kw: Any) -> dict:
    fields = {"withdrawal_id": withdrawal_id, "user": user, "asset": asset, "amount": amount}
    if type_ == "WithdrawalRejected":
        fields["reason"] = "compliance"
    return _event(type_, "custody", fields, kw)


def transfer(sender: str, receiver: str, amount: int, asset: str = "USDT", **kw: Any) -> dict:
    return _event("TransferRequested", "api", {
        "transfer_id": "t1", "from_user": sender, "to_user": receiver, "asset": asset, "amount": amount}, kw)


def margin_in(user: str, amount: int, market: str = "BTC-PERP", asset: str = "USDT", **kw: Any) -> dict:
    return _event("MarginTransferRequested", "api", {
        "transfer_id": "m1", "user": user, "market": market, "asset": asset, "amount": amount}, kw)


def margin_out(user: str, amount: int, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("MarginWithdrawRequested", "api",
                  {"transfer_id": "mo1", "user": user, "market": market, "amount": amount}, kw)


def mark(price: int, price_seq: int, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("MarkPriceUpdate", "oracle", {"market": market, "price": price, "price_seq": price_seq}, kw)


def fill(seq: int, buyer: str, seller: str, quantity: int, price: int, buyer_fee: int = 0, seller_fee: int = 0,
         market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("TradeFill", "engine", {
        "market": market, "trade_id": f"tr{seq}", "seq": seq, "price": price, "quantity": quantity,
        "buyer": buyer, "seller": seller, "buyer_fee": buyer_fee, "seller_fee": seller_fee}, kw)


def snapshot(epoch: int, rate_ppb: int, price: int, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("FundingRateSnapshot", "funding",
                  {"market": market, "epoch": epoch, "rate_ppb": rate_ppb, "price": price}, kw)


def settle(epoch: int, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("FundingEpochSettle", "funding", {"market": market, "epoch": epoch}, kw)


def liquidation_fill(seq: int, liquidation_id: str, liquidated: str, counterparty: str, quantity: int,
                     price: int, counterparty_fee: int = 0, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("LiquidationFill", "engine", {
        "market": market, "liquidation_id": liquidation_id, "trade_id": f"lt{seq}", "seq": seq, "price": price,
        "quantity": quantity, "liquidated_user": liquidated, "counterparty": counterparty,
        "counterparty_fee": counterparty_fee}, kw)


def liquidation_completed(liquidation_id: str, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("LiquidationCompleted", "engine", {"market": market, "liquidation_id": liquidation_id}, kw)


def insurance(amount: int, market: str = "BTC-PERP", **kw: Any) -> dict:
    return _event("InsuranceFunded", "treasury", {"market": market, "amount": amount}, kw)


def run(ledger: Ledger, *events: dict) -> list[Outcome]:
    """Submit events in order; every outcome, internal events included."""
    outcomes: list[Outcome] = []
    for event in events:
        outcomes.extend(ledger.submit(event))
    return outcomes


def one(ledger: Ledger, event: dict) -> Outcome:
    """Submit an event that causes no internal event; its outcome."""
    (outcome,) = ledger.submit(event)
    return outcome


def funded(ledger: Ledger, *users: str, wallet: int = 10_000 * USDT, margin: int = 1_000 * USDT,
           market: str = "BTC-PERP") -> None:
    """Deposit to each user's wallet and move `margin` of it into the market."""
    for user in users:
        run(ledger, deposit(user, wallet), margin_in(user, margin, market=market))


def balance(ledger: Ledger, account: str, asset: str = "USDT") -> int:
    return ledger.balances().get((account, asset), 0)


def position(ledger: Ledger, user: str, market: str = "BTC-PERP") -> tuple[int, int, str] | None:
    for p in ledger.positions():
        if p.market == market and p.user == user:
            return p.size, p.entry_price, p.state
    return None


def reasons(outcomes: list[Outcome]) -> list[str | None]:
    return [o.reason for o in outcomes]
