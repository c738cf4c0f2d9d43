"""The local Kafka broker for tests: a thin wrapper around scripts/kafka.sh, plus topic helpers.

Used by the session fixtures in tests/conftest.py; importable from test code too. Environment:

- PERPLEDGER_KAFKA_BOOTSTRAP: use this broker as it is (e.g. a real cluster); nothing is started.
- PERPLEDGER_KAFKA_KEEP=1: leave a broker this session started running afterwards (faster reruns).
- PERPLEDGER_KAFKA_PORT / PERPLEDGER_KAFKA_CONTROLLER_PORT: passed through to scripts/kafka.sh.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = ROOT / "scripts" / "kafka.sh"


def _kafka_sh(command: str, *, timeout: float) -> subprocess.CompletedProcess[str]:
    # stderr is not captured: the script's progress lines show up in pytest's output on failure.
    return subprocess.run(
        ["bash", str(KAFKA_SH), command], stdout=subprocess.PIPE, text=True, timeout=timeout, check=False
    )


def is_running() -> bool:
    return _kafka_sh("status", timeout=30).returncode == 0


def start() -> str:
    """Start the broker unless it runs already; returns its bootstrap address ("127.0.0.1:PORT")."""
    # 60 s for the broker to answer (the script's own limit), plus a first-time `install`.
    proc = _kafka_sh("start", timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/kafka.sh start failed (exit {proc.returncode}); see its stderr")
    return proc.stdout.strip().splitlines()[-1]


def stop() -> None:
    _kafka_sh("stop", timeout=120).check_returncode()


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def unique_topic_name(hint: str = "test") -> str:
    # Kafka allows [a-zA-Z0-9._-] up to 249 chars; '.' and '_' collide in metric names, so use '-'.
    safe = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-")[:80] or "test"
    return f"{safe}-{uuid.uuid4().hex[:10]}"


def create_topic(
    admin: AdminClient,
    name: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create a topic and return only once every partition has a leader, so that producers and
    consumers started right after never see UNKNOWN_TOPIC_OR_PART."""
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout,
    )
    futures[name].result(timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        topic = admin.list_topics(topic=name, timeout=5).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.error is None and p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} has no leader for every partition after {timeout}s")
        time.sleep(0.1)


def delete_topics(admin: AdminClient, names: list[str], timeout: float = 15.0) -> list[str]:
    """Delete `names`, best effort: returns what could not be deleted, each with its error. Waited
    for, so no callback of this client is still pending in librdkafka's threads afterwards."""
    failures = []
    for name, future in admin.delete_topics(names, operation_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
        except Exception as error:  # a cleanup must not hide the outcome of what it cleans up after
            failures.append(f"{name}: {error}")
    return failures


def bootstrap_from_env() -> str | None:
    return os.environ.get("PERPLEDGER_KAFKA_BOOTSTRAP") or None


def keep_running() -> bool:
    return os.environ.get("PERPLEDGER_KAFKA_KEEP", "") not in ("", "0")
