"""The account stage, keyed by user: wallets, pending deposits, withdrawal holds (ledger-spec §4)."""

from __future__ import annotations

from streams.core import accounts
from streams.core.engine import Booking, StageEngine
from streams.core.events import ACCOUNT, internal_event
from streams.core.model import Deposit, Reason, Rejected, Withdrawal

DEPOSIT = "dep"  # (user, "dep", deposit_id) -> Deposit
WITHDRAWAL = "wd"  # (user, "wd", withdrawal_id) -> Withdrawal


def _deposit_initiated(stage: AccountStage, book: Booking, ev: dict) -> None:
    user, asset, amount = ev["user"], ev["asset"], ev["amount"]
    record = (user, DEPOSIT, ev["deposit_id"])
    known = book.txn.get(record)
    if known is not None:
        raise Rejected(Reason.DEPOSIT_RESOLVED if known.confirmed else Reason.DEPOSIT_EXISTS,
                       "deposit_id already used")
    book.transfer(accounts.deposit_pending(user, asset), accounts.custody(asset), asset, amount,
                  "deposit_initiated")
    book.txn.put(record, Deposit(asset, amount, confirmed=False))


def _deposit_confirmed(stage: AccountStage, book: Booking, ev: dict) -> None:
    user, asset, amount = ev["user"], ev["asset"], ev["amount"]
    record = (user, DEPOSIT, ev["deposit_id"])
    known = book.txn.get(record)
    if known is None:
        # Custody may confirm a deposit it never announced: credit straight from custody.
        book.transfer(accounts.wallet(user, asset), accounts.custody(asset), asset, amount,
                      "deposit_confirmed")
    else:
        if known.confirmed:
            raise Rejected(Reason.DEPOSIT_RESOLVED, "deposit already confirmed")
        if known.asset != asset or known.amount != amount:
            raise Rejected(Reason.DEPOSIT_MISMATCH, f"initiated as {known.amount} {known.asset}")
        book.transfer(accounts.wallet(user, asset), accounts.deposit_pending(user, asset), asset,
                      amount, "deposit_confirmed")
    book.txn.put(record, Deposit(asset, amount, confirmed=True))


def _require_funds(book: Booking, user: str, asset: str, amount: int) -> None:
    available = book.balance(accounts.wallet(user, asset), asset)
    if amount > available:
        raise Rejected(Reason.INSUFFICIENT_BALANCE, f"wallet holds {available}")


def _withdrawal_requested(stage: AccountStage, book: Booking, ev: dict) -> None:
    user, asset, amount = ev["user"], ev["asset"], ev["amount"]
    record = (user, WITHDRAWAL, ev["withdrawal_id"])
    if book.txn.get(record) is not None:
        raise Rejected(Reason.WITHDRAWAL_EXISTS, "withdrawal_id already used")
    _require_funds(book, user, asset, amount)
    book.transfer(accounts.withdrawal_hold(user, asset), accounts.wallet(user, asset), asset, amount,
                  "withdrawal_hold")
    book.txn.put(record, Withdrawal(asset, amount, resolved=False))


def _resolve_withdrawal(book: Booking, ev: dict) -> tuple[tuple, Withdrawal]:
    """A withdrawal is resolved exactly once, with the amount it was requested for (AC-10)."""
    record = (ev["user"], WITHDRAWAL, ev["withdrawal_id"])
    known = book.txn.get(record)
    if known is None:
        raise Rejected(Reason.UNKNOWN_WITHDRAWAL, "no such withdrawal request")
    if known.resolved:
        raise Rejected(Reason.WITHDRAWAL_RESOLVED, "withdrawal already confirmed or rejected")
    if known.asset != ev["asset"] or known.amount != ev["amount"]:
        raise Rejected(Reason.WITHDRAWAL_MISMATCH, f"requested as {known.amount} {known.asset}")
    return record, known


def _withdrawal_confirmed(stage: AccountStage, book: Booking, ev: dict) -> None:
    record, known = _resolve_withdrawal(book, ev)
    user, asset = ev["user"], ev["asset"]
    book.transfer(accounts.custody(asset), accounts.withdrawal_hold(user, asset), asset, known.amount,
                  "withdrawal_confirmed")
    book.txn.put(record, known._replace(resolved=True))


def _withdrawal_rejected(stage: AccountStage, book: Booking, ev: dict) -> None:
    record, known = _resolve_withdrawal(book, ev)
    user, asset = ev["user"], ev["asset"]
    book.transfer(accounts.wallet(user, asset), accounts.withdrawal_hold(user, asset), asset,
                  known.amount, "withdrawal_rejected")
    book.txn.put(record, known._replace(resolved=True))


def _transfer_requested(stage: AccountStage, book: Booking, ev: dict) -> None:
    sender, receiver, asset, amount = ev["from_user"], ev["to_user"], ev["asset"], ev["amount"]
    if sender == receiver:
        raise Rejected(Reason.SAME_ACCOUNT, "from_user equals to_user")
    _require_funds(book, sender, asset, amount)
    book.transfer(accounts.transit(asset), accounts.wallet(sender, asset), asset, amount, "transfer_out")
    book.emitted.append(internal_event(ev, "TransferCredited", sender, transfer_id=ev["transfer_id"],
                                       to_user=receiver, asset=asset, amount=amount))


def _transfer_credited(stage: AccountStage, book: Booking, ev: dict) -> None:
    asset = ev["asset"]
    book.transfer(accounts.wallet(ev["to_user"], asset), accounts.transit(asset), asset, ev["amount"],
                  "transfer_in")


def _margin_transfer_requested(stage: AccountStage, book: Booking, ev: dict) -> None:
    user, asset, amount = ev["user"], ev["asset"], ev["amount"]
    _require_funds(book, user, asset, amount)
    book.transfer(accounts.transit(asset), accounts.wallet(user, asset), asset, amount, "margin_out")
    # The account stage knows no markets: the market stage validates and refunds.
    book.emitted.append(internal_event(ev, "MarginCredited", user, transfer_id=ev["transfer_id"],
                                       user=user, market=ev["market"], asset=asset, amount=amount))


def _margin_returned(stage: AccountStage, book: Booking, ev: dict) -> None:
    asset = ev["asset"]
    book.transfer(accounts.wallet(ev["user"], asset), accounts.transit(asset), asset, ev["amount"],
                  "margin_in")


class AccountStage(StageEngine):
    stage = ACCOUNT
    handlers = {  # noqa: RUF012 - a per-class constant table
        "DepositInitiated": _deposit_initiated,
        "DepositConfirmed": _deposit_confirmed,
        "WithdrawalRequested": _withdrawal_requested,
        "WithdrawalConfirmed": _withdrawal_confirmed,
        "WithdrawalRejected": _withdrawal_rejected,
        "TransferRequested": _transfer_requested,
        "TransferCredited": _transfer_credited,
        "MarginTransferRequested": _margin_transfer_requested,
        "MarginReturned": _margin_returned,
    }
