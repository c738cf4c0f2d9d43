"""Schema evolution: records written with an older schema version still decode, into the current shape.

The repository has no historical version yet (schemas/history/ is empty), so these tests evolve a copy
of schemas/ in a temporary directory exactly as schemas/README.md prescribes: the current
TradeFill.avsc moves to history/TradeFill.v1.avsc and a new TradeFill.avsc adds optional fields.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streams.codec import (
    Codec,
    InMemorySchemaRegistry,
    SchemaCatalog,
    SchemaCatalogError,
    default_schema_dir,
)
from streams.codec.samples import sample_event

NEW_FIELDS = [
    {"name": "client_ref", "type": ["null", "string"], "default": None, "doc": "Optional client reference."},
    {
        "name": "rebate_cap",
        "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 0}],
        "default": None,
        "doc": "Minor units of the settlement asset.",
    },
    {
        # A non-null decimal with a default: the default is a JSON string of byte values.
        "name": "tick",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 0},
        "default": "\u0000",
        "doc": "Price units.",
    },
]


def _evolve(tmp_path: Path) -> Path:
    """A copy of schemas/ where TradeFill got a v2 with NEW_FIELDS, following the README procedure."""
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root)
    (root / "history").mkdir(exist_ok=True)
    current = root / "TradeFill.avsc"
    shutil.copy(current, root / "history" / "TradeFill.v1.avsc")
    schema = json.loads(current.read_text())
    schema["fields"] += NEW_FIELDS
    current.write_text(json.dumps(schema, indent=2))
    return root


@pytest.fixture
def evolved(tmp_path: Path) -> SchemaCatalog:
    return SchemaCatalog.load(_evolve(tmp_path))


def test_old_record_is_read_by_a_reader_on_the_new_schema(evolved: SchemaCatalog) -> None:
    old = Codec()  # the repository's schemas: TradeFill without the new fields
    event = sample_event("TradeFill") | {"price": 10**40, "buyer_fee": -7}
    data = old.encode(event)

    new = Codec(evolved)
    assert evolved.history["TradeFill"][0].fingerprint == old.catalog.current["TradeFill"].fingerprint
    decoded = new.decode(data)
    assert decoded == event | {"client_ref": None, "rebate_cap": None, "tick": 0}
    assert type(decoded["tick"]) is int

    # New records carry the new fingerprint and round-trip with the new fields.
    newer = event | {"client_ref": "abc", "rebate_cap": -(10**39), "tick": 5}
    assert new.decode(new.encode(newer)) == newer
    assert new.encode(newer)[:10] != data[:10]


def test_old_record_through_a_registry(evolved: SchemaCatalog) -> None:
    registry = InMemorySchemaRegistry()
    event = sample_event("TradeFill")
    data = Codec(registry=registry).encode(event)  # registers the old schema
    assert Codec(evolved, registry=registry).decode(data) == event | {
        "client_ref": None,
        "rebate_cap": None,
        "tick": 0,
    }


def test_new_record_read_by_an_old_reader_through_a_registry(evolved: SchemaCatalog) -> None:
    # Forward compatibility: an old consumer skips the fields it does not know (it learns the writer
    # schema from the registry). In single-object framing it would not know the fingerprint: roll out
    # consumers first (README).
    registry = InMemorySchemaRegistry()
    event = sample_event("TradeFill")
    data = Codec(evolved, registry=registry).encode(event | {"client_ref": "x", "rebate_cap": 3, "tick": 9})
    assert Codec(registry=registry).decode(data) == event
    with pytest.raises(Exception, match="unknown_fingerprint"):
        Codec().decode(Codec(evolved).encode(event | {"client_ref": "x", "rebate_cap": 3, "tick": 9}))


def _history_versions_decode_into_current(catalog: SchemaCatalog) -> int:
    codec = Codec(catalog)
    checked = 0
    for name, versions in catalog.history.items():
        current = catalog.current[name]
        for version in versions:
            event = sample_event(version)
            data = version.single_object_header + codec.encode_body(version, event)
            decoded = codec.decode(data)
            assert decoded["type"] == name
            assert set(decoded) == {f["name"] for f in current.schema["fields"]} | {"type"}
            for key, value in event.items():
                if key in decoded:
                    assert decoded[key] == value, (name, version.version, key)
            checked += 1
    return checked


def test_history_versions_decode_into_current() -> None:
    """Guards the real schemas/history/: run after every schema change (README procedure)."""
    _history_versions_decode_into_current(SchemaCatalog.load())


def test_history_check_works_on_an_evolved_copy(evolved: SchemaCatalog) -> None:
    assert _history_versions_decode_into_current(evolved) == 1


def test_history_check_catches_an_incompatible_change(tmp_path: Path) -> None:
    root = _evolve(tmp_path)
    schema = json.loads((root / "TradeFill.avsc").read_text())
    schema["fields"].append({"name": "required_new", "type": "string", "doc": "no default: forbidden"})
    (root / "TradeFill.avsc").write_text(json.dumps(schema))
    with pytest.raises(Exception, match="incompatible_schema"):
        _history_versions_decode_into_current(SchemaCatalog.load(root))


@pytest.mark.parametrize(
    ("filename", "content"),
    [
        ("TradeFill.avsc.bak.avsc", None),  # history name without .v<N>
        ("TradeFill.v0.avsc", None),
        ("Nope.v1.avsc", None),  # no current record of that name
        ("TradeFill.v1.avsc", "MarkPriceUpdate"),  # another record's schema
    ],
)
def test_bad_history_files_are_refused(tmp_path: Path, filename: str, content: str | None) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root)
    (root / "history").mkdir(exist_ok=True)
    source = root / f"{content or 'TradeFill'}.avsc"
    (root / "history" / filename).write_text(source.read_text())
    with pytest.raises(SchemaCatalogError):
        SchemaCatalog.load(root)


def test_bad_current_files_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(default_schema_dir(), root)
    shutil.copy(root / "TradeFill.avsc", root / "Trade.avsc")  # name != file name
    with pytest.raises(SchemaCatalogError, match=r"Trade\.avsc"):
        SchemaCatalog.load(root)
    (root / "Trade.avsc").write_text("{not json")
    with pytest.raises(SchemaCatalogError):
        SchemaCatalog.load(root)
    (root / "Trade.avsc").unlink()
    (root / "topics.json").write_text(json.dumps({"t": {"records": ["perpledger.v1.Nope"]}}))
    with pytest.raises(SchemaCatalogError):
        SchemaCatalog.load(root)


def test_unsupported_decimal_shapes_are_refused_at_load(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    root.mkdir()
    dec = {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}
    (root / "X.avsc").write_text(json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": dec}]}))
    with pytest.raises(SchemaCatalogError, match="scale"):
        SchemaCatalog.load(root)
    dec["scale"] = 0
    bad = {"type": "map", "values": dec}
    (root / "X.avsc").write_text(json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": bad}]}))
    with pytest.raises(SchemaCatalogError, match="map"):
        SchemaCatalog.load(root)


def test_schema_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _evolve(tmp_path)
    monkeypatch.setenv("PERPLEDGER_SCHEMA_DIR", str(root))
    assert default_schema_dir() == root
    assert "TradeFill" in SchemaCatalog.load().history
