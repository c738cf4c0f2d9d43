"""The audit hash chain of one (stage, partition) (ledger-spec §8, AC-41).

h_n = sha256(h_{n-1} || canonical(batch_n)). The canonical form is compact JSON of a fixed list
made only of what the journal batch itself carries, so any consumer in any language can verify the
chain from the journal topic alone.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable

from streams.core.model import JournalBatch

GENESIS_HASH = "0" * 64
# Compact, ASCII-only JSON. A body is a tree of tuples, strings and ints, never circular: no need
# for the encoder's cycle check, which costs a dict insert per container.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, check_circular=False)


def _encode_function() -> Callable[[tuple | list], str]:
    """`_ENCODER.encode`, or the same C encoder made once instead of on every call.

    JSONEncoder.encode builds a new C encoder per call; without a cycle check one can be reused.
    Its arguments are exactly those JSONEncoder.iterencode passes, so the bytes are the same.
    """
    make = json.encoder.c_make_encoder
    if make is None:  # an interpreter without the _json accelerator
        return _ENCODER.encode
    encoder = _ENCODER
    chunks = make(None, encoder.default, json.encoder.encode_basestring_ascii, encoder.indent,
                  encoder.key_separator, encoder.item_separator, encoder.sort_keys, encoder.skipkeys,
                  encoder.allow_nan)
    join = "".join
    return lambda body: join(chunks(body, 0))


# Compact ASCII JSON, byte for byte `json.dumps(value, separators=(",", ":"))`, of trees of tuples,
# lists, strings and ints (also used by the ClickHouse sink for the JSON columns it stores).
compact_json = _encode_function()


def canonical_batch(batch: JournalBatch) -> bytes:
    """The bytes a batch hash covers: where it was applied, the event, postings, balances, positions."""
    return _canonical((batch.stage, batch.key, batch.origin_key, batch.batch_seq, batch.payload, batch.postings,
                       batch.balances, batch.positions))


def _canonical(body: tuple) -> bytes:
    # Tuples (named or not) encode as JSON arrays: no copies needed.
    return compact_json(body).encode()


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
