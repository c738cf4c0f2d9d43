"""The connectors' subcommands of `perpledger`: sink, analytics, reconcile."""

from __future__ import annotations

import argparse
import logging.config
import os


def add_commands(commands: argparse._SubParsersAction) -> None:
    sink = commands.add_parser("sink", help="project ledger.journal, .signals and .rejections into ClickHouse")
    sink.add_argument("--rebuild", action="store_true",
                      help="empty the tables and read the topics again from offset 0 (stop other sinks first)")
    sink.add_argument("--exit-at-end", action="store_true",
                      help="stop once every partition is read to its end (with --rebuild: a one-off rebuild)")
    sink.add_argument("--topic-suffix", default="", help="appended to every topic name")
    sink.add_argument("--log-level", default=os.environ.get("PERPLEDGER_LOG_LEVEL", "info"))
    sink.set_defaults(run=_sink)


def _sink(args: argparse.Namespace) -> int:
    from connectors.clickhouse.settings import SinkSettings
    from connectors.clickhouse.sink import Sink
    from streams.app.jsonlog import logging_config

    settings = SinkSettings.from_env(topic_suffix=args.topic_suffix, log_level=args.log_level)
    logging.config.dictConfig(logging_config(settings.log_level, log_format=settings.log_format))
    return Sink(settings, rebuild=args.rebuild, exit_at_end=args.exit_at_end).run()
