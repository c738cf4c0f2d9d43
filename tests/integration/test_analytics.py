"""Analytics, reconciliation and rebuild on ClickHouse filled by the sink from a real broker.

The numbers are worked out by hand in analytics_scenario.py's docstring."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from connectors.clickhouse import analytics, reconcile
from connectors.clickhouse.simulate import ledger_outputs
from streams.codec import Codec
from streams.core.ledger import Ledger
from streams.workload import generate
from tests.integration import analytics_scenario as scenario
from tests.integration.sink_harness import SinkProcess, create_sink_topics, produce
from tests.integration.test_sink import clickhouse
from tests.integration.worker_harness import ROOT

pytestmark = pytest.mark.integration
DB = "perpledger"
DAY = [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(5)]


@pytest.fixture(scope="module")
def scenario_sink(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> SinkProcess:
    """The scenario's outputs on fresh topics, projected by a sink that has exited."""
    tmp_path = tmp_path_factory.mktemp("analytics")
    suffix = f".{uuid.uuid4().hex[:8]}"
    create_sink_topics(kafka_bootstrap, suffix, partitions=1)
    produce(kafka_bootstrap, list(ledger_outputs(scenario.events(), Ledger(), Codec())), suffix)
    sink = SinkProcess(kafka_bootstrap, suffix, tmp_path, tmp_path / "sink.log")
    sink.run_to_end()
    return sink


def rows(table: analytics.Table, *columns: str) -> list[tuple]:
    return [tuple(record[c] for c in columns) for record in table.records()]


def test_user_balances_and_positions(scenario_sink: SinkProcess) -> None:
    with clickhouse(scenario_sink) as client:
        balances, positions = analytics.user_report(client, DB, "alice")
    assert rows(balances, "account", "asset", "balance_minor") == [
        ("user:alice:margin:M", "USD", 1023), ("user:alice:wallet:USD", "USD", 0)]
    assert rows(positions, "market", "size", "entry_price", "state") == [("M", 12, 88, "healthy")]


def test_funding_history(scenario_sink: SinkProcess) -> None:
    with clickhouse(scenario_sink) as client:
        (market,) = analytics.funding_report(client, DB, "", "M")
        (bob,) = analytics.funding_report(client, DB, "bob", "")
    columns = ("market", "epoch", "user", "asset", "amount_minor", "rate_ppb", "price")
    assert rows(market, *columns) == [("M", 1, "alice", "USD", -4, 20_000_000, 110),
                                      ("M", 1, "bob", "USD", 4, 20_000_000, 110)]
    assert rows(bob, *columns) == [("M", 1, "bob", "USD", 4, 20_000_000, 110)]
    assert market.records()[0]["settled_at"].date() == DAY[3]


def test_liquidation_report_and_insurance_fund_over_time(scenario_sink: SinkProcess) -> None:
    with clickhouse(scenario_sink) as client:
        report, fund = analytics.liquidation_report(client, DB, "", "day")
        (fund_by_month,) = analytics.liquidation_report(client, DB, "M", "month")[1:]
    assert report.records() == [{
        "market": "M", "liquidations": 1, "completed": 1, "fills": 2, "filled_quantity": 10, "penalty_minor": 4,
        "deficit_minor": 44, "insurance_cover_minor": 34, "uncovered_minor": 10}]
    columns = ("period", "funded_minor", "penalties_minor", "covers_minor", "funding_sweep_minor", "net_minor",
               "balance_minor")
    assert rows(fund, *columns) == [(DAY[0], 30, 0, 0, 0, 30, 30), (DAY[4], 0, 4, 34, 0, -30, 0)]
    assert rows(fund_by_month, *columns) == [(DAY[0], 30, 4, 34, 0, 0, 0)]


