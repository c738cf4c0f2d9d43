"""What every stage does around its handlers: the precedence of checks, dedup, the write set,
result ranges and the hash chain. A stage only says how each event type books.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from streams.core.events import (
    EventSpec,
    check_envelope,
    check_fields,
    check_ranges,
    event_payload,
    payload_digest,
)
from streams.core.hashchain import GENESIS_HASH, link_hash
from streams.core.model import (
    Balance,
    DedupEntry,
    JournalBatch,
    LedgerHalt,
    Outcome,
    Position,
    PositionView,
    Posting,
    Reason,
    Rejected,
    Signal,
)
from streams.core.numbers import VALUE_LIMIT
from streams.core.store import Store, Txn

DAY_US = 86_400 * 1_000_000
DEFAULT_DEDUP_WINDOW_US = 7 * DAY_US

# Record kinds under a stage key. Keys are tuples: (stage key, kind, ...ids).
BALANCE = "b"  # (key, "b", account, asset) -> int
DEDUP = "d"  # (key, "d", origin_key, event_id) -> DedupEntry
MAX_TS = "ts"  # (key, "ts") -> highest accepted producer ts_us
CHAIN = "~chain"  # (CHAIN, partition) -> (batch_seq, hash)


def position_view(market: str, user: str, position: Position) -> PositionView:
    """A position as outputs report it (the `state` property, without its attribute lookups)."""
    if position.liquidation_id is not None:
        state = "in_liquidation"
    else:
        state = "reduce_only" if position.reduce_only else "healthy"
    return PositionView(market, user, position.size, position.entry_price, state)


# A named tuple's own constructor is a Python function around this C call; the hot paths call it
# directly (same type, same fields, in field order).
_new_tuple = tuple.__new__


class Booking:
    """One event's work in progress: its transaction, postings, signals and emitted events."""

    __slots__ = ("_read", "balances", "emitted", "event", "key", "positions", "postings", "signals", "txn",
                 "writes")

    def __init__(self, txn: Txn, key: str, event: dict) -> None:
        self.txn = txn
        self.writes = txn.writes
        self._read = txn.store.get
        self.key = key
        self.event = event
        self.postings: list[Posting] = []
        # Balance after the event of every account posted to, kept as it is posted.
        self.balances: dict[tuple[str, str], int] = {}
        self.signals: list[Signal] = []
        self.emitted: list[dict] = []
        self.positions: dict[tuple[str, str], Position] = {}

    def balance(self, account: str, asset: str) -> int:
        known = self.balances.get((account, asset))
        if known is not None:
            return known
        # Only `post` writes balances, and it keeps `balances` too: a balance not in it is the store's.
        return self._read((self.key, BALANCE, account, asset), 0)

    def post(self, account: str, asset: str, amount_minor: int, kind: str) -> None:
        pair = (account, asset)
        before = self.balances.get(pair)
        if before is None:
            before = self._read((self.key, BALANCE, account, asset), 0)
        after = before + amount_minor
        self.balances[pair] = after
        self.writes[(self.key, BALANCE, account, asset)] = after
        self.postings.append(_new_tuple(Posting, (account, asset, amount_minor, kind)))

    def transfer(self, debit: str, credit: str, asset: str, amount_minor: int, kind: str) -> None:
        """Debit one account and credit another; a negative amount is the reverse; zero posts nothing."""
        if amount_minor == 0:
            return
        if amount_minor < 0:
            debit, credit, amount_minor = credit, debit, -amount_minor
        self.post(debit, asset, amount_minor, kind)
        self.post(credit, asset, -amount_minor, kind)


Handler = Callable[[Booking, dict], None]


