"""A scenario driver for the property tests: mostly valid, meaningful event sequences, plus junk.

`Driver(data).run()` draws events interactively from hypothesis' `st.data()`, looking at the
ledger's state as it goes (funded users, open positions, liquidation ids from signals, the next
`seq` of each source, the last `price_seq` and funding epoch of each market), so most events book:
listed markets, deposits and margin transfers, fills between funded users, marks that random-walk
or land right on a position's initial or maintenance margin line, funding snapshots and settles,
liquidation fills and completions, withdrawals and transfers. A minority is junk with a known
reason code (missing fields, wrong types, bools, floats, bad charset, values >= 10^38, negative
amounts, forged internal events, sequence and epoch errors), exact resends and conflicting resends.

Every submitted event is handed to a `check(step)` callback with its outcomes; the tests say what
to check. Everything numeric the tests recompute (rounding, margins, funding) is recomputed here
independently of streams/core, with `Fraction` (whose `round` is half to even).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from hypothesis import event as note
from hypothesis import strategies as st

from streams.core.ledger import Ledger
from streams.core.model import LedgerHalt, Outcome

ASSET_DECIMALS = {"USDT": 6, "BTC": 8, "ETH": 18, "JPY": 0}
# Code-point order: "Carol" < "alice" < "bob" < "d.4" < "e_5", so user-id order is not insertion order.
USERS = ("alice", "bob", "Carol", "d.4", "e_5")
MARKETS = ("BTC-PERP", "ETH.PERP", "sol_3")
UNLISTED = "nope-PERP"
SOURCES = ("me", "me-2")
DAY_US = 86_400 * 1_000_000
WINDOW_US = 7 * DAY_US  # the ledger's default dedup window
T0 = 1_700_000_000_000_000
VALUE_LIMIT = 10**38
LONG_MAX = 2**63 - 1
PPM = 10**6

# Field kinds, from the spec's tables (§4), kept apart from streams/core on purpose.
POSITIVE = frozenset({"amount", "price", "quantity"})
SIGNED = frozenset({"buyer_fee", "seller_fee", "counterparty_fee"})
DECIMALS = frozenset({"settlement_decimals", "price_decimals", "size_decimals"})
LONGS = frozenset({"initial_margin_ppm", "maintenance_margin_ppm", "liquidation_fee_ppm", "rate_ppb",
                   "seq", "epoch", "price_seq", "ts_us"}) | DECIMALS
CHARSET = frozenset({"event_id", "source", "deposit_id", "withdrawal_id", "transfer_id", "trade_id", "user",
                     "asset", "market", "from_user", "to_user", "buyer", "seller", "liquidated_user",
                     "counterparty", "settlement_asset"})
ACCOUNT_TYPES = frozenset({"DepositInitiated", "DepositConfirmed", "WithdrawalRequested", "WithdrawalConfirmed",
                           "WithdrawalRejected", "TransferRequested", "TransferCredited",
                           "MarginTransferRequested", "MarginReturned"})
ENVELOPE = ("type", "event_id", "source", "ts_us")


def stage_and_key(event: dict) -> tuple[str, str]:
    """The (stage, key) an event is deduplicated under."""
    if event["type"] in ACCOUNT_TYPES:
        key_field = {"TransferRequested": "from_user", "TransferCredited": "to_user"}.get(event["type"], "user")
        return "account", event[key_field]
    return "market", event["market"]


def payload_of(event: dict) -> tuple:
    """What a batch's payload must be: envelope, then the fields in spec order (as built here)."""
    rest = [v for k, v in event.items() if k not in ENVELOPE and k != "origin_key"]
    return (event["type"], event["event_id"], event["source"], event["ts_us"], *rest)


# Independent arithmetic (spec §1) -----------------------------------------------------------------


@dataclass
class MarketModel:
    name: str
    asset: str
    sd: int
    pd: int
    zd: int
    im: int
    mm: int
    fee: int
    ref_price: int
    ref_qty: int
    listed: bool = False
    mark: int | None = None
    price_seq: int = 0
    epochs: int = 0
    snapshots: dict[int, tuple[int, int]] = field(default_factory=dict)  # epoch -> (rate_ppb, price)
    settled: set[int] = field(default_factory=set)

    @property
    def k(self) -> Fraction:
        return Fraction(10**self.sd, 10 ** (self.pd + self.zd))

    def price(self) -> int:
        return self.mark if self.mark is not None else self.ref_price

    def notional(self, size: int, price: int) -> int:
        return round(abs(size) * price * self.k)

    def pnl(self, size: int, entry: int, exit_price: int) -> int:
        return round(size * (exit_price - entry) * self.k)

    def funding(self, size: int, price: int, rate_ppb: int) -> int:
        return round(abs(size) * price * abs(rate_ppb) * self.k / 10**9)

    def margin_lines(self, size: int, entry: int, margin: int) -> tuple[int, int, int]:
        """(equity, im, mm) of a position, with the entry as mark before the first mark (§7)."""
        mark = entry if self.mark is None else self.mark
        notional = self.notional(size, mark)
        im = round(Fraction(notional * self.im, PPM))
        mm = round(Fraction(notional * self.mm, PPM))
        return margin + self.pnl(size, entry, mark), im, mm

    def crossing(self, size: int, entry: int, margin: int, ratio_ppm: int) -> Fraction | None:
        """The mark at which equity equals the margin line `ratio_ppm`, before rounding."""
        k, r = self.k, Fraction(ratio_ppm, PPM)
        if size > 0:
            slope = size * k * (1 - r)
            return None if slope == 0 else (size * entry * k - margin) / slope
        held = -size
        return (margin + held * entry * k) / (held * k * (1 + r))


