"""The market stage, keyed by market: positions, isolated margin, marks, funding, liquidations.

Ledger-spec §4 to §7. Every user's margin is an account of this market only (AC-02), so nothing
here can reach another market's money.
"""

from __future__ import annotations

from streams.core import accounts
from streams.core.engine import BALANCE, Booking, StageEngine
from streams.core.events import MARKET, check_risk_params, internal_event
from streams.core.model import (
    FLAT,
    FundingSnapshot,
    Liquidation,
    Market,
    Position,
    Reason,
    Rejected,
    Signal,
)
from streams.core.numbers import Scale, average_entry, ppm_of
from streams.core.risk_index import MarketRiskIndex
from streams.core.store import Store

MARKET_RECORD = "mk"  # (market, "mk") -> Market
POSITION = "p"  # (market, "p", user) -> Position
SEQUENCE = "seq"  # (market, "seq", source) -> last accepted seq
SNAPSHOT = "fs"  # (market, "fs", epoch) -> FundingSnapshot
LIQUIDATION = "lq"  # (market, "lq", liquidation_id) -> Liquidation

_MARGIN_PREFIX, _MARGIN_INFIX = "user:", ":margin:"
# Events after which every open position of the market is re-indexed in one sort.
_REINDEX_ALL = frozenset({"RiskParamUpdate", "FundingEpochSettle"})


class MarketStage(StageEngine):
    stage = MARKET

    def __init__(self, store: Store, **options: int) -> None:
        super().__init__(store, **options)
        # Derived from the store, rebuilt by `recover`: the risk index of each market.
        self._risk: dict[str, MarketRiskIndex] = {}
        self._scales: dict[tuple[int, int, int], Scale] = {}
        # Compare every mark update against a check of every position (tests only: O(n)).
        self.full_scan = False

    # Shared helpers ----------------------------------------------------------------------------

    def scale(self, market: Market) -> Scale:
        decimals = (market.settlement_decimals, market.price_decimals, market.size_decimals)
        scale = self._scales.get(decimals)
        if scale is None:
            scale = self._scales[decimals] = Scale(*decimals)
        return scale

    def risk(self, market_id: str) -> MarketRiskIndex:
        index = self._risk.get(market_id)
        if index is None:
            index = self._risk[market_id] = MarketRiskIndex()
        return index

    def refusal_events(self, event: dict) -> list[dict]:
        if event["type"] != "MarginCredited":
            return super().refusal_events(event)
        # The funds go back to the wallet they came from; nothing is posted here.
        return [internal_event(event, "MarginReturned", event["market"], transfer_id=event["transfer_id"],
                               user=event["user"], asset=event["asset"], amount=event["amount"])]

    def after_commit(self, booking: Booking) -> None:
        market_id = booking.key
        market = self.store.get((market_id, MARKET_RECORD))
        if market is None:
            return
        index, scale, store = self.risk(market_id), self.scale(market), self.store
        asset = market.settlement_asset
        if booking.event["type"] in _REINDEX_ALL:  # every margin or the risk params changed
            users = index.open_users()
            index.rebuild((
                (user, store.get((market_id, POSITION, user), FLAT),
                 store.get((market_id, BALANCE, accounts.margin(user, market_id), asset), 0))
                for user in users
            ), market, scale)
            return
        # The users whose position or margin this event changed, with their values after it.
        margins: dict[str, int] = {}
        for (account, _), after in booking.balances.items():
            if account.startswith(_MARGIN_PREFIX) and _MARGIN_INFIX in account:
                margins[account[len(_MARGIN_PREFIX):account.index(_MARGIN_INFIX)]] = after
        for _, user in booking.positions:
            if user not in margins:
                margins[user] = store.get((market_id, BALANCE, accounts.margin(user, market_id), asset), 0)
        for user, margin in margins.items():
            position = booking.positions.get((market_id, user))
            if position is None:
                position = store.get((market_id, POSITION, user), FLAT)
            index.update(user, position, margin, market, scale)

    def recover(self) -> None:
        super().recover()
        self._risk = {}
        for record, value in self.store.items():
            if len(record) == 3 and record[1] == POSITION and value.size != 0:
                market_id, _, user = record
                market = self.store.get((market_id, MARKET_RECORD))
                margin = self.store.get(
                    (market_id, BALANCE, accounts.margin(user, market_id), market.settlement_asset), 0)
                self.risk(market_id).update(user, value, margin, market, self.scale(market))

    # Margin checks (§7) ------------------------------------------------------------------------

    def check_users(self, book: Booking, market: Market, users: list[str]) -> None:
        """Margin checks on the balances after the event (AC-30), signals in user-id order."""
        scale = self.scale(market)
        for user in users:
            self._check_user(book, market, scale, user)

    def _check_user(self, book: Booking, market: Market, scale: Scale, user: str) -> None:
        market_id = book.key
        position = position_of(book, user)
        equity = book.balance(accounts.margin(user, market_id), market.settlement_asset)
        size = position.size
        if size:
            mark = position.entry_price if market.mark_price is None else market.mark_price
            notional = scale.notional(size, mark)
            equity += scale.pnl(size, position.entry_price, mark)
            initial = ppm_of(notional, market.initial_margin_ppm)
            maintenance = ppm_of(notional, market.maintenance_margin_ppm)
        else:  # a flat position is checked too: a negative margin is a debt to liquidate
            initial = maintenance = 0
        reduce_only, liquidation_id = equity < initial, position.liquidation_id
        changed = reduce_only != position.reduce_only
        if changed:
            kind = "ReduceOnlyEntered" if reduce_only else "ReduceOnlyExited"
            book.signals.append(Signal(kind, market_id, user))
        if equity < maintenance and liquidation_id is None:
            liquidation_id = f"liq:{market_id}:{user}:{book.event['event_id']}"
            book.txn.put((market_id, LIQUIDATION, liquidation_id), Liquidation(user, True))
            book.signals.append(Signal("LiquidationTriggered", market_id, user, liquidation_id))
            changed = True
        if changed:
            put_position(book, user, Position(size, position.entry_price, reduce_only, liquidation_id))


