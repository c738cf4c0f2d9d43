"""The Faust app: one agent per stage, state in RocksDB tables with changelog topics.

Each agent reads its stage's input topic (`concurrency=1`: faust loses messages with more, #606;
scale with partitions and workers instead) and hands every record to the `PartitionProcessor` of
its partition, which owns the effectively-once protocol. The processors hold the state of their
partitions in memory, loaded from the table on the first record after an assignment, and are
dropped when the partition is revoked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import faust
from faust.types import TP

from streams.app.config import Settings
from streams.app.outputs import Output
from streams.app.processor import PartitionProcessor
from streams.codec import Codec
from streams.core.account_stage import AccountStage
from streams.core.engine import StageEngine
from streams.core.events import ACCOUNT, MARKET
from streams.core.market_stage import MarketStage
from streams.topics import ACCOUNT_EVENTS, DLQ, JOURNAL, MARKET_EVENTS, REJECTIONS, SIGNALS

log = logging.getLogger("perpledger.worker")

STAGES: tuple[tuple[str, str, type[StageEngine]], ...] = (
    (ACCOUNT, ACCOUNT_EVENTS, AccountStage),
    (MARKET, MARKET_EVENTS, MarketStage),
)


class FaustPartitionTable:
    """The part of a Faust table that belongs to one partition, as the processor sees it."""

    def __init__(self, table: faust.Table, partition: int) -> None:
        self._table = table
        self._partition = partition

    def get(self, key: bytes) -> bytes | None:
        return self._table.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self._table[key] = value  # also sent to the changelog partition of the current event

    def delete(self, key: bytes) -> None:
        if key in self._table:
            del self._table[key]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        # Faust keeps one RocksDB per partition; iterating it directly reads only this partition
        # (the public iteration covers every assigned partition).
        db = self._table.data._db_for_partition(self._partition)
        return iter(db.items())


class Ledger:
    """The running ledger: the Faust app, its topics, tables, agents and partition processors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = Codec()
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.bootstrap}",
            store="rocksdb://",
            datadir=str(settings.data_dir),
            topic_partitions=settings.partitions,
            topic_replication_factor=1,
            key_serializer="raw",
            value_serializer="raw",
            web_host=settings.web_host,
            web_port=settings.web_port,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
            # Changelog partitions are restored in full on recovery: no standby replicas to catch up.
            stream_wait_empty=False,
        )
        self.output_topics = {
            name: self.app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.partitions)
            for name in (JOURNAL, REJECTIONS, SIGNALS, DLQ, ACCOUNT_EVENTS, MARKET_EVENTS)
        }
        self.processors: dict[str, dict[int, PartitionProcessor]] = {}
        for stage, topic_name, engine in STAGES:
            self._add_stage(stage, topic_name, engine)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)

    def _add_stage(self, stage: str, topic_name: str, engine: type[StageEngine]) -> None:
        settings = self.settings
        table = self.app.Table(
            f"{stage}-state", partitions=settings.partitions, key_type=bytes, value_type=bytes,
            options={"block_cache_size": settings.rocksdb_block_cache_bytes,
                     "block_cache_compressed_size": settings.rocksdb_block_cache_bytes // 4},
        )
        processors: dict[int, PartitionProcessor] = {}
        self.processors[stage] = processors
        consumer_topic = self.output_topics[topic_name]

        async def run(stream: Any) -> None:
            async for event in stream.events():
                message = event.message
                processor = processors.get(message.partition)
                if processor is None:
                    processor = PartitionProcessor(
                        engine, topic_name, message.partition, FaustPartitionTable(table, message.partition),
                        self.codec, settings.internal_key, settings.dedup_window_us)
                    await self._send(processor.load())
                    processors[message.partition] = processor
                await self._send(processor.process(message.offset, message.key, message.value))
                committed = self.app.consumer._committed_offset.get(message.tp)
                if committed is not None:
                    processor.forget_committed(committed)

        self.app.agent(consumer_topic, name=f"{stage}-stage", concurrency=1)(run)

    async def _send(self, outputs: list[Output]) -> None:
        topics = self.output_topics
        for output in outputs:
            await topics[output.topic].send(key=output.key, value=output.value)

    async def _on_partitions_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        """A revoked partition may come back later, changed by another worker: load it afresh then."""
        for stage, topic_name, _ in STAGES:
            for tp in revoked:
                if tp.topic == topic_name:
                    self.processors[stage].pop(tp.partition, None)
