"""The connectors' subcommands of `perpledger`: sink, analytics, reconcile."""

from __future__ import annotations

import argparse
import logging.config
import os
from typing import Any


def add_commands(commands: argparse._SubParsersAction) -> None:
    sink = commands.add_parser("sink", help="project ledger.journal, .signals and .rejections into ClickHouse")
    sink.add_argument("--rebuild", action="store_true",
                      help="empty the tables and read the topics again from offset 0 (stop other sinks first)")
    sink.add_argument("--exit-at-end", action="store_true",
                      help="stop once every partition is read to its end (with --rebuild: a one-off rebuild)")
    sink.add_argument("--topic-suffix", default="", help="appended to every topic name")
    sink.add_argument("--log-level", default=os.environ.get("PERPLEDGER_LOG_LEVEL", "info"))
    sink.set_defaults(run=_sink)

    analytics = commands.add_parser("analytics", help="reports from ClickHouse (PERPLEDGER_CLICKHOUSE_URL)")
    reports = analytics.add_subparsers(dest="report", required=True)
    for name, help_text, needs in (
        ("user", "a user's balances and open positions", ("user",)),
        ("funding", "funding payments of a user and/or a market", ("user?", "market?")),
        ("liquidations", "liquidations per market, and each market's insurance fund over time", ("market?", "period")),
        ("pnl", "a user's realized PnL, fees, drawdowns, and profit per period", ("user", "period")),
        ("equity", "a user's equity curve, one point per journal batch", ("user",)),
    ):
        report = reports.add_parser(name, help=help_text)
        for option in needs:
            if option == "period":
                report.add_argument("--period", choices=("day", "week", "month"), default="day")
            else:
                report.add_argument(f"--{option.rstrip('?')}", required=not option.endswith("?"), default="")
        report.add_argument("--json", action="store_true", help="JSON instead of text tables")
        report.set_defaults(run=_analytics)

    reconcile = commands.add_parser("reconcile", help="check ClickHouse: hash chain, zero sum, balances vs the core")
    reconcile.add_argument("--input", help="replay this JSON-lines file of events for the core's balances "
                                           "(default: the ledger's input topics from offset 0)")
    reconcile.set_defaults(run=_reconcile)


def _client() -> tuple[Any, str]:
    from connectors.clickhouse.client import connect, parse_url
    from connectors.clickhouse.settings import SinkSettings

    target = parse_url(SinkSettings.from_env().clickhouse_url)
    return connect(target), target.database


def _analytics(args: argparse.Namespace) -> int:
    from connectors.clickhouse import analytics

    client, db = _client()
    try:
        tables = {
            "user": lambda: analytics.user_report(client, db, args.user),
            "funding": lambda: analytics.funding_report(client, db, args.user, args.market),
            "liquidations": lambda: analytics.liquidation_report(client, db, args.market, args.period),
            "pnl": lambda: analytics.pnl_report(client, db, args.user, args.period),
            "equity": lambda: analytics.equity_report(client, db, args.user),
        }[args.report]()
    finally:
        client.close()
    print(analytics.to_json(tables) if args.json else analytics.to_text(tables))
    return 0


def _reconcile(args: argparse.Namespace) -> int:
    from connectors.clickhouse import reconcile
    from streams.core.engine import DEFAULT_DEDUP_WINDOW_US

    if args.input:
        core = reconcile.core_from_file(args.input)
    else:
        core = reconcile.core_from_topics(
            os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            os.environ.get("PERPLEDGER_INTERNAL_KEY", "").encode(),
            int(os.environ.get("PERPLEDGER_DEDUP_WINDOW_US", str(DEFAULT_DEDUP_WINDOW_US))))
    client, db = _client()
    try:
        results = reconcile.reconcile(client, db, core)
    finally:
        client.close()
    for check, problem in results:
        print(f"{check}: {'ok' if problem is None else 'FAILED: ' + problem}")
    return 0 if all(problem is None for _, problem in results) else 1


def _sink(args: argparse.Namespace) -> int:
    from connectors.clickhouse.settings import SinkSettings
    from connectors.clickhouse.sink import Sink
    from streams.app.jsonlog import logging_config

    settings = SinkSettings.from_env(topic_suffix=args.topic_suffix, log_level=args.log_level)
    logging.config.dictConfig(logging_config(settings.log_level, log_format=settings.log_format))
    return Sink(settings, rebuild=args.rebuild, exit_at_end=args.exit_at_end).run()
