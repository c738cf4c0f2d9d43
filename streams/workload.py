"""A seeded, realistic event workload for PerpLedger (benchmarks, soak tests, replay files).

Everything is a pure function of the seed. The mix is about 60% trade fills, 30% mark prices and 10%
everything else: deposits, withdrawals, transfers, margin moves, insurance top-ups, funding snapshots
and settles, a risk-parameter change per market, and a few percent of duplicates and of deliberately
malformed or refused events (each labelled with the rejection it should get).

Liquidations need feedback: the generator is a driver (`Workload`) that reads the ledger's outcomes
(balances after, positions changed, signals) and answers every `LiquidationTriggered` with
`LiquidationFill`s against a backstop liquidity provider and a `LiquidationCompleted`. `generate()`
runs its own in-process `Ledger` for that feedback, so the events it yields reproduce exactly the same
run when they are fed to a fresh ledger (or written to a file for `perpledger replay`):

    perpledger workload --seed 7 --events 100000 > events.jsonl
    perpledger replay --input events.jsonl --output result.json

Driving your own ledger instead (the benchmark does this):

    workload = Workload(seed=7, n_events=100_000)
    while (event := workload.next_event()) is not None:
        workload.observe(ledger.submit(event))

`n_events` counts the mix only; the setup (markets, insurance, users' deposits and margin) comes first
and is flagged by `Workload.in_setup`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class MarketSpec:
    name: str
    asset: str
    settlement_decimals: int
    price_decimals: int
    size_decimals: int
    initial_margin_ppm: int
    maintenance_margin_ppm: int
    liquidation_fee_ppm: int
    price: float  # initial price in quote units
    weight: float  # share of the fills
    vol_bps: float  # standard deviation of one mark step, in basis points


# Realistic decimals and risk tiers; the 18-decimal DAI market exercises 128-bit amounts.
MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("BTC-PERP", "USDT", 6, 2, 3, 50_000, 25_000, 5_000, 65_000.00, 30, 2.0),
    MarketSpec("ETH-PERP", "USDT", 6, 2, 3, 50_000, 25_000, 5_000, 3_200.00, 20, 3.0),
    MarketSpec("SOL-PERP", "USDT", 6, 3, 1, 100_000, 50_000, 10_000, 150.123, 12, 5.0),
    MarketSpec("XRP-PERP", "USDT", 6, 4, 0, 100_000, 50_000, 10_000, 0.6123, 8, 5.0),
    MarketSpec("DOGE-PERP", "USDT", 6, 5, 0, 200_000, 100_000, 20_000, 0.16234, 7, 6.0),
    MarketSpec("BTC-USDC-PERP", "USDC", 6, 1, 4, 50_000, 25_000, 5_000, 65_000.0, 8, 2.0),
    MarketSpec("ETH-USDC-PERP", "USDC", 6, 2, 2, 50_000, 25_000, 5_000, 3_200.00, 5, 3.0),
    MarketSpec("XAU-PERP", "DAI", 18, 2, 2, 50_000, 20_000, 5_000, 2_350.00, 3, 1.0),
    MarketSpec("PEPE-PERP", "USDT", 6, 10, 0, 250_000, 125_000, 25_000, 0.0000123456, 4, 8.0),
    MarketSpec("EURUSD-PERP", "USDC", 6, 5, 0, 20_000, 10_000, 2_000, 1.08765, 3, 0.5),
)
ASSET_DECIMALS = {"USDT": 6, "USDC": 6, "DAI": 18}


def market_specs(n_markets: int) -> list[MarketSpec]:
    """The first `n_markets` of the table, then synthetic USDT markets."""
    specs = list(MARKETS[:n_markets])
    for i in range(len(specs), n_markets):
        specs.append(MarketSpec(f"ALT{i}-PERP", "USDT", 6, 4, 1, 100_000, 50_000, 10_000, 12.345, 2, 5.0))
    return specs


def rhe(numerator: int, denominator: int) -> int:
    """Round half to even (ledger-spec §1), for the generator's own margin estimates."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        return quotient + 1
    return quotient


