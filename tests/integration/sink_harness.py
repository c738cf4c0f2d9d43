"""`perpledger sink` as a child process for integration tests, and the records it reads."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from connectors.clickhouse.simulate import ledger_outputs, produce_outputs
from streams.app.outputs import Output
from streams.codec import Codec
from streams.core.ledger import Ledger
from streams.topics import topic_config
from streams.workload import generate
from tests import kafka_broker
from tests.integration.worker_harness import ChildProcess, free_port

SINK_TOPICS = ("ledger.journal", "ledger.signals", "ledger.rejections", "ledger.dlq")


def workload_outputs(seed: int, n_events: int, n_users: int = 120) -> tuple[list[Output], Ledger]:
    """The sink-bound records of a seeded workload run offline, and the ledger after it."""
    ledger = Ledger()
    events = list(generate(seed=seed, n_events=n_events, n_markets=3, n_users=n_users))
    return list(ledger_outputs(events, ledger, Codec())), ledger


def create_sink_topics(bootstrap: str, suffix: str, partitions: int = 3) -> None:
    admin = kafka_broker.admin_client(bootstrap)
    for topic in SINK_TOPICS:
        kafka_broker.create_topic(admin, topic + suffix, partitions=partitions, config=topic_config(topic))


def produce(bootstrap: str, outputs: list[Output], suffix: str) -> None:
    assert produce_outputs(bootstrap, outputs, suffix) == len(outputs)


class SinkProcess(ChildProcess):
    """`perpledger sink` on its own embedded ClickHouse, topics suffixed per test."""

    def __init__(self, bootstrap: str, suffix: str, data_dir: Path, log_path: Path, **env: str) -> None:
        self.web_port = free_port()
        self.url = f"chdb://{data_dir / 'clickhouse'}"
        self.suffix = suffix
        super().__init__({"PERPLEDGER_KAFKA_BOOTSTRAP": bootstrap, "PERPLEDGER_CLICKHOUSE_URL": self.url,
                          "PERPLEDGER_SINK_GROUP": f"sink{suffix}", "PERPLEDGER_SINK_WEB_PORT": str(self.web_port),
                          "PERPLEDGER_LOG_FORMAT": "text", **env}, log_path)

    def start(self, *args: str) -> None:
        self.spawn("sink", "--topic-suffix", self.suffix, *args)

    def run_to_end(self, *args: str, timeout_s: float = 120) -> None:
        """Start with --exit-at-end and wait for a clean exit."""
        self.start("--exit-at-end", *args)
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        self.process = None
        assert code == 0, self.log_tail()

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of a metric's samples whose labels contain `labels`; 0 while the server is not up."""
        try:
            _, text = self.get("/metrics")
        except OSError:
            return 0.0
        pattern = rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$"
        return sum(float(value) for found, value in re.findall(pattern, text, re.M) if labels in found)
