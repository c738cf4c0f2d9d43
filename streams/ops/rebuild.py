"""Rebuild one stage's state from its input topic and compare its hash chains with the live journal.

The input partitions fix everything (AC-40): the rebuild runs their records through the same
`PartitionProcessor` the workers use, over tables in memory, from offset 0 or from a snapshot (the
state of each partition at some offset, as saved by an earlier rebuild) onwards. Its journal
batches are then compared, batch for batch, with the live journal's: the first differing batch of
each chain is where the live state went wrong (or where the rebuild's inputs differ).

The rebuilt state can be written into a fresh app id (`write_state`): its table's changelog topic
receives every record, and its consumer group the offsets after the last input applied, so workers
started with `PERPLEDGER_APP_ID` set to it restore the rebuilt state and carry on from there.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.app.processor import PartitionProcessor
from streams.codec import Codec
from streams.ops.chains import STAGE_INPUTS, DictTable, read_topic
from streams.ops.journal import Chain
from streams.topics import JOURNAL, MAX_REQUEST_BYTES, topic_config

SNAPSHOT_FORMAT = 1


@dataclass
class Rebuilt:
    """A stage rebuilt: per input partition its table and the last input offset applied; the chains."""

    stage: str
    topic: str
    tables: dict[int, DictTable] = field(default_factory=dict)
    applied_through: dict[int, int] = field(default_factory=dict)
    chains: dict[int, Chain] = field(default_factory=dict)  # input partition -> the batches it produced
    records: int = 0


def stage_input(stage: str) -> tuple[str, type]:
    for name, topic, engine in STAGE_INPUTS:
        if name == stage:
            return topic, engine
    raise ValueError(f"unknown stage {stage!r} (account or market)")


_GROUP_RECORDS = 1_000  # records applied in memory before their state goes to the table


def rebuild_stage(bootstrap: str, stage: str, internal_key: bytes, dedup_window_us: int, *,
                  snapshot: Rebuilt | None = None, start: dict[int, int] | None = None,
                  stop: dict[int, int] | None = None) -> Rebuilt:
    """Run the stage's input records (from the snapshot's offsets, or `start`, or 0; up to `stop`,
    exclusive, or the current end) through the partition processor; the state and chains it built."""
    topic, engine = stage_input(stage)
    codec, rebuilt = Codec(), Rebuilt(stage, topic)
    first = {p: offset + 1 for p, offset in snapshot.applied_through.items()} if snapshot else {}
    first.update(start or {})
    processors: dict[int, PartitionProcessor] = {}
    for partition, offset, key, value in read_topic(bootstrap, topic, start=first, stop=stop):
        processor = processors.get(partition)
        if processor is None:
            table = DictTable()
            if snapshot is not None and partition in snapshot.tables:
                table.data.update(snapshot.tables[partition].data)
            processor = processors[partition] = PartitionProcessor(engine, topic, partition, table, codec,
                                                                   internal_key, dedup_window_us)
            processor.load()
            rebuilt.tables[partition] = table
        applied = processor.process(offset, key, value)
        assert applied is not None, "a rebuild applies every record it reads"
        for output in applied.outputs:
            if output.topic == JOURNAL:
                record = codec.decode(output.value)
                chain = rebuilt.chains.setdefault(partition, Chain(stage, partition, -1))
                chain.hashes[record["batch_seq"]] = record["hash"]
                chain.input_offsets[record["batch_seq"]] = offset
        rebuilt.applied_through[partition] = offset
        rebuilt.records += 1
        if processor.group_records >= _GROUP_RECORDS:
            processor.seal_as_committed()
    for processor in processors.values():
        processor.seal_as_committed()
    # Partitions of the snapshot that had nothing new keep the snapshot's state.
    if snapshot is not None:
        for partition, table in snapshot.tables.items():
            rebuilt.tables.setdefault(partition, table)
            rebuilt.applied_through.setdefault(partition, snapshot.applied_through[partition])
    return rebuilt



@dataclass
class Divergence:
    chain: str
    batch_seq: int
    input_offset: int
    rebuilt_hash: str
    live_hash: str | None  # None: the live journal has no such batch


def compare(rebuilt: Rebuilt, live: dict[tuple[str, int], Chain]) -> list[Divergence]:
    """The first batch of each rebuilt chain that the live journal does not have with the same hash."""
    divergences = []
    for partition, chain in sorted(rebuilt.chains.items()):
        live_chain = live.get((rebuilt.stage, partition))
        for seq in sorted(chain.hashes):
            live_hash = None if live_chain is None else live_chain.hashes.get(seq)
            if live_hash != chain.hashes[seq]:
                divergences.append(Divergence(chain.name, seq, chain.input_offsets[seq], chain.hashes[seq], live_hash))
                break
    return divergences


# Snapshots ------------------------------------------------------------------------------------------

def save_snapshot(rebuilt: Rebuilt, path: Path) -> None:
    """The state of every partition and the last input offset it applied, as one JSON document."""
    document = {
        "format": SNAPSHOT_FORMAT, "stage": rebuilt.stage, "topic": rebuilt.topic,
        "partitions": {
            str(partition): {
                "applied_through": rebuilt.applied_through[partition],
                "records": [[base64.b64encode(k).decode(), base64.b64encode(v).decode()]
                            for k, v in sorted(table.data.items())],
            }
            for partition, table in sorted(rebuilt.tables.items())
        },
    }
    path.write_text(json.dumps(document, separators=(",", ":")))


def load_snapshot(path: Path, stage: str) -> Rebuilt:
    document = json.loads(path.read_text())
    if document.get("format") != SNAPSHOT_FORMAT or document.get("stage") != stage:
        raise ValueError(f"{path}: not a format-{SNAPSHOT_FORMAT} snapshot of the {stage} stage")
    snapshot = Rebuilt(stage, document["topic"])
    for partition, entry in document["partitions"].items():
        table = DictTable()
        table.data = {base64.b64decode(k): base64.b64decode(v) for k, v in entry["records"]}
        snapshot.tables[int(partition)] = table
        snapshot.applied_through[int(partition)] = entry["applied_through"]
    return snapshot


# Writing the state into a fresh app id ------------------------------------------------------------------

def changelog_topic(app_id: str, stage: str) -> str:
    """Faust's name for the changelog of the stage's table (`{app id}-{table}-changelog`)."""
    return f"{app_id}-{stage}-state-changelog"


def write_state(bootstrap: str, rebuilt: Rebuilt, app_id: str, partitions: int) -> int:
    """Write the rebuilt state into `app_id`'s changelog and commit its group's input offsets after
    the last input applied; the number of records written. Refuses an app id already in use."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = changelog_topic(app_id, rebuilt.stage)
    if topic in admin.list_topics(timeout=10).topics:
        raise ValueError(f"{topic} exists: rebuild into a fresh app id")
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": app_id, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(rebuilt.topic, p) for p in range(partitions)]
        if any(tp.offset >= 0 for tp in group.committed(tps, timeout=10)):
            raise ValueError(f"consumer group {app_id} has committed offsets on {rebuilt.topic}: use a fresh app id")
        # Compacted, like the changelogs Faust creates: only the last value of each key matters.
        config = {"cleanup.policy": "compact", **topic_config(topic)}
        admin.create_topics([NewTopic(topic, partitions, 1, config=config)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                             "message.max.bytes": MAX_REQUEST_BYTES})
        written = 0
        for partition, table in sorted(rebuilt.tables.items()):
            for key, value in table.data.items():
                producer.produce(topic, value=value, key=key, partition=partition)
                producer.poll(0)
                written += 1
        if producer.flush(60) != 0:
            raise RuntimeError(f"{topic}: records not acknowledged")
        # Committed only once the state is durable: a worker never starts past inputs whose state is missing.
        offsets = [TopicPartition(rebuilt.topic, p, offset + 1)
                   for p, offset in sorted(rebuilt.applied_through.items())]
        if offsets:
            group.commit(offsets=offsets, asynchronous=False)
        return written
    finally:
        group.close()
