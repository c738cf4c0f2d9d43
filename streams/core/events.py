"""Event types, their fields, and the checks that need no state (ledger-spec §4, precedence order).

Each check is its own function because the spec orders them with state checks in between:
envelope -> duplicate -> too old -> ranges -> field rules -> stateless rules -> state rules.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple

from streams.core.model import Reason, Rejected
from streams.core.numbers import LONG_MAX, LONG_MIN, VALUE_LIMIT

ACCOUNT = "account"
MARKET = "market"

# Field kinds. Money-like kinds are decimal(38, 0) on the wire; the rest are Avro long.
ID = "id"  # an id a producer mints: charset-checked
NAME = "name"  # user, asset, market, source: charset-checked
TEXT = "text"  # free text, or an id the ledger minted and checks by lookup
POSITIVE = "positive"  # amount, price, quantity: > 0
SIGNED = "signed"  # fees: any sign
LONG = "long"  # ppm, ppb
DECIMALS = "decimals"  # 0..18
SEQ = "seq"  # below 1 is OUT_OF_ORDER
EPOCH = "epoch"  # below 1 is EPOCH_GAP
PRICE_SEQ = "price_seq"  # below 1 is INVALID_EVENT

_DECIMAL_KINDS = frozenset({POSITIVE, SIGNED})
_STRING_KINDS = frozenset({ID, NAME, TEXT})
_BOUNDED_KINDS = frozenset({POSITIVE, DECIMALS, PRICE_SEQ, SEQ, EPOCH})

_PRODUCER_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# The ledger's own ids join producer ids with ':' ("{parent event_id}:{type}").
_INTERNAL_ID = re.compile(r"[A-Za-z0-9._:-]{1,400}")


class EventSpec(NamedTuple):
    type: str
    stage: str
    key_field: str
    fields: tuple[tuple[str, str], ...]
    internal: bool
    # The fields grouped by check, precomputed once: validation runs on every event.
    field_names: tuple[str, ...]
    strings: tuple[str, ...]
    integers: tuple[str, ...]
    decimals: tuple[str, ...]
    longs: tuple[str, ...]
    names: tuple[str, ...]  # charset-checked
    # (name, kind) of the fields with a sign or bound rule, in field order (the first broken one is
    # the one reported).
    bounded: tuple[tuple[str, str], ...]


def _spec(type_: str, stage: str, key_field: str, *fields: tuple[str, str], internal: bool = False):
    def named(kinds: frozenset[str]) -> tuple[str, ...]:
        return tuple(name for name, kind in fields if kind in kinds)

    return EventSpec(
        type_, stage, key_field, fields, internal,
        field_names=tuple(name for name, _ in fields),
        strings=named(_STRING_KINDS),
        integers=tuple(name for name, kind in fields if kind not in _STRING_KINDS),
        decimals=named(_DECIMAL_KINDS),
        longs=tuple(name for name, kind in fields if kind not in _STRING_KINDS and kind not in _DECIMAL_KINDS),
        names=named(frozenset({ID, NAME})),
        bounded=tuple((name, kind) for name, kind in fields if kind in _BOUNDED_KINDS),
    )


SPECS: dict[str, EventSpec] = {
    s.type: s
    for s in (
        _spec("DepositInitiated", ACCOUNT, "user",
              ("deposit_id", ID), ("user", NAME), ("asset", NAME), ("amount", POSITIVE)),
        _spec("DepositConfirmed", ACCOUNT, "user",
              ("deposit_id", ID), ("user", NAME), ("asset", NAME), ("amount", POSITIVE)),
        _spec("WithdrawalRequested", ACCOUNT, "user",
              ("withdrawal_id", ID), ("user", NAME), ("asset", NAME), ("amount", POSITIVE)),
        _spec("WithdrawalConfirmed", ACCOUNT, "user",
              ("withdrawal_id", ID), ("user", NAME), ("asset", NAME), ("amount", POSITIVE)),
        _spec("WithdrawalRejected", ACCOUNT, "user",
              ("withdrawal_id", ID), ("user", NAME), ("asset", NAME), ("amount", POSITIVE),
              ("reason", TEXT)),
        _spec("TransferRequested", ACCOUNT, "from_user",
              ("transfer_id", ID), ("from_user", NAME), ("to_user", NAME), ("asset", NAME),
              ("amount", POSITIVE)),
        _spec("TransferCredited", ACCOUNT, "to_user",
              ("transfer_id", ID), ("to_user", NAME), ("asset", NAME), ("amount", POSITIVE),
              internal=True),
        _spec("MarginTransferRequested", ACCOUNT, "user",
              ("transfer_id", ID), ("user", NAME), ("market", NAME), ("asset", NAME),
              ("amount", POSITIVE)),
        _spec("MarginReturned", ACCOUNT, "user",
              ("transfer_id", ID), ("user", NAME), ("asset", NAME), ("amount", POSITIVE),
              internal=True),
        _spec("MarketListed", MARKET, "market",
              ("market", NAME), ("settlement_asset", NAME), ("settlement_decimals", DECIMALS),
              ("price_decimals", DECIMALS), ("size_decimals", DECIMALS),
              ("initial_margin_ppm", LONG), ("maintenance_margin_ppm", LONG),
              ("liquidation_fee_ppm", LONG)),
        _spec("RiskParamUpdate", MARKET, "market",
              ("market", NAME), ("initial_margin_ppm", LONG), ("maintenance_margin_ppm", LONG),
              ("liquidation_fee_ppm", LONG)),
        _spec("MarkPriceUpdate", MARKET, "market",
              ("market", NAME), ("price", POSITIVE), ("price_seq", PRICE_SEQ)),
        _spec("TradeFill", MARKET, "market",
              ("market", NAME), ("trade_id", ID), ("seq", SEQ), ("price", POSITIVE),
              ("quantity", POSITIVE), ("buyer", NAME), ("seller", NAME), ("buyer_fee", SIGNED),
              ("seller_fee", SIGNED)),
        _spec("FundingRateSnapshot", MARKET, "market",
              ("market", NAME), ("epoch", EPOCH), ("rate_ppb", LONG), ("price", POSITIVE)),
        _spec("FundingEpochSettle", MARKET, "market", ("market", NAME), ("epoch", EPOCH)),
        _spec("LiquidationFill", MARKET, "market",
              ("market", NAME), ("liquidation_id", TEXT), ("trade_id", ID), ("seq", SEQ),
              ("price", POSITIVE), ("quantity", POSITIVE), ("liquidated_user", NAME),
              ("counterparty", NAME), ("counterparty_fee", SIGNED)),
        _spec("LiquidationCompleted", MARKET, "market", ("market", NAME), ("liquidation_id", TEXT)),
        _spec("MarginCredited", MARKET, "market",
              ("transfer_id", ID), ("user", NAME), ("market", NAME), ("asset", NAME),
              ("amount", POSITIVE), internal=True),
        _spec("MarginWithdrawRequested", MARKET, "market",
              ("transfer_id", ID), ("user", NAME), ("market", NAME), ("amount", POSITIVE)),
        _spec("InsuranceFunded", MARKET, "market", ("market", NAME), ("amount", POSITIVE)),
    )
}

INTERNAL_TYPES = frozenset(t for t, s in SPECS.items() if s.internal)


def spec_for(event_type: object) -> EventSpec | None:
    """The spec of a type name; None for anything else, including unhashable junk."""
    return SPECS.get(event_type) if type(event_type) is str else None


# Users, markets, assets and sources repeat across events: remember the ones already checked.
_checked_names: set[str] = set()
_CHECKED_NAMES_MAX = 1_000_000


def _valid_name(value: str) -> bool:
    if value in _checked_names:
        return True
    if _PRODUCER_ID.fullmatch(value) is None:
        return False
    if len(_checked_names) >= _CHECKED_NAMES_MAX:
        _checked_names.clear()  # bounded: only a cache, never a source of truth
    _checked_names.add(value)
    return True


def check_envelope(event: object, trusted: bool) -> EventSpec:
    """Step 1: the event is an object with a known type, a valid id and every field typed right."""
    if not isinstance(event, dict):
        raise Rejected(Reason.INVALID_EVENT, "event is not an object")
    event_id = event.get("event_id")
    if type(event_id) is not str:
        raise Rejected(Reason.INVALID_EVENT, "event_id missing or not a string")
    id_pattern = _INTERNAL_ID if trusted else _PRODUCER_ID
    if id_pattern.fullmatch(event_id) is None:
        raise Rejected(Reason.INVALID_EVENT, "event_id outside [A-Za-z0-9._-]{1,128}")
    spec = spec_for(event.get("type"))
    if spec is None:
        raise Rejected(Reason.INVALID_EVENT, f"unknown type {event.get('type')!r:.100}")
    if type(event.get("source")) is not str:
        raise Rejected(Reason.INVALID_EVENT, "source missing or not a string")
    if type(event.get("ts_us")) is not int:
        raise Rejected(Reason.INVALID_EVENT, "ts_us missing or not an integer")
    for name in spec.strings:
        if type(event.get(name)) is not str:
            raise Rejected(Reason.INVALID_EVENT, f"{name} missing or not a string")
    for name in spec.integers:
        if type(event.get(name)) is not int:  # bool is an int subclass, and never a valid number
            raise Rejected(Reason.INVALID_EVENT, f"{name} missing or not an integer")
    return spec


def event_payload(event: dict, spec: EventSpec) -> list[object]:
    """The event as the dedup store and the hash chain see it: type, id, source, time, fields."""
    values: list[object] = [spec.type, event["event_id"], event["source"], event["ts_us"]]
    values.extend([event[name] for name in spec.field_names])
    return values


def payload_digest(payload: list[object]) -> bytes:
    """Identity of a payload for duplicate detection (the framing and auth tag are not in it)."""
    return hashlib.blake2b(repr(payload).encode(), digest_size=16).digest()


def check_ranges(event: dict, spec: EventSpec) -> None:
    """Step 4: inputs outside decimal(38, 0) or long are VALUE_OUT_OF_RANGE."""
    if not LONG_MIN <= event["ts_us"] <= LONG_MAX:
        raise Rejected(Reason.VALUE_OUT_OF_RANGE, "ts_us outside long")
    for name in spec.decimals:
        if not -VALUE_LIMIT < event[name] < VALUE_LIMIT:
            raise Rejected(Reason.VALUE_OUT_OF_RANGE, f"{name} outside decimal(38, 0)")
    for name in spec.longs:
        if not LONG_MIN <= event[name] <= LONG_MAX:
            raise Rejected(Reason.VALUE_OUT_OF_RANGE, f"{name} outside long")


def check_fields(event: dict, spec: EventSpec, trusted: bool, record_key: str | None) -> None:
    """Step 5: charset, signs and bounds of single fields; internal types only from the ledger."""
    if spec.internal and not trusted:
        raise Rejected(Reason.INVALID_EVENT, f"{spec.type} is internal to the ledger")
    if record_key is not None and record_key != event[spec.key_field]:
        raise Rejected(Reason.INVALID_EVENT, f"record key differs from {spec.key_field}")
    checked = _checked_names  # the cache test in line: most names were seen before
    source = event["source"]
    if source not in checked and not _valid_name(source):
        raise Rejected(Reason.INVALID_EVENT, "source outside the charset")
    for name in spec.names:
        value = event[name]
        if value not in checked and not _valid_name(value):
            raise Rejected(Reason.INVALID_EVENT, f"{name} outside [A-Za-z0-9._-]{{1,128}}")
    for name, kind in spec.bounded:
        value = event[name]
        if kind is POSITIVE:
            if value <= 0:
                raise Rejected(Reason.INVALID_EVENT, f"{name} must be > 0")
        elif kind is DECIMALS:
            if not 0 <= value <= 18:
                raise Rejected(Reason.INVALID_EVENT, f"{name} must be 0 to 18")
        elif kind is PRICE_SEQ:
            if value < 1:
                raise Rejected(Reason.INVALID_EVENT, "price_seq must be >= 1")
        elif kind is SEQ:
            if value < 1:
                raise Rejected(Reason.OUT_OF_ORDER, "seq below 1")
        elif kind is EPOCH and value < 1:
            raise Rejected(Reason.EPOCH_GAP, "epoch below 1")


def check_risk_params(event: dict) -> None:
    """0 < liquidation_fee < maintenance < initial <= 10^6 (ppm)."""
    fee, mm, im = (event["liquidation_fee_ppm"], event["maintenance_margin_ppm"],
                   event["initial_margin_ppm"])
    if not 0 < fee < mm < im <= 10**6:
        raise Rejected(Reason.INVALID_RISK_PARAMS, "need 0 < liquidation_fee < maintenance < initial <= 10^6")


def internal_event(parent: dict, type_: str, origin_key: str, **fields: object) -> dict:
    """An event the ledger emits for another key: id `{parent event_id}:{type}`, parent's time."""
    return {
        "type": type_,
        "event_id": f"{parent['event_id']}:{type_}",
        "source": "ledger",
        "ts_us": parent["ts_us"],
        "origin_key": origin_key,
        **fields,
    }
