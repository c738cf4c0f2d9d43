"""Real worker processes for integration tests and the kill script: start, SIGKILL, wait, verify."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.ops.chains import expected_outputs, first_difference, written_outputs
from streams.topics import ACCOUNT_EVENTS, LEDGER_TOPICS, MARKET_EVENTS, ensure_topics

ROOT = Path(__file__).resolve().parents[2]
INTERNAL_KEY = "test-internal-key-0123456789abcdef"
DEDUP_WINDOW_US = 7 * 86_400 * 1_000_000


def free_port() -> int:
    """A TCP port nothing listens on now, so test runs side by side do not collide on worker ports."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_topics(bootstrap: str, partitions: int) -> None:
    """Delete the ledger's topics and create them again, empty."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = [t for t in LEDGER_TOPICS if t in admin.list_topics(timeout=10).topics]
    if existing:
        for future in admin.delete_topics(existing, operation_timeout=30).values():
            future.result(timeout=60)
        deadline = time.monotonic() + 60
        while set(existing) & set(admin.list_topics(timeout=10).topics):
            assert time.monotonic() < deadline, "topics were not deleted"
            time.sleep(0.5)
    ensure_topics(bootstrap, partitions)


class ChildProcess:
    """A `perpledger` subcommand as a child process in its own session, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def spawn(self, *args: str) -> None:
        assert self.process is None
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.process = subprocess.Popen([str(ROOT / ".venv/bin/perpledger"), *args], env=self.env, cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the child's log, for a failing test's message."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"


class WorkerProcess(ChildProcess):
    """`perpledger worker` with its own data dir and web port."""

    def __init__(self, bootstrap: str, app_id: str, partitions: int, data_dir: Path, log_path: Path,
                 web_port: int | None = None) -> None:
        self.web_port = web_port or free_port()
        self.log_level = os.environ.get("PERPLEDGER_TEST_WORKER_LOG_LEVEL", "warning")
        super().__init__({
            "PERPLEDGER_KAFKA_BOOTSTRAP": bootstrap,
            "PERPLEDGER_APP_ID": app_id,
            "PERPLEDGER_PARTITIONS": str(partitions),
            "PERPLEDGER_DATA_DIR": str(data_dir),
            "PERPLEDGER_WEB_PORT": str(self.web_port),
            "PERPLEDGER_INTERNAL_KEY": INTERNAL_KEY,
        }, log_path)

    def start(self) -> None:
        self.spawn("worker", "--log-level", self.log_level)


def lag(bootstrap: str, app_id: str) -> int:
    """Input records the worker group has not committed yet (both input topics)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": app_id, "enable.auto.commit": False})
    try:
        total = 0
        for topic in (ACCOUNT_EVENTS, MARKET_EVENTS):
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in partitions]
            for tp in consumer.committed(tps, timeout=10):
                high = consumer.get_watermark_offsets(tp, timeout=10)[1]
                total += high - max(tp.offset, 0)
        return total
    finally:
        consumer.close()


def topic_end(bootstrap: str, topic: str) -> int:
    """The sum of a topic's partitions' end offsets: grows with every record written."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "perpledger-test-probe"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
    finally:
        consumer.close()


def wait_for_progress(bootstrap: str, topic: str, beyond: int, timeout_s: float) -> int:
    """Until `topic` has more than `beyond` records; its new end."""
    deadline = time.monotonic() + timeout_s
    while (end := topic_end(bootstrap, topic)) <= beyond:
        assert time.monotonic() < deadline, f"no progress on {topic} in {timeout_s} s"
        time.sleep(0.1)
    return end


def wait_caught_up(bootstrap: str, app_id: str, timeout_s: float, stable_polls: int = 3,
                   workers: tuple[WorkerProcess, ...] = ()) -> None:
    """Until nothing is left to consume for a few polls in a row (internal events arrive late).
    Fails at once if one of `workers` died."""
    deadline, quiet = time.monotonic() + timeout_s, 0
    while quiet < stable_polls:
        for worker in workers:
            assert worker.alive(), f"worker died: {worker.log_tail()}"
        assert time.monotonic() < deadline, (
            f"workers did not catch up: lag {lag(bootstrap, app_id)}\n"
            + "\n".join(f"--- {worker.log_path.name} (tail)\n{worker.log_tail()}" for worker in workers))
        try:
            quiet = quiet + 1 if lag(bootstrap, app_id) == 0 else 0
        except KafkaException:  # e.g. NOT_COORDINATOR while a restarted broker elects coordinators
            quiet = 0
        time.sleep(1.0)


def verify(bootstrap: str) -> str | None:
    """First difference between what the workers wrote and an uninterrupted run of the inputs."""
    return first_difference(expected_outputs(bootstrap, INTERNAL_KEY.encode(), DEDUP_WINDOW_US),
                            written_outputs(bootstrap))
