"""The sink's side of ClickHouse: connect and migrate, insert a buffer, read the chain tips back."""

from __future__ import annotations

import contextlib
from typing import Any

from connectors.clickhouse import schema
from connectors.clickhouse.chain import Chain
from connectors.clickhouse.client import Target, connect
from connectors.clickhouse.rows import COLUMNS, TABLES, Rows

UNAVAILABLE, TABLE_MISSING, OTHER = "unavailable", "table_missing", "other"
# ClickHouse error codes: UNKNOWN_TABLE, UNKNOWN_DATABASE.
_MISSING_CODES = ("Code: 60.", "Code: 81.", "UNKNOWN_TABLE", "UNKNOWN_DATABASE")


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

    def open(self, *, truncate: bool = False) -> None:
        """Connect, apply pending DDL, and with `truncate` empty every data table (a rebuild)."""
        client = connect(self.target)
        try:
            schema.apply(client, self.db)
            if truncate:
                for table in schema.data_tables():
                    client.command(f"TRUNCATE TABLE IF EXISTS {self.db}.{table}")
        except BaseException:
            client.close()
            raise
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                client.close()

    def insert(self, rows: Rows) -> dict[str, int]:
        """Every table's rows, journal_batches last (see rows.COLUMNS); rows inserted per table."""
        inserted = {}
        for table in TABLES:
            count = rows.count(table)
            if count:
                self.client.insert(f"{self.db}.{table}", rows.columns[table], column_names=COLUMNS[table],
                                   column_oriented=True)
                inserted[table] = count
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
