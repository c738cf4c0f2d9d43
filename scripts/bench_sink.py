"""Sink and analytics benchmark: prints postings/s from the topic into embedded ClickHouse, and the
time of each analytics query over synthetic postings (10 million by default).

    PERPLEDGER_KAFKA_PORT=29092 .venv/bin/python scripts/bench_sink.py [--events 60000] [--postings 10000000]
                                                                       [--repeat 5] [--keep-topics]

1. A seeded workload runs through the core offline; its journal, signal and rejection records are
   written to fresh topics (3 partitions) exactly as workers write them. A sink in this process then
   reads them into a fresh embedded ClickHouse; the rate counts from its first record to caught up.
2. The analytics data set is generated inside ClickHouse (INSERT ... SELECT from numbers(), balanced
   pairs of postings over 100k users and 10 markets, a year of timestamps): producing 10 million
   postings through Kafka would take the core alone about an hour here.
"""

from __future__ import annotations

import argparse
import gc
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.clickhouse import analytics, schema
from connectors.clickhouse.client import connect, parse_url
from connectors.clickhouse.settings import SinkSettings
from connectors.clickhouse.simulate import ledger_outputs, produce_outputs
from connectors.clickhouse.sink import Sink
from streams.codec import Codec
from streams.core.ledger import Ledger
from streams.topics import JOURNAL, topic_config
from streams.workload import generate
from tests import kafka_broker

DB = "perpledger"
# Synthetic postings: pairs (a user's margin and the market's settlement, fees or insurance account).
SYNTHETIC_SQL = """
INSERT INTO {db}.journal_postings
    (account, asset, stage, input_partition, batch_seq, posting_index, posting_id, key, origin_key, event_id,
     event_type, ts_us, input_topic, input_offset, amount, kind)
SELECT
    if(side = 0, concat('user:u', toString(user_n), ':margin:', market),
       concat('market:', market, ':', ['settlement', 'fees', 'funding_pool', 'insurance'][kind_n + 1])),
    'USDT', 'market', toInt32(market_n), intDiv(n, 2) + 1, toUInt16(side), concat('e', toString(intDiv(n, 2)),
    ':', toString(side)), market, '', concat('e', toString(intDiv(n, 2))),
    ['TradeFill', 'TradeFill', 'FundingEpochSettle', 'LiquidationFill'][kind_n + 1],
    1767225600000000 + intDiv(n, 2) * intDiv(365 * 86400000000, {pairs}), 'ledger.market-events',
    toInt64(intDiv(n, 2)), toInt128(if(side = 0, 1, -1) * amount), ['realized_pnl', 'fee', 'funding',
    'liquidation_penalty'][kind_n + 1]
FROM (
    SELECT number AS n, n % 2 AS side, intDiv(n, 2) AS pair, cityHash64(pair) % 100000 AS user_n,
           cityHash64(pair, 1) % 10 AS market_n, concat('M', toString(market_n), '-PERP') AS market,
           cityHash64(pair, 2) % 4 AS kind_n, toInt64(cityHash64(pair, 3) % 2000000) - 1000000 AS amount
    FROM numbers({postings})
)
"""


def bench_sink(bootstrap: str, n_events: int, repeat: int, workdir: Path, keep_topics: bool) -> None:
    suffix = f".bench-{uuid.uuid4().hex[:6]}"
    admin = kafka_broker.admin_client(bootstrap)
    topics = [topic + suffix for topic in ("ledger.journal", "ledger.signals", "ledger.rejections", "ledger.dlq")]
    for topic in topics:
        kafka_broker.create_topic(admin, topic, partitions=3, config=topic_config(topic.removesuffix(suffix)))
    try:
        sink_rates(bootstrap, suffix, n_events, repeat, workdir)
    finally:
        if not keep_topics:
            for failure in kafka_broker.delete_topics(admin, topics):
                print(f"could not delete a bench topic: {failure}", file=sys.stderr)


