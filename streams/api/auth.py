"""Who may call the HTTP API, and what each caller may submit and read.

Authentication is a JWT (RFC 7519) signed with HMAC-SHA256 (RFC 7515 "HS256"), written here with the
standard library alone: a dozen lines of hmac and base64 do not justify a dependency, and writing
them lets every check be as strict as we want (one algorithm, no "none", canonical base64, no
duplicate JSON keys). Failures raise `AuthError` (HTTP 401); a valid token asking for something its
role may not do raises `Forbidden` (HTTP 403). Both carry a stable `code` for clients and metrics.

The clock is a parameter (`now_s`, the caller passes `time.time()`), so the module reads no clock
and every rule is testable.

Roles (see `SUBMIT_RULES` and `READ_RULES`, the whole policy in two tables):
- `user`: subject is a user id; submits only its own requests, reads only its own data.
- `producer`: a service (custody, matching engine, oracle, funding and liquidation engines);
  submits facts, reads nothing.
- `admin`: operations; submits admin events (listings, risk parameters, insurance), reads anything.
Internal events (the ledger's own messages between its stages) are accepted from no one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from streams.core.events import SPECS

USER: Final = "user"
PRODUCER: Final = "producer"
ADMIN: Final = "admin"
ROLES: Final = frozenset({USER, PRODUCER, ADMIN})

SECRET_ENV: Final = "PERPLEDGER_JWT_SECRET"
# RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
MIN_SECRET_BYTES: Final = 32
# A token issued by a host whose clock runs a little ahead is still accepted.
IAT_LEEWAY_S: Final = 60
# Bounds the work an unauthenticated request can cause (base64, JSON, HMAC); ours are ~200 chars.
MAX_TOKEN_CHARS: Final = 4096

# The project's id charset (ledger-spec, as `streams.core.events` checks producer ids and names).
_SUBJECT = re.compile(r"[A-Za-z0-9._-]{1,128}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# RFC 6750 §2.1 b64token.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")

_HEADER: Final = {"alg": "HS256", "typ": "JWT"}


class AuthError(Exception):
    """The caller is not authenticated (HTTP 401). `code` is stable; `message` is safe to return.

    Codes: missing_token, malformed_token, unsupported_algorithm, bad_signature, token_expired,
    invalid_claims.
    """

    status: Final = 401

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def www_authenticate(self) -> str:
        """The `WWW-Authenticate` value a 401 carries (RFC 6750 §3): no error code when none was sent."""
        if self.code == "missing_token":
            return 'Bearer realm="perpledger"'
        return 'Bearer realm="perpledger", error="invalid_token"'


class Forbidden(Exception):
    """The caller is authenticated but may not do this (HTTP 403).

    Codes: internal_event, type_not_allowed, not_owner, read_not_allowed.
    """

    status: Final = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Claims:
    subject: str
    role: str
    expires_at_s: int
    issued_at_s: int


# --- tokens -----------------------------------------------------------------------------------


def secret_from_env(environ: Mapping[str, str] | None = None) -> bytes:
    """The signing secret from `PERPLEDGER_JWT_SECRET`; ValueError (with a message for people) if unusable."""
    value = (os.environ if environ is None else environ).get(SECRET_ENV)
    if not value:
        raise ValueError(f"{SECRET_ENV} is not set")
    secret = value.encode("utf-8")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"{SECRET_ENV} is {len(secret)} bytes; HS256 needs at least {MIN_SECRET_BYTES}")
    return secret


def mint_token(secret: bytes, subject: str, role: str, *, now_s: float, ttl_s: int) -> str:
    """A signed token for `subject` in `role`, valid from `now_s` for `ttl_s` seconds.

    Bad arguments are the caller's bug, not the client's: they raise ValueError, not AuthError.
    """
    _check_secret(secret)
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise ValueError(f"subject must match {_SUBJECT.pattern}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
        raise ValueError("ttl_s must be a positive integer")
    issued_at = int(now_s)  # time.time() is a float; NumericDates are whole seconds here
    payload = {"sub": subject, "role": role, "iat": issued_at, "exp": issued_at + ttl_s}
    signing_input = f"{_encode_json(_HEADER)}.{_encode_json(payload)}"
    return f"{signing_input}.{_b64encode(_sign(secret, signing_input))}"


def verify_token(secret: bytes, token: str, *, now_s: float) -> Claims:
    """The claims of a token this service signed and that is valid at `now_s`; AuthError otherwise.

    Order: shape (three canonical base64url segments), header (algorithm), signature, then the
    payload's JSON and claims. The payload is parsed only once its signature holds, so of what an
    anonymous client writes only the (bounded) header reaches the JSON parser.
    """
    _check_secret(secret)
    if not isinstance(token, str) or not token:
        raise AuthError("missing_token", "no token")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError("malformed_token", f"token longer than {MAX_TOKEN_CHARS} characters")
    segments = token.split(".")
    if len(segments) != 3:
        raise AuthError("malformed_token", "a token has exactly three dot-separated segments")
    header_b64, payload_b64, signature_b64 = segments

    # Every segment must be base64url before anything else: garbage is malformed, not a bad signature.
    header_raw = _b64decode(header_b64, "header")
    payload_raw = _b64decode(payload_b64, "payload")
    signature = _b64decode(signature_b64, "signature")

    header = _parse_json(header_raw, "header")
    # Only the one algorithm we sign with: "none", HS384/512 or RS256 (alg confusion with a public
    # key used as an HMAC secret) are all refused before any key is used.
    if header.get("alg") != "HS256":
        raise AuthError("unsupported_algorithm", "only HS256 tokens are accepted")
    if header.get("typ") != "JWT":
        raise AuthError("malformed_token", 'header typ must be "JWT"')
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
        raise AuthError("unsupported_algorithm", "critical header extensions are not supported")

    if not hmac.compare_digest(signature, _sign(secret, f"{header_b64}.{payload_b64}")):
        raise AuthError("bad_signature", "signature does not match")

    return _claims(_parse_json(payload_raw, "payload"), now_s)


def bearer_token(authorization_header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1); AuthError otherwise."""
    if authorization_header is None or not authorization_header.strip():
        raise AuthError("missing_token", "no Authorization header")
    scheme, _, rest = authorization_header.strip().partition(" ")
    # Auth scheme names are case-insensitive (RFC 9110 §11.1).
    if scheme.lower() != "bearer":
        raise AuthError("malformed_token", "expected the Bearer scheme")
    token = rest.strip(" ")
    if not token:
        raise AuthError("missing_token", "Bearer without a token")
    if not _B64TOKEN.fullmatch(token):
        raise AuthError("malformed_token", "the bearer token has characters outside b64token")
    return token


