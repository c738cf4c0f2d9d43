"""The ClickHouse sink on a real broker and a real embedded ClickHouse: every output projected
once, copies dropped, dead letters, SIGKILL at random moments, ClickHouse unavailable, rebuild."""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.clickhouse.client import connect, parse_url
from streams.app.outputs import Output
from streams.codec import Codec
from streams.core.ledger import Ledger
from streams.ops.chains import read_topic
from streams.topics import JOURNAL, REJECTIONS, SIGNALS
from tests.integration.sink_harness import SinkProcess, create_sink_topics, produce, workload_outputs

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def clickhouse(sink: SinkProcess) -> Iterator[Any]:
    """A client on the sink's embedded ClickHouse: only while the sink is not running (one process
    per chDB directory)."""
    assert not sink.alive()
    client = connect(parse_url(sink.url))
    try:
        yield client
    finally:
        client.close()


def scalar(client: Any, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def postings_of(outputs: list[Output]) -> int:
    codec = Codec()
    return sum(len(codec.decode(o.value)["postings"]) for o in outputs if o.topic == JOURNAL)


def assert_projection_exact(client: Any, outputs: list[Output], ledger: Ledger) -> None:
    """Every posting, batch, signal and rejection once in query results; balances equal the core's."""
    journal = [o for o in outputs if o.topic == JOURNAL]
    assert scalar(client, "SELECT count() FROM perpledger.journal_postings FINAL") == postings_of(outputs)
    assert scalar(client, "SELECT count() FROM (SELECT stage, key, origin_key, event_id, posting_id, count() AS n "
                          "FROM perpledger.journal_postings FINAL GROUP BY ALL HAVING n > 1)") == 0
    assert scalar(client, "SELECT count() FROM perpledger.journal_batches FINAL") == len(journal)
    assert scalar(client, "SELECT count() FROM perpledger.signals FINAL") == sum(o.topic == SIGNALS for o in outputs)
    assert scalar(client, "SELECT count() FROM perpledger.rejections FINAL") == sum(
        o.topic == REJECTIONS for o in outputs)
    balances = {(a, s): int(b) for a, s, b in client.query(
        "SELECT account, asset, balance_minor FROM perpledger.balances WHERE balance_minor != 0").result_rows}
    assert balances == ledger.balances()
    positions = sorted((m, u, int(s), int(e), st) for m, u, s, e, st in client.query(
        "SELECT market, user, size, entry_price, state FROM perpledger.positions_latest WHERE size != 0").result_rows)
    assert positions == [tuple(p) for p in ledger.positions()]


def committed(bootstrap: str, group: str, topic: str, partitions: int = 3) -> list[int]:
    """The group's committed offset per partition (0 where none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        return [max(tp.offset, 0) for tp in consumer.committed([TopicPartition(topic, p) for p in range(partitions)],
                                                       timeout=10)]
    finally:
        consumer.close()


def test_sink_projects_every_output_once_drops_copies_and_dead_letters_junk(kafka_bootstrap: str,
                                                                            tmp_path: Path) -> None:
    suffix = f".{uuid.uuid4().hex[:8]}"
    create_sink_topics(kafka_bootstrap, suffix)
    outputs, ledger = workload_outputs(seed=21, n_events=3_000)
    journal = [o for o in outputs if o.topic == JOURNAL]
    copies = journal[100:400]  # what a worker sends again after a crash: identical, later on the topic
    junk = Output(JOURNAL, b"market-0", b"not avro")
    # Avro-valid, but with an amount no Int128 column holds: inserted, it would fail on every retry.
    codec = Codec()
    batch = codec.decode(journal[50].value)
    batch["postings"] = [{**batch["postings"][0], "amount": 10**38}, *batch["postings"][1:]]
    foreign = Output(JOURNAL, b"market-0", codec.encode(batch))
    produce(kafka_bootstrap, [*outputs, *copies, junk, foreign], suffix)

    sink = SinkProcess(kafka_bootstrap, suffix, tmp_path, tmp_path / "sink.log")
    sink.run_to_end()
    with clickhouse(sink) as client:
        assert_projection_exact(client, outputs, ledger)
        # copies were dropped before the insert, not only hidden by FINAL
        assert scalar(client, "SELECT count() FROM perpledger.journal_batches") == len(journal)
        assert client.query("SELECT asset FROM perpledger.balances GROUP BY asset "
                            "HAVING sum(balance_minor) != 0").result_rows == []
    letters = [Codec().decode(v) for _, _, _, v in read_topic(kafka_bootstrap, "ledger.dlq" + suffix)]
    assert [(d["topic"], d["value"], d["error_kind"]) for d in letters] == [
        ("ledger.journal" + suffix, junk.value, "bad_magic"), ("ledger.journal" + suffix, foreign.value,
                                                                "schema_mismatch")]
    assert "amount outside decimal(38, 0)" in letters[1]["error"]
    # every offset read was committed
    assert sum(committed(kafka_bootstrap, f"sink{suffix}", "ledger.journal" + suffix)) == len(journal) + 302


def test_sigkill_at_random_moments_leaves_every_posting_exactly_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    suffix = f".{uuid.uuid4().hex[:8]}"
    create_sink_topics(kafka_bootstrap, suffix)
    outputs, ledger = workload_outputs(seed=22, n_events=12_000, n_users=300)
    journal = [o for o in outputs if o.topic == JOURNAL]
    produce(kafka_bootstrap, [*outputs, *journal[2000:3000]], suffix)
    # Small inserts: many insert-then-commit rounds for the kills to fall between.
    sink = SinkProcess(kafka_bootstrap, suffix, tmp_path, tmp_path / "sink.log",
                       PERPLEDGER_SINK_BATCH_ROWS="100", PERPLEDGER_SINK_BATCH_MS="50",
                       PERPLEDGER_SINK_INSTANCE_ID="sink-0")
    rng, kills, mid_work = random.Random(22), 0, 0
    try:
        while kills < 5:
            sink.start()
            deadline = time.monotonic() + 8  # a life with nothing left to insert is killed all the same
            while sink.metric("perpledger_sink_batches_inserted_total") < 1 and time.monotonic() < deadline:
                assert sink.alive(), sink.log_tail()
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.4))
            mid_work += sink.metric("perpledger_sink_batches_inserted_total") >= 1
            sink.kill()
            kills += 1
        assert mid_work >= 2, "the kills were meant to fall while the sink was inserting"
        sink.run_to_end()
    finally:
        sink.stop()
    with clickhouse(sink) as client:
        assert_projection_exact(client, outputs, ledger)


def test_clickhouse_unavailable_is_retried_reported_and_loses_nothing(kafka_bootstrap: str, tmp_path: Path) -> None:
    suffix = f".{uuid.uuid4().hex[:8]}"
    create_sink_topics(kafka_bootstrap, suffix)
    outputs, ledger = workload_outputs(seed=23, n_events=1_000)
    produce(kafka_bootstrap, outputs, suffix)
    sink = SinkProcess(kafka_bootstrap, suffix, tmp_path, tmp_path / "sink.log")
    # An embedded ClickHouse opens in one process at a time: held here, it is unavailable to the sink.
    holder = connect(parse_url(sink.url))
    try:
        sink.start()
        deadline = time.monotonic() + 60
        while sink.metric("perpledger_sink_insert_errors_total", 'reason="unavailable"') < 2:
            assert sink.alive(), sink.log_tail()
            assert time.monotonic() < deadline, sink.log_tail()
            time.sleep(0.1)
        assert sink.get("/readyz")[0] == 503
        assert sink.get("/healthz")[0] == 200
        assert sum(committed(kafka_bootstrap, f"sink{suffix}", "ledger.journal" + suffix)) == 0
        holder.close()
        while sink.get("/readyz")[0] != 200 or sink.metric("perpledger_sink_batches_inserted_total") < 1:
            assert sink.alive(), sink.log_tail()
            assert time.monotonic() < deadline + 60, sink.log_tail()
            time.sleep(0.1)
        journal = sum(o.topic == JOURNAL for o in outputs)
        while sum(committed(kafka_bootstrap, f"sink{suffix}", "ledger.journal" + suffix)) < journal:
            assert time.monotonic() < deadline + 90, sink.log_tail()
            time.sleep(0.2)
        assert "retrying" in sink.log_tail()
    finally:
        holder.close()
        sink.stop()
    with clickhouse(sink) as client:
        assert_projection_exact(client, outputs, ledger)
