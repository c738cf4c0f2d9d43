"""Rows of the ClickHouse tables from the decoded records of the ledger's output topics (pure).

A journal batch fills `journal_batches` (its header, enough to verify the hash chain), one
`journal_postings` row per posting, `positions` for every position it changed, and, by event type,
`trades` (one row per side), `funding_rates`, `funding_payments` and `liquidation_events`. Signals fill
`signals` (and the trigger and uncovered deficit steps of `liquidation_events`); rejections fill
`rejections`. Columns left out here (`ts`, the postings' `user` and `market`) are computed by
ClickHouse from their DEFAULT expressions.

Rows are handed to ClickHouse as Arrow tables (`arrow_tables`): pyarrow converts whole columns in C,
where clickhouse-connect's Native insert serialises value by value in Python. A posting is not
copied into a row here at all: its batch's columns are taken from the `journal_batches` row by
index, so per posting only its own dict is kept.
"""

from __future__ import annotations

import json
import json.encoder
from typing import Any

import pyarrow as pa

from streams.core.events import spec_for
from streams.core.hashchain import compact_json

COLUMNS: dict[str, tuple[str, ...]] = {
    "journal_postings": (
        "account", "asset", "stage", "input_partition", "batch_seq", "posting_index", "posting_id", "key",
        "origin_key", "event_id", "event_type", "ts_us", "input_topic", "input_offset", "amount", "kind"),
    "positions": (
        "market", "user", "stage", "input_partition", "batch_seq", "event_id", "event_type", "ts_us", "size",
        "entry_price", "state"),
    "trades": (
        "market", "stage", "input_partition", "batch_seq", "user", "event_type", "event_id", "trade_id",
        "liquidation_id", "role", "side", "counterparty", "ts_us", "asset", "price", "quantity", "fee_minor",
        "realized_pnl_minor", "penalty_minor", "position_after"),
    "funding_rates": (
        "market", "epoch", "stage", "input_partition", "batch_seq", "event_id", "ts_us", "rate_ppb", "price"),
    "funding_payments": (
        "market", "epoch", "user", "stage", "input_partition", "batch_seq", "event_id", "ts_us", "asset",
        "amount_minor"),
    "liquidation_events": (
        "market", "liquidation_id", "step", "batch_seq", "user", "event_id", "ts_us", "asset", "counterparty",
        "price", "quantity", "penalty_minor", "deficit_minor", "insurance_cover_minor", "uncovered_minor"),
    "signals": (
        "market", "signal_type", "stage", "key", "event_id", "user", "ts_us", "liquidation_id", "amount_minor"),
    "rejections": (
        "input_topic", "input_partition", "input_offset", "stage", "key", "event_id", "event_type", "reason",
        "detail", "ts_us", "payload_json"),
    # Last: a batch's header is written after all its other rows, so a header in ClickHouse means the
    # whole batch is there (the sink's duplicate check after a restart relies on it).
    "journal_batches": (
        "stage", "input_partition", "batch_seq", "key", "origin_key", "event_id", "event_type", "ts_us",
        "input_topic", "input_offset", "payload_json", "balances_json", "positions_json", "posting_count",
        "prev_hash", "hash", "journal_partition", "journal_offset"),
}
TABLES: tuple[str, ...] = tuple(COLUMNS)
POSTINGS = "journal_postings"
# The event types whose rows need the input event's fields (from the batch's payload).
_PAYLOAD_TYPES = frozenset({"TradeFill", "LiquidationFill", "FundingRateSnapshot", "FundingEpochSettle",
                            "LiquidationCompleted"})
# Int128 columns (and Arrow's decimal128(38, 0) that carries them) hold decimal(38, 0) and no more.
DECIMAL_MAX = 10**38 - 1
# A posting's own fields (from its dict), and the columns it shares with its batch's journal_batches row.
_POSTING_FIELDS = ("posting_id", "account", "asset", "amount", "kind")
_BATCH_FIELDS = tuple(c for c in COLUMNS[POSTINGS] if c in COLUMNS["journal_batches"])


