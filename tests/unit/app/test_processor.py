"""The effectively-once protocol of `PartitionProcessor`, without services.

A worker's table survives a crash twice: in the changelog, a prefix of the writes it made (Kafka
keeps their order), and on its local disk, every write. Kafka's committed offset never passes a
group whose writes and outputs are not all acknowledged. The simulation below crashes a processor
at random points under exactly those rules, restarting it on the same disk or a new one, and
checks that what survives is what an uninterrupted run produces: the same outputs (copies allowed,
nothing missing, nothing extra) and the same final table.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.app.outputs import Output
from streams.app.processor import COMMITTED_PREFIX, INTENT_PREFIX, PartitionProcessor
from streams.codec import Codec, EncodeError
from streams.core.account_stage import AccountStage
from streams.core.engine import StageEngine
from streams.core.market_stage import MarketStage
from streams.topics import ACCOUNT_EVENTS, MARKET_EVENTS, input_topic_and_key
from streams.workload import generate

KEY = b"k" * 32
WINDOW_US = 7 * 86_400 * 10**6
CODEC = Codec()
Record = tuple[bytes, bytes]  # (key, value) of an input record; its offset is its index


class LoggedTable:
    """A partition table in memory that also logs every write, in order."""

    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data
        self.log: list[tuple[bytes, bytes | None]] = []

    def set(self, key: bytes, value: bytes) -> None:
        self.data[key] = value
        self.log.append((key, value))

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)
        self.log.append((key, None))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(list(self.data.items()))


def _inputs(seed: int, topic: str) -> list[Record]:
    records = []
    for event in generate(seed, 160, n_markets=2, n_users=12):
        event_topic, key = input_topic_and_key(event)
        if event_topic == topic:
            try:
                value = CODEC.encode(event)
            except EncodeError:  # the workload's malformed events: bytes that become dead letters
                value = json.dumps(event).encode()
            records.append((key.encode(), value))
    return records


def _new(engine: type[StageEngine], topic: str, table: LoggedTable) -> PartitionProcessor:
    return PartitionProcessor(engine, topic, 0, table, CODEC, KEY, WINDOW_US)


def _uninterrupted(engine: type[StageEngine], topic: str, records: list[Record]) -> tuple[set[Output], dict]:
    processor = _new(engine, topic, LoggedTable({}))
    assert processor.load() == []
    outputs: set[Output] = set()
    for offset, (key, value) in enumerate(records):
        applied = processor.process(offset, key, value)
        assert applied is not None
        outputs.update(applied.outputs)
        processor.seal()
    return outputs, _state(processor.table.data)


def _state(data: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The ledger's state in a table, without the protocol's own records."""
    return {k: v for k, v in data.items() if not k.startswith((INTENT_PREFIX, COMMITTED_PREFIX))}


def _replay(data: dict[bytes, bytes], writes: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    for key, value in writes:
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def _crashing(engine: type[StageEngine], topic: str, records: list[Record], rng: random.Random,
              crashes: int) -> tuple[set[Output], dict]:
    """Run with `crashes` crashes; the outputs Kafka acknowledged and the final table.

    Two copies of the table survive a crash, as on a worker: the changelog (every write delivered
    before the crash, in order: at least those acknowledged, perhaps more) and the local disk (every
    write, delivered or not). A restart on the same disk starts from the local copy and, as Faust's
    recovery does, replays the changelog from its persisted offset (somewhere after the last
    acknowledged write) over it; a restart on a new disk starts from the changelog alone."""
    changelog: list[tuple[bytes, bytes | None]] = []
    local: dict[bytes, bytes] | None = None
    persisted = 0  # the changelog offset the local copy is known to hold
    committed = 0  # the consumer group's offset: the next input to deliver
    delivered: set[Output] = set()
    for life in range(crashes + 1):
        last_life = life == crashes
        if local is None:
            table = LoggedTable(_replay({}, changelog))
        else:
            table = LoggedTable(_replay(local, changelog[persisted:]))
        processor = _new(engine, topic, table)
        resent = processor.load()
        # Outputs are acknowledged in the order they were sent: a group's are lost with it.
        acked_outputs: list[Output] = list(resent)
        pending: list[Output] = []
        acked_writes = len(table.log)  # writes Kafka acknowledged: a crash keeps at least these
        group_target = rng.randint(1, 6)
        for offset in range(committed, len(records)):
            if not last_life and rng.random() < 0.04:
                break  # the crash point, mid-stream
            processor.process(offset, *records[offset])
            if processor.group_records >= group_target or offset == len(records) - 1:
                pending.extend(processor.seal())
                if last_life or rng.random() < 0.5:  # Kafka acknowledged everything so far: commit
                    acked_writes, committed = len(table.log), offset + 1
                    acked_outputs.extend(pending)
                    pending = []
                    processor.forget_committed(committed)
                group_target = rng.randint(1, 6)
        delivered.update(acked_outputs)
        if last_life:
            return delivered, _state(table.data)
        life_start = len(changelog)
        changelog.extend(table.log[:rng.randint(acked_writes, len(table.log))])
        if rng.random() < 0.3:
            local = None  # the replacement runs on another machine
        else:
            local, persisted = table.data, rng.randint(life_start + acked_writes, len(changelog))
    raise AssertionError("unreachable")


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), crashes=st.integers(1, 6), market=st.booleans())
def test_crashes_at_random_points_leave_the_outputs_and_state_of_an_uninterrupted_run(
        seed: int, crashes: int, market: bool) -> None:
    engine, topic = (MarketStage, MARKET_EVENTS) if market else (AccountStage, ACCOUNT_EVENTS)
    records = _inputs(seed, topic)
    expected_outputs, expected_state = _uninterrupted(engine, topic, records)
    outputs, state = _crashing(engine, topic, records, random.Random(seed), crashes)
    assert outputs == expected_outputs
    assert state == expected_state


def test_a_group_writes_one_intent_and_each_key_once() -> None:
    records = _inputs(3, ACCOUNT_EVENTS)[:40]
    processor = _new(AccountStage, ACCOUNT_EVENTS, LoggedTable({}))
    processor.load()
    outputs = []
    for offset, (key, value) in enumerate(records):
        applied = processor.process(offset, key, value)
        assert applied is not None
        outputs.extend(applied.outputs)
    assert processor.table.log == []  # nothing durable before the seal
    assert processor.seal() == outputs
    log = processor.table.log
    assert log[0][0] == b"~intent:0:%020d" % (len(records) - 1)  # keyed by the group's last offset
    written = [key for key, _ in log[1:]]
    assert len(written) == len(set(written)) > 0
    assert processor.seal() == [] and len(processor.table.log) == len(log)  # an empty group writes nothing


def test_records_up_to_the_last_intent_are_skipped_after_a_restart_and_their_outputs_resent() -> None:
    records = _inputs(5, ACCOUNT_EVENTS)[:20]
    first = _new(AccountStage, ACCOUNT_EVENTS, LoggedTable({}))
    first.load()
    sent = [output for offset, record in enumerate(records[:12]) for output in first.process(offset, *record).outputs]
    first.seal()
    second = _new(AccountStage, ACCOUNT_EVENTS, LoggedTable(dict(first.table.data)))
    assert second.load() == sent
    assert [second.process(offset, *records[offset]) for offset in range(12)] == [None] * 12
    assert second.process(12, *records[12]) is not None
