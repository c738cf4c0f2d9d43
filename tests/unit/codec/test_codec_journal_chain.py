"""A JournalBatch read back from Avro carries everything its hash covers (AC-41: verifiable from the topic)."""

from __future__ import annotations

import json

from streams.codec import Codec
from streams.core.hashchain import GENESIS_HASH, batch_hash, first_broken_link
from streams.core.model import Balance, JournalBatch, PositionView, Posting


def _core_batch(prev_hash: str, seq: int) -> JournalBatch:
    payload = ("TradeFill", f"f{seq}", "me", 1_700_000_000_000_000, "BTC", f"t{seq}", seq, 10**40, 5, "a", "b", 3, -1)
    batch = JournalBatch(
        stage="market",
        key="BTC",
        origin_key="",
        event_id=f"f{seq}",
        event_type="TradeFill",
        ts_us=1_700_000_000_000_000,
        batch_seq=seq,
        payload=payload,
        postings=(Posting("market:BTC:fees", "USDT", 3, "fee"), Posting("user:a:margin:BTC", "USDT", -3, "fee")),
        balances=(Balance("market:BTC:fees", "USDT", 3), Balance("user:a:margin:BTC", "USDT", -(10**37))),
        positions=(PositionView("BTC", "a", 5, 97_000, "healthy"), PositionView("BTC", "b", -5, 97_000, "reduce_only")),
        prev_hash=prev_hash,
        hash="",
    )
    return batch._replace(hash=batch_hash(batch))


def _to_avro(batch: JournalBatch) -> dict:
    # What the streaming layer writes: posting ids are derived, payload travels as the JSON the hash uses.
    return {
        "type": "JournalBatch",
        "stage": batch.stage,
        "key": batch.key,
        "origin_key": batch.origin_key,
        "event_id": batch.event_id,
        "event_type": batch.event_type,
        "ts_us": batch.ts_us,
        "input_topic": "ledger.market-events",
        "input_partition": 0,
        "input_offset": batch.batch_seq - 1,
        "batch_seq": batch.batch_seq,
        "payload_json": json.dumps(list(batch.payload), separators=(",", ":"), ensure_ascii=True),
        "postings": [{"posting_id": f"{batch.event_id}:{n}", **p._asdict()} for n, p in enumerate(batch.postings)],
        "balances": [b._asdict() for b in batch.balances],
        "positions": [p._asdict() for p in batch.positions],
        "prev_hash": batch.prev_hash,
        "hash": batch.hash,
    }


def _from_avro(rec: dict) -> JournalBatch:
    return JournalBatch(
        stage=rec["stage"],
        key=rec["key"],
        origin_key=rec["origin_key"],
        event_id=rec["event_id"],
        event_type=rec["event_type"],
        ts_us=rec["ts_us"],
        batch_seq=rec["batch_seq"],
        payload=tuple(json.loads(rec["payload_json"])),
        postings=tuple(Posting(p["account"], p["asset"], p["amount"], p["kind"]) for p in rec["postings"]),
        balances=tuple(Balance(**b) for b in rec["balances"]),
        positions=tuple(PositionView(**p) for p in rec["positions"]),
        prev_hash=rec["prev_hash"],
        hash=rec["hash"],
    )


def test_chain_verifies_after_an_avro_round_trip() -> None:
    codec = Codec()
    chain, prev = [], GENESIS_HASH
    for seq in (1, 2, 3):
        batch = _core_batch(prev, seq)
        chain.append(batch)
        prev = batch.hash
    wire = [codec.encode(_to_avro(b)) for b in chain]
    read = [_from_avro(codec.decode(w)) for w in wire]
    assert read == chain
    assert first_broken_link(read) is None