@dataclass
class _Market:
    spec: MarketSpec
    num: int  # notional(q, p) = q * p * num / den
    den: int
    log_price: float
    log_anchor: float
    price: int = 0  # last mark, price units
    im_ppm: int = 0  # current initial margin ratio (RiskParamUpdate changes it)
    price_seq: int = 0
    fill_seq: int = 0  # last accepted seq of source "me" (fills and liquidation fills share it)
    last_epoch: int = 0  # last accepted funding snapshot
    settled: list[int] = field(default_factory=list)
    users: list[str] = field(default_factory=list)  # traders with margin here
    lps: list[str] = field(default_factory=list)  # backstop liquidity for liquidations

    def price_units(self, quote: float) -> int:
        return max(1, round(quote * 10**self.spec.price_decimals))

    def notional(self, size: int, price: int) -> int:
        return rhe(abs(size) * price * self.num, self.den)


class Workload:
    """A feedback driver: `next_event()` then `observe(outcomes)` for every event, in order."""

    # Shares of the mix (duplicates and malformed events are part of "other").
    FILL_SHARE = 0.60
    MARK_SHARE = 0.30

    def __init__(
        self,
        seed: int,
        n_events: int,
        n_markets: int = 10,
        n_users: int = 100_000,
        *,
        duplicate_rate: float = 0.01,
        malformed_rate: float = 0.015,
        jump_rate: float = 0.0004,
        funding_epochs: int = 2,
        risk_updates: bool = True,
        lps_per_market: int = 3,
    ) -> None:
        assert n_markets >= 1 and n_users >= 2 and n_events >= 0
        assert duplicate_rate + malformed_rate < 1 - self.FILL_SHARE - self.MARK_SHARE
        self.rng = random.Random(seed)
        self.n_events = n_events
        self.n_users = n_users
        self.duplicate_rate = duplicate_rate
        self.malformed_rate = malformed_rate
        self.jump_rate = jump_rate
        self.lps_per_market = lps_per_market
        self.markets: list[_Market] = []
        for spec in market_specs(n_markets):
            shift = spec.settlement_decimals - spec.price_decimals - spec.size_decimals
            log_price = math.log(spec.price)
            self.markets.append(_Market(spec, 10**max(shift, 0), 10**max(-shift, 0), log_price, log_price,
                                        im_ppm=spec.initial_margin_ppm))
        self.by_name = {m.spec.name: m for m in self.markets}
        total = sum(m.spec.weight for m in self.markets)
        acc, self._fill_cum = 0.0, []
        for m in self.markets:
            acc += m.spec.weight / total
            self._fill_cum.append(acc)
        self.users = [f"u{i:06d}" for i in range(n_users)]
        # Leverage appetite per user, as a fraction of the market's maximum (1 / initial margin).
        self.appetite_ppm: dict[str, int] = {}
        self.user_assets: dict[str, list[str]] = {}
        self.user_markets: dict[str, list[_Market]] = {}

        # What the ledger told us (from journal batches): balances after, positions, liquidations.
        self.balances: dict[str, int] = {}
        self.positions: dict[tuple[str, str], tuple[int, int, str]] = {}
        self._liquidations: deque[list[Any]] = deque()
        self._scheduled: list[tuple[int, int, tuple]] = []  # (due mix step, tiebreak, action)
        self._recent: list[dict] = []  # accepted producer events, for duplicates and conflicts
        self._pending_deposits: set[tuple[str, str]] = set()
        self._confirmed_deposits: list[dict] = []
        self._live_withdrawals: set[tuple[str, str]] = set()
        self._resolved_withdrawals: list[dict] = []

        self.ts_us = T0_US
        self._ids = 0
        self._ties = 0
        self.step = 0  # mix events emitted
        self.in_setup = True
        self._setup = self._setup_events()
        self._last: dict | None = None
        # What the last event should get: (input rejection reason, internal refusal reason) or None.
        self.expected: tuple[str | None, str | None] = (None, None)
        self.category = ""  # what the last event is, for reports
        self.abandoned_liquidations = 0

        if n_events:
            self._schedule_market_events(funding_epochs, risk_updates)

    # Public API --------------------------------------------------------------------------------

    def next_event(self) -> dict | None:
        """The next producer event, or None when the mix is done."""
        self.expected = (None, None)
        event = next(self._setup, None) if self.in_setup else None
        if event is None:
            self.in_setup = False
            if self.step >= self.n_events:
                return None
            self.step += 1
            self.ts_us += self.rng.randint(1, 19)
            event = self._mix_event()
        self._last = event
        return event

    def observe(self, outcomes: Sequence[Any]) -> None:
        """Learn from the outcomes of the last event (`Ledger.submit`'s list)."""
        for outcome in outcomes:
            batch = outcome.batch
            if batch is not None:
                balances = self.balances
                for b in batch.balances:
                    balances[b.account] = b.balance
                for p in batch.positions:
                    key = (p.market, p.user)
                    if p.size == 0 and p.state == "healthy":
                        self.positions.pop(key, None)
                    else:
                        self.positions[key] = (p.size, p.entry_price, p.state)
            for signal in outcome.signals:
                if signal.type == "LiquidationTriggered":
                    # [market, user, liquidation_id, fills left, events sent]
                    parts = 1 + (self.rng.random() < 0.4) + (self.rng.random() < 0.2)
                    self._liquidations.append([signal.market, signal.user, signal.liquidation_id, parts, 0])
        event = self._last
        if not outcomes or outcomes[0].status != "applied" or event is None:
            return
        kind = event["type"]
        if kind in ("TradeFill", "LiquidationFill"):
            self.by_name[event["market"]].fill_seq = event["seq"]
        elif kind == "FundingRateSnapshot":
            market = self.by_name[event["market"]]
            market.last_epoch = event["epoch"]
            self._schedule(self.rng.randint(200, 3000), ("settle", market.spec.name, event["epoch"]))
        elif kind == "FundingEpochSettle":
            self.by_name[event["market"]].settled.append(event["epoch"])
        elif kind == "RiskParamUpdate":
            self.by_name[event["market"]].im_ppm = event["initial_margin_ppm"]
        elif kind == "DepositInitiated":
            self._pending_deposits.add((event["user"], event["deposit_id"]))
        elif kind == "DepositConfirmed":
            self._pending_deposits.discard((event["user"], event["deposit_id"]))
            self._remember(self._confirmed_deposits, event)
        elif kind == "WithdrawalRequested":
            self._live_withdrawals.add((event["user"], event["withdrawal_id"]))
        elif kind in ("WithdrawalConfirmed", "WithdrawalRejected"):
            self._live_withdrawals.discard((event["user"], event["withdrawal_id"]))
            self._remember(self._resolved_withdrawals, event)
        if not self.in_setup:
            self._remember(self._recent, event)

    # Helpers -----------------------------------------------------------------------------------

    def _remember(self, ring: list[dict], event: dict, size: int = 2000) -> None:
        if len(ring) < size:
            ring.append(event)
        else:
            ring[self.rng.randrange(size)] = event

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def _event(self, type_: str, source: str, prefix: str, **fields: Any) -> dict:
        return {"type": type_, "event_id": self._id(prefix), "source": source, "ts_us": self.ts_us, **fields}

    def _schedule(self, delay: int, action: tuple) -> None:
        self._ties += 1
        heapq.heappush(self._scheduled, (self.step + delay, self._ties, action))

    def _schedule_market_events(self, funding_epochs: int, risk_updates: bool) -> None:
        n = self.n_events
        for i, market in enumerate(self.markets):
            for epoch in range(1, funding_epochs + 1):
                due = max(1, n * epoch // (funding_epochs + 1) - 500 + 97 * i)
                self._ties += 1
                heapq.heappush(self._scheduled, (due, self._ties, ("snapshot", market.spec.name)))
            if risk_updates:
                self._ties += 1
                due = max(1, n * (2 * i + 1) // (2 * len(self.markets)))
                heapq.heappush(self._scheduled, (due, self._ties, ("risk", market.spec.name)))

    def _usd(self, asset: str, usd: float) -> int:
        return max(1, int(usd * 10 ** ASSET_DECIMALS[asset]))

    def _margin(self, market: _Market, user: str) -> int:
        return self.balances.get(f"user:{user}:margin:{market.spec.name}", 0)

    def _wallet(self, user: str, asset: str) -> int:
        return self.balances.get(f"user:{user}:wallet:{asset}", 0)

    def _available_margin(self, market: _Market, user: str) -> int:
        """What MarginWithdrawRequested allows: margin + min(0, upnl) - im (ledger-spec §4)."""
        available = self._margin(market, user)
        size, entry, _ = self.positions.get((market.spec.name, user), (0, 0, "healthy"))
        if size:
            mark = market.price
            available += min(0, rhe(size * (mark - entry) * market.num, market.den))
            available -= rhe(market.notional(size, mark) * market.im_ppm, 10**6)
        return available

    def _room(self, market: _Market, user: str, price: int) -> tuple[int, int] | None:
        """(max buy, max sell) in size units for a trader's appetite, None while it is liquidated."""
        size, _, state = self.positions.get((market.spec.name, user), (0, 0, "healthy"))
        if state == "in_liquidation":
            return None
        if state == "reduce_only":
            return max(0, -size), max(0, size)
        cap_notional = max(0, self._margin(market, user)) * self.appetite_ppm[user] // market.im_ppm
        cap = cap_notional * market.den // (price * market.num)
        return max(0, cap - size), max(0, cap + size)

    def _fee(self, notional: int, bps: int) -> int:
        return notional * bps // 10_000 if bps >= 0 else -(notional * -bps // 10_000)

    def _pick_market(self) -> _Market:
        r = self.rng.random()
        for market, edge in zip(self.markets, self._fill_cum, strict=True):
            if r < edge:
                return market
        return self.markets[-1]

    # Setup ---------------------------------------------------------------------------------------

    def _setup_events(self) -> Iterator[dict]:
        rng = self.rng
        for market in self.markets:
            spec = market.spec
            self.ts_us += 10
            yield self._event("MarketListed", "admin", "list-", market=spec.name, settlement_asset=spec.asset,
                              settlement_decimals=spec.settlement_decimals, price_decimals=spec.price_decimals,
                              size_decimals=spec.size_decimals, initial_margin_ppm=spec.initial_margin_ppm,
                              maintenance_margin_ppm=spec.maintenance_margin_ppm,
                              liquidation_fee_ppm=spec.liquidation_fee_ppm)
            yield self._event("InsuranceFunded", "treasury", "ins-", market=spec.name,
                              amount=self._usd(spec.asset, 2_000_000))
            market.price, market.price_seq = market.price_units(spec.price), 1
            yield self._event("MarkPriceUpdate", "oracle", "mark-", market=spec.name, price=market.price,
                              price_seq=1)
            for k in range(self.lps_per_market):
                lp = f"lp-{spec.name}-{k}"
                market.lps.append(lp)
                self.appetite_ppm[lp] = 100_000
                amount = self._usd(spec.asset, 200_000_000)
                yield self._event("DepositConfirmed", "custody", "dep-", deposit_id=self._id("D"), user=lp,
                                  asset=spec.asset, amount=amount)
                yield self._event("MarginTransferRequested", "api", "mt-", transfer_id=self._id("M"), user=lp,
                                  market=spec.name, asset=spec.asset, amount=amount)
        for user in self.users:
            self.ts_us += rng.randint(5, 15)
            u = rng.random()
            if u < 0.70:
                appetite = rng.uniform(0.05, 0.35)
            elif u < 0.95:
                appetite = rng.uniform(0.35, 0.65)
            else:
                appetite = rng.uniform(0.65, 0.92)
            self.appetite_ppm[user] = int(appetite * 1_000_000)
            n_markets = min(len(self.markets), 1 + (rng.random() < 0.35) + (rng.random() < 0.10))
            mine: list[_Market] = []
            while len(mine) < n_markets:
                market = self._pick_market()
                if market not in mine:
                    mine.append(market)
            self.user_markets[user] = mine
            assets = list(dict.fromkeys(m.spec.asset for m in mine))
            self.user_assets[user] = assets
            for asset in assets:
                amount = self._usd(asset, min(2_000_000.0, rng.lognormvariate(math.log(2_000), 1.1)))
                deposit_id = self._id("D")
                if rng.random() < 0.2:
                    yield self._event("DepositInitiated", "custody", "dep-", deposit_id=deposit_id, user=user,
                                      asset=asset, amount=amount)
                yield self._event("DepositConfirmed", "custody", "dep-", deposit_id=deposit_id, user=user,
                                  asset=asset, amount=amount)
                share = [m for m in mine if m.spec.asset == asset]
                for market in share:
                    market.users.append(user)
                    part = int(amount * rng.uniform(0.3, 0.8)) // len(share)
                    if part > 0:
                        yield self._event("MarginTransferRequested", "api", "mt-", transfer_id=self._id("M"),
                                          user=user, market=market.spec.name, asset=asset, amount=part)

    # The mix -----------------------------------------------------------------------------------

    def _mix_event(self) -> dict:
        while self._liquidations:
            event = self._liquidation_step()
            if event is not None:
                self.category = "liquidation"
                return event
        rng = self.rng
        r = rng.random()
        if r < self.FILL_SHARE:
            self.category = "fill"
            return self._fill()
        if r < self.FILL_SHARE + self.MARK_SHARE:
            self.category = "mark"
            return self._mark()
        r = (r - self.FILL_SHARE - self.MARK_SHARE) / (1 - self.FILL_SHARE - self.MARK_SHARE)
        other = 1 - self.FILL_SHARE - self.MARK_SHARE
        if r < self.duplicate_rate / other and self._recent:
            self.category = "duplicate"
            self.expected = ("duplicate", None)
            return dict(self._recent[rng.randrange(len(self._recent))])
        if r < (self.duplicate_rate + self.malformed_rate) / other:
            self.category = "malformed"
            return self._malformed()
        while self._scheduled and self._scheduled[0][0] <= self.step:
            _, _, action = heapq.heappop(self._scheduled)
            event = self._scheduled_event(action)
            if event is not None:
                self.category = action[0]
                return event
        return self._other()

    def _fill(self) -> dict:
        rng = self.rng
        for _ in range(20):
            market = self._pick_market()
            spec, users = market.spec, market.users
            if len(users) < 2:
                continue
            a, b = users[rng.randrange(len(users))], users[rng.randrange(len(users))]
            if a == b:
                continue
            price = max(1, market.price + round(market.price * rng.uniform(-3, 3) / 10_000))
            room_a, room_b = self._room(market, a, price), self._room(market, b, price)
            if room_a is None or room_b is None:
                continue
            size_a = self.positions.get((spec.name, a), (0, 0, ""))[0]
            if size_a and rng.random() < 0.4:
                a_buys = size_a < 0  # take profit / cut loss
            else:
                a_buys = rng.random() < 0.5
            buyer, seller = (a, b) if a_buys else (b, a)
            max_buy = room_a[0] if a_buys else room_b[0]
            max_sell = room_b[1] if a_buys else room_a[1]
            usd = rng.expovariate(1 / 800)
            want = int(usd * 10 ** (spec.price_decimals + spec.size_decimals) / price) or 1
            quantity = min(want, max_buy, max_sell)
            if quantity < 1:
                continue
            notional = market.notional(quantity, price)
            maker_bps = -1 if rng.random() < 0.3 else 2  # negative: a maker rebate
            buyer_bps, seller_bps = (5, maker_bps) if rng.random() < 0.5 else (maker_bps, 5)
            return self._event("TradeFill", "me", "fill-", market=spec.name, trade_id=self._id("T"),
                               seq=market.fill_seq + 1, price=price, quantity=quantity, buyer=buyer, seller=seller,
                               buyer_fee=self._fee(notional, buyer_bps), seller_fee=self._fee(notional, seller_bps))
        self.category = "mark"  # nobody could trade: the oracle ticks instead
        return self._mark()

    def _mark(self, market: _Market | None = None) -> dict:
        rng = self.rng
        market = market or self.markets[rng.randrange(len(self.markets))]
        spec = market.spec
        if rng.random() < 0.005:  # a late oracle tick: stale, accepted with no effect
            self.category = "mark_stale"
            return self._event("MarkPriceUpdate", "oracle", "mark-", market=spec.name,
                               price=market.price + rng.randint(1, 3), price_seq=market.price_seq)
        step = rng.gauss(0.0, spec.vol_bps / 10_000) - 0.002 * (market.log_price - market.log_anchor)
        if rng.random() < self.jump_rate:
            # A big move: about 0.6 to 2 times the initial margin ratio, enough to liquidate some.
            ratio = spec.initial_margin_ppm / 1_000_000
            step += rng.choice((-1, 1)) * rng.uniform(0.6, 2.0) * ratio
            self.category = "mark_jump"
        market.log_price += step
        market.price = market.price_units(math.exp(market.log_price))
        market.price_seq += 1
        return self._event("MarkPriceUpdate", "oracle", "mark-", market=spec.name, price=market.price,
                           price_seq=market.price_seq)

    def _liquidation_step(self) -> dict | None:
        item = self._liquidations[0]
        market_id, user, liquidation_id, parts, sent = item
        market = self.by_name[market_id]
        if sent >= 8:  # the ledger keeps refusing: give up (reported, should not happen)
            self._liquidations.popleft()
            self.abandoned_liquidations += 1
            return None
        item[4] += 1
        size = self.positions.get((market_id, user), (0, 0, ""))[0]
        if size == 0:
            self._liquidations.popleft()
            return self._event("LiquidationCompleted", "liq-engine", "lqc-", market=market_id,
                               liquidation_id=liquidation_id)
        quantity = abs(size) if parts <= 1 else max(1, abs(size) // parts)
        item[3] = parts - 1
        slip = round(market.price * 5 / 10_000)
        price = max(1, market.price - slip if size > 0 else market.price + slip)
        lp = market.lps[self.rng.randrange(len(market.lps))] if market.lps else None
        while lp is None or lp == user:
            lp = market.users[self.rng.randrange(len(market.users))]
        fee = self._fee(market.notional(quantity, price), self.rng.choice((-1, 2)))
        return self._event("LiquidationFill", "me", "lqf-", market=market_id, liquidation_id=liquidation_id,
                           trade_id=self._id("T"), seq=market.fill_seq + 1, price=price, quantity=quantity,
                           liquidated_user=user, counterparty=lp, counterparty_fee=fee)

    def _scheduled_event(self, action: tuple) -> dict | None:
        kind = action[0]
        if kind == "deposit":
            _, user, deposit_id, asset, amount = action
            if (user, deposit_id) not in self._pending_deposits:
                return None
            return self._event("DepositConfirmed", "custody", "dep-", deposit_id=deposit_id, user=user,
                               asset=asset, amount=amount)
        if kind == "withdrawal":
            _, user, withdrawal_id, asset, amount = action
            if (user, withdrawal_id) not in self._live_withdrawals:
                return None
            if self.rng.random() < 0.9:
                return self._event("WithdrawalConfirmed", "custody", "wdc-", withdrawal_id=withdrawal_id,
                                   user=user, asset=asset, amount=amount)
            return self._event("WithdrawalRejected", "custody", "wdr-", withdrawal_id=withdrawal_id, user=user,
                               asset=asset, amount=amount, reason="compliance-hold")
        market = self.by_name[action[1]]
        if kind == "snapshot":
            rate = int(self.rng.gauss(60_000, 120_000))
            return self._event("FundingRateSnapshot", "funding", "fs-", market=market.spec.name,
                               epoch=market.last_epoch + 1, rate_ppb=rate, price=market.price)
        if kind == "settle":
            return self._event("FundingEpochSettle", "funding", "fe-", market=market.spec.name, epoch=action[2])
        if kind == "risk":  # a 10% tightening of the margin tiers
            spec = market.spec
            return self._event("RiskParamUpdate", "admin", "risk-", market=spec.name,
                               initial_margin_ppm=spec.initial_margin_ppm * 11 // 10,
                               maintenance_margin_ppm=spec.maintenance_margin_ppm * 11 // 10,
                               liquidation_fee_ppm=spec.liquidation_fee_ppm)
        raise AssertionError(action)

    def _random_user(self) -> str:
        return self.users[self.rng.randrange(len(self.users))]

    def _other_user(self, user: str) -> str:
        while (other := self._random_user()) == user:
            pass
        return other

    def _funded_user(self) -> tuple[str, str, int] | None:
        for _ in range(10):
            user = self._random_user()
            asset = self.user_assets[user][0]
            wallet = self._wallet(user, asset)
            if wallet > 0:
                return user, asset, wallet
        return None

    def _other(self) -> dict:
        rng = self.rng
        r = rng.random()
        if r < 0.30:  # a deposit; most are announced before custody confirms them
            self.category = "deposit"
            user = self._random_user()
            asset = self.user_assets[user][rng.randrange(len(self.user_assets[user]))]
            amount = self._usd(asset, rng.lognormvariate(math.log(500), 1.0))
            deposit_id = self._id("D")
            if rng.random() < 0.7:
                self._schedule(rng.randint(20, 2000), ("deposit", user, deposit_id, asset, amount))
                return self._event("DepositInitiated", "custody", "dep-", deposit_id=deposit_id, user=user,
                                   asset=asset, amount=amount)
            return self._event("DepositConfirmed", "custody", "dep-", deposit_id=deposit_id, user=user, asset=asset,
                               amount=amount)
        funded = self._funded_user()
        if r < 0.48 and funded:  # a withdrawal request, resolved later
            self.category = "withdrawal"
            user, asset, wallet = funded
            amount = max(1, int(wallet * rng.uniform(0.1, 0.9)))
            withdrawal_id = self._id("W")
            self._schedule(rng.randint(20, 2000), ("withdrawal", user, withdrawal_id, asset, amount))
            return self._event("WithdrawalRequested", "api", "wd-", withdrawal_id=withdrawal_id, user=user,
                               asset=asset, amount=amount)
        if r < 0.63 and funded:  # a transfer to another user
            self.category = "transfer"
            user, asset, wallet = funded
            to_user = self._other_user(user)
            return self._event("TransferRequested", "api", "tr-", transfer_id=self._id("X"), from_user=user,
                               to_user=to_user, asset=asset, amount=max(1, int(wallet * rng.uniform(0.05, 0.5))))
        if r < 0.80 and funded:  # more margin into one of the user's markets
            self.category = "margin_in"
            user, asset, wallet = funded
            markets = [m for m in self.user_markets[user] if m.spec.asset == asset]
            market = markets[rng.randrange(len(markets))]
            return self._event("MarginTransferRequested", "api", "mt-", transfer_id=self._id("M"), user=user,
                               market=market.spec.name, asset=asset, amount=max(1, int(wallet * rng.uniform(0.2, 0.9))))
        if r < 0.98:  # margin back to the wallet, within what the ledger allows
            for _ in range(10):
                user = self._random_user()
                market = self.user_markets[user][rng.randrange(len(self.user_markets[user]))]
                available = self._available_margin(market, user)
                if available > 1:
                    self.category = "margin_out"
                    return self._event("MarginWithdrawRequested", "api", "mw-", transfer_id=self._id("M"), user=user,
                                       market=market.spec.name, amount=max(1, int(available * rng.uniform(0.1, 0.6))))
        self.category = "insurance"
        market = self.markets[rng.randrange(len(self.markets))]
        return self._event("InsuranceFunded", "treasury", "ins-", market=market.spec.name,
                           amount=self._usd(market.spec.asset, 100_000))

    # Deliberately bad events, each with the rejection it must get ------------------------------

    def _malformed(self) -> dict:
        rng = self.rng
        market = self.markets[rng.randrange(len(self.markets))]
        name, asset = market.spec.name, market.spec.asset
        user = self._random_user()
        kind = rng.randrange(22)
        bad = "INVALID_EVENT"

        def fill(**overrides: Any) -> dict:
            event = self._event("TradeFill", "me", "fill-", market=name, trade_id=self._id("T"),
                                seq=market.fill_seq + 1, price=market.price, quantity=1, buyer=user,
                                seller=self._other_user(user), buyer_fee=0,
                                seller_fee=0)
            event.update(overrides)
            return event

        if kind == 0:  # a required field missing
            event = fill()
            del event["price"]
        elif kind == 1:  # a user outside the charset
            event = self._event("DepositConfirmed", "custody", "dep-", deposit_id=self._id("D"),
                                user=f"{user} x", asset=asset, amount=1)
        elif kind == 2:
            event = self._event("TradeFil", "me", "fill-", market=name)
        elif kind == 3:  # an amount that is a string
            event = self._event("WithdrawalRequested", "api", "wd-", withdrawal_id=self._id("W"), user=user,
                                asset=asset, amount="100")
        elif kind == 4:  # the ledger's internal event, from a producer
            event = self._event("MarginCredited", "api", "mc-", transfer_id=self._id("M"), user=user, market=name,
                                asset=asset, amount=10**9)
        elif kind == 5:
            event = self._event("WithdrawalRequested", "api", "wd-", withdrawal_id=self._id("W"), user=user,
                                asset=asset, amount=0)
        elif kind == 6:
            event = self._event("MarkPriceUpdate", "oracle", "mark-", market="NOPE-PERP", price=1, price_seq=1)
            bad = "UNKNOWN_MARKET"
        elif kind == 7:
            event, bad = fill(seq=market.fill_seq + 3), "SEQUENCE_GAP"
        elif kind == 8:
            event, bad = fill(seq=max(0, market.fill_seq - 1)), "OUT_OF_ORDER"
        elif kind == 9 and self._recent:  # an event_id reused with another payload
            event = dict(self._recent[rng.randrange(len(self._recent))])
            event["ts_us"] += 1
            bad = "IDEMPOTENCY_CONFLICT"
        elif kind == 10:
            event = self._event("MarkPriceUpdate", "oracle", "mark-", market=name, price=market.price,
                                price_seq=market.price_seq + 1)
            event["ts_us"] -= 8 * DAY_US
            bad = "EVENT_TOO_OLD"
        elif kind == 11:
            event = self._event("DepositConfirmed", "custody", "dep-", deposit_id=self._id("D"), user=user,
                                asset=asset, amount=10**38)
            bad = "VALUE_OUT_OF_RANGE"
        elif kind == 12:
            event, bad = fill(seller=user), "SAME_ACCOUNT"
        elif kind == 13:
            event = self._event("TransferRequested", "api", "tr-", transfer_id=self._id("X"), from_user=user,
                                to_user=user, asset=asset, amount=1)
            bad = "SAME_ACCOUNT"
        elif kind == 14:
            event = self._event("WithdrawalRequested", "api", "wd-", withdrawal_id=self._id("W"), user=user,
                                asset=asset, amount=self._wallet(user, asset) + 10**12)
            bad = "INSUFFICIENT_BALANCE"
        elif kind == 15:
            own = self.user_markets[user][0]
            event = self._event("MarginWithdrawRequested", "api", "mw-", transfer_id=self._id("M"), user=user,
                                market=own.spec.name,
                                amount=max(0, self._available_margin(own, user)) + 10**12)
            bad = "INSUFFICIENT_MARGIN"
        elif kind == 16:
            event = self._event("WithdrawalConfirmed", "custody", "wdc-", withdrawal_id=self._id("W"), user=user,
                                asset=asset, amount=1)
            bad = "UNKNOWN_WITHDRAWAL"
        elif kind == 17 and self._resolved_withdrawals:
            done = self._resolved_withdrawals[rng.randrange(len(self._resolved_withdrawals))]
            event = self._event("WithdrawalConfirmed", "custody", "wdc-", withdrawal_id=done["withdrawal_id"],
                                user=done["user"], asset=done["asset"], amount=done["amount"])
            bad = "WITHDRAWAL_RESOLVED"
        elif kind == 18 and self._confirmed_deposits:
            done = self._confirmed_deposits[rng.randrange(len(self._confirmed_deposits))]
            event = self._event("DepositConfirmed", "custody", "dep-", deposit_id=done["deposit_id"],
                                user=done["user"], asset=done["asset"], amount=done["amount"])
            bad = "DEPOSIT_RESOLVED"
        elif kind == 19:
            if market.settled and rng.random() < 0.5:
                event = self._event("FundingEpochSettle", "funding", "fe-", market=name, epoch=market.settled[0])
                bad = "EPOCH_SETTLED"
            else:
                event = self._event("FundingRateSnapshot", "funding", "fs-", market=name,
                                    epoch=market.last_epoch + 2, rate_ppb=1, price=market.price)
                bad = "EPOCH_GAP"
        elif kind == 20:
            spec = market.spec
            event = self._event("RiskParamUpdate", "admin", "risk-", market=name,
                                initial_margin_ppm=spec.maintenance_margin_ppm,
                                maintenance_margin_ppm=spec.initial_margin_ppm,
                                liquidation_fee_ppm=spec.liquidation_fee_ppm)
            bad = "INVALID_RISK_PARAMS"
        else:
            # Refused by the market stage after the account stage accepted it: the funds come back.
            funded = self._funded_user()
            if funded is None:
                event = self._event("LiquidationCompleted", "liq-engine", "lqc-", market=name,
                                    liquidation_id=f"liq:{name}:{user}:nope")
                self.expected = (bad, None)
                return event
            user, asset, wallet = funded
            other = [m for m in self.markets if m.spec.asset != asset]
            if other and rng.random() < 0.5:
                target, refusal = other[rng.randrange(len(other))].spec.name, "INVALID_EVENT"
            else:
                target, refusal = "NOPE-PERP", "UNKNOWN_MARKET"
            self.expected = (None, refusal)
            return self._event("MarginTransferRequested", "api", "mt-", transfer_id=self._id("M"), user=user,
                               market=target, asset=asset, amount=max(1, wallet // 10))
        self.expected = (bad, None)
        return event


def generate(seed: int, n_events: int, n_markets: int = 10, n_users: int = 100_000, *,
             setup: bool = True, **options: Any) -> Iterator[dict]:
    """The workload's producer events (setup first, unless `setup=False`, then `n_events` of the mix).

    Runs an in-process `Ledger` for the liquidation feedback, so the events reproduce that run
    exactly when replayed into a fresh ledger.
    """
    from streams.core.ledger import Ledger

    ledger = Ledger()
    workload = Workload(seed, n_events, n_markets, n_users, **options)
    while (event := workload.next_event()) is not None:
        in_setup = workload.in_setup
        workload.observe(ledger.submit(event))
        if setup or not in_setup:
            yield event
