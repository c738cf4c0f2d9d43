"""Property tests of the accounting contract over random event sequences (ledger-spec AC-xx).

Each test drives random scenarios (tests/unit/core/strategies.py: mostly valid, meaningful events
plus junk, exact resends and conflicting resends) and checks its criterion after EVERY event.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.engine import CHAIN
from streams.core.hashchain import GENESIS_HASH, canonical_batch
from streams.core.ledger import Ledger
from streams.core.model import LedgerHalt, Market, Position
from streams.core.numbers import Scale
from streams.core.risk_index import MarketRiskIndex
from streams.replay import replay_lines
from tests.unit.core.strategies import PPM, Driver, MarketModel, Step, iter_batches, payload_of

# Reason codes of the spec (§4, §7), plus the two the core names for reused deposit/withdrawal ids.
SPEC_REASONS = frozenset({
    "INVALID_EVENT", "IDEMPOTENCY_CONFLICT", "EVENT_TOO_OLD", "VALUE_OUT_OF_RANGE", "INVALID_RISK_PARAMS",
    "SAME_ACCOUNT", "UNKNOWN_MARKET", "MARKET_EXISTS", "SEQUENCE_GAP", "OUT_OF_ORDER", "EPOCH_GAP",
    "EPOCH_NOT_SNAPSHOT", "EPOCH_SETTLED", "INSUFFICIENT_BALANCE", "INSUFFICIENT_MARGIN", "DEPOSIT_MISMATCH",
    "DEPOSIT_RESOLVED", "UNKNOWN_WITHDRAWAL", "WITHDRAWAL_RESOLVED", "WITHDRAWAL_MISMATCH",
    "LIQUIDATION_SIDE_MISMATCH", "LIQUIDATION_NOT_FLAT", "DEPOSIT_EXISTS", "WITHDRAWAL_EXISTS",
})

# PROPERTY_SCALE=20 multiplies every example budget, for a deep search now and then (default: ~40 s).
SCALE = int(os.environ.get("PROPERTY_SCALE", "1"))
PROPERTY = settings(max_examples=80 * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def per_asset(items) -> dict[str, int]:
    sums: Counter[str] = Counter()
    for asset, amount in items:
        sums[asset] += amount
    return {asset: total for asset, total in sums.items() if total}


def applied_batches(step: Step):
    return [o.batch for o in step.outcomes if o.batch is not None]


# AC-01 ------------------------------------------------------------------------------------------


@PROPERTY
@given(st.data())
def test_ac01_every_batch_and_the_whole_ledger_sum_to_zero_per_asset(data: st.DataObject) -> None:
    journal: Counter[tuple[str, str, str, str]] = Counter()  # (stage, key, account, asset) -> sum of postings
    replayed: Counter[tuple[str, str]] = Counter()  # (account, asset) -> sum of postings over all keys

    def check(step: Step) -> None:
        for outcome in step.outcomes:
            batch = outcome.batch
            if batch is None:
                continue
            assert per_asset((p.asset, p.amount) for p in batch.postings) == {}, batch
            assert all(p.amount != 0 for p in batch.postings), "postings of zero are never written"
            for p in batch.postings:
                journal[(batch.stage, batch.key, p.account, p.asset)] += p.amount
                replayed[(p.account, p.asset)] += p.amount
            # The balances after, as the batch reports them, are what its postings add up to.
            for b in batch.balances:
                assert b.balance == journal[(batch.stage, batch.key, b.account, b.asset)], (batch, b)
        balances = step.ledger.balances()
        assert per_asset((asset, v) for (_, asset), v in balances.items()) == {}, balances
        # The journal alone reproduces every balance, external mirror accounts included.
        assert {k: v for k, v in replayed.items() if v} == balances

    Driver(data, check=check).run()


@PROPERTY
@given(st.data())
def test_ac01_money_is_int_everywhere(data: st.DataObject) -> None:
    """Spec §1 (money is never float or Decimal): every amount, balance, size and price is an int."""

    def check(step: Step) -> None:
        for outcome in step.outcomes:
            if outcome.batch is not None:
                for p in outcome.batch.postings:
                    assert type(p.amount) is int, p
                for b in outcome.batch.balances:
                    assert type(b.balance) is int, b
                for pos in outcome.batch.positions:
                    assert type(pos.size) is int and type(pos.entry_price) is int, pos
            for signal in outcome.signals:
                assert signal.amount is None or type(signal.amount) is int, signal
            for emitted in outcome.emitted:
                assert type(emitted["amount"]) is int, emitted
        assert all(type(v) is int for v in step.ledger.balances().values())
        for pos in step.ledger.positions():
            assert type(pos.size) is int and type(pos.entry_price) is int, pos

    Driver(data, check=check).run()


# AC-02 ------------------------------------------------------------------------------------------


def _market_stage_account_ok(account: str, market: str) -> bool:
    parts = account.split(":")
    if parts[0] == "user":
        return len(parts) == 4 and parts[2] == "margin" and parts[3] == market
    if parts[0] == "market":
        return len(parts) == 3 and parts[1] == market
    return (len(parts) == 3 and (parts[0], parts[1]) in {("system", "transit"), ("external", "treasury")})


def _account_stage_account_ok(account: str) -> bool:
    parts = account.split(":")
    if parts[0] == "user":
        return len(parts) == 4 and parts[2] in {"wallet", "deposit_pending", "withdrawal_hold"}
    return len(parts) == 3 and (parts[0], parts[1]) in {("system", "transit"), ("external", "custody")}


@PROPERTY
@given(st.data())
def test_ac02_markets_are_isolated(data: st.DataObject) -> None:
    def check(step: Step) -> None:
        touched_markets = set()
        for outcome in step.outcomes:
            if outcome.stage == "market":
                # The write set stays inside the event's own key (and the stage's hash chain), a
                # refused internal event's (its dedup entry) included.
                assert all(record[0] in (outcome.key, CHAIN) for record in outcome.writes), outcome
                if outcome.writes:
                    touched_markets.add(outcome.key)
            batch = outcome.batch
            if batch is None:
                continue
            if batch.stage == "market":
                market = batch.key
                asset = step.driver.markets[market].asset
                for p in batch.postings:
                    assert _market_stage_account_ok(p.account, market), (market, p)
                    assert p.asset == asset, (market, p)
                assert all(pos.market == market for pos in batch.positions), batch
            else:
                for p in batch.postings:
                    assert _account_stage_account_ok(p.account), p
        # Every other market's records, their margin accounts included, are untouched.
        before, after = step.before[1], step.ledger.market.store.data
        for record in before.keys() | after.keys():
            if record[0] not in touched_markets and record[0] != CHAIN:
                assert before.get(record) == after.get(record), (step.event, record)

    Driver(data, check=check, snapshots=True).run()


# AC-03 ------------------------------------------------------------------------------------------


@PROPERTY
@given(st.data())
def test_ac03_transit_nets_to_zero_after_every_input(data: st.DataObject) -> None:
    def check(step: Step) -> None:
        balances = step.ledger.balances()
        assert not {k: v for k, v in balances.items() if k[0].startswith("system:transit:")}, balances
        # An input that moves money between partitions emits exactly the step that completes it.
        for outcome in step.outcomes:
            if outcome.batch is not None and any(p.account.startswith("system:transit:")
                                                 for p in outcome.batch.postings):
                assert outcome.emitted or outcome is not step.outcomes[0], outcome

    Driver(data, check=check).run()


# AC-11, AC-12 -----------------------------------------------------------------------------------


@PROPERTY
@given(st.data())
def test_ac11_exact_resend_is_a_duplicate_and_a_conflicting_one_is_rejected(data: st.DataObject) -> None:
    def check(step: Step) -> None:
        if not step.outcomes:
            return
        first = step.outcomes[0]
        if step.kind in ("resend", "conflict", "late") and step.expect is not None:
            if step.expect == "duplicate":
                assert (first.status, first.reason) == ("duplicate", None), (step.event, first)
            else:
                assert (first.status, first.reason) == ("rejected", step.expect), (step.event, first)
        if first.status == "duplicate":
            assert len(step.outcomes) == 1 and first.batch is None and not first.signals
            assert step.ledger.account.duplicates + step.ledger.market.duplicates == duplicates[0] + 1
        duplicates[0] = step.ledger.account.duplicates + step.ledger.market.duplicates

    duplicates = [0]
    Driver(data, check=check).run()


@PROPERTY
@given(st.data())
def test_ac12_a_rejected_or_duplicate_event_changes_nothing_and_has_a_reason(data: st.DataObject) -> None:
    def check(step: Step) -> None:
        if not step.outcomes:
            return
        first = step.outcomes[0]
        if step.expect in ("duplicate", "applied"):
            assert first.status == step.expect, (step.event, first)
        elif step.expect is not None:
            assert (first.status, first.reason) == ("rejected", step.expect), (step.event, first)
        if first.status in ("rejected", "duplicate"):
            assert len(step.outcomes) == 1, step.outcomes
            assert first.batch is None and first.signals == () and first.emitted == () and not first.writes
            assert step.before == (step.ledger.account.store.data, step.ledger.market.store.data), step.event
        if first.status == "rejected":
            assert first.reason in SPEC_REASONS, first
        for outcome in step.outcomes[1:]:  # a refused internal event reports why, and refunds
            if outcome.status == "rejected":
                assert outcome.reason in SPEC_REASONS and len(outcome.emitted) == 1, outcome

    Driver(data, check=check, snapshots=True).run()


EVENT_TYPES = (
    "DepositInitiated", "DepositConfirmed", "WithdrawalRequested", "WithdrawalConfirmed", "WithdrawalRejected",
    "TransferRequested", "TransferCredited", "MarginTransferRequested", "MarginReturned", "MarketListed",
    "RiskParamUpdate", "MarkPriceUpdate", "TradeFill", "FundingRateSnapshot", "FundingEpochSettle",
    "LiquidationFill", "LiquidationCompleted", "MarginCredited", "MarginWithdrawRequested", "InsuranceFunded",
)
FIELDS = ("deposit_id", "withdrawal_id", "transfer_id", "trade_id", "user", "asset", "amount", "reason", "from_user",
          "to_user", "market", "settlement_asset", "settlement_decimals", "price_decimals", "size_decimals",
          "initial_margin_ppm", "maintenance_margin_ppm", "liquidation_fee_ppm", "price", "price_seq", "seq",
          "quantity", "buyer", "seller", "buyer_fee", "seller_fee", "epoch", "rate_ppb", "liquidation_id",
          "liquidated_user", "counterparty", "counterparty_fee")
ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-(10**40), 10**40) | st.floats() | st.text(max_size=6)
    | st.sampled_from(("alice", "bob", "USDT", "M", "e1", "x:y", "", "a b")) | st.integers(0, 5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=4,
)
FUZZED_EVENT = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(EVENT_TYPES) | ANY_VALUE,
    "event_id": st.sampled_from(("e1", "e2")) | ANY_VALUE,
    "source": st.just("s") | ANY_VALUE,
    "ts_us": st.integers(0, 10) | ANY_VALUE,
    **{name: ANY_VALUE for name in FIELDS},
}) | ANY_VALUE


@settings(PROPERTY, max_examples=200 * SCALE)
@given(st.lists(FUZZED_EVENT, min_size=1, max_size=5))
def test_ac12_fuzzed_envelopes_are_rejected_with_a_reason_never_a_crash(events: list) -> None:
    """Anything at all, even a `type` that is a list or a dict, is an outcome: rejected with a
    reason and no change of state, or booked (sums still zero); never an exception."""
    ledger = Ledger()
    for event in (
        {"type": "MarketListed", "event_id": "l1", "source": "s", "ts_us": 0, "market": "M", "settlement_asset": "USDT",
         "settlement_decimals": 2, "price_decimals": 1, "size_decimals": 1, "initial_margin_ppm": 100_000,
         "maintenance_margin_ppm": 50_000, "liquidation_fee_ppm": 10_000},
        {"type": "DepositConfirmed", "event_id": "d1", "source": "s", "ts_us": 0, "deposit_id": "d1", "user": "alice",
         "asset": "USDT", "amount": 10**6},
    ):
        assert ledger.submit(event)[0].status == "applied"
    for event in events:
        before = (dict(ledger.account.store.data), dict(ledger.market.store.data))
        outcomes = ledger.submit(event)
        if outcomes[0].status != "applied":
            assert outcomes[0].status == "duplicate" or outcomes[0].reason in SPEC_REASONS, outcomes
            assert before == (ledger.account.store.data, ledger.market.store.data)
        assert per_asset((asset, v) for (_, asset), v in ledger.balances().items()) == {}


# AC-20, AC-21 -----------------------------------------------------------------------------------


@PROPERTY
@given(st.data())
def test_ac20_funding_pool_is_zero_after_every_settle(data: st.DataObject) -> None:
    def check(step: Step) -> None:
        pools = {k: v for k, v in step.ledger.balances().items() if k[0].endswith(":funding_pool")}
        assert not pools, pools
        for outcome in step.outcomes:
            batch = outcome.batch
            if batch is None or batch.event_type != "FundingEpochSettle":
                continue
            market = step.driver.markets[batch.key]
            pool = f"market:{market.name}:funding_pool"
            assert all(b.balance == 0 for b in batch.balances if b.account == pool), batch
            rate, price = market.snapshots[step.event["epoch"]]
            # Every open position pays or receives funding(size, price, rate) (a fill changes no
            # position here, so the positions after are those at settle time).
            expected: Counter[str] = Counter()
            for (name, user), (size, _, _) in step.driver.positions().items():
                if name == market.name:
                    payment = market.funding(size, price, rate)
                    payer = (size > 0) == (rate > 0)
                    expected[f"user:{user}:margin:{name}"] += -payment if payer else payment
            actual: Counter[str] = Counter()
            for p in batch.postings:
                actual[p.account] += p.amount
            margins = {a: v for a, v in actual.items() if a.startswith("user:")}
            assert margins == {a: v for a, v in expected.items() if v}, (batch, expected)
            # The pool's remainder is rounding only, swept to or from the insurance fund.
            sweep = actual.get(f"market:{market.name}:insurance", 0)
            assert sweep == -sum(expected.values())
            n_positions = sum(1 for (name, _) in step.driver.positions() if name == market.name)
            assert 2 * abs(sweep) <= n_positions, (sweep, n_positions)

    Driver(data, check=check).run()


@PROPERTY
@given(st.data())
def test_ac21_open_interest_is_zero_in_every_market(data: st.DataObject) -> None:
    def check(step: Step) -> None:
        interest: Counter[str] = Counter()
        for pos in step.ledger.positions():
            assert pos.size != 0
            interest[pos.market] += pos.size
        assert not +interest and not -interest, interest
        for batch in applied_batches(step):  # and so do the positions a fill reports
            if batch.event_type in ("TradeFill", "LiquidationFill"):
                assert len(batch.positions) == 2, batch

    Driver(data, check=check).run()


# Spec §5 and §7 (no AC id of their own): what fills, liquidation fills and completions book ------


def _side(market: MarketModel, size: int, entry: int, delta: int, price: int) -> tuple[int, int, int]:
    """One side of a fill (§5), recomputed: (realized PnL, new size, new entry)."""
    new_size = size + delta
    if size == 0 or (size > 0) == (delta > 0):
        held, extra = abs(size), abs(delta)
        return 0, new_size, round(Fraction(held * entry + extra * price, held + extra))
    closed = min(abs(delta), abs(size))
    realized = market.pnl(closed if size > 0 else -closed, entry, price)
    if new_size == 0:
        return realized, 0, 0
    return realized, new_size, entry if (new_size > 0) == (size > 0) else price


@PROPERTY
@given(st.data())
def test_spec5_spec7_fills_liquidations_and_completions_book_exactly(data: st.DataObject) -> None:
    """Per user: margin moves by -fee + realized PnL (- the capped penalty when liquidated), the
    position becomes what §5 says (weighted entry, kept on a reduce, fill price on a flip), fees,
    settlement and insurance take the other sides, and a completion's insurance cover and
    DeficitUncovered amount are as §7 says."""

    def check(step: Step) -> None:
        first = step.outcomes[0] if step.outcomes else None
        if first is None or first.batch is None or first.stage != "market":
            return
        event, batch = step.event, first.batch
        market = step.driver.markets[batch.key]
        positions, balances = step.view_before
        name, asset = market.name, market.asset

        def margin(user: str) -> str:
            return f"user:{user}:margin:{name}"

        def before(user: str) -> tuple[int, int]:
            return positions.get((name, user), (0, 0, ""))[:2]

        expected: Counter[str] = Counter()
        new_positions: dict[str, tuple[int, int]] = {}
        if event["type"] in ("TradeFill", "LiquidationFill"):
            price, quantity = event["price"], event["quantity"]
            if event["type"] == "TradeFill":
                sides = [(event["buyer"], quantity, event["buyer_fee"], False),
                         (event["seller"], -quantity, event["seller_fee"], False)]
            else:
                liquidated, counterparty = event["liquidated_user"], event["counterparty"]
                closing = -quantity if before(liquidated)[0] > 0 else quantity
                sides = [(liquidated, closing, 0, True), (counterparty, -closing, event["counterparty_fee"], False)]
            for user, delta, fee, penalised in sides:
                realized, size, entry = _side(market, *before(user), delta, price)
                new_positions[user] = (size, entry)
                expected[margin(user)] += realized - fee
                expected[f"market:{name}:fees"] += fee
                expected[f"market:{name}:settlement"] -= realized
                if penalised:
                    penalty = round(Fraction(market.notional(quantity, price) * market.fee, PPM))
                    margin_after_pnl = balances.get((margin(user), asset), 0) + realized
                    penalty = min(penalty, max(0, margin_after_pnl))
                    expected[margin(user)] -= penalty
                    expected[f"market:{name}:insurance"] += penalty
        elif event["type"] == "LiquidationCompleted":
            user = step.driver.liquidation_owner[event["liquidation_id"]][1]
            deficit = -balances.get((margin(user), asset), 0)
            cover = min(deficit, max(0, balances.get((f"market:{name}:insurance", asset), 0))) if deficit > 0 else 0
            expected[margin(user)] += cover
            expected[f"market:{name}:insurance"] -= cover
            uncovered = [s.amount for s in first.signals if s.type == "DeficitUncovered"]
            assert uncovered == ([deficit - cover] if deficit > cover else []), first.signals
        else:
            return
        actual: Counter[str] = Counter()
        for p in batch.postings:
            actual[p.account] += p.amount
        assert +actual == +expected and -actual == -expected, (event, actual, expected)
        for view in batch.positions:
            if view.user in new_positions:
                assert (view.size, view.entry_price) == new_positions[view.user], (event, view)

    Driver(data, check=check, snapshots=True).run()


# AC-30: margin checks, and the risk index against a full scan -----------------------------------


def check_margin_flags(step: Step) -> None:
    """Each open position's state is what checking it on the balances after the event gives,
    recomputed here independently: reduce-only iff equity < im (from the signals), and a
    liquidation open whenever equity < mm. A mark update must have looked at every position it
    moved across a line, so positions the risk index skipped must agree too."""
    driver = step.driver
    for outcome in step.outcomes:
        # Signals in user-id order (code points); per user, reduce-only before liquidation (§7).
        order = [(s.user, s.type == "LiquidationTriggered") for s in outcome.signals]
        assert order == sorted(order), outcome.signals
        for s in outcome.signals:
            if s.type == "LiquidationTriggered":
                assert s.liquidation_id == f"liq:{s.market}:{s.user}:{outcome.event_id}", s
    open_liquidations = set(driver.liquidations.values())
    for (name, user), (size, entry, state) in driver.positions().items():
        market = driver.markets[name]
        equity, im, mm = market.margin_lines(size, entry, driver.margin(name, user))
        reduce_only = (name, user) in driver.reduce_only
        where = (step.event, name, user, size, entry, equity, im, mm, market.mark)
        assert reduce_only == (equity < im), where
        if equity < mm:
            assert (name, user) in open_liquidations, where
        in_liquidation = (name, user) in open_liquidations
        assert state == ("in_liquidation" if in_liquidation else "reduce_only" if reduce_only else "healthy"), where


RISK = settings(PROPERTY, max_examples=120 * SCALE)


@RISK
@given(st.data())
def test_ac30_margin_checks_flag_every_open_position_as_a_fresh_check_says(data: st.DataObject) -> None:
    """The reference behaviour (every mark checks every position) against the spec's margin rules."""
    driver = Driver(data, mix="risk", max_steps=80, check=check_margin_flags)
    driver.ledger.market.full_scan = True
    driver.run()


