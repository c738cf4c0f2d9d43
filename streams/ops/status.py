"""The last batch of each hash chain, read from the tail of the journal (for `perpledger status`)."""

from __future__ import annotations

from typing import NamedTuple

from confluent_kafka import Consumer, TopicPartition

from streams.codec import Codec
from streams.ops.chains import read_topic
from streams.topics import JOURNAL

# Records read back from the end of each journal partition. A chain whose last batch is further
# back (a quiet input partition sharing a journal partition with busy ones) is shown without a head;
# `perpledger verify-chain` reads everything.
TAIL_RECORDS = 2000


class ChainHead(NamedTuple):
    batch_seq: int
    input_offset: int
    hash: str


def chain_heads(bootstrap: str, topic: str = JOURNAL, tail: int = TAIL_RECORDS) -> dict[tuple[str, int], ChainHead]:
    """(stage, input partition) -> its highest batch in the last `tail` records of each partition."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "perpledger-ops-status"})
    try:
        partitions = probe.list_topics(topic, timeout=10).topics[topic].partitions
        start = {p: max(low, high - tail) for p in partitions
                 for low, high in [probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)]}
    finally:
        probe.close()
    codec, heads = Codec(), {}
    for _, _, _, value in read_topic(bootstrap, topic, start=start):
        record = codec.decode(value)
        chain = (record["stage"], record["input_partition"])
        if chain not in heads or record["batch_seq"] > heads[chain].batch_seq:
            heads[chain] = ChainHead(record["batch_seq"], record["input_offset"], record["hash"])
    return heads
