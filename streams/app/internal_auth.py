"""Internal events carry an HMAC made with a key only workers hold (ledger-spec §3).

Without a valid tag an internal event type is the producer's, and the core rejects it
(INVALID_EVENT): nobody outside the ledger can mint a credit.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from streams.core.events import event_payload, spec_for


def _signed_bytes(event: dict) -> bytes:
    spec = spec_for(event["type"])
    assert spec is not None and spec.internal
    body = [*event_payload(event, spec), event["origin_key"]]
    return json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode()


def sign(event: dict, key: bytes) -> bytes:
    return hmac.new(key, _signed_bytes(event), hashlib.sha256).digest()


def is_authentic(event: dict, key: bytes) -> bool:
    """True only for an internal event whose tag this key made over exactly these fields."""
    spec = spec_for(event.get("type"))
    tag = event.get("auth_tag")
    if spec is None or not spec.internal or type(tag) is not bytes or type(event.get("origin_key")) is not str:
        return False
    try:
        expected = sign(event, key)
    except (KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(tag, expected)