# Record access ------------------------------------------------------------------------------


def market_of(book: Booking) -> Market:
    market = book.txn.get((book.key, MARKET_RECORD))
    if market is None:
        raise Rejected(Reason.UNKNOWN_MARKET, f"market {book.key} is not listed")
    return market


def position_of(book: Booking, user: str) -> Position:
    # Only `put_position` writes positions, and it keeps `book.positions` too.
    position = book.positions.get((book.key, user))
    if position is None:
        return book._read((book.key, POSITION, user), FLAT)
    return position


def put_position(book: Booking, user: str, position: Position) -> None:
    record = (book.key, POSITION, user)
    if position == FLAT:
        book.txn.delete(record)
    else:
        book.writes[record] = position
    book.positions[(book.key, user)] = position


def take_sequence(book: Booking, source: str, seq: int) -> None:
    """Fills are facts, consecutive per (market, source): nothing is buffered or skipped."""
    record = (book.key, SEQUENCE, source)
    expected = book.txn.get(record, 0) + 1
    if seq > expected:
        raise Rejected(Reason.SEQUENCE_GAP, f"expected seq {expected}")
    if seq < expected:
        raise Rejected(Reason.OUT_OF_ORDER, f"expected seq {expected}")
    book.txn.put(record, seq)


def book_side(book: Booking, market: Market, scale: Scale, user: str, delta: int, price: int,
              fee: int) -> None:
    """One side of a fill (§5): fee, realized PnL on the closed part, the new position."""
    market_id, asset = book.key, market.settlement_asset
    margin_account = accounts.margin(user, market_id)
    book.transfer(accounts.market_fees(market_id), margin_account, asset, fee, "fee")
    position = position_of(book, user)
    size, entry = position.size, position.entry_price
    new_size = size + delta
    if size == 0:
        new_entry = price
    elif (size > 0) == (delta > 0):
        new_entry = average_entry(size, entry, delta, price)
    else:
        closed = min(abs(delta), abs(size))
        realized = scale.pnl(closed if size > 0 else -closed, entry, price)
        book.transfer(margin_account, accounts.market_settlement(market_id), asset, realized,
                      "realized_pnl")
        if new_size == 0:
            new_entry = 0
        elif (new_size > 0) == (size > 0):
            new_entry = entry  # a reduction keeps the entry
        else:
            new_entry = price  # a flip opens the remainder at the fill price
    put_position(book, user, Position(new_size, new_entry, position.reduce_only, position.liquidation_id))


# Handlers -----------------------------------------------------------------------------------


def _market_listed(stage: MarketStage, book: Booking, ev: dict) -> None:
    check_risk_params(ev)
    if book.txn.get((book.key, MARKET_RECORD)) is not None:
        raise Rejected(Reason.MARKET_EXISTS, f"market {book.key} is already listed")
    book.txn.put((book.key, MARKET_RECORD), Market(
        ev["settlement_asset"], ev["settlement_decimals"], ev["price_decimals"], ev["size_decimals"],
        ev["initial_margin_ppm"], ev["maintenance_margin_ppm"], ev["liquidation_fee_ppm"],
        mark_price=None, price_seq=0, last_snapshot_epoch=0))


