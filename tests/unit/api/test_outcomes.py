"""Outcomes for the HTTP API: JSON, the recent-outcomes map, waiters and the shared flush. No services."""

from __future__ import annotations

import asyncio

import pytest

from streams.api.auth import ADMIN, PRODUCER, USER, Claims
from streams.api.outcomes import (
    APPLIED,
    DUPLICATE,
    REJECTED,
    Coalescer,
    OutcomeUnknown,
    RecentOutcomes,
    Recorded,
    Waiters,
    dead_lettered,
    may_read,
    owner_of,
    recorded,
    to_json,
)
from streams.core.events import ACCOUNT, MARKET
from streams.core.ledger import Ledger
from streams.core.model import Reason
from tests.unit.core.builders import USDT, deposit, fill, funded, listed, margin_in, margin_out, one, run

ACC, MKT = "ledger.account-events", "ledger.market-events"


def _rec(event_id: str, status: str = APPLIED, *, key: str = "alice", event_type: str = "DepositConfirmed",
         reason: str | None = None, stage: str = ACCOUNT, origin: str = "", owner: str | None = "alice",
         offset: int = 0) -> Recorded:
    return Recorded(status, stage, key, origin, event_id, event_type, reason, "", None, (), (), ACC, 0, offset, owner)


def _claims(subject: str, role: str) -> Claims:
    return Claims(subject, role, 2_000_000_000, 1_000_000_000)


# -- JSON and ownership ---------------------------------------------------------------------------


def test_applied_outcome_json_has_the_batch_and_follow_ups() -> None:
    ledger = Ledger()
    run(ledger, listed(), deposit("alice", 100 * USDT))
    event = margin_in("alice", 40 * USDT, event_id="mt-1")
    outcome = ledger.account.apply(event)
    body = to_json(recorded(ACCOUNT, outcome, event, ACC, 2, 17))
    assert body["status"] == "applied" and body["event_id"] == "mt-1" and body["key"] == "alice"
    assert body["input"] == {"topic": ACC, "partition": 2, "offset": 17}
    journal = body["journal"]
    assert [p["posting_id"] for p in journal["postings"]] == ["mt-1:0", "mt-1:1"]
    assert sum(p["amount"] for p in journal["postings"]) == 0
    assert journal["hash"] == outcome.batch.hash and journal["batch_seq"] == outcome.batch.batch_seq
    assert body["follow_ups"] == [{"event_id": "mt-1:MarginCredited", "event_type": "MarginCredited",
                                   "stage": "market", "key": "BTC-PERP", "origin_key": "alice"}]
    assert body["reason"] is None and "original" not in body


def test_rejected_and_duplicate_outcome_json() -> None:
    ledger = Ledger()
    event = deposit("alice", 5 * USDT, event_id="d-1")
    applied = recorded(ACCOUNT, ledger.account.apply(event), event, ACC, 0, 1)
    duplicate = recorded(ACCOUNT, ledger.account.apply(dict(event)), event, ACC, 0, 2)
    assert duplicate.status == DUPLICATE
    body = to_json(duplicate, original=applied)
    assert body["status"] == "duplicate" and body["original"]["status"] == "applied"
    assert body["original"]["input"]["offset"] == 1
    unknown = to_json(duplicate)
    assert unknown["original"] is None and "no longer held" in unknown["detail"]
    bad = margin_out("alice", 1, event_id="mo-1")
    rejected = to_json(recorded(MARKET, ledger.market.apply(bad), bad, MKT, 0, 3))
    assert rejected["status"] == "rejected" and rejected["reason"] == Reason.UNKNOWN_MARKET
    assert rejected["journal"] is None


def test_owner_of_an_outcome() -> None:
    assert owner_of(ACCOUNT, "alice", {"type": "DepositConfirmed", "user": "alice"}) == "alice"
    assert owner_of(ACCOUNT, "bob", {"type": "TransferCredited", "to_user": "bob"}) == "bob"
    assert owner_of(MARKET, "BTC-PERP", {"type": "MarginWithdrawRequested", "user": "alice"}) == "alice"
    assert owner_of(MARKET, "BTC-PERP", {"type": "MarginCredited", "user": "alice"}) == "alice"
    assert owner_of(MARKET, "BTC-PERP", {"type": "TradeFill", "buyer": "alice", "seller": "bob"}) is None
    assert owner_of(MARKET, "BTC-PERP", {"type": ["junk"]}) is None
    assert owner_of(MARKET, "BTC-PERP", {"type": "MarginWithdrawRequested", "user": 7}) is None


