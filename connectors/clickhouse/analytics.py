"""`perpledger analytics ...`: the analysts' questions, one SQL file each in `queries/`.

Every query reads with FINAL (directly or through the views), so results count each row once
whatever the sink went through. `{db}` in a file is the project's database; `{name:Type}` are
query parameters.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUERIES_DIR = Path(__file__).resolve().parent / "queries"
PERIODS = ("day", "week", "month")


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def sql(name: str, db: str) -> str:
    return (QUERIES_DIR / f"{name}.sql").read_text().replace("{db}", db)


def run(client: Any, db: str, name: str, title: str | None = None, **parameters: str) -> Table:
    result = client.query(sql(name, db), parameters=parameters)
    return Table(title or name, tuple(result.column_names), [tuple(row) for row in result.result_rows])


def user_report(client: Any, db: str, user: str) -> list[Table]:
    return [run(client, db, "user_balances", f"balances of {user}", user=user),
            run(client, db, "user_positions", f"positions of {user}", user=user)]


def funding_report(client: Any, db: str, user: str, market: str) -> list[Table]:
    return [run(client, db, "funding_history", "funding payments", user=user, market=market)]


def liquidation_report(client: Any, db: str, market: str, period: str) -> list[Table]:
    report = run(client, db, "liquidation_report", "liquidations per market", market=market)
    markets = [market] if market else [row[0] for row in report.rows]
    return [report, *(run(client, db, "insurance_usage", f"insurance fund of {m} per {period}", market=m,
                          period=period) for m in markets)]


def pnl_report(client: Any, db: str, user: str, period: str) -> list[Table]:
    return [run(client, db, "user_pnl", f"PnL of {user}", user=user),
            run(client, db, "profit_series", f"profit of {user} per {period}", user=user, period=period)]


def equity_report(client: Any, db: str, user: str) -> list[Table]:
    return [run(client, db, "equity_curve", f"equity curve of {user}", user=user)]


def _plain(value: Any) -> Any:
    """JSON-ready: integers stay exact (money can exceed 2^53), times become ISO 8601."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def to_json(tables: list[Table]) -> str:
    return json.dumps({t.title: [{k: _plain(v) for k, v in r.items()} for r in t.records()] for t in tables},
                      indent=1)


def to_text(tables: list[Table]) -> str:
    """Aligned columns, numbers right-aligned."""
    out = []
    for table in tables:
        cells = [[str(_plain(v)) for v in row] for row in table.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(table.columns)]
        numeric = [all(isinstance(row[i], int) for row in table.rows) and bool(table.rows)
                   for i in range(len(table.columns))]

        def line(values: list[str], numeric: list[bool] = numeric, widths: list[int] = widths) -> str:
            return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True))

        out += [f"== {table.title} ({len(table.rows)} rows)", line(list(table.columns)),
                line(["-" * w for w in widths]), *(line(row) for row in cells), ""]
    return "\n".join(out)
