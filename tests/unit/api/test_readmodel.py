"""The API's read model: which store records are a user's, kept current from write sets. No services."""

from __future__ import annotations

from streams.api.readmodel import UserIndex, account_owner, balances, positions, record_owner
from streams.core.events import ACCOUNT, MARKET
from streams.core.ledger import Ledger
from tests.unit.core.builders import (
    USDT,
    deposit,
    fill,
    funded,
    listed,
    margin_in,
    mark,
    run,
    transfer,
    withdrawal,
)


def _ledger_with_trades() -> tuple[Ledger, list]:
    ledger = Ledger()
    outcomes = run(ledger, listed(), listed("ETH-PERP"), mark(50_000_00, 1))
    funded(ledger, "alice", "bob", "carol")
    outcomes += run(ledger, deposit("alice", 5 * USDT, asset="BTC"), fill(1, "alice", "bob", 100, 50_000_00),
                    transfer("alice", "dave", 7 * USDT), withdrawal("WithdrawalRequested", "carol", 3 * USDT))
    return ledger, outcomes


def test_account_owner_reads_user_accounts_only() -> None:
    assert account_owner("user:alice:wallet:USDT") == "alice"
    assert account_owner("user:alice:margin:BTC-PERP") == "alice"
    assert account_owner("external:custody:USDT") is None
    assert account_owner("system:transit:USDT") is None
    assert account_owner("market:BTC-PERP:fees") is None
    assert account_owner("user:") is None
    assert account_owner("user::wallet") is None


def test_record_owner_by_stage() -> None:
    assert record_owner(ACCOUNT, ("alice", "b", "user:alice:wallet:USDT", "USDT")) == "alice"
    assert record_owner(ACCOUNT, ("alice", "b", "external:custody:USDT", "USDT")) is None  # alice's share
    assert record_owner(ACCOUNT, ("alice", "dep", "d1")) is None
    assert record_owner(MARKET, ("BTC-PERP", "p", "bob")) == "bob"
    assert record_owner(ACCOUNT, ("BTC-PERP", "p", "bob")) is None
    assert record_owner(MARKET, ("~chain", 0)) is None
    assert record_owner(MARKET, ()) is None


def test_an_index_kept_from_write_sets_equals_one_built_from_the_store() -> None:
    # trades that open and close positions, transfers and withdrawals; every write set followed
    fresh = Ledger()
    followed = {ACCOUNT: UserIndex(ACCOUNT), MARKET: UserIndex(MARKET)}
    replayed = run(fresh, listed(event_id="a"), listed("ETH-PERP", event_id="b"), mark(50_000_00, 1, event_id="c"))
    for user in ("alice", "bob", "carol"):
        replayed += run(fresh, deposit(user, 10_000 * USDT), margin_in(user, 1_000 * USDT))
    replayed += run(fresh, deposit("alice", 5 * USDT, asset="BTC"), fill(1, "alice", "bob", 100, 50_000_00),
                    transfer("alice", "dave", 7 * USDT), withdrawal("WithdrawalRequested", "carol", 3 * USDT),
                    fill(2, "carol", "alice", 100, 50_000_00), fill(3, "bob", "carol", 50, 50_000_00))
    for outcome in replayed:
        followed[outcome.stage].update(outcome.writes)
    for stage in (fresh.account, fresh.market):
        built = UserIndex.build(stage.stage, (record for record, _ in stage.store.items()))
        assert built.records == followed[stage.stage].records
        assert built.records  # not trivially empty


def test_balances_and_positions_of_a_user() -> None:
    ledger, _ = _ledger_with_trades()
    account = UserIndex.build(ACCOUNT, (r for r, _ in ledger.account.store.items()))
    market = UserIndex.build(MARKET, (r for r, _ in ledger.market.store.items()))
    wallets = balances(ACCOUNT, ledger.account.store, account, "alice")
    assert [(r["account"], r["asset"]) for r in wallets] == [
        ("user:alice:wallet:BTC", "BTC"), ("user:alice:wallet:USDT", "USDT")]
    assert wallets[1]["balance"] == 10_000 * USDT - 1_000 * USDT - 7 * USDT
    assert all("market" not in r for r in wallets)
    margins = balances(MARKET, ledger.market.store, market, "alice")
    assert [(r["account"], r["market"]) for r in margins] == [("user:alice:margin:BTC-PERP", "BTC-PERP")]
    assert margins[0]["balance"] == ledger.balances()[("user:alice:margin:BTC-PERP", "USDT")]
    held = balances(ACCOUNT, ledger.account.store, account, "carol")
    assert {r["account"]: r["balance"] for r in held}["user:carol:withdrawal_hold:USDT"] == 3 * USDT
    assert account.knows("dave") and not market.knows("dave")  # a transfer's recipient has a wallet
    assert not account.knows("nobody")

    (long,) = positions(ledger.market.store, market, "alice")
    assert long["market"] == "BTC-PERP" and long["size"] == 100 and long["entry_price"] == 50_000_00
    assert long["state"] == "healthy" and long["mark_price"] == 50_000_00 and long["settlement_asset"] == "USDT"
    (short,) = positions(ledger.market.store, market, "bob")
    assert short["size"] == -100
    assert positions(ledger.market.store, market, "carol") == []


def test_a_closed_position_is_not_listed() -> None:
    ledger, _ = _ledger_with_trades()
    run(ledger, fill(2, "bob", "alice", 100, 50_000_00))
    market = UserIndex.build(MARKET, (r for r, _ in ledger.market.store.items()))
    assert positions(ledger.market.store, market, "alice") == []
    assert market.knows("alice")  # the margin account remains
