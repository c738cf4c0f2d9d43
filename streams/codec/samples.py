"""Schema-driven sample events: one fixed valid event per record type, and hypothesis strategies.

For tests and tools (fuzzing the core with schema-valid events, smoke-testing topics). The values fit
the *schema* only, not the ledger's field rules. ``hypothesis`` is a dev dependency, so it is imported
only by ``event_strategy``.
"""

from __future__ import annotations

from typing import Any

from streams.codec.catalog import RecordSchema, SchemaCatalog

# Interesting decimal values: around the 10^38 range limit the core enforces, int64/int128 edges.
DECIMAL_EDGES: tuple[int, ...] = (
    0,
    1,
    -1,
    127,
    128,
    -128,
    -129,
    255,
    256,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**38 - 1,
    10**38,
    -(10**38) + 1,
    -(10**38),
    2**127 - 1,
    2**127,
    -(2**127),
    10**60,
    -(10**60),
)


def _record(name: str | RecordSchema, catalog: SchemaCatalog | None) -> RecordSchema:
    if isinstance(name, RecordSchema):
        return name
    return (catalog or SchemaCatalog.default()).record(name)


def sample_event(name: str | RecordSchema, catalog: SchemaCatalog | None = None) -> dict[str, Any]:
    """A deterministic event of record ``name`` with every field set (nullable ones to a value)."""
    record = _record(name, catalog)
    event = _sample_record(record.schema, {}, record.schema.get("namespace"))
    return {"type": record.name, **event}


def _sample_record(schema: dict[str, Any], named: dict[str, dict[str, Any]], ns: str | None) -> dict[str, Any]:
    ns = schema.get("namespace", ns)
    named[_full(schema["name"], ns)] = schema
    return {f["name"]: _sample_value(f["type"], f["name"], named, ns) for f in schema["fields"]}


def _sample_value(t: Any, field: str, named: dict[str, dict[str, Any]], ns: str | None) -> Any:
    if isinstance(t, list):
        non_null = [b for b in t if b != "null"]
        return _sample_value(non_null[0], field, named, ns) if non_null else None
    if isinstance(t, dict):
        typ = t["type"]
        if typ == "bytes" and t.get("logicalType") == "decimal":
            return 1
        if typ == "record":
            return _sample_record(t, named, ns)
        if typ == "array":
            return [_sample_value(t["items"], field, named, ns)]
        return _sample_value(typ, field, named, ns)
    if t in ("long", "int"):
        return 1
    if t == "string":
        return f"{field.replace('_', '-')}-1"
    if t == "bytes":
        return b"\x01"
    if t == "boolean":
        return True
    if t in ("float", "double"):
        return 1.0
    if t == "null":
        return None
    if isinstance(t, str) and _full(t, ns) in named:
        return _sample_record(named[_full(t, ns)], named, ns)
    raise ValueError(f"no sample for type {t!r} of field {field}")


def event_strategy(name: str | RecordSchema, catalog: SchemaCatalog | None = None) -> Any:
    """A hypothesis strategy of valid events of record ``name``: full int64/int32 ranges, decimals
    from any integer (including >= 10^38 and negative), any Unicode text, nulls in nullable fields."""
    from hypothesis import strategies as st

    record = _record(name, catalog)
    named: dict[str, Any] = {}

    def decimal() -> Any:
        return st.one_of(st.sampled_from(DECIMAL_EDGES), st.integers(), st.integers(-(10**80), 10**80))

    def value(t: Any, ns: str | None) -> Any:
        if isinstance(t, list):
            return st.one_of(*(value(b, ns) for b in t))
        if isinstance(t, dict):
            typ = t["type"]
            if typ == "bytes" and t.get("logicalType") == "decimal":
                return decimal()
            if typ == "record":
                return record_of(t, ns)
            if typ == "array":
                return st.lists(value(t["items"], ns), max_size=4)
            return value(typ, ns)
        simple = {
            "null": st.none(),
            "long": st.integers(-(2**63), 2**63 - 1),
            "int": st.integers(-(2**31), 2**31 - 1),
            "string": st.text(max_size=40),
            "bytes": st.binary(max_size=40),
            "boolean": st.booleans(),
        }
        if t in simple:
            return simple[t]
        full = _full(t, ns)
        if full in named:
            return named[full]
        raise ValueError(f"no strategy for type {t!r}")

    def record_of(schema: dict[str, Any], ns: str | None) -> Any:
        ns = schema.get("namespace", ns)
        full = _full(schema["name"], ns)
        # Recursive records are not supported (none of ours is): the strategy needs its fields first.
        strategy = st.fixed_dictionaries({f["name"]: value(f["type"], ns) for f in schema["fields"]})
        named[full] = strategy
        return strategy

    return record_of(record.schema, None).map(lambda e: {"type": record.name, **e})


def _full(name: str, ns: str | None) -> str:
    return name if "." in name or not ns else f"{ns}.{name}"
