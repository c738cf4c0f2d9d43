"""The audit hash chain of one (stage, partition) (ledger-spec §8, AC-41).

h_n = sha256(h_{n-1} || canonical(batch_n)). The canonical form is compact JSON of a fixed list
made only of what the journal batch itself carries, so any consumer in any language can verify the
chain from the journal topic alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from streams.core.model import JournalBatch

GENESIS_HASH = "0" * 64
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def canonical_batch(batch: JournalBatch) -> bytes:
    """The bytes a batch hash covers: where it was applied, the event, postings, balances, positions."""
    return _canonical((batch.stage, batch.key, batch.origin_key, batch.batch_seq, batch.payload, batch.postings,
                       batch.balances, batch.positions))


def _canonical(body: tuple) -> bytes:
    # Tuples (named or not) encode as JSON arrays: no copies needed.
    return _ENCODER.encode(body).encode()


def link_hash(prev_hash: str, body: tuple) -> str:
    """sha256(prev_hash || canonical body), body in the order of `canonical_batch`."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + _canonical(body)).hexdigest()


def batch_hash(batch: JournalBatch) -> str:
    """sha256(prev_hash || canonical(batch)), as lowercase hex."""
    return hashlib.sha256(bytes.fromhex(batch.prev_hash) + canonical_batch(batch)).hexdigest()


def first_broken_link(batches: Iterable[JournalBatch], prev_hash: str = GENESIS_HASH) -> int | None:
    """Index of the first batch of one chain whose link or hash is wrong; None if all verify."""
    for n, batch in enumerate(batches):
        if batch.prev_hash != prev_hash or batch_hash(batch) != batch.hash:
            return n
        prev_hash = batch.hash
    return None