class StageEngine:
    """Drives one stage's handlers over a store. Subclasses fill `handlers` and may override hooks."""

    stage = ""
    handlers: dict[str, Handler]

    def __init__(self, store: Store, *, dedup_window_us: int = DEFAULT_DEDUP_WINDOW_US) -> None:
        assert dedup_window_us > 0
        self.store = store
        self.dedup_window_us = dedup_window_us
        # Derived from the store (rebuilt by `recover`): dedup entries by age, per key, for eviction.
        self._dedup_by_age: dict[str, list[tuple[int, str, str]]] = {}
        self.duplicates = 0

    # Hooks -------------------------------------------------------------------------------------

    def refusal_events(self, event: dict) -> list[dict]:
        """Events a refused internal event emits (a refund); by default it may not be refused."""
        raise LedgerHalt(f"internal event {event['event_id']} could not be applied")

    def after_commit(self, booking: Booking) -> None:
        """Update derived in-memory structures once a write set is durable."""

    # Recovery ------------------------------------------------------------------------------------

    def recover(self) -> None:
        """Rebuild what is derived from the store (after a restart or a restore)."""
        by_age: dict[str, list[tuple[int, str, str]]] = {}
        for record, value in self.store.items():
            if len(record) == 4 and record[1] == DEDUP:
                by_age.setdefault(record[0], []).append((value.ts_us, record[2], record[3]))
        for entries in by_age.values():
            heapq.heapify(entries)
        self._dedup_by_age = by_age

    # The pipeline --------------------------------------------------------------------------------

    def apply(
        self,
        event: Any,
        *,
        trusted: bool = False,
        record_key: str | None = None,
        partition: int = 0,
    ) -> Outcome:
        """Apply one event: a journal batch, a duplicate, or a rejection that changes nothing."""
        try:
            spec = check_envelope(event, trusted)
        except Rejected as rejection:
            event_id = event.get("event_id") if isinstance(event, dict) else None
            event_type = event.get("type") if isinstance(event, dict) else None
            return self._rejection(
                None,
                event_id if isinstance(event_id, str) else None,
                event_type if isinstance(event_type, str) else None,
                rejection,
            )
        stage = self.stage
        event_id = event["event_id"]
        if spec.stage != stage:
            return self._rejection(None, event_id, spec.type,
                                   Rejected(Reason.INVALID_EVENT, f"{spec.type} belongs to the {spec.stage} stage"))
        key = event[spec.key_field]
        internal = spec.internal
        origin_key = ""
        if internal and trusted:
            origin_key = event.get("origin_key")
            if type(origin_key) is not str:
                raise LedgerHalt(f"internal event {event_id} carries no origin_key")
        payload = event_payload(event, spec)
        digest = payload_digest(payload)
        store = self.store
        read = store.get
        dedup_record = (key, DEDUP, origin_key, event_id)
        max_ts = read((key, MAX_TS))
        cutoff = None if max_ts is None else max_ts - self.dedup_window_us
        seen = read(dedup_record)
        if seen is not None and (cutoff is None or seen.ts_us >= cutoff):
            if seen.digest == digest:
                self.duplicates += 1
                return Outcome("duplicate", stage, key, event_id, spec.type, None, "", None, (), (), {})
            return self._rejection(key, event_id, spec.type,
                                   Rejected(Reason.IDEMPOTENCY_CONFLICT, "event_id seen with another payload"))
        try:
            if not internal and cutoff is not None and event["ts_us"] < cutoff:
                raise Rejected(Reason.EVENT_TOO_OLD, "older than the dedup window")
            check_ranges(event, spec)
            check_fields(event, spec, trusted, record_key)
        except Rejected as rejection:
            if internal and trusted:
                raise LedgerHalt(f"the ledger's own event {event_id} is malformed") from rejection
            return self._rejection(key, event_id, spec.type, rejection)

        txn = Txn(store)
        booking = Booking(txn, key, event)
        try:
            self.handlers[spec.type](self, booking, event)  # type: ignore[call-arg]
            balances = self._balances_after(booking)
            self._check_results(booking, balances)
        except Rejected as rejection:
            if not internal:
                return self._rejection(key, event_id, spec.type, rejection)
            # An internal event's outcome is final: its id enters the store even when refused, so a
            # redelivered copy can never apply after its refund.
            refused = Booking(Txn(store), key, event)
            refused.emitted = self.refusal_events(event)
            self._remember(refused.txn, dedup_record, event, digest, max_ts, cutoff, producer=False)
            store.apply(refused.txn.writes)
            return Outcome("rejected", stage, key, event_id, spec.type, rejection.reason,
                           rejection.detail, None, (), tuple(refused.emitted), refused.txn.writes)

        self._remember(txn, dedup_record, event, digest, max_ts, cutoff, producer=not internal)
        batch = self._seal(booking, spec, origin_key, payload, balances, partition)
        writes = txn.writes
        store.apply(writes)
        self.after_commit(booking)
        return _new_tuple(Outcome, ("applied", stage, key, event_id, spec.type, None, "", batch,
                                    tuple(booking.signals), tuple(booking.emitted), writes))

    # Internals -----------------------------------------------------------------------------------

    def _rejection(self, key: str | None, event_id: str | None, event_type: str | None,
                   rejection: Rejected) -> Outcome:
        return Outcome("rejected", self.stage, key, event_id, event_type, rejection.reason,
                       rejection.detail, None, (), (), {})

    def _balances_after(self, booking: Booking) -> tuple[Balance, ...]:
        """The balance after the event of every account it touched, in account order."""
        return tuple([_new_tuple(Balance, (account, asset, after))
                      for (account, asset), after in sorted(booking.balances.items())])

    def _check_results(self, booking: Booking, balances: tuple[Balance, ...]) -> None:
        """Results outside decimal(38, 0) reject the whole event, last in precedence (spec §1)."""
        for posting in booking.postings:
            if not -VALUE_LIMIT < posting[2] < VALUE_LIMIT:
                raise Rejected(Reason.VALUE_OUT_OF_RANGE, f"posting on {posting.account} out of range")
        for balance in balances:
            if not -VALUE_LIMIT < balance[2] < VALUE_LIMIT:
                raise Rejected(Reason.VALUE_OUT_OF_RANGE, f"balance of {balance.account} out of range")
        for position in booking.positions.values():
            if not (-VALUE_LIMIT < position[0] < VALUE_LIMIT and position[1] < VALUE_LIMIT):
                raise Rejected(Reason.VALUE_OUT_OF_RANGE, "position size or entry out of range")
        for signal in booking.signals:
            if signal.amount is not None and not signal.amount < VALUE_LIMIT:
                raise Rejected(Reason.VALUE_OUT_OF_RANGE, "signal amount out of range")
        for emitted in booking.emitted:
            if not emitted["amount"] < VALUE_LIMIT:
                raise Rejected(Reason.VALUE_OUT_OF_RANGE, "emitted amount out of range")

    def _remember(self, txn: Txn, record: tuple, event: dict, digest: bytes, max_ts: int | None,
                  cutoff: int | None, *, producer: bool) -> None:
        """Enter the event in the dedup store and forget what fell out of the window.

        `record` is the event's dedup key (key, DEDUP, origin_key, event_id); `max_ts` and `cutoff`
        are as read before the handler ran (only this method writes MAX_TS).
        """
        key, _, origin_key, event_id = record
        ts_us = event["ts_us"]
        txn.writes[record] = _new_tuple(DedupEntry, (digest, ts_us))
        aged = self._dedup_by_age.get(key)
        if aged is None:
            aged = self._dedup_by_age[key] = []
        heapq.heappush(aged, (ts_us, origin_key, event_id))
        if producer and (max_ts is None or ts_us > max_ts):
            txn.writes[(key, MAX_TS)] = ts_us
            cutoff = ts_us - self.dedup_window_us
        # Lookups already ignore entries older than the cutoff, so eviction changes no outcome; it
        # only bounds the store. An id accepted again after it was forgotten has a newer entry: the
        # popped one is removed only if it is still the stored one.
        if cutoff is not None:
            while aged and aged[0][0] < cutoff:
                old_ts, old_origin, old_id = heapq.heappop(aged)
                old_record = (key, DEDUP, old_origin, old_id)
                stored = txn.get(old_record)
                if stored is not None and stored.ts_us == old_ts:
                    txn.delete(old_record)

    def _seal(self, booking: Booking, spec: EventSpec, origin_key: str, payload: list[object],
              balances: tuple[Balance, ...], partition: int) -> JournalBatch:
        """Close the batch: positions changed, the next link of the chain."""
        key, stage = booking.key, self.stage
        positions = tuple([
            position_view(market, user, position)
            for (market, user), position in sorted(booking.positions.items())
        ]) if booking.positions else ()
        chain_record = (CHAIN, partition)
        # Only this method writes the chain head, once per event: the store's value is current.
        batch_seq, prev_hash = self.store.get(chain_record) or (0, GENESIS_HASH)
        batch_seq += 1
        payload_tuple, postings = tuple(payload), tuple(booking.postings)
        digest = link_hash(prev_hash, (stage, key, origin_key, batch_seq, payload_tuple, postings, balances,
                                       positions))
        booking.writes[chain_record] = (batch_seq, digest)
        event = booking.event
        return _new_tuple(JournalBatch, (stage, key, origin_key, event["event_id"], spec.type, event["ts_us"],
                                         batch_seq, payload_tuple, postings, balances, positions, prev_hash,
                                         digest))
