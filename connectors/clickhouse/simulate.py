"""The output records of an offline ledger run, encoded exactly as the workers encode them.

Tests and the benchmark put realistic journal, signal and rejection records on a topic this way in
seconds, without running workers: the same core, `streams.app.outputs.outputs_of`, and one input
partition per stage (so the chains are `account-0` and `market-0`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from confluent_kafka import Producer

from streams.app.outputs import InputCoordinates, Output, outputs_of
from streams.codec import Codec
from streams.core.events import ACCOUNT, spec_for
from streams.core.ledger import Ledger
from streams.topics import ACCOUNT_EVENTS, JOURNAL, MARKET_EVENTS, MAX_REQUEST_BYTES, REJECTIONS, SIGNALS

_SINK_TOPICS = (JOURNAL, SIGNALS, REJECTIONS)
_UNUSED_KEY = b"internal events stay in this process"


def ledger_outputs(events: Iterable[dict], ledger: Ledger, codec: Codec) -> Iterator[Output]:
    """Journal, signal and rejection records of each event and the internal events it causes."""
    offsets = {ACCOUNT_EVENTS: 0, MARKET_EVENTS: 0}
    for event in events:
        queue: deque[tuple[dict, bool]] = deque([(event, False)])
        while queue:
            current, trusted = queue.popleft()
            spec = spec_for(current.get("type"))
            topic = ACCOUNT_EVENTS if spec is None or spec.stage == ACCOUNT else MARKET_EVENTS
            outcome = ledger.stage_for(current).apply(current, trusted=trusted)
            source = InputCoordinates(topic, 0, offsets[topic])
            offsets[topic] += 1
            queue.extend((emitted, True) for emitted in outcome.emitted)
            for output in outputs_of(outcome, current, source, codec, _UNUSED_KEY):
                if output.topic in _SINK_TOPICS:
                    yield output


def produce_outputs(bootstrap: str, outputs: Iterable[Output], suffix: str = "") -> int:
    """Write the records to their topics (+ suffix), acknowledged; how many."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20,
                         "message.max.bytes": MAX_REQUEST_BYTES,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000})
    count = 0
    for output in outputs:
        while True:
            try:
                producer.produce(output.topic + suffix, key=output.key, value=output.value)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    if producer.flush(120) > 0:
        raise RuntimeError("records not acknowledged")
    return count