class Rows:
    """Rows per table as tuples in COLUMNS order; journal_postings as the postings' dicts (see `arrow_tables`)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple]] = {t: [] for t in TABLES if t != POSTINGS}
        self.postings: list[dict[str, Any]] = []
        self.posting_batch: list[int] = []  # per posting: its batch's row in journal_batches
        self.posting_index: list[int] = []  # per posting: its place in its batch

    def add(self, table: str, row: tuple) -> None:
        self.rows[table].append(row)

    def count(self, table: str) -> int:
        return len(self.postings) if table == POSTINGS else len(self.rows[table])

    def total(self) -> int:
        return sum(self.count(t) for t in TABLES)


def arrow_tables(rows: Rows, types: dict[str, dict[str, pa.DataType]]) -> dict[str, pa.Table]:
    """Every table that has rows, as Arrow, in TABLES order; `types` per table and column name."""
    tables = {}
    for table in TABLES:
        if table != POSTINGS and rows.rows[table]:
            struct = pa.struct([(name, types[table][name]) for name in COLUMNS[table]])
            tables[table] = pa.Table.from_struct_array(pa.array(rows.rows[table], struct))
    if rows.postings:
        own_types = types[POSTINGS]
        own = pa.array(rows.postings, pa.struct([(f, own_types[f]) for f in _POSTING_FIELDS]))
        batches, which = tables["journal_batches"], pa.array(rows.posting_batch, pa.int64())
        columns = {name: batches.column(name).take(which).cast(own_types[name]) for name in _BATCH_FIELDS}
        columns |= {f: own.field(f) for f in _POSTING_FIELDS}
        columns["posting_index"] = pa.array(rows.posting_index, own_types["posting_index"])
        tables[POSTINGS] = pa.table({name: columns[name] for name in COLUMNS[POSTINGS]})
    return {table: tables[table] for table in TABLES if table in tables}


def payload_fields(batch: dict) -> dict[str, Any]:
    """The input event's fields by name, from the hashed payload [type, event_id, source, ts_us, fields...]."""
    payload = json.loads(batch["payload_json"])
    spec = spec_for(payload[0])
    return {} if spec is None else dict(zip(spec.field_names, payload[4:], strict=False))


class OutOfRange(ValueError):
    """A record carries a number beyond decimal(38, 0). Its rows would fail their insert on every
    retry and stall the sink; the core never writes one, so such a record is not the ledger's and
    goes to the dead-letter topic."""


def checked_fields(batch: dict) -> dict[str, Any]:
    """The input event's fields a batch's rows need ({} for other types), once every number that
    goes to an Int128 column is known to fit; raises OutOfRange otherwise."""
    for p in batch["postings"]:
        if not -DECIMAL_MAX <= p["amount"] <= DECIMAL_MAX:
            raise OutOfRange(f"posting {p['posting_id']}: amount outside decimal(38, 0)")
    for p in batch["positions"]:
        if not (-DECIMAL_MAX <= p["size"] <= DECIMAL_MAX and -DECIMAL_MAX <= p["entry_price"] <= DECIMAL_MAX):
            raise OutOfRange(f"position of {p['user']} in {p['market']}: size or entry outside decimal(38, 0)")
    if batch["event_type"] not in _PAYLOAD_TYPES:
        return {}
    fields = payload_fields(batch)
    for name, value in fields.items():
        if type(value) is int and not -DECIMAL_MAX <= value <= DECIMAL_MAX:
            raise OutOfRange(f"event field {name} outside decimal(38, 0)")
    return fields


def _partition(value: int | None) -> int:
    return -1 if value is None else value


