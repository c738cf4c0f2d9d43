"""One input partition of one stage, applied effectively once over a changelogged table.

Kafka delivers at least once and a worker can die between any two writes. Input records are
applied to the state in memory one by one and made durable in **groups** (every record the worker
applied since the last group, up to a bound): each group becomes, in this order, in the table of its
partition (and so in the same changelog partition, whose order Kafka keeps):

1. an **intent**, keyed by the group's last input offset: every state write of the group as
   absolute values (a key written twice appears once, with its last value), and every output
   record of the group, already encoded;
2. the state writes themselves.

The outputs are then sent. The consumer commits an offset only after Kafka has acknowledged the
group's changelog writes and outputs, so intents below the committed offset are no longer needed
and are deleted. After a restart, `load` finds the intents left: it writes each again and redoes
its writes (a half-written group is completed; absolute values make a redo harmless; the intent
goes first again so the changelog never holds a redone write without it), sends their outputs again
(consumers drop the copies by their deterministic ids), and every re-delivered input at or below
the last intent's offset is skipped instead of applied twice. Inputs after it were never durable:
they are applied again, from the same state, to the same results.

Why groups: a state key written by many records of a group (a market's chain head, a busy
account) goes to the changelog once, and one intent replaces one per record; that is most of the
worker's cost per record.

Nothing here knows Faust: a table is anything with set/delete and the items of a partition, so the
same logic runs on a dict in tests.
"""

from __future__ import annotations

import base64
import json
from collections import deque
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from streams.app import internal_auth
from streams.app.outputs import InputCoordinates, Output, dead_letter, outputs_of
from streams.app.statecodec import decode_key, decode_value, encode_key, encode_value
from streams.codec import Codec, DecodeError
from streams.core.engine import StageEngine
from streams.core.events import spec_for
from streams.core.model import Outcome
from streams.core.store import DELETED, DictStore

INTENT_PREFIX = b"~intent:"
COMMITTED_PREFIX = b"~committed:"
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


def committed_key(partition: int) -> bytes:
    return COMMITTED_PREFIX + b"%d" % partition


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


class Applied(NamedTuple):
    """What `process` did with one input record."""

    outcome: Outcome | None  # None for a dead letter
    event: dict | None
    error: DecodeError | None  # why the record went to the dead-letter topic
    outputs: list[Output]


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
        self.applied_through = -1  # the highest input offset applied (in memory, durable or not)
        self._intents: deque[int] = deque()  # offsets of intents not yet known committed, ascending
        # The open group: applied, not yet durable.
        self._group_writes: dict[bytes, bytes | None] = {}
        self._group_outputs: list[Output] = []
        self.group_records = 0

    def load(self) -> list[Output]:
        """Rebuild state from the table, finish half-applied groups; the outputs to send again."""
        store = DictStore()
        intents: dict[int, bytes] = {}
        committed = 0
        for key, value in self.table.items():
            if key.startswith(INTENT_PREFIX):
                partition, offset = key[len(INTENT_PREFIX):].split(b":")
                assert int(partition) == self.partition, "an intent of another partition in this one"
                intents[int(offset)] = value
            elif key.startswith(COMMITTED_PREFIX):
                assert key == committed_key(self.partition), "a committed offset of another partition in this one"
                committed = int(value)
            elif not key.startswith(_FAUST_PREFIX):
                store.data[decode_key(key)] = decode_value(value)
        self.applied_through = committed - 1
        resend: list[Output] = []
        for offset in sorted(intents):
            if offset < committed:
                # Committed and deleted before a restart, but the deletion did not reach the
                # changelog: redoing it would bring back values that later groups replaced.
                self.table.delete(intent_key(self.partition, offset))
                continue
            writes, outputs = _decode_intent(intents[offset])
            # The intent is written again ahead of its redone writes. An intent found only on the
            # local disk never reached the changelog; its redone writes will. Without the intent
            # ahead of them, a later restart from the changelog alone would redo the older intents
            # it holds over those writes, and bring back values they replaced.
            self.table.set(intent_key(self.partition, offset), intents[offset])
            self._write(writes)
            store.apply({decode_key(k): DELETED if v is None else decode_value(v) for k, v in writes})
            resend.extend(outputs)
            self._intents.append(offset)
            self.applied_through = offset
        self.engine = self._engine_factory(store, dedup_window_us=self._dedup_window_us)
        self.engine.recover()
        return resend

    def process(self, offset: int, key: bytes | None, value: bytes | None) -> Applied | None:
        """Apply one input record to the state in memory and add it to the open group; None for a
        record applied before a restart (its outputs went out again from `load`)."""
        assert self.engine is not None, "load() first"
        if offset <= self.applied_through:
            return None
        source = InputCoordinates(self.topic, self.partition, offset)
        try:
            event = self.codec.decode(value)
        except DecodeError as error:
            applied = Applied(None, None, error,
                              [dead_letter(source, key, value or b"", error.kind, error.message, self.codec)])
        else:
            spec = spec_for(event.get("type"))
            trusted = spec is not None and spec.internal and internal_auth.is_authentic(event, self.internal_key)
            record_key = None if key is None else key.decode("utf-8", errors="replace")
            outcome = self.engine.apply(event, trusted=trusted, record_key=record_key or "",
                                        partition=self.partition)
            applied = Applied(outcome, event, None, outputs_of(outcome, event, source, self.codec, self.internal_key))
            group_writes = self._group_writes
            for k, v in outcome.writes.items():
                group_writes[encode_key(k)] = None if v is DELETED else encode_value(v)
        self._group_outputs.extend(applied.outputs)
        self.group_records += 1
        self.applied_through = offset
        return applied

    def seal(self) -> list[Output]:
        """Write the open group's intent, then its state writes; the group's outputs, to send now."""
        if not self.group_records:
            return []
        writes, outputs = list(self._group_writes.items()), self._group_outputs
        self.table.set(intent_key(self.partition, self.applied_through), _encode_intent(writes, outputs))
        self._write(writes)
        self._intents.append(self.applied_through)
        self._group_writes, self._group_outputs, self.group_records = {}, [], 0
        return outputs

    def seal_as_committed(self) -> None:
        """Seal the open group and count it committed at once: for offline runs (replays, rebuilds),
        where no consumer group commits. The table then holds the state and the committed offset a
        worker carries on from, and no intent."""
        self.seal()
        self.forget_committed(self.applied_through + 1)

    def forget_committed(self, committed_offset: int) -> None:
        """Delete the intents of groups wholly below the committed offset: their outputs are durable.

        The committed offset is written first: a deletion lost in a crash leaves an intent that a
        later `load` must recognise as committed, and the record ahead of the deletion says so."""
        intents = self._intents
        if not intents or intents[0] >= committed_offset:
            return
        self.table.set(committed_key(self.partition), b"%d" % committed_offset)
        while intents and intents[0] < committed_offset:
            self.table.delete(intent_key(self.partition, intents.popleft()))

    def _write(self, writes: list[tuple[bytes, bytes | None]]) -> None:
        table = self.table
        for key, value in writes:
            if value is None:
                table.delete(key)
            else:
                table.set(key, value)
