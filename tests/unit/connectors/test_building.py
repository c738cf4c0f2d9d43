"""Rows built off the sink's loop (connectors/clickhouse/building.py) are the rows the loop builds
itself, judged the same, and survive the child's death."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.clickhouse import rows as tables
from connectors.clickhouse.building import ROWS, Builder, build
from connectors.clickhouse.chain import ChainTips, Verdict
from connectors.clickhouse.simulate import ledger_outputs
from streams.codec import Codec
from streams.core.hashchain import GENESIS_HASH
from streams.core.ledger import Ledger
from streams.topics import JOURNAL, REJECTIONS, SIGNALS
from tests.integration import analytics_scenario as scenario
from tests.unit.connectors.arrow_types import TYPES

RECORD_TYPES = {JOURNAL: "JournalBatch", SIGNALS: "Signal", REJECTIONS: "Rejection"}


def _records() -> tuple[list[tuple[bytes, str, int, int]], tables.Rows, bytes, bytes]:
    """The scenario's records as (value, topic, partition, offset), the rows the loop makes of them,
    and two records that are no rows: a batch with an amount beyond decimal(38, 0), and a signal on
    the journal."""
    codec, rows, records = Codec(), tables.Rows(), []
    for n, output in enumerate(ledger_outputs(scenario.events(), Ledger(), codec)):
        record = codec.decode(output.value)
        records.append((output.value, output.topic, n % 3, n))
        if output.topic == JOURNAL:
            tables.add_batch(rows, record, n % 3, n)
            batch = record
        elif output.topic == SIGNALS:
            tables.add_signal(rows, record)
            signal_value = output.value
        else:
            tables.add_rejection(rows, record)
    batch["postings"] = [{**batch["postings"][0], "amount": 10**38}, *batch["postings"][1:]]
    return records, rows, codec.encode(batch), signal_value


def _arguments(records: list[tuple[bytes, str, int, int]]) -> tuple:
    values, topics, partitions, offsets = (list(column) for column in zip(*records, strict=True))
    return values, topics, partitions, offsets, RECORD_TYPES, TYPES


def test_built_rows_are_the_loops_rows_and_bad_records_are_letters() -> None:
    records, rows, out_of_range, signal_value = _records()
    bad = [(b"not avro", JOURNAL, 0, 10_000), (out_of_range, JOURNAL, 0, 10_001), (signal_value, JOURNAL, 0, 10_002)]
    built = build(*_arguments(records[:5] + bad + records[5:]))
    expected = tables.arrow_tables(rows, TYPES)
    got = built.arrow()
    assert list(got) == list(expected)
    for table, data in expected.items():
        assert got[table].equals(data), table
    letters = [outcome for outcome in built.outcomes if outcome[0] == "letter"]
    assert [kind for _, kind, _ in letters] == ["bad_magic", "schema_mismatch", "unexpected_type"]
    assert "amount outside decimal(38, 0)" in letters[1][2]
    assert len(built.outcomes) == len(records) + len(bad)
    assert sum(outcome[0] == "batch" for outcome in built.outcomes) == sum(t == JOURNAL for _, t, _, _ in records)
    assert sum(outcome == ROWS for outcome in built.outcomes) == sum(t != JOURNAL for _, t, _, _ in records)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 4), st.booleans()), max_size=12))
def test_all_new_says_what_judge_would(steps: list[tuple[str, int, bool]]) -> None:
    """Batches of two chains, each a step back or ahead of its tip, linked right or wrong."""
    heads = {"a": (0, GENESIS_HASH), "b": (0, GENESIS_HASH)}
    batches = []
    for chain, step, linked in steps:
        seq, last_hash = heads[chain]
        seq = max(1, seq + step - 1)
        batch = ((chain, 0), seq, last_hash if linked else "wrong", f"{chain}{seq}-{len(batches)}")
        batches.append(batch)
        heads[chain] = (seq, batch[3])
    tips = ChainTips({("a", 0): (1, "a1")})
    predicted = tips.all_new(batches)
    assert tips.tips == {("a", 0): (1, "a1")}  # changed nothing
    assert predicted == all(tips.judge(*batch) is Verdict.NEW for batch in batches)


def test_a_dead_child_is_replaced_and_its_work_built_again() -> None:
    arguments = _arguments(_records()[0])
    builder = Builder(1)
    try:
        assert builder.result(builder.submit(*arguments), *arguments).tables == build(*arguments).tables
        children = multiprocessing.active_children()
        assert children
        for child in children:
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
        # Handed to the dead child (built here instead) or, once its death is known, to a new one.
        for _ in range(3):
            assert builder.result(builder.submit(*arguments), *arguments).tables == build(*arguments).tables
        assert all(child.pid not in {c.pid for c in children} for child in multiprocessing.active_children())
    finally:
        builder.close()


@pytest.mark.parametrize("when", ["after_a_build", "at_once"])
def test_children_leave_when_their_sink_is_killed(tmp_path: Path, when: str) -> None:
    """A sink killed with SIGKILL cannot shut its pool down: the children leave by themselves, also
    when the kill comes while they are still starting (before they could see who their sink is)."""
    wait_for_children = "builder.result(builder.submit([], [], [], [], {}, {}), [], [], [], [], {}, {})"
    script = tmp_path / "sink.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})\n"
        "from connectors.clickhouse.building import Builder\n"
        "if __name__ == '__main__':\n"  # spawned children import this module again
        "    builder = Builder(2)\n"
        f"    {wait_for_children if when == 'after_a_build' else 'pass'}\n"
        "    print(' '.join(str(c.pid) for c in __import__('multiprocessing').active_children()), flush=True)\n"
        "    time.sleep(600)\n")
    sink = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        children = [int(pid) for pid in sink.stdout.readline().split()]  # type: ignore[union-attr]
        assert children
    finally:
        sink.kill()
        sink.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children):
        assert time.monotonic() < deadline, "children outlived their sink"
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone, only not yet reaped by init
        return stat.read().split(") ", 1)[1][0] != "Z"
