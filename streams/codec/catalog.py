"""The project's schemas, loaded once: current versions, historical versions, topic unions.

Layout (see schemas/README.md):
    schemas/<Record>.avsc              current version of each record, self-contained, namespace perpledger.v1
    schemas/history/<Record>.v<N>.avsc every earlier version, kept forever so old records stay decodable
    schemas/topics.json                topic -> the records its values may hold

Every version is indexed by its CRC-64-AVRO fingerprint (single-object framing); a historical version
is read with schema resolution into the current one, so consumers only ever see current-shaped dicts.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import cavro
from fastavro import parse_schema
from fastavro.schema import fingerprint as _avro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from streams.codec.plans import RecordPlan, build_plan, strip_decimals

# cavro decodes records to plain dicts and ignores logical types: a decimal stays bytes, as fastavro
# reads it from the stripped schema (plans.py turns it into an int either way).
CAVRO_OPTIONS = cavro.DEFAULT_OPTIONS.replace(record_decodes_to_dict=True, logical_types=())

SCHEMA_DIR_ENV = "PERPLEDGER_SCHEMA_DIR"
NAMESPACE = "perpledger.v1"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"

_HISTORY_NAME = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class SchemaCatalogError(ValueError):
    """The schema directory is inconsistent (bad file, duplicate name, fingerprint clash...)."""


def default_schema_dir() -> Path:
    """$PERPLEDGER_SCHEMA_DIR, else the repository's ``schemas/`` (the package is installed editable)."""
    env = os.environ.get(SCHEMA_DIR_ENV)
    return Path(env) if env else Path(__file__).resolve().parents[2] / "schemas"


def fingerprint64(schema: Any) -> int:
    """CRC-64-AVRO ("Rabin") fingerprint of a schema's Parsing Canonical Form, as an unsigned int."""
    hex_le = _avro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")
    # fastavro renders the fingerprint as its little-endian bytes in hex.
    return int.from_bytes(bytes.fromhex(hex_le), "little")


@dataclass(frozen=True, eq=False)
class RecordSchema:
    """One version of one record schema, ready for fastavro."""

    name: str  # short record name = the event "type", e.g. "TradeFill"
    fullname: str  # e.g. "perpledger.v1.TradeFill"
    schema: dict[str, Any] = field(repr=False)  # JSON form as written, logicalTypes intact
    schema_str: str = field(repr=False)  # compact JSON of ``schema``: what is registered in a registry
    fingerprint: int  # CRC-64-AVRO of the Parsing Canonical Form
    parsed: dict[str, Any] = field(repr=False)  # fastavro-parsed, decimals as plain bytes (plans.py)
    plan: RecordPlan = field(repr=False)  # decimal conversions and integer checks (plans.py)
    version: int | None = None  # None: current; N: schemas/history/<name>.vN.avsc; 0: from a registry

    @cached_property
    def compiled(self) -> cavro.Schema:
        """This schema compiled by cavro, for decoding without resolution: records as dicts, decimals
        as plain bytes (as in ``parsed``; plans.py converts them)."""
        return cavro.Schema(self.schema_str, options=CAVRO_OPTIONS)

    @property
    def single_object_header(self) -> bytes:
        return SINGLE_OBJECT_MAGIC + self.fingerprint.to_bytes(8, "little")

    @classmethod
    def from_json(cls, schema: Any, version: int | None = None) -> RecordSchema:
        """Build from a JSON schema (dict or string). Raises on anything fastavro cannot parse."""
        if isinstance(schema, str):
            schema = json.loads(schema)
        if not isinstance(schema, dict) or schema.get("type") != "record":
            raise SchemaCatalogError("a top-level schema must be a record")
        parse_schema(schema, named_schemas={})  # validates the schema as written (decimal attrs included)
        name = schema["name"]
        namespace = schema.get("namespace")
        fullname = name if "." in name else (f"{namespace}.{name}" if namespace else name)
        return cls(
            name=fullname.rsplit(".", 1)[-1],
            fullname=fullname,
            schema=schema,
            schema_str=json.dumps(schema, separators=(",", ":"), ensure_ascii=False),
            fingerprint=fingerprint64(schema),
            # A fresh named-types dict per schema: each file is self-contained, and two versions of
            # one record must not see each other's definitions.
            parsed=parse_schema(strip_decimals(schema), named_schemas={}),
            plan=build_plan(schema),
            version=version,
        )


