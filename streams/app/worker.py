"""The Faust app: one agent per stage, state in RocksDB tables with changelog topics.

Each agent reads its stage's input topic (`concurrency=1`: faust loses messages with more, #606;
scale with partitions and workers instead) and hands every record to the `PartitionProcessor` of
its partition, which applies it in memory. The records a stage applied are sealed as a group (see
streams/app/processor.py) when the group is full or has waited `group_linger_ms`: intents and
state writes to the changelog, outputs to the producer; the group's input records are acknowledged
once Kafka has acknowledged all of that. The processors hold the state of their partitions in
memory, loaded from the table on the first record after an assignment, and are dropped when the
partition is revoked (after their open group is sealed).

Observers (metrics, logs, the HTTP API) are called after a record's outputs are handed to the
producer, with a `Processed` that says what was done; an observer that fails is logged and never
stops the agent.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import faust
from faust.types import TP

from streams.api.http import HttpApi
from streams.app.config import Settings
from streams.app.faust_parts import CommitConfirmingTableManager, FaustPartitionTable, InputSeekingTransport
from streams.app.metrics import Metrics
from streams.app.outputs import Output
from streams.app.processor import Applied, PartitionProcessor
from streams.codec import Codec
from streams.core.account_stage import AccountStage
from streams.core.engine import CHAIN, StageEngine
from streams.core.events import ACCOUNT, MARKET
from streams.core.market_stage import MarketStage
from streams.topics import (
    ACCOUNT_EVENTS,
    DLQ,
    JOURNAL,
    MARKET_EVENTS,
    MAX_REQUEST_BYTES,
    REJECTIONS,
    SIGNALS,
    first_record_offset,
    topic_config,
)

log = logging.getLogger("perpledger.worker")
# How long the broker may take to say whether a gap in input offsets holds records.
_GAP_PROBE_TIMEOUT_S = 10.0

STAGES: tuple[tuple[str, str, type[StageEngine]], ...] = (
    (ACCOUNT, ACCOUNT_EVENTS, AccountStage),
    (MARKET, MARKET_EVENTS, MarketStage),
)


Unacked = deque[tuple[list[Any], list[Any]]]  # (input records, delivery futures of their effects)


def ack_durable(unacked: Unacked) -> None:
    """Acknowledge, in order, the input records whose changelog writes and outputs Kafka acknowledged."""
    while unacked:
        events, futures = unacked[0]
        if not all(future.done() for future in futures):
            return
        for future in futures:
            # A record not written: stop rather than commit past it. (RuntimeError, not the future's
            # own CancelledError: Faust ends a task that raises CancelledError without a word.)
            if future.cancelled():
                raise RuntimeError("a changelog write or output was cancelled")
            if future.exception() is not None:
                raise RuntimeError(f"a changelog write or output failed: {future.exception()!r}")
        unacked.popleft()
        for event in events:
            event.ack()


class Processed(NamedTuple):
    """One input record, processed and its outputs handed to the producer (for observers)."""

    stage: str
    topic: str
    partition: int
    offset: int
    processor: PartitionProcessor
    applied: Applied | None  # None: applied before a restart, its outputs went out again from load()
    apply_s: float  # time in `process`: the core and the state in memory


class OpenGroup:
    """What a stage applied since its last group was sealed."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.processed: list[Processed] = []
        self.processors: dict[int, PartitionProcessor] = {}
        self.opened_s = 0.0  # monotonic time of its first record

    def add(self, event: Any, processed: Processed) -> None:
        if not self.events:
            self.opened_s = time.monotonic()
        self.events.append(event)
        self.processed.append(processed)
        self.processors[processed.partition] = processed.processor


class Stage:
    """One stage's agent state: its partitions' processors, its open group, what awaits acks."""

    def __init__(self, name: str, topic: str, engine: type[StageEngine]) -> None:
        self.name = name
        self.topic = topic
        self.engine = engine
        self.processors: dict[int, PartitionProcessor] = {}
        self.group = OpenGroup()
        self.unacked: Unacked = deque()
        # One seal at a time: two interleaved seals could reorder a chain's journal records.
        self.sealing = asyncio.Lock()


