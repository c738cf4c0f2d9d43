"""Pure parts of the ClickHouse sink: DDL versioning, rows from records, chain verdicts, error labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.clickhouse import rows as tables
from connectors.clickhouse import schema
from connectors.clickhouse.chain import ChainTips, Verdict
from connectors.clickhouse.reconcile import first_balance_difference, first_chain_break, unbalanced_assets
from connectors.clickhouse.simulate import ledger_outputs
from connectors.clickhouse.store import error_reason
from streams.codec import Codec
from streams.core.hashchain import GENESIS_HASH
from streams.core.ledger import Ledger
from streams.topics import JOURNAL
from tests.integration import analytics_scenario as scenario
from tests.unit.connectors.arrow_types import TYPES


def test_ddl_files_are_versioned_and_every_table_has_its_row_builder() -> None:
    migrations = schema.load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert set(schema.data_tables(migrations)) == set(tables.COLUMNS)
    assert all("IF NOT EXISTS" in s for m in migrations for s in m.statements)  # a rerun is harmless


def test_split_statements_drops_comments_and_keeps_semicolons_inside_lines() -> None:
    sql = "-- a comment; with a semicolon\nCREATE TABLE a (x String DEFAULT ';');\n\nCREATE VIEW b AS SELECT 1;\n"
    assert schema.split_statements(sql) == ("CREATE TABLE a (x String DEFAULT ';')", "CREATE VIEW b AS SELECT 1")


def test_an_applied_file_that_changed_or_a_newer_database_is_refused(tmp_path: Path) -> None:
    (tmp_path / "V001__first.sql").write_text("CREATE TABLE IF NOT EXISTS {db}.t (x UInt8) ENGINE = Memory;\n")
    (tmp_path / "V002__second.sql").write_text("CREATE TABLE IF NOT EXISTS {db}.u (x UInt8) ENGINE = Memory;\n")
    first, second = schema.load_migrations(tmp_path)
    assert schema.pending([first, second], {1: first.checksum}) == [second]
    assert schema.pending([first, second], {1: first.checksum, 2: second.checksum}) == []
    with pytest.raises(schema.SchemaError, match="changed after it was applied"):
        schema.pending([first, second], {1: "0" * 64})
    with pytest.raises(schema.SchemaError, match="newer"):
        schema.pending([first], {1: first.checksum, 2: second.checksum})
    (tmp_path / "V004__gap.sql").write_text("")
    with pytest.raises(schema.SchemaError, match="without gaps"):
        schema.load_migrations(tmp_path)


def _scenario_rows() -> tables.Rows:
    codec, rows = Codec(), tables.Rows()
    for n, output in enumerate(ledger_outputs(scenario.events(), Ledger(), codec)):
        record = codec.decode(output.value)
        if output.topic == JOURNAL:
            tables.add_batch(rows, record, 0, n)
        elif record["type"] == "Signal":
            tables.add_signal(rows, record)
        else:
            tables.add_rejection(rows, record)
    return rows


def _records(rows: tables.Rows, table: str) -> list[dict]:
    return [dict(zip(tables.COLUMNS[table], values, strict=True)) for values in rows.rows[table]]


def test_posting_rows_are_each_posting_with_its_batch_columns() -> None:
    codec, rows, expected = Codec(), tables.Rows(), []
    for n, output in enumerate(ledger_outputs(scenario.events(), Ledger(), codec)):
        if output.topic == JOURNAL:
            batch = codec.decode(output.value)
            tables.add_batch(rows, batch, 0, n)
            for index, p in enumerate(batch["postings"]):
                expected.append({
                    "account": p["account"], "asset": p["asset"], "stage": batch["stage"],
                    "input_partition": batch["input_partition"], "batch_seq": batch["batch_seq"],
                    "posting_index": index, "posting_id": p["posting_id"], "key": batch["key"],
                    "origin_key": batch["origin_key"], "event_id": batch["event_id"], "event_type": batch["event_type"],
                    "ts_us": batch["ts_us"], "input_topic": batch["input_topic"] or "",
                    "input_offset": batch["input_offset"], "amount": p["amount"], "kind": p["kind"]})
    table = tables.arrow_tables(rows, TYPES)["journal_postings"]
    assert table.column_names == list(tables.COLUMNS["journal_postings"])
    assert [{**row, "amount": int(row["amount"])} for row in table.to_pylist()] == expected
    assert len({row["batch_seq"] for row in expected}) > 1 and max(row["posting_index"] for row in expected) > 0



def test_trade_rows_carry_both_sides_fees_and_realized_pnl() -> None:
    trades = {(t["trade_id"], t["user"]): t for t in _records(_scenario_rows(), "trades")}
    t2_bob, t2_alice = trades[("T2", "bob")], trades[("T2", "alice")]
    assert (t2_bob["role"], t2_bob["side"], t2_bob["fee_minor"], t2_bob["realized_pnl_minor"]) == (
        "buyer", "buy", 1, -30)
    assert (t2_alice["role"], t2_alice["side"], t2_alice["realized_pnl_minor"], t2_alice["position_after"]) == (
        "seller", "sell", 30, 2)
    lf1 = trades[("LF1", "carol")]
    assert (lf1["role"], lf1["side"], lf1["penalty_minor"], lf1["realized_pnl_minor"]) == ("liquidated", "sell", 4, -60)
    assert trades[("LF2", "carol")]["side"] == ""  # closed in full: the view trades_sided tells it


def test_funding_and_liquidation_rows() -> None:
    rows = _scenario_rows()
    assert [(f["user"], f["amount_minor"]) for f in _records(rows, "funding_payments")] == [("alice", -4), ("bob", 4)]
    steps = [(e["step"], e["liquidation_id"], e["penalty_minor"], e["insurance_cover_minor"], e["uncovered_minor"])
             for e in _records(rows, "liquidation_events")]
    assert steps == [("triggered", scenario.LIQUIDATION_ID, 0, 0, 0), ("fill", scenario.LIQUIDATION_ID, 4, 0, 0),
                     ("fill", scenario.LIQUIDATION_ID, 0, 0, 0), ("completed", scenario.LIQUIDATION_ID, 0, 34, 0),
                     ("deficit_uncovered", "", 0, 0, 10)]


def _scenario_batch(event_type: str) -> dict:
    codec = Codec()
    for output in ledger_outputs(scenario.events(), Ledger(), codec):
        if output.topic == JOURNAL and (batch := codec.decode(output.value))["event_type"] == event_type:
            return batch
    raise AssertionError(f"no {event_type} batch in the scenario")


def _with_payload_field(batch: dict, name: str, value: int) -> dict:
    fields = tables.payload_fields(batch)
    payload = json.loads(batch["payload_json"])
    payload[4 + list(fields).index(name)] = value
    return {**batch, "payload_json": json.dumps(payload)}


@pytest.mark.parametrize("edge", [10**38 - 1, -(10**38 - 1)])
def test_numbers_at_the_edge_of_decimal_38_make_rows(edge: int) -> None:
    fill = _scenario_batch("TradeFill")
    batch = {**fill, "postings": [{**fill["postings"][0], "amount": edge}, *fill["postings"][1:]]}
    rows = tables.Rows()
    tables.add_batch(rows, _with_payload_field(batch, "price", edge), 0, 0)
    assert rows.postings[0]["amount"] == edge and rows.rows["trades"][0][14] == edge


@pytest.mark.parametrize("change", ["posting", "position size", "entry price", "event field"])
@pytest.mark.parametrize("beyond", [10**38, -(10**38)])
def test_a_number_beyond_decimal_38_is_refused_before_any_row(change: str, beyond: int) -> None:
    fill = _scenario_batch("TradeFill")
    batch = {
        "posting": lambda: {**fill, "postings": [{**fill["postings"][0], "amount": beyond}]},
        "position size": lambda: {**fill, "positions": [{**fill["positions"][0], "size": beyond}]},
        "entry price": lambda: {**fill, "positions": [{**fill["positions"][0], "entry_price": beyond}]},
        "event field": lambda: _with_payload_field(fill, "quantity", beyond),
    }[change]()
    rows = tables.Rows()
    with pytest.raises(tables.OutOfRange, match=r"outside decimal\(38, 0\)"):
        tables.add_batch(rows, batch, 0, 0)
    assert rows.total() == 0


def test_a_signal_amount_beyond_decimal_38_is_refused_before_any_row() -> None:
    signal = {"market": "M", "signal_type": "DeficitUncovered", "stage": "market", "key": "M", "event_id": "e",
              "user": "u", "ts_us": 1, "liquidation_id": "liq:M:u:e", "amount": 10**38}
    rows = tables.Rows()
    with pytest.raises(tables.OutOfRange):
        tables.add_signal(rows, signal)
    assert rows.total() == 0
    tables.add_signal(rows, {**signal, "amount": 10**38 - 1})
    assert rows.total() == 2  # the signal and its liquidation step


@given(st.lists(st.integers(min_value=1, max_value=30), max_size=80))
def test_every_batch_of_a_chain_is_new_exactly_once_whatever_the_copies(resends: list[int]) -> None:
    """Batches 1..30 in order, with copies of already sent batches sent again at any point."""
    hashes = [GENESIS_HASH] + [f"{n:064x}" for n in range(1, 31)]
    tips, new, sent = ChainTips(), [], 0
    stream = []
    for copy in resends:
        sent = min(30, sent + 1)
        stream.append(sent)
        stream.append(min(copy, sent))
    stream += range(sent + 1, 31)
    for seq in stream:
        verdict = tips.judge(("market", 0), seq, hashes[seq - 1], hashes[seq])
        assert verdict in (Verdict.NEW, Verdict.DUPLICATE)
        if verdict is Verdict.NEW:
            new.append(seq)
    assert new == list(range(1, 31))


def test_gaps_wrong_links_and_conflicting_copies_are_reported() -> None:
    tips = ChainTips({("account", 1): (5, "a" * 64)})
    assert tips.judge(("account", 1), 6, "b" * 64, "c" * 64) is Verdict.BREAK  # wrong prev_hash
    assert tips.judge(("account", 1), 8, "c" * 64, "d" * 64) is Verdict.BREAK  # a gap
    assert tips.judge(("account", 1), 8, "c" * 64, "e" * 64) is Verdict.CONFLICT
    assert tips.judge(("market", 0), 2, GENESIS_HASH, "f" * 64) is Verdict.BREAK  # does not start at 1


def test_reconcile_checks_name_the_first_discrepancy() -> None:
    assert first_balance_difference({("a", "X"): 1}, {("a", "X"): 1}) is None
    assert first_balance_difference({("a", "X"): 1, ("b", "X"): 2}, {("a", "X"): 1, ("b", "X"): 3}) == (
        "balance of b in X: ClickHouse 2, core 3")
    assert unbalanced_assets({("a", "X"): 5, ("b", "X"): -5}) is None
    assert unbalanced_assets({("a", "X"): 5, ("b", "Y"): -5}) == "assets do not sum to zero: {'X': 5, 'Y': -5}"
    assert first_chain_break([("market", 0, 2, "M", "", "[]", "[]", "[]", GENESIS_HASH, "0" * 64, [])]) == (
        "chain market-0 batch 2: expected batch 1 (a gap)")


def test_error_reasons() -> None:
    assert error_reason(RuntimeError("Code: 60. DB::Exception: Table perpledger.trades does not exist")) == (
        "table_missing")
    assert error_reason(ConnectionRefusedError("refused")) == "unavailable"
    assert error_reason(RuntimeError("Failed to create connection: Code: 36.")) == "unavailable"
    assert error_reason(ValueError("bad value")) == "other"