def add_batch(rows: Rows, batch: dict, journal_partition: int, journal_offset: int,
              fields: dict[str, Any] | None = None) -> None:
    """The batch's rows; `fields` from `checked_fields` (which checks the batch first if not given)."""
    if fields is None:
        fields = checked_fields(batch)
    stage, partition, seq = batch["stage"], _partition(batch["input_partition"]), batch["batch_seq"]
    event_id, event_type, ts_us = batch["event_id"], batch["event_type"], batch["ts_us"]
    input_topic, input_offset = batch["input_topic"] or "", _partition(batch["input_offset"])
    key, origin = batch["key"], batch["origin_key"]
    postings = batch["postings"]
    rows.postings += postings
    rows.posting_batch += [rows.count("journal_batches")] * len(postings)  # the row added last, below
    rows.posting_index += range(len(postings))
    positions = batch["positions"]
    for pos in positions:
        rows.add("positions", (pos["market"], pos["user"], stage, partition, seq, event_id, event_type, ts_us,
                               pos["size"], pos["entry_price"], pos["state"]))
    where = (stage, partition, seq, event_id, ts_us)
    if event_type in ("TradeFill", "LiquidationFill"):
        _add_fill(rows, batch, fields, where)
    elif event_type == "FundingRateSnapshot":
        rows.add("funding_rates", (fields["market"], fields["epoch"], stage, partition, seq, event_id, ts_us,
                                   fields["rate_ppb"], fields["price"]))
    elif event_type == "FundingEpochSettle":
        _add_funding(rows, batch, fields, where)
    elif event_type == "LiquidationCompleted":
        _add_completion(rows, batch, fields, where)
    rows.add("journal_batches", (
        stage, partition, seq, key, origin, event_id, event_type, ts_us, input_topic, input_offset,
        batch["payload_json"],
        compact_json([[b["account"], b["asset"], b["balance"]] for b in batch["balances"]]),
        # Most batches (the account stage's) change no position: spare the encoder call.
        compact_json([[p["market"], p["user"], p["size"], p["entry_price"], p["state"]] for p in positions])
        if positions else "[]",
        len(postings), batch["prev_hash"], batch["hash"], journal_partition, journal_offset))


def _margin_sums(batch: dict, user: str, market: str) -> dict[str, int]:
    """Sum of the postings on a user's margin account in the market, by posting kind."""
    account, sums = f"user:{user}:margin:{market}", {}
    for p in batch["postings"]:
        if p["account"] == account:
            sums[p["kind"]] = sums.get(p["kind"], 0) + p["amount"]
    return sums


def _asset_of(batch: dict, market: str) -> str:
    """The market's settlement asset, as the batch's margin accounts carry it ('' if none was touched)."""
    suffix = f":margin:{market}"
    for b in batch["balances"]:
        if b["account"].endswith(suffix):
            return b["asset"]
    return ""


def _add_fill(rows: Rows, batch: dict, ev: dict, where: tuple) -> None:
    stage, partition, seq, event_id, ts_us = where
    market, price, quantity = ev["market"], ev["price"], ev["quantity"]
    after = {p["user"]: p["size"] for p in batch["positions"]}
    asset = _asset_of(batch, market)
    if batch["event_type"] == "TradeFill":
        sides = ((ev["buyer"], "buyer", "buy", ev["seller"], ev["buyer_fee"]),
                 (ev["seller"], "seller", "sell", ev["buyer"], ev["seller_fee"]))
        liquidation_id = ""
    else:
        liquidated, counterparty, liquidation_id = ev["liquidated_user"], ev["counterparty"], ev["liquidation_id"]
        # The liquidated side only closes toward flat: what is left tells its direction; closed in full,
        # it is unknown here (the view trades_sided reads it from the position before).
        left = after.get(liquidated, 0)
        side = "sell" if left > 0 else "buy" if left < 0 else ""
        other = {"sell": "buy", "buy": "sell", "": ""}[side]
        sides = ((liquidated, "liquidated", side, counterparty, 0),
                 (counterparty, "counterparty", other, liquidated, ev["counterparty_fee"]))
    for user, role, side, counterparty, fee in sides:
        sums = _margin_sums(batch, user, market)
        rows.add("trades", (market, stage, partition, seq, user, batch["event_type"], event_id,
                            ev["trade_id"], liquidation_id, role, side, counterparty, ts_us, asset, price,
                            quantity, fee, sums.get("realized_pnl", 0), -sums.get("liquidation_penalty", 0),
                            after.get(user, 0)))
        if role == "liquidated":
            rows.add("liquidation_events", (market, liquidation_id, "fill", seq, user, event_id, ts_us, asset,
                                            counterparty, price, quantity, -sums.get("liquidation_penalty", 0),
                                            0, 0, 0))


