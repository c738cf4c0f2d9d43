"""The Faust app: one agent per stage, state in RocksDB tables with changelog topics.

Each agent reads its stage's input topic (`concurrency=1`: faust loses messages with more, #606;
scale with partitions and workers instead) and hands every record to the `PartitionProcessor` of
its partition, which owns the effectively-once protocol. The processors hold the state of their
partitions in memory, loaded from the table on the first record after an assignment, and are
dropped when the partition is revoked.

Observers (metrics, logs, the HTTP API) are called after each record's outputs are handed to the
producer, with a `Processed` that points at the processor's `last_outcome`; an observer that
fails is logged and never stops the agent.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import faust
from faust.types import TP

from streams.api.http import HttpApi
from streams.app.config import Settings
from streams.app.metrics import Metrics
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
        # Delivery futures of the changelog messages written since the last `take_sent`.
        self._sent: list[Any] = []

    def set(self, key: bytes, value: bytes) -> None:
        # What `table[key] = value` does, keeping the changelog message's delivery future: the
        # input record is acknowledged only once Kafka has acknowledged every one of them.
        self._table.data[key] = value
        self._sent.append(self._table.send_changelog(self._partition, key, value))

    def delete(self, key: bytes) -> None:
        if key in self._table.data:
            del self._table.data[key]
        self._sent.append(self._table.send_changelog(self._partition, key, None, value_serializer="raw"))

    def take_sent(self) -> list[Any]:
        sent, self._sent = self._sent, []
        return sent

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        # Faust keeps one RocksDB per partition; iterating it directly reads only this partition
        # (the public iteration covers every assigned partition).
        db = self._table.data._db_for_partition(self._partition)
        return iter(db.items())


def ack_durable(unacked: deque[tuple[Any, list[Any]]]) -> None:
    """Acknowledge, in order, the input records whose changelog writes and outputs Kafka acknowledged."""
    while unacked:
        event, futures = unacked[0]
        if not all(future.done() for future in futures):
            return
        for future in futures:
            if future.exception() is not None:  # a record not written: stop rather than commit past it
                raise RuntimeError(f"a changelog write or output failed: {future.exception()!r}")
        unacked.popleft()
        if event is not None:
            event.ack()


class Processed(NamedTuple):
    """One input record, processed and its outputs handed to the producer (for observers)."""

    stage: str
    topic: str
    partition: int
    offset: int
    processor: PartitionProcessor  # its last_outcome / last_event / last_error describe this record
    outputs: list[Output]
    apply_s: float  # time in `process`: the core, the intent and the state writes


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
            **({"canonical_url": settings.canonical_url} if settings.canonical_url else {}),
        )
        self.metrics = Metrics()
        self.observers: list[Observer] = [self._observe_metrics, _log_outcome]
        self.output_topics = {
            name: self.app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.partitions)
            for name in (JOURNAL, REJECTIONS, SIGNALS, DLQ, ACCOUNT_EVENTS, MARKET_EVENTS)
        }
        self.processors: dict[str, dict[int, PartitionProcessor]] = {}
        self._unacked: list[deque[tuple[Any, list[Any]]]] = []
        self.tables: dict[str, faust.Table] = {}
        for stage, topic_name, engine in STAGES:
            self._add_stage(stage, topic_name, engine)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)
        # Records whose effects are not all acknowledged yet are acknowledged as soon as they are,
        # also when no new record arrives to trigger it.
        self.app.timer(interval=0.1, name="ack-durable")(self._ack_durable_records)
        self._add_gauges()
        self.api = HttpApi(self)

    def _add_stage(self, stage: str, topic_name: str, engine: type[StageEngine]) -> None:
        settings = self.settings
        table = self.app.Table(
            f"{stage}-state", partitions=settings.partitions, key_type=bytes, value_type=bytes,
            options={"block_cache_size": settings.rocksdb_block_cache_bytes,
                     "block_cache_compressed_size": settings.rocksdb_block_cache_bytes // 4},
        )
        self.tables[stage] = table
        processors: dict[int, PartitionProcessor] = {}
        self.processors[stage] = processors
        consumer_topic = self.output_topics[topic_name]

        unacked: deque[tuple[Any, list[Any]]] = deque()
        self._unacked.append(unacked)

        async def run(stream: Any) -> None:
            # Input records are acknowledged by hand (`noack`): only once the changelog writes and
            # the outputs they caused are acknowledged by Kafka, so Faust never commits an offset
            # whose effects could still be lost. (Faust's own flush before a commit gives up on its
            # buffer after 0.1 s; the kill test caught committed offsets with lost writes.)
            async for event in stream.noack().events():
                message = event.message
                processor = processors.get(message.partition)
                if processor is None:
                    processor = PartitionProcessor(
                        engine, topic_name, message.partition, FaustPartitionTable(table, message.partition),
                        self.codec, settings.internal_key, settings.dedup_window_us)
                    resend = processor.load()
                    unacked.append((None, [*processor.table.take_sent(), *await self._send(resend)]))
                    processors[message.partition] = processor
                    log.info("partition loaded", extra={"stage": stage, "partition": message.partition,
                                                        "applied_through": processor.applied_through,
                                                        "outputs_resent": len(resend)})
                started = time.perf_counter()
                outputs = processor.process(message.offset, message.key, message.value)
                apply_s = time.perf_counter() - started
                unacked.append((event, [*processor.table.take_sent(), *await self._send(outputs)]))
                ack_durable(unacked)
                self._notify(Processed(stage, topic_name, message.partition, message.offset, processor, outputs,
                                       apply_s))
                committed = self.app.consumer._committed_offset.get(message.tp)
                if committed is not None:
                    processor.forget_committed(committed)

        self.app.agent(consumer_topic, name=f"{stage}-stage", concurrency=1)(run)

    async def _send(self, outputs: list[Output]) -> list[Any]:
        """Send outputs; their delivery futures."""
        topics = self.output_topics
        return [await topics[output.topic].send(key=output.key, value=output.value) for output in outputs]

    async def _ack_durable_records(self) -> None:
        for unacked in self._unacked:
            ack_durable(unacked)

    async def _on_partitions_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        """A revoked partition may come back later, changed by another worker: load it afresh then."""
        for stage, topic_name, _ in STAGES:
            for tp in revoked:
                if tp.topic == topic_name:
                    self.processors[stage].pop(tp.partition, None)

    # Observers -----------------------------------------------------------------------------------

    def _notify(self, processed: Processed) -> None:
        for observer in self.observers:
            try:
                observer(processed)
            except Exception:
                log.exception("observer failed", extra={"stage": processed.stage, "partition": processed.partition,
                                                        "offset": processed.offset})

    def _observe_metrics(self, processed: Processed) -> None:
        processor = processed.processor
        error = processor.last_error
        self.metrics.observe(processed.stage, processor.last_outcome, None if error is None else error.kind,
                             processed.apply_s, time.time())

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
    processor = processed.processor
    where = {"stage": processed.stage, "partition": processed.partition, "offset": processed.offset}
    error = processor.last_error
    if error is not None:
        log.warning("dead letter", extra={**where, "error_kind": error.kind, "error": error.message})
    outcome = processor.last_outcome
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