def test_who_may_read_an_outcome() -> None:
    mine = _rec("e1", owner="alice", event_type="WithdrawalRequested")
    fact = _rec("e2", owner="alice", event_type="DepositConfirmed")
    nobodys = _rec("e3", owner=None, event_type="TradeFill", stage=MARKET, key="BTC-PERP")
    assert may_read(_claims("alice", USER), mine) and may_read(_claims("alice", USER), fact)
    assert not may_read(_claims("bob", USER), mine)
    assert not may_read(_claims("alice", USER), nobodys)
    assert may_read(_claims("ops", ADMIN), nobodys)
    assert may_read(_claims("custody", PRODUCER), fact) and may_read(_claims("me", PRODUCER), nobodys)
    assert not may_read(_claims("custody", PRODUCER), mine)  # a user's request, not a fact
    assert not may_read(_claims("custody", PRODUCER), _rec("e4", event_type=None))


def test_recorded_origin_of_internal_events() -> None:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice")
    parent = margin_in("alice", 1 * USDT, event_id="mt-9", transfer_id="m9")
    (credit,) = ledger.account.apply(parent).emitted
    outcome = ledger.market.apply(credit, trusted=True)
    rec = recorded(MARKET, outcome, credit, MKT, 0, 5)
    assert (rec.origin_key, rec.event_id, rec.owner) == ("alice", "mt-9:MarginCredited", "alice")


# -- the recent-outcomes map -------------------------------------------------------------------------


def test_recent_outcomes_returns_the_original_for_a_duplicate() -> None:
    recent = RecentOutcomes(100, 10)
    first = _rec("e1")
    assert recent.record(first) is None
    assert recent.record(_rec("e1", DUPLICATE, offset=9)) is first
    assert recent.get(ACCOUNT, "alice", "", "e1") is first
    assert recent.record(_rec("zz", DUPLICATE)) is None  # forgotten or never seen


def test_applied_is_final_and_rejections_are_judged_afresh() -> None:
    recent = RecentOutcomes(100, 10)
    recent.record(_rec("e1", REJECTED, reason=Reason.INSUFFICIENT_BALANCE))
    applied = _rec("e1", offset=3)
    recent.record(applied)  # the corrected resend was applied
    assert recent.get(ACCOUNT, "alice", "", "e1") is applied
    recent.record(_rec("e1", REJECTED, reason=Reason.EVENT_TOO_OLD, offset=4))
    recent.record(_rec("e1", REJECTED, reason=Reason.IDEMPOTENCY_CONFLICT, offset=5))
    assert recent.get(ACCOUNT, "alice", "", "e1") is applied
    recent.record(_rec("e2", REJECTED, reason=Reason.INSUFFICIENT_BALANCE))
    later = _rec("e2", REJECTED, reason=Reason.INSUFFICIENT_BALANCE, offset=8)
    recent.record(later)
    assert recent.get(ACCOUNT, "alice", "", "e2") is later
    recent.record(_rec("e3", REJECTED, reason=Reason.IDEMPOTENCY_CONFLICT))
    assert recent.get(ACCOUNT, "alice", "", "e3") is None  # about a resend: never kept
    assert len(recent) == 2


def test_a_flood_of_one_type_does_not_evict_another() -> None:
    recent = RecentOutcomes(10_000, 4)
    withdraw = _rec("mo", key="BTC-PERP", stage=MARKET, event_type="MarginWithdrawRequested")
    recent.record(withdraw)
    for n in range(1_000):
        recent.record(_rec(f"mark-{n}", key="BTC-PERP", stage=MARKET, event_type="MarkPriceUpdate", owner=None))
    assert recent.get(MARKET, "BTC-PERP", "", "mo") is withdraw
    assert [recent.get(MARKET, "BTC-PERP", "", f"mark-{n}") is not None for n in (995, 996, 999)] == [False, True, True]
    assert len(recent) == 5


def test_the_total_is_bounded_oldest_first_and_a_forgotten_id_can_return() -> None:
    recent = RecentOutcomes(3, 10)
    for n in range(5):
        recent.record(_rec(f"e{n}", key=f"u{n}"))
    assert len(recent) == 3
    assert recent.get(ACCOUNT, "u1", "", "e1") is None and recent.get(ACCOUNT, "u2", "", "e2") is not None
    again = _rec("e0", key="u0", offset=50)
    recent.record(again)
    for n in range(5, 7):  # evicts u2, u3 (older); the returned e0 is newer and stays
        recent.record(_rec(f"e{n}", key=f"u{n}"))
    assert recent.get(ACCOUNT, "u0", "", "e0") is again
    assert len(recent._by_type) == len(recent)  # no group left behind for evicted keys


