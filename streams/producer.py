"""Producer library for PerpLedger's input topics: route, encode, send, and account for every event.

    from streams.producer import EventProducer

    with EventProducer("127.0.0.1:19092") as producer:
        producer.send({"type": "DepositConfirmed", "event_id": "dep-1", ...})  # EncodeError if it fits no schema
        report = producer.flush(timeout_s=30)                                   # what the broker acknowledged
        assert report.ok, report.failures

Each event goes to its input topic with its record key (``streams.topics.input_topic_and_key``: the
user for account events, the market for market events), Avro-encoded by the project's ``Codec``
(single-object framing, or the Confluent wire format when a schema registry is given).

Guarantees, and why:
- ``enable.idempotence`` (hence ``acks=all``, in-order, no duplicates from the producer's own retries):
  the ledger books events in partition order, so a retry must neither reorder nor repeat them.
- ``partitioner=murmur2_random``: the Java client's partitioner, which Faust/aiokafka also use. The
  librdkafka default (CRC32) would put a key on another partition than a Java or Python producer
  does, and the stage that owns a user or market must see all of its events, in order, on one partition.
- Nothing is dropped silently: an event that fits no schema, or that is one of the ledger's internal
  types, raises ``EncodeError`` from ``send`` (the producer has a bug, and must see it); every sent
  event is either acknowledged or listed with its error in a ``DeliveryReport``; leaving the ``with``
  block with anything unreported unacknowledged or failed raises ``DeliveryError``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.codec import Codec, EncodeError, SchemaRegistry
from streams.core.events import INTERNAL_TYPES
from streams.topics import input_topic_and_key

# The ledger's own events (TransferCredited, MarginReturned, MarginCredited): one stage emits them
# for the other. The stages reject them from a producer anyway; refusing them here tells the
# producer at once, instead of as a rejection on ledger.rejections much later.
REFUSED_TYPES: frozenset[str] = frozenset(INTERNAL_TYPES)

# Settings that make the contract above; `config=` may not change them.
_GUARANTEES: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "partitioner": "murmur2_random",
}
_DEFAULT_LINGER_MS = 5  # small: batches under load, adds at most 5 ms to a lone event
_BUFFER_FULL_POLL_S = 0.1  # while librdkafka's local queue is full, wait this long for deliveries


class InternalEventError(EncodeError):
    """The event is one of the ledger's internal types, which only the ledger may write."""


class DeliveryError(RuntimeError):
    """Events were not acknowledged (failed, or still unacknowledged at close). ``report`` lists them."""

    def __init__(self, report: DeliveryReport) -> None:
        super().__init__(
            f"{report.failed} events failed and {report.pending} unacknowledged"
            + "".join(f"; {f.event_id}: {f.error}" for f in report.failures[:3])
        )
        self.report = report


