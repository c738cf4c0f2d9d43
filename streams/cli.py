"""The `perpledger` command."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Iterable
from typing import TextIO

from connectors import cli as connectors_cli
from streams.ops.cli import add_commands as add_ops_commands
from streams.replay import replay_lines, write_result


def _replay(args: argparse.Namespace) -> int:
    try:
        with open(args.input, encoding="utf-8", errors="replace") as events:
            result = replay_lines(events, journal=args.journal)
    except OSError as error:
        print(f"perpledger replay: cannot read {args.input}: {error}", file=sys.stderr)
        return 2
    with open(args.output, "w", encoding="utf-8") as out:
        write_result(result, out)
    return 0


def _workload(args: argparse.Namespace) -> int:
    from streams.workload import generate

    events = generate(args.seed, args.events, args.markets, args.users, setup=not args.no_setup)
    if args.output is None:
        _write_lines(events, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8") as out:
            _write_lines(events, out)
    return 0


def _write_lines(events: Iterable[dict], out: TextIO) -> None:
    for event in events:
        out.write(json.dumps(event, separators=(",", ":")))
        out.write("\n")


def _demo(args: argparse.Namespace) -> int:
    from streams.demo import print_summary, run_demo
    from streams.workload import generate

    events = list(generate(args.seed, args.events, args.markets, args.users))
    summary = run_demo(args.bootstrap, events, partitions=args.partitions)
    print_summary(summary)
    dead_letters = sum(summary["dead_letters"].values())
    return 0 if summary["matches_offline_replay"] and dead_letters == summary["not_avro"] else 1


def _token(args: argparse.Namespace) -> int:
    import time

    from streams.api.auth import mint_token, secret_from_env

    try:
        secret = secret_from_env()
    except ValueError as error:
        print(f"perpledger token: {error} (set it to a random secret of at least 32 bytes)", file=sys.stderr)
        return 2
    try:
        print(mint_token(secret, args.subject, args.role, now_s=time.time(), ttl_s=args.ttl_s))
    except ValueError as error:
        print(f"perpledger token: {error}", file=sys.stderr)
        return 2
    return 0


def _worker(args: argparse.Namespace) -> int:
    from faust import Worker

    from streams.app.config import Settings
    from streams.app.jsonlog import logging_config
    from streams.app.worker import Ledger
    from streams.topics import ensure_topics

    settings = Settings.from_env()
    ledger = Ledger(settings)
    ensure_topics(settings.bootstrap, settings.partitions, ledger.changelog_topics())
    # JSON lines on stderr (PERPLEDGER_LOG_FORMAT=text for people). Nothing else: no start-up banner
    # (quiet) and no progress spinner (its terminal escapes would land between the lines); anything
    # printed goes through logging too (Faust redirects stdout).
    worker = Worker(ledger.app, loglevel=args.log_level, quiet=True,
                    logging_config=logging_config(args.log_level, log_format=settings.log_format))
    worker.spinner = None
    worker.execute_from_commandline()
    return 0


def _produce(args: argparse.Namespace) -> int:
    from streams.codec import ConfluentSchemaRegistry
    from streams.producer import EventProducer, print_lines_summary, send_lines

    try:
        registry = ConfluentSchemaRegistry({"url": args.registry_url}) if args.registry_url else None
        with open(args.input, encoding="utf-8", errors="replace") as lines:
            producer = EventProducer(args.bootstrap, registry=registry, topic_suffix=args.topic_suffix)
            summary = send_lines(producer, lines, flush_timeout_s=args.timeout_s)
    except (OSError, ImportError) as error:
        print(f"perpledger produce: {error}", file=sys.stderr)
        return 2
    print_lines_summary(summary)
    return 0 if summary.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perpledger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    replay = commands.add_parser("replay", help="run a JSON-lines file of events through the ledger offline")
    replay.add_argument("--input", required=True, help="events, one JSON object per line")
    replay.add_argument("--output", required=True, help="where to write the result JSON")
    replay.add_argument("--journal", action="store_true", help="include every journal batch")
    replay.set_defaults(run=_replay)

    worker = commands.add_parser("worker", help="run a ledger worker (settings from PERPLEDGER_* variables)")
    worker.add_argument("--log-level", default=os.environ.get("PERPLEDGER_LOG_LEVEL", "info"))
    worker.set_defaults(run=_worker)

    workload = commands.add_parser("workload", help="write a seeded, realistic workload as JSON lines")
    _workload_options(workload, events=100_000, users=100_000)
    workload.add_argument("--no-setup", action="store_true", help="leave the setup events out")
    workload.add_argument("--output", help="file to write (default: standard output)")
    workload.set_defaults(run=_workload)

    demo = commands.add_parser("demo", help="a sample workload through Kafka and the ledger, with a summary")
    _workload_options(demo, events=20_000, users=2_000)
    demo.add_argument("--bootstrap", default=os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    demo.add_argument("--partitions", type=int, default=3, help="partitions of each input topic")
    demo.set_defaults(run=_demo)

    produce = commands.add_parser("produce", help="send a JSON-lines file of events to the input topics (Avro)")
    produce.add_argument("--input", required=True, help="events, one JSON object per line (as for replay)")
    produce.add_argument("--bootstrap", default=os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    produce.add_argument("--topic-suffix", default="", help="appended to both input topic names")
    produce.add_argument("--registry-url", help="a Confluent schema registry: its wire format, not single-object")
    produce.add_argument("--timeout-s", type=float, default=60.0, help="how long to wait for acknowledgements")
    produce.set_defaults(run=_produce)

    token = commands.add_parser("token", help="mint an API bearer token (secret from PERPLEDGER_JWT_SECRET)")
    token.add_argument("--role", required=True, choices=["user", "producer", "admin"])
    token.add_argument("--subject", required=True, help="for a user token, the user id")
    token.add_argument("--ttl-s", type=int, default=3600, help="seconds the token is valid")
    token.set_defaults(run=_token)
    add_ops_commands(commands)
    connectors_cli.add_commands(commands)
    return parser


def _workload_options(parser: argparse.ArgumentParser, *, events: int, users: int) -> None:
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=events, help="events in the mix (after the setup)")
    parser.add_argument("--markets", type=int, default=10)
    parser.add_argument("--users", type=int, default=users)


# The ledger allocates no reference cycles; the cyclic collector only costs time (about a fifth
# of a replay at default thresholds), so every command runs it rarely.
GC_THRESHOLDS = (100_000, 50, 100)


def main(argv: list[str] | None = None) -> int:
    gc.set_threshold(*GC_THRESHOLDS)
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
