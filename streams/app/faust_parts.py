"""Faust 0.15.3 as the ledger needs it: three parts that replace Faust defaults, each for a reason
found with the kill and rebalance tests (the worker is in streams/app/worker.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import faust
from faust.tables import TableManager
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP


class FaustPartitionTable:
    """The part of a Faust table that belongs to one partition, as the processor sees it.

    Writes go straight to the partition's own RocksDB and changelog partition. Why not through the
    table's mapping API: Faust's RocksDB store finds the database of a key to delete through one key
    index shared by every partition (or, for a key it has not indexed, deletes it in every
    partition's database), so a delete could strike another partition's copy of the key."""

    def __init__(self, table: faust.Table, partition: int) -> None:
        self._table = table
        self._partition = partition
        # Delivery futures of the changelog messages written since the last `take_sent`.
        self._sent: list[Any] = []

    def set(self, key: bytes, value: bytes) -> None:
        # The changelog message's delivery future is kept: the input record is acknowledged only
        # once Kafka has acknowledged every one of them.
        self._db().put(key, value)
        self._sent.append(self._table.send_changelog(self._partition, key, value))

    def delete(self, key: bytes) -> None:
        self._db().delete(key)
        self._sent.append(self._table.send_changelog(self._partition, key, None, value_serializer="raw"))

    def take_sent(self) -> list[Any]:
        sent, self._sent = self._sent, []
        return sent

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        # Faust keeps one RocksDB per partition; iterating it directly reads only this partition
        # (the public iteration covers every assigned partition).
        return iter(self._db().items())

    def _db(self) -> Any:
        # Looked up on every use, never kept: Faust drops its handle when the partition is revoked
        # and RocksDB's lock is released only once no handle is left.
        return self._table.data._db_for_partition(self._partition)


class CommitConfirmingTableManager(TableManager):
    """Faust's table manager, also keeping the offsets whose commit Kafka confirmed.

    Why: intents may be deleted only below an offset that is really committed. Faust's consumer
    records an offset as committed (`_committed_offset`) even when the commit failed, e.g. during a
    rebalance; intents deleted on that word let the re-delivered records be applied again. Faust
    calls `on_commit` only after a commit succeeded."""

    def __init__(self, app: faust.App, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.confirmed_commits: dict[TP, int] = {}

    def on_commit(self, offsets: Any) -> None:
        super().on_commit(offsets)
        self.confirmed_commits.update(offsets)


class InputSeekingConsumer(faust_aiokafka.Consumer):
    """Faust's consumer, careful with input partitions: gaps count as acknowledged only once verified,
    and partitions without a committed offset are sought too.

    Why: Faust drops the records it fetches while a partition's flow is suspended (during a
    rebalance and the table recovery after it) and brings them back by seeking every partition to
    its committed offset once recovery is done. aiokafka's `seek_to_committed` skips a partition
    whose committed offset is missing or 0, so the records such a partition fetched during recovery
    never came back: a worker that took over a partition nobody had committed yet stalled on it,
    alive and idle. Seeking those to offset 0 re-reads them as the committed offset would (the
    processors skip what they applied already; an offset below the log start resets to the earliest,
    as `consumer_auto_offset_reset` says)."""

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Faust counts every gap in the offsets it delivers as acknowledged, so that commits pass
        records a compaction removed. On an input topic such a gap may also be a record Faust dropped
        before the agent got it, and a commit past it would lose that record for good (Faust commits
        on its timer and when it stops). Input gaps count only once the broker confirmed them empty
        (`add_verified_gap`)."""
        if tp.topic not in self.transport.input_topics:  # type: ignore[attr-defined]
            await super()._add_gap(tp, offset_from, offset_to)

    async def add_verified_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Offsets `offset_from..offset_to` of an input partition hold no records: commits may pass them."""
        await super()._add_gap(tp, offset_from, offset_to)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        input_topics = self.transport.input_topics  # type: ignore[attr-defined]
        for tp, offset in committed.items():
            if not offset and tp.topic in input_topics:
                await self.seek(TP(tp.topic, tp.partition), 0)
        return committed


class InputSeekingTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with `InputSeekingConsumer`, for the given input topics."""

    Consumer = InputSeekingConsumer

    def __init__(self, app: faust.App, input_topics: frozenset[str]) -> None:
        super().__init__(app.conf.broker_consumer, app, loop=app.loop)
        self.input_topics = input_topics
