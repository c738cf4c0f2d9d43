"""Rows from the sink's records, built in a child process while the sink's loop consumes the next ones.

Why: the loop holds the GIL, and decoding plus building rows was nearly all of its time, while a third
of the two cores sat idle (`perf`, `scripts/bench_sink.py`). What crosses between the processes is
cheap to copy: the records' values on the way in, Arrow IPC buffers and one small tuple per record
on the way back (decoded records themselves cost a third of their decoding to pickle, which is why
the child builds the rows too).

`build` is a pure function of its arguments, so where it runs changes nothing in the results. A child
that dies is replaced and its work done in the loop: nothing is lost or reordered.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, NamedTuple

import pyarrow as pa

from connectors.clickhouse import rows as tables
from connectors.clickhouse.chain import chain_of
from streams.codec import Codec, DecodeError
from streams.codec.errors import SCHEMA_MISMATCH

log = logging.getLogger("perpledger.sink")

# What `build` says of each record, in order.
ROWS = ("rows",)  # a signal's or a rejection's rows are built
# ("batch", chain, batch_seq, prev_hash, hash): a journal batch's rows are built
# ("letter", error kind, message): not a record of its topic: a dead letter

_codec: Codec | None = None  # the process's own, made once
_PARENT_CHECK_S = 1.0  # how soon a child whose sink died leaves


class Built(NamedTuple):
    outcomes: list[tuple]  # per record, in order (see above)
    tables: dict[str, bytes]  # per table, its rows as an Arrow IPC stream

    def arrow(self) -> dict[str, pa.Table]:
        return {table: pa.ipc.open_stream(data).read_all() for table, data in self.tables.items()}


def read_record(codec: Codec, value: bytes | None, topic: str, record_types: dict[str, str]) -> dict:
    """The record a value read from `topic` holds; DecodeError if it is not one of the records that
    topic carries (`record_types`)."""
    record = codec.decode(value)
    expected = record_types[topic]
    if record["type"] != expected:
        raise DecodeError("unexpected_type", f"{record['type']} on {topic}, expected {expected}")
    return record


def build(values: list[bytes | None], topics: list[str], partitions: list[int], offsets: list[int],
          record_types: dict[str, str], types: dict[str, dict[str, pa.DataType]]) -> Built:
    """The rows of records read from the sink's topics (`record_types`: what each topic carries), as
    Arrow tables of `types`, and per record what the loop needs to judge it."""
    global _codec
    if _codec is None:
        _codec = Codec()
    rows, outcomes = tables.Rows(), []
    for value, topic, partition, offset in zip(values, topics, partitions, offsets, strict=True):
        try:
            record = read_record(_codec, value, topic, record_types)
            if record["type"] == "JournalBatch":
                tables.add_batch(rows, record, partition, offset)
                outcomes.append(("batch", chain_of(record), record["batch_seq"], record["prev_hash"], record["hash"]))
            else:
                (tables.add_signal if record["type"] == "Signal" else tables.add_rejection)(rows, record)
                outcomes.append(ROWS)
        except DecodeError as error:
            outcomes.append(("letter", error.kind, error.message))
        except tables.OutOfRange as error:
            outcomes.append(("letter", SCHEMA_MISMATCH, str(error)))
    return Built(outcomes, {table: _ipc(data) for table, data in tables.arrow_tables(rows, types).items()})


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _start_child(parent_pid: int) -> None:
    # A terminal's Ctrl-C or a pod's SIGTERM reaches the whole process group: the sink stops in
    # order and shuts the child down; the child must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A sink killed outright (SIGKILL, out of memory) cannot shut its children down, and they would
    # wait for work forever: each leaves once it sees it has another parent. The sink's pid comes
    # from the sink itself: one killed while this child was still starting is already gone here.
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_CHECK_S)
    os._exit(0)


class Builder:
    """Runs `build` in `processes` child processes (0: in the caller, at once)."""

    def __init__(self, processes: int) -> None:
        assert processes >= 0
        self.processes = processes
        self._pool = self._new_pool() if processes else None

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the sink holds librdkafka's and chDB's threads, which a fork would copy
        # in whatever state they were in.
        pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_start_child, initargs=(os.getpid(),))
        # Start every child now (each takes ~0.5 s to import): the pool starts one per task it is given
        # while none is idle.
        for _ in range(self.processes):
            pool.submit(build, [], [], [], [], {}, {})
        return pool

    def submit(self, *args: Any) -> Future[Built]:
        if self._pool is None:
            future: Future[Built] = Future()
            future.set_result(build(*args))
            return future
        try:
            return self._pool.submit(build, *args)
        except BrokenProcessPool:
            # The child died since the last call; what it held is built here (`result`).
            log.error("the row-building process died: replaced")
            self._pool.shutdown(wait=False)
            self._pool = self._new_pool()
            return self._pool.submit(build, *args)

    @staticmethod
    def result(future: Future[Built], *args: Any) -> Built:
        """`build`'s result (waiting for it); built here if the child died meanwhile."""
        try:
            return future.result()
        except BrokenProcessPool:
            return build(*args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
