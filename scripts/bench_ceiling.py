"""The raw ceiling of this machine: a plain confluent-kafka consume-and-produce loop, no ledger.

Whatever the ledger's workers reach, they cannot beat a loop that only moves bytes from input topics
to an output topic on the same broker and cores. This measures that loop:

1. pre-fill: a seeded workload (``streams.workload.generate``), its first ``--events`` events that
   fit a schema, Avro-encoded and sent by ``EventProducer`` to fresh copies of the two input topics
   (``ledger.account-events.bench-*`` keyed by user, ``ledger.market-events.bench-*`` keyed by
   market), ``--partitions`` partitions each; the rate of that is reported too;
2. the loop: one consumer subscribed to both topics; for each message one output message of the same
   key to an output topic (``--partitions`` partitions) through an idempotent producer
   (``acks=all``, ``linger.ms=5``); consumer offsets committed asynchronously every
   ``--commit-every`` messages; timed from the first message to the final acknowledgement.
   - default: the output is the input bytes (what Kafka and librdkafka cost);
   - ``--decode``: each input is decoded with the project's ``Codec`` and a JournalBatch-sized
     record (6 postings, 4 balances, 2 positions) is encoded per event: what Avro adds on top;
   - ``--faust``: the same loop as a Faust agent (one output per input sent through a Faust topic,
     offsets acknowledged and committed by Faust, as the workers run): what Faust's stream and
     aiokafka cost on top of the bytes, with no ledger work at all.

It starts nothing itself. Run the local broker first (and stop it after, if you started it):

    bash scripts/kafka.sh start
    .venv/bin/python scripts/bench_ceiling.py [--events 200000] [--partitions 6] [--decode] [--repeat 5]
                                              [--bootstrap 127.0.0.1:19092] [--keep-topics]
    bash scripts/kafka.sh stop

The broker runs on the same machine, so the figures are for broker + loop sharing its cores; other
load on the machine shows directly in them: ``--repeat`` runs the loop several times over the same
input and prints best, median and worst.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams.codec import Codec, EncodeError
from streams.codec.bench import JOURNAL_BATCH
from streams.producer import EventProducer
from streams.topics import ACCOUNT_EVENTS, MARKET_EVENTS
from streams.workload import generate
from tests import kafka_broker

_CONSUME_BATCH = 1_000  # messages per consume() call: amortises the Python <-> librdkafka crossing
_POLL_TIMEOUT_S = 1.0
_STALL_TIMEOUT_S = 60.0  # no message for this long while some are still expected: give up


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default=os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--events", type=int, default=200_000, help="input events to pre-fill and move")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of each input and of the output topic")
    parser.add_argument("--decode", action="store_true", help="decode each input, encode a JournalBatch per event")
    parser.add_argument("--faust", action="store_true", help="move the messages with a Faust agent instead")
    parser.add_argument("--commit-every", type=int, default=10_000, help="messages between offset commits")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--users", type=int, default=2_000,
                        help="workload users (account-topic keys; their setup deposits come first)")
    parser.add_argument("--markets", type=int, default=10, help="workload markets (market-topic keys)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run the loop this many times over the same input (a new consumer group each time)")
    parser.add_argument("--keep-topics", action="store_true", help="leave the bench topics on the broker")
    args = parser.parse_args(argv)
    if args.faust and args.repeat > 1:  # a Faust worker runs once per process (it owns the event loop)
        parser.error("--faust runs once: run the script again to repeat")
    return args


def create_topics(admin: AdminClient, names: list[str], partitions: int) -> None:
    for future in admin.create_topics([NewTopic(n, partitions, 1) for n in names], operation_timeout=30).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    for name in names:  # wait for every partition's leader, or the first produce/fetch may fail
        while True:
            topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
            if topic and topic.error is None and len(topic.partitions) == partitions and all(
                p.leader >= 0 for p in topic.partitions.values()
            ):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: no leader for every partition")
            time.sleep(0.1)


def prefill(bootstrap: str, suffix: str, args: argparse.Namespace) -> dict[str, Any]:
    """Send the first ``args.events`` workload events that fit a schema; return counts and timing."""
    started = time.perf_counter()
    events: list[dict] = []
    skipped = 0
    codec = Codec()
    for event in generate(args.seed, args.events, args.markets, args.users):
        try:
            codec.encode(event)  # the workload's deliberately unfit events are not sendable: skip them
        except EncodeError:
            skipped += 1
            continue
        if event.get("type") in ("TransferCredited", "MarginReturned", "MarginCredited"):
            skipped += 1
            continue
        events.append(event)
        if len(events) == args.events:
            break
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    with EventProducer(bootstrap, topic_suffix=suffix) as producer:
        producer.send_all(events)
        report = producer.flush(timeout_s=120)
    produce_s = time.perf_counter() - started
    if not report.ok or report.acked != len(events):
        raise RuntimeError(f"pre-fill not fully acknowledged: {report}")
    return {"events": len(events), "skipped": skipped, "generate_s": generate_s, "produce_s": produce_s,
            "by_topic": dict(producer.sent_by_topic)}


class JournalBatchMaker:
    """Decodes an input event and encodes a JournalBatch-sized record for it (the bench's stand-in
    for the ledger's output: the real batch's shape and size, without the ledger's work)."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.template = dict(JOURNAL_BATCH)
        self.sequence = 0

    def __call__(self, message: Message) -> bytes:
        event = self.codec.decode(message.value())
        self.sequence += 1
        batch = self.template.copy()
        batch["key"] = message.key().decode()
        batch["event_id"] = event["event_id"]
        batch["event_type"] = event["type"]
        batch["ts_us"] = event["ts_us"]
        batch["input_topic"] = message.topic()
        batch["input_partition"] = message.partition()
        batch["input_offset"] = message.offset()
        batch["batch_seq"] = self.sequence
        return self.codec.encode(batch)


def run_loop(bootstrap: str, inputs: list[str], output: str, total: int, args: argparse.Namespace) -> dict[str, Any]:
    """Consume ``total`` messages from ``inputs`` and produce one message per input to ``output``."""
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        failures.append(str(error))  # only called for errors (delivery.report.only.error)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-ceiling-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "partitioner": "murmur2_random", "on_delivery": on_delivery,
                         "delivery.report.only.error": True})
    transform = JournalBatchMaker(Codec()) if args.decode else None
    consumer.subscribe(inputs)
    subscribed = time.perf_counter()
    consumed = since_commit = bytes_in = bytes_out = 0
    first: float | None = None
    cpu_first = 0.0
    last_message = time.monotonic()
    produce = producer.produce
    try:
        while consumed < total:
            messages = consumer.consume(_CONSUME_BATCH, _POLL_TIMEOUT_S)
            if not messages:
                if time.monotonic() - last_message > _STALL_TIMEOUT_S:
                    raise TimeoutError(f"stalled after {consumed:,} of {total:,} messages")
                continue
            if first is None:
                first, cpu_first = time.perf_counter(), time.process_time()
            last_message = time.monotonic()
            for message in messages:
                if message.error() is not None:
                    raise RuntimeError(f"consume error: {message.error()}")
                value = message.value()
                out = transform(message) if transform is not None else value
                bytes_in += len(value)
                bytes_out += len(out)
                while True:
                    try:
                        produce(output, out, message.key())
                        break
                    except BufferError:  # local queue full: let acknowledgements drain it
                        producer.poll(0.05)
            consumed += len(messages)
            since_commit += len(messages)
            producer.poll(0)
            if since_commit >= args.commit_every:
                consumer.commit(asynchronous=True)
                since_commit = 0
        remaining = producer.flush(120)
        done = time.perf_counter()
        cpu_done = time.process_time()
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:  # _NO_OFFSET: the last periodic commit already covered it all
            if error.args[0].code() != KafkaError._NO_OFFSET:
                raise
    finally:
        consumer.close()
    if remaining or failures:
        raise RuntimeError(f"{remaining} output messages unacknowledged, {len(failures)} failed: {failures[:3]}")
    assert first is not None
    return {"messages": consumed, "loop_s": done - first, "join_s": first - subscribed, "cpu_s": cpu_done - cpu_first,
            "bytes_in": bytes_in, "bytes_out": bytes_out}