def _add_funding(rows: Rows, batch: dict, ev: dict, where: tuple) -> None:
    stage, partition, seq, event_id, ts_us = where
    market, epoch = ev["market"], ev["epoch"]
    for p in batch["postings"]:
        if p["kind"] == "funding" and p["account"].startswith("user:"):
            user = p["account"].split(":")[1]
            rows.add("funding_payments", (market, epoch, user, stage, partition, seq, event_id, ts_us, p["asset"],
                                          p["amount"]))
        elif p["kind"] == "funding_sweep" and p["account"] == f"market:{market}:insurance":
            rows.add("funding_payments", (market, epoch, "", stage, partition, seq, event_id, ts_us, p["asset"],
                                          p["amount"]))


def liquidated_user(liquidation_id: str) -> str:
    """The user of `liq:{market}:{user}:{triggering event_id}` (markets and users hold no ':')."""
    return liquidation_id.split(":", 3)[2]


def _add_completion(rows: Rows, batch: dict, ev: dict, where: tuple) -> None:
    """The insurance fund's cover; a deficit beyond it comes as the DeficitUncovered signal (a deficit
    with an empty fund posts nothing, so the batch alone cannot tell it)."""
    _, _, seq, event_id, ts_us = where
    market, liquidation_id = ev["market"], ev["liquidation_id"]
    user = liquidated_user(liquidation_id)
    cover = _margin_sums(batch, user, market).get("insurance_cover", 0)
    rows.add("liquidation_events", (market, liquidation_id, "completed", seq, user, event_id, ts_us,
                                    _asset_of(batch, market), "", 0, 0, 0, cover, cover, 0))


def add_signal(rows: Rows, signal: dict) -> None:
    if signal["amount"] is not None and not -DECIMAL_MAX <= signal["amount"] <= DECIMAL_MAX:
        raise OutOfRange("signal amount outside decimal(38, 0)")
    user, liquidation_id = signal["user"] or "", signal["liquidation_id"] or ""
    rows.add("signals", (signal["market"], signal["signal_type"], signal["stage"], signal["key"], signal["event_id"],
                         user, signal["ts_us"], liquidation_id, signal["amount"]))
    if signal["signal_type"] == "LiquidationTriggered":
        rows.add("liquidation_events", (signal["market"], liquidation_id, "triggered", 0, user, signal["event_id"],
                                        signal["ts_us"], "", "", 0, 0, 0, 0, 0, 0))
    elif signal["signal_type"] == "DeficitUncovered":
        amount = signal["amount"] or 0
        rows.add("liquidation_events", (signal["market"], liquidation_id, "deficit_uncovered", 0, user,
                                        signal["event_id"], signal["ts_us"], "", "", 0, 0, 0, amount, 0, amount))


def add_rejection(rows: Rows, rejection: dict) -> None:
    rows.add("rejections", (
        rejection["input_topic"] or "", _partition(rejection["input_partition"]),
        _partition(rejection["input_offset"]), rejection["stage"], rejection["key"] or "",
        rejection["event_id"] or "", rejection["event_type"] or "", rejection["reason"], rejection["detail"],
        rejection["ts_us"] or 0, rejection["payload_json"]))