def test_origin_keys_keep_internal_outcomes_apart() -> None:
    recent = RecentOutcomes(100, 10)
    a = _rec("t:MarginCredited", stage=MARKET, key="BTC-PERP", origin="alice", event_type="MarginCredited")
    b = _rec("t:MarginCredited", stage=MARKET, key="BTC-PERP", origin="bob", event_type="MarginCredited",
             owner="bob")
    recent.record(a)
    recent.record(b)
    assert recent.get(MARKET, "BTC-PERP", "alice", "t:MarginCredited") is a
    assert recent.get(MARKET, "BTC-PERP", "bob", "t:MarginCredited") is b


def test_records_without_a_key_are_not_kept() -> None:
    recent = RecentOutcomes(100, 10)
    assert recent.record(dead_lettered(ACCOUNT, ACC, 0, 1, "bad-magic", "no")) is None
    assert recent.record(_rec("e1", REJECTED, key=None, reason=Reason.INVALID_EVENT)) is None  # type: ignore[arg-type]
    assert len(recent) == 0


# -- waiters ---------------------------------------------------------------------------------------------


def test_a_waiter_gets_the_outcome_of_its_offset_even_if_it_came_before_the_ack() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        early, late = waiters.expect(ACC, 0), waiters.expect(ACC, 0)
        waiters.resolve(ACC, 0, 10, "outcome-10")  # processed before the producer's ack came back
        early.sent(10)
        assert await early.wait(1) == "outcome-10"
        late.sent(11)
        waiters.resolve(ACC, 0, 12, "someone else's")
        waiters.resolve(ACC, 0, 11, "outcome-11")
        assert await late.wait(1) == "outcome-11"
        early.close()
        late.close()
        assert waiters.pending() == 0 and not waiters._active and not waiters._early

    asyncio.run(scenario())


def test_nobody_waiting_costs_nothing_and_times_out_cleanly() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        waiters.resolve(ACC, 0, 1, "x")
        assert not waiters._early and not waiters._active
        ticket = waiters.expect(MKT, 1)
        ticket.sent(5)
        with pytest.raises(TimeoutError):
            await ticket.wait(0.01)
        ticket.close()
        waiters.resolve(MKT, 1, 5, "late")  # after the request gave up: dropped
        assert waiters.pending() == 0 and not waiters._active

    asyncio.run(scenario())


def test_a_revoked_partition_fails_its_waiters() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        ticket = waiters.expect(ACC, 2)
        ticket.sent(3)
        waiters.fail(ACC, 2, OutcomeUnknown("moved"))
        with pytest.raises(OutcomeUnknown):
            await ticket.wait(1)
        ticket.close()
        assert waiters.pending() == 0

    asyncio.run(scenario())


def test_a_ticket_closed_before_its_ack_releases_the_partition() -> None:
    async def scenario() -> None:
        waiters = Waiters()
        ticket = waiters.expect(ACC, 0)
        waiters.resolve(ACC, 0, 1, "kept while an ack is outstanding")
        assert waiters._early
        ticket.close()  # the produce failed
        assert waiters.pending() == 0 and not waiters._early and not waiters._active

    asyncio.run(scenario())


# -- the shared flush ------------------------------------------------------------------------------


def test_concurrent_runs_share_flushes_and_each_waits_for_one_started_after_it() -> None:
    async def scenario() -> None:
        calls: list[int] = []
        gate = asyncio.Event()

        async def flush() -> None:
            calls.append(len(calls))
            await gate.wait()

        async def settle() -> None:
            for _ in range(5):
                await asyncio.sleep(0)

        coalescer = Coalescer(flush)
        first = asyncio.ensure_future(coalescer.run())
        await settle()
        assert calls == [0]
        # these arrive while flush 0 runs: they must wait for a flush that starts after them (1)
        later = [asyncio.ensure_future(coalescer.run()) for _ in range(5)]
        await settle()
        assert calls == [0] and not first.done()
        gate.set()
        await asyncio.gather(first, *later)
        assert calls == [0, 1]

    asyncio.run(scenario())


def test_a_failed_flush_raises_in_its_waiters_and_the_next_one_runs() -> None:
    async def scenario() -> None:
        results = iter([RuntimeError("broker away"), None])

        async def flush() -> None:
            outcome = next(results)
            if outcome is not None:
                raise outcome

        coalescer = Coalescer(flush)
        with pytest.raises(RuntimeError):
            await coalescer.run()
        await coalescer.run()

    asyncio.run(scenario())


def test_a_trade_fill_is_nobodys_to_read(tmp_path: object) -> None:
    ledger = Ledger()
    run(ledger, listed())
    funded(ledger, "alice", "bob")
    event = fill(1, "alice", "bob", 10, 50_000_00)
    rec = recorded(MARKET, one(ledger, event), event, MKT, 0, 1)
    assert rec.owner is None and rec.status == "applied"
    assert not may_read(_claims("alice", USER), rec)
