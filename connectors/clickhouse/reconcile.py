"""`perpledger reconcile`: ClickHouse against the core and against itself.

Three checks, each naming its first discrepancy:
1. the hash chain in ClickHouse is unbroken: per chain, batch_seq runs 1, 2, 3, ..., each batch names
   the previous one's hash, and each hash recomputed from the rows in ClickHouse (payload, postings,
   balances and positions after) is the stored one, so a changed, lost or extra posting is caught;
2. every asset's balances sum to zero;
3. the balances equal the core's after replaying the same input: a JSON-lines file offline, or the
   ledger's input topics from offset 0 through the workers' partition processor (ops/chains.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from streams.core.engine import BALANCE
from streams.core.hashchain import GENESIS_HASH, link_hash
from streams.core.ledger import Ledger
from streams.replay import replay_lines

Balances = dict[tuple[str, str], int]

_BATCHES_SQL = """
SELECT b.stage, b.input_partition, b.batch_seq, b.key, b.origin_key, b.payload_json, b.balances_json,
       b.positions_json, b.prev_hash, b.hash, p.postings
FROM {db}.journal_batches AS b FINAL
LEFT JOIN (
    SELECT stage, input_partition, batch_seq,
           arraySort(x -> x.1, groupArray((posting_index, account, asset, toString(amount), kind))) AS postings
    FROM {db}.journal_postings FINAL
    GROUP BY stage, input_partition, batch_seq
) AS p ON b.stage = p.stage AND b.input_partition = p.input_partition AND b.batch_seq = p.batch_seq
ORDER BY b.stage, b.input_partition, b.batch_seq
"""


def first_chain_break(rows: Iterable[tuple]) -> str | None:
    """The first batch (rows in chain order, as _BATCHES_SQL gives them) that does not verify."""
    chain, expected_seq, prev_hash = None, 1, GENESIS_HASH
    for stage, partition, seq, key, origin, payload, balances, positions, stored_prev, stored_hash, postings in rows:
        if (stage, partition) != chain:
            chain, expected_seq, prev_hash = (stage, partition), 1, GENESIS_HASH
        where = f"chain {stage}-{partition} batch {seq}"
        if seq != expected_seq:
            return f"{where}: expected batch {expected_seq} (a gap)"
        if stored_prev != prev_hash:
            return f"{where}: prev_hash {stored_prev[:12]}... does not name the previous batch {prev_hash[:12]}..."
        body = (stage, key, origin, seq, json.loads(payload),
                [[account, asset, int(amount), kind] for _, account, asset, amount, kind in postings or ()],
                json.loads(balances), json.loads(positions))
        if link_hash(prev_hash, body) != stored_hash:
            return f"{where}: its rows do not hash to the stored hash (a posting changed, lost or added)"
        expected_seq, prev_hash = seq + 1, stored_hash
    return None


def clickhouse_balances(client: Any, db: str) -> Balances:
    rows = client.query(f"SELECT account, asset, balance_minor FROM {db}.balances WHERE balance_minor != 0").result_rows
    return {(account, asset): int(balance) for account, asset, balance in rows}


def first_balance_difference(got: Balances, want: Balances) -> str | None:
    for account, asset in sorted(set(got) | set(want)):
        if got.get((account, asset), 0) != want.get((account, asset), 0):
            return (f"balance of {account} in {asset}: ClickHouse {got.get((account, asset), 0)}, "
                    f"core {want.get((account, asset), 0)}")
    return None


def unbalanced_assets(balances: Balances) -> str | None:
    totals: dict[str, int] = {}
    for (_, asset), balance in balances.items():
        totals[asset] = totals.get(asset, 0) + balance
    bad = {asset: total for asset, total in sorted(totals.items()) if total != 0}
    return f"assets do not sum to zero: {bad}" if bad else None


def reconcile(client: Any, db: str, core: Balances) -> list[tuple[str, str | None]]:
    """(check, first discrepancy or None) for each check, in order."""
    balances = clickhouse_balances(client, db)
    # Streamed: the batches with their postings are the whole journal, too much to hold at once.
    with client.query_rows_stream(_BATCHES_SQL.format(db=db)) as batches:
        chain_break = first_chain_break(batches)
    return [
        ("hash chain", chain_break),
        ("zero sum", unbalanced_assets(balances)),
        ("balances against the core", first_balance_difference(balances, core)),
    ]


def core_from_file(path: str) -> Balances:
    with open(path, encoding="utf-8", errors="replace") as lines:
        ledger = Ledger()
        replay_lines(lines, ledger=ledger)
    return ledger.balances()


def core_from_topics(bootstrap: str, internal_key: bytes, dedup_window_us: int) -> Balances:
    """Every input partition from offset 0 through the workers' processor; balances over all of them."""
    from streams.app.processor import PartitionProcessor
    from streams.codec import Codec
    from streams.ops.chains import STAGE_INPUTS, DictTable, read_topic

    codec, totals = Codec(), {}
    for _, topic, engine in STAGE_INPUTS:
        processors: dict[int, PartitionProcessor] = {}
        for partition, offset, key, value in read_topic(bootstrap, topic):
            if partition not in processors:
                processors[partition] = PartitionProcessor(engine, topic, partition, DictTable(), codec,
                                                           internal_key, dedup_window_us)
                processors[partition].load()
            processors[partition].process(offset, key, value)
            processors[partition].seal_as_committed()  # only the state is read: keep no outputs pending
        for processor in processors.values():
            assert processor.engine is not None
            for record, value in processor.engine.store.items():
                if len(record) == 4 and record[1] == BALANCE:
                    totals[(record[2], record[3])] = totals.get((record[2], record[3]), 0) + value
    return {k: v for k, v in sorted(totals.items()) if v != 0}
