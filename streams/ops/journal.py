"""Read `ledger.journal` and verify its hash chains (ledger-spec §8, AC-41), end to end.

The journal holds one chain per (stage, input partition), each keyed `{stage}-{partition}` so it
stays in one journal partition, in order. After a worker restart, batches may be sent again: a
copy must be identical to the batch of the same `batch_seq`. Everything else must link: batch n's
`prev_hash` is batch n-1's `hash` (genesis: 64 zeros), its `hash` is recomputed from its own
content, and no `batch_seq` is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.codec import Codec
from streams.core.hashchain import GENESIS_HASH, batch_hash
from streams.core.model import Balance, JournalBatch, PositionView, Posting
from streams.ops.chains import read_topic
from streams.topics import JOURNAL


def batch_from_record(record: dict) -> JournalBatch:
    """The core's batch from its decoded Avro record: what the hash covers."""
    return JournalBatch(
        stage=record["stage"], key=record["key"], origin_key=record["origin_key"], event_id=record["event_id"],
        event_type=record["event_type"], ts_us=record["ts_us"], batch_seq=record["batch_seq"],
        payload=tuple(json.loads(record["payload_json"])),
        postings=tuple(Posting(p["account"], p["asset"], p["amount"], p["kind"]) for p in record["postings"]),
        balances=tuple(Balance(**b) for b in record["balances"]),
        positions=tuple(PositionView(**p) for p in record["positions"]),
        prev_hash=record["prev_hash"], hash=record["hash"])


@dataclass
class Chain:
    """One hash chain as read from the journal."""

    stage: str
    input_partition: int
    journal_partition: int
    hashes: dict[int, str] = field(default_factory=dict)  # batch_seq -> hash
    input_offsets: dict[int, int] = field(default_factory=dict)  # batch_seq -> input offset
    copies: int = 0
    broken: str | None = None  # the first problem found, with the journal offset

    @property
    def name(self) -> str:
        return f"{self.stage}-{self.input_partition}"

    @property
    def last_seq(self) -> int:
        return len(self.hashes)

    @property
    def last_hash(self) -> str:
        return self.hashes.get(self.last_seq, GENESIS_HASH)

    def add(self, batch: JournalBatch, input_offset: int, journal_offset: int, *, check: bool) -> None:
        known = self.hashes.get(batch.batch_seq)
        if known is not None:  # a copy sent again after a restart
            self.copies += 1
            if known != batch.hash and self.broken is None:
                self.broken = f"batch {batch.batch_seq} at journal offset {journal_offset}: a copy with another hash"
            return
        if self.broken is not None:
            return
        if batch.batch_seq != self.last_seq + 1:
            self.broken = (f"batch {batch.batch_seq} at journal offset {journal_offset}: "
                           f"batches {self.last_seq + 1}..{batch.batch_seq - 1} missing")
        elif check and batch.prev_hash != self.last_hash:
            self.broken = f"batch {batch.batch_seq} at journal offset {journal_offset}: prev_hash is not batch " \
                          f"{self.last_seq}'s hash"
        elif check and batch_hash(batch) != batch.hash:
            self.broken = f"batch {batch.batch_seq} at journal offset {journal_offset}: hash does not match its content"
        else:
            self.hashes[batch.batch_seq] = batch.hash
            self.input_offsets[batch.batch_seq] = input_offset


def read_chains(bootstrap: str, topic: str = JOURNAL, *, check: bool = True) -> dict[tuple[str, int], Chain]:
    """Every chain of a journal topic, verified as it is read (`check=False`: only collected)."""
    return collect_chains(read_topic(bootstrap, topic), check=check)


def collect_chains(records: Iterable[tuple[int, int, bytes | None, bytes | None]], *, check: bool = True,
                   ) -> dict[tuple[str, int], Chain]:
    codec = Codec()
    chains: dict[tuple[str, int], Chain] = {}
    for journal_partition, journal_offset, _, value in records:
        record = codec.decode(value)
        name = (record["stage"], record["input_partition"])
        chain = chains.get(name)
        if chain is None:
            chain = chains[name] = Chain(record["stage"], record["input_partition"], journal_partition)
        chain.add(batch_from_record(record), record["input_offset"], journal_offset, check=check)
    return chains


def report_lines(chains: dict[tuple[str, int], Chain]) -> list[str]:
    """One line per chain, by journal partition: batches, copies, last hash, or the first break."""
    lines = []
    for chain in sorted(chains.values(), key=lambda c: (c.journal_partition, c.stage, c.input_partition)):
        state = f"BROKEN: {chain.broken}" if chain.broken else "ok"
        lines.append(f"journal partition {chain.journal_partition}  chain {chain.name:<10} batches {chain.last_seq:>8}"
                     f"  copies {chain.copies:>6}  last hash {chain.last_hash[:16]}  {state}")
    return lines
