"""Topic settings: every record a ledger topic takes fits the record size limits of the topics it can end up on."""

from __future__ import annotations

from streams.topics import (
    ACCOUNT_EVENTS,
    DLQ,
    DLQ_RECORD_BYTES,
    INPUT_RECORD_BYTES,
    JOURNAL,
    LEDGER_TOPICS,
    MARKET_EVENTS,
    MAX_RECORD_BYTES,
    MAX_REQUEST_BYTES,
    topic_config,
)


def _limit(topic: str) -> int:
    return int(topic_config(topic)["max.message.bytes"])


def test_limits_by_topic_suffixed_or_not() -> None:
    for suffix in ("", ".bench-1a2b"):
        assert _limit(ACCOUNT_EVENTS + suffix) == _limit(MARKET_EVENTS + suffix) == INPUT_RECORD_BYTES
        assert _limit(JOURNAL + suffix) == MAX_RECORD_BYTES
        assert _limit(DLQ + suffix) == DLQ_RECORD_BYTES
    assert _limit("perpledger-market-state-changelog") == MAX_RECORD_BYTES


def test_a_dead_letter_of_any_record_fits_the_dead_letter_topic_and_every_record_a_producer_request() -> None:
    largest = max(_limit(topic) for topic in LEDGER_TOPICS if topic != DLQ)
    # A dead letter is the record it could not read plus its coordinates and error (well under 1 MiB).
    assert DLQ_RECORD_BYTES - largest >= 1024 * 1024
    assert MAX_REQUEST_BYTES > DLQ_RECORD_BYTES
