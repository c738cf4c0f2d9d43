"""Prometheus metrics of a worker, in their own registry, exposed on `/metrics`.

Per processed record (`observe`, on the agent's path, so label children are cached):
- `perpledger_events_applied_total{stage,type}`, `perpledger_events_rejected_total{stage,type,reason}`,
  `perpledger_events_duplicate_total{stage,type}`, `perpledger_dead_letters_total{stage,kind}`;
- `perpledger_journal_postings_total{stage}`, `perpledger_signals_total{stage,type}`;
- `perpledger_apply_seconds{stage}`: the core's apply plus the intent and state writes of one record;
- `perpledger_end_to_end_seconds{stage}`: from the event's `ts_us` (event time, set upstream) to its
  journal batch being handed to the producer, by this host's clock (0 when the event time is ahead).

At scrape time (callbacks the worker registers): consumer lag and table sizes per partition, and
whatever else `add_gauge` is given. HTTP requests are counted by route and status.

`type` is the event type when the ledger knows it, else `unknown`, so no client can grow the label set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.core.events import SPECS
from streams.core.model import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

APPLY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
END_TO_END_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                      300.0, 3600.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

GaugeSamples = Callable[[], Iterable[tuple[tuple[str, ...], float]]]


def type_label(event_type: object) -> str:
    return event_type if isinstance(event_type, str) and event_type in SPECS else "unknown"


class _Gauges(Collector):
    """Gauges computed when scraped: (name, help, label names, samples callback)."""

    def __init__(self) -> None:
        self.gauges: list[tuple[str, str, tuple[str, ...], GaugeSamples]] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, documentation, labels, samples in self.gauges:
            family = GaugeMetricFamily(name, documentation, labels=list(labels))
            for values, value in samples():
                family.add_metric(list(values), value)
            yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # values are only known at scrape time


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # no `*_created` series: twice the lines, and nothing a dashboard uses
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.applied = Counter("perpledger_events_applied", "Events applied (a journal batch each)",
                               ["stage", "type"], registry=registry)
        self.rejected = Counter("perpledger_events_rejected", "Events rejected, by reason code",
                                ["stage", "type", "reason"], registry=registry)
        self.duplicates = Counter("perpledger_events_duplicate", "Exact resends of applied events, ignored",
                                  ["stage", "type"], registry=registry)
        self.dead_letters = Counter("perpledger_dead_letters", "Input records that could not be decoded",
                                    ["stage", "kind"], registry=registry)
        self.postings = Counter("perpledger_journal_postings", "Postings in journal batches", ["stage"],
                                registry=registry)
        self.signals = Counter("perpledger_signals", "Signals emitted", ["stage", "type"], registry=registry)
        self.apply_seconds = Histogram("perpledger_apply_seconds", "Time to apply one input record",
                                       ["stage"], buckets=APPLY_BUCKETS, registry=registry)
        self.end_to_end_seconds = Histogram(
            "perpledger_end_to_end_seconds", "Event time (ts_us) to its journal batch, by this host's clock",
            ["stage"], buckets=END_TO_END_BUCKETS, registry=registry)
        self.http_requests = Counter("perpledger_http_requests", "HTTP requests served",
                                     ["route", "method", "status"], registry=registry)
        self.http_seconds = Histogram("perpledger_http_request_seconds", "HTTP request latency", ["route"],
                                      buckets=HTTP_BUCKETS, registry=registry)
        self._gauges = _Gauges()
        registry.register(self._gauges)
        self._children: dict[tuple, object] = {}

    # -- per record ---------------------------------------------------------------------------------

    def _child(self, metric: Counter | Histogram, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def observe(self, stage: str, outcome: Outcome | None, dead_letter_kind: str | None, apply_s: float,
                now_s: float) -> None:
        """One processed record: its outcome (None for a dead letter or a record skipped as applied
        before a restart), how long it took, and the wall clock now."""
        self._child(self.apply_seconds, stage).observe(apply_s)
        if outcome is None:
            if dead_letter_kind is not None:
                self._child(self.dead_letters, stage, dead_letter_kind).inc()
            return
        event_type = type_label(outcome.event_type)
        if outcome.status == "applied":
            self._child(self.applied, stage, event_type).inc()
            batch = outcome.batch
            if batch is not None:
                if batch.postings:
                    self._child(self.postings, stage).inc(len(batch.postings))
                self._child(self.end_to_end_seconds, stage).observe(max(0.0, now_s - batch.ts_us / 1e6))
        elif outcome.status == "duplicate":
            self._child(self.duplicates, stage, event_type).inc()
        else:
            self._child(self.rejected, stage, event_type, outcome.reason or "unknown").inc()
        for signal in outcome.signals:
            self._child(self.signals, stage, signal.type).inc()

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, route, method, str(status)).inc()
        self._child(self.http_seconds, route).observe(seconds)

    # -- scrape time --------------------------------------------------------------------------------

    def add_gauge(self, name: str, documentation: str, labels: tuple[str, ...], samples: GaugeSamples) -> None:
        self._gauges.gauges.append((name, documentation, labels, samples))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
