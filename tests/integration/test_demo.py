"""The demo's pipeline on a real broker: Avro through Kafka and back, then the ledger."""

from __future__ import annotations

import pytest

from streams.demo import run_demo
from streams.workload import generate

pytestmark = pytest.mark.integration


def test_ac40_events_through_kafka_book_exactly_as_an_offline_replay(kafka_bootstrap: str) -> None:
    events = list(generate(seed=3, n_events=3_000, n_markets=3, n_users=200))
    summary = run_demo(kafka_bootstrap, events, partitions=2)
    assert summary["produced"] == len(events)
    # what fits no schema comes back as a dead letter, never as a crash; the rest decodes
    assert sum(summary["dead_letters"].values()) == summary["not_avro"] > 0
    assert summary["read_back"] == len(events) - summary["not_avro"]
    assert summary["matches_offline_replay"]
    assert summary["outcomes"]["applied"] > len(events) // 2