@dataclass(frozen=True, eq=False)
class SchemaCatalog:
    """All schema versions of the project. Build with ``SchemaCatalog.load()`` or ``default()``."""

    directory: Path
    current: Mapping[str, RecordSchema]  # short name -> current version
    history: Mapping[str, tuple[RecordSchema, ...]]  # short name -> older versions, oldest first
    by_fingerprint: Mapping[int, RecordSchema]  # every version (current wins on a tie)
    topics: Mapping[str, tuple[str, ...]]  # topic -> short record names its values may hold

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None) -> SchemaCatalog:
        root = Path(directory) if directory is not None else default_schema_dir()
        if not root.is_dir():
            raise SchemaCatalogError(f"schema directory {root} does not exist")

        current: dict[str, RecordSchema] = {}
        for path in sorted(root.glob("*.avsc")):
            rec = _load_file(path, None)
            if rec.name != path.stem:
                raise SchemaCatalogError(f"{path}: record {rec.fullname} must live in {rec.name}.avsc")
            current[rec.name] = rec
        fullnames = {r.fullname for r in current.values()}
        if len(fullnames) != len(current):
            raise SchemaCatalogError("two current schemas share a full name")

        history: dict[str, list[RecordSchema]] = {}
        hist_dir = root / "history"
        for path in sorted(hist_dir.glob("*.avsc")) if hist_dir.is_dir() else []:
            m = _HISTORY_NAME.match(path.name)
            if m is None:
                raise SchemaCatalogError(f"{path}: history files are named <Record>.v<N>.avsc")
            rec = _load_file(path, int(m["version"]))
            if rec.name != m["name"] or m["name"] not in current:
                raise SchemaCatalogError(f"{path}: not an older version of a current record")
            if rec.fullname != current[rec.name].fullname:
                raise SchemaCatalogError(f"{path}: full name {rec.fullname} differs from the current one")
            history.setdefault(rec.name, []).append(rec)

        by_fp: dict[int, RecordSchema] = {}
        for versions in history.values():
            versions.sort(key=lambda r: r.version or 0)
            for rec in versions:
                _index(by_fp, rec)
        for rec in current.values():
            _index(by_fp, rec)

        topics: dict[str, tuple[str, ...]] = {}
        topics_file = root / "topics.json"
        if topics_file.exists():
            by_full = {r.fullname: r.name for r in current.values()}
            for topic, spec in json.loads(topics_file.read_text()).items():
                missing = [n for n in spec["records"] if n not in by_full]
                if missing:
                    raise SchemaCatalogError(f"topics.json: {topic} names unknown records {missing}")
                topics[topic] = tuple(by_full[n] for n in spec["records"])

        return cls(
            directory=root,
            current=current,
            history={k: tuple(v) for k, v in history.items()},
            by_fingerprint=by_fp,
            topics=topics,
        )

    @staticmethod
    @cache
    def default() -> SchemaCatalog:
        """The catalog of ``default_schema_dir()``, loaded once per process."""
        return SchemaCatalog.load()

    def record(self, name: str) -> RecordSchema:
        """Current version by short name ("TradeFill") or full name ("perpledger.v1.TradeFill")."""
        rec = self.current.get(name.rsplit(".", 1)[-1])
        if rec is None or (("." in name) and rec.fullname != name):
            raise KeyError(name)
        return rec

    def topic_union(self, topic: str) -> list[dict[str, Any]]:
        """The topic's value union as a fastavro reader schema (decimals as bytes, like every parsed
        schema here): usable with schema resolution when one reader schema per topic is wanted."""
        return [self.current[n].parsed for n in self.topics[topic]]


def _load_file(path: Path, version: int | None) -> RecordSchema:
    try:
        return RecordSchema.from_json(json.loads(path.read_text()), version)
    except SchemaCatalogError as exc:
        raise SchemaCatalogError(f"{path}: {exc}") from exc
    except Exception as exc:  # json / fastavro parse errors: name the file
        raise SchemaCatalogError(f"{path}: {type(exc).__name__}: {exc}") from exc


def _index(by_fp: dict[int, RecordSchema], rec: RecordSchema) -> None:
    other = by_fp.get(rec.fingerprint)
    if other is not None and other.fullname != rec.fullname:
        raise SchemaCatalogError(f"fingerprint clash between {other.fullname} and {rec.fullname}")
    # Versions that differ only in docs or defaults share a fingerprint; the later one (current last) wins.
    by_fp[rec.fingerprint] = rec