# The driver -------------------------------------------------------------------------------------


@dataclass
class Step:
    kind: str  # valid | junk | resend | conflict | late
    event: Any
    outcomes: list[Outcome]  # empty when the ledger halted (LedgerHalt)
    expect: str | None  # a reason code, "duplicate", "applied", or None when not predicted
    before: tuple[dict, dict] | None  # copies of both stage stores before the event
    driver: Driver
    # positions ((market, user) -> (size, entry, state)) and balances before the event
    view_before: tuple[dict, dict] | None = None

    @property
    def ledger(self) -> Ledger:
        return self.driver.ledger


def _mix(**weights: int) -> tuple[str, ...]:
    return tuple(kind for kind, weight in weights.items() for _ in range(weight))


MIXES = {
    # Weighted by repetition; hypothesis shrinks toward the first entry.
    "default": _mix(fill=7, mark=6, liq_fill=4, liq_done=2, margin_in=2, margin_out=2, deposit=1, withdrawal=1,
                    withdrawal_resolve=1, transfer=1, snapshot=2, settle=2, risk=1, insurance=1, list=1,
                    margin_to_line=1, junk=4, resend=2, conflict=1, late=1),
    # Risk heavy: marks across margin lines, fills, liquidations, margin moves, risk param changes.
    "risk": _mix(mark=10, fill=6, liq_fill=4, liq_done=2, margin_in=2, margin_out=2, margin_to_line=3, snapshot=1,
                 settle=2, risk=2, insurance=1, junk=1),
}

TICKS = (1_000, 1, 0, 1_000_000, 1_000, 60_000_000, 1, 3_600_000_000, 1_000_000, 1_000,
         8 * DAY_US, 1, 1_000_000, 250_000)