def _risk_param_update(stage: MarketStage, book: Booking, ev: dict) -> None:
    check_risk_params(ev)
    market = market_of(book)._replace(
        initial_margin_ppm=ev["initial_margin_ppm"], maintenance_margin_ppm=ev["maintenance_margin_ppm"],
        liquidation_fee_ppm=ev["liquidation_fee_ppm"])
    book.txn.put((book.key, MARKET_RECORD), market)
    stage.check_users(book, market, stage.risk(book.key).open_users())


def _mark_price_update(stage: MarketStage, book: Booking, ev: dict) -> None:
    market = market_of(book)
    if ev["price_seq"] <= market.price_seq:
        return  # stale: accepted with no effect, not an error
    price = ev["price"]
    index = stage.risk(book.key)
    if market.mark_price is None or stage.full_scan:
        users = index.open_users()  # before the first mark every position used its own entry
    else:
        users = index.candidates(price)
    market = market._replace(mark_price=price, price_seq=ev["price_seq"])
    book.txn.put((book.key, MARKET_RECORD), market)
    stage.check_users(book, market, users)


def _trade_fill(stage: MarketStage, book: Booking, ev: dict) -> None:
    buyer, seller = ev["buyer"], ev["seller"]
    if buyer == seller:
        raise Rejected(Reason.SAME_ACCOUNT, "buyer equals seller")
    market = market_of(book)
    take_sequence(book, ev["source"], ev["seq"])
    scale, price, quantity = stage.scale(market), ev["price"], ev["quantity"]
    book_side(book, market, scale, buyer, quantity, price, ev["buyer_fee"])
    book_side(book, market, scale, seller, -quantity, price, ev["seller_fee"])
    stage.check_users(book, market, sorted((buyer, seller)))


def _funding_rate_snapshot(stage: MarketStage, book: Booking, ev: dict) -> None:
    market = market_of(book)
    expected = market.last_snapshot_epoch + 1
    if ev["epoch"] != expected:
        raise Rejected(Reason.EPOCH_GAP, f"expected epoch {expected}")
    book.txn.put((book.key, SNAPSHOT, ev["epoch"]), FundingSnapshot(ev["rate_ppb"], ev["price"], False))
    book.txn.put((book.key, MARKET_RECORD), market._replace(last_snapshot_epoch=expected))


def _funding_epoch_settle(stage: MarketStage, book: Booking, ev: dict) -> None:
    market = market_of(book)
    record = (book.key, SNAPSHOT, ev["epoch"])
    snapshot = book.txn.get(record)
    if snapshot is None:
        raise Rejected(Reason.EPOCH_NOT_SNAPSHOT, f"epoch {ev['epoch']} has no snapshot")
    if snapshot.settled:
        raise Rejected(Reason.EPOCH_SETTLED, f"epoch {ev['epoch']} is settled")
    market_id, asset, scale = book.key, market.settlement_asset, stage.scale(market)
    pool = accounts.funding_pool(market_id)
    users = stage.risk(market_id).open_users()
    for user in users:
        size = position_of(book, user).size
        payment = scale.funding(size, snapshot.price, snapshot.rate_ppb)
        # rate > 0: longs pay shorts; rate < 0: the reverse.
        if (size > 0) == (snapshot.rate_ppb > 0):
            book.transfer(pool, accounts.margin(user, market_id), asset, payment, "funding")
        else:
            book.transfer(accounts.margin(user, market_id), pool, asset, payment, "funding")
    # What rounding left in the pool goes to (or comes from) the insurance fund (AC-20).
    book.transfer(accounts.insurance(market_id), pool, asset, book.balance(pool, asset), "funding_sweep")
    assert book.balance(pool, asset) == 0
    book.txn.put(record, snapshot._replace(settled=True))
    stage.check_users(book, market, users)


def _open_liquidation(book: Booking, liquidation_id: str) -> tuple[tuple, Liquidation]:
    record = (book.key, LIQUIDATION, liquidation_id)
    liquidation = book.txn.get(record)
    if liquidation is None or not liquidation.open:
        raise Rejected(Reason.INVALID_EVENT, f"no open liquidation {liquidation_id} in {book.key}")
    return record, liquidation


