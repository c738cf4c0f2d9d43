"""Shared fixtures. The Kafka ones are lazy: only a test that asks for them starts the broker."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator

import pytest

from tests import kafka_broker


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address ("127.0.0.1:PORT") of a running broker.

    Starts scripts/kafka.sh's broker once per test session if none runs, and stops it at the end
    only if this session started it (a broker a developer left running stays up).
    """
    external = kafka_broker.bootstrap_from_env()
    if external:
        yield external
        return
    started_here = not kafka_broker.is_running()
    bootstrap = kafka_broker.start()
    try:
        yield bootstrap
    finally:
        if started_here and not kafka_broker.keep_running():
            kafka_broker.stop()


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory: ``new_topic(partitions=1, config=None) -> str`` creates a uniquely named topic
    (named after the test) and returns once every partition has a leader. The topics are deleted
    after the test (best effort)."""
    admin = kafka_broker.admin_client(kafka_bootstrap)
    created: list[str] = []

    def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = kafka_broker.unique_topic_name(request.node.name)
        kafka_broker.create_topic(admin, name, partitions=partitions, config=config)
        created.append(name)
        return name

    yield make
    if created:
        kafka_broker.delete_topics(admin, created)


@pytest.fixture(autouse=True)
def _collect_garbage_in_the_main_thread() -> Iterator[None]:
    """A Kafka client left in a reference cycle must not be collected by a collection that happens
    to run on a librdkafka callback thread: librdkafka aborts the process when a client is destroyed
    from its own thread. Collecting after every test keeps such collections on the main thread."""
    yield
    gc.collect()