@RISK
@given(st.data())
def test_ac30_risk_index_gives_the_same_outcomes_as_a_full_scan(data: st.DataObject) -> None:
    """streams/core/risk_index.py: the same sequence with the index and with a full scan, in
    lockstep (identical outcomes after every event), and the indexed ledger's flags checked too."""
    reference = Ledger()
    reference.market.full_scan = True
    driver = Driver(data, mix="risk", max_steps=80, shadow=reference, check=check_margin_flags)
    assert driver.ledger.market.full_scan is False
    driver.run()
    assert reference.final_hashes() == driver.ledger.final_hashes()


@settings(PROPERTY, max_examples=200 * SCALE)
@given(
    decimals=st.tuples(st.sampled_from((0, 2, 6, 8, 18)), st.integers(0, 8), st.integers(0, 8)),
    im=st.sampled_from((PPM, 500_000, 100_000, 20_000, 999_999)),
    long=st.booleans(),
    size=st.integers(1, 3) | st.integers(1, 10**6),
    entry=st.integers(1, 10**3) | st.integers(1, 10**9),
    line=st.sampled_from(("im", "mm")),
    offset=st.integers(-3, 3),
    moves=st.lists(st.integers(-4, 4) | st.integers(-10**4, 10**4), min_size=1, max_size=12),
)
def test_ac30_risk_index_at_the_margin_lines(decimals: tuple[int, int, int], im: int, long: bool, size: int,
                                            entry: int, line: str, offset: int, moves: list[int]) -> None:
    """A position whose margin sits within rounding of its im or mm line, and small mark moves
    around its entry: where the index's rounding slack matters (and a 100% initial margin, whose
    line is crossed by rounding alone). Indexed and full-scan ledgers must agree on every event."""
    sd, pd, zd = decimals
    mm = im // 2
    market = MarketModel("M", "A", sd, pd, zd, im, mm, max(1, mm // 4), entry, size)
    notional = market.notional(size, entry)
    target = round(Fraction(notional * (im if line == "im" else mm), PPM))
    margin = max(1, target + offset)
    big = 10 * notional + 10**sd + 10
    events = [
        {"market": "M", "settlement_asset": "A", "settlement_decimals": sd, "price_decimals": pd, "size_decimals": zd,
         "initial_margin_ppm": im, "maintenance_margin_ppm": mm, "liquidation_fee_ppm": market.fee,
         "type": "MarketListed"},
        {"deposit_id": "d1", "user": "alice", "asset": "A", "amount": margin, "type": "DepositConfirmed"},
        {"deposit_id": "d2", "user": "bob", "asset": "A", "amount": big, "type": "DepositConfirmed"},
        {"transfer_id": "m1", "user": "alice", "market": "M", "asset": "A", "amount": margin,
         "type": "MarginTransferRequested"},
        {"transfer_id": "m2", "user": "bob", "market": "M", "asset": "A", "amount": big,
         "type": "MarginTransferRequested"},
        {"market": "M", "trade_id": "t1", "seq": 1, "price": entry, "quantity": size,
         "buyer": "alice" if long else "bob", "seller": "bob" if long else "alice", "buyer_fee": 0,
         "seller_fee": 0, "type": "TradeFill"},
    ]
    price = entry
    for n, move in enumerate(moves, start=1):
        price = max(1, price + move)
        events.append({"market": "M", "price": price, "price_seq": n, "type": "MarkPriceUpdate"})
    indexed, reference = Ledger(), Ledger()
    reference.market.full_scan = True
    for n, fields in enumerate(events):
        event = {"event_id": f"e{n}", "source": "s", "ts_us": n, **fields}
        outcomes = indexed.submit(event)
        assert outcomes[0].status == "applied", outcomes
        assert outcomes == reference.submit(event), event


@settings(PROPERTY, max_examples=1000 * SCALE)
@given(st.data())
def test_ac30_risk_index_candidates_include_every_position_a_mark_moves(data: st.DataObject) -> None:
    """The index's contract, straight on streams/core/risk_index.py: a position that is not a
    candidate for a mark is one a check at that mark would leave as it is (whatever its flags),
    with the mark drawn within rounding reach of the position's im or mm crossing."""
    sd, pd, zd = data.draw(st.tuples(st.sampled_from((0, 2, 6, 8, 18)), st.integers(0, 8), st.integers(0, 8)))
    im = data.draw(st.sampled_from((PPM, 500_000, 100_000, 20_000, 999_999, 3)))
    mm = data.draw(st.integers(2, im - 1)) if im > 3 else 2
    model = MarketModel("M", "A", sd, pd, zd, im, mm, 1, 0, 0)
    size = data.draw(st.integers(1, 3) | st.integers(1, 10**9)) * data.draw(st.sampled_from((1, -1)))
    entry = data.draw(st.integers(1, 10**3) | st.integers(1, 10**12))
    ratio = data.draw(st.sampled_from((im, mm)))
    # A margin near the line at the entry price (where rounding can decide), or anything at all.
    near_line = round(Fraction(model.notional(size, entry) * ratio, PPM)) + data.draw(st.integers(-3, 3))
    margin = data.draw(st.just(near_line) | st.integers(-(10**15), 10**15))
    crossing = model.crossing(size, entry, margin, ratio)
    reach = max(3, int(3 / (abs(size) * model.k)) + 1)
    center = int(crossing) if crossing is not None and 1 <= crossing < 10**30 else entry
    mark = max(1, center + data.draw(st.integers(-reach, reach) | st.integers(-3, 3)))
    reduce_only, in_liquidation = data.draw(st.booleans()), data.draw(st.booleans())

    market = Market("A", sd, pd, zd, im, mm, 1, mark_price=None, price_seq=0, last_snapshot_epoch=0)
    index = MarketRiskIndex()
    index.update("u", Position(size, entry, reduce_only, "liq" if in_liquidation else None), margin, market,
                 Scale(sd, pd, zd))
    model.mark = mark
    equity, im_amount, mm_amount = model.margin_lines(size, entry, margin)
    changes = (equity < im_amount) != reduce_only or (equity < mm_amount and not in_liquidation)
    if changes:
        assert index.candidates(mark) == ["u"], (equity, im_amount, mm_amount, crossing)


# AC-40, AC-41 -----------------------------------------------------------------------------------


def _jsonable(event: object) -> bool:
    """Events that survive a JSON round trip unchanged (a tuple would come back a list)."""
    try:
        return json.loads(json.dumps(event)) == event
    except (TypeError, ValueError):
        return False


@PROPERTY
@given(st.data())
def test_ac40_replay_is_deterministic_and_the_hash_chain_links(data: st.DataObject) -> None:
    driver = Driver(data).run()
    events = [event for event, _ in driver.trace]

    # A fresh ledger gives identical outcomes: batches, hashes, signals, emitted events, rejections.
    fresh = Ledger()
    for event, outcomes in driver.trace:
        if outcomes is None:
            with pytest.raises(LedgerHalt):
                fresh.submit(event)
            return
        assert fresh.submit(event) == outcomes, event
    assert fresh.final_hashes() == driver.ledger.final_hashes()
    assert fresh.balances() == driver.ledger.balances()
    assert list(fresh.positions()) == list(driver.ledger.positions())

    # Each stage's chain links from genesis, and each hash is recomputable from its batch alone.
    last = {"account": (0, GENESIS_HASH), "market": (0, GENESIS_HASH)}
    for event, outcome in iter_batches(driver):
        batch = outcome.batch
        if batch is None:
            continue
        seq, prev = last[batch.stage]
        assert (batch.batch_seq, batch.prev_hash) == (seq + 1, prev), batch
        assert batch.payload == payload_of(event), (batch.payload, event)
        assert batch.hash == hashlib.sha256(bytes.fromhex(prev) + canonical_batch(batch)).hexdigest()
        if batch.postings:  # the hash covers the postings
            tampered = batch._replace(postings=(batch.postings[0]._replace(amount=batch.postings[0].amount + 1),
                                                *batch.postings[1:]))
            assert hashlib.sha256(bytes.fromhex(prev) + canonical_batch(tampered)).hexdigest() != batch.hash
        last[batch.stage] = (batch.batch_seq, batch.hash)
    assert driver.ledger.final_hashes() == {stage: h for stage, (_, h) in last.items()}

    # The offline tool over the same events as JSON lines: the same chain, the same output twice.
    lines = [json.dumps(e) for e in events if _jsonable(e)]
    first, second = replay_lines(lines, journal=True), replay_lines(lines, journal=True)
    assert json.dumps(first) == json.dumps(second)
    assert first["hashes"] == driver.ledger.final_hashes()


@settings(PROPERTY, max_examples=60 * SCALE)
@given(st.data())
def test_ac40_a_restart_from_the_stores_changes_no_outcome(data: st.DataObject) -> None:
    """State is a function of the stores alone: a worker restarted at any point from copies of both
    stores (derived structures, the risk index and the dedup ages, rebuilt by `recover`) goes on
    with exactly the outcomes of the one that never stopped."""
    driver = Driver(data)
    cut = data.draw(st.integers(0, driver.max_steps + 30))
    restarted: list[Ledger] = []

    def check(step: Step) -> None:
        if len(driver.trace) == cut:
            ledger = Ledger()
            for stage, source in zip(ledger.stages, step.ledger.stages, strict=True):
                stage.store.data = dict(source.store.data)
                stage.recover()
            restarted.append(ledger)
        elif restarted:
            assert restarted[0].submit(step.event) == step.outcomes, step.event

    driver.check = check
    driver.run()
    if restarted:
        assert restarted[0].final_hashes() == driver.ledger.final_hashes()