class _FaustMessage:
    """A Faust message seen through the confluent-kafka accessors `JournalBatchMaker` reads."""

    def __init__(self, message: Any) -> None:
        self._message = message

    def value(self) -> bytes:
        return self._message.value

    def key(self) -> bytes:
        return self._message.key

    def topic(self) -> str:
        return self._message.topic

    def partition(self) -> int:
        return self._message.partition

    def offset(self) -> int:
        return self._message.offset


def run_faust_loop(bootstrap: str, inputs: list[str], output: str, total: int,
                   args: argparse.Namespace) -> dict[str, Any]:
    """`run_loop` as a Faust agent: consume ``total`` messages, send one output each, Faust acks."""
    import tempfile

    import faust

    app = faust.App(f"bench-ceiling-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}",
                    store="memory://", datadir=tempfile.mkdtemp(prefix="bench-faust-"), producer_acks=-1,
                    key_serializer="raw", value_serializer="raw", consumer_auto_offset_reset="earliest",
                    web_enabled=False, topic_partitions=args.partitions)
    source = app.topic(*inputs, key_type=bytes, value_type=bytes)
    sink = app.topic(output, key_type=bytes, value_type=bytes)
    transform = JournalBatchMaker(Codec()) if args.decode else None
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    stats: dict[str, Any] = {"messages": 0, "bytes_in": 0, "bytes_out": 0}
    subscribed = time.perf_counter()

    @app.agent(source)
    async def move(stream: Any) -> None:
        async for event in stream.events():
            if not stats["messages"]:
                stats["first"], stats["cpu_first"] = time.perf_counter(), time.process_time()
            message = event.message
            out = transform(_FaustMessage(message)) if transform is not None else message.value
            stats["bytes_in"] += len(message.value)
            stats["bytes_out"] += len(out)
            await sink.send(key=message.key, value=out)
            stats["messages"] += 1
            if stats["messages"] == total:
                await app.producer.flush()
                stats["done"], stats["cpu_done"] = time.perf_counter(), time.process_time()
                os.kill(os.getpid(), signal.SIGTERM)  # the worker stops as it does for an operator

    with contextlib.suppress(SystemExit):
        worker.execute_from_commandline()
    if "done" not in stats:
        raise RuntimeError(f"the agent stopped after {stats['messages']:,} of {total:,} messages")
    return {"messages": stats["messages"], "loop_s": stats["done"] - stats["first"],
            "join_s": stats["first"] - subscribed, "cpu_s": stats["cpu_done"] - stats["cpu_first"],
            "bytes_in": stats["bytes_in"], "bytes_out": stats["bytes_out"]}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suffix = f".bench-{uuid.uuid4().hex[:8]}"
    inputs = [ACCOUNT_EVENTS + suffix, MARKET_EVENTS + suffix]
    output = f"bench-ceiling-out{suffix.replace('.', '-')}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if not admin.list_topics(timeout=10).brokers:
        print(f"no broker at {args.bootstrap}: run `bash scripts/kafka.sh start` first", file=sys.stderr)
        return 2
    create_topics(admin, [*inputs, output], args.partitions)
    try:
        fill = prefill(args.bootstrap, suffix, args)
        print(f"pre-fill   {fill['events']:>9,} Avro events by EventProducer in {fill['produce_s']:.1f} s: "
              f"{fill['events'] / fill['produce_s']:,.0f} events/s (generated in {fill['generate_s']:.1f} s; "
              f"{fill['skipped']:,} unfit workload events skipped)")
        for topic, count in sorted(fill["by_topic"].items()):
            print(f"           {count:>9,} to {topic} ({args.partitions} partitions)")
        loop = run_faust_loop if args.faust else run_loop
        loops = [loop(args.bootstrap, inputs, output, fill["events"], args) for _ in range(args.repeat)]
    finally:
        if not args.keep_topics:
            for failure in kafka_broker.delete_topics(admin, [*inputs, output]):
                print(f"could not delete a bench topic: {failure}", file=sys.stderr)
    mode = ("decode + JournalBatch encode" if args.decode else "raw bytes") + (", Faust agent" if args.faust else "")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for loop in loops:
        n, seconds = loop["messages"], loop["loop_s"]
        print(f"loop       {n:>9,} messages consumed and produced ({mode}) in {seconds:.2f} s: "
              f"{n / seconds:,.0f} messages/s end to end")
        print(f"           loop CPU {loop['cpu_s']:.2f} s ({loop['cpu_s'] / seconds:.0%} of one core); "
              f"mean input {loop['bytes_in'] / n:.0f} B, output {loop['bytes_out'] / n:.0f} B; "
              f"group join {loop['join_s']:.1f} s (not counted)")
    rates = sorted(loop["messages"] / loop["loop_s"] for loop in loops)
    print(f"messages/s ({mode}, {len(loops)} runs): best {rates[-1]:,.0f}, median {rates[len(rates) // 2]:,.0f}, "
          f"worst {rates[0]:,.0f}; max RSS {rss_mib:.0f} MiB; {os.cpu_count()} CPUs shared with the broker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