@dataclass(frozen=True, slots=True)
class DeliveryFailure:
    """One event the broker did not take, with librdkafka's error (e.g. ``_MSG_TIMED_OUT``)."""

    event_id: str | None  # None if the event had no string event_id (it still encoded)
    topic: str
    key: str
    error: str


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What happened to the events sent since the previous report.

    ``pending`` events were neither acknowledged nor failed when ``flush`` gave up waiting: they are
    still in flight, and a later ``flush`` reports them (librdkafka fails them after its
    ``message.timeout.ms`` at the latest, so they never vanish).
    """

    acked: int
    failures: tuple[DeliveryFailure, ...] = ()
    pending: int = 0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures and self.pending == 0

    def errors_by_event_id(self) -> dict[str | None, list[str]]:
        # A list per id: an event sent twice (a resend) may fail twice.
        errors: dict[str | None, list[str]] = {}
        for failure in self.failures:
            errors.setdefault(failure.event_id, []).append(failure.error)
        return errors


class EventProducer:
    """Sends producer events to PerpLedger's input topics; see the module docstring.

    ``registry``: a ``streams.codec.SchemaRegistry`` for the Confluent wire format (default:
    single-object framing, no registry needed). ``topic_suffix`` is appended to both input topic
    names (test and demo topics). ``config`` adds librdkafka settings (e.g. ``compression.type``).
    Not thread-safe: one producer per thread (delivery callbacks run inside ``send``/``flush``).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        registry: SchemaRegistry | None = None,
        topic_suffix: str = "",
        linger_ms: int = _DEFAULT_LINGER_MS,
        config: Mapping[str, Any] | None = None,
        codec: Codec | None = None,
    ) -> None:
        extra = dict(config or {})
        for name, value in _GUARANTEES.items():
            if name in extra and extra[name] != value:
                raise ValueError(f"{name}={extra[name]!r} would break the producer's guarantees (needs {value!r})")
        self.codec = codec if codec is not None else Codec(registry=registry)
        self.topic_suffix = topic_suffix
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "linger.ms": linger_ms, **extra, **_GUARANTEES}
        )
        self.sent_by_topic: Counter[str] = Counter()  # since construction
        # The current report window (since the last flush's report) and the running in-flight count.
        self._acked = 0
        self._failures: list[DeliveryFailure] = []
        self._in_flight = 0

    # -- sending ------------------------------------------------------------------------------------

    def send(self, event: Mapping[str, Any]) -> None:
        """Route, encode and enqueue one event; its delivery shows in the next ``flush`` report.

        Raises ``EncodeError`` (``InternalEventError`` for the ledger's own types) if the event
        cannot be sent as it is; nothing is enqueued then. Blocks while librdkafka's local queue
        is full, serving deliveries until there is room.
        """
        if not isinstance(event, Mapping):
            raise EncodeError(f"an event is a JSON object (a mapping), not {type(event).__name__}")
        event_type = event.get("type")
        if event_type in REFUSED_TYPES:
            raise InternalEventError(
                f"{event_type} is internal to the ledger (one stage emits it for the other); producers may not send it"
            )
        topic, key = input_topic_and_key(event)
        topic += self.topic_suffix
        value = self.codec.encode(event, topic=topic)  # EncodeError goes to the caller
        try:
            key_bytes = key.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate from JSON: the codec refuses those too
            raise EncodeError(f"record key {key!r} is not valid UTF-8: {exc}") from exc
        event_id = event.get("event_id")
        on_delivery = partial(self._delivered, event_id if isinstance(event_id, str) else None, key)
        while True:
            try:
                self._producer.produce(topic, value, key_bytes, on_delivery=on_delivery)
                break
            except BufferError:  # queue.buffering.max.messages reached: let deliveries drain it
                self._producer.poll(_BUFFER_FULL_POLL_S)
        self._in_flight += 1
        self.sent_by_topic[topic] += 1
        self._producer.poll(0)  # serve delivery callbacks as we go, so the window stays current

    def send_all(self, events: Iterable[Mapping[str, Any]]) -> int:
        """``send`` each event; returns how many were sent. Stops at the first ``EncodeError``."""
        count = 0
        for event in events:
            self.send(event)
            count += 1
        return count

    def _delivered(self, event_id: str | None, key: str, error: KafkaError | None, message: Message) -> None:
        self._in_flight -= 1
        if error is None:
            self._acked += 1
        else:
            self._failures.append(DeliveryFailure(event_id, message.topic() or "", key, str(error)))

    # -- acknowledgements ---------------------------------------------------------------------------

    def poll(self, timeout_s: float = 0.0) -> None:
        """Serve delivery callbacks without waiting for everything (long-running producers)."""
        self._producer.poll(timeout_s)

    def flush(self, timeout_s: float = 30.0) -> DeliveryReport:
        """Wait up to ``timeout_s`` for the broker to acknowledge every sent event, and report the
        deliveries since the previous report (events still unacknowledged count as ``pending``)."""
        self._producer.flush(timeout_s)
        report = DeliveryReport(self._acked, tuple(self._failures), self._in_flight)
        self._acked = 0
        self._failures = []
        return report

    @property
    def in_flight(self) -> int:
        """Events sent and not yet acknowledged or failed."""
        return self._in_flight

    def close(self, timeout_s: float = 30.0) -> DeliveryReport:
        """Flush; raise ``DeliveryError`` if anything not yet reported failed or is unacknowledged."""
        report = self.flush(timeout_s)
        if report.failures or report.pending:
            raise DeliveryError(report)
        return report

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
            return
        # Already failing: still deliver what was sent, but don't mask the original error.
        report = self.flush()
        if report.failures or report.pending:
            exc.add_note(f"EventProducer: {report.failed} events failed and {report.pending} unacknowledged")


