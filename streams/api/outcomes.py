"""Outcomes for the HTTP API: what an event did (as JSON), the recent ones kept in memory, the
requests waiting for one, and the flush a response waits for.

- `Recorded`: one processed event's outcome, small enough to keep (no write set, no state).
- `RecentOutcomes`: a bounded map (stage, key, origin_key, event_id) -> `Recorded`, for
  `GET /v1/events/{event_id}` and for answering a duplicate POST with the original outcome. Bounded
  in total and per (stage, key, event type), so a flood of mark prices on a market never pushes a
  user's margin withdrawal out. An applied outcome is final: a later rejection of the same id does
  not replace it, and an `IDEMPOTENCY_CONFLICT` (which judges a resend, not the event) is never
  kept; a rejected outcome is replaced by the next judgement of the id.
- `Waiters`: POST handlers waiting for the outcome of the record they produced, matched by the
  record's exact (topic, partition, offset), so two requests with one event id never mix.
- `Coalescer`: many responses waiting for "everything produced so far is acknowledged" share one
  producer flush.

Pure asyncio and the core's types: no Kafka, no Faust.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from streams.api.auth import ADMIN, PRODUCER, SUBMIT_RULES, USER, Claims
from streams.core.events import ACCOUNT, INTERNAL_TYPES, spec_for
from streams.core.model import JournalBatch, Outcome, Reason, Signal

APPLIED, REJECTED, DUPLICATE, DEAD_LETTER = "applied", "rejected", "duplicate", "dead_letter"


class Recorded(NamedTuple):
    """One processed input record's outcome, as the API reports it."""

    status: str  # applied | rejected | duplicate | dead_letter
    stage: str
    key: str | None
    origin_key: str  # "" for a producer's event; the emitting stage key for an internal one
    event_id: str | None
    event_type: str | None
    reason: str | None
    detail: str
    batch: JournalBatch | None
    signals: tuple[Signal, ...]
    emitted: tuple[dict, ...]
    topic: str
    partition: int
    offset: int
    owner: str | None  # the user who may read this outcome (besides admins), if any


def owner_of(stage: str, key: str | None, event: dict) -> str | None:
    """The user an outcome belongs to: in the account stage the key (the user); in the market stage
    the user who asked for it (a margin withdrawal, a margin credit), and nobody for facts that name
    several users (a trade fill shows its counterparty)."""
    if stage == ACCOUNT:
        return key
    event_type = event.get("type")
    if not isinstance(event_type, str):
        return None
    field = "user" if event_type == "MarginCredited" else SUBMIT_RULES.get(event_type, {}).get(USER)
    value = event.get(field) if field else None
    return value if isinstance(value, str) else None


def recorded(stage: str, outcome: Outcome, event: dict, topic: str, partition: int, offset: int) -> Recorded:
    """The `Recorded` of an outcome the core returned for `event`."""
    if outcome.batch is not None:
        origin = outcome.batch.origin_key
    else:
        origin = event.get("origin_key") if event.get("type") in INTERNAL_TYPES else ""
        origin = origin if isinstance(origin, str) else ""
    return Recorded(outcome.status, stage, outcome.key, origin, outcome.event_id, outcome.event_type,
                    outcome.reason, outcome.detail, outcome.batch, outcome.signals, outcome.emitted,
                    topic, partition, offset, owner_of(stage, outcome.key, event))


def dead_lettered(stage: str, topic: str, partition: int, offset: int, error_kind: str, message: str) -> Recorded:
    return Recorded(DEAD_LETTER, stage, None, "", None, None, error_kind, message, None, (), (),
                    topic, partition, offset, None)


def to_json(rec: Recorded, *, original: Recorded | None = None) -> dict[str, Any]:
    """The JSON body of an outcome. Money and sizes are exact integers in minor units."""
    body: dict[str, Any] = {
        "status": rec.status, "stage": rec.stage, "key": rec.key, "origin_key": rec.origin_key,
        "event_id": rec.event_id, "event_type": rec.event_type, "reason": rec.reason, "detail": rec.detail,
        "input": {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset},
        "journal": None if rec.batch is None else _batch_json(rec.batch),
        "signals": [{"type": s.type, "market": s.market, "user": s.user, "liquidation_id": s.liquidation_id,
                     "amount": s.amount} for s in rec.signals],
        "follow_ups": [_follow_up(e) for e in rec.emitted],
    }
    if rec.status == DUPLICATE:
        body["original"] = None if original is None else to_json(original)
        if original is None:
            body["detail"] = ("a duplicate of an event applied earlier; its outcome is no longer held in memory "
                              "(its journal batch is on ledger.journal)")
    return body