def authenticate(secret: bytes, authorization_header: str | None, *, now_s: float) -> Claims:
    """`bearer_token` then `verify_token`: what a request handler calls."""
    return verify_token(secret, bearer_token(authorization_header), now_s=now_s)


def _claims(payload: dict[str, Any], now_s: float) -> Claims:
    subject = payload.get("sub")
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise AuthError("invalid_claims", f"sub must be a string matching {_SUBJECT.pattern}")
    role = payload.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise AuthError("invalid_claims", f"role must be one of {sorted(ROLES)}")
    expires_at = _numeric_date(payload, "exp")
    issued_at = _numeric_date(payload, "iat")
    if expires_at <= issued_at:
        raise AuthError("invalid_claims", "exp must be after iat")
    if expires_at <= now_s:
        raise AuthError("token_expired", "token has expired")
    if issued_at > now_s + IAT_LEEWAY_S:
        raise AuthError("invalid_claims", "iat is in the future")
    # We never mint nbf, but RFC 7519 §4.1.5 says a token must not be accepted before it.
    if "nbf" in payload and _numeric_date(payload, "nbf") > now_s + IAT_LEEWAY_S:
        raise AuthError("invalid_claims", "token is not valid yet (nbf)")
    return Claims(subject=subject, role=role, expires_at_s=expires_at, issued_at_s=issued_at)


