"""The streaming workers on a real broker: effectively-once under SIGKILL, shared partitions,
broker restarts, and replay from offset 0 (AC-40, AC-41, architecture §2)."""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.app import internal_auth
from streams.codec import Codec
from streams.demo import encode_or_raw, produce
from streams.ops.chains import read_topic, written_outputs
from streams.topics import JOURNAL, input_topic_and_key
from streams.workload import generate
from tests import kafka_broker
from tests.integration.worker_harness import (
    INTERNAL_KEY,
    WorkerProcess,
    fresh_topics,
    verify,
    wait_caught_up,
    wait_for_progress,
)

pytestmark = pytest.mark.integration
PARTITIONS = 3


def _workload(seed: int, n_events: int) -> list[dict]:
    return list(generate(seed=seed, n_events=n_events, n_markets=3, n_users=150))


def _produce(bootstrap: str, events: list[dict]) -> None:
    produced, _ = produce(bootstrap, events, "", Codec())
    assert produced == len(events)


def test_sigkill_at_random_moments_applies_every_input_exactly_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    fresh_topics(kafka_bootstrap, PARTITIONS)
    _produce(kafka_bootstrap, _workload(seed=11, n_events=8_000))
    app_id, rng = f"kill-{uuid.uuid4().hex[:6]}", random.Random(11)
    kills = 0
    worker = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "data-0", tmp_path / "worker.log")
    try:
        journal_end = 0
        while kills < 10:
            worker.start()
            if kills % 4 == 3:
                time.sleep(rng.uniform(0.5, 3.0))  # during start-up: recovery, rebalance
            else:  # mid-stream: once this life has written something, at a random moment
                journal_end = wait_for_progress(kafka_bootstrap, JOURNAL, journal_end, timeout_s=120)
                time.sleep(rng.uniform(0.0, 1.5))
            assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
            worker.kill()
            kills += 1
            if kills % 3 == 0:  # a replacement on another machine: state only from the changelog
                worker.env["PERPLEDGER_DATA_DIR"] = str(tmp_path / f"data-{kills}")
        worker.start()
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=240, workers=(worker,))
    finally:
        worker.stop()
    assert kills == 10
    assert verify(kafka_bootstrap) is None
    written = written_outputs(kafka_bootstrap)
    assert sum(len(chain) for chain in written.chains.values()) > 5_000
    # the kills did hit work in flight: outputs of applied inputs were sent again after a restart
    assert written.copies > 0


def test_two_workers_share_partitions_and_a_survivor_takes_over(kafka_bootstrap: str, tmp_path: Path) -> None:
    fresh_topics(kafka_bootstrap, PARTITIONS)
    _produce(kafka_bootstrap, _workload(seed=12, n_events=4_000))
    app_id = f"pair-{uuid.uuid4().hex[:6]}"
    first = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "a", tmp_path / "a.log")
    second = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "b", tmp_path / "b.log")
    try:
        first.start()
        second.start()
        wait_for_progress(kafka_bootstrap, JOURNAL, 0, timeout_s=120)
        time.sleep(2.0)
        second.kill()  # its partitions move to the first worker, restored from the changelog
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=240, workers=(first,))
    finally:
        first.stop()
        second.stop()
    assert verify(kafka_bootstrap) is None


def test_ac40_a_fresh_app_replaying_from_offset_0_writes_the_same_batches(kafka_bootstrap: str,
                                                                           tmp_path: Path) -> None:
    fresh_topics(kafka_bootstrap, PARTITIONS)
    _produce(kafka_bootstrap, _workload(seed=13, n_events=2_000))
    for run in ("live", "replay"):
        worker = WorkerProcess(kafka_bootstrap, f"{run}-{uuid.uuid4().hex[:6]}", PARTITIONS, tmp_path / run,
                               tmp_path / f"{run}.log")
        try:
            worker.start()
            wait_caught_up(kafka_bootstrap, worker.env["PERPLEDGER_APP_ID"], timeout_s=240, workers=(worker,))
        finally:
            worker.stop()
    written = written_outputs(kafka_bootstrap)
    # the replay wrote every batch a second time, identical (no conflicting copy)
    assert written.conflicts == []
    assert written.copies >= sum(len(chain) for chain in written.chains.values())
    assert verify(kafka_bootstrap) is None


def test_transaction_markers_in_the_input_are_not_taken_for_lost_records(kafka_bootstrap: str,
                                                                         tmp_path: Path) -> None:
    fresh_topics(kafka_bootstrap, PARTITIONS)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:6]}",
                         "partitioner": "murmur2_random"})
    producer.init_transactions(30)
    codec, events = Codec(), _workload(seed=15, n_events=1_500)
    for start in range(0, len(events), 100):  # each commit leaves a marker: an offset no consumer gets
        producer.begin_transaction()
        for event in events[start:start + 100]:
            topic, key = input_topic_and_key(event)
            producer.produce(topic, encode_or_raw(codec, event)[0], key.encode())
        producer.commit_transaction(30)
    app_id = f"tx-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "w", tmp_path / "w.log")
    worker.log_level = "info"  # to see the gaps skipped
    try:
        worker.start()
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=240, workers=(worker,))
    finally:
        worker.stop()
    assert "input offsets without records skipped" in (tmp_path / "w.log").read_text()
    assert verify(kafka_bootstrap) is None


