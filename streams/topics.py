"""Topic names and how a producer's event is routed to its input topic (ledger-spec §3)."""

from __future__ import annotations

from streams.core.events import ACCOUNT, spec_for

ACCOUNT_EVENTS = "ledger.account-events"  # key: the user named first by the event
MARKET_EVENTS = "ledger.market-events"  # key: the market
JOURNAL = "ledger.journal"  # key: the hash chain, "{stage}-{input partition}"
REJECTIONS = "ledger.rejections"  # key: the stage key
SIGNALS = "ledger.signals"  # key: the stage key
DLQ = "ledger.dlq"  # key: the original record key

def input_topic_and_key(event: dict) -> tuple[str, str]:
    """The input topic and record key of an event; an unroutable one goes to the account topic with
    an empty key, where the stage rejects it (nothing is dropped on the producer's side)."""
    spec = spec_for(event.get("type"))
    if spec is None:
        return ACCOUNT_EVENTS, ""
    key = event.get(spec.key_field)
    return ACCOUNT_EVENTS if spec.stage == ACCOUNT else MARKET_EVENTS, key if isinstance(key, str) else ""
