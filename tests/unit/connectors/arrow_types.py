"""Arrow types of every sink column, as the store reads them from ClickHouse (for tests without one)."""

from __future__ import annotations

import pyarrow as pa

from connectors.clickhouse import rows as tables

_INTEGERS = {"input_partition", "batch_seq", "posting_index", "ts_us", "input_offset", "posting_count",
             "journal_partition", "journal_offset", "epoch", "rate_ppb"}
_MONEY = {"amount", "size", "entry_price", "price", "quantity", "fee_minor", "realized_pnl_minor", "penalty_minor",
          "position_after", "amount_minor", "deficit_minor", "insurance_cover_minor", "uncovered_minor"}

TYPES = {table: {name: pa.int64() if name in _INTEGERS else pa.decimal128(38, 0) if name in _MONEY
                 else pa.string() for name in columns} for table, columns in tables.COLUMNS.items()}