def key_partition(key: str, partitions: int) -> int:
    """The partition of ``key`` among ``partitions``, as the Java client, aiokafka and this producer
    (``murmur2_random``) choose it: ``(murmur2(key) & 0x7fffffff) % partitions``. Tells which stage
    partition owns a user or market without asking Kafka."""
    m = 0x5BD1E995  # Kafka's Utils.murmur2 constants (seed 0x9747b28c, r = 24)
    data = key.encode("utf-8")
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = length & ~3
    extra = length % 4
    if extra == 3:
        h ^= data[tail + 2] << 16
    if extra >= 2:
        h ^= data[tail + 1] << 8
    if extra >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


# -- JSON lines (the `perpledger produce` command) ---------------------------------------------------


@dataclass(slots=True)
class LinesSummary:
    """What became of each line of a JSON-lines file."""

    sent: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (line number, why): not JSON objects
    refused: list[tuple[int, str]] = field(default_factory=list)  # (line number, the codec's reason)
    report: DeliveryReport = field(default_factory=lambda: DeliveryReport(0))
    sent_by_topic: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.malformed and not self.refused and self.report.ok


def send_lines(producer: EventProducer, lines: Iterable[str], *, flush_timeout_s: float = 60.0) -> LinesSummary:
    """Send every line of a JSON-lines file (the ``perpledger replay`` format: one event object per
    line, blank lines skipped); report the lines that were not sent and the deliveries."""
    summary = LinesSummary()
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            summary.malformed.append((line_no, f"not JSON: {exc}"))
            continue
        if not isinstance(event, dict):
            summary.malformed.append((line_no, f"a JSON {type(event).__name__}, not an object"))
            continue
        try:
            producer.send(event)
        except EncodeError as exc:
            summary.refused.append((line_no, str(exc)))
            continue
        summary.sent += 1
    summary.report = producer.flush(flush_timeout_s)
    summary.sent_by_topic = dict(sorted(producer.sent_by_topic.items()))
    return summary


def print_lines_summary(summary: LinesSummary, out: Any = None, *, max_listed: int = 50) -> None:
    """The ``perpledger produce`` summary: counts, then each unsent line and failed event."""
    report = summary.report

    def say(text: str) -> None:
        print(text, file=out)

    say(f"sent       {summary.sent:>9,}")
    for topic, count in summary.sent_by_topic.items():
        say(f"  {topic:<40} {count:>9,}")
    say(f"acked      {report.acked:>9,}")
    say(f"refused    {len(summary.refused):>9,}  (by the codec: not sent)")
    for line_no, reason in summary.refused[:max_listed]:
        say(f"  line {line_no}: {reason}")
    say(f"malformed  {len(summary.malformed):>9,}  (not a JSON object: not sent)")
    for line_no, reason in summary.malformed[:max_listed]:
        say(f"  line {line_no}: {reason}")
    say(f"failed     {report.failed:>9,}")
    for failure in report.failures[:max_listed]:
        say(f"  event {failure.event_id} ({failure.topic}, key {failure.key!r}): {failure.error}")
    if report.pending:
        say(f"unacknowledged {report.pending:>5,}  (no answer from the broker before the timeout)")
    hidden = sum(max(0, n - max_listed) for n in (len(summary.refused), len(summary.malformed), report.failed))
    if hidden:
        say(f"({hidden:,} more not listed)")
