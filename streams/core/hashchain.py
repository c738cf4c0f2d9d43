"""The audit hash chain of one (stage, partition) (ledger-spec §8, AC-41).

h_n = sha256(h_{n-1} || canonical(batch_n)); the canonical form is compact JSON of a fixed list,
so any consumer in any language can recompute it from the journal batch alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from streams.core.model import Balance, PositionView, Posting

GENESIS_HASH = "0" * 64


def canonical_batch(
    stage: str,
    key: str,
    origin_key: str,
    batch_seq: int,
    payload: Sequence[object],
    postings: Iterable[Posting],
    balances: Iterable[Balance],
    positions: Iterable[PositionView],
) -> bytes:
    """The bytes a batch hash covers: the event (payload), its postings, balances and positions."""
    body = [
        stage,
        key,
        origin_key,
        batch_seq,
        list(payload),
        [list(p) for p in postings],
        [list(b) for b in balances],
        [list(p) for p in positions],
    ]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()

