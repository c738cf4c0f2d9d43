"""Versioned DDL: `ddl/V{nnn}__{name}.sql`, applied in order at start, each once.

Applied versions are recorded in `{db}.schema_migrations` with the file's checksum. Every statement
is written to be idempotent (`IF NOT EXISTS`), so a start that dies half-way through a version simply
runs it again. A file changed after it was applied is refused: a new version is the only way to
change an applied schema, so every deployment converges on the same tables.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DDL_DIR = Path(__file__).resolve().parent / "ddl"
_FILE_NAME = re.compile(r"V(\d{3})__([a-z0-9_]+)\.sql")
_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS {db}.schema_migrations
(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
ENGINE = ReplacingMergeTree ORDER BY version"""


class SchemaError(RuntimeError):
    """The database's schema history does not fit the DDL files of this code."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]
    checksum: str  # sha256 of the file's bytes


def split_statements(sql: str) -> tuple[str, ...]:
    """Statements end with `;` at the end of a line; `--` comment lines are dropped."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";[ \t]*(?:\n|$)", "\n".join(lines))
    return tuple(part.strip() for part in parts if part.strip())


def load_migrations(ddl_dir: Path = DDL_DIR) -> list[Migration]:
    """The DDL files in version order; versions must run 1, 2, 3, ... with no gap or repeat."""
    migrations = []
    for path in sorted(ddl_dir.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            raise SchemaError(f"{path.name}: DDL files are named V{{nnn}}__{{name}}.sql")
        data = path.read_bytes()
        migrations.append(Migration(int(match[1]), match[2], split_statements(data.decode()),
                                    hashlib.sha256(data).hexdigest()))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(f"DDL versions must be 1..n without gaps, found {versions}")
    return migrations


def pending(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """The migrations still to apply, given the applied versions' checksums."""
    known = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        if version not in known:
            raise SchemaError(f"the database has schema version {version}, newer than this code knows")
        if known[version].checksum != checksum:
            raise SchemaError(f"V{version:03d}__{known[version].name}.sql changed after it was applied: "
                              "add a new version instead")
    return [m for m in migrations if m.version not in applied]


def apply(client: Any, db: str, migrations: list[Migration] | None = None) -> list[int]:
    """Create the database and apply what is pending; the versions applied now."""
    migrations = load_migrations() if migrations is None else migrations
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    client.command(_MIGRATIONS_TABLE.format(db=db))
    rows = client.query(f"SELECT version, checksum FROM {db}.schema_migrations FINAL").result_rows
    done = []
    for migration in pending(migrations, {int(v): c for v, c in rows}):
        for statement in migration.statements:
            client.command(statement.replace("{db}", db))
        client.insert(f"{db}.schema_migrations", [[migration.version, migration.name, migration.checksum]],
                      column_names=["version", "name", "checksum"])
        done.append(migration.version)
    return done


def data_tables(migrations: list[Migration] | None = None) -> list[str]:
    """Every table (not view) the DDL creates, for a rebuild's truncation."""
    migrations = load_migrations() if migrations is None else migrations
    names = []
    for migration in migrations:
        for statement in migration.statements:
            match = re.match(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)", statement)
            if match:
                names.append(match[1])
    return names
