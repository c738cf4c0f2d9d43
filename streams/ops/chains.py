"""Rebuild the ledger's outputs from its input topics and compare them with what the workers wrote.

The input partitions, internal events included, fix everything (AC-40): running their records from
offset 0 through the same partition processor the workers use, with nothing interrupted, gives the
journal batches, rejections and dead letters each input record must have produced. A live journal
that agrees batch for batch (copies sent again after a crash must be identical) applied every input
exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from streams.app.processor import PartitionProcessor
from streams.codec import Codec
from streams.core.account_stage import AccountStage
from streams.core.events import ACCOUNT, MARKET
from streams.core.market_stage import MarketStage
from streams.topics import ACCOUNT_EVENTS, DLQ, JOURNAL, MARKET_EVENTS, REJECTIONS

STAGE_INPUTS = ((ACCOUNT, ACCOUNT_EVENTS, AccountStage), (MARKET, MARKET_EVENTS, MarketStage))
_POLL_S = 1.0
_IDLE_POLLS_MAX = 30  # a partition that yields nothing for this long while behind is an error


def read_topic(bootstrap: str, topic: str, start: dict[int, int] | None = None, stop: dict[int, int] | None = None,
               ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of a topic up to its current end: (partition, offset, key, value).

    `start`: the first offset per partition (default 0); `stop`: the offset per partition to stop
    before (default the end at the call). Offsets are only read, never committed.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "perpledger-ops-reader",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        first = {p: (start or {}).get(p, 0) for p in partitions}
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        if stop is not None:
            ends = {p: min(end, stop.get(p, end)) for p, end in ends.items()}
        pending = {p for p, end in ends.items() if end > first[p]}
        consumer.assign([TopicPartition(topic, p, first[p]) for p in pending])
        idle = 0
        while pending:
            message = consumer.poll(_POLL_S)
            if message is None:
                idle += 1
                if idle > _IDLE_POLLS_MAX:
                    raise TimeoutError(f"{topic}: partitions {sorted(pending)} stopped before their end")
                continue
            idle = 0
            if message.error() is not None:
                raise RuntimeError(f"{topic}: {message.error()}")
            partition, offset = message.partition(), message.offset()
            if partition not in pending:
                continue
            if offset < ends[partition]:
                yield partition, offset, message.key(), message.value()
            if offset + 1 >= ends[partition]:
                pending.discard(partition)  # records past `stop` may still arrive: skipped above
    finally:
        consumer.close()


class DictTable:
    """A partition table in memory: what the workers keep in RocksDB, for an offline run."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def set(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))


@dataclass
class Outputs:
    """Per hash chain (stage, input partition): batch_seq -> hash; per input record: its outcome."""

    chains: dict[tuple[str, int], dict[int, str]] = field(default_factory=dict)
    rejections: dict[tuple[str, int, int], str] = field(default_factory=dict)  # (topic, partition, offset)
    dead_letters: set[tuple[str, int, int]] = field(default_factory=set)
    conflicts: list[str] = field(default_factory=list)  # copies of one output that differ
    copies: int = 0  # journal batches seen more than once (sent again after a restart)


def expected_outputs(bootstrap: str, internal_key: bytes, dedup_window_us: int) -> Outputs:
    """What every input record must have produced, from an uninterrupted offline run."""
    codec, expected = Codec(), Outputs()
    for stage, topic, engine in STAGE_INPUTS:
        processors: dict[int, PartitionProcessor] = {}
        for partition, offset, key, value in read_topic(bootstrap, topic):
            processor = processors.get(partition)
            if processor is None:
                processor = PartitionProcessor(engine, topic, partition, DictTable(), codec, internal_key,
                                               dedup_window_us)
                processor.load()
                processors[partition] = processor
            applied = processor.process(offset, key, value)
            assert applied is not None, "an uninterrupted run applies every record"
            for output in applied.outputs:
                _collect(expected, stage_of_journal=stage, topic=output.topic, value=output.value, codec=codec)
            processor.seal_as_committed()  # one record per group: nothing piles up in memory
    return expected


def written_outputs(bootstrap: str) -> Outputs:
    """What the workers wrote, copies merged (and reported if they differ)."""
    codec, written = Codec(), Outputs()
    for topic in (JOURNAL, REJECTIONS, DLQ):
        for _, _, _, value in read_topic(bootstrap, topic):
            _collect(written, stage_of_journal=None, topic=topic, value=value, codec=codec)
    return written


def _collect(into: Outputs, *, stage_of_journal: str | None, topic: str, value: bytes | None,
             codec: Codec) -> None:
    if topic == JOURNAL:
        batch = codec.decode(value)
        chain = into.chains.setdefault((batch["stage"], batch["input_partition"]), {})
        known = chain.get(batch["batch_seq"])
        if known is None:
            chain[batch["batch_seq"]] = batch["hash"]
        elif known == batch["hash"]:
            into.copies += 1
        else:
            into.conflicts.append(f"{batch['stage']}-{batch['input_partition']} #{batch['batch_seq']}")
    elif topic == REJECTIONS:
        rejection = codec.decode(value)
        where = (rejection["input_topic"], rejection["input_partition"], rejection["input_offset"])
        known = into.rejections.setdefault(where, rejection["reason"])
        if known != rejection["reason"]:
            into.conflicts.append(f"rejection at {where}")
    elif topic == DLQ:
        letter = codec.decode(value)
        into.dead_letters.add((letter["topic"], letter["partition"], letter["offset"]))


def first_difference(expected: Outputs, written: Outputs) -> str | None:
    """A description of the first way the written outputs differ from the expected; None if equal."""
    if written.conflicts:
        return f"outputs sent twice with different content: {written.conflicts[:3]}"
    for chain in sorted(set(expected.chains) | set(written.chains)):
        want, got = expected.chains.get(chain, {}), written.chains.get(chain, {})
        for seq in range(1, max(len(want), len(got)) + 1):
            if want.get(seq) != got.get(seq):
                return f"chain {chain[0]}-{chain[1]} first differs at batch {seq}: {want.get(seq)} != {got.get(seq)}"
        if set(got) - set(want):
            return f"chain {chain[0]}-{chain[1]} has unexpected batches {sorted(set(got) - set(want))[:3]}"
    if expected.rejections != written.rejections:
        missing = sorted(set(expected.rejections) - set(written.rejections))[:3]
        extra = sorted(set(written.rejections) - set(expected.rejections))[:3]
        return f"rejections differ: missing {missing}, unexpected {extra}"
    if expected.dead_letters != written.dead_letters:
        return "dead letters differ"
    return None
