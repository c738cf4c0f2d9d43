"""Topic names and how a producer's event is routed to its input topic (ledger-spec §3)."""

from __future__ import annotations

from streams.core.events import ACCOUNT, spec_for

ACCOUNT_EVENTS = "ledger.account-events"  # key: the user named first by the event
MARKET_EVENTS = "ledger.market-events"  # key: the market
JOURNAL = "ledger.journal"  # key: the hash chain, "{stage}-{input partition}"
REJECTIONS = "ledger.rejections"  # key: the stage key
SIGNALS = "ledger.signals"  # key: the stage key
DLQ = "ledger.dlq"  # key: the original record key
LEDGER_TOPICS = (ACCOUNT_EVENTS, MARKET_EVENTS, JOURNAL, REJECTIONS, SIGNALS, DLQ)

# Record size limits (`max.message.bytes` of each topic). Kafka's default (1 MB) is far too small
# for what the ledger writes: one event is one journal batch, and a funding settlement posts to
# every open position of its market, about 140 bytes each, so a market with 8,000 open positions
# already writes a 1.1 MB batch (and the group's intent in the changelog holds it again). 32 MiB
# holds a settlement over ~100,000 open positions with its intent, well below the broker's 100 MiB
# request limit. Events stay at 1 MiB: a dead letter wraps any record it could not read with its
# error, so the dead-letter topic takes a little more than anything any other topic holds.
INPUT_RECORD_BYTES = 1024 * 1024
MAX_RECORD_BYTES = 32 * 1024 * 1024  # journal, rejections, signals, the tables' changelogs
DLQ_RECORD_BYTES = MAX_RECORD_BYTES + 1024 * 1024
# What the ledger's producers accept: the largest record, with room for a request's framing.
MAX_REQUEST_BYTES = DLQ_RECORD_BYTES + 64 * 1024
_RECORD_LIMITS = {ACCOUNT_EVENTS: INPUT_RECORD_BYTES, MARKET_EVENTS: INPUT_RECORD_BYTES, DLQ: DLQ_RECORD_BYTES}


def topic_config(topic: str) -> dict[str, str]:
    """The topic settings the ledger needs on `topic` (a ledger topic, possibly with a suffix, or a changelog)."""
    limit = next((v for name, v in _RECORD_LIMITS.items() if topic == name or topic.startswith(name + ".")),
                 MAX_RECORD_BYTES)
    return {"max.message.bytes": str(limit)}


def input_topic_and_key(event: dict) -> tuple[str, str]:
    """The input topic and record key of an event; an unroutable one goes to the account topic with
    an empty key, where the stage rejects it (nothing is dropped on the producer's side)."""
    spec = spec_for(event.get("type"))
    if spec is None:
        return ACCOUNT_EVENTS, ""
    key = event.get(spec.key_field)
    return ACCOUNT_EVENTS if spec.stage == ACCOUNT else MARKET_EVENTS, key if isinstance(key, str) else ""


def ensure_topics(bootstrap: str, partitions: int, changelogs: tuple[str, ...] = (), *,
                  timeout_s: float = 30.0) -> None:
    """Create the ledger's topics with `partitions` partitions if missing; refuse a mismatch. Every
    ledger topic, and each of the `changelogs` that exists, gets the ledger's record size limit
    (`topic_config`; also set on topics created before it was).

    The two input topics and the tables' changelogs must agree on the partition count (a key's
    state lives in the partition its events arrive on), so a topic created with another count, for
    example by a broker's auto-creation, is an error to fix, not something to work around.
    """
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewTopic,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=timeout_s).topics
    wrong = {n: len(existing[n].partitions) for n in (ACCOUNT_EVENTS, MARKET_EVENTS)
             if n in existing and len(existing[n].partitions) != partitions}
    if wrong:
        raise SystemExit(f"input topics have the wrong partition count (want {partitions}): {wrong}")
    missing = [NewTopic(n, partitions, 1, config=topic_config(n)) for n in LEDGER_TOPICS if n not in existing]
    if missing:
        for name, future in admin.create_topics(missing).items():
            try:
                future.result(timeout=timeout_s)
            except Exception as error:  # created meanwhile by another worker: fine if it now exists
                if name not in admin.list_topics(timeout=timeout_s).topics:
                    raise SystemExit(f"cannot create topic {name}: {error}") from error
    older = [n for n in (*LEDGER_TOPICS, *changelogs) if n in existing]
    if older:
        resources = [ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in topic_config(name).items()]) for name in older]
        for future in admin.incremental_alter_configs(resources).values():
            future.result(timeout=timeout_s)


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
