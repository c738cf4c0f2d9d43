"""Schema registries for the Confluent wire framing (0x00 + 4-byte schema id + body).

The codec needs two calls only, so the dependency is a Protocol, not a client library:
``register(subject, schema_str) -> id`` when encoding, ``get_schema(id) -> schema_str`` when decoding.

- ``InMemorySchemaRegistry``: in-process, for tests and tools (no registry server is installable here).
- ``ConfluentSchemaRegistry``: adapter over ``confluent_kafka.schema_registry.SchemaRegistryClient``,
  imported when constructed, so ``streams.codec`` imports fine without the ``[schemaregistry]`` extra.

Error contract: an id the registry does not have raises ``SchemaNotFoundError`` (a ``LookupError``); the
codec turns that into ``DecodeError("unknown_schema_id")``, since those bytes will never decode. Any
other failure (network, auth, 5xx) is a ``RegistryError`` and propagates: the bytes are fine, the
registry is not, so the record must be retried, not dead-lettered.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable


class SchemaNotFoundError(LookupError):
    """The registry has no schema under this id."""


class RegistryError(RuntimeError):
    """The registry could not answer (unreachable, refused, incompatible schema on register...)."""


@runtime_checkable
class SchemaRegistry(Protocol):
    def register(self, subject: str, schema_str: str) -> int:
        """Register (or find) ``schema_str`` under ``subject``; return its global schema id."""
        ...

    def get_schema(self, schema_id: int) -> str:
        """The schema string of ``schema_id``; raise ``SchemaNotFoundError`` if there is none."""
        ...


class InMemorySchemaRegistry:
    """A registry held in this process. Like Confluent's, an id is global: the same schema string
    registered under two subjects gets one id. No compatibility checks (a real registry does them)."""

    def __init__(self, first_id: int = 1) -> None:
        self._lock = threading.Lock()
        self._next_id = first_id
        self._ids: dict[str, int] = {}
        self._schemas: dict[int, str] = {}
        self._subjects: dict[str, list[int]] = {}

    def register(self, subject: str, schema_str: str) -> int:
        with self._lock:
            schema_id = self._ids.get(schema_str)
            if schema_id is None:
                schema_id = self._next_id
                self._next_id += 1
                self._ids[schema_str] = schema_id
                self._schemas[schema_id] = schema_str
            versions = self._subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def get_schema(self, schema_id: int) -> str:
        try:
            return self._schemas[schema_id]
        except KeyError:
            raise SchemaNotFoundError(f"no schema with id {schema_id}") from None

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(self._subjects)

    def versions(self, subject: str) -> list[int]:
        """Schema ids registered under ``subject``, oldest first."""
        with self._lock:
            return list(self._subjects.get(subject, ()))


class ConfluentSchemaRegistry:
    """``SchemaRegistry`` over a real Confluent-compatible registry.

    ``conf`` is ``SchemaRegistryClient``'s config (at least ``{"url": ...}``); or pass a ready
    ``client`` (anything with ``register_schema(subject, Schema)`` and ``get_schema(id)``).
    """

    def __init__(self, conf: Mapping[str, Any] | None = None, *, client: Any = None) -> None:
        sr = _import_schema_registry()
        self._schema_cls = sr.Schema
        self._error_cls = sr.SchemaRegistryError
        if client is None:
            if conf is None:
                raise ValueError("ConfluentSchemaRegistry needs conf={'url': ...} or client=")
            client = sr.SchemaRegistryClient(dict(conf))
        self._client = client

    def register(self, subject: str, schema_str: str) -> int:
        try:
            return int(self._client.register_schema(subject, self._schema_cls(schema_str, "AVRO")))
        except self._error_cls as exc:
            raise RegistryError(f"registering {subject}: {exc}") from exc

    def get_schema(self, schema_id: int) -> str:
        try:
            schema = self._client.get_schema(schema_id)
        except self._error_cls as exc:
            if getattr(exc, "http_status_code", None) == 404:
                raise SchemaNotFoundError(f"no schema with id {schema_id}: {exc}") from exc
            raise RegistryError(f"fetching schema {schema_id}: {exc}") from exc
        if getattr(schema, "schema_type", "AVRO") not in (None, "AVRO"):
            # Not an error of the registry: the id names a Protobuf/JSON schema, never an Avro record.
            raise SchemaNotFoundError(f"schema {schema_id} is {schema.schema_type}, not AVRO")
        return str(schema.schema_str)


def _import_schema_registry() -> Any:
    try:
        from confluent_kafka import schema_registry
    except ImportError as exc:  # the [schemaregistry] extra pulls httpx, authlib, attrs, cachetools...
        raise ImportError(
            "ConfluentSchemaRegistry needs confluent-kafka's schema registry extra: "
            "pip install 'confluent-kafka[schemaregistry]==2.16.0' "
            f"(import failed: {exc}). InMemorySchemaRegistry needs nothing."
        ) from exc
    return schema_registry