def _numeric_date(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    # Whole seconds only: we are the only issuer, and a float or a bool (an int in Python) here
    # means someone else made the token.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AuthError("invalid_claims", f"{name} is required: a non-negative whole number of seconds")
    return value


def _check_secret(secret: bytes) -> None:
    # A short or empty key would let anyone brute-force or guess tokens: a configuration error
    # (ValueError -> 500 and a log line), never something to run with.
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")


def _sign(secret: bytes, signing_input: str) -> bytes:
    return hmac.new(bytes(secret), signing_input.encode("ascii"), hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(segment: str, what: str) -> bytes:
    # base64url without padding (RFC 7515 §2), and only its canonical form: a length of 1 mod 4 or
    # non-zero spare bits would decode "leniently" and make one token have several spellings.
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise AuthError("malformed_token", f"{what} is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as error:
        raise AuthError("malformed_token", f"{what} is not unpadded base64url") from error
    if _b64encode(raw) != segment:
        raise AuthError("malformed_token", f"{what} is not canonical base64url")
    return raw


def _encode_json(value: dict[str, Any]) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = strict_json_loads(raw)
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
        raise AuthError("malformed_token", f"{what} is not a JSON object") from error
    if not isinstance(value, dict):
        raise AuthError("malformed_token", f"{what} is not a JSON object")
    return value


def strict_json_loads(data: bytes) -> Any:
    """JSON with no duplicate keys and no NaN/Infinity: one reading only, whoever parses it.
    Raises ValueError (UnicodeDecodeError included) on anything else."""
    return json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two "role" keys would mean whatever the parser that reads them picks (RFC 7515 §5.2, RFC 8725).
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate key")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# --- authorization ----------------------------------------------------------------------------

ANYONE: Final = None  # no ownership condition: any event of the type

# Event type -> the roles that may submit it -> for a user, the field that must equal the token's
# subject (ANYONE: no condition). Absent role: 403. This table and READ_RULES are the whole policy.
#
# Admins submit admin events only. Not user requests: an operator moving a user's money would be
# indistinguishable from the user doing it, and the journal would say the user asked. Not facts:
# a DepositConfirmed or a TradeFill states that something happened outside the ledger (custody,
# the matching engine); an operator who can assert those can mint money. Separate tokens keep
# each kind of event attributable to the one system that knows it to be true.
SUBMIT_RULES: Final[Mapping[str, Mapping[str, str | None]]] = MappingProxyType({
    type_: MappingProxyType(roles)
    for type_, roles in {
        # A user's own requests.
        "WithdrawalRequested": {USER: "user"},
        "TransferRequested": {USER: "from_user"},  # the sender asks; any recipient
        "MarginTransferRequested": {USER: "user"},
        "MarginWithdrawRequested": {USER: "user"},
        # Facts, from the services that observe them.
        "DepositInitiated": {PRODUCER: ANYONE},
        "DepositConfirmed": {PRODUCER: ANYONE},
        "WithdrawalConfirmed": {PRODUCER: ANYONE},
        "WithdrawalRejected": {PRODUCER: ANYONE},
        "MarkPriceUpdate": {PRODUCER: ANYONE},
        "TradeFill": {PRODUCER: ANYONE},
        "FundingRateSnapshot": {PRODUCER: ANYONE},
        "FundingEpochSettle": {PRODUCER: ANYONE},
        "LiquidationFill": {PRODUCER: ANYONE},
        "LiquidationCompleted": {PRODUCER: ANYONE},
        # Administration.
        "MarketListed": {ADMIN: ANYONE},
        "RiskParamUpdate": {ADMIN: ANYONE},
        "InsuranceFunded": {ADMIN: ANYONE},
    }.items()
})

# The ledger's messages between its stages; a client sending one could credit itself.
INTERNAL_EVENT_TYPES: Final = frozenset({"TransferCredited", "MarginReturned", "MarginCredited"})

# Types the ledger does not know: not an authorization question, the ledger rejects them as
# INVALID_EVENT with a reason the producer can read. Users get 403: a user token is for its own
# requests only, and nothing else should reach the ledger under a user's name.
UNKNOWN_TYPE_ROLES: Final = frozenset({PRODUCER, ADMIN})

# Role -> whose data it may read: True for its own only (subject == user), False for anyone's.
# Absent role: 403. Producers write facts and need no balances back (the outcome of what they
# submit comes in the submit response); a leaked producer token then exposes no one's account.
READ_RULES: Final[Mapping[str, bool]] = MappingProxyType({USER: True, ADMIN: False})


def authorize_submit(claims: Claims, event: dict[str, Any]) -> None:
    """Return if `claims` may submit `event`; Forbidden otherwise. Field validity is the ledger's."""
    event_type = event.get("type") if isinstance(event, dict) else None
    if isinstance(event_type, str) and event_type in INTERNAL_EVENT_TYPES:
        raise Forbidden("internal_event", f"{event_type} is internal to the ledger")
    rules = SUBMIT_RULES.get(event_type) if isinstance(event_type, str) else None
    if rules is None:
        # Fail closed on a type the ledger knows but this table forgot: a new event type must be
        # given a rule before anyone can submit it.
        known = isinstance(event_type, str) and event_type in SPECS
        if known or claims.role not in UNKNOWN_TYPE_ROLES:
            raise Forbidden("type_not_allowed", f"a {claims.role} token may not submit this event type")
        return
    if claims.role not in rules:
        raise Forbidden("type_not_allowed", f"a {claims.role} token may not submit {event_type}")
    owner_field = rules[claims.role]
    if owner_field is not ANYONE and event.get(owner_field) != claims.subject:
        raise Forbidden("not_owner", f"{event_type}.{owner_field} must be the token's subject")


def authorize_read(claims: Claims, user: str) -> None:
    """Return if `claims` may read `user`'s balances and positions; Forbidden otherwise."""
    if claims.role not in READ_RULES:
        raise Forbidden("read_not_allowed", f"a {claims.role} token may not read account data")
    if READ_RULES[claims.role] and user != claims.subject:
        raise Forbidden("not_owner", "a user token reads only its own data")
