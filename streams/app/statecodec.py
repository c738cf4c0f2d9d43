"""Bytes for the state the core keeps, as stored in RocksDB tables and their changelog topics.

Compact JSON, one tagged array per record type, so the format is stable across Python versions and
readable by any tool that inspects a changelog. Integers stay exact at any size.
"""

from __future__ import annotations

import json
from typing import Any

from streams.core.model import (
    DedupEntry,
    Deposit,
    FundingSnapshot,
    Liquidation,
    Market,
    Position,
    Withdrawal,
)

_RECORDS: dict[str, type] = {
    "M": Market,
    "P": Position,
    "F": FundingSnapshot,
    "L": Liquidation,
    "D": Deposit,
    "W": Withdrawal,
}
_TAGS = {cls: tag for tag, cls in _RECORDS.items()}
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


def encode_key(key: tuple) -> bytes:
    return _ENCODER.encode(key).encode()


def decode_key(data: bytes) -> tuple:
    return tuple(json.loads(data))


def encode_value(value: Any) -> bytes:
    if type(value) is int:
        return _ENCODER.encode(value).encode()
    if type(value) is DedupEntry:
        return _ENCODER.encode(["d", value.digest.hex(), value.ts_us]).encode()
    tag = _TAGS.get(type(value))
    if tag is not None:
        return _ENCODER.encode([tag, *value]).encode()
    if type(value) is tuple:  # the chain head: (batch_seq, hash)
        return _ENCODER.encode(["t", *value]).encode()
    raise TypeError(f"no state encoding for {type(value).__name__}")


def decode_value(data: bytes) -> Any:
    value = json.loads(data)
    if type(value) is int:
        return value
    tag, *fields = value
    if tag == "d":
        return DedupEntry(bytes.fromhex(fields[0]), fields[1])
    if tag == "t":
        return tuple(fields)
    return _RECORDS[tag](*fields)
