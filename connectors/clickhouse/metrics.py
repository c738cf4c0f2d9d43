"""The sink's Prometheus metrics (own registry) and its small web server: /healthz, /readyz, /metrics."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
INSERT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class SinkMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rows_inserted = Counter("perpledger_sink_rows_inserted_total", "Rows inserted into ClickHouse",
                                     ["table"], registry=r)
        self.batches_inserted = Counter("perpledger_sink_batches_inserted_total",
                                        "Insert rounds completed (every table of one buffer)", registry=r)
        self.insert_seconds = Histogram("perpledger_sink_insert_seconds", "Time of one insert round",
                                        buckets=INSERT_BUCKETS, registry=r)
        self.insert_errors = Counter("perpledger_sink_insert_errors_total",
                                     "Failed ClickHouse operations, by reason (unavailable, table_missing, other)",
                                     ["reason"], registry=r)
        self.duplicates_dropped = Counter("perpledger_sink_duplicates_dropped_total",
                                          "Journal batches dropped as copies of batches already kept", registry=r)
        self.dead_letters = Counter("perpledger_sink_dead_letters_total",
                                    "Undecodable records sent to the dead-letter topic", registry=r)
        self.lag = Gauge("perpledger_sink_lag_records", "Records not yet consumed", ["topic", "partition"],
                         registry=r)
        self.last_insert = Gauge("perpledger_sink_last_insert_timestamp_seconds",
                                 "Unix time of the last successful insert round", registry=r)
        self.chain_breaks = Counter("perpledger_sink_chain_breaks_total",
                                    "Journal batches that do not link to their chain (label: the chain, "
                                    "'{stage}-{input partition}')", ["partition"], registry=r)


class WebServer:
    """A daemon thread serving health, readiness and metrics; `ready` is set by the sink."""

    def __init__(self, metrics: SinkMetrics, host: str, port: int) -> None:
        self.ready = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the stdlib's name
                if self.path == "/healthz":
                    self._answer(200, b"ok\n", "text/plain")
                elif self.path == "/readyz":
                    self._answer(200 if owner.ready else 503, b"ready\n" if owner.ready else b"not ready\n",
                                 "text/plain")
                elif self.path == "/metrics":
                    self._answer(200, generate_latest(metrics.registry), CONTENT_TYPE)
                else:
                    self._answer(404, b"not found\n", "text/plain")

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="sink-web", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
