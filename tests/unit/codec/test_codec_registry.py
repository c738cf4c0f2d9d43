"""Schema registries: the in-memory one, and the Confluent adapter against a fake client."""

from __future__ import annotations

import importlib.util
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from streams.codec import (
    Codec,
    ConfluentSchemaRegistry,
    InMemorySchemaRegistry,
    RegistryError,
    SchemaNotFoundError,
    SchemaRegistry,
)
from streams.codec import registry as registry_module
from streams.codec.samples import sample_event


def test_in_memory_ids_are_global_and_stable() -> None:
    registry = InMemorySchemaRegistry()
    a = registry.register("s1", '"string"')
    assert registry.register("s2", '"string"') == a
    b = registry.register("s1", '"long"')
    assert b == a + 1
    assert registry.get_schema(a) == '"string"'
    assert registry.subjects() == ["s1", "s2"]
    assert registry.versions("s1") == [a, b]
    assert registry.versions("nope") == []
    with pytest.raises(SchemaNotFoundError):
        registry.get_schema(b + 1)
    assert isinstance(registry, SchemaRegistry)


def test_in_memory_registry_is_thread_safe() -> None:
    registry = InMemorySchemaRegistry()
    ids: list[int] = []

    def work(n: int) -> None:
        for i in range(200):
            ids.append(registry.register(f"s{n}", f'{{"type": "fixed", "name": "f{i}", "size": 1}}'))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(ids)) == list(range(1, 201))


class _FakeSRError(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.http_status_code = status


class _FakeSchema:
    def __init__(self, schema_str: str, schema_type: str = "AVRO") -> None:
        self.schema_str = schema_str
        self.schema_type = schema_type


class _FakeClient:
    """Mimics SchemaRegistryClient's register_schema / get_schema."""

    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        self.conf = conf
        self.inner = InMemorySchemaRegistry(first_id=100)
        self.fail_with: int | None = None
        self.types: dict[int, str] = {}

    def register_schema(self, subject: str, schema: _FakeSchema) -> int:
        if self.fail_with:
            raise _FakeSRError(self.fail_with)
        assert schema.schema_type == "AVRO"
        return self.inner.register(subject, schema.schema_str)

    def get_schema(self, schema_id: int) -> _FakeSchema:
        if self.fail_with:
            raise _FakeSRError(self.fail_with)
        try:
            return _FakeSchema(self.inner.get_schema(schema_id), self.types.get(schema_id, "AVRO"))
        except SchemaNotFoundError:
            raise _FakeSRError(404) from None


@pytest.fixture
def fake_sr(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    module = SimpleNamespace(Schema=_FakeSchema, SchemaRegistryError=_FakeSRError, SchemaRegistryClient=_FakeClient)
    monkeypatch.setattr(registry_module, "_import_schema_registry", lambda: module)
    return module


def test_confluent_adapter_round_trip(fake_sr: SimpleNamespace) -> None:
    registry = ConfluentSchemaRegistry({"url": "http://registry:8081"})
    assert registry._client.conf == {"url": "http://registry:8081"}
    codec = Codec(registry=registry)
    event = sample_event("TradeFill")
    data = codec.encode(event)
    assert int.from_bytes(data[1:5], "big") == 100
    assert Codec(registry=registry).decode(data) == event


def test_confluent_adapter_error_mapping(fake_sr: SimpleNamespace) -> None:
    client = _FakeClient()
    registry = ConfluentSchemaRegistry(client=client)
    with pytest.raises(SchemaNotFoundError):
        registry.get_schema(5)
    with pytest.raises(Exception, match="unknown_schema_id"):
        Codec(registry=registry).decode(b"\x00\x00\x00\x00\x05\x00")
    client.fail_with = 503
    with pytest.raises(RegistryError):
        registry.get_schema(5)
    with pytest.raises(RegistryError):
        registry.register("s", '"string"')
    with pytest.raises(RegistryError):
        Codec(registry=registry).encode(sample_event("TradeFill"))


def test_confluent_adapter_non_avro_schema(fake_sr: SimpleNamespace) -> None:
    client = _FakeClient()
    schema_id = client.inner.register("s", "syntax = 'proto3';")
    client.types[schema_id] = "PROTOBUF"
    registry = ConfluentSchemaRegistry(client=client)
    with pytest.raises(SchemaNotFoundError):
        registry.get_schema(schema_id)


def test_confluent_adapter_needs_conf_or_client(fake_sr: SimpleNamespace) -> None:
    with pytest.raises(ValueError):
        ConfluentSchemaRegistry()


@pytest.mark.skipif(
    importlib.util.find_spec("authlib") is not None, reason="the schema registry extra is installed here"
)
def test_missing_extra_fails_clearly_only_when_used() -> None:
    # Importing streams.codec worked (this module imported it); constructing the adapter explains.
    with pytest.raises(ImportError, match=r"confluent-kafka\[schemaregistry\]"):
        ConfluentSchemaRegistry({"url": "http://registry:8081"})
