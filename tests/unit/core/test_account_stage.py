"""Golden scenarios of the account stage: deposits, withdrawals, transfers (ledger-spec §4)."""

from __future__ import annotations

from streams.core.ledger import Ledger
from tests.unit.core.builders import (
    USDT,
    balance,
    deposit,
    deposit_initiated,
    margin_in,
    one,
    run,
    transfer,
    withdrawal,
)


def test_ac01_deposit_initiated_then_confirmed_moves_pending_to_wallet() -> None:
    ledger = Ledger()
    initiated = one(ledger, deposit_initiated("alice", 250 * USDT, deposit_id="d1"))
    assert [(p.account, p.amount) for p in initiated.batch.postings] == [
        ("user:alice:deposit_pending:USDT", 250_000_000),
        ("external:custody:USDT", -250_000_000),
    ]
    confirmed = one(ledger, deposit("alice", 250 * USDT, deposit_id="d1"))
    assert [(p.account, p.amount) for p in confirmed.batch.postings] == [
        ("user:alice:wallet:USDT", 250_000_000),
        ("user:alice:deposit_pending:USDT", -250_000_000),
    ]
    assert ledger.balances() == {
        ("external:custody:USDT", "USDT"): -250_000_000,
        ("user:alice:wallet:USDT", "USDT"): 250_000_000,
    }


def test_deposit_confirmed_without_initiation_credits_from_custody() -> None:
    ledger = Ledger()
    outcome = one(ledger, deposit("alice", 7, deposit_id="d9"))
    assert [(p.account, p.amount) for p in outcome.batch.postings] == [
        ("user:alice:wallet:USDT", 7), ("external:custody:USDT", -7)]


def test_deposit_mismatch_resolved_and_exists_reason_codes() -> None:
    ledger = Ledger()
    run(ledger, deposit_initiated("alice", 100, deposit_id="d1"))
    assert one(ledger, deposit_initiated("alice", 100, deposit_id="d1")).reason == "DEPOSIT_EXISTS"
    assert one(ledger, deposit("alice", 99, deposit_id="d1")).reason == "DEPOSIT_MISMATCH"
    assert one(ledger, deposit("alice", 100, deposit_id="d1", asset="BTC")).reason == "DEPOSIT_MISMATCH"
    assert one(ledger, deposit("alice", 100, deposit_id="d1")).status == "applied"
    assert one(ledger, deposit("alice", 100, deposit_id="d1")).reason == "DEPOSIT_RESOLVED"
    assert one(ledger, deposit_initiated("alice", 100, deposit_id="d1")).reason == "DEPOSIT_RESOLVED"
    # deposit ids are scoped per user: bob's d1 is another deposit
    assert one(ledger, deposit("bob", 5, deposit_id="d1")).status == "applied"
    assert balance(ledger, "user:alice:wallet:USDT") == 100
    assert balance(ledger, "user:alice:deposit_pending:USDT") == 0


def test_ac10_withdrawal_is_resolved_exactly_once() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 1_000))
    assert one(ledger, withdrawal("WithdrawalRequested", "alice", 1_001)).reason == "INSUFFICIENT_BALANCE"
    requested = one(ledger, withdrawal("WithdrawalRequested", "alice", 400, withdrawal_id="w1"))
    assert [(p.account, p.amount) for p in requested.batch.postings] == [
        ("user:alice:withdrawal_hold:USDT", 400), ("user:alice:wallet:USDT", -400)]
    assert one(ledger, withdrawal("WithdrawalRequested", "alice", 1, withdrawal_id="w1")).reason == (
        "WITHDRAWAL_EXISTS")
    assert one(ledger, withdrawal("WithdrawalConfirmed", "alice", 399, withdrawal_id="w1")).reason == (
        "WITHDRAWAL_MISMATCH")
    assert one(ledger, withdrawal("WithdrawalConfirmed", "alice", 400, withdrawal_id="w2")).reason == (
        "UNKNOWN_WITHDRAWAL")
    confirmed = one(ledger, withdrawal("WithdrawalConfirmed", "alice", 400, withdrawal_id="w1"))
    assert [(p.account, p.amount) for p in confirmed.batch.postings] == [
        ("external:custody:USDT", 400), ("user:alice:withdrawal_hold:USDT", -400)]
    # the reference design let a confirmed withdrawal be rejected too, paying it out twice
    assert one(ledger, withdrawal("WithdrawalRejected", "alice", 400, withdrawal_id="w1")).reason == (
        "WITHDRAWAL_RESOLVED")
    assert one(ledger, withdrawal("WithdrawalConfirmed", "alice", 400, withdrawal_id="w1")).reason == (
        "WITHDRAWAL_RESOLVED")
    assert balance(ledger, "user:alice:wallet:USDT") == 600
    assert balance(ledger, "external:custody:USDT") == -600


def test_ac10_rejected_withdrawal_returns_the_hold() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 1_000), withdrawal("WithdrawalRequested", "alice", 300))
    rejected = one(ledger, withdrawal("WithdrawalRejected", "alice", 300))
    assert [(p.account, p.amount) for p in rejected.batch.postings] == [
        ("user:alice:wallet:USDT", 300), ("user:alice:withdrawal_hold:USDT", -300)]
    assert one(ledger, withdrawal("WithdrawalConfirmed", "alice", 300)).reason == "WITHDRAWAL_RESOLVED"
    assert balance(ledger, "user:alice:wallet:USDT") == 1_000


def test_ac03_transfer_crosses_partitions_through_transit() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 1_000))
    requested, credited = ledger.submit(transfer("alice", "bob", 300, event_id="tx1"))
    assert requested.key == "alice" and credited.key == "bob"
    assert credited.event_id == "tx1:TransferCredited"
    assert credited.batch.origin_key == "alice"
    assert [(p.account, p.amount) for p in requested.batch.postings] == [
        ("system:transit:USDT", 300), ("user:alice:wallet:USDT", -300)]
    assert [(p.account, p.amount) for p in credited.batch.postings] == [
        ("user:bob:wallet:USDT", 300), ("system:transit:USDT", -300)]
    assert balance(ledger, "system:transit:USDT") == 0
    assert balance(ledger, "user:bob:wallet:USDT") == 300


def test_transfer_rejections() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 100))
    assert one(ledger, transfer("alice", "alice", 1)).reason == "SAME_ACCOUNT"
    assert one(ledger, transfer("alice", "bob", 101)).reason == "INSUFFICIENT_BALANCE"
    # SAME_ACCOUNT needs no state, so it wins over the balance check
    assert one(ledger, transfer("alice", "alice", 101)).reason == "SAME_ACCOUNT"


def test_margin_transfer_needs_wallet_funds() -> None:
    ledger = Ledger()
    run(ledger, deposit("alice", 100))
    assert one(ledger, margin_in("alice", 101)).reason == "INSUFFICIENT_BALANCE"