def test_pnl_fees_drawdowns_and_profit_series(scenario_sink: SinkProcess) -> None:
    columns = ("asset", "realized_pnl_minor", "fees_paid_minor", "funding_minor", "penalties_paid_minor",
               "profit_minor", "current_drawdown_minor", "max_drawdown_minor")
    with clickhouse(scenario_sink) as client:
        summaries = {u: analytics.pnl_report(client, DB, u, "day") for u in ("alice", "bob", "carol")}
        weekly = analytics.pnl_report(client, DB, "alice", "week")[1]
        (curve,) = analytics.equity_report(client, DB, "bob")
        sides = client.query("SELECT trade_id, user, role, side, realized_pnl_minor, penalty_minor "
                             "FROM perpledger.trades_sided WHERE event_type = 'LiquidationFill' "
                             "ORDER BY trade_id, user").result_rows
    assert rows(summaries["alice"][0], *columns) == [("USD", 30, 3, -4, 0, 23, 4, 4)]
    assert rows(summaries["bob"][0], *columns) == [("USD", -30, 2, 4, 0, -28, 28, 32)]
    assert rows(summaries["carol"][0], *columns) == [("USD", -240, 0, 0, 4, -244, 244, 244)]
    assert rows(summaries["alice"][1], "period", "realized_pnl_minor", "fees_paid_minor", "funding_minor",
                "profit_minor", "equity_minor") == [
        (DAY[1], 0, 2, 0, -2, -2), (DAY[2], 30, 1, 0, 29, 27), (DAY[3], 0, 0, -4, -4, 23)]
    assert rows(weekly, "period", "profit_minor", "equity_minor") == [(dt.date(2025, 12, 29), 23, 23)]
    assert rows(curve, "event_id", "profit_minor", "equity_minor", "peak_minor", "drawdown_minor") == [
        ("T1", -1, -1, 0, 1), ("T2", -31, -32, 0, 32), ("settle-1", 4, -28, 0, 28)]
    # LF2 closes carol in full: her side is read from the position before it
    assert sides == [("LF1", "alice", "counterparty", "buy", 0, 0), ("LF1", "carol", "liquidated", "sell", -60, 4),
                     ("LF2", "alice", "counterparty", "buy", 0, 0), ("LF2", "carol", "liquidated", "sell", -180, 0)]


def test_analytics_command_prints_json(scenario_sink: SinkProcess) -> None:
    answer = subprocess.run([str(ROOT / ".venv/bin/perpledger"), "analytics", "pnl", "--user", "bob", "--json"],
                            env={**scenario_sink.env}, capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(answer.stdout)
    assert report["PnL of bob"][0]["max_drawdown_minor"] == 32
    assert [r["period"] for r in report["profit of bob per day"]] == ["2026-01-02", "2026-01-03", "2026-01-04"]


def test_reconcile_catches_a_corrupted_row_and_a_rebuild_repairs_it(kafka_bootstrap: str, tmp_path: Path) -> None:
    suffix = f".{uuid.uuid4().hex[:8]}"
    create_sink_topics(kafka_bootstrap, suffix)
    events = list(generate(seed=24, n_events=2_000, n_markets=3, n_users=100))
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    produce(kafka_bootstrap, list(ledger_outputs(events, Ledger(), Codec())), suffix)
    sink = SinkProcess(kafka_bootstrap, suffix, tmp_path, tmp_path / "sink.log")
    sink.run_to_end()
    core = reconcile.core_from_file(str(tmp_path / "events.jsonl"))
    with clickhouse(sink) as client:
        assert reconcile.reconcile(client, DB, core) == [
            ("hash chain", None), ("zero sum", None), ("balances against the core", None)]
        # change one posting's amount: a row inserted again with the same identity replaces it under FINAL
        victim = client.query("SELECT * FROM perpledger.journal_postings FINAL WHERE kind = 'fee' "
                              "ORDER BY stage, batch_seq LIMIT 1")
        row = dict(zip(victim.column_names, victim.result_rows[0], strict=True))
        columns = [c for c in victim.column_names if c not in ("ts", "user", "market")]
        client.insert("perpledger.journal_postings", [[row[c] + 1 if c == "amount" else row[c] for c in columns]],
                      column_names=columns)
        found = dict(reconcile.reconcile(client, DB, core))
    assert found["hash chain"] == (f"chain {row['stage']}-{row['input_partition']} batch {row['batch_seq']}: "
                                   "its rows do not hash to the stored hash (a posting changed, lost or added)")
    assert found["zero sum"] is not None and row["asset"] in found["zero sum"]
    assert found["balances against the core"].startswith(f"balance of {row['account']} in {row['asset']}")
    # the command says so too, and exits non-zero
    check = subprocess.run([str(ROOT / ".venv/bin/perpledger"), "reconcile", "--input", str(tmp_path / "events.jsonl")],
                           env=sink.env, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1 and f"batch {row['batch_seq']}" in check.stdout

    sink.run_to_end("--rebuild")  # empty tables, the topics again from offset 0
    with clickhouse(sink) as client:
        assert reconcile.reconcile(client, DB, core) == [
            ("hash chain", None), ("zero sum", None), ("balances against the core", None)]
        assert client.query("SELECT count() FROM perpledger.journal_postings").result_rows[0][0] == client.query(
            "SELECT count() FROM perpledger.journal_postings FINAL").result_rows[0][0]
