"""Operators' commands on a real broker and a real worker (streams/ops/README.md): status, verify-chain,
rebuild (from offset 0, from a snapshot, into a fresh app id that workers then carry on from) and
reset-offsets. One workload and one worker run serve the whole module."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.cli import main
from streams.codec import Codec
from streams.demo import produce
from streams.ops.chains import read_topic
from streams.ops.groups import positions
from streams.ops.journal import read_chains
from streams.topics import ACCOUNT_EVENTS, JOURNAL, MARKET_EVENTS
from streams.workload import generate
from tests.integration.worker_harness import INTERNAL_KEY, WorkerProcess, fresh_topics, verify, wait_caught_up

pytestmark = pytest.mark.integration
PARTITIONS = 3


@dataclass
class Live:
    bootstrap: str
    app_id: str
    worker: WorkerProcess
    tmp: Path


def _produce(bootstrap: str, events: list[dict]) -> None:
    produced, _ = produce(bootstrap, events, "", Codec())
    assert produced == len(events)


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("ops")
    fresh_topics(kafka_bootstrap, PARTITIONS)
    _produce(kafka_bootstrap, list(generate(seed=21, n_events=1_200, n_markets=3, n_users=120)))
    app_id = f"ops-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp / "live", tmp / "live.log")
    worker.start()
    try:
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=240, workers=(worker,))
        yield Live(kafka_bootstrap, app_id, worker, tmp)
    finally:
        worker.stop()


@pytest.fixture(autouse=True)
def _internal_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERPLEDGER_INTERNAL_KEY", INTERNAL_KEY)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def _journal_copy(live: Live, new_topic: Callable[..., str], change: Callable[[dict], bool]) -> str:
    """A copy of the journal, partition for partition, where `change` may alter each decoded batch
    (it says whether it did, and only the first change is kept)."""
    codec, topic, changed = Codec(), new_topic(partitions=PARTITIONS), False
    producer = Producer({"bootstrap.servers": live.bootstrap})
    for partition, _, key, value in read_topic(live.bootstrap, JOURNAL):
        if not changed:
            record = codec.decode(value)
            if change(record):
                changed, value = True, codec.encode(record)
        producer.produce(topic, value=value, key=key, partition=partition)
    assert producer.flush(30) == 0 and changed
    return topic


def test_status_shows_owners_lag_and_the_chain_heads(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "status", "--bootstrap", live.bootstrap, "--app-id", live.app_id, "--json")
    assert code == 0
    status = json.loads(out)
    assert status["group_state"] == "STABLE"
    rows = status["partitions"]
    assert {(r["stage"], r["partition"]) for r in rows} == {(s, p) for s in ("account", "market")
                                                             for p in range(PARTITIONS)}
    assert all(r["owner"] and r["lag"] == 0 for r in rows)
    chains = read_chains(live.bootstrap)
    heads = [r for r in rows if r["last_hash"]]
    assert heads
    for row in heads:
        chain = chains[(row["stage"], row["partition"])]
        assert (row["last_batch_seq"], row["last_hash"]) == (chain.last_seq, chain.last_hash)
        assert row["last_applied_offset"] == chain.input_offsets[chain.last_seq] < row["end"]
    code, out = _run(capsys, "status", "--bootstrap", live.bootstrap, "--app-id", live.app_id)
    assert code == 0 and "group STABLE" in out


def test_verify_chain_passes_and_names_a_tampered_batch(live: Live, new_topic: Callable[..., str],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(capsys, "verify-chain", "--bootstrap", live.bootstrap)
    assert code == 0, out
    assert "all verify" in out and "chain market-0" in out

    inflated: list[int] = []

    def inflate_a_posting(record: dict) -> bool:  # content changed, hash kept
        if record["stage"] == "market" and record["batch_seq"] > 1 and record["postings"]:
            record["postings"][0]["amount"] += 1
            inflated.append(record["batch_seq"])
            return True
        return False

    tampered = _journal_copy(live, new_topic, inflate_a_posting)
    code, out = _run(capsys, "verify-chain", "--bootstrap", live.bootstrap, "--topic", tampered, "--json")
    assert code == 1
    broken = [c for c in json.loads(out)["chains"] if c["broken"]]
    assert len(broken) == 1 and broken[0]["chain"].startswith("market-")
    assert broken[0]["broken"].startswith(f"batch {inflated[0]} ")
    assert "does not match its content" in broken[0]["broken"]


def test_rebuild_from_offset_0_and_from_a_snapshot_matches_the_journal(
        live: Live, new_topic: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    ends = {p.partition: p.end for p in positions(live.bootstrap, live.app_id, [MARKET_EVENTS])}
    snapshot = live.tmp / "market.snapshot.json"
    halfway = [f"{p}={end // 2}" for p, end in ends.items()]
    code, out = _run(capsys, "rebuild", "--bootstrap", live.bootstrap, "--stage", "market",
                     *(a for h in halfway for a in ("--to-offset", h)), "--save-snapshot", str(snapshot))
    assert code == 0, out
    assert "every rebuilt batch equals the live journal's" in out
    code, out = _run(capsys, "rebuild", "--bootstrap", live.bootstrap, "--stage", "market", "--snapshot", str(snapshot))
    assert code == 0, out
    assert f"applied through {dict(sorted((p, e - 1) for p, e in ends.items()))}" in out

    def change_a_hash(record: dict) -> bool:
        if record["stage"] == "account" and record["batch_seq"] == 5:
            record["hash"] = "f" * 64
            return True
        return False

    tampered = _journal_copy(live, new_topic, change_a_hash)
    code, out = _run(capsys, "rebuild", "--bootstrap", live.bootstrap, "--stage", "account",
                     "--journal-topic", tampered)
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("DIVERGES")]
    assert "batch 5 " in line and "live ffffffffffffffff" in line


def test_a_fresh_app_id_rebuilt_from_the_inputs_carries_on(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    live.worker.stop()
    fresh = f"rebuilt-{uuid.uuid4().hex[:6]}"
    for stage in ("account", "market"):
        code, out = _run(capsys, "rebuild", "--bootstrap", live.bootstrap, "--stage", stage, "--app-id", fresh,
                         "--partitions", str(PARTITIONS))
        assert code == 0, out
        assert f"app id {fresh}:" in out
    code, out = _run(capsys, "rebuild", "--bootstrap", live.bootstrap, "--stage", "market", "--app-id", fresh)
    assert code == 2  # an app id in use is never overwritten
    worker = WorkerProcess(live.bootstrap, fresh, PARTITIONS, live.tmp / "fresh", live.tmp / "fresh.log")
    worker.start()
    try:
        # new events, booked on the rebuilt state: a fill's margin checks need the balances before it
        _produce(live.bootstrap, list(generate(seed=22, n_events=300, n_markets=3, n_users=120, setup=False)))
        wait_caught_up(live.bootstrap, fresh, timeout_s=240, workers=(worker,))
        code, out = _run(capsys, "reset-offsets", "--bootstrap", live.bootstrap, "--group", fresh, "--to-earliest",
                         "--execute")
        assert code == 2  # the group is active
    finally:
        worker.stop()
    assert verify(live.bootstrap) is None


def test_reset_offsets_dry_run_then_to_a_time_and_to_offsets(live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    live.worker.stop()
    before = {(p.topic, p.partition): p.committed for p in positions(live.bootstrap, live.app_id, [ACCOUNT_EVENTS])}
    code, out = _run(capsys, "reset-offsets", "--bootstrap", live.bootstrap, "--group", live.app_id,
                     "--topic", ACCOUNT_EVENTS, "--to-earliest")
    assert code == 0 and "dry run" in out
    after = {(p.topic, p.partition): p.committed for p in positions(live.bootstrap, live.app_id, [ACCOUNT_EVENTS])}
    assert after == before and all(offset for offset in after.values())

    code, out = _run(capsys, "reset-offsets", "--bootstrap", live.bootstrap, "--group", live.app_id,
                     "--topic", ACCOUNT_EVENTS, "--to-datetime", datetime(2000, 1, 1, tzinfo=UTC).isoformat(),
                     "--execute")
    assert code == 0, out
    moved = {(p.topic, p.partition): p.committed for p in positions(live.bootstrap, live.app_id, [ACCOUNT_EVENTS])}
    assert set(moved.values()) == {0}  # every record is after 2000

    code, out = _run(capsys, "reset-offsets", "--bootstrap", live.bootstrap, "--group", live.app_id,
                     "--to-offset", f"{MARKET_EVENTS}:1=7", "--execute")
    assert code == 0, out
    (market_1,) = [p for p in positions(live.bootstrap, live.app_id, [MARKET_EVENTS]) if p.partition == 1]
    assert market_1.committed == 7
