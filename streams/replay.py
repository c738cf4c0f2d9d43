"""`perpledger replay`: run a file of producer events through the ledger offline.

The auditor's and SRE's tool: same core as the workers, no services, byte-identical output for the
same input (AC-40).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO

from streams.core.ledger import Ledger
from streams.core.model import Outcome, Signal


def signal_json(signal: Signal) -> dict[str, Any]:
    row: dict[str, Any] = {"type": signal.type}
    if signal.liquidation_id is not None:
        row["liquidation_id"] = signal.liquidation_id
    row["market"] = signal.market
    row["user"] = signal.user
    if signal.amount is not None:
        row["amount"] = signal.amount
    return row


def replay_lines(lines: Iterable[str], *, journal: bool = False, ledger: Ledger | None = None) -> dict:
    """Apply each JSON line in order; a malformed line is a rejection, never a crash."""
    ledger = ledger or Ledger()
    rejections: list[dict[str, Any]] = []
    signals: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []

    def record(outcome: Outcome) -> None:
        if outcome.status == "rejected":
            rejections.append({"event_id": outcome.event_id, "reason": outcome.reason})
        signals.extend(signal_json(s) for s in outcome.signals)
        if journal and outcome.batch is not None:
            batches.append({
                "event_id": outcome.batch.event_id,
                "postings": [
                    {"account": p.account, "asset": p.asset, "amount": p.amount, "kind": p.kind}
                    for p in outcome.batch.postings
                ],
            })

    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict) or not isinstance(event.get("event_id"), str):
            rejections.append({"event_id": None, "reason": "INVALID_EVENT", "line": line_no})
            continue
        for outcome in ledger.submit(event):
            record(outcome)

    result: dict[str, Any] = {
        "balances": [{"account": a, "asset": s, "balance": b} for (a, s), b in ledger.balances().items()],
        "positions": [p._asdict() for p in ledger.positions()],
        "rejections": rejections,
        "signals": signals,
        "duplicates": sum(stage.duplicates for stage in ledger.stages),
        "hashes": ledger.final_hashes(),
    }
    if journal:
        result["journal"] = batches
    return result


def write_result(result: dict, out: TextIO) -> None:
    json.dump(result, out, indent=1, sort_keys=False)
    out.write("\n")
