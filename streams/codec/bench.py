"""Micro-benchmark of the codec: ``python -m streams.codec.bench [seconds per case]``.

Prints encode and decode rates (records/s, one core) for a TradeFill (the hot input), and for a
JournalBatch of 6 postings, 4 balances and 2 positions (the hot output), in both framings.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from streams.codec.codec import Codec
from streams.codec.registry import InMemorySchemaRegistry

TRADE_FILL: dict[str, Any] = {
    "type": "TradeFill",
    "event_id": "fill-000000123456",
    "source": "matching-engine-1",
    "ts_us": 1_767_225_600_000_000,
    "market": "BTC-USDT-PERP",
    "trade_id": "t-98765432",
    "seq": 123_456,
    "price": 97_123_45,
    "quantity": 1_500,
    "buyer": "user-000042",
    "seller": "user-001337",
    "buyer_fee": 29_137,
    "seller_fee": -4_856,
}

JOURNAL_BATCH: dict[str, Any] = {
    "type": "JournalBatch",
    "stage": "market",
    "key": "BTC-USDT-PERP",
    "origin_key": "",
    "event_id": "fill-000000123456",
    "event_type": "TradeFill",
    "ts_us": 1_767_225_600_000_000,
    "input_topic": "ledger.market-events",
    "input_partition": 3,
    "input_offset": 987_654,
    "batch_seq": 987_000,
    "payload_json": '["TradeFill","fill-000000123456","matching-engine-1",1767225600000000,"BTC-USDT-PERP",'
    '"t-98765432",123456,9712345,1500,"user-000042","user-001337",29137,-4856]',
    "postings": [
        {
            "posting_id": f"fill-000000123456:{i}",
            "account": f"user:user-00004{i}:margin:BTC-USDT-PERP",
            "asset": "USDT",
            "amount": (-1) ** i * 29_137 * (i + 1),
            "kind": "fee" if i < 4 else "realized_pnl",
        }
        for i in range(6)
    ],
    "balances": [
        {"account": f"user:user-00004{i}:margin:BTC-USDT-PERP", "asset": "USDT", "balance": 10**12 + i}
        for i in range(4)
    ],
    "positions": [
        {"market": "BTC-USDT-PERP", "user": "user-000042", "size": 1_500, "entry_price": 97_000_00, "state": "healthy"},
        {
            "market": "BTC-USDT-PERP",
            "user": "user-001337",
            "size": -1_500,
            "entry_price": 97_000_00,
            "state": "reduce_only",
        },
    ],
    "prev_hash": "0" * 64,
    "hash": "f" * 64,
}


def _rate(fn: Callable[[], object], seconds: float) -> float:
    n, batch = 0, 1000
    start = time.perf_counter()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def run(seconds: float = 1.0) -> list[tuple[str, str, float, float]]:
    """(record, framing, encodes/s, decodes/s) for each case."""
    results = []
    codecs = {"single-object": Codec(), "confluent": Codec(registry=InMemorySchemaRegistry())}
    for event in (TRADE_FILL, JOURNAL_BATCH):
        for framing, codec in codecs.items():
            data = codec.encode(event)
            assert codec.decode(data) == event
            enc = _rate(lambda codec=codec, event=event: codec.encode(event), seconds)
            dec = _rate(lambda codec=codec, data=data: codec.decode(data), seconds)
            results.append((event["type"], framing, enc, dec))
    return results


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    print(f"{'record':<14}{'framing':<15}{'encode/s':>12}{'decode/s':>12}")
    for name, framing, enc, dec in run(seconds):
        print(f"{name:<14}{framing:<15}{enc:>12,.0f}{dec:>12,.0f}")


if __name__ == "__main__":
    main()