def sink_rates(bootstrap: str, suffix: str, n_events: int, repeat: int, workdir: Path) -> None:
    started = time.perf_counter()
    events = list(generate(seed=7, n_events=n_events, n_markets=10, n_users=20_000))
    outputs = list(ledger_outputs(events, Ledger(), Codec()))
    codec = Codec()
    postings = sum(len(codec.decode(o.value)["postings"]) for o in outputs if o.topic == JOURNAL)
    produce_outputs(bootstrap, outputs, suffix)
    records = len(outputs)
    print(f"prepared {records:,} records ({postings:,} postings) in {time.perf_counter() - started:.1f} s")
    del events, outputs  # a sink runs in a process of its own: not beside the workload's objects
    gc.collect()

    rates = sorted(sink_rate(bootstrap, suffix, postings, records, workdir / f"sink-{run}") for run in range(repeat))
    if repeat > 1:
        print(f"sink over {repeat} runs: best {rates[-1]:,.0f}, median {statistics.median(rates):,.0f}, "
              f"worst {rates[0]:,.0f} postings/s")


def sink_rate(bootstrap: str, suffix: str, postings: int, records: int, directory: Path) -> float:
    """One sink, in a fresh consumer group and a fresh ClickHouse, from the topics' start to their
    end; prints and returns its postings/s."""
    settings = SinkSettings.from_env(bootstrap=bootstrap, clickhouse_url=f"chdb://{directory}",
                                     group=f"bench{suffix}-{directory.name}", web_port=0, topic_suffix=suffix)
    sink = Sink(settings, exit_at_end=True)
    first: list[float] = []
    build = sink._build

    def timed_build(messages: list) -> None:  # the first records consumed start the clock
        if not first:
            first.append(time.perf_counter())
        build(messages)

    sink._build = timed_build  # type: ignore[method-assign]
    sink.run()
    elapsed = time.perf_counter() - first[0]
    print(f"sink: {postings:,} postings ({records:,} records) in {elapsed:.2f} s = "
          f"{postings / elapsed:,.0f} postings/s, {records / elapsed:,.0f} records/s "
          f"(from the first record read to caught up, batch {settings.batch_rows} rows / {settings.batch_ms} ms)")
    return postings / elapsed


def bench_queries(n_postings: int, workdir: Path) -> None:
    client = connect(parse_url(f"chdb://{workdir / 'analytics'}"))
    try:
        schema.apply(client, DB)
        started = time.perf_counter()
        client.command(SYNTHETIC_SQL.format(db=DB, postings=n_postings, pairs=n_postings // 2),
                       settings={"max_insert_threads": 2})
        count = client.query(f"SELECT count() FROM {DB}.journal_postings").result_rows[0][0]
        print(f"generated {count:,} postings in ClickHouse in {time.perf_counter() - started:.1f} s")
        user, market = "u4242", "M3-PERP"
        for name, call in (
            ("user (balances + positions)", lambda: analytics.user_report(client, DB, user)),
            ("funding of a user", lambda: analytics.funding_report(client, DB, user, "")),
            ("liquidations + insurance per day", lambda: analytics.liquidation_report(client, DB, market, "day")),
            ("pnl + profit per week", lambda: analytics.pnl_report(client, DB, user, "week")),
            ("equity curve", lambda: analytics.equity_report(client, DB, user)),
            ("balances view, all accounts",
             lambda: client.query(f"SELECT count(), sum(balance_minor) FROM {DB}.balances").result_rows),
        ):
            timings = []
            for _ in range(3):
                t0 = time.perf_counter()
                call()
                timings.append(time.perf_counter() - t0)
            print(f"query {name:36s} best {min(timings) * 1000:8.1f} ms   first {timings[0] * 1000:8.1f} ms")
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=60_000, help="workload events for the sink rate")
    parser.add_argument("--postings", type=int, default=10_000_000, help="synthetic postings for the queries")
    parser.add_argument("--repeat", type=int, default=1,
                        help="sink runs over the same records (this machine's spread is several percent)")
    parser.add_argument("--skip-sink", action="store_true")
    parser.add_argument("--keep-topics", action="store_true", help="leave the bench topics on the broker")
    parser.add_argument("--skip-queries", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    gc.set_threshold(100_000, 50, 100)  # as `perpledger sink` runs (streams/cli.py main)
    workdir = Path(tempfile.mkdtemp(prefix="bench-sink-"))
    try:
        if not args.skip_sink:
            bench_sink(kafka_broker.start(), args.events, args.repeat, workdir, args.keep_topics)
        if not args.skip_queries and args.postings > 0:
            bench_queries(args.postings, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
