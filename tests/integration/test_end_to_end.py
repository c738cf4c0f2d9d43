"""The whole pipeline on a real broker and a real ClickHouse engine: a producer's events, a worker
killed once mid-stream (so the journal carries copies), the sink, then `perpledger reconcile`
against the core replaying the same input topics."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from connectors.clickhouse.client import connect, parse_url
from streams.codec import Codec
from streams.demo import produce
from streams.ops.chains import written_outputs
from streams.topics import JOURNAL
from streams.workload import generate
from tests.integration.sink_harness import SinkProcess
from tests.integration.worker_harness import (
    INTERNAL_KEY,
    ROOT,
    WorkerProcess,
    fresh_topics,
    wait_caught_up,
    wait_for_progress,
)

pytestmark = pytest.mark.integration
PARTITIONS = 3


def test_worker_output_reaches_clickhouse_once_and_reconciles_with_the_core(kafka_bootstrap: str,
                                                                            tmp_path: Path) -> None:
    fresh_topics(kafka_bootstrap, PARTITIONS)
    events = list(generate(seed=31, n_events=3_000, n_markets=3, n_users=150))
    produced, _ = produce(kafka_bootstrap, events, "", Codec())
    assert produced == len(events)
    app_id = f"e2e-{uuid.uuid4().hex[:6]}"
    worker = WorkerProcess(kafka_bootstrap, app_id, PARTITIONS, tmp_path / "worker", tmp_path / "worker.log")
    try:
        worker.start()
        wait_for_progress(kafka_bootstrap, JOURNAL, 500, timeout_s=120)
        worker.kill()  # its unacknowledged groups are sent again by the next life: copies on the journal
        worker.start()
        wait_caught_up(kafka_bootstrap, app_id, timeout_s=240, workers=(worker,))
    finally:
        worker.stop()
    written = written_outputs(kafka_bootstrap)
    assert written.conflicts == []
    batches = sum(len(chain) for chain in written.chains.values())

    sink = SinkProcess(kafka_bootstrap, "", tmp_path, tmp_path / "sink.log",
                       PERPLEDGER_SINK_GROUP=f"sink-{app_id}", PERPLEDGER_INTERNAL_KEY=INTERNAL_KEY)
    sink.run_to_end()
    client = connect(parse_url(sink.url))
    try:
        stored = client.query("SELECT count() FROM perpledger.journal_batches FINAL").result_rows[0][0]
    finally:
        client.close()
    assert stored == batches  # each batch once, however many copies the journal holds

    check = subprocess.run([str(ROOT / ".venv/bin/perpledger"), "reconcile"], env=sink.env, capture_output=True,
                           text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr[-2000:]
    assert check.stdout.splitlines() == ["hash chain: ok", "zero sum: ok", "balances against the core: ok"]
