"""Operators' commands: `perpledger status | verify-chain | rebuild | reset-offsets` (streams/ops/README.md).

Exit codes: 0 all good; 1 the check found a problem (a broken chain, a divergent batch); 2 the
command could not run (bad arguments, refused, Kafka unreachable).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from streams.core.engine import DEFAULT_DEDUP_WINDOW_US
from streams.topics import ACCOUNT_EVENTS, JOURNAL, MARKET_EVENTS


def add_commands(commands: argparse._SubParsersAction) -> None:
    status = commands.add_parser("status", help="partitions, owners, lag, last applied offsets and hashes")
    _bootstrap(status)
    status.add_argument("--app-id", default=os.environ.get("PERPLEDGER_APP_ID", "perpledger"))
    status.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    status.set_defaults(run=_status)

    verify = commands.add_parser("verify-chain", help="verify every hash chain of the journal, per partition")
    _bootstrap(verify)
    verify.add_argument("--topic", default=JOURNAL, help="the journal topic (a copy, say)")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(run=_verify_chain)

    rebuild = commands.add_parser(
        "rebuild", help="rebuild a stage's state from its input topic and compare its chains with the journal")
    _bootstrap(rebuild)
    rebuild.add_argument("--stage", required=True, choices=["account", "market"])
    rebuild.add_argument("--journal-topic", default=JOURNAL, help="the live journal to compare with")
    rebuild.add_argument("--snapshot", type=Path, help="start from this snapshot (written by --save-snapshot)")
    rebuild.add_argument("--from-offset", action="append", default=[], metavar="PARTITION=OFFSET",
                         help="first input offset of a partition (default: after the snapshot, else 0)")
    rebuild.add_argument("--to-offset", action="append", default=[], metavar="PARTITION=OFFSET",
                         help="stop before this input offset of a partition (default: the end now)")
    rebuild.add_argument("--save-snapshot", type=Path, help="write the rebuilt state here")
    rebuild.add_argument("--app-id", help="a fresh app id to write the rebuilt state and input offsets into")
    rebuild.add_argument("--partitions", type=int, default=int(os.environ.get("PERPLEDGER_PARTITIONS", "6")))
    rebuild.set_defaults(run=_rebuild)

    reset = commands.add_parser("reset-offsets", help="move a consumer group to a time or offsets (dry run first)")
    _bootstrap(reset)
    reset.add_argument("--group", required=True, help="the consumer group (the workers' app id, or the sink's)")
    reset.add_argument("--topic", action="append", help="topics to move (default: both input topics)")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-datetime", type=datetime.fromisoformat,
                        help="ISO 8601 with a zone, e.g. 2026-11-21T09:00:00+00:00")
    target.add_argument("--to-offset", action="append", metavar="TOPIC:PARTITION=OFFSET")
    reset.add_argument("--execute", action="store_true", help="commit the new offsets (default: only show them)")
    reset.set_defaults(run=_reset_offsets)


def _bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default=os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))


def _fail(command: str, message: str) -> int:
    print(f"perpledger {command}: {message}", file=sys.stderr)
    return 2


def _offsets(values: list[str]) -> dict[int, int]:
    return {int(p): int(o) for p, o in (value.split("=", 1) for value in values)}


# status -------------------------------------------------------------------------------------------

def _status(args: argparse.Namespace) -> int:
    from streams.ops.groups import describe, positions
    from streams.ops.status import chain_heads

    state, _ = describe(args.bootstrap, args.app_id)
    rows = positions(args.bootstrap, args.app_id, [ACCOUNT_EVENTS, MARKET_EVENTS])
    heads = chain_heads(args.bootstrap)
    stages = {ACCOUNT_EVENTS: "account", MARKET_EVENTS: "market"}
    table = []
    for row in rows:
        head = heads.get((stages[row.topic], row.partition))
        table.append({
            "stage": stages[row.topic], "partition": row.partition, "owner": row.owner,
            "committed": row.committed, "end": row.end, "lag": row.lag,
            "last_batch_seq": head.batch_seq if head else None,
            "last_applied_offset": head.input_offset if head else None,
            "last_hash": head.hash if head else None,
        })
    if args.json:
        print(json.dumps({"app_id": args.app_id, "group_state": state, "partitions": table}, indent=2))
        return 0
    print(f"app id {args.app_id}: group {state}")
    print(f"{'stage':<8}{'part':>5}  {'owner':<32}{'committed':>10}{'end':>10}{'lag':>8}{'batch':>9}"
          f"{'applied':>10}  hash")
    for row in table:
        print(f"{row['stage']:<8}{row['partition']:>5}  {row['owner'] or '-':<32}{_dash(row['committed']):>10}"
              f"{row['end']:>10}{row['lag']:>8}{_dash(row['last_batch_seq']):>9}{_dash(row['last_applied_offset']):>10}"
              f"  {(row['last_hash'] or '-')[:16]}")
    return 0


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


# verify-chain ---------------------------------------------------------------------------------------

def _verify_chain(args: argparse.Namespace) -> int:
    from streams.ops.journal import read_chains, report_lines

    chains = read_chains(args.bootstrap, args.topic)
    broken = [chain for chain in chains.values() if chain.broken]
    if args.json:
        print(json.dumps({"topic": args.topic, "ok": not broken, "chains": [
            {"chain": c.name, "journal_partition": c.journal_partition, "batches": c.last_seq, "copies": c.copies,
             "last_hash": c.last_hash, "broken": c.broken} for c in chains.values()]}, indent=2))
    else:
        print("\n".join(report_lines(chains)) or f"{args.topic}: no journal batches")
        print(f"{len(chains)} chains, {sum(c.last_seq for c in chains.values())} batches: "
              + (f"{len(broken)} BROKEN" if broken else "all verify"))
    return 1 if broken else 0


# rebuild ----------------------------------------------------------------------------------------------

def _rebuild(args: argparse.Namespace) -> int:
    from streams.ops.journal import read_chains
    from streams.ops.rebuild import compare, load_snapshot, rebuild_stage, save_snapshot, write_state

    internal_key = os.environ.get("PERPLEDGER_INTERNAL_KEY", "").encode()
    if len(internal_key) < 32:
        return _fail("rebuild", "PERPLEDGER_INTERNAL_KEY must be the workers' key (internal events are checked)")
    dedup_window_us = int(os.environ.get("PERPLEDGER_DEDUP_WINDOW_US", str(DEFAULT_DEDUP_WINDOW_US)))
    try:
        snapshot = load_snapshot(args.snapshot, args.stage) if args.snapshot else None
    except (OSError, ValueError) as error:
        return _fail("rebuild", str(error))
    rebuilt = rebuild_stage(args.bootstrap, args.stage, internal_key, dedup_window_us, snapshot=snapshot,
                            start=_offsets(args.from_offset), stop=_offsets(args.to_offset) or None)
    batches = sum(len(chain.hashes) for chain in rebuilt.chains.values())
    print(f"rebuilt the {args.stage} stage: {rebuilt.records} input records, {batches} journal batches, "
          f"applied through {dict(sorted(rebuilt.applied_through.items()))}")
    if args.save_snapshot:
        save_snapshot(rebuilt, args.save_snapshot)
        print(f"snapshot written to {args.save_snapshot}")
    divergences = compare(rebuilt, read_chains(args.bootstrap, args.journal_topic, check=False))
    for d in divergences:
        print(f"DIVERGES: chain {d.chain} batch {d.batch_seq} (input offset {d.input_offset}): rebuilt "
              f"{d.rebuilt_hash[:16]}, live {d.live_hash[:16] if d.live_hash else 'missing'}")
    if not divergences:
        print(f"every rebuilt batch equals the live journal's ({args.journal_topic})")
    if args.app_id:
        try:
            written = write_state(args.bootstrap, rebuilt, args.app_id, args.partitions)
        except ValueError as error:
            return _fail("rebuild", str(error))
        print(f"app id {args.app_id}: {written} state records written, input offsets committed")
    return 1 if divergences else 0


# reset-offsets ------------------------------------------------------------------------------------------

def _reset_offsets(args: argparse.Namespace) -> int:
    from streams.ops.groups import apply_reset, positions, target_offsets

    topics = args.topic or [ACCOUNT_EVENTS, MARKET_EVENTS]
    explicit: dict[tuple[str, int], int] = {}
    for value in args.to_offset or []:
        where, offset = value.rsplit("=", 1)
        topic, partition = where.rsplit(":", 1)
        explicit[(topic, int(partition))] = int(offset)
    to = ("earliest" if args.to_earliest else "latest" if args.to_latest
          else "datetime" if args.to_datetime else "offsets")
    if to == "datetime" and args.to_datetime.tzinfo is None:
        return _fail("reset-offsets", "--to-datetime needs a time zone (e.g. +00:00)")
    if to == "offsets":
        topics = sorted({topic for topic, _ in explicit})
    targets = target_offsets(args.bootstrap, topics, to=to, at=args.to_datetime, offsets=explicit)
    current = {(p.topic, p.partition): p.committed for p in positions(args.bootstrap, args.group, topics)}
    print(f"{'topic':<24}{'part':>5}{'current':>10}{'new':>10}")
    for (topic, partition), offset in sorted(targets.items()):
        print(f"{topic:<24}{partition:>5}{_dash(current.get((topic, partition))):>10}{offset:>10}")
    if not args.execute:
        print(f"dry run: nothing changed (add --execute to commit these offsets for {args.group})")
        return 0
    try:
        apply_reset(args.bootstrap, args.group, targets)
    except ValueError as error:
        return _fail("reset-offsets", str(error))
    print(f"committed for {args.group}")
    return 0
