"""The storage interface the core runs on, and the per-event transaction over it.

The core never writes a store directly: an event's writes collect in a `Txn` and reach the store
only if the event is accepted, as one write set. A dict backs it in tests and in `replay`; the
streaming layer backs it with RocksDB changelog tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class _Deleted:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()  # a write-set value meaning "remove this key"
_MISSING: Any = object()


class Store(Protocol):
    def get(self, key: tuple, default: Any = None) -> Any: ...

    def apply(self, writes: dict[tuple, Any]) -> None:
        """Make a whole write set durable at once (DELETED removes a key)."""
        ...

    def items(self) -> Iterator[tuple[tuple, Any]]: ...


class DictStore:
    """An in-memory store: the reference for tests and offline replay."""

    __slots__ = ("_data", "get")

    def __init__(self) -> None:
        self.data = {}

    @property
    def data(self) -> dict[tuple, Any]:
        return self._data

    @data.setter
    def data(self, data: dict[tuple, Any]) -> None:
        self._data = data
        # The dict's own get, bound: a read is then one C call, not a Python frame around one.
        self.get = data.get

    def apply(self, writes: dict[tuple, Any]) -> None:
        data = self.data
        for key, value in writes.items():
            if value is DELETED:
                data.pop(key, None)
            else:
                data[key] = value

    def items(self) -> Iterator[tuple[tuple, Any]]:
        return iter(list(self.data.items()))


class Txn:
    """Reads through to the store, buffers writes. Dropped whole on rejection (AC-12)."""

    __slots__ = ("_read", "store", "writes")

    def __init__(self, store: Store) -> None:
        self.store = store
        self._read = store.get  # bound once: this is the hottest call of the core
        self.writes: dict[tuple, Any] = {}

    def get(self, key: tuple, default: Any = None) -> Any:
        value = self.writes.get(key, _MISSING)
        if value is _MISSING:
            return self._read(key, default)
        return default if value is DELETED else value

    def put(self, key: tuple, value: Any) -> None:
        self.writes[key] = value

    def delete(self, key: tuple) -> None:
        self.writes[key] = DELETED
