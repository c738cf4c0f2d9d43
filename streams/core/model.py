"""Records the core reads and writes, and what one event produces.

State records are immutable tuples: a change writes a new value, so a transaction can be dropped
whole when an event is rejected (AC-12) and the write set of an event is exactly its new values.
"""

from __future__ import annotations

from typing import NamedTuple


class Reason:
    """Rejection reason codes (ledger-spec §4), plus the two the spec left unnamed."""

    INVALID_EVENT = "INVALID_EVENT"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    EVENT_TOO_OLD = "EVENT_TOO_OLD"
    VALUE_OUT_OF_RANGE = "VALUE_OUT_OF_RANGE"
    INVALID_RISK_PARAMS = "INVALID_RISK_PARAMS"
    SAME_ACCOUNT = "SAME_ACCOUNT"
    UNKNOWN_MARKET = "UNKNOWN_MARKET"
    MARKET_EXISTS = "MARKET_EXISTS"
    SEQUENCE_GAP = "SEQUENCE_GAP"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    EPOCH_GAP = "EPOCH_GAP"
    EPOCH_NOT_SNAPSHOT = "EPOCH_NOT_SNAPSHOT"
    EPOCH_SETTLED = "EPOCH_SETTLED"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    DEPOSIT_MISMATCH = "DEPOSIT_MISMATCH"
    DEPOSIT_RESOLVED = "DEPOSIT_RESOLVED"
    # A second DepositInitiated for a pending deposit_id: ids are never reused (spec §8).
    DEPOSIT_EXISTS = "DEPOSIT_EXISTS"
    UNKNOWN_WITHDRAWAL = "UNKNOWN_WITHDRAWAL"
    WITHDRAWAL_RESOLVED = "WITHDRAWAL_RESOLVED"
    WITHDRAWAL_MISMATCH = "WITHDRAWAL_MISMATCH"
    # A second WithdrawalRequested for a known withdrawal_id.
    WITHDRAWAL_EXISTS = "WITHDRAWAL_EXISTS"
    LIQUIDATION_SIDE_MISMATCH = "LIQUIDATION_SIDE_MISMATCH"
    LIQUIDATION_NOT_FLAT = "LIQUIDATION_NOT_FLAT"


class Rejected(Exception):
    """Raised inside a handler: the event changes nothing and is reported with `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


class LedgerHalt(Exception):
    """An internal credit could not be applied: stop the partition rather than lose money (spec §8)."""


class Posting(NamedTuple):
    account: str
    asset: str
    amount: int  # minor units, debit positive
    kind: str


class Balance(NamedTuple):
    account: str
    asset: str
    balance: int  # minor units after the event; for shared accounts, this key's share


class PositionView(NamedTuple):
    market: str
    user: str
    size: int  # size units, + long, - short
    entry_price: int  # price units
    state: str  # healthy | reduce_only | in_liquidation


class Signal(NamedTuple):
    type: str  # LiquidationTriggered | ReduceOnlyEntered | ReduceOnlyExited | DeficitUncovered
    market: str
    user: str
    liquidation_id: str | None = None
    amount: int | None = None  # DeficitUncovered: minor units left as debt


class JournalBatch(NamedTuple):
    stage: str
    key: str
    origin_key: str  # the stage key that emitted an internal event, "" for producer events
    event_id: str
    event_type: str
    ts_us: int
    batch_seq: int  # position in the (stage, partition) hash chain, from 1
    payload: tuple  # the event as hashed: type, event_id, source, ts_us, then its fields in spec order
    postings: tuple[Posting, ...]
    balances: tuple[Balance, ...]
    positions: tuple[PositionView, ...]
    prev_hash: str
    hash: str


class Outcome(NamedTuple):
    """What one input event did. `status` is applied, duplicate or rejected."""

    status: str
    stage: str
    key: str | None
    event_id: str | None
    event_type: str | None
    reason: str | None
    detail: str
    batch: JournalBatch | None
    signals: tuple[Signal, ...]
    emitted: tuple[dict, ...]  # internal events for the other stage or key, in emission order
    writes: dict  # the write set: store key -> new value (DELETED for a removal)


# State records --------------------------------------------------------------------------------


class Market(NamedTuple):
    settlement_asset: str
    settlement_decimals: int
    price_decimals: int
    size_decimals: int
    initial_margin_ppm: int
    maintenance_margin_ppm: int
    liquidation_fee_ppm: int
    mark_price: int | None  # None until the first mark: positions then use their entry price
    price_seq: int
    last_snapshot_epoch: int


class Position(NamedTuple):
    size: int
    entry_price: int
    reduce_only: bool
    liquidation_id: str | None  # the open liquidation, if any

    @property
    def state(self) -> str:
        if self.liquidation_id is not None:
            return "in_liquidation"
        return "reduce_only" if self.reduce_only else "healthy"


FLAT = Position(0, 0, False, None)


class FundingSnapshot(NamedTuple):
    rate_ppb: int
    price: int
    settled: bool


class Liquidation(NamedTuple):
    user: str
    open: bool


class Deposit(NamedTuple):
    asset: str
    amount: int
    confirmed: bool


class Withdrawal(NamedTuple):
    asset: str
    amount: int
    resolved: bool


class DedupEntry(NamedTuple):
    digest: bytes
    ts_us: int
