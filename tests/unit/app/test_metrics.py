"""Worker metrics: what each outcome counts, and the exposition. No services."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from streams.app.metrics import Metrics
from streams.core.ledger import Ledger
from tests.unit.core.builders import USDT, deposit, listed, run, withdrawal


def _samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_outcomes_are_counted_by_type_and_reason() -> None:
    ledger, metrics = Ledger(), Metrics()
    event = deposit("alice", 5 * USDT, event_id="d1", ts_us=1_000_000)
    for outcome in run(ledger, listed(), event, dict(event), withdrawal("WithdrawalRequested", "alice", 9 * USDT)):
        metrics.observe(outcome.stage, outcome, None, 0.0002, now_s=3.5)
    metrics.observe("account", None, "bad-magic", 0.0001, now_s=3.5)
    metrics.observe("account", None, None, 0.0001, now_s=3.5)  # skipped after a restart: timed only
    s = _samples(metrics)
    assert s[("perpledger_events_applied_total", (("stage", "account"), ("type", "DepositConfirmed")))] == 1
    assert s[("perpledger_events_applied_total", (("stage", "market"), ("type", "MarketListed")))] == 1
    assert s[("perpledger_events_duplicate_total", (("stage", "account"), ("type", "DepositConfirmed")))] == 1
    assert s[("perpledger_events_rejected_total", (("reason", "INSUFFICIENT_BALANCE"), ("stage", "account"),
                                                  ("type", "WithdrawalRequested")))] == 1
    assert s[("perpledger_dead_letters_total", (("kind", "bad-magic"), ("stage", "account")))] == 1
    assert s[("perpledger_journal_postings_total", (("stage", "account"),))] == 2
    assert s[("perpledger_apply_seconds_count", (("stage", "account"),))] == 5
    # the deposit's event time was 1 s; "now" 3.5 s: 2.5 s end to end, in the 2.5 bucket
    assert s[("perpledger_end_to_end_seconds_bucket", (("le", "2.5"), ("stage", "account")))] == 1
    assert s[("perpledger_end_to_end_seconds_bucket", (("le", "1.0"), ("stage", "account")))] == 0


def test_unknown_types_share_one_label() -> None:
    ledger, metrics = Ledger(), Metrics()
    for junk in ("Nope", "AlsoNope"):
        (outcome,) = ledger.submit({"type": junk, "event_id": "x", "source": "s", "ts_us": 1})
        metrics.observe(outcome.stage, outcome, None, 0.0, now_s=0.0)
    s = _samples(metrics)
    assert s[("perpledger_events_rejected_total", (("reason", "INVALID_EVENT"), ("stage", "account"),
                                                  ("type", "unknown")))] == 2


def test_scrape_time_gauges_and_http_counters() -> None:
    metrics = Metrics()
    metrics.add_gauge("perpledger_consumer_lag", "lag", ("stage", "partition"),
                      lambda: [(("account", "0"), 3.0), (("market", "1"), 0.0)])
    metrics.observe_http("balances", "GET", 200, 0.01)
    metrics.observe_http("balances", "GET", 404, 0.01)
    s = _samples(metrics)
    assert s[("perpledger_consumer_lag", (("partition", "0"), ("stage", "account")))] == 3.0
    assert s[("perpledger_http_requests_total", (("method", "GET"), ("route", "balances"), ("status", "404")))] == 1