def _batch_json(batch: JournalBatch) -> dict[str, Any]:
    return {
        "batch_seq": batch.batch_seq, "ts_us": batch.ts_us, "prev_hash": batch.prev_hash, "hash": batch.hash,
        "postings": [{"posting_id": f"{batch.event_id}:{n}", "account": p.account, "asset": p.asset,
                      "amount": p.amount, "kind": p.kind} for n, p in enumerate(batch.postings)],
        "balances": [{"account": b.account, "asset": b.asset, "balance": b.balance} for b in batch.balances],
        "positions": [p._asdict() for p in batch.positions],
    }


def _follow_up(emitted: dict) -> dict[str, Any]:
    """An internal event this one emitted, and where to ask for its outcome."""
    spec = spec_for(emitted.get("type"))
    key = emitted.get(spec.key_field) if spec is not None else None
    return {"event_id": emitted.get("event_id"), "event_type": emitted.get("type"),
            "stage": spec.stage if spec is not None else None, "key": key, "origin_key": emitted.get("origin_key")}


def may_read(claims: Claims, rec: Recorded) -> bool:
    """Admins read any outcome; a producer the outcomes of facts (the types producers submit); a
    user the outcomes that are theirs (`Recorded.owner`)."""
    if claims.role == ADMIN:
        return True
    if claims.role == PRODUCER:
        return rec.event_type is not None and PRODUCER in SUBMIT_RULES.get(rec.event_type, {})
    return claims.role == USER and rec.owner is not None and rec.owner == claims.subject


class RecentOutcomes:
    """The last outcomes per (stage, key, event type), at most `capacity` in all. See the module doc."""

    def __init__(self, capacity: int, per_type: int) -> None:
        assert capacity > 0 and per_type > 0
        self.capacity = capacity
        self.per_type = per_type
        self._entries: OrderedDict[tuple, Recorded] = OrderedDict()  # oldest first
        self._by_type: dict[tuple, deque[tuple]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, stage: str, key: str, origin_key: str, event_id: str) -> Recorded | None:
        return self._entries.get((stage, key, origin_key, event_id))

    def record(self, rec: Recorded) -> Recorded | None:
        """Remember an outcome. For a duplicate (not remembered itself), the original, if held."""
        if rec.key is None or rec.event_id is None:
            return None  # nothing to find it by: the envelope itself was bad, or a dead letter
        ident = (rec.stage, rec.key, rec.origin_key, rec.event_id)
        old = self._entries.get(ident)
        if rec.status == DUPLICATE:
            return old
        if rec.reason == Reason.IDEMPOTENCY_CONFLICT:
            return None  # judges a resend, not the event: the id stands for the one applied earlier
        if old is not None:
            if old.status == APPLIED and rec.status != APPLIED:
                return None  # applied is final: a conflicting resend does not undo it
            self._remove(ident, old)
        self._entries[ident] = rec
        group = (rec.stage, rec.key, rec.event_type)
        queue = self._by_type.get(group)
        if queue is None:
            queue = self._by_type[group] = deque()
        queue.append(ident)
        if len(queue) > self.per_type:
            self._entries.pop(queue.popleft(), None)
        while len(self._entries) > self.capacity:
            oldest, evicted = self._entries.popitem(last=False)
            self._forget_in_group(oldest, evicted)
        return None

    def _remove(self, ident: tuple, rec: Recorded) -> None:
        del self._entries[ident]
        self._forget_in_group(ident, rec)

    def _forget_in_group(self, ident: tuple, rec: Recorded) -> None:
        group = (rec.stage, rec.key, rec.event_type)
        queue = self._by_type.get(group)
        if queue is None:
            return
        with contextlib.suppress(ValueError):
            queue.remove(ident)  # at most per_type long
        if not queue:
            del self._by_type[group]


class OutcomeUnknown(Exception):
    """The record was consumed but its outcome cannot be reported (e.g. its partition moved)."""


