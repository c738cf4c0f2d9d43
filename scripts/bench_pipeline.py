"""Speed of the streaming pipeline on this machine: workers on a local broker (a script, not a test).

Two measurements, with the broker on the same machine:

1. Sustained rate: the input topics are filled first (a seeded workload, encoded and acknowledged),
   then `--workers` worker processes start on a fresh app id and the rate at which the group's
   committed input offsets advance is measured until nothing is left (input records include the
   internal events the stages send each other).
2. Latency at a fixed rate: with the workers caught up and idle, the rest of the workload is produced
   at `--rate` events/s (default: half the sustained rate) while a consumer reads the journal and the
   rejections; latency is the time from handing an event to the producer to reading its output.

    bash scripts/kafka.sh start
    .venv/bin/python scripts/bench_pipeline.py                 # 2 workers, 6 partitions
    .venv/bin/python scripts/bench_pipeline.py --workers 1 --events 30000

It deletes and recreates the ledger's topics: run it on a development broker only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.codec import Codec, DecodeError  # noqa: E402
from streams.producer import EventProducer  # noqa: E402
from streams.topics import JOURNAL, REJECTIONS  # noqa: E402
from streams.workload import generate  # noqa: E402
from tests.integration.worker_harness import WorkerProcess, fresh_topics, lag  # noqa: E402


def sustained_rate(bootstrap: str, app_id: str, total_timeout_s: float) -> tuple[float, int, float]:
    """(input records/s, records, seconds) from the first commit to an empty backlog."""
    start_lag = lag(bootstrap, app_id)
    started = None
    deadline = time.monotonic() + total_timeout_s
    while time.monotonic() < deadline:
        current = lag(bootstrap, app_id)
        now = time.monotonic()
        if started is None and current < start_lag:
            started, first_lag = now, current
        if started is not None and current == 0:
            processed = first_lag  # records done between the first progress seen and the end
            return processed / (now - started), processed, now - started
        time.sleep(0.25)
    raise TimeoutError(f"workers did not catch up in {total_timeout_s} s (lag {lag(bootstrap, app_id)})")


def read_outputs(bootstrap: str, seen: dict[str, float], stop: threading.Event) -> None:
    """Record when each producer event's journal batch or rejection is read (first copy wins)."""
    codec = Codec()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    assignment = []
    for topic in (JOURNAL, REJECTIONS):
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            assignment.append(TopicPartition(topic, partition, high))
    consumer.assign(assignment)
    while not stop.is_set():
        message = consumer.poll(0.05)
        if message is None or message.error() is not None:
            continue
        try:
            record = codec.decode(message.value())
        except DecodeError:
            continue
        event_id = record.get("event_id")
        if event_id is not None and event_id not in seen:
            seen[event_id] = time.monotonic()
    consumer.close()


def latency(bootstrap: str, events: list[dict], rate_per_s: float, settle_s: float) -> dict[str, float]:
    seen: dict[str, float] = {}
    stop = threading.Event()
    reader = threading.Thread(target=read_outputs, args=(bootstrap, seen, stop), daemon=True)
    reader.start()
    time.sleep(2.0)  # the reader is assigned and positioned at the end
    sent: dict[str, float] = {}
    with EventProducer(bootstrap, linger_ms=1) as producer:
        t0 = time.monotonic()
        for n, event in enumerate(events):
            delay = t0 + n / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                producer.send(event)
            except Exception:  # an event that fits no schema: not part of a latency sample
                continue
            sent.setdefault(event["event_id"], time.monotonic())
            producer.poll(0)
        producer.flush(60)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline and len(set(sent) & set(seen)) < len(sent):
        time.sleep(0.2)
    stop.set()
    reader.join(timeout=10)
    samples_ms = sorted((seen[e] - t) * 1000 for e, t in sent.items() if e in seen)
    if not samples_ms:
        raise RuntimeError("no output was read")

    def pct(p: float) -> float:
        return samples_ms[min(len(samples_ms) - 1, int(p * len(samples_ms)))]

    return {"events": len(sent), "answered": len(samples_ms), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": samples_ms[-1], "mean_ms": statistics.fmean(samples_ms)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--events", type=int, default=60_000, help="mix events for the sustained-rate part")
    parser.add_argument("--latency-events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s for the latency part (0: half)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"bench_pipeline: {args.workers} worker(s), {args.partitions} partitions, broker {args.bootstrap}")
    events = list(generate(args.seed, args.events + args.latency_events, n_markets=10, n_users=5_000))
    split = len(events) - args.latency_events
    fresh_topics(args.bootstrap, args.partitions)
    started = time.monotonic()
    with EventProducer(args.bootstrap) as producer:
        for event in events[:split]:
            try:
                producer.send(event)
            except Exception:  # fits no schema: the benchmark measures the ledger, not producers' bugs
                continue
        report = producer.flush(120)
    print(f"  filled the input topics: {report.acked:,} events in {time.monotonic() - started:.1f} s")

    app_id = f"bench-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="perpledger-bench-") as tmp:
        workers = [WorkerProcess(args.bootstrap, app_id, args.partitions, Path(tmp) / f"w{n}",
                                 Path(tmp) / f"w{n}.log") for n in range(args.workers)]
        for worker in workers:
            worker.start()
        try:
            rate, records, seconds = sustained_rate(args.bootstrap, app_id, total_timeout_s=1800)
            print(f"  sustained: {records:,} input records in {seconds:.1f} s = {rate:,.0f} records/s "
                  f"({rate / args.workers:,.0f} per worker)")
            target = args.rate or rate / 2
            result = latency(args.bootstrap, events[split:], target, settle_s=60)
            print(f"  latency at {target:,.0f} events/s, produce to output read: p50 {result['p50_ms']:.1f} ms, "
                  f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms "
                  f"({result['answered']:,} of {result['events']:,} events answered)")
        finally:
            for worker in workers:
                worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
