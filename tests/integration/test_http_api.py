"""The HTTP API of real worker processes: auth, errors, submit-and-wait, read-your-writes, duplicates,
metrics, readiness, JSON logs, and routing between two workers (README "HTTP API")."""

from __future__ import annotations

import json
import random
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streams.api.auth import mint_token
from streams.producer import key_partition
from streams.topics import ACCOUNT_EVENTS
from tests.integration.worker_harness import WorkerProcess, free_port, fresh_topics

pytestmark = pytest.mark.integration
PARTITIONS = 3
SECRET = "http-api-test-secret-0123456789abcdef"
USDT = 10**6


class Client:
    """A tiny HTTP client: (status, JSON body or text, headers)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             headers: dict[str, str] | None = None, retry_503_s: float = 0.0) -> tuple[int, Any, dict[str, str]]:
        deadline = time.monotonic() + retry_503_s
        while True:
            status, payload, got = self._once(method, path, body, token, headers or {})
            if status != 503 or time.monotonic() >= deadline:
                return status, payload, got
            time.sleep(0.5)

    def _once(self, method: str, path: str, body: Any, token: str | None,
              headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=dict(headers))
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, raw, got = error.code, error.read(), dict(error.headers)
        try:
            return status, json.loads(raw), got
        except ValueError:
            return status, raw.decode("utf-8", "replace"), got

    def get(self, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        status, body, _ = self.call("GET", path, token=token, **kw)
        return status, body

    def post(self, event: Any, token: str | None, **kw: Any) -> tuple[int, Any]:
        status, body, _ = self.call("POST", "/v1/events", event, token=token, **kw)
        return status, body

    def wait_ready(self, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass  # the web server is not up yet
            time.sleep(0.5)
        raise AssertionError("the worker never became ready")


def token(subject: str, role: str, *, ttl_s: int = 600, now_s: float | None = None) -> str:
    return mint_token(SECRET.encode(), subject, role, now_s=time.time() if now_s is None else now_s, ttl_s=ttl_s)


def ev(type_: str, event_id: str, source: str = "test", **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": event_id, "source": source, "ts_us": int(time.time() * 1e6), **fields}


def listed(market: str, event_id: str) -> dict[str, Any]:
    return ev("MarketListed", event_id, "admin", market=market, settlement_asset="USDT", settlement_decimals=6,
              price_decimals=2, size_decimals=3, initial_margin_ppm=100_000, maintenance_margin_ppm=50_000,
              liquidation_fee_ppm=10_000)


def deposit(user: str, amount: int, tag: str) -> dict[str, Any]:
    return ev("DepositConfirmed", f"dep-{tag}", "custody", deposit_id=f"D-{tag}", user=user, asset="USDT",
              amount=amount)


def start_worker(bootstrap: str, tmp_path: Path, app_id: str, name: str, port: int) -> WorkerProcess:
    worker = WorkerProcess(bootstrap, app_id, PARTITIONS, tmp_path / f"data-{name}", tmp_path / f"{name}.log", port)
    worker.env["PERPLEDGER_JWT_SECRET"] = SECRET
    worker.env["PERPLEDGER_LOG_FORMAT"] = "json"
    worker.env["PERPLEDGER_API_TIMEOUT_S"] = "20"
    worker.start()
    return worker


def poll(check: Any, timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


# -- one worker ----------------------------------------------------------------------------------


class TestOneWorker:
    PORT = free_port()

    @pytest.fixture(scope="class")
    def api(self, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, Path]]:
        fresh_topics(kafka_bootstrap, PARTITIONS)
        tmp_path = tmp_path_factory.mktemp("http-api")
        worker = start_worker(kafka_bootstrap, tmp_path, f"http-{uuid.uuid4().hex[:6]}", "one", self.PORT)
        client = Client(self.PORT)
        try:
            client.wait_ready()
            yield client, tmp_path / "one.log"
        finally:
            alive = worker.alive()
            worker.stop()
            assert alive, (tmp_path / "one.log").read_text()[-3000:]

    def test_health_ready_and_metrics_need_no_token(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        assert client.get("/healthz") == (200, {"status": "ok"})
        assert client.get("/readyz") == (200, {"ready": True, "state": "ready"})
        status, text, headers = client.call("GET", "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        assert "perpledger_ready 1.0" in text

    def test_missing_and_bad_tokens_are_401(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        status, body, headers = client.call("GET", "/v1/users/alice/balances")
        assert status == 401 and body["error"]["code"] == "missing_token"
        assert headers["WWW-Authenticate"] == 'Bearer realm="perpledger"'
        forged = mint_token(b"another-secret-0123456789abcdefghij", "alice", "user", now_s=time.time(), ttl_s=60)
        for bad, code in [(forged, "bad_signature"), ("not.a.token", "malformed_token"),
                          (token("alice", "user", ttl_s=10, now_s=time.time() - 100), "token_expired")]:
            status, body = client.get("/v1/users/alice/balances", bad)
            assert (status, body["error"]["code"]) == (401, code)
        status, body = client.post(deposit("alice", 1, "x401"), None)
        assert (status, body["error"]["code"]) == (401, "missing_token")
        status, body = client.get("/v1/events/e1?user=alice", "garbage")
        assert status == 401

    def test_wrong_roles_and_other_users_are_403(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        alice, producer, admin = token("alice", "user"), token("custody", "producer"), token("ops", "admin")
        cases = [
            (client.get("/v1/users/bob/balances", alice), "not_owner"),
            (client.get("/v1/users/bob/positions", alice), "not_owner"),
            (client.get("/v1/users/alice/balances", producer), "read_not_allowed"),
            (client.get("/v1/events/x?user=bob", alice), "not_owner"),
            (client.post(ev("WithdrawalRequested", "w-bob", withdrawal_id="W", user="bob", asset="USDT",
                            amount=1), alice), "not_owner"),
            (client.post(deposit("alice", 1, "self-minted"), alice), "type_not_allowed"),
            (client.post(listed("ETH-PERP", "l-prod"), producer), "type_not_allowed"),
            (client.post(deposit("alice", 1, "admin-fact"), admin), "type_not_allowed"),
            (client.post(ev("MarginCredited", "mc", transfer_id="t", user="alice", market="BTC-PERP", asset="USDT",
                            amount=10**12), admin), "internal_event"),
            (client.post(ev("TransferCredited", "tc", transfer_id="t", to_user="alice", asset="USDT", amount=1),
                         producer), "internal_event"),
        ]
        for (status, body), code in cases:
            assert (status, body["error"]["code"]) == (403, code), body

    def test_malformed_requests_are_400_and_unknown_ones_404(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        producer, alice, admin = token("custody", "producer"), token("alice", "user"), token("ops", "admin")
        for body, code in [(b"{junk", "malformed_json"), (b"", "malformed_json"), (b"[1,2]", "not_an_object"),
                           (b'{"type": "DepositConfirmed", "type": "TradeFill"}', "malformed_json"),
                           (b'{"amount": NaN}', "malformed_json"), (b"\xff\xfe\x00", "malformed_json")]:
            status, answer = client.post(body, producer)
            assert (status, answer["error"]["code"]) == (400, code), body
        missing_field = deposit("alice", 5, "mf")
        del missing_field["deposit_id"]
        extra_field = {**deposit("alice", 5, "xf"), "auth_tag": "00" * 32}
        for event in (missing_field, extra_field, {**deposit("alice", 5, "fl"), "amount": 1.5},
                      {"type": "NoSuchEvent", "event_id": "n"}, {**deposit("alice", 5, "it"), "user": 7}):
            status, answer = client.post(event, producer)
            assert (status, answer["error"]["code"]) == (400, "invalid_event"), event
        assert client.get("/v1/users/a%20b/balances", admin)[1]["error"]["code"] == "invalid_user"
        assert client.get("/v1/events/x", admin)[1]["error"]["code"] == "missing_key"
        assert client.get("/v1/events/x?user=alice&market=M", admin)[1]["error"]["code"] == "missing_key"
        status, answer = client.post(b"{" + b'"a":1,' * 20_000 + b'"b":2}', producer)
        assert (status, answer["error"]["code"]) == (413, "body_too_large")
        assert client.get("/v1/users/nobody-here/balances", admin)[1]["error"]["code"] == "unknown_user"
        assert client.get("/v1/users/nobody-here/positions", admin)[0] == 404
        status, answer = client.get("/v1/events/never-sent?user=alice", alice)
        assert (status, answer["error"]["code"]) == (404, "unknown_event")
        status, answer = client.get("/v1/no/such/route", alice)
        assert (status, answer["error"]["code"]) == (404, "not_found")
        status, answer, _ = client.call("DELETE", "/v1/events", token=admin)
        assert status == 405

    def test_submit_read_your_writes_duplicates_and_outcomes(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        admin, producer, engine = token("ops", "admin"), token("custody", "producer"), token("me", "producer")
        user = f"u{uuid.uuid4().hex[:8]}"
        mine, other = token(user, "user"), token("somebody-else", "user")
        market = f"M{uuid.uuid4().hex[:6]}"

        status, body = client.post(listed(market, f"list-{market}"), admin)
        assert (status, body["status"], body["stage"], body["key"]) == (200, "applied", "market", market)

        dep = deposit(user, 1_000 * USDT, user)
        status, body = client.post(dep, producer)
        assert (status, body["status"], body["event_id"]) == (200, "applied", dep["event_id"])
        postings = body["journal"]["postings"]
        assert {p["account"]: p["amount"] for p in postings} == {
            f"user:{user}:wallet:USDT": 1_000 * USDT, "external:custody:USDT": -1_000 * USDT}
        # read-your-writes: the very next read sees the deposit
        status, read = client.get(f"/v1/users/{user}/balances", mine)
        assert status == 200 and read["complete"] is True and read["missing"] == []
        assert read["balances"] == [{"account": f"user:{user}:wallet:USDT", "asset": "USDT", "balance": 1_000 * USDT}]
        assert {(x["stage"], x["partition"]) for x in read["as_of"]} >= {("market", p) for p in range(PARTITIONS)}

        # an exact resend: the original outcome; a different payload under the same id: rejected
        status, again = client.post(dep, producer)
        assert (status, again["status"]) == (200, "duplicate")
        assert again["original"]["journal"]["hash"] == body["journal"]["hash"]
        status, conflict = client.post({**dep, "amount": 2 * USDT}, producer)
        assert (status, conflict["status"], conflict["reason"]) == (422, "rejected", "IDEMPOTENCY_CONFLICT")
        assert client.get(f"/v1/users/{user}/balances", mine)[1]["balances"][0]["balance"] == 1_000 * USDT
        status, outcome = client.get(f"/v1/events/{dep['event_id']}?user={user}", mine)
        assert (status, outcome["status"]) == (200, "applied")
        assert outcome["journal"]["hash"] == body["journal"]["hash"]
        assert client.get(f"/v1/events/{dep['event_id']}?user={user}", admin)[0] == 200

        # a user's own request, and its follow-up in the market stage
        move = ev("MarginTransferRequested", f"mt-{user}", "api", transfer_id=f"T-{user}", user=user, market=market,
                  asset="USDT", amount=300 * USDT)
        status, moved = client.post(move, mine)
        assert (status, moved["status"]) == (200, "applied")
        (follow_up,) = moved["follow_ups"]
        assert follow_up == {"event_id": f"mt-{user}:MarginCredited", "event_type": "MarginCredited",
                             "stage": "market", "key": market, "origin_key": user}
        credit_path = f"/v1/events/{follow_up['event_id']}?market={market}&origin={user}"
        credited = poll(lambda: client.get(credit_path, mine)[0] == 200)
        assert credited, client.get(credit_path, mine)
        assert client.get(credit_path, other)[0] == 404  # not theirs: not disclosed
        status, read = client.get(f"/v1/users/{user}/balances", mine)
        assert {r["account"]: r["balance"] for r in read["balances"]} == {
            f"user:{user}:wallet:USDT": 700 * USDT, f"user:{user}:margin:{market}": 300 * USDT}

        # a rejection is an outcome too (422), and changes nothing
        too_much = ev("WithdrawalRequested", f"w-{user}", "api", withdrawal_id=f"W-{user}", user=user, asset="USDT",
                      amount=10_000 * USDT)
        status, rejected = client.post(too_much, mine)
        assert (status, rejected["status"], rejected["reason"]) == (422, "rejected", "INSUFFICIENT_BALANCE")
        assert client.get(f"/v1/events/{too_much['event_id']}?user={user}", mine)[1]["reason"] == "INSUFFICIENT_BALANCE"

        # a trade: positions appear, read through every market partition
        counterparty = f"c{uuid.uuid4().hex[:8]}"
        for event in (deposit(counterparty, 1_000 * USDT, counterparty),):
            assert client.post(event, producer)[0] == 200
        assert client.post(ev("MarginTransferRequested", f"mt-{counterparty}", "api", transfer_id="T-c",
                              user=counterparty, market=market, asset="USDT", amount=500 * USDT),
                           token(counterparty, "user"))[0] == 200
        poll(lambda: client.get(f"/v1/events/mt-{counterparty}:MarginCredited?market={market}&origin={counterparty}",
                                admin)[0] == 200)
        fill = ev("TradeFill", f"fill-{market}", "me", market=market, trade_id="T1", seq=1, price=50_000_00,
                  quantity=10, buyer=user, seller=counterparty, buyer_fee=0, seller_fee=0)
        status, filled = client.post(fill, engine)
        assert (status, filled["status"]) == (200, "applied"), filled
        status, held = client.get(f"/v1/users/{user}/positions", mine)
        assert status == 200 and held["complete"] is True
        assert [(p["market"], p["size"], p["entry_price"], p["state"]) for p in held["positions"]] == [
            (market, 10, 50_000_00, "healthy")]
        assert client.get(f"/v1/users/{counterparty}/positions", admin)[1]["positions"][0]["size"] == -10
        assert client.get(f"/v1/events/{fill['event_id']}?market={market}", mine)[0] == 404  # names the counterparty
        assert client.get(f"/v1/events/{fill['event_id']}?market={market}", engine)[0] == 200

    def test_metrics_count_what_happened(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        producer = token("custody", "producer")
        user = f"m{uuid.uuid4().hex[:8]}"
        dep = deposit(user, 5 * USDT, user)
        assert client.post(dep, producer)[0] == 200
        assert client.post(dep, producer)[1]["status"] == "duplicate"
        assert client.post(ev("WithdrawalRequested", f"w-{user}", withdrawal_id="W", user=user, asset="USDT",
                              amount=9 * USDT), token(user, "user"))[0] == 422
        text = client.call("GET", "/metrics")[1]
        for needle in (
            'perpledger_events_applied_total{stage="account",type="DepositConfirmed"}',
            'perpledger_events_duplicate_total{stage="account",type="DepositConfirmed"}',
            'perpledger_events_rejected_total{reason="INSUFFICIENT_BALANCE",stage="account",'
            'type="WithdrawalRequested"}',
            'perpledger_journal_postings_total{stage="account"}',
            'perpledger_apply_seconds_bucket{le="0.001",stage="account"}',
            'perpledger_end_to_end_seconds_bucket{le="1.0",stage="account"}',
            'perpledger_consumer_lag{partition="0",stage="account"}',
            'perpledger_state_records{',
            'perpledger_chain_batch_seq{partition="',
            'perpledger_last_applied_offset{partition="',
            'perpledger_http_requests_total{method="POST",route="events",status="200"}',
            "perpledger_api_recent_outcomes ",
        ):
            assert needle in text, needle

    def test_nothing_a_client_sends_crashes_the_worker(self, api: tuple[Client, Path]) -> None:
        client, _ = api
        rng = random.Random(5)
        admin = token("ops", "admin")
        for _ in range(60):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            client.call("POST", "/v1/events", junk, token=admin)
        for event in ({"type": "DepositConfirmed", "event_id": {"a": [1]}}, {"type": None},
                      {**deposit("alice", 1, "big"), "amount": 10**40}, {**deposit("alice", -1, "neg")},
                      {**deposit("a" * 500, 1, "long")}, {**deposit("alice", 1, "int"), "ts_us": -5}):
            status, body = client.post(event, token("custody", "producer"))
            assert status in (200, 400, 422), (status, body)
        for path in ("/v1/users/" + "x" * 5000 + "/balances", "/v1/events/%00?user=alice", "/v1/users//balances",
                     "/v1/events/" + "e" * 600 + "?user=alice", "/v1/internal/users/alice/state?parts=bogus"):
            assert client.get(path, admin)[0] in (400, 404)
        with socket.create_connection(("127.0.0.1", self.PORT), timeout=5) as raw:  # not even HTTP
            raw.sendall(b"\x00\x01garbage\r\n\r\n")
            raw.recv(100)
        assert client.get("/healthz") == (200, {"status": "ok"})
        assert client.get("/readyz")[0] == 200

    def test_logs_are_json_lines_with_dead_letters_and_their_coordinates(self, api: tuple[Client, Path],
                                                                         kafka_bootstrap: str) -> None:
        _, log_path = api
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(ACCOUNT_EVENTS, b"not avro at all", b"alice")
        assert producer.flush(30) == 0

        def dead_letter_logged() -> list[dict]:
            lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
            return [line for line in lines if line["message"] == "dead letter"]

        (line,) = poll(dead_letter_logged)
        assert line["level"] == "WARNING" and line["logger"] == "perpledger.worker"
        assert line["stage"] == "account" and isinstance(line["partition"], int) and isinstance(line["offset"], int)
        assert line["error_kind"] and line["ts"].endswith("Z")
        for raw in log_path.read_text().splitlines():  # every line is one JSON object
            if raw.strip():
                assert isinstance(json.loads(raw), dict), raw


# -- two workers: requests are routed to the owner, reads gather every partition --------------------------


def _covering(prefix: str, per_partition: int) -> list[str]:
    """Fresh keys, `per_partition` of them on each input partition: whichever partitions a worker
    owns, some of these keys are its."""
    keys: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    while any(len(k) < per_partition for k in keys.values()):
        key = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if len(keys[key_partition(key, PARTITIONS)]) < per_partition:
            keys[key_partition(key, PARTITIONS)].append(key)
    return [key for p in sorted(keys) for key in keys[p]]


def test_two_workers_route_to_the_owner_and_gather_every_partition(kafka_bootstrap: str, tmp_path: Path) -> None:
    fresh_topics(kafka_bootstrap, PARTITIONS)
    app_id = f"http2-{uuid.uuid4().hex[:6]}"
    port_a, port_b = free_port(), free_port()
    first = start_worker(kafka_bootstrap, tmp_path, app_id, "a", port_a)
    second = start_worker(kafka_bootstrap, tmp_path, app_id, "b", port_b)
    a, b = Client(port_a), Client(port_b)
    try:
        a.wait_ready()
        b.wait_ready()
        admin, producer = token("ops", "admin"), token("custody", "producer")
        wait = 90.0  # the second worker's join rebalances the group: 503s until it settles
        markets = _covering("MK", 1)
        for market in markets:
            status, body = a.post(listed(market, f"list-{market}"), admin, retry_503_s=wait)
            assert (status, body["status"]) == (200, "applied"), body
        users = _covering("u", 2)
        for n, user in enumerate(users):  # every POST goes to the first worker: some are forwarded
            status, body = a.post(deposit(user, (n + 1) * 100 * USDT, user), producer, retry_503_s=wait)
            assert (status, body["status"]) == (200, "applied"), body
            for market in markets:
                move = ev("MarginTransferRequested", f"mt-{user}-{market}", "api", transfer_id=f"T-{market}",
                          user=user, market=market, asset="USDT", amount=10 * USDT)
                status, body = a.post(move, token(user, "user"), retry_503_s=wait)
                assert (status, body["status"]) == (200, "applied"), body
        for n, user in enumerate(users):  # read through the second worker
            mine = token(user, "user")

            def settled(user: str = user, mine: str = mine) -> dict | None:
                status, read = b.get(f"/v1/users/{user}/balances", mine, retry_503_s=wait)
                return read if status == 200 and read["complete"] and len(read["balances"]) == 1 + len(markets) \
                    else None

            read = poll(settled, timeout_s=60)
            assert read, b.get(f"/v1/users/{user}/balances", mine)
            balances = {r["account"]: r["balance"] for r in read["balances"]}
            assert balances[f"user:{user}:wallet:USDT"] == (n + 1) * 100 * USDT - len(markets) * 10 * USDT
            assert all(balances[f"user:{user}:margin:{m}"] == 10 * USDT for m in markets)
            # the same answer from the first worker
            assert a.get(f"/v1/users/{user}/balances", mine, retry_503_s=wait)[1]["balances"] == read["balances"]
            status, outcome = b.get(f"/v1/events/dep-{user}?user={user}", mine, retry_503_s=wait)
            assert (status, outcome["status"]) == (200, "applied")
        # both workers applied deposits, though all were POSTed to the first: it forwarded the second's
        deposits = []
        for client in (a, b):
            text = client.call("GET", "/metrics")[1]
            deposits.append(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                if line.startswith('perpledger_events_applied_total{stage="account",'
                                                   'type="DepositConfirmed"}')))
        assert all(count > 0 for count in deposits) and sum(deposits) == len(users), deposits
        assert first.alive() and second.alive()

        # the second worker leaves: the first takes its partitions over, restored from the changelog,
        # and answers for them (from the table: no input has arrived there since) the same as before
        before = {user: a.get(f"/v1/users/{user}/balances", token(user, "user"))[1]["balances"] for user in users}
        second.stop()
        for user in users:
            def same(user: str = user) -> bool:
                status, read = a.get(f"/v1/users/{user}/balances", token(user, "user"), retry_503_s=wait)
                return status == 200 and read["complete"] and read["balances"] == before[user]

            assert poll(same, timeout_s=90), a.get(f"/v1/users/{user}/balances", token(user, "user"))
        assert a.get("/readyz")[0] == 200 and first.alive()
    finally:
        first.stop()
        second.stop()
