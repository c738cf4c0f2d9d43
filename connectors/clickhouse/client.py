"""One way to reach ClickHouse: clickhouse-connect, embedded (chDB, `chdb:///abs/path`) or a server
(`http://user:pass@host:8123/db`). The URL alone decides; every query is the same SQL either way."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect

DEFAULT_DATABASE = "perpledger"


@dataclass(frozen=True)
class Target:
    url: str
    database: str

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb://")


def parse_url(url: str) -> Target:
    """The server's database is the URL's path (default `perpledger`); chDB always uses `perpledger`."""
    if url.startswith("chdb://"):
        path = url[len("chdb://"):]
        if not path.startswith("/"):
            raise ValueError(f"{url}: an embedded ClickHouse needs an absolute path, chdb:///abs/path")
        return Target(url, DEFAULT_DATABASE)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{url}: expected chdb:///path, http://... or https://...")
    return Target(url, unquote(parts.path.strip("/")) or DEFAULT_DATABASE)


def connect(target: Target) -> Any:
    """A client; the database may not exist yet (the schema step creates it)."""
    if target.embedded:
        Path(target.url[len("chdb://"):]).mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(dsn=target.url)
    parts = urlsplit(target.url)
    return clickhouse_connect.get_client(
        host=parts.hostname, port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username or "default"), password=unquote(parts.password or ""),
        secure=parts.scheme == "https", database="default")
