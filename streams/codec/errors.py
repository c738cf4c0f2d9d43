"""The codec's two error types.

Decoding reads untrusted bytes from Kafka, so every way it can fail maps to ONE exception type with
a stable, machine-readable ``kind``: the DLQ writer stores ``kind`` as ``error_kind`` and metrics
count by it. Registry outages are deliberately *not* a ``DecodeError`` (see ``registry.py``): the
bytes are not at fault, so they must not be dead-lettered.
"""

from __future__ import annotations

# Stable kinds of DecodeError. Add new ones at the end; never rename (dashboards and DLQ rows key on them).
EMPTY = "empty"  # no bytes at all (None, b"": a tombstone or an empty value)
TRUNCATED = "truncated"  # shorter than its header, or the body ends before the schema says it should
BAD_MAGIC = "bad_magic"  # neither single-object (0xC3 0x01) nor Confluent (0x00) framing
UNKNOWN_FINGERPRINT = "unknown_fingerprint"  # single-object fingerprint of no schema we keep
UNKNOWN_SCHEMA_ID = "unknown_schema_id"  # Confluent schema id the registry does not know (or no registry)
INCOMPATIBLE_SCHEMA = "incompatible_schema"  # registry schema we cannot read: unknown record, bad JSON, no resolution
SCHEMA_MISMATCH = "schema_mismatch"  # body does not parse under its writer schema (bad union index, bad UTF-8...)
TRAILING_BYTES = "trailing_bytes"  # a whole record was read but bytes remain

DECODE_ERROR_KINDS: tuple[str, ...] = (
    EMPTY,
    TRUNCATED,
    BAD_MAGIC,
    UNKNOWN_FINGERPRINT,
    UNKNOWN_SCHEMA_ID,
    INCOMPATIBLE_SCHEMA,
    SCHEMA_MISMATCH,
    TRAILING_BYTES,
)


class DecodeError(ValueError):
    """Bytes that cannot be decoded into an event. ``kind`` is one of ``DECODE_ERROR_KINDS``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[type[DecodeError], tuple[str, str]]:
        # Default pickling would call __init__ with the single formatted arg; keep it picklable
        # (multiprocessing, hypothesis' failure database).
        return (DecodeError, (self.kind, self.message))


class EncodeError(ValueError):
    """A dict that does not fit its record schema (unknown type, missing/extra field, wrong type)."""
