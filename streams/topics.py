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


def ensure_topics(bootstrap: str, partitions: int, *, timeout_s: float = 30.0) -> None:
    """Create the ledger's topics with `partitions` partitions if missing; refuse a mismatch.

    The two input topics and the tables' changelogs must agree on the partition count (a key's
    state lives in the partition its events arrive on), so a topic created with another count, for
    example by a broker's auto-creation, is an error to fix, not something to work around.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = (ACCOUNT_EVENTS, MARKET_EVENTS, JOURNAL, REJECTIONS, SIGNALS, DLQ)
    existing = admin.list_topics(timeout=timeout_s).topics
    wrong = {n: len(existing[n].partitions) for n in (ACCOUNT_EVENTS, MARKET_EVENTS)
             if n in existing and len(existing[n].partitions) != partitions}
    if wrong:
        raise SystemExit(f"input topics have the wrong partition count (want {partitions}): {wrong}")
    missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
    if missing:
        for name, future in admin.create_topics(missing).items():
            try:
                future.result(timeout=timeout_s)
            except Exception as error:  # created meanwhile by another worker: fine if it now exists
                if name not in admin.list_topics(timeout=timeout_s).topics:
                    raise SystemExit(f"cannot create topic {name}: {error}") from error


def first_record_offset(bootstrap: str, topic: str, partition: int, offset: int, timeout_s: float) -> int | None:
    """The offset of the first record at or after `offset`, as the workers' consumer sees the log
    (read_uncommitted: transaction markers and compacted-away records take offsets but are never
    delivered); None if none arrives within `timeout_s`."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "perpledger-offset-probe",
                         "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + timeout_s
        while (left_s := deadline - time.monotonic()) > 0:
            message = consumer.poll(min(left_s, 1.0))
            if message is not None and message.error() is None:
                return message.offset()
        return None
    finally:
        consumer.close()
