"""The sink's side of ClickHouse: connect and migrate, insert a buffer, read the chain tips back."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pyarrow as pa

from connectors.clickhouse import schema
from connectors.clickhouse.chain import Chain
from connectors.clickhouse.client import Target, connect
from connectors.clickhouse.rows import COLUMNS, TABLES

UNAVAILABLE, TABLE_MISSING, OTHER = "unavailable", "table_missing", "other"
# ClickHouse error codes: UNKNOWN_TABLE, UNKNOWN_DATABASE.
_MISSING_CODES = ("Code: 60.", "Code: 81.", "UNKNOWN_TABLE", "UNKNOWN_DATABASE")


_ARROW_TYPES = {"String": pa.string(), "Int32": pa.int32(), "Int64": pa.int64(), "UInt16": pa.uint16(),
                "UInt32": pa.uint32(), "UInt64": pa.uint64(),
                # Arrow has no 128-bit integer; ClickHouse converts Decimal(38, 0), the journal's own type.
                "Int128": pa.decimal128(38, 0)}


# No ReplacingMergeTree dedup inside each inserted block: it costs about half the insert's CPU and is
# redundant here, as every copy is dropped before the insert or collapsed by FINAL across blocks anyway.
_INSERT_SETTINGS = {"optimize_on_insert": 0}


def arrow_type(clickhouse_type: str) -> pa.DataType:
    """The Arrow type to send for a column (Arrow columns are all nullable)."""
    wrapped = re.fullmatch(r"(?:Nullable|LowCardinality)\((.+)\)", clickhouse_type)
    return arrow_type(wrapped[1]) if wrapped else _ARROW_TYPES[clickhouse_type]


def error_reason(error: BaseException) -> str:
    """The metric label of a failed ClickHouse operation."""
    text = str(error)
    if any(code in text for code in _MISSING_CODES):
        return TABLE_MISSING
    if isinstance(error, (OSError, ConnectionError, TimeoutError)) or "connect" in text.lower():
        return UNAVAILABLE
    return OTHER


class Store:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.db = target.database
        self.client: Any = None
        self.arrow_types: dict[str, dict[str, pa.DataType]] = {}  # per table, the columns the sink writes

    def open(self, *, truncate: bool = False) -> None:
        """Connect, apply pending DDL, and with `truncate` empty every data table (a rebuild)."""
        client = connect(self.target)
        try:
            schema.apply(client, self.db)
            if truncate:
                for table in schema.data_tables():
                    client.command(f"TRUNCATE TABLE IF EXISTS {self.db}.{table}")
            result = client.query("SELECT table, name, type FROM system.columns WHERE database = {db:String}",
                                  parameters={"db": self.db})
        except BaseException:
            client.close()
            raise
        types = {(table, name): clickhouse_type for table, name, clickhouse_type in result.result_rows}
        self.arrow_types = {t: {name: arrow_type(types[t, name]) for name in COLUMNS[t]} for t in TABLES}
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                client.close()

    def insert(self, parts: dict[str, list[pa.Table]]) -> dict[str, int]:
        """Every table's rows (Arrow tables of `arrow_types`), journal_batches last (see rows.COLUMNS);
        rows inserted per table."""
        inserted = {}
        for table in TABLES:
            if parts.get(table):
                data = pa.concat_tables(parts[table])
                self.client.insert_arrow(f"{self.db}.{table}", data, settings=_INSERT_SETTINGS)
                inserted[table] = data.num_rows
        return inserted

    def chain_tips(self) -> dict[Chain, tuple[int, str]]:
        """The last batch of each chain whose rows are all in ClickHouse (its header is written last)."""
        result = self.client.query(
            f"SELECT stage, input_partition, max(batch_seq), argMax(hash, batch_seq) "
            f"FROM {self.db}.journal_batches GROUP BY stage, input_partition")
        return {(stage, partition): (seq, digest) for stage, partition, seq, digest in result.result_rows}


def backoff_s(attempt: int, *, first_s: float = 0.5, max_s: float = 30.0) -> float:
    """0.5, 1, 2, 4, ... seconds, at most 30."""
    return min(max_s, first_s * 2 ** min(attempt, 16))
