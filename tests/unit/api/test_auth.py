"""API authentication (HS256 JWT) and authorization rules, and `perpledger token`. No services."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from streams.api.auth import (
    ADMIN,
    IAT_LEEWAY_S,
    INTERNAL_EVENT_TYPES,
    MAX_TOKEN_CHARS,
    PRODUCER,
    READ_RULES,
    ROLES,
    SECRET_ENV,
    SUBMIT_RULES,
    USER,
    AuthError,
    Claims,
    Forbidden,
    authenticate,
    authorize_read,
    authorize_submit,
    bearer_token,
    mint_token,
    secret_from_env,
    verify_token,
)
from streams.cli import main
from streams.core.events import INTERNAL_TYPES, SPECS

SECRET = b"k" * 32
OTHER_SECRET = b"q" * 32
NOW = 1_700_000_000


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def hand_token(header: Any, payload: Any, secret: bytes = SECRET, *, raw: bool = False) -> str:
    """A token built independently of the module: JSON (or raw bytes), base64url, HMAC-SHA256."""
    def part(value: Any) -> str:
        return b64(value if raw and isinstance(value, bytes) else json.dumps(value).encode())

    signing_input = f"{part(header)}.{part(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


HS256 = {"alg": "HS256", "typ": "JWT"}


def payload(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "alice", "role": "user", "iat": NOW, "exp": NOW + 3600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def auth_code(token: str, *, now_s: float = NOW, secret: bytes = SECRET) -> str:
    with pytest.raises(AuthError) as caught:
        verify_token(secret, token, now_s=now_s)
    assert caught.value.status == 401
    return caught.value.code


# --- tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLES))
def test_round_trip_gives_back_subject_role_and_times(role: str) -> None:
    token = mint_token(SECRET, "alice.b-1_2", role, now_s=NOW, ttl_s=60)
    assert verify_token(SECRET, token, now_s=NOW + 59) == Claims("alice.b-1_2", role, NOW + 60, NOW)


def test_mint_accepts_a_float_clock_as_whole_seconds() -> None:
    token = mint_token(SECRET, "alice", USER, now_s=NOW + 0.9, ttl_s=10)
    assert verify_token(SECRET, token, now_s=NOW + 0.9).issued_at_s == NOW


def test_mint_output_equals_a_token_computed_by_hand_with_hmac() -> None:
    header = b'{"alg":"HS256","typ":"JWT"}'
    body = b'{"sub":"alice","role":"user","iat":1700000000,"exp":1700003600}'
    signing_input = f"{b64(header)}.{b64(body)}"
    expected = f"{signing_input}.{b64(hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest())}"
    assert mint_token(SECRET, "alice", USER, now_s=1_700_000_000, ttl_s=3600) == expected


def test_verify_accepts_a_token_serialized_differently_by_another_issuer() -> None:
    # Key order and whitespace are the issuer's business; only the signed bytes matter.
    header = b'{ "typ" : "JWT", "alg" : "HS256" }'
    body = b'{\n "exp": 1700003600,\n "iat": 1700000000,\n "role": "admin",\n "sub": "ops", "jti": "x"}'
    token = hand_token(header, body, raw=True)
    assert verify_token(SECRET, token, now_s=NOW) == Claims("ops", ADMIN, NOW + 3600, NOW)


def test_rfc7515_appendix_a1_vector_passes_the_signature_check() -> None:
    # RFC 7515 A.1, verbatim: its signature is right, so verification gets past the signature and
    # stops at the claims (the example has no sub or role). A wrong HMAC would say bad_signature.
    key = base64.urlsafe_b64decode(
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow==")
    token = (
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    )
    assert auth_code(token, secret=key, now_s=1_300_000_000) == "invalid_claims"
    assert auth_code(token[:-1] + "A", secret=key, now_s=1_300_000_000) == "bad_signature"


def test_token_signed_with_another_secret_is_bad_signature() -> None:
    assert auth_code(mint_token(OTHER_SECRET, "alice", USER, now_s=NOW, ttl_s=60)) == "bad_signature"


def test_tampered_payload_is_bad_signature() -> None:
    header, _, signature = mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60).split(".")
    forged = b64(json.dumps(payload(role="admin")).encode())
    assert auth_code(f"{header}.{forged}.{signature}") == "bad_signature"


def test_tampered_signature_is_bad_signature() -> None:
    header, body, signature = mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60).split(".")
    flipped = bytearray(base64.urlsafe_b64decode(signature + "="))
    flipped[0] ^= 1
    assert auth_code(f"{header}.{body}.{b64(bytes(flipped))}") == "bad_signature"
    assert auth_code(f"{header}.{body}.{b64(bytes(flipped[:16]))}") == "bad_signature"  # truncated


@pytest.mark.parametrize("header", [
    {"alg": "none", "typ": "JWT"},
    {"alg": "None", "typ": "JWT"},
    {"alg": "HS512", "typ": "JWT"},
    {"alg": "HS384", "typ": "JWT"},
    {"alg": "RS256", "typ": "JWT"},
    {"alg": "hs256", "typ": "JWT"},
    {"typ": "JWT"},
    {"alg": ["HS256"], "typ": "JWT"},
    {"alg": "HS256", "typ": "JWT", "crit": ["exp"]},
], ids=repr)
def test_header_with_another_algorithm_is_unsupported_algorithm(header: dict) -> None:
    # Signed with the real secret: the algorithm alone is what gets them refused.
    assert auth_code(hand_token(header, payload())) == "unsupported_algorithm"


def test_unsigned_alg_none_token_is_unsupported_algorithm() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    assert auth_code(f"{header}.{b64(json.dumps(payload(role='admin')).encode())}.") == "unsupported_algorithm"


@pytest.mark.parametrize("header", [{"alg": "HS256"}, {"alg": "HS256", "typ": "JWS"}, {"alg": "HS256", "typ": None}])
def test_header_typ_other_than_jwt_is_malformed(header: dict) -> None:
    assert auth_code(hand_token(header, payload())) == "malformed_token"


def test_expired_token_is_token_expired_at_exactly_exp() -> None:
    token = mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60)
    assert verify_token(SECRET, token, now_s=NOW + 59).subject == "alice"
    assert auth_code(token, now_s=NOW + 60) == "token_expired"
    assert auth_code(token, now_s=NOW + 10**6) == "token_expired"


def test_iat_in_the_future_beyond_the_leeway_is_invalid_claims() -> None:
    inside = hand_token(HS256, payload(iat=NOW + IAT_LEEWAY_S, exp=NOW + 3600))
    assert verify_token(SECRET, inside, now_s=NOW).issued_at_s == NOW + IAT_LEEWAY_S
    beyond = hand_token(HS256, payload(iat=NOW + IAT_LEEWAY_S + 1, exp=NOW + 3600))
    assert auth_code(beyond) == "invalid_claims"


def test_nbf_in_the_future_is_invalid_claims() -> None:
    assert auth_code(hand_token(HS256, payload(nbf=NOW + IAT_LEEWAY_S + 1))) == "invalid_claims"
    assert verify_token(SECRET, hand_token(HS256, payload(nbf=NOW)), now_s=NOW).subject == "alice"


def test_empty_token_is_missing_token() -> None:
    assert auth_code("") == "missing_token"


@pytest.mark.parametrize("token", ["abc", "a.b", "a.b.c.d", "a..b.c", "..", "..."], ids=repr)
def test_wrong_segment_count_or_empty_segments_is_malformed(token: str) -> None:
    assert auth_code(token) == "malformed_token"


def test_five_segment_jwe_shaped_token_is_malformed() -> None:
    assert auth_code(mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60) + ".x.y") == "malformed_token"


@pytest.mark.parametrize("mangle", [
    lambda h, p, s: f"{h}=.{p}.{s}",  # padding
    lambda h, p, s: f"{h}.{p}==.{s}",
    lambda h, p, s: f"{h}.{p}.{s}=",
    lambda h, p, s: f"{h[:-1]}+.{p}.{s}",  # standard, not url-safe, alphabet
    lambda h, p, s: f"{h}.{p[:-1]}/.{s}",
    lambda h, p, s: f"{h}.{p}.{s} ",
    lambda h, p, s: f"{h}.{p}.{s}AA",  # 45 characters: length 1 mod 4
    lambda h, p, s: f"{h}.{p}.{s}é",
], ids=["pad-header", "pad-payload", "pad-signature", "plus", "slash", "space", "len-1-mod-4", "non-ascii"])
def test_garbage_base64_is_malformed(mangle: Any) -> None:
    h, p, s = mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60).split(".")
    assert auth_code(mangle(h, p, s)) == "malformed_token"


def test_non_canonical_base64_spare_bits_is_malformed() -> None:
    # 'Q' and 'R' decode to the same byte when the last character carries spare bits: two
    # spellings of one signature would make tokens malleable.
    h, p, s = mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60).split(".")
    assert len(s) % 4 == 3  # 32 bytes -> 43 chars, the last carries 2 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(s[-1]) ^ 1]
    assert base64.urlsafe_b64decode(s[:-1] + twin + "=") == base64.urlsafe_b64decode(s + "=")
    assert auth_code(f"{h}.{p}.{s[:-1]}{twin}") == "malformed_token"


@pytest.mark.parametrize(("header", "body"), [
    (b"not json", json.dumps(payload()).encode()),
    (json.dumps(HS256).encode(), b"not json"),
    (json.dumps(HS256).encode(), b"[1, 2]"),
    (json.dumps(HS256).encode(), b'"a string"'),
    (b'["HS256"]', json.dumps(payload()).encode()),
    (json.dumps(HS256).encode(), b"\xff\xfe"),  # not UTF-8
    (json.dumps(HS256).encode(), b'{"sub": "alice", "role": "user", "iat": NaN, "exp": Infinity}'),
    # Duplicate keys: which "role" wins would depend on the parser.
    (json.dumps(HS256).encode(), b'{"sub":"alice","role":"user","role":"admin","iat":1700000000,"exp":1700003600}'),
    (b'{"alg":"none","alg":"HS256","typ":"JWT"}', json.dumps(payload()).encode()),
], ids=["header", "payload", "array", "string", "header-array", "not-utf8", "nan", "dup-claim", "dup-alg"])
def test_non_json_or_non_object_parts_are_malformed(header: bytes, body: bytes) -> None:
    assert auth_code(hand_token(header, body, raw=True)) == "malformed_token"


def test_overlong_token_is_malformed_before_any_work() -> None:
    assert auth_code("a" * (MAX_TOKEN_CHARS + 1)) == "malformed_token"


@pytest.mark.parametrize("missing", ["sub", "role", "iat", "exp"])
def test_missing_claim_is_invalid_claims(missing: str) -> None:
    claims = payload()
    del claims[missing]
    assert auth_code(hand_token(HS256, claims)) == "invalid_claims"


@pytest.mark.parametrize("changes", [
    {"exp": "1700003600"},
    {"exp": 1700003600.5},
    {"exp": True},
    {"iat": 1700000000.0},
    {"iat": -1},
    {"iat": NOW + 3600},  # exp not after iat
    {"nbf": "now"},
], ids=repr)
def test_claim_of_the_wrong_type_is_invalid_claims(changes: dict) -> None:
    assert auth_code(hand_token(HS256, payload(**changes))) == "invalid_claims"


@pytest.mark.parametrize("subject", ["", "a b", "a:b", "alice/1", "é", "x" * 129, "alice\n", 7, ["alice"]], ids=repr)
def test_subject_outside_the_id_charset_is_invalid_claims(subject: object) -> None:
    assert auth_code(hand_token(HS256, payload(sub=subject))) == "invalid_claims"


def test_subject_of_128_characters_is_accepted() -> None:
    assert verify_token(SECRET, hand_token(HS256, payload(sub="x" * 128)), now_s=NOW).subject == "x" * 128


@pytest.mark.parametrize("role", ["root", "Admin", "", "user ", None, 1, ["admin"]], ids=repr)
def test_role_outside_the_three_is_invalid_claims(role: object) -> None:
    claims = payload()
    claims["role"] = role
    assert auth_code(hand_token(HS256, claims)) == "invalid_claims"


@pytest.mark.parametrize("secret", [b"", b"k" * 31, "k" * 32])
def test_short_or_non_bytes_secret_is_a_configuration_error(secret: Any) -> None:
    with pytest.raises(ValueError):
        mint_token(secret, "alice", USER, now_s=NOW, ttl_s=60)
    with pytest.raises(ValueError):
        verify_token(secret, mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60), now_s=NOW)


@pytest.mark.parametrize(("subject", "role", "ttl_s"), [
    ("a b", USER, 60), ("alice", "root", 60), ("alice", USER, 0), ("alice", USER, -1), ("alice", USER, True),
])
def test_mint_refuses_bad_arguments(subject: str, role: str, ttl_s: int) -> None:
    with pytest.raises(ValueError):
        mint_token(SECRET, subject, role, now_s=NOW, ttl_s=ttl_s)


# --- bearer header ----------------------------------------------------------------------------


def test_bearer_token_parses_the_header_case_insensitively() -> None:
    token = mint_token(SECRET, "alice", USER, now_s=NOW, ttl_s=60)
    assert bearer_token(f"Bearer {token}") == token
    assert bearer_token(f"bearer  {token} ") == token
    assert authenticate(SECRET, f"Bearer {token}", now_s=NOW).subject == "alice"


@pytest.mark.parametrize(("header", "code"), [
    (None, "missing_token"),
    ("", "missing_token"),
    ("   ", "missing_token"),
    ("Bearer", "missing_token"),
    ("Bearer   ", "missing_token"),
    ("Basic YWxpY2U6cHc=", "malformed_token"),
    ("Token abc.def.ghi", "malformed_token"),
    ("Bearer abc def", "malformed_token"),
    ("Bearer abc\tdef", "malformed_token"),
    ("Bearer a,b", "malformed_token"),
    ("Bearerabc.def.ghi", "malformed_token"),
])
def test_bearer_token_refuses_missing_and_malformed_headers(header: str | None, code: str) -> None:
    with pytest.raises(AuthError) as caught:
        bearer_token(header)
    assert caught.value.code == code


def test_auth_error_names_the_www_authenticate_challenge() -> None:
    assert 'error="invalid_token"' not in AuthError("missing_token", "x").www_authenticate
    assert AuthError("token_expired", "x").www_authenticate == 'Bearer realm="perpledger", error="invalid_token"'


# --- authorization ----------------------------------------------------------------------------

ALICE = Claims("alice", USER, NOW + 60, NOW)
CUSTODY = Claims("custody", PRODUCER, NOW + 60, NOW)
OPS = Claims("ops", ADMIN, NOW + 60, NOW)
BY_ROLE = {USER: ALICE, PRODUCER: CUSTODY, ADMIN: OPS}

USER_REQUESTS = {
    "WithdrawalRequested": "user",
    "TransferRequested": "from_user",
    "MarginTransferRequested": "user",
    "MarginWithdrawRequested": "user",
}
FACTS = {
    "DepositInitiated", "DepositConfirmed", "WithdrawalConfirmed", "WithdrawalRejected", "MarkPriceUpdate",
    "TradeFill", "FundingRateSnapshot", "FundingEpochSettle", "LiquidationFill", "LiquidationCompleted",
}
ADMIN_EVENTS = {"MarketListed", "RiskParamUpdate", "InsuranceFunded"}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    """An event with every field of its type set to "alice" (so user fields name alice), then `fields`."""
    spec = SPECS.get(type_)
    base: dict[str, Any] = {"type": type_, "event_id": "e1", "source": "api", "ts_us": 1}
    base.update({name: "alice" for name in (spec.field_names if spec else ())})
    base.update(fields)
    return base


def forbidden_code(claims: Claims, evt: Any) -> str:
    with pytest.raises(Forbidden) as caught:
        authorize_submit(claims, evt)
    assert caught.value.status == 403
    return caught.value.code


def test_rule_table_covers_every_ledger_event_type_exactly_once() -> None:
    assert set(SUBMIT_RULES) == set(USER_REQUESTS) | FACTS | ADMIN_EVENTS
    assert set(SUBMIT_RULES) | INTERNAL_EVENT_TYPES == set(SPECS)
    assert INTERNAL_EVENT_TYPES == INTERNAL_TYPES == {"TransferCredited", "MarginReturned", "MarginCredited"}
    assert not set(SUBMIT_RULES) & INTERNAL_EVENT_TYPES


@pytest.mark.parametrize(("type_", "field"), sorted(USER_REQUESTS.items()))
def test_user_submits_its_own_request(type_: str, field: str) -> None:
    authorize_submit(ALICE, event(type_, **{field: "alice"}))


@pytest.mark.parametrize(("type_", "field"), sorted(USER_REQUESTS.items()))
def test_user_submitting_another_users_request_is_not_owner(type_: str, field: str) -> None:
    assert forbidden_code(ALICE, event(type_, **{field: "bob"})) == "not_owner"
    assert forbidden_code(ALICE, event(type_, **{field: "Alice"})) == "not_owner"
    missing = event(type_)
    del missing[field]
    assert forbidden_code(ALICE, missing) == "not_owner"


def test_user_may_transfer_to_another_user() -> None:
    authorize_submit(ALICE, event("TransferRequested", from_user="alice", to_user="bob"))
    assert forbidden_code(ALICE, event("TransferRequested", from_user="bob", to_user="alice")) == "not_owner"


@pytest.mark.parametrize("type_", sorted(FACTS | ADMIN_EVENTS))
def test_user_may_not_submit_facts_or_admin_events_even_about_itself(type_: str) -> None:
    assert forbidden_code(ALICE, event(type_)) == "type_not_allowed"


@pytest.mark.parametrize("type_", sorted(FACTS))
def test_producer_submits_facts_about_anyone(type_: str) -> None:
    authorize_submit(CUSTODY, event(type_, user="bob"))


@pytest.mark.parametrize("type_", sorted(set(USER_REQUESTS) | ADMIN_EVENTS))
def test_producer_may_not_submit_user_requests_or_admin_events(type_: str) -> None:
    assert forbidden_code(CUSTODY, event(type_)) == "type_not_allowed"


@pytest.mark.parametrize("type_", sorted(ADMIN_EVENTS))
def test_admin_submits_admin_events(type_: str) -> None:
    authorize_submit(OPS, event(type_))


@pytest.mark.parametrize("type_", sorted(set(USER_REQUESTS) | FACTS))
def test_admin_may_not_submit_user_requests_or_facts(type_: str) -> None:
    assert forbidden_code(OPS, event(type_)) == "type_not_allowed"


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("type_", sorted(INTERNAL_EVENT_TYPES))
def test_internal_events_are_refused_to_every_role(type_: str, role: str) -> None:
    assert forbidden_code(BY_ROLE[role], event(type_)) == "internal_event"


@pytest.mark.parametrize("type_", ["Nope", "", 7, None, ["TradeFill"], {"a": 1}], ids=repr)
def test_unknown_types_pass_for_producer_and_admin_and_are_refused_to_users(type_: Any) -> None:
    # The ledger rejects unknown types (INVALID_EVENT); a user token carries only its own requests.
    authorize_submit(CUSTODY, {"type": type_})
    authorize_submit(OPS, {"type": type_})
    assert forbidden_code(ALICE, {"type": type_}) == "type_not_allowed"


def test_event_without_a_type_or_not_an_object_is_left_to_the_ledger_except_for_users() -> None:
    for junk in ({}, [], "TradeFill", None):
        authorize_submit(CUSTODY, junk)  # type: ignore[arg-type]
        assert forbidden_code(ALICE, junk) == "type_not_allowed"


def test_a_ledger_type_missing_from_the_table_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.api.auth as auth

    monkeypatch.setattr(auth, "SUBMIT_RULES", {k: v for k, v in SUBMIT_RULES.items() if k != "TradeFill"})
    for claims in BY_ROLE.values():
        assert forbidden_code(claims, event("TradeFill")) == "type_not_allowed"


def test_rule_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        SUBMIT_RULES["TransferCredited"] = {USER: None}  # type: ignore[index]
    with pytest.raises(TypeError):
        SUBMIT_RULES["TradeFill"][USER] = None  # type: ignore[index]
    with pytest.raises(TypeError):
        READ_RULES[PRODUCER] = False  # type: ignore[index]


def test_user_reads_its_own_data() -> None:
    authorize_read(ALICE, "alice")


@pytest.mark.parametrize("other", ["bob", "Alice", "alice ", ""])
def test_user_reading_another_users_data_is_not_owner(other: str) -> None:
    with pytest.raises(Forbidden) as caught:
        authorize_read(ALICE, other)
    assert (caught.value.code, caught.value.status) == ("not_owner", 403)


@pytest.mark.parametrize("user", ["alice", "bob", "custody"])
def test_admin_reads_anyone(user: str) -> None:
    authorize_read(OPS, user)


@pytest.mark.parametrize("user", ["custody", "alice"])
def test_producer_reads_nothing_not_even_its_own_subject(user: str) -> None:
    with pytest.raises(Forbidden) as caught:
        authorize_read(CUSTODY, user)
    assert caught.value.code == "read_not_allowed"


# --- secret and CLI ---------------------------------------------------------------------------


def test_secret_from_env_requires_32_bytes() -> None:
    assert secret_from_env({SECRET_ENV: "s" * 32}) == b"s" * 32
    assert secret_from_env({SECRET_ENV: "é" * 16}) == "é".encode() * 16  # bytes, not characters
    for environ in ({}, {SECRET_ENV: ""}, {SECRET_ENV: "s" * 31}, {SECRET_ENV: "é" * 15}):
        with pytest.raises(ValueError, match=SECRET_ENV):
            secret_from_env(environ)


@pytest.mark.parametrize("role", sorted(ROLES))
def test_cli_token_prints_a_token_that_verifies(
    role: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(SECRET_ENV, "s" * 40)
    monkeypatch.setattr("time.time", lambda: NOW + 0.5)
    assert main(["token", "--role", role, "--subject", "alice", "--ttl-s", "120"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert verify_token(b"s" * 40, out.strip(), now_s=NOW) == Claims("alice", role, NOW + 120, NOW)


def test_cli_token_default_ttl_is_an_hour(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(SECRET_ENV, "s" * 32)
    monkeypatch.setattr("time.time", lambda: NOW)
    assert main(["token", "--role", "producer", "--subject", "custody"]) == 0
    assert verify_token(b"s" * 32, capsys.readouterr().out.strip(), now_s=NOW).expires_at_s == NOW + 3600


@pytest.mark.parametrize("value", [None, "", "s" * 31])
def test_cli_token_refuses_a_missing_or_short_secret(
    value: str | None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    if value is None:
        monkeypatch.delenv(SECRET_ENV, raising=False)
    else:
        monkeypatch.setenv(SECRET_ENV, value)
    assert main(["token", "--role", "user", "--subject", "alice"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert SECRET_ENV in err and "32" in err


@pytest.mark.parametrize("args", [["--subject", "a b"], ["--ttl-s", "0"], ["--ttl-s", "-5"]])
def test_cli_token_refuses_bad_subject_or_ttl(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(SECRET_ENV, "s" * 32)
    base = {"--role": "user", "--subject": "alice"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    assert main(["token", *(x for kv in base.items() for x in kv)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("perpledger token: ")


def test_cli_token_refuses_an_unknown_role(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(SECRET_ENV, "s" * 32)
    with pytest.raises(SystemExit) as exited:
        main(["token", "--role", "root", "--subject", "alice"])
    assert exited.value.code == 2
    assert capsys.readouterr().out == ""
