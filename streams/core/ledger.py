"""Both stages in one process, with internal events delivered in line: the offline ledger.

This is what `perpledger replay` and the tests drive. The streaming layer runs the same stages,
one partition at a time, and carries internal events over Kafka instead of this queue.
"""

from __future__ import annotations

from collections.abc import Iterator

from streams.core.account_stage import AccountStage
from streams.core.engine import BALANCE, CHAIN, DEFAULT_DEDUP_WINDOW_US, StageEngine
from streams.core.events import ACCOUNT, spec_for
from streams.core.hashchain import GENESIS_HASH
from streams.core.market_stage import POSITION, MarketStage
from streams.core.model import Outcome, PositionView
from streams.core.store import DictStore

# An event emits at most one internal event, and chains end after two hops
# (MarginTransferRequested -> MarginCredited -> MarginReturned).
_MAX_EVENTS_PER_INPUT = 3


class Ledger:
    def __init__(self, *, dedup_window_us: int = DEFAULT_DEDUP_WINDOW_US) -> None:
        self.account = AccountStage(DictStore(), dedup_window_us=dedup_window_us)
        self.market = MarketStage(DictStore(), dedup_window_us=dedup_window_us)

    def stage_for(self, event: object) -> StageEngine:
        spec = spec_for(event.get("type")) if isinstance(event, dict) else None
        if spec is None or spec.stage == ACCOUNT:
            return self.account  # an unroutable event is rejected by either stage's envelope check
        return self.market

    def submit(self, event: object) -> list[Outcome]:
        """Apply a producer's event, then every internal event it causes, in emission order."""
        outcomes: list[Outcome] = []
        queue: list[tuple[object, bool]] = [(event, False)]
        for current, trusted in queue:  # a list iterated while it grows: first in, first applied
            assert len(outcomes) < _MAX_EVENTS_PER_INPUT, "internal events must not cascade"
            outcome = self.stage_for(current).apply(current, trusted=trusted)
            outcomes.append(outcome)
            if outcome.emitted:
                queue.extend([(emitted, True) for emitted in outcome.emitted])
        return outcomes

    @property
    def stages(self) -> tuple[StageEngine, StageEngine]:
        return self.account, self.market

    def balances(self) -> dict[tuple[str, str], int]:
        """Every account's balance over all keys (shared accounts summed), zeros left out."""
        totals: dict[tuple[str, str], int] = {}
        for stage in self.stages:
            for record, value in stage.store.items():
                if len(record) == 4 and record[1] == BALANCE:
                    account_asset = (record[2], record[3])
                    totals[account_asset] = totals.get(account_asset, 0) + value
        return {k: v for k, v in sorted(totals.items()) if v != 0}

    def positions(self) -> Iterator[PositionView]:
        """Open (non-flat) positions, by market then user."""
        rows = [
            PositionView(record[0], record[2], value.size, value.entry_price, value.state)
            for record, value in self.market.store.items()
            if len(record) == 3 and record[1] == POSITION and value.size != 0
        ]
        return iter(sorted(rows))

    def final_hashes(self) -> dict[str, str]:
        return {stage.stage: (stage.store.get((CHAIN, 0)) or (0, GENESIS_HASH))[1] for stage in self.stages}