class Waiters:
    """Requests waiting for the outcome of the record they produced, by (topic, partition, offset).

    A request calls `expect` before producing, so an outcome that arrives before the producer's
    acknowledgement (which carries the offset) is kept until the ticket learns its offset.
    `resolve` is called for every processed record and costs one set lookup when nobody waits.
    """

    MAX_EARLY = 100_000  # outcomes held per partition while an acknowledgement is outstanding

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, int], dict[int, asyncio.Future]] = {}
        self._unacked: dict[tuple[str, int], int] = {}
        self._early: dict[tuple[str, int], dict[int, Any]] = {}
        self._active: set[tuple[str, int]] = set()

    def expect(self, topic: str, partition: int) -> Ticket:
        tp = (topic, partition)
        self._unacked[tp] = self._unacked.get(tp, 0) + 1
        self._active.add(tp)
        return Ticket(self, tp)

    def resolve(self, topic: str, partition: int, offset: int, result: Any) -> None:
        tp = (topic, partition)
        if tp not in self._active:
            return
        waiting = self._waiting.get(tp)
        future = waiting.pop(offset, None) if waiting else None
        if future is not None:
            if not future.done():
                future.set_result(result)
        elif self._unacked.get(tp):
            early = self._early.setdefault(tp, {})
            early[offset] = result
            if len(early) > self.MAX_EARLY:
                del early[next(iter(early))]
        self._tidy(tp)

    def fail(self, topic: str, partition: int, error: Exception) -> None:
        """Every request waiting on this partition gets `error` (its partition was revoked)."""
        tp = (topic, partition)
        for future in self._waiting.pop(tp, {}).values():
            if not future.done():
                future.set_exception(error)
        self._early.pop(tp, None)
        self._tidy(tp)

    def pending(self) -> int:
        return sum(len(w) for w in self._waiting.values()) + sum(self._unacked.values())

    def _tidy(self, tp: tuple[str, int]) -> None:
        if not self._unacked.get(tp):
            self._unacked.pop(tp, None)
            self._early.pop(tp, None)
            if not self._waiting.get(tp):
                self._waiting.pop(tp, None)
                self._active.discard(tp)


class Ticket:
    """One request's wait: `sent(offset)` once produced, then `wait(timeout)`; `close()` always."""

    def __init__(self, registry: Waiters, tp: tuple[str, int]) -> None:
        self._registry = registry
        self._tp = tp
        self._acked = False
        self._offset: int | None = None
        self._future: asyncio.Future = asyncio.get_running_loop().create_future()

    def sent(self, offset: int) -> None:
        registry, tp = self._registry, self._tp
        self._settle_ack()
        self._offset = offset
        early = registry._early.get(tp)
        if early is not None and offset in early:
            self._future.set_result(early.pop(offset))
        else:
            registry._waiting.setdefault(tp, {})[offset] = self._future
            registry._active.add(tp)
        registry._tidy(tp)

    async def wait(self, timeout_s: float) -> Any:
        """The outcome; TimeoutError, or the error the partition's revocation set."""
        return await asyncio.wait_for(asyncio.shield(self._future), timeout_s)

    def close(self) -> None:
        registry, tp = self._registry, self._tp
        self._settle_ack()
        if self._offset is not None:
            waiting = registry._waiting.get(tp)
            if waiting is not None and waiting.get(self._offset) is self._future:
                del waiting[self._offset]
        if not self._future.done():
            self._future.cancel()
        registry._tidy(tp)

    def _settle_ack(self) -> None:
        if not self._acked:
            self._acked = True
            registry = self._registry
            registry._unacked[self._tp] = registry._unacked.get(self._tp, 1) - 1


class Coalescer:
    """`await run()` returns once a call of `action` that started after `run()` was called has
    finished (or raises its error). Concurrent callers share calls: at most one runs, one queued."""

    def __init__(self, action: Callable[[], Awaitable[None]]) -> None:
        self._action = action
        self._running: asyncio.Task | None = None
        self._queued: asyncio.Future | None = None

    async def run(self) -> None:
        done = self._queued
        if done is None:
            done = self._queued = asyncio.get_running_loop().create_future()
            done.add_done_callback(_retrieve)
            if self._running is None:
                self._start()
        await asyncio.shield(done)

    def _start(self) -> None:
        done, self._queued = self._queued, None
        assert done is not None
        self._running = asyncio.ensure_future(self._call(done))

    async def _call(self, done: asyncio.Future) -> None:
        try:
            await self._action()
        except Exception as error:
            done.set_exception(error)
        else:
            done.set_result(None)
        finally:
            self._running = None
            if self._queued is not None:
                self._start()


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()  # marks it retrieved: no "exception was never retrieved" when all waiters left
