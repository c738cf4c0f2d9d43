"""The HTTP API's pure parts: body parsing, parameters, error responses. No services."""

from __future__ import annotations

import json

import pytest

from streams.api.auth import AuthError, Forbidden
from streams.api.http import (
    ApiError,
    check_id,
    error_response,
    parse_event,
    parse_parts,
    status_of,
)
from streams.api.outcomes import APPLIED, DEAD_LETTER, DUPLICATE, REJECTED, Recorded


@pytest.mark.parametrize("body", [
    b"", b"{junk", b"\xff\xfe", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1, "a": 2}', b"[" * 100_000,
    b'{"n": ' + b"9" * 5_000 + b"}",
])
def test_malformed_bodies_are_400_malformed_json(body: bytes) -> None:
    with pytest.raises(ApiError) as error:
        parse_event(body)
    assert (error.value.status, error.value.code) == (400, "malformed_json")


@pytest.mark.parametrize("body", [b"[]", b"1", b'"event"', b"null", b'[{"type": "X"}]'])
def test_a_body_must_be_one_object(body: bytes) -> None:
    with pytest.raises(ApiError) as error:
        parse_event(body)
    assert (error.value.status, error.value.code) == (400, "not_an_object")


def test_an_event_object_parses_with_exact_integers() -> None:
    event = parse_event(json.dumps({"type": "DepositConfirmed", "amount": 10**30}).encode())
    assert event == {"type": "DepositConfirmed", "amount": 10**30}


def test_parts() -> None:
    assert parse_parts("account:1,market:0,market:2", 3) == [("account", 1), ("market", 0), ("market", 2)]
    too_many = ",".join(["market:0"] * 7)
    for junk in ("", "account", "account:3", "ledger:0", "market:-1", "market:x", "market:0,", too_many):
        with pytest.raises(ApiError):
            parse_parts(junk, 3)


def test_ids() -> None:
    assert check_id("alice-1.b_c", "user") == "alice-1.b_c"
    for junk in ("", "a b", "a:b", "x" * 129, "ä"):
        with pytest.raises(ApiError) as error:
            check_id(junk, "user")
        assert error.value.code == "invalid_user"


def _rec(status: str) -> Recorded:
    return Recorded(status, "account", "alice", "", "e", "DepositConfirmed", None, "", None, (), (), "t", 0, 0, None)


def test_status_of_outcomes() -> None:
    assert [status_of(_rec(s)) for s in (APPLIED, DUPLICATE, REJECTED, DEAD_LETTER)] == [200, 200, 422, 422]


def test_error_responses() -> None:
    unauthenticated = error_response(AuthError("bad_signature", "signature does not match"))
    assert unauthenticated.status == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(unauthenticated.body)["error"]["code"] == "bad_signature"
    forbidden = error_response(Forbidden("not_owner", "no"))
    assert forbidden.status == 403 and json.loads(forbidden.body) == {"error": {"code": "not_owner", "message": "no"}}
    busy = error_response(ApiError(503, "not_ready", "recovering", missing=[1]))
    assert busy.status == 503 and busy.headers["Retry-After"] == "1"
    assert json.loads(busy.body)["error"] == {"code": "not_ready", "message": "recovering", "missing": [1]}
    assert busy.content_type == "application/json"
