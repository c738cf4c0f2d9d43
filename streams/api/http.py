"""The HTTP API every worker serves (Faust web, aiohttp). README "HTTP API" is the reference.

    POST /v1/events                      submit an event; answers with its outcome once applied
    GET  /v1/events/{event_id}?user=U    an outcome (or ?market=M; &origin=K for an internal event)
    GET  /v1/users/{user}/balances       wallets, pending deposits, withdrawal holds, margins
    GET  /v1/users/{user}/positions      open positions
    GET  /healthz  /readyz  /metrics     no token

Every /v1 route needs `Authorization: Bearer <JWT>` (streams.api.auth). Errors are
`{"error": {"code", "message"}}` with 400 (malformed), 401 (token), 403 (role or owner), 404
(unknown user or event), 413, 503 (not ready, owner unknown or unreachable), 504 (no outcome in time).

Routing. A key's state lives with the worker that owns its input partition (Faust keeps the input
partition and its table's changelog partition together). The owner of (stage, partition) is read
from Faust's assignor (`app.router.table_metadata`, the changelog distribution); a request about
one key (a POST, an event lookup) is forwarded there whole, body included (Faust's `table_route`
forwards neither bodies nor errors, hence our own). A user's balances and positions span the
account partition of the user and every market partition (margins and positions are kept under
each market's key), so those reads ask each owner for its part (`/v1/internal/users/{user}/state`)
and say `complete: false` if any part could not be read.

Consistency. An owner processes its partitions one record at a time and answers reads from the
same in-memory state; a POST answers once its record was applied and the producer flushed (its
intent, state and outputs are acknowledged), so any later read sees it: read-your-writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import faust
from aiohttp import web as aioweb
from faust.types import TP
from faust.web import View
from yarl import URL

from streams.api import readmodel
from streams.api.auth import (
    MIN_SECRET_BYTES,
    USER,
    AuthError,
    Claims,
    Forbidden,
    authenticate,
    authorize_read,
    authorize_submit,
    strict_json_loads,
)
from streams.api.outcomes import (
    DUPLICATE,
    RecentOutcomes,
    Recorded,
    Waiters,
    dead_lettered,
    may_read,
    recorded,
    to_json,
)
from streams.api.outcomes import Coalescer as _Coalescer
from streams.api.readmodel import UserIndex
from streams.app.metrics import CONTENT_TYPE
from streams.app.processor import PartitionProcessor
from streams.codec import EncodeError
from streams.core.engine import DEDUP
from streams.core.events import ACCOUNT, MARKET
from streams.producer import key_partition
from streams.topics import ACCOUNT_EVENTS, MARKET_EVENTS, input_topic_and_key

if TYPE_CHECKING:
    from streams.app.worker import Ledger, Processed

log = logging.getLogger("perpledger.api")

FORWARDED = "X-PerpLedger-Forwarded"  # set on requests one worker sends another: never forwarded again
STAGE_TOPICS = {ACCOUNT: ACCOUNT_EVENTS, MARKET: MARKET_EVENTS}
_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_EVENT_ID_CHARS = 512  # producer ids are 128 at most; internal ones add ":{type}"
_PASSED_BACK = ("Content-Type", "WWW-Authenticate", "Retry-After")  # headers of a forwarded answer


class ApiError(Exception):
    """An error response: HTTP status, a stable code, a message safe to show."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


# -- pure helpers (unit-tested) ------------------------------------------------------------------


