"""What one input record produces on Kafka: the outcome's records, Avro-encoded and keyed.

Every output has a deterministic identity (a journal batch is (stage, key, origin_key, event_id);
its position in its chain is batch_seq), so a record sent twice after a crash is recognised and
dropped by consumers.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from streams.app import internal_auth
from streams.codec import Codec
from streams.core.events import ACCOUNT, spec_for
from streams.core.model import Outcome
from streams.topics import ACCOUNT_EVENTS, DLQ, JOURNAL, MARKET_EVENTS, REJECTIONS, SIGNALS


class Output(NamedTuple):
    topic: str
    key: bytes
    value: bytes


class InputCoordinates(NamedTuple):
    topic: str
    partition: int
    offset: int


def chain_key(stage: str, partition: int) -> bytes:
    """Journal records are keyed by their hash chain, so each chain stays in order in one partition."""
    return f"{stage}-{partition}".encode()


def outputs_of(outcome: Outcome, event: dict, source: InputCoordinates, codec: Codec,
               internal_key: bytes) -> list[Output]:
    """The records an outcome sends, in a fixed order: journal or rejection, signals, internal events."""
    records: list[Output] = []
    stage_key = (outcome.key or "").encode()
    if outcome.batch is not None:
        batch = outcome.batch
        journal = {
            "type": "JournalBatch", "stage": batch.stage, "key": batch.key, "origin_key": batch.origin_key,
            "event_id": batch.event_id, "event_type": batch.event_type, "ts_us": batch.ts_us,
            "input_topic": source.topic, "input_partition": source.partition, "input_offset": source.offset,
            "batch_seq": batch.batch_seq,
            "payload_json": json.dumps(batch.payload, separators=(",", ":"), ensure_ascii=True),
            "postings": [
                {"posting_id": f"{batch.event_id}:{n}", "account": p.account, "asset": p.asset,
                 "amount": p.amount, "kind": p.kind}
                for n, p in enumerate(batch.postings)
            ],
            "balances": [b._asdict() for b in batch.balances],
            "positions": [p._asdict() for p in batch.positions],
            "prev_hash": batch.prev_hash, "hash": batch.hash,
        }
        records.append(Output(JOURNAL, chain_key(batch.stage, source.partition), codec.encode(journal)))
    elif outcome.status == "rejected":
        rejection = {
            "type": "Rejection", "stage": outcome.stage, "key": outcome.key, "event_id": outcome.event_id,
            "event_type": outcome.event_type, "reason": outcome.reason, "detail": outcome.detail,
            "ts_us": event.get("ts_us") if type(event.get("ts_us")) is int else None,
            "input_topic": source.topic, "input_partition": source.partition, "input_offset": source.offset,
            "payload_json": payload_json(event),
        }
        records.append(Output(REJECTIONS, stage_key, codec.encode(rejection)))
    for signal in outcome.signals:
        records.append(Output(SIGNALS, stage_key, codec.encode({
            "type": "Signal", "stage": outcome.stage, "key": outcome.key, "signal_type": signal.type,
            "event_id": outcome.event_id, "ts_us": event["ts_us"], "market": signal.market, "user": signal.user,
            "liquidation_id": signal.liquidation_id, "amount": signal.amount,
        })))
    for emitted in outcome.emitted:
        spec = spec_for(emitted["type"])
        assert spec is not None and spec.internal
        tagged = {**emitted, "auth_tag": internal_auth.sign(emitted, internal_key)}
        topic = ACCOUNT_EVENTS if spec.stage == ACCOUNT else MARKET_EVENTS
        records.append(Output(topic, emitted[spec.key_field].encode(), codec.encode(tagged)))
    return records


def dead_letter(source: InputCoordinates, key: bytes | None, value: bytes, error_kind: str, error: str,
                codec: Codec) -> Output:
    return Output(DLQ, key or b"", codec.encode({
        "type": "DeadLetter", "topic": source.topic, "partition": source.partition, "offset": source.offset,
        "key": key, "value": value, "error": error, "error_kind": error_kind,
    }))


def payload_json(event: dict) -> str:
    """The event as JSON for a rejection record: bytes (an auth tag) as hex, anything odd as text."""
    def default(value: object) -> str:
        return value.hex() if isinstance(value, bytes) else repr(value)

    return json.dumps(event, separators=(",", ":"), ensure_ascii=True, sort_keys=True, default=default)
