"""Consumer groups: where a group stands on its topics (status) and moving it (reset)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

_TIMEOUT_S = 10


@dataclass
class PartitionPosition:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    end: int
    owner: str | None  # "client_id@host" of the member it is assigned to

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


def describe(bootstrap: str, group: str) -> tuple[str, dict[tuple[str, int], str]]:
    """The group's state (STABLE, EMPTY, ...) and the owner of each assigned partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    description = admin.describe_consumer_groups([group], request_timeout=_TIMEOUT_S)[group].result(_TIMEOUT_S)
    owners = {}
    for member in description.members:
        for tp in member.assignment.topic_partitions if member.assignment else []:
            owners[(tp.topic, tp.partition)] = f"{member.client_id}@{member.host}"
    return description.state.name, owners


def positions(bootstrap: str, group: str, topics: list[str]) -> list[PartitionPosition]:
    """Committed offset, end offset and owner of every partition of `topics` for `group`."""
    _, owners = describe(bootstrap, group)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        result = []
        for topic in topics:
            partitions = sorted(consumer.list_topics(topic, timeout=_TIMEOUT_S).topics[topic].partitions)
            committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=_TIMEOUT_S)
            for tp in committed:
                end = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=_TIMEOUT_S)[1]
                result.append(PartitionPosition(topic, tp.partition, tp.offset if tp.offset >= 0 else None, end,
                                                owners.get((topic, tp.partition))))
        return result
    finally:
        consumer.close()


def target_offsets(bootstrap: str, topics: list[str], *, to: str, at: datetime | None = None,
                   offsets: dict[tuple[str, int], int] | None = None) -> dict[tuple[str, int], int]:
    """Where a reset moves each partition: `to` is earliest, latest, datetime (the first record at or
    after `at`; the end if none) or offsets (`offsets`, only the partitions named)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "perpledger-ops-reset-probe",
                         "enable.auto.commit": False})
    try:
        targets = {}
        for topic in topics:
            partitions = sorted(consumer.list_topics(topic, timeout=_TIMEOUT_S).topics[topic].partitions)
            for partition in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=_TIMEOUT_S)
                if to == "earliest":
                    targets[(topic, partition)] = low
                elif to == "latest":
                    targets[(topic, partition)] = high
                elif to == "datetime":
                    assert at is not None
                    (found,) = consumer.offsets_for_times(
                        [TopicPartition(topic, partition, int(at.timestamp() * 1000))], timeout=_TIMEOUT_S)
                    targets[(topic, partition)] = found.offset if found.offset >= 0 else high
                elif to == "offsets":
                    if offsets and (topic, partition) in offsets:
                        targets[(topic, partition)] = min(max(offsets[(topic, partition)], low), high)
                else:
                    raise ValueError(f"unknown reset target {to!r}")
        return targets
    finally:
        consumer.close()


def apply_reset(bootstrap: str, group: str, targets: dict[tuple[str, int], int]) -> None:
    """Commit `targets` for `group`. Kafka takes them only from outside an active group: refused then."""
    state, _ = describe(bootstrap, group)
    if state not in (ConsumerGroupState.EMPTY.name, ConsumerGroupState.DEAD.name):
        raise ValueError(f"consumer group {group} is {state}: stop its members first")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, partition, offset) for (topic, partition), offset in sorted(targets.items())])
    admin.alter_consumer_group_offsets([request], request_timeout=_TIMEOUT_S)[group].result(_TIMEOUT_S)
