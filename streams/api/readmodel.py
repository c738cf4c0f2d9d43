"""What the HTTP API reads of a user in one stage partition: balances and positions, from the store.

A stage store is keyed by the stage key (a user, a market), not by the user a record belongs to:
a user's wallets are under their own key in the account stage, but their margins and positions are
under each market's key in the market stage. `UserIndex` maps each user to the records that are
theirs in one partition, so a read costs the user's records, not a scan of the partition. It is
built from the store once (on the first read) and then kept current from each event's write set.

Pure: no Kafka, no Faust; the stores are the core's `Store`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.core.engine import BALANCE, CHAIN
from streams.core.events import ACCOUNT, MARKET
from streams.core.market_stage import MARKET_RECORD, POSITION
from streams.core.model import Market, Position
from streams.core.store import DELETED, Store

_USER_PREFIX = "user:"


def account_owner(account: str) -> str | None:
    """The user of a `user:{user}:...` account; None for shared and system accounts."""
    if not account.startswith(_USER_PREFIX):
        return None
    user, sep, _ = account[len(_USER_PREFIX):].partition(":")
    return user if sep and user else None


def record_owner(stage: str, record: tuple) -> str | None:
    """The user a store record belongs to, if it is one of theirs that the API shows."""
    if not record or record[0] == CHAIN or len(record) < 2:
        return None
    kind = record[1]
    if kind == BALANCE and len(record) == 4 and type(record[2]) is str:
        return account_owner(record[2])
    if stage == MARKET and kind == POSITION and len(record) == 3 and type(record[2]) is str:
        return record[2]
    return None


class UserIndex:
    """user -> the records of their balances (and, in the market stage, positions) in one partition."""

    __slots__ = ("records", "stage")

    def __init__(self, stage: str) -> None:
        assert stage in (ACCOUNT, MARKET)
        self.stage = stage
        self.records: dict[str, set[tuple]] = {}

    @classmethod
    def build(cls, stage: str, records: Iterable[tuple]) -> UserIndex:
        index = cls(stage)
        for record in records:
            index._add(record)
        return index

    def update(self, writes: dict[tuple, Any]) -> None:
        """Follow one event's write set (DELETED removes a record)."""
        for record, value in writes.items():
            if value is DELETED:
                user = record_owner(self.stage, record)
                if user is not None:
                    mine = self.records.get(user)
                    if mine is not None:
                        mine.discard(record)
            else:
                self._add(record)

    def _add(self, record: tuple) -> None:
        user = record_owner(self.stage, record)
        if user is not None:
            self.records.setdefault(user, set()).add(record)

    def knows(self, user: str) -> bool:
        """The user has (or had: a balance stays, at zero) a record here."""
        return bool(self.records.get(user))

    def of(self, user: str) -> list[tuple]:
        return sorted(self.records.get(user, ()))

    def __len__(self) -> int:
        return len(self.records)


def balances(stage: str, store: Store, index: UserIndex, user: str) -> list[dict[str, Any]]:
    """The user's accounts in this partition, by account then asset: `{account, asset, balance}`
    (and `market` for a margin account). Zero balances are listed: the account exists."""
    rows = []
    for record in index.of(user):
        if record[1] != BALANCE:
            continue
        value = store.get(record)
        if value is None:
            continue
        row: dict[str, Any] = {"account": record[2], "asset": record[3], "balance": value}
        if stage == MARKET:
            row["market"] = record[0]
        rows.append(row)
    rows.sort(key=lambda r: (r["account"], r["asset"]))
    return rows


def positions(store: Store, index: UserIndex, user: str) -> list[dict[str, Any]]:
    """The user's open positions in this (market-stage) partition, by market, with the market's
    current mark and scales: `{market, size, entry_price, state, liquidation_id, mark_price, ...}`."""
    rows = []
    for record in index.of(user):
        if record[1] != POSITION:
            continue
        position = store.get(record)
        if not isinstance(position, Position) or (position.size == 0 and position.liquidation_id is None):
            continue
        market = store.get((record[0], MARKET_RECORD))
        row: dict[str, Any] = {
            "market": record[0], "size": position.size, "entry_price": position.entry_price,
            "state": position.state, "liquidation_id": position.liquidation_id,
        }
        if isinstance(market, Market):
            row.update(mark_price=market.mark_price, settlement_asset=market.settlement_asset,
                       price_decimals=market.price_decimals, size_decimals=market.size_decimals)
        rows.append(row)
    rows.sort(key=lambda r: r["market"])
    return rows