Observer = Callable[[Processed], None]


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
            producer_max_request_size=MAX_REQUEST_BYTES,  # a journal batch may be large (streams/topics.py)
            # A worker that dies is noticed after this long and its partitions move (Faust's
            # default, 60 s, is a minute of stalled partitions per crash).
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 5),
            consumer_auto_offset_reset="earliest",
            table_standby_replicas=0,
            # Changelog partitions are restored in full on recovery: no standby replicas to catch up.
            stream_wait_empty=False,
            # Faust's own pages would serve table contents and routing metadata without
            # authentication: only the ledger's API (streams/api/http.py) is served.
            web_tables_enabled=False,
            web_router_enabled=False,
            web_stats_enabled=False,
            web_graph_enabled=False,
            web_application_options={"client_max_size": settings.api_max_body_bytes},
            TableManager=CommitConfirmingTableManager,
            **({"canonical_url": settings.canonical_url} if settings.canonical_url else {}),
        )
        self.app.transport = InputSeekingTransport(self.app, frozenset(topic for _, topic, _ in STAGES))
        self.metrics = Metrics()
        self.observers: list[Observer] = [self._observe_metrics, _log_outcome]
        self.output_topics = {
            name: self.app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.partitions)
            for name in (JOURNAL, REJECTIONS, SIGNALS, DLQ, ACCOUNT_EVENTS, MARKET_EVENTS)
        }
        self.stages = {stage: Stage(stage, topic, engine) for stage, topic, engine in STAGES}
        # Each stage's processors by partition (the HTTP API reads state through them).
        self.processors = {name: stage.processors for name, stage in self.stages.items()}
        self.tables: dict[str, faust.Table] = {}
        for stage in self.stages.values():
            self._add_stage(stage)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)
        self.app.task(self._seal_lingering_groups)
        self._add_gauges()
        self.api = HttpApi(self)

    def changelog_topics(self) -> tuple[str, ...]:
        return tuple(table.changelog_topic.get_topic_name() for table in self.tables.values())

    def _add_stage(self, stage: Stage) -> None:
        settings = self.settings
        table = self.app.Table(
            f"{stage.name}-state", partitions=settings.partitions, key_type=bytes, value_type=bytes,
            extra_topic_configs=topic_config(f"{settings.app_id}-{stage.name}-state-changelog"),
            options={"block_cache_size": settings.rocksdb_block_cache_bytes,
                     "block_cache_compressed_size": settings.rocksdb_block_cache_bytes // 4},
        )
        self.tables[stage.name] = table

        async def run(stream: Any) -> None:
            # Input records are acknowledged by hand (`noack`): only once the changelog writes and
            # the outputs they caused are acknowledged by Kafka, so Faust never commits an offset
            # whose effects could still be lost. (Faust's own flush before a commit gives up on its
            # buffer after 0.1 s; the kill test caught committed offsets with lost writes.)
            async for event in stream.noack().events():
                message = event.message
                processor = stage.processors.get(message.partition)
                if processor is None:
                    processor = await self._load(stage, table, message.partition)
                if message.offset > processor.applied_through + 1 and await self._records_skipped(
                        stage, processor, message.offset):
                    await self._input_hole(stage, processor, message.offset)
                    return
                started = time.perf_counter()
                applied = processor.process(message.offset, message.key, message.value)
                apply_s = time.perf_counter() - started
                stage.group.add(event, Processed(stage.name, stage.topic, message.partition, message.offset,
                                                 processor, applied, apply_s))
                if len(stage.group.events) >= settings.group_max_records:
                    await self._seal(stage)

        self.app.agent(self.output_topics[stage.topic], name=f"{stage.name}-stage", concurrency=1)(run)

    async def _load(self, stage: Stage, table: faust.Table, partition: int) -> PartitionProcessor:
        """The processor of a newly assigned partition, its state loaded, its unfinished groups resent."""
        settings = self.settings
        processor = PartitionProcessor(stage.engine, stage.topic, partition, FaustPartitionTable(table, partition),
                                       self.codec, settings.internal_key, settings.dedup_window_us)
        resend = processor.load()
        stage.unacked.append(([], [*processor.table.take_sent(), *await self._send(resend)]))
        stage.processors[partition] = processor
        log.info("partition loaded", extra={"stage": stage.name, "partition": partition,
                                            "applied_through": processor.applied_through,
                                            "outputs_resent": len(resend)})
        return processor

    async def _records_skipped(self, stage: Stage, processor: PartitionProcessor, offset: int) -> bool:
        """Whether offsets between the last record applied and `offset` hold records the agent never
        got, asked of the broker. Offsets may also hold what no consumer is given (a transactional
        producer's commit markers, records compaction removed): such a gap is no loss. (Unsure,
        e.g. the broker does not answer in time: counted as records.)"""
        expected = processor.applied_through + 1
        first = await asyncio.get_running_loop().run_in_executor(
            None, first_record_offset, self.settings.bootstrap, stage.topic, processor.partition, expected,
            _GAP_PROBE_TIMEOUT_S)
        if first == offset:
            log.info("input offsets without records skipped", extra={
                "stage": stage.name, "partition": processor.partition, "from_offset": expected, "to_offset": offset})
            await self.app.consumer.add_verified_gap(TP(stage.topic, processor.partition), expected, offset - 1)
            return False
        return True

    async def _input_hole(self, stage: Stage, processor: PartitionProcessor, offset: int) -> None:
        """Input records between the last one applied and `offset` never reached the agent: stop the
        worker. Applying past them would lose them for good; a restart reads them again from the
        committed offset, which never passes them. (Faust drops records it fetches while its flow is
        suspended and counts on a later seek to bring them back.)"""
        log.error("input records missing: stopping the worker", extra={
            "stage": stage.name, "partition": processor.partition,
            "expected_offset": processor.applied_through + 1, "received_offset": offset})
        await self.app.crash(RuntimeError(f"{stage.topic}[{processor.partition}]: records missing before {offset}"))

    async def _seal(self, stage: Stage) -> None:
        """Seal the stage's open group: intents and state writes, then outputs; then tell observers."""
        async with stage.sealing:
            group, stage.group = stage.group, OpenGroup()
            if not group.events:
                return
            futures: list[Any] = []
            outputs: list[Output] = []
            confirmed = self.app.tables.confirmed_commits
            for partition, processor in group.processors.items():
                outputs.extend(processor.seal())
                committed = confirmed.get(TP(stage.topic, partition))
                if committed is not None:
                    processor.forget_committed(committed)
                futures.extend(processor.table.take_sent())
            futures.extend(await self._send(outputs))
            stage.unacked.append((group.events, futures))
            ack_durable(stage.unacked)
        for processed in group.processed:
            self._notify(processed)

    async def _send(self, outputs: list[Output]) -> list[Any]:
        """Send outputs, in order; their delivery futures. (Through Faust's topics: sending straight to
        the producer measured half again faster, but the faster agent met Faust dropping fetched
        input records at start-up; see the README's performance section.)"""
        topics = self.output_topics
        return [await topics[output.topic].send(key=output.key, value=output.value) for output in outputs]

    async def _seal_lingering_groups(self) -> None:
        """Seal a group once it has waited `group_linger_ms`, also when no new record arrives, and
        acknowledge the records whose effects Kafka has acknowledged since. (A loop, not a Faust
        timer: a seal waits for the producer and may well outlast a few milliseconds' interval.)"""
        linger_s = self.settings.group_linger_ms / 1000
        while True:
            await asyncio.sleep(linger_s)
            for stage in self.stages.values():
                if stage.group.events and time.monotonic() - stage.group.opened_s >= linger_s:
                    await self._seal(stage)
                ack_durable(stage.unacked)

    async def _on_partitions_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        """Seal what was applied, then forget the revoked partitions: one that comes back later may
        have been changed by another worker, and is loaded afresh then."""
        for stage in self.stages.values():
            await self._seal(stage)
            for tp in revoked:
                if tp.topic == stage.topic:
                    stage.processors.pop(tp.partition, None)

    # Observers -----------------------------------------------------------------------------------

    def _notify(self, processed: Processed) -> None:
        for observer in self.observers:
            try:
                observer(processed)
            except Exception:
                log.exception("observer failed", extra={"stage": processed.stage, "partition": processed.partition,
                                                        "offset": processed.offset})

    def _observe_metrics(self, processed: Processed) -> None:
        applied = processed.applied
        outcome = None if applied is None else applied.outcome
        error = None if applied is None else applied.error
        self.metrics.observe(processed.stage, outcome, None if error is None else error.kind, processed.apply_s,
                             time.time())

    def ready(self) -> tuple[bool, str]:
        """Ready once the tables are recovered and no rebalance or recovery is under way."""
        app = self.app
        if not app.tables.recovery.completed.is_set():
            return False, "recovering"
        if app.rebalancing:
            return False, "rebalancing"
        if app.in_recovery:
            return False, "recovering"
        return True, "ready"

    def _add_gauges(self) -> None:
        metrics = self.metrics
        metrics.add_gauge("perpledger_ready", "1 once tables are recovered and no rebalance is under way", (),
                          lambda: [((), 1.0 if self.ready()[0] else 0.0)])
        metrics.add_gauge("perpledger_consumer_lag", "Input records not yet applied, per input partition",
                          ("stage", "partition"), self._lag_samples)
        metrics.add_gauge("perpledger_state_records", "Records in a partition's state (its table, in memory)",
                          ("stage", "partition"), self._size_samples)
        metrics.add_gauge("perpledger_chain_batch_seq", "The last journal batch of a partition's hash chain",
                          ("stage", "partition"), self._chain_samples)
        metrics.add_gauge("perpledger_last_applied_offset", "The last input offset a partition applied (in memory)",
                          ("stage", "partition"), self._applied_samples)

    def _lag_samples(self) -> Iterable[tuple[tuple[str, ...], float]]:
        try:
            consumer = self.app.consumer
            assignment = consumer.assignment()
        except Exception:  # not started yet
            return []
        samples = []
        for stage, topic_name, _ in STAGES:
            for tp in sorted(tp for tp in assignment if tp.topic == topic_name):
                try:
                    highwater = consumer.highwater(tp)
                except Exception:
                    highwater = None
                if highwater is None:
                    continue
                processor = self.processors[stage].get(tp.partition)
                if processor is not None:
                    position = processor.applied_through + 1
                else:
                    position = consumer._committed_offset.get(tp) or 0
                samples.append(((stage, str(tp.partition)), float(max(0, highwater - position))))
        return samples

    def _chain_samples(self) -> Iterable[tuple[tuple[str, ...], float]]:
        samples = []
        for stage, processors in self.processors.items():
            for partition, processor in sorted(processors.items()):
                if processor.engine is not None:
                    batch_seq, _ = processor.engine.store.get((CHAIN, partition)) or (0, "")
                    samples.append(((stage, str(partition)), float(batch_seq)))
        return samples

    def _applied_samples(self) -> Iterable[tuple[tuple[str, ...], float]]:
        return [((stage, str(partition)), float(processor.applied_through))
                for stage, processors in self.processors.items() for partition, processor in sorted(processors.items())]

    def _size_samples(self) -> Iterable[tuple[tuple[str, ...], float]]:
        samples = []
        for stage, processors in self.processors.items():
            for partition, processor in sorted(processors.items()):
                store = getattr(processor.engine, "store", None)
                data = getattr(store, "data", None)
                if data is not None:
                    samples.append(((stage, str(partition)), float(len(data))))
        return samples


def _log_outcome(processed: Processed) -> None:
    """A log line for every rejection, dead letter and signal."""
    applied = processed.applied
    if applied is None:
        return
    where = {"stage": processed.stage, "partition": processed.partition, "offset": processed.offset}
    error = applied.error
    if error is not None:
        log.warning("dead letter", extra={**where, "error_kind": error.kind, "error": error.message})
    outcome = applied.outcome
    if outcome is None:
        return
    if outcome.status == "rejected":
        log.info("event rejected", extra={**where, "event_id": outcome.event_id, "event_type": outcome.event_type,
                                          "key": outcome.key, "reason": outcome.reason, "detail": outcome.detail})
    for signal in outcome.signals:
        level = logging.WARNING if signal.type in ("DeficitUncovered", "LiquidationTriggered") else logging.INFO
        log.log(level, "signal", extra={**where, "event_id": outcome.event_id, "signal_type": signal.type,
                                        "market": signal.market, "user": signal.user,
                                        "liquidation_id": signal.liquidation_id, "amount": signal.amount})
