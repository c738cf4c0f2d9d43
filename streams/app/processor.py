"""One input partition of one stage, applied effectively once over a changelogged table.

Kafka delivers at least once and a worker can die between any two writes. Each input record
therefore becomes, in this order, in the table of its partition (and so in the same changelog
partition, whose order Kafka keeps):

1. an **intent**: the input offset, every state write of the event as absolute values, and every
   output record, already encoded;
2. the state writes themselves.

The outputs are then sent. The consumer commits an offset only after the producer has flushed
(Faust does so before each commit), so intents below the committed offset are no longer needed and
are deleted. After a restart, `load` finds the intents left: it redoes their writes (a half-written
event is completed; absolute values make a redo harmless), sends their outputs again (consumers
drop the copies by their deterministic ids), and every re-delivered input at or below the last
intent's offset is skipped instead of applied twice.

Nothing here knows Faust: a table is anything with get/set/delete and the items of a partition,
so the same logic runs on a dict in tests.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Iterator
from typing import Protocol

from streams.app import internal_auth
from streams.app.outputs import InputCoordinates, Output, dead_letter, outputs_of
from streams.app.statecodec import decode_key, decode_value, encode_key, encode_value
from streams.codec import Codec, DecodeError
from streams.core.engine import StageEngine
from streams.core.events import spec_for
from streams.core.model import Outcome
from streams.core.store import DELETED, DictStore

INTENT_PREFIX = b"~intent:"
# Keys Faust keeps in each RocksDB partition for its own bookkeeping.
_FAUST_PREFIX = b"__faust"


class PartitionTable(Protocol):
    def set(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every key and value stored for this partition."""
        ...


def intent_key(partition: int, offset: int) -> bytes:
    """Unique across partitions, not only within one: Faust's RocksDB store looks a key up, and
    deletes it, in whichever partition's database its key index points to, so a key shared by two
    partitions (offset 7 of partition 0 and of partition 1) would let one partition delete the
    other's intent."""
    return INTENT_PREFIX + b"%d:%020d" % (partition, offset)


def _encode_intent(writes: list[tuple[bytes, bytes | None]], outputs: list[Output]) -> bytes:
    return json.dumps({
        "w": [[k.decode(), None if v is None else v.decode()] for k, v in writes],
        "o": [[o.topic, base64.b64encode(o.key).decode(), base64.b64encode(o.value).decode()] for o in outputs],
    }, separators=(",", ":")).encode()


def _decode_intent(data: bytes) -> tuple[list[tuple[bytes, bytes | None]], list[Output]]:
    intent = json.loads(data)
    writes = [(k.encode(), None if v is None else v.encode()) for k, v in intent["w"]]
    outputs = [Output(t, base64.b64decode(k), base64.b64decode(v)) for t, k, v in intent["o"]]
    return writes, outputs


class PartitionProcessor:
    """Applies the records of one (stage, partition) in offset order."""

    def __init__(self, engine_factory: type[StageEngine], topic: str, partition: int, table: PartitionTable,
                 codec: Codec, internal_key: bytes, dedup_window_us: int) -> None:
        self.topic = topic
        self.partition = partition
        self.table = table
        self.codec = codec
        self.internal_key = internal_key
        self._engine_factory = engine_factory
        self._dedup_window_us = dedup_window_us
        self.engine: StageEngine | None = None
        self.applied_through = -1  # the highest input offset whose intent exists
        self._intents: deque[int] = deque()  # offsets of intents not yet known committed, ascending
        # What the last `process` call did, for observers (metrics, logs, the HTTP API); all None
        # when it skipped a record applied before a restart.
        self.last_outcome: Outcome | None = None
        self.last_event: dict | None = None
        self.last_error: DecodeError | None = None  # the record went to the dead-letter topic

    def load(self) -> list[Output]:
        """Rebuild state from the table, finish half-applied events; the outputs to send again."""
        store = DictStore()
        intents: dict[int, bytes] = {}
        for key, value in self.table.items():
            if key.startswith(INTENT_PREFIX):
                partition, offset = key[len(INTENT_PREFIX):].split(b":")
                assert int(partition) == self.partition, "an intent of another partition in this one"
                intents[int(offset)] = value
            elif not key.startswith(_FAUST_PREFIX):
                store.data[decode_key(key)] = decode_value(value)
        resend: list[Output] = []
        for offset in sorted(intents):
            writes, outputs = _decode_intent(intents[offset])
            self._write(writes)
            store.apply({decode_key(k): DELETED if v is None else decode_value(v) for k, v in writes})
            resend.extend(outputs)
            self._intents.append(offset)
            self.applied_through = offset
        self.engine = self._engine_factory(store, dedup_window_us=self._dedup_window_us)
        self.engine.recover()
        return resend

    def process(self, offset: int, key: bytes | None, value: bytes | None) -> list[Output]:
        """Apply one input record; the outputs to send. A record seen before a restart sends nothing:
        its outputs went out again from `load`."""
        assert self.engine is not None, "load() first"
        self.last_outcome = self.last_event = self.last_error = None
        if offset <= self.applied_through:
            return []
        source = InputCoordinates(self.topic, self.partition, offset)
        writes: list[tuple[bytes, bytes | None]] = []
        try:
            event = self.codec.decode(value)
        except DecodeError as error:
            outputs = [dead_letter(source, key, value or b"", error.kind, error.message, self.codec)]
            self.last_error = error
        else:
            spec = spec_for(event.get("type"))
            trusted = spec is not None and spec.internal and internal_auth.is_authentic(event, self.internal_key)
            record_key = None if key is None else key.decode("utf-8", errors="replace")
            outcome = self.engine.apply(event, trusted=trusted, record_key=record_key or "",
                                        partition=self.partition)
            outputs = outputs_of(outcome, event, source, self.codec, self.internal_key)
            self.last_outcome, self.last_event = outcome, event
            writes = [(encode_key(k), None if v is DELETED else encode_value(v)) for k, v in outcome.writes.items()]
        self.table.set(intent_key(self.partition, offset), _encode_intent(writes, outputs))
        self._write(writes)
        self._intents.append(offset)
        self.applied_through = offset
        return outputs

    def forget_committed(self, committed_offset: int) -> None:
        """Delete the intents of inputs below the committed offset: their outputs are durable."""
        intents = self._intents
        while intents and intents[0] < committed_offset:
            self.table.delete(intent_key(self.partition, intents.popleft()))

    def _write(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        table = self.table
        for key, value in writes:
            if value is None:
                table.delete(key)
            else:
                table.set(key, value)