def parse_event(body: bytes) -> dict[str, Any]:
    """The event object of a request body: strict JSON (no duplicate keys, no NaN), an object."""
    try:
        event = strict_json_loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ApiError(400, "malformed_json", f"the body is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise ApiError(400, "not_an_object", "the body must be one JSON object (an event)")
    return event


def parse_parts(text: str, partitions: int) -> list[tuple[str, int]]:
    """`account:1,market:0` -> [("account", 1), ("market", 0)]; ApiError(400) for anything else."""
    parts = []
    for item in text.split(",") if text else []:
        stage, _, number = item.partition(":")
        if stage not in STAGE_TOPICS or not number.isdigit() or int(number) >= partitions:
            raise ApiError(400, "invalid_parts", "parts is a list of {account|market}:{partition}")
        parts.append((stage, int(number)))
    if not parts or len(parts) > 2 * partitions:
        raise ApiError(400, "invalid_parts", "parts is a list of {account|market}:{partition}")
    return parts


def check_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise ApiError(400, f"invalid_{what}", f"a {what} matches {_ID.pattern}")
    return value


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def status_of(rec: Recorded) -> int:
    """200 for an applied event or a duplicate of one; 422 for a rejection or an undecodable record."""
    return 200 if rec.status in ("applied", DUPLICATE) else 422


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> aioweb.Response:
    return aioweb.Response(body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
                           status=status, content_type="application/json", charset="utf-8", headers=headers)


def error_response(error: ApiError | AuthError | Forbidden) -> aioweb.Response:
    if isinstance(error, AuthError):
        return json_response(error_body(error.code, error.message), 401,
                             {"WWW-Authenticate": error.www_authenticate})
    if isinstance(error, Forbidden):
        return json_response(error_body(error.code, error.message), 403)
    headers = {"Retry-After": "1"} if error.status == 503 else None
    return json_response(error_body(error.code, error.message, **error.extra), error.status, headers)


class _ReadOnlyTable:
    """A partition's table as a processor sees it, for reading only: writes go nowhere. Loading a
    processor over it rebuilds the partition's state, half-applied events included, in memory."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def set(self, key: bytes, value: bytes) -> None:
        pass

    def delete(self, key: bytes) -> None:
        pass

    def items(self) -> Any:
        return self._table.items()


# -- the API ---------------------------------------------------------------------------------------


class HttpApi:
    """Registers the views on the ledger's Faust app and observes every processed record."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.app = ledger.app
        self.settings = settings = ledger.settings
        self.secret: bytes | None = settings.jwt_secret or None
        if self.secret is not None and len(self.secret) < MIN_SECRET_BYTES:
            raise SystemExit(f"PERPLEDGER_JWT_SECRET is {len(self.secret)} bytes; HS256 needs {MIN_SECRET_BYTES}")
        if self.secret is None:
            log.warning("PERPLEDGER_JWT_SECRET is not set: every /v1 route answers 503 auth_not_configured")
        self.recent = RecentOutcomes(settings.recent_outcomes, settings.recent_outcomes_per_type)
        self.waiters = Waiters()
        self.flusher = _Coalescer(self._flush)
        # (stage, partition) -> (the processor read from, its user index). The processor is the
        # agent's, or a read-only one loaded from the table while the agent has not needed one yet.
        self._views: dict[tuple[str, int], tuple[PartitionProcessor, UserIndex]] = {}
        ledger.observers.append(self._observe)
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)
        metrics = ledger.metrics
        metrics.add_gauge("perpledger_api_recent_outcomes", "Outcomes held for lookups and duplicate POSTs", (),
                          lambda: [((), float(len(self.recent)))])
        metrics.add_gauge("perpledger_api_waiting", "POST requests waiting for their outcome", (),
                          lambda: [((), float(self.waiters.pending()))])
        self._install_views()

    # -- observing the agents ----------------------------------------------------------------------

    def _observe(self, processed: Processed) -> None:
        processor, applied = processed.processor, processed.applied
        result: tuple[Recorded | None, Recorded | None]
        if applied is not None and applied.outcome is not None and applied.event is not None:
            outcome = applied.outcome
            rec = recorded(processed.stage, outcome, applied.event, processed.topic, processed.partition,
                           processed.offset)
            result = (rec, self.recent.record(rec))
            view = self._views.get((processed.stage, processed.partition))
            if view is not None:
                if view[0] is processor:
                    view[1].update(outcome.writes)
                else:  # a read-only view, superseded by the agent's processor
                    del self._views[(processed.stage, processed.partition)]
        elif applied is not None and applied.error is not None:
            error = applied.error
            result = (dead_lettered(processed.stage, processed.topic, processed.partition, processed.offset,
                                    error.kind, error.message), None)
        else:
            result = (None, None)  # applied before a restart: its outcome went out again from load()
        self.waiters.resolve(processed.topic, processed.partition, processed.offset, result)

    async def _on_partitions_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        for stage, topic in STAGE_TOPICS.items():
            for tp in revoked:
                if tp.topic == topic:
                    self._views.pop((stage, tp.partition), None)
                    self.waiters.fail(topic, tp.partition, ApiError(
                        503, "owner_moved", "the partition moved to another worker before the outcome was known"))

    async def _flush(self) -> None:
        await self.app.producer.flush()

    # -- where keys live ---------------------------------------------------------------------------

    def partition_of(self, key: str) -> int:
        return key_partition(key, self.settings.partitions)

    def _require_ready(self) -> None:
        ready, why = self.ledger.ready()
        if not ready:
            raise ApiError(503, "not_ready", f"the worker is {why}")

    def owner(self, stage: str, partition: int) -> str | None:
        """"local", the URL of the worker that owns (stage, partition), or None if unknown now."""
        if not self.ledger.ready()[0]:
            return None
        table = self.ledger.tables[stage]
        changelog = table.changelog_topic.get_topic_name()
        owner = None
        try:
            distribution = self.app.router.table_metadata(table.name)
        except Exception:
            return None
        for url, topics in distribution.items():
            if partition in topics.get(changelog, ()):
                owner = url
                break
        if owner is None:
            return None
        if URL(str(owner)) == URL(str(self.app.conf.canonical_url)):
            assigned = TP(STAGE_TOPICS[stage], partition) in self.app.consumer.assignment()
            return "local" if assigned else None
        return str(owner)

    def _local_view(self, stage: str, partition: int) -> tuple[PartitionProcessor, UserIndex] | None:
        """What this worker can read of (stage, partition) now; None if it does not own it."""
        if self.owner(stage, partition) != "local":
            return None
        processor = self.ledger.processors[stage].get(partition)
        view = self._views.get((stage, partition))
        if processor is None:
            if view is not None:
                return view  # the read-only processor loaded earlier: nothing was applied since
            processor = self._read_only_processor(stage, partition)
        elif view is not None and view[0] is processor:
            return view
        started = time.perf_counter()
        assert processor.engine is not None
        index = UserIndex.build(stage, (record for record, _ in processor.engine.store.items()))
        log.info("user index built", extra={"stage": stage, "partition": partition, "users": len(index),
                                            "seconds": round(time.perf_counter() - started, 3)})
        view = self._views[(stage, partition)] = (processor, index)
        return view

    def _read_only_processor(self, stage: str, partition: int) -> PartitionProcessor:
        from streams.app.faust_parts import FaustPartitionTable
        from streams.app.worker import STAGES

        engine = next(engine for name, _, engine in STAGES if name == stage)
        table = FaustPartitionTable(self.ledger.tables[stage], partition)
        processor = PartitionProcessor(engine, STAGE_TOPICS[stage], partition, _ReadOnlyTable(table),
                                       self.ledger.codec, self.settings.internal_key, self.settings.dedup_window_us)
        processor.load()
        return processor

    # -- serving -----------------------------------------------------------------------------------

    def _authenticate(self, request: aioweb.Request) -> Claims:
        if self.secret is None:
            raise ApiError(503, "auth_not_configured", "the worker has no PERPLEDGER_JWT_SECRET")
        return authenticate(self.secret, request.headers.get("Authorization"), now_s=time.time())

    async def _serve(self, route: str, request: aioweb.Request,
                     handler: Callable[..., Awaitable[aioweb.StreamResponse]], kwargs: dict[str, str]
                     ) -> aioweb.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request, **kwargs)
        except (ApiError, AuthError, Forbidden) as error:
            response = error_response(error)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("request failed", extra={"route": route, "method": request.method})
            response = json_response(error_body("internal_error", "the request failed; see the worker's log"), 500)
        self.ledger.metrics.observe_http(route, request.method, response.status, time.perf_counter() - started)
        return response

    async def _forward(self, request: aioweb.Request, owner: str, body: bytes | None = None) -> aioweb.Response:
        """The owner's answer to the same request (method, path, query, token, body)."""
        if request.headers.get(FORWARDED):
            raise ApiError(503, "owner_moved", "the key's owner changed while the request was routed; retry")
        headers = {FORWARDED: str(self.app.conf.canonical_url)}
        for name in ("Authorization", "Content-Type"):
            if name in request.headers:
                headers[name] = request.headers[name]
        target = URL(owner).join(request.rel_url)
        timeout = aiohttp.ClientTimeout(total=self.settings.api_timeout_s + 5.0)
        try:
            async with self.app.http_client.request(request.method, target, headers=headers, data=body,
                                                    timeout=timeout) as answer:
                payload = await answer.read()
                passed = {name: answer.headers[name] for name in _PASSED_BACK if name in answer.headers}
                return aioweb.Response(body=payload, status=answer.status, headers=passed)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("forward failed", extra={"owner": owner, "path": request.path, "error": repr(error)})
            raise ApiError(503, "owner_unreachable", "the worker that owns this key did not answer; retry") from None

    # GET /healthz, /readyz, /metrics -------------------------------------------------------------

    async def healthz(self, request: aioweb.Request) -> aioweb.Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: aioweb.Request) -> aioweb.Response:
        ready, why = self.ledger.ready()
        return json_response({"ready": ready, "state": why}, 200 if ready else 503)

    async def metrics(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(body=self.ledger.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    # POST /v1/events ------------------------------------------------------------------------------

    async def post_event(self, request: aioweb.Request) -> aioweb.Response:
        claims = self._authenticate(request)
        try:
            body = await request.read()
        except aioweb.HTTPRequestEntityTooLarge:
            raise ApiError(413, "body_too_large", f"an event is at most {self.settings.api_max_body_bytes} bytes") \
                from None
        event = parse_event(body)
        authorize_submit(claims, event)
        topic, key = input_topic_and_key(event)
        try:
            value = self.ledger.codec.encode(event)
        except EncodeError as error:
            raise ApiError(400, "invalid_event", str(error)) from None
        stage = ACCOUNT if topic == ACCOUNT_EVENTS else MARKET
        partition = self.partition_of(key)
        self._require_ready()
        owner = self.owner(stage, partition)
        if owner is None:
            raise ApiError(503, "owner_unknown", "no worker owns this key right now (rebalancing); retry")
        if owner != "local":
            return await self._forward(request, owner, body)

        timeout_s = self.settings.api_timeout_s
        deadline = time.monotonic() + timeout_s
        ticket = self.waiters.expect(topic, partition)
        offset = None
        try:
            try:
                sent = await self.ledger.output_topics[topic].send(key=key.encode(), value=value, partition=partition)
                metadata = await asyncio.wait_for(sent, timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                raise
            except Exception as error:
                log.warning("produce failed", extra={"topic": topic, "partition": partition, "error": repr(error)})
                raise ApiError(503, "kafka_unavailable", "the event could not be written to Kafka; send it again") \
                    from None
            offset = metadata.offset
            ticket.sent(offset)
            try:
                rec, original = await ticket.wait(max(0.0, deadline - time.monotonic()))
                await asyncio.wait_for(self.flusher.run(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise ApiError(504, "timeout", "the event was accepted by Kafka but its outcome did not come in "
                               "time; ask GET /v1/events/{event_id}", topic=topic, partition=partition,
                               offset=offset) from None
        except TimeoutError:
            raise ApiError(504, "timeout", "Kafka did not acknowledge the event in time; send it again") from None
        finally:
            ticket.close()
        if rec is None:
            raise ApiError(504, "outcome_unknown", "the event's record was consumed but its outcome is not known "
                           "here; ask GET /v1/events/{event_id}", topic=topic, partition=partition, offset=offset)
        return json_response(to_json(rec, original=original), status_of(rec))

    # GET /v1/events/{event_id} --------------------------------------------------------------------

    async def get_event(self, request: aioweb.Request, event_id: str) -> aioweb.Response:
        claims = self._authenticate(request)
        if not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
            raise ApiError(400, "invalid_event_id", f"an event id has 1 to {MAX_EVENT_ID_CHARS} characters")
        user, market = request.query.get("user"), request.query.get("market")
        if (user is None) == (market is None):
            raise ApiError(400, "missing_key", "give the event's key: ?user={user} (account stage) or "
                           "?market={market} (market stage)")
        if user is not None:
            stage, key = ACCOUNT, check_id(user, "user")
        else:
            stage, key = MARKET, check_id(market or "", "market")
        origin = request.query.get("origin", "")
        if origin:
            check_id(origin, "origin")
        if claims.role == USER and stage == ACCOUNT and key != claims.subject:
            raise Forbidden("not_owner", "a user token reads only its own data")
        self._require_ready()
        partition = self.partition_of(key)
        owner = self.owner(stage, partition)
        if owner is None:
            raise ApiError(503, "owner_unknown", "no worker owns this key right now (rebalancing); retry")
        if owner != "local":
            return await self._forward(request, owner)
        rec = self.recent.get(stage, key, origin, event_id)
        if rec is not None and may_read(claims, rec):
            return json_response(to_json(rec))
        if rec is None:
            view = self._local_view(stage, partition)
            seen = view is not None and view[0].engine is not None and \
                view[0].engine.store.get((key, DEDUP, origin, event_id)) is not None
            if seen:
                known = Recorded("applied" if not origin else "processed", stage, key, origin, event_id, None, None,
                                 "", None, (), (), STAGE_TOPICS[stage], partition, -1,
                                 key if stage == ACCOUNT else None)
                if may_read(claims, known):
                    body = to_json(known)
                    body["input"] = None
                    body["detail"] = ("processed earlier; its outcome is no longer held in memory (its journal "
                                      "batch or refusal is on the ledger's output topics)")
                    return json_response(body)
        raise ApiError(404, "unknown_event", "no such event under this key (or not one this token may read)")

    # GET /v1/users/{user}/balances|positions ------------------------------------------------------

    async def get_balances(self, request: aioweb.Request, user: str) -> aioweb.Response:
        return await self._user_read(request, user, "balances")

    async def get_positions(self, request: aioweb.Request, user: str) -> aioweb.Response:
        return await self._user_read(request, user, "positions")

    async def _user_read(self, request: aioweb.Request, user: str, what: str) -> aioweb.Response:
        claims = self._authenticate(request)
        check_id(user, "user")
        authorize_read(claims, user)
        self._require_ready()
        wanted = [(ACCOUNT, self.partition_of(user))] + [(MARKET, p) for p in range(self.settings.partitions)]
        local, remote, missing = [], {}, []
        for stage, partition in wanted:
            owner = self.owner(stage, partition)
            if owner == "local":
                local.append((stage, partition))
            elif owner is None:
                missing.append((stage, partition))
            else:
                remote.setdefault(owner, []).append((stage, partition))
        parts = [part for part in (self._read_part(s, p, user) for s, p in local) if part is not None]
        missing += [(s, p) for s, p in local if not any(x["stage"] == s and x["partition"] == p for x in parts)]
        answers = await asyncio.gather(*(self._ask(request, owner, user, asked) for owner, asked in remote.items()))
        for (got, lost) in answers:
            parts += got
            missing += lost
        parts.sort(key=lambda x: (x["stage"], x["partition"]))
        complete = not missing
        known = any(part["known"] for part in parts)
        if not known:
            if complete:
                raise ApiError(404, "unknown_user", "the ledger has no account of this user")
            raise ApiError(503, "incomplete", "some partitions could not be read and none of the others knows "
                           "this user; retry", missing=[{"stage": s, "partition": p} for s, p in sorted(missing)])
        rows = [row for part in parts for row in part[what]]
        return json_response({
            "user": user, "complete": complete,
            "missing": [{"stage": s, "partition": p} for s, p in sorted(missing)],
            what: rows,
            "as_of": [{"stage": x["stage"], "partition": x["partition"], "offset": x["offset"]} for x in parts],
        })

    def _read_part(self, stage: str, partition: int, user: str) -> dict[str, Any] | None:
        view = self._local_view(stage, partition)
        if view is None:
            return None
        processor, index = view
        store = processor.engine.store  # type: ignore[union-attr]
        return {
            "stage": stage, "partition": partition, "offset": processor.applied_through,
            "known": index.knows(user),
            "balances": readmodel.balances(stage, store, index, user),
            "positions": readmodel.positions(store, index, user) if stage == MARKET else [],
        }

    async def _ask(self, request: aioweb.Request, owner: str, user: str, asked: list[tuple[str, int]]
                   ) -> tuple[list[dict[str, Any]], list[tuple[str, int]]]:
        """Another worker's parts of a user: (parts read, parts it could not read)."""
        url = URL(owner).with_path(f"/v1/internal/users/{user}/state").with_query(
            parts=",".join(f"{s}:{p}" for s, p in asked))
        headers = {FORWARDED: str(self.app.conf.canonical_url),
                   "Authorization": request.headers.get("Authorization", "")}
        try:
            async with self.app.http_client.get(
                    url, headers=headers, timeout=aiohttp.ClientTimeout(total=self.settings.api_timeout_s)) as answer:
                if answer.status != 200:
                    log.warning("part read failed", extra={"owner": owner, "status": answer.status})
                    return [], asked
                body = await answer.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.warning("part read failed", extra={"owner": owner, "error": repr(error)})
            return [], asked
        got = body.get("parts", [])
        lost = [(m["stage"], m["partition"]) for m in body.get("missing", [])]
        return got, lost

    # GET /v1/internal/users/{user}/state?parts=... -----------------------------------------------

    async def get_state(self, request: aioweb.Request, user: str) -> aioweb.Response:
        """This worker's parts of a user (for another worker's balances or positions read)."""
        claims = self._authenticate(request)
        check_id(user, "user")
        authorize_read(claims, user)
        self._require_ready()
        parts, missing = [], []
        for stage, partition in parse_parts(request.query.get("parts", ""), self.settings.partitions):
            part = self._read_part(stage, partition, user)
            if part is None:
                missing.append({"stage": stage, "partition": partition})
            else:
                parts.append(part)
        return json_response({"parts": parts, "missing": missing})

    # -- registration -------------------------------------------------------------------------------

    def _install_views(self) -> None:
        routes: list[tuple[str, str, dict[str, Callable[..., Awaitable[aioweb.StreamResponse]]]]] = [
            ("/healthz", "healthz", {"get": self.healthz}),
            ("/readyz", "readyz", {"get": self.readyz}),
            ("/metrics", "metrics", {"get": self.metrics}),
            ("/v1/events", "events", {"post": self.post_event}),
            ("/v1/events/{event_id}", "event", {"get": self.get_event}),
            ("/v1/users/{user}/balances", "balances", {"get": self.get_balances}),
            ("/v1/users/{user}/positions", "positions", {"get": self.get_positions}),
            ("/v1/internal/users/{user}/state", "state", {"get": self.get_state}),
        ]
        for path, route, handlers in routes:
            self.app.page(path, name=f"perpledger-{route}")(self._view(route, handlers))
        self.app.web.web_app.middlewares.append(_json_errors)

    def _view(self, route: str, handlers: dict[str, Callable[..., Awaitable[aioweb.StreamResponse]]]
              ) -> type[View]:
        api = self
        methods: dict[str, Any] = {}
        for method, handler in handlers.items():
            async def serve(view: View, request: aioweb.Request, _handler: Any = handler,
                            **kwargs: str) -> aioweb.StreamResponse:
                return await api._serve(route, request, _handler, kwargs)

            methods[method] = serve
        return type(f"PerpLedger{route.title()}View", (View,), methods)


@aioweb.middleware
async def _json_errors(request: aioweb.Request, handler: Any) -> aioweb.StreamResponse:
    """Unknown routes and methods answer in the API's error format too; nothing escapes as a 500 page."""
    try:
        return await handler(request)
    except aioweb.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(error.status, "http_error")
        return json_response(error_body(code, error.reason), error.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("request failed", extra={"path": request.path, "method": request.method})
        return json_response(error_body("internal_error", "the request failed; see the worker's log"), 500)