def _liquidation_fill(stage: MarketStage, book: Booking, ev: dict) -> None:
    liquidated, counterparty = ev["liquidated_user"], ev["counterparty"]
    if liquidated == counterparty:
        raise Rejected(Reason.SAME_ACCOUNT, "liquidated_user equals counterparty")
    market = market_of(book)
    take_sequence(book, ev["source"], ev["seq"])
    _, liquidation = _open_liquidation(book, ev["liquidation_id"])
    if liquidation.user != liquidated:
        raise Rejected(Reason.INVALID_EVENT, "liquidation belongs to another user")
    size, quantity, price = position_of(book, liquidated).size, ev["quantity"], ev["price"]
    if size == 0 or quantity > abs(size):
        raise Rejected(Reason.LIQUIDATION_SIDE_MISMATCH, f"position size is {size}")
    scale, market_id, asset = stage.scale(market), book.key, market.settlement_asset
    closing = -quantity if size > 0 else quantity  # the liquidated side closes toward flat

    def book_liquidated() -> None:
        book_side(book, market, scale, liquidated, closing, price, 0)
        margin_account = accounts.margin(liquidated, market_id)
        penalty = ppm_of(scale.notional(quantity, price), market.liquidation_fee_ppm)
        penalty = min(penalty, max(0, book.balance(margin_account, asset)))
        book.transfer(accounts.insurance(market_id), margin_account, asset, penalty, "liquidation_penalty")

    # The buyer's side is booked first, as for a trade fill.
    if closing > 0:
        book_liquidated()
        book_side(book, market, scale, counterparty, -closing, price, ev["counterparty_fee"])
    else:
        book_side(book, market, scale, counterparty, -closing, price, ev["counterparty_fee"])
        book_liquidated()
    stage.check_users(book, market, sorted((liquidated, counterparty)))


def _liquidation_completed(stage: MarketStage, book: Booking, ev: dict) -> None:
    market = market_of(book)
    record, liquidation = _open_liquidation(book, ev["liquidation_id"])
    user, market_id, asset = liquidation.user, book.key, market.settlement_asset
    position = position_of(book, user)
    if position.size != 0:
        raise Rejected(Reason.LIQUIDATION_NOT_FLAT, f"position size is {position.size}")
    margin_account = accounts.margin(user, market_id)
    deficit = -book.balance(margin_account, asset)
    if deficit > 0:
        cover = min(deficit, max(0, book.balance(accounts.insurance(market_id), asset)))
        book.transfer(margin_account, accounts.insurance(market_id), asset, cover, "insurance_cover")
        if deficit > cover:
            # Left as a debt on the margin; socialised loss or ADL is the operator's call.
            book.signals.append(Signal("DeficitUncovered", market_id, user, amount=deficit - cover))
    book.txn.put(record, liquidation._replace(open=False))
    # The reduce-only flag stays; the position can be liquidated again later (AC-31).
    put_position(book, user, position._replace(liquidation_id=None))


def _margin_credited(stage: MarketStage, book: Booking, ev: dict) -> None:
    market = market_of(book)
    if ev["asset"] != market.settlement_asset:
        raise Rejected(Reason.INVALID_EVENT, f"{book.key} settles in {market.settlement_asset}")
    user = ev["user"]
    book.transfer(accounts.margin(user, book.key), accounts.transit(ev["asset"]), ev["asset"],
                  ev["amount"], "margin_in")
    stage.check_users(book, market, [user])


def _margin_withdraw_requested(stage: MarketStage, book: Booking, ev: dict) -> None:
    market = market_of(book)
    user, amount, market_id, asset = ev["user"], ev["amount"], book.key, market.settlement_asset
    margin_account = accounts.margin(user, market_id)
    position, scale = position_of(book, user), stage.scale(market)
    available = book.balance(margin_account, asset)
    if position.size:
        mark = position.entry_price if market.mark_price is None else market.mark_price
        available += min(0, scale.pnl(position.size, position.entry_price, mark))
        available -= ppm_of(scale.notional(position.size, mark), market.initial_margin_ppm)
    if amount > available:
        raise Rejected(Reason.INSUFFICIENT_MARGIN, f"withdrawable margin is {available}")
    book.transfer(accounts.transit(asset), margin_account, asset, amount, "margin_out")
    book.emitted.append(internal_event(ev, "MarginReturned", market_id, transfer_id=ev["transfer_id"],
                                       user=user, asset=asset, amount=amount))
    stage.check_users(book, market, [user])


def _insurance_funded(stage: MarketStage, book: Booking, ev: dict) -> None:
    asset = market_of(book).settlement_asset
    book.transfer(accounts.insurance(book.key), accounts.treasury(asset), asset, ev["amount"],
                  "insurance_funded")


MarketStage.handlers = {
    "MarketListed": _market_listed,
    "RiskParamUpdate": _risk_param_update,
    "MarkPriceUpdate": _mark_price_update,
    "TradeFill": _trade_fill,
    "FundingRateSnapshot": _funding_rate_snapshot,
    "FundingEpochSettle": _funding_epoch_settle,
    "LiquidationFill": _liquidation_fill,
    "LiquidationCompleted": _liquidation_completed,
    "MarginCredited": _margin_credited,
    "MarginWithdrawRequested": _margin_withdraw_requested,
    "InsuranceFunded": _insurance_funded,
}
