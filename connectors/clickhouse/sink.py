"""`perpledger sink`: ledger.journal, ledger.signals and ledger.rejections into ClickHouse.

Exactly once in query results, without transactions:
- offsets are committed only after the insert of everything read before them returned (and the
  dead letters among them were acknowledged), so nothing is lost;
- every row's sorting key is its deterministic identity in a ReplacingMergeTree, and every view and
  query reads with FINAL, so rows inserted again after a crash (between an insert and its commit)
  count once;
- copies of journal batches on the topic (workers resend after a crash) are dropped by their chain
  position before they are inserted; the chain tips are read back from ClickHouse at each start.

ClickHouse down or a table missing: the partitions are paused (the consumer keeps polling, so it
stays in its group), the insert is retried with backoff, errors are counted and logged; the
offsets stay where they are until the insert succeeds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from connectors.clickhouse import rows as tables
from connectors.clickhouse.building import Builder, Built, read_record
from connectors.clickhouse.chain import ChainTips, Verdict, chain_label, chain_of
from connectors.clickhouse.client import parse_url
from connectors.clickhouse.metrics import SinkMetrics, WebServer
from connectors.clickhouse.settings import SinkSettings
from connectors.clickhouse.store import Store, backoff_s, error_reason
from streams.app.outputs import InputCoordinates, dead_letter
from streams.codec import Codec, DecodeError
from streams.codec.errors import SCHEMA_MISMATCH
from streams.topics import DLQ, JOURNAL, MAX_REQUEST_BYTES, REJECTIONS, SIGNALS

log = logging.getLogger("perpledger.sink")
_CONSUME_MAX = 2000  # records per consume() call
_POLL_S = 0.1  # longest wait in one consume() call: bounds how late a time-based flush can be
_PRODUCER_FLUSH_S = 30.0
_STATS_INTERVAL_MS = 1000  # lag gauges' refresh


@dataclass(frozen=True)
class Topics:
    journal: str
    signals: str
    rejections: str
    dlq: str

    @classmethod
    def with_suffix(cls, suffix: str) -> Topics:
        return cls(JOURNAL + suffix, SIGNALS + suffix, REJECTIONS + suffix, DLQ + suffix)


class Buffer:
    """Rows read but not inserted yet (Arrow tables, per table), the offsets that follow them, and their
    dead letters."""

    def __init__(self, generation: int) -> None:
        self.generation = generation  # the assignment it was read in (see Sink.generation)
        self.parts: dict[str, list[pa.Table]] = {}
        self.row_count = 0
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.dead_letters: list[tuple[str, bytes, bytes]] = []
        self.started_s: float | None = None

    def empty(self) -> bool:
        return not self.next_offsets

    def add(self, parts: dict[str, pa.Table]) -> None:
        for table, data in parts.items():
            self.parts.setdefault(table, []).append(data)
            self.row_count += data.num_rows


class Sink:
    def __init__(self, settings: SinkSettings, *, rebuild: bool = False, exit_at_end: bool = False) -> None:
        self.settings = settings
        self.topics = Topics.with_suffix(settings.topic_suffix)
        self.record_types = {self.topics.journal: "JournalBatch", self.topics.signals: "Signal",
                             self.topics.rejections: "Rejection"}  # what each source topic carries
        self.store = Store(parse_url(settings.clickhouse_url))
        self.metrics = SinkMetrics()
        self.web = WebServer(self.metrics, settings.web_host, settings.web_port) if settings.web_port else None
        self.codec = Codec()
        self.rebuild = rebuild
        self.exit_at_end = exit_at_end
        self.tips = ChainTips()
        self.tips_stale = True  # read them from ClickHouse before judging the next batch
        self.generation = 0  # counts revocations: a buffer read before one is not committed
        self.buffer = Buffer(self.generation)
        # The buffer being inserted by the insert thread, with its outcome (insert counts, seconds).
        self.in_flight: tuple[Buffer, Future[tuple[dict[str, int], float]]] | None = None
        self.inserter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="insert")
        self.builder: Builder | None = None
        # Consumed, being built into rows, in consumption order: (generation, records, build's arguments,
        # its result to come).
        self.building: deque[tuple[int, list[Message], tuple, Future[Built]]] = deque()
        # How many lists may be in the building: one per child, and one more to cover the odd slow turn
        # of the loop (an insert to hand over, a commit).
        self.building_max = max(1, settings.build_processes) + 1
        # Every record is at least one row, so a list of at most `batch_rows` records keeps a batch near
        # its bound (a list is never split across two batches).
        self.consume_max = max(1, min(_CONSUME_MAX, settings.batch_rows))
        self.assigned: set[tuple[str, int]] = set()
        self.at_end: set[tuple[str, int]] = set()  # partitions read to their end (with exit_at_end)
        self.stopping = False
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        if self.web is not None:
            self.web.start()
        try:
            self.builder = Builder(self.settings.build_processes)
            if self.rebuild:
                reset_offsets(self.settings.bootstrap, self.settings.group, self._source_topics())
            self._open_store(truncate=self.rebuild)
            if self.stopping:
                return 0
            # A dead letter carries the record it could not read, which may be as large as any.
            self.producer = Producer({"bootstrap.servers": self.settings.bootstrap, "acks": "all",
                                      "enable.idempotence": True, "message.max.bytes": MAX_REQUEST_BYTES})
            config = {
                "bootstrap.servers": self.settings.bootstrap, "group.id": self.settings.group,
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
                "statistics.interval.ms": _STATS_INTERVAL_MS, "stats_cb": self._on_stats,
            }
            if self.settings.instance_id:
                config["group.instance.id"] = self.settings.instance_id
            if self.exit_at_end:
                config["enable.partition.eof"] = True  # tells the end at once, not at the next statistics
            self.consumer = Consumer(config)
            self.consumer.subscribe(list(self._source_topics()), on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_revoke)
            self._loop()
            self._flush()
            self._settle()
            return 0
        finally:
            self._forget_in_flight()
            self.inserter.shutdown()
            if self.builder is not None:
                self.builder.close()
            if self.consumer is not None:
                self.consumer.close()
            self.store.close()
            if self.web is not None:
                self.web.stop()

    def _stop(self, signum: int, frame: object) -> None:
        log.info("stopping on signal %s", signum)
        self.stopping = True

    def _source_topics(self) -> tuple[str, str, str]:
        return self.topics.journal, self.topics.signals, self.topics.rejections

    def _open_store(self, *, truncate: bool) -> None:
        """Until ClickHouse answers and the schema is applied (or the sink is stopped)."""
        attempt = 0
        while not self.stopping:
            try:
                self.store.open(truncate=truncate)
                log.info("ClickHouse ready", extra={"database": self.store.db})
                self._set_ready(True)
                return
            except Exception as error:
                self._failed("open", error, attempt)
                self._sleep(backoff_s(attempt))
                attempt += 1

    def _set_ready(self, ready: bool) -> None:
        if self.web is not None:
            self.web.ready = ready

    def _failed(self, operation: str, error: Exception, attempt: int) -> None:
        reason = error_reason(error)
        self.metrics.insert_errors.labels(reason).inc()
        self._set_ready(False)
        log.error("ClickHouse %s failed (%s), retrying in %.1f s: %s", operation, reason, backoff_s(attempt), error,
                  extra={"reason": reason, "attempt": attempt})

    def _sleep(self, seconds: float) -> None:
        """Wait without leaving the consumer group: paused partitions, but polled."""
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            if self.consumer is None:
                time.sleep(min(left, _POLL_S))
            else:
                # Paused partitions deliver nothing; records here come from partitions not paused (assigned
                # during the wait, or a wait outside an insert): rewind so they are read again afterwards.
                first: dict[tuple[str, int], int] = {}
                for message in self.consumer.consume(_CONSUME_MAX, timeout=min(left, 0.5)):
                    if message.error() is None:
                        first.setdefault((message.topic(), message.partition()), message.offset())
                    elif message.error().code() == KafkaError._PARTITION_EOF:
                        self.at_end.add((message.topic(), message.partition()))
                for (topic, partition), offset in first.items():
                    self.consumer.seek(TopicPartition(topic, partition, offset))
                    self.at_end.discard((topic, partition))

    # -- rebalances ---------------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned |= {(p.topic, p.partition) for p in partitions}
        log.info("assigned %s", sorted(self.assigned))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # What is buffered was not committed: the next owner (maybe this sink again) reads it again.
        self.assigned -= {(p.topic, p.partition) for p in partitions}
        self.at_end -= {(p.topic, p.partition) for p in partitions}
        self.generation += 1
        self.buffer = Buffer(self.generation)
        self._forget_in_flight()
        self.tips_stale = True
        for p in partitions:
            with contextlib.suppress(KeyError):  # never reported yet
                self.metrics.lag.remove(p.topic, str(p.partition))

    # -- the loop -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self.consumer is not None
        while not self.stopping:
            # Records being built: look for more without blocking, and take what is built.
            messages = self.consumer.consume(self.consume_max, timeout=0 if self.building else self._wait_s())
            if messages:
                self._build(messages)
            while self.building and (self.building[0][3].done() or len(self.building) > self.building_max
                                     or not messages):
                self._take_built()
            if self.in_flight is not None and self.in_flight[1].done():
                self._settle()  # commit as soon as the insert returned
            if self._due() or (self.exit_at_end and self._caught_up()):
                self._flush()  # at the end nothing is left to wait for: insert what is read at once
            if (self.exit_at_end and not messages and not self.building and self.buffer.empty()
                    and self.in_flight is None and self._caught_up()):
                log.info("caught up: every assigned partition is at its end")
                return

    def _wait_s(self) -> float:
        if self.buffer.started_s is None:
            return _POLL_S
        due = self.buffer.started_s + self.settings.batch_ms / 1000
        return max(0.0, min(_POLL_S, due - time.monotonic()))

    def _due(self) -> bool:
        if self.buffer.empty():
            return False
        return (self.buffer.row_count >= self.settings.batch_rows
                or time.monotonic() - self.buffer.started_s >= self.settings.batch_ms / 1000)

    def _build(self, messages: list[Message]) -> None:
        records = [m for m in messages if m.error() is None]
        args = ([m.value() for m in records], [m.topic() for m in records], [m.partition() for m in records],
                [m.offset() for m in records], self.record_types, self.store.arrow_types)
        assert self.builder is not None
        self.building.append((self.generation, messages, args, self.builder.submit(*args)))

    def _take_built(self) -> None:
        """Take the oldest list of records being built, in order (waiting for it). Dropped if partitions
        were revoked since it was consumed: the buffer it belongs to is gone, and the partitions' next
        owner reads those records again. Its rows are kept as built when every journal batch in it is
        new; a list holding a copy or a break (rare: after a worker's crash) is taken record by record."""
        generation, messages, args, future = self.building.popleft()
        assert self.builder is not None
        built = self.builder.result(future, *args)
        if generation != self.generation:
            return
        if self.tips_stale:
            self._load_tips()
        batches = [outcome[1:] for outcome in built.outcomes if outcome[0] == "batch"]
        if not self.tips.all_new(batches):
            rows = tables.Rows()
            for message in messages:
                self._take(message, rows)
            self.buffer.add(tables.arrow_tables(rows, self.store.arrow_types))
            return
        for chain, batch_seq, prev_hash, batch_hash in batches:
            verdict = self.tips.judge(chain, batch_seq, prev_hash, batch_hash)
            assert verdict is Verdict.NEW, (chain, batch_seq, verdict)  # all_new said so
        outcomes = iter(built.outcomes)
        for message in messages:
            if self._position(message):
                outcome = next(outcomes)
                if outcome[0] == "letter":
                    self._dead_letter(message, DecodeError(outcome[1], outcome[2]))
        self.buffer.add(built.arrow())

    def _position(self, message: Message) -> bool:
        """Note where a record leaves its partition; False for an event that is no record (the end of
        a partition, an error)."""
        topic, partition, error = message.topic(), message.partition(), message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                self.at_end.add((topic, partition))
            else:
                log.warning("consumer error: %s", error)
            return False
        self.at_end.discard((topic, partition))
        buffer = self.buffer
        if buffer.started_s is None:
            buffer.started_s = time.monotonic()
        buffer.next_offsets[(topic, partition)] = message.offset() + 1
        return True

    def _take(self, message: Message, rows: tables.Rows) -> None:
        """One record into `rows`, judged against the chain tips as it comes."""
        if not self._position(message):
            return
        try:
            record = read_record(self.codec, message.value(), message.topic(), self.record_types)
        except DecodeError as error:
            self._dead_letter(message, error)
            return
        try:
            if record["type"] == "JournalBatch":
                self._take_batch(rows, record, message.partition(), message.offset())
            elif record["type"] == "Signal":
                tables.add_signal(rows, record)
            else:
                tables.add_rejection(rows, record)
        except tables.OutOfRange as error:
            self._dead_letter(message, DecodeError(SCHEMA_MISMATCH, str(error)))

    def _take_batch(self, rows: tables.Rows, batch: dict, partition: int, offset: int) -> None:
        fields = tables.checked_fields(batch)  # before the chain's tip moves on to it
        chain = chain_of(batch)
        verdict = self.tips.judge(chain, batch["batch_seq"], batch["prev_hash"], batch["hash"])
        if verdict is Verdict.DUPLICATE:
            self.metrics.duplicates_dropped.inc()
            return
        if verdict is not Verdict.NEW:
            self.metrics.chain_breaks.labels(chain_label(chain)).inc()
            log.error("journal batch %s of chain %s: %s", batch["batch_seq"], chain_label(chain), verdict.value,
                      extra={"event_id": batch["event_id"], "partition": partition, "offset": offset,
                             "reason": verdict.value})
            if verdict is Verdict.CONFLICT:
                return  # the batch already kept stays; reconcile names the difference
        tables.add_batch(rows, batch, partition, offset, fields)

    def _dead_letter(self, message: Message, error: DecodeError) -> None:
        coordinates = InputCoordinates(message.topic(), message.partition(), message.offset())
        output = dead_letter(coordinates, message.key(), message.value() or b"", error.kind, error.message,
                             self.codec)
        self.buffer.dead_letters.append((self.topics.dlq, output.key, output.value))
        log.warning("dead letter: %s", error, extra={"topic": coordinates.topic, "partition": coordinates.partition,
                                                     "offset": coordinates.offset, "reason": error.kind})

    def _load_tips(self) -> None:
        attempt = 0
        while True:
            try:
                self.tips = ChainTips(self.store.chain_tips())
                self.tips_stale = False
                return
            except Exception as error:
                self._failed("read of chain tips", error, attempt)
                self._reconnect_later(error)
                self._sleep(backoff_s(attempt))
                attempt += 1

    def _reconnect_later(self, error: Exception) -> None:
        if error_reason(error) == "unavailable" or self.store.client is None:
            self.store.close()

    # -- flushing -----------------------------------------------------------------------------------

    def _flush(self) -> None:
        """Hand the buffer to the insert thread, once the insert before it is settled. The loop goes on
        decoding while chDB writes its parts (it releases the GIL): one insert in flight at most, so
        offsets are still committed in order and only after their insert returned."""
        self._settle()
        buffer = self.buffer
        if buffer.empty():
            return
        self.buffer = Buffer(self.generation)
        self.in_flight = (buffer, self.inserter.submit(self._timed_insert, buffer.parts))

    def _timed_insert(self, parts: dict[str, list[pa.Table]]) -> tuple[dict[str, int], float]:
        started = time.monotonic()
        inserted = self.store.insert(parts)
        return inserted, time.monotonic() - started

    def _settle(self) -> None:
        """Wait for the insert in flight; retry it if it failed; then send its dead letters and commit."""
        if self.in_flight is None:
            return
        buffer, future = self.in_flight
        self.in_flight = None
        try:
            inserted, elapsed = future.result()
        except Exception as error:
            self._failed("insert", error, 0)
            self._reconnect_later(error)
            retried = self._insert_until_done(buffer)
            if retried is None:
                return
            inserted, elapsed = retried
        if buffer.generation != self.generation:
            return  # revoked while in flight: the next owner reads it again (its copies count once)
        self._set_ready(True)
        self.metrics.insert_seconds.observe(elapsed)
        self.metrics.batches_inserted.inc()
        self.metrics.last_insert.set(time.time())
        for table, count in inserted.items():
            self.metrics.rows_inserted.labels(table).inc(count)
        self._send_dead_letters(buffer)
        self._commit(buffer)

    def _forget_in_flight(self) -> None:
        """Let the insert in flight end without committing it (its records are read again): ClickHouse
        is then quiet for the chain tips' read, and the client is not shared between threads."""
        if self.in_flight is not None:
            with contextlib.suppress(Exception):  # not committed: a failure loses nothing
                self.in_flight[1].result()
            self.in_flight = None

    def _insert_until_done(self, buffer: Buffer) -> tuple[dict[str, int], float] | None:
        """Retry with backoff, partitions paused, until the insert works; None if the partitions were
        revoked or the sink is stopping meanwhile."""
        attempt, paused = 1, False
        try:
            while True:
                if not paused and self.consumer is not None:
                    self.consumer.pause(self.consumer.assignment())
                    paused = True
                self._sleep(backoff_s(attempt - 1))
                if buffer.generation != self.generation or self.stopping:
                    return None
                if self.store.client is None:
                    self._open_store(truncate=False)
                    if self.store.client is None:  # stopping
                        return None
                try:
                    return self._timed_insert(buffer.parts)
                except Exception as error:
                    self._failed("insert", error, attempt)
                    self._reconnect_later(error)
                    attempt += 1
        finally:
            if paused and self.consumer is not None:
                self.consumer.resume(self.consumer.assignment())

    def _send_dead_letters(self, buffer: Buffer) -> None:
        if not buffer.dead_letters:
            return
        assert self.producer is not None
        for topic, key, value in buffer.dead_letters:
            self.producer.produce(topic, key=key, value=value)
        while self.producer.flush(_PRODUCER_FLUSH_S) > 0 and not self.stopping:
            log.error("dead letters not acknowledged yet; offsets wait")
        self.metrics.dead_letters.inc(len(buffer.dead_letters))

    def _commit(self, buffer: Buffer) -> None:
        if self.consumer is None:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(buffer.next_offsets.items())
                   if (t, p) in self.assigned]
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Lost the partitions meanwhile: the rows are in ClickHouse; their next reader's copies count once.
            log.warning("offset commit failed: %s", error)

    def _on_stats(self, stats_json: str) -> None:
        """librdkafka's statistics (every second, from consume()): each partition's high watermark and
        this consumer's position, without a blocking query to the broker."""
        for topic, data in json.loads(stats_json).get("topics", {}).items():
            for partition_id, p in data.get("partitions", {}).items():
                if (topic, int(partition_id)) not in self.assigned or p.get("hi_offset", -1) < 0:
                    continue  # -1 is librdkafka's unassigned placeholder
                position = next((o for o in (p.get("app_offset", -1), p.get("committed_offset", -1),
                                             p.get("lo_offset", -1)) if o >= 0), 0)
                self.metrics.lag.labels(topic, partition_id).set(max(0, p["hi_offset"] - position))

    def _caught_up(self) -> bool:
        """Every assigned partition read to its end (librdkafka's end-of-partition events)."""
        return bool(self.assigned) and self.assigned <= self.at_end


def reset_offsets(bootstrap: str, group: str, topics: tuple[str, ...]) -> None:
    """Commit every partition's first offset for the group (a rebuild reads from the start). Refused
    by the broker while a member of the group is running: stop the sinks first."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        offsets = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                continue  # not created yet: nothing to rewind
            for partition in metadata.partitions:
                low, _ = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                offsets.append(TopicPartition(topic, partition, low))
        if offsets:
            consumer.commit(offsets=offsets, asynchronous=False)
    finally:
        consumer.close()