class Driver:
    def __init__(self, data: Any, *, mix: str = "default", max_steps: int = 60,
                 check: Callable[[Step], None] | None = None, snapshots: bool = False,
                 shadow: Ledger | None = None) -> None:
        self.data = data
        self.mix = MIXES[mix]
        self.max_steps = max_steps
        self.check = check
        self.snapshots = snapshots
        self.shadow = shadow  # a ledger run in lockstep; its outcomes must be identical
        self.ledger = Ledger()
        self.t = T0
        self.n = 0
        self.users: tuple[str, ...] = ()
        self.markets: dict[str, MarketModel] = {}
        self.seq: dict[tuple[str, str], int] = {}
        self.liquidations: dict[str, tuple[str, str]] = {}  # open liquidation id -> (market, user)
        self.finished_liquidations: list[str] = []
        self.liquidation_owner: dict[str, tuple[str, str]] = {}  # every liquidation id ever triggered
        self.reduce_only: set[tuple[str, str]] = set()  # (market, user), from the signals
        self.pending_deposits: list[dict] = []
        self.confirmed_deposits: list[dict] = []
        self.pending_withdrawals: list[dict] = []
        self.resolved_withdrawals: list[dict] = []
        self.history: list[tuple[str, Any]] = []  # (kind, event) of every producer event submitted
        self.trace: list[tuple[Any, list[Outcome] | None]] = []  # None: the ledger halted
        self.accepted: dict[tuple[str, str, str], dict] = {}  # (stage, key, event_id) -> event
        self.max_ts: dict[tuple[str, str], int] = {}
        self.halted = False
        self._balances: dict | None = None
        self._positions: dict | None = None

    # Drawing -------------------------------------------------------------------------------------

    def draw(self, strategy: st.SearchStrategy) -> Any:
        return self.data.draw(strategy)

    def choice(self, options: Any) -> Any:
        return self.data.draw(st.sampled_from(tuple(options)))

    def between(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, max(lo, hi)))

    def flip(self) -> bool:
        return self.data.draw(st.booleans())

    # Ledger state, read through the public API -------------------------------------------------

    def balances(self) -> dict[tuple[str, str], int]:
        if self._balances is None:
            self._balances = self.ledger.balances()
        return self._balances

    def positions(self) -> dict[tuple[str, str], tuple[int, int, str]]:
        if self._positions is None:
            self._positions = {(p.market, p.user): (p.size, p.entry_price, p.state)
                               for p in self.ledger.positions()}
        return self._positions

    def size(self, market: str, user: str) -> int:
        return self.positions().get((market, user), (0, 0, ""))[0]

    def margin(self, market: str, user: str) -> int:
        asset = self.markets[market].asset
        return self.balances().get((f"user:{user}:margin:{market}", asset), 0)

    def wallet(self, user: str, asset: str) -> int:
        return self.balances().get((f"user:{user}:wallet:{asset}", asset), 0)

    def listed(self) -> list[MarketModel]:
        return [m for m in self.markets.values() if m.listed]

    # Events ----------------------------------------------------------------------------------------

    def tick(self) -> int:
        self.t += self.choice(TICKS)
        return self.t

    def ev(self, type_: str, source: str, **fields: Any) -> dict:
        self.n += 1
        return {"type": type_, "event_id": f"ev{self.n}", "source": source, "ts_us": self.tick(), **fields}

    def submit(self, event: Any, kind: str = "valid", expect: str | None = None) -> Step:
        before = view_before = None
        if self.snapshots:
            before = (dict(self.ledger.account.store.data), dict(self.ledger.market.store.data))
            view_before = (self.positions(), self.balances())
        self.history.append((kind, event))
        try:
            outcomes = self.ledger.submit(event)
        except LedgerHalt:
            # A balance reached 10^38 on an internal credit: the partition stops (spec §8).
            self.halted = True
            self.trace.append((event, None))
            if self.shadow is not None:
                try:
                    self.shadow.submit(event)
                except LedgerHalt:
                    pass
                else:
                    raise AssertionError("only one of the two ledgers halted") from None
            return Step(kind, event, [], expect, before, self, view_before)
        if self.shadow is not None:
            shadow_outcomes = self.shadow.submit(event)
            assert shadow_outcomes == outcomes, (event, outcomes, shadow_outcomes)
        self.trace.append((event, outcomes))
        self._balances = self._positions = None
        self._observe(event, outcomes)
        step = Step(kind, event, outcomes, expect, before, self, view_before)
        if self.check is not None:
            self.check(step)
        return step

    def _observe(self, event: Any, outcomes: list[Outcome]) -> None:
        """Follow what the ledger did: the driver's model of ids, counters and flags."""
        for outcome in outcomes:
            note(f"{outcome.event_type}: {outcome.status} {outcome.reason or ''}".strip())
            for signal in outcome.signals:
                note(f"signal {signal.type}")
                where = (signal.market, signal.user)
                if signal.type == "ReduceOnlyEntered":
                    self.reduce_only.add(where)
                elif signal.type == "ReduceOnlyExited":
                    self.reduce_only.discard(where)
                elif signal.type == "LiquidationTriggered":
                    self.liquidations[signal.liquidation_id] = where
                    self.liquidation_owner[signal.liquidation_id] = where
        first = outcomes[0]
        if first.status != "applied":
            return
        stage, key = stage_and_key(event)
        self.accepted[(stage, key, event["event_id"])] = event
        self.max_ts[(stage, key)] = max(self.max_ts.get((stage, key), event["ts_us"]), event["ts_us"])
        type_ = event["type"]
        market = self.markets.get(event.get("market", ""))
        if type_ == "MarketListed":
            assert market is not None, "the driver lists only markets it knows"
            market.listed = True
            market.asset, market.sd = event["settlement_asset"], event["settlement_decimals"]
            market.pd, market.zd = event["price_decimals"], event["size_decimals"]
            market.im, market.mm = event["initial_margin_ppm"], event["maintenance_margin_ppm"]
            market.fee = event["liquidation_fee_ppm"]
        elif type_ == "RiskParamUpdate":
            market.im, market.mm = event["initial_margin_ppm"], event["maintenance_margin_ppm"]
            market.fee = event["liquidation_fee_ppm"]
        elif type_ == "MarkPriceUpdate" and event["price_seq"] > market.price_seq:
            market.mark, market.price_seq = event["price"], event["price_seq"]
        elif type_ in ("TradeFill", "LiquidationFill"):
            self.seq[(event["market"], event["source"])] = event["seq"]
        elif type_ == "FundingRateSnapshot":
            market.epochs = event["epoch"]
            market.snapshots[event["epoch"]] = (event["rate_ppb"], event["price"])
        elif type_ == "FundingEpochSettle":
            market.settled.add(event["epoch"])
        elif type_ == "LiquidationCompleted":
            self.liquidations.pop(event["liquidation_id"])
            self.finished_liquidations.append(event["liquidation_id"])
        elif type_ == "DepositInitiated":
            self.pending_deposits.append(event)
        elif type_ == "DepositConfirmed":
            self.pending_deposits = [d for d in self.pending_deposits
                                     if (d["user"], d["deposit_id"]) != (event["user"], event["deposit_id"])]
            self.confirmed_deposits.append(event)
        elif type_ == "WithdrawalRequested":
            self.pending_withdrawals.append(event)
        elif type_ in ("WithdrawalConfirmed", "WithdrawalRejected"):
            ident = (event["user"], event["withdrawal_id"])
            self.resolved_withdrawals += [w for w in self.pending_withdrawals
                                          if (w["user"], w["withdrawal_id"]) == ident]
            self.pending_withdrawals = [w for w in self.pending_withdrawals
                                        if (w["user"], w["withdrawal_id"]) != ident]

    def expect_redelivery(self, event: dict) -> str | None:
        """What the dedup store must say about an id seen before (spec §4, §8), if predictable."""
        stage, key = stage_and_key(event)
        max_ts = self.max_ts.get((stage, key))
        if max_ts is None:
            return None
        cutoff = max_ts - WINDOW_US
        seen = self.accepted.get((stage, key, event["event_id"]))
        if seen is not None and seen["ts_us"] >= cutoff:
            return "duplicate" if seen == event else "IDEMPOTENCY_CONFLICT"
        if event["ts_us"] < cutoff:
            return "EVENT_TOO_OLD"
        return None

    # The run -------------------------------------------------------------------------------------

    def run(self) -> Driver:
        self.setup()
        for _ in range(self.between(0, self.max_steps)):
            if self.halted:
                break
            getattr(self, "gen_" + self.choice(self.mix))()
        return self

    def setup(self) -> None:
        """List markets, fund users' wallets and move margin into every market."""
        first_asset = self.choice(("USDT", "BTC", "ETH", "JPY"))
        for name in MARKETS[: self.between(1, 3)]:
            # Markets mostly share the settlement asset: isolation (AC-02) is then a real question.
            self.gen_list(name, self.choice((first_asset, first_asset, "USDT", "ETH", "JPY")))
        self.users = USERS[: self.between(2, len(USERS))]
        plans: dict[tuple[str, str], int] = {}
        for user in self.users:
            for market in self.listed():
                ratio = self.choice((150, 40, 300, 1000, 15, 3000))
                plans[(user, market.name)] = max(1, self.ref_notional(market) * ratio // 1000)
        for user in self.users:
            for asset in sorted({m.asset for m in self.listed()}):
                need = sum(v for (u, m), v in plans.items() if u == user and self.markets[m].asset == asset)
                self.submit(self.ev("DepositConfirmed", "custody", deposit_id=f"d{self.n}", user=user,
                                    asset=asset, amount=2 * need + 10 ** ASSET_DECIMALS[asset]))
        for (user, market), amount in plans.items():
            self.submit(self.ev("MarginTransferRequested", "api", transfer_id=f"m{self.n}", user=user,
                                market=market, asset=self.markets[market].asset, amount=amount))
        for market in self.listed():
            if self.flip():
                self.submit(self.ev("InsuranceFunded", "treasury", market=market.name,
                                    amount=max(1, self.ref_notional(market) // 20)))

    def ref_notional(self, market: MarketModel) -> int:
        return max(1, market.notional(market.ref_qty, market.ref_price))

    def amount_near(self, market: MarketModel) -> int:
        return max(1, self.ref_notional(market) * self.choice((100, 10, 500, 1, 2000)) // 1000)

    def pick_market(self) -> MarketModel | None:
        listed = self.listed()
        return self.choice(listed) if listed else None

    def near(self, price: int, permille: int) -> int:
        spread = price * permille // 1000
        return max(1, price + self.between(-spread, spread))

    def fee(self, market: MarketModel, quantity: int, price: int) -> int:
        ppm = self.choice((0, 500, 200, -100, 1000, 0, 7))
        return market.notional(quantity, price) * ppm // PPM

    def risk_params(self) -> tuple[int, int, int]:
        im = self.choice((100_000, 50_000, 200_000, PPM, 20_000, 500_000, 333_333))
        mm = max(2, im // self.choice((2, 3, 5, 10)) - self.between(0, 3))
        fee = max(1, mm // self.choice((2, 4, 10, 1000)))
        return im, mm, fee

    def other_user(self, user: str) -> str:
        return self.choice([u for u in self.users if u != user] or [u for u in USERS if u != user])

    def a_user(self) -> str:
        # Now and then a user that never funded anything: its first fill is a margin call.
        return self.choice((*self.users, USERS[-1]))

    # Generators: each builds one event (or falls back to another kind) and submits it -----------

    def gen_list(self, name: str | None = None, asset: str | None = None) -> None:
        if name is None:
            name = self.choice(MARKETS)
            if name in self.markets and self.markets[name].listed:
                market = self.markets[name]
                im, mm, fee = self.risk_params()
                self.submit(self.ev("MarketListed", "admin", market=name, settlement_asset=market.asset,
                                    settlement_decimals=market.sd, price_decimals=market.pd,
                                    size_decimals=market.zd, initial_margin_ppm=im, maintenance_margin_ppm=mm,
                                    liquidation_fee_ppm=fee), expect="MARKET_EXISTS")
                return
        asset = asset or self.choice(("USDT", "ETH", "JPY", "BTC"))
        pd, zd = self.choice((2, 0, 1, 4, 8)), self.choice((3, 0, 1, 6, 8))
        im, mm, fee = self.risk_params()
        exp = pd + self.choice((2, 0, 1, 3, 4, -1))
        ref_price = self.between(1, 99) * 10 ** max(0, exp)
        ref_qty = self.between(1, 20) * 10 ** max(0, zd + self.choice((0, -1, -2, 1, -3)))
        self.markets[name] = MarketModel(name, asset, ASSET_DECIMALS[asset], pd, zd, im, mm, fee, ref_price,
                                         ref_qty)
        self.submit(self.ev("MarketListed", "admin", market=name, settlement_asset=asset,
                            settlement_decimals=ASSET_DECIMALS[asset], price_decimals=pd, size_decimals=zd,
                            initial_margin_ppm=im, maintenance_margin_ppm=mm, liquidation_fee_ppm=fee))

    def build_fill(self, market: MarketModel) -> dict:
        buyer = self.a_user()
        seller = self.other_user(buyer)
        mode = self.choice(("random", "close", "small", "random", "close"))
        buyer_size, seller_size = self.size(market.name, buyer), self.size(market.name, seller)
        if mode == "close" and buyer_size < 0:
            quantity = -buyer_size
        elif mode == "close" and seller_size > 0:
            quantity = seller_size
        elif mode == "small":
            quantity = self.between(1, 3)
        else:
            quantity = self.between(1, 2 * market.ref_qty)
        price = self.near(market.price(), 40)
        source = self.choice(SOURCES)
        return self.ev("TradeFill", source, market=market.name, trade_id=f"t{self.n}",
                       seq=self.seq.get((market.name, source), 0) + 1, price=price, quantity=quantity,
                       buyer=buyer, seller=seller, buyer_fee=self.fee(market, quantity, price),
                       seller_fee=self.fee(market, quantity, price))

    def gen_fill(self) -> None:
        market = self.pick_market()
        if market is not None:
            self.submit(self.build_fill(market))

    def target_price(self, market: MarketModel, user: str | None = None) -> int | None:
        """A mark right at an open position's initial or maintenance line, within rounding reach."""
        open_positions = sorted((u, s, e) for (m, u), (s, e, _) in self.positions().items()
                                if m == market.name and user in (None, u))
        if not open_positions:
            return None
        user, size, entry = self.choice(open_positions)
        ratio = self.choice((market.mm, market.im))
        crossing = market.crossing(size, entry, self.margin(market.name, user), ratio)
        if crossing is None or crossing < 1:
            return None
        # One price unit moves equity by |size| * k: reach over every rounding of the three terms,
        # or land within a few price units of the exact crossing.
        reach = min(10**6, max(2, int(3 / (abs(size) * market.k)) + 1)) if self.flip() else 2
        return max(1, int(crossing) + self.between(-reach, reach))

    def build_mark(self, market: MarketModel) -> tuple[dict, str | None]:
        mode = self.choice(("target", "walk", "target", "target", "jump", "stale", "walk"))
        price = None
        if mode == "target":
            price = self.target_price(market)
        if price is None:
            price = self.near(market.price(), 600 if mode == "jump" else 120)
        if mode == "stale" and market.price_seq >= 1:
            price_seq = self.between(1, market.price_seq)
        else:
            price_seq = market.price_seq + self.choice((1, 1, 2, 5))
        return self.ev("MarkPriceUpdate", "oracle", market=market.name, price=price, price_seq=price_seq), None

    def follow_with_mark(self, market: MarketModel, user: str | None = None) -> None:
        """Now and then, right after a margin changed, a mark at the new line: an index entry
        left as it was before the change would miss it."""
        if self.halted or not self.flip():
            return
        price = self.target_price(market, user)
        if price is not None:
            self.submit(self.ev("MarkPriceUpdate", "oracle", market=market.name, price=price,
                                price_seq=market.price_seq + 1))

    def gen_mark(self) -> None:
        market = self.pick_market()
        if market is not None:
            self.submit(*self.build_mark(market))

    def gen_snapshot(self) -> None:
        market = self.pick_market()
        if market is None:
            return
        mode = self.choice(("next", "next", "next", "gap", "repeat"))
        epoch = market.epochs + {"next": 1, "gap": 2, "repeat": 0}[mode]
        expect = None if mode == "next" or epoch < 1 else "EPOCH_GAP"
        # Up to 5% of the notional per epoch: funding alone moves positions across their lines.
        rate = self.choice((0, self.between(-2_000_000, 2_000_000), 100_000, -100_000,
                            self.between(-50_000_000, 50_000_000)))
        self.submit(self.ev("FundingRateSnapshot", "funding", market=market.name, epoch=epoch, rate_ppb=rate,
                            price=self.near(market.price(), 20)), expect=expect)

    def gen_settle(self) -> None:
        market = self.pick_market()
        if market is None:
            return
        open_epochs = [e for e in range(1, market.epochs + 1) if e not in market.settled]
        mode = self.choice(("open", "open", "open", "settled", "unknown"))
        if mode == "open" and not open_epochs:
            self.gen_snapshot()
            open_epochs = [e for e in range(1, market.epochs + 1) if e not in market.settled]
        if mode == "open" and open_epochs:
            epoch, expect = self.choice(open_epochs), None
        elif mode == "settled" and market.settled:
            epoch, expect = self.choice(sorted(market.settled)), "EPOCH_SETTLED"
        else:
            epoch, expect = market.epochs + self.between(1, 3), "EPOCH_NOT_SNAPSHOT"
        self.submit(self.ev("FundingEpochSettle", "funding", market=market.name, epoch=epoch), expect=expect)
        self.follow_with_mark(market)

    def build_liquidation_fill(self, liquidation_id: str, market_name: str, user: str) -> tuple[dict, str | None]:
        market = self.markets[market_name]
        size = self.size(market_name, user)
        mode = self.choice(("all", "part", "all", "part", "too_much"))
        quantity = {"all": abs(size), "part": self.between(1, abs(size)), "too_much": abs(size) + 1}[mode]
        expect = "LIQUIDATION_SIDE_MISMATCH" if mode == "too_much" or size == 0 else None
        price = self.near(market.price(), 30)
        counterparty = self.other_user(user)
        source = self.choice(SOURCES)
        event = self.ev("LiquidationFill", source, market=market_name, liquidation_id=liquidation_id,
                        trade_id=f"lt{self.n}", seq=self.seq.get((market_name, source), 0) + 1, price=price,
                        quantity=max(1, quantity), liquidated_user=user, counterparty=counterparty,
                        counterparty_fee=self.fee(market, max(1, quantity), price))
        return event, expect

    def gen_liq_fill(self) -> None:
        if not self.liquidations:
            return self.gen_mark()
        liquidation_id, (market, user) = self.choice(sorted(self.liquidations.items()))
        if self.size(market, user) == 0 and self.flip():
            return self.gen_liq_done()
        self.submit(*self.build_liquidation_fill(liquidation_id, market, user))
        if liquidation_id in self.liquidations and self.size(market, user) == 0 and self.flip():
            self.submit(self.ev("LiquidationCompleted", "engine", market=market, liquidation_id=liquidation_id))

    def gen_liq_done(self) -> None:
        if not self.liquidations:
            return self.gen_fill()
        flat = [(lid, where) for lid, where in sorted(self.liquidations.items()) if self.size(*where) == 0]
        if flat and self.choice((1, 1, 1, 0)):
            lid, (market, user) = self.choice(flat)
        else:
            lid, (market, user) = self.choice(sorted(self.liquidations.items()))
        expect = None if self.size(market, user) == 0 else "LIQUIDATION_NOT_FLAT"
        self.submit(self.ev("LiquidationCompleted", "engine", market=market, liquidation_id=lid), expect=expect)

    def gen_margin_in(self) -> None:
        market = self.pick_market()
        if market is None:
            return
        user = self.a_user()
        mode = self.choice(("ok", "ok", "ok", "unlisted", "wrong_asset", "too_much"))
        name, asset = market.name, market.asset
        if mode == "unlisted":
            name = UNLISTED
        elif mode == "wrong_asset":
            asset = self.choice([a for a in ASSET_DECIMALS if a != market.asset])
        wallet = self.wallet(user, asset)
        amount = wallet + 1 if mode == "too_much" else self.between(1, max(1, wallet // 2))
        expect = "INSUFFICIENT_BALANCE" if amount > wallet else None
        self.submit(self.ev("MarginTransferRequested", "api", transfer_id=f"m{self.n}", user=user, market=name,
                            asset=asset, amount=amount), expect=expect)

    def gen_margin_out(self) -> None:
        market = self.pick_market()
        if market is None:
            return
        user = self.a_user()
        margin = self.margin(market.name, user)
        size, entry, _ = self.positions().get((market.name, user), (0, 0, ""))
        available = margin
        if size:
            mark = entry if market.mark is None else market.mark
            available += min(0, market.pnl(size, entry, mark)) - market.margin_lines(size, entry, margin)[1]
        mode = self.choice(("some", "all", "over", "some"))
        if mode == "over" or available < 1:
            amount, expect = max(1, available + 1), "INSUFFICIENT_MARGIN"
        elif mode == "all":  # exactly the withdrawable amount: margin + min(0, upnl) - im (spec §4)
            amount, expect = available, "applied"
        else:
            amount, expect = self.between(1, available), None
        self.submit(self.ev("MarginWithdrawRequested", "api", transfer_id=f"mo{self.n}", user=user,
                            market=market.name, amount=amount), expect=expect)
        self.follow_with_mark(market, user)

    def gen_margin_to_line(self) -> None:
        """Top up or draw down a position's margin to within a few units of its im or mm line,
        where rounding decides the state (the only way a 100% margin ratio ever flips)."""
        market = self.pick_market()
        if market is None:
            return
        open_positions = sorted((u, s, e) for (m, u), (s, e, _) in self.positions().items() if m == market.name)
        if not open_positions:
            return self.gen_fill()
        user, size, entry = self.choice(open_positions)
        equity, im, mm = market.margin_lines(size, entry, self.margin(market.name, user))
        delta = self.choice((im, mm)) - equity + self.between(-2, 2)
        if delta > 0:
            wallet = self.wallet(user, market.asset)
            if wallet < delta:
                self.submit(self.ev("DepositConfirmed", "custody", deposit_id=f"d{self.n}", user=user,
                                    asset=market.asset, amount=delta - wallet))
            self.submit(self.ev("MarginTransferRequested", "api", transfer_id=f"m{self.n}", user=user,
                                market=market.name, asset=market.asset, amount=delta))
        elif delta < 0:
            self.submit(self.ev("MarginWithdrawRequested", "api", transfer_id=f"mo{self.n}", user=user,
                                market=market.name, amount=-delta))
        self.follow_with_mark(market, user)

    def an_asset(self) -> str:
        assets = sorted({m.asset for m in self.listed()}) or ["USDT"]
        return self.choice(assets)

    def gen_deposit(self) -> None:
        user, asset = self.a_user(), self.an_asset()
        amount = self.between(1, 10 ** (ASSET_DECIMALS[asset] + 3))
        mode = self.choice(("direct", "initiate", "confirm", "mismatch", "again"))
        if mode in ("confirm", "mismatch") and self.pending_deposits:
            pending = self.choice(self.pending_deposits)
            amount = pending["amount"] + (1 if mode == "mismatch" else 0)
            self.submit(self.ev("DepositConfirmed", "custody", deposit_id=pending["deposit_id"],
                                user=pending["user"], asset=pending["asset"], amount=amount),
                        expect="DEPOSIT_MISMATCH" if mode == "mismatch" else None)
        elif mode == "again" and self.confirmed_deposits:
            done = self.choice(self.confirmed_deposits)
            self.submit(self.ev(self.choice(("DepositConfirmed", "DepositInitiated")), "custody",
                                deposit_id=done["deposit_id"], user=done["user"], asset=done["asset"],
                                amount=done["amount"]), expect="DEPOSIT_RESOLVED")
        else:
            type_ = "DepositInitiated" if mode == "initiate" else "DepositConfirmed"
            self.submit(self.ev(type_, "custody", deposit_id=f"d{self.n}", user=user, asset=asset, amount=amount))

    def gen_withdrawal(self) -> None:
        user, asset = self.a_user(), self.an_asset()
        wallet = self.wallet(user, asset)
        if self.choice((1, 1, 0)):
            amount, expect = self.between(1, max(1, wallet // 3)), None
            if amount > wallet:
                expect = "INSUFFICIENT_BALANCE"
        else:
            amount, expect = wallet + 1, "INSUFFICIENT_BALANCE"
        self.submit(self.ev("WithdrawalRequested", "custody", withdrawal_id=f"w{self.n}", user=user, asset=asset,
                            amount=amount), expect=expect)

    def gen_withdrawal_resolve(self) -> None:
        mode = self.choice(("pending", "pending", "resolved", "unknown", "mismatch"))
        type_ = self.choice(("WithdrawalConfirmed", "WithdrawalRejected"))
        extra = {"reason": "compliance"} if type_ == "WithdrawalRejected" else {}
        if mode in ("pending", "mismatch") and self.pending_withdrawals:
            w, expect = self.choice(self.pending_withdrawals), None
            amount = w["amount"]
            if mode == "mismatch":
                amount, expect = amount + 1, "WITHDRAWAL_MISMATCH"
        elif mode == "resolved" and self.resolved_withdrawals:
            w, expect = self.choice(self.resolved_withdrawals), "WITHDRAWAL_RESOLVED"
            amount = w["amount"]
        else:
            w = {"withdrawal_id": f"w-none{self.n}", "user": self.a_user(), "asset": self.an_asset()}
            amount, expect = 5, "UNKNOWN_WITHDRAWAL"
        self.submit(self.ev(type_, "custody", withdrawal_id=w["withdrawal_id"], user=w["user"], asset=w["asset"],
                            amount=amount, **extra), expect=expect)

    def gen_transfer(self) -> None:
        sender, asset = self.a_user(), self.an_asset()
        receiver = self.other_user(sender)
        wallet = self.wallet(sender, asset)
        amount = self.between(1, max(1, wallet // 2)) if self.choice((1, 1, 0)) else wallet + 1
        self.submit(self.ev("TransferRequested", "api", transfer_id=f"x{self.n}", from_user=sender,
                            to_user=receiver, asset=asset, amount=amount),
                    expect="INSUFFICIENT_BALANCE" if amount > wallet else None)

    def gen_risk(self) -> None:
        market = self.pick_market()
        if market is None:
            return
        im, mm, fee = self.risk_params()
        expect = None
        if self.choice((1, 1, 1, 0)) == 0:
            im, mm, fee = self.choice(((mm, im, fee), (im, mm, mm), (PPM + 1, mm, fee), (im, mm, 0)))
            expect = "INVALID_RISK_PARAMS"
        self.submit(self.ev("RiskParamUpdate", "admin", market=market.name, initial_margin_ppm=im,
                            maintenance_margin_ppm=mm, liquidation_fee_ppm=fee), expect=expect)

    def gen_insurance(self) -> None:
        market = self.pick_market()
        if market is not None:
            self.submit(self.ev("InsuranceFunded", "treasury", market=market.name, amount=self.amount_near(market)))

    def gen_resend(self) -> None:
        valid = [e for kind, e in self.history if kind == "valid"]
        if not valid:
            return self.gen_fill()
        event = self.choice(valid)
        self.submit(event, "resend", self.expect_redelivery(event))

    def gen_conflict(self) -> None:
        valid = [e for kind, e in self.history if kind == "valid"]
        if not valid:
            return self.gen_fill()
        event = dict(self.choice(valid))
        name = self.choice([k for k in event if k in POSITIVE | SIGNED | {"ts_us"}] or ["ts_us"])
        event[name] += 1
        self.submit(event, "conflict", self.expect_redelivery(event))

    def gen_late(self) -> None:
        """An event stamped far in the past: EVENT_TOO_OLD when older than the key's window."""
        market = self.pick_market()
        if market is None:
            return
        event = self.build_fill(market)
        event["ts_us"] -= self.choice((8 * DAY_US, DAY_US, WINDOW_US + 1))
        self.submit(event, "late", self.expect_redelivery(event))

    # Junk ----------------------------------------------------------------------------------------

    def a_base_event(self) -> dict:
        """A well-formed event to break; not submitted as is."""
        market = self.pick_market()
        kind = self.choice(("fill", "mark", "deposit", "transfer", "listed", "snapshot", "margin_out",
                            "withdrawal", "liq_fill", "settle", "risk", "insurance"))
        if market is None or kind == "deposit":
            return self.ev("DepositConfirmed", "custody", deposit_id=f"d{self.n}", user=self.a_user(),
                           asset="USDT", amount=self.between(1, 10**9))
        if kind == "fill":
            return self.build_fill(market)
        if kind == "mark":
            return self.build_mark(market)[0]
        if kind == "transfer":
            return self.ev("TransferRequested", "api", transfer_id=f"x{self.n}", from_user=self.users[0],
                           to_user=self.users[1], asset=market.asset, amount=self.between(1, 1000))
        if kind == "listed":
            return self.ev("MarketListed", "admin", market=f"new{self.n}", settlement_asset="USDT",
                           settlement_decimals=6, price_decimals=2, size_decimals=3, initial_margin_ppm=100_000,
                           maintenance_margin_ppm=50_000, liquidation_fee_ppm=10_000)
        if kind == "snapshot":
            return self.ev("FundingRateSnapshot", "funding", market=market.name, epoch=market.epochs + 1,
                           rate_ppb=self.between(-10**6, 10**6), price=market.price())
        if kind == "margin_out":
            return self.ev("MarginWithdrawRequested", "api", transfer_id=f"mo{self.n}", user=self.users[0],
                           market=market.name, amount=1)
        if kind == "withdrawal":
            return self.ev("WithdrawalRejected", "custody", withdrawal_id=f"w{self.n}", user=self.users[0],
                           asset=market.asset, amount=3, reason="compliance")
        if kind == "liq_fill" and self.liquidations:
            liquidation_id, (name, user) = self.choice(sorted(self.liquidations.items()))
            return self.build_liquidation_fill(liquidation_id, name, user)[0]
        if kind == "settle":
            return self.ev("FundingEpochSettle", "funding", market=market.name, epoch=max(1, market.epochs))
        if kind == "risk":
            return self.ev("RiskParamUpdate", "admin", market=market.name, initial_margin_ppm=100_000,
                           maintenance_margin_ppm=50_000, liquidation_fee_ppm=10_000)
        return self.ev("InsuranceFunded", "treasury", market=market.name, amount=self.amount_near(market))

    def gen_junk(self) -> None:
        mutation = self.choice(("drop", "wrong_type", "charset", "huge", "non_positive", "bounds", "forged",
                                "not_a_dict", "same_account", "unknown_market", "sequence", "edge"))
        if mutation == "not_a_dict":
            return self.submit(self.choice((None, [], "TradeFill", 5, 1.5, ("a",))), "junk", "INVALID_EVENT")
        if mutation == "forged":
            user, asset = self.a_user(), self.an_asset()
            market = self.pick_market()
            forged = self.choice((
                self.ev("TransferCredited", "api", transfer_id="x", to_user=user, asset=asset, amount=10**6),
                self.ev("MarginReturned", "api", transfer_id="x", user=user, asset=asset, amount=10**6),
                self.ev("MarginCredited", "api", transfer_id="x", user=user,
                        market=market.name if market else UNLISTED, asset=asset, amount=10**6),
            ))
            return self.submit(forged, "junk", "INVALID_EVENT")
        event = self.a_base_event()
        fields = [k for k in event if k != "type"]
        expect: str | None = "INVALID_EVENT"
        if mutation == "drop":
            del event[self.choice(list(event))]
        elif mutation == "wrong_type":
            name = self.choice(list(event))
            value = event[name]
            if isinstance(value, int):
                bad = (float(value), True, False, str(value), None, [value], Fraction(value))
            else:
                bad = (1, None, b"x", [], {}, ("x",), 2.5, True)
            event[name] = self.choice(bad)
        elif mutation == "charset":
            names = [k for k in fields if k in CHARSET]
            event[self.choice(names)] = self.choice(("", "a b", "x:y", "é", "a" * 129, "tab\t", "a/b", "ü-1"))
        elif mutation == "huge":
            names = [k for k in fields if k in POSITIVE | SIGNED | LONGS]
            name = self.choice(names)
            if name in POSITIVE | SIGNED:
                event[name] = self.choice((VALUE_LIMIT, -VALUE_LIMIT, VALUE_LIMIT + self.between(0, 10**30),
                                           10**40, -(10**39)))
            else:  # ts_us only upward: a very old ts_us is EVENT_TOO_OLD first
                event[name] = self.choice((LONG_MAX + 1, 2**64) if name == "ts_us" else
                                          (LONG_MAX + 1, -(2**63) - 1, 2**64, -(2**70)))
            expect = "VALUE_OUT_OF_RANGE"
        elif mutation == "non_positive":
            names = [k for k in fields if k in POSITIVE]
            if not names:
                return self.gen_fill()
            event[self.choice(names)] = self.choice((0, -1, -(10**6), -(10**38) + 1))
        elif mutation == "bounds":
            names = [k for k in fields if k in DECIMALS | {"seq", "epoch", "price_seq"}]
            if not names:
                return self.gen_fill()
            name = self.choice(names)
            event[name] = self.choice((19, -1, 100)) if name in DECIMALS else self.choice((0, -1, -(2**63)))
            expect = {"seq": "OUT_OF_ORDER", "epoch": "EPOCH_GAP"}.get(name, "INVALID_EVENT")
        elif mutation == "same_account":
            market = self.pick_market()
            if market is None:
                return self.gen_fill()
            event = self.build_fill(market)
            event["seller"] = event["buyer"]
            expect = "SAME_ACCOUNT"
        elif mutation == "unknown_market":
            if event["type"] in ACCOUNT_TYPES or event["type"] == "MarketListed":
                return self.gen_fill()
            event["market"] = UNLISTED
            expect = "UNKNOWN_MARKET"
        elif mutation == "sequence":
            market = self.pick_market()
            if market is None:
                return self.gen_fill()
            event = self.build_fill(market)
            if event["seq"] > 1 and self.flip():
                event["seq"] -= self.between(1, event["seq"] - 1)
                expect = "OUT_OF_ORDER"
            else:
                event["seq"] += self.between(1, 3)
                expect = "SEQUENCE_GAP"
        elif mutation == "edge":
            # In range but extreme: booked, or rejected by a result out of range; not predicted.
            names = [k for k in fields if k in POSITIVE | SIGNED]
            if not names:
                return self.gen_fill()
            event[self.choice(names)] = self.choice((VALUE_LIMIT - 1, -(VALUE_LIMIT - 1), 10**30))
            expect = None
        self.submit(event, "junk", expect)


def iter_batches(driver: Driver) -> Iterator[tuple[Any, Outcome]]:
    """(the event as applied, its outcome) for every outcome of the run, internal events included."""
    for event, outcomes in driver.trace:
        if outcomes is None:
            continue
        queue = [event]
        for outcome in outcomes:
            current = queue.pop(0)
            queue.extend(outcome.emitted)
            yield current, outcome