def test_a_broker_restart_mid_run_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    if kafka_broker.bootstrap_from_env():
        pytest.skip("the broker is external: this test restarts the local one")
    fresh_topics(kafka_bootstrap, PARTITIONS)
    _produce(kafka_bootstrap, _workload(seed=14, n_events=6_000))
    app_id = f"restart-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "w", tmp_path / "w.log")
    try:
        worker.start()
        wait_for_progress(kafka_bootstrap, JOURNAL, 0, timeout_s=120)
        kafka_broker.stop()
        time.sleep(3.0)
        kafka_broker.start()
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=300)
        if not worker.alive():  # a worker may give up while the broker is away; its replacement resumes
            worker.process = None
            worker.start()
            wait_caught_up(kafka_bootstrap, app_id, timeout_s=300)
    finally:
        worker.stop()
    assert verify(kafka_bootstrap) is None


def _crowded_market(n_users: int) -> list[dict]:
    """A market where `n_users` hold a position each, then a funding epoch snapshotted and settled.
    Margin arrives as the market stage's internal credits (signed as a worker signs them): the
    account stage's deposits and transfers would only make the test slower."""
    t_us, market = 1_767_225_600_000_000, "BTC-PERP"
    events: list[dict] = [
        {"type": "MarketListed", "event_id": "list", "source": "admin", "ts_us": t_us, "market": market,
         "settlement_asset": "USDT", "settlement_decimals": 6, "price_decimals": 2, "size_decimals": 3,
         "initial_margin_ppm": 50_000, "maintenance_margin_ppm": 25_000, "liquidation_fee_ppm": 5_000},
        {"type": "MarkPriceUpdate", "event_id": "mark-1", "source": "oracle", "ts_us": t_us, "market": market,
         "price": 6_500_000, "price_seq": 1},
    ]
    for n in range(n_users):
        user = f"u{n:06d}"
        credit = {"type": "MarginCredited", "event_id": f"credit-{user}", "source": "ledger", "ts_us": t_us,
                  "origin_key": user, "transfer_id": f"t-{user}", "user": user, "market": market,
                  "asset": "USDT", "amount": 1_000_000_000}
        events.append({**credit, "auth_tag": internal_auth.sign(credit, INTERNAL_KEY.encode())})
    for n in range(0, n_users, 2):
        events.append({"type": "TradeFill", "event_id": f"fill-{n}", "source": "me", "ts_us": t_us + n,
                       "market": market, "trade_id": f"T{n}", "seq": n // 2 + 1, "price": 6_500_000,
                       "quantity": 1 + n % 7, "buyer": f"u{n:06d}", "seller": f"u{n + 1:06d}",
                       "buyer_fee": 0, "seller_fee": 0})
    t_us += n_users + 1
    events += [
        {"type": "FundingRateSnapshot", "event_id": "fs-1", "source": "funding", "ts_us": t_us, "market": market,
         "epoch": 1, "rate_ppb": 100_000, "price": 6_500_000},
        {"type": "FundingEpochSettle", "event_id": "fe-1", "source": "funding", "ts_us": t_us, "market": market,
         "epoch": 1},
    ]
    return events


def test_a_journal_batch_above_kafkas_default_record_limit_is_written_and_recovered(kafka_bootstrap: str,
                                                                                    tmp_path: Path) -> None:
    """A funding settlement over 8,000 positions (ledger-spec §6) writes a batch of over 1 MB (Kafka's
    default limit): the topics and the producer take it, a replacement worker recovers the changelog
    holding it, and everything written matches the offline run batch for batch and hash for hash
    (AC-40, AC-41)."""
    fresh_topics(kafka_bootstrap, PARTITIONS)
    _produce(kafka_bootstrap, _crowded_market(8_000))
    app_id = f"large-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "a", tmp_path / "a.log")
    try:
        worker.start()
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=300, workers=(worker,))
        worker.kill()
        # A replacement with an empty disk: its state only from the changelog, large intents included.
        worker.env["PERPLEDGER_DATA_DIR"] = str(tmp_path / "b")
        worker.start()
        _produce(kafka_bootstrap, [{"type": "MarkPriceUpdate", "event_id": "mark-2", "source": "oracle",
                                    "ts_us": 1_767_225_700_000_000, "market": "BTC-PERP", "price": 6_510_000,
                                    "price_seq": 2}])
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=300, workers=(worker,))
    finally:
        worker.stop()
    largest = max(len(value or b"") for _, _, _, value in read_topic(kafka_bootstrap, JOURNAL))
    assert largest > 1_100_000
    assert verify(kafka_bootstrap) is None
