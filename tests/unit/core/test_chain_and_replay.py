"""The hash chain (AC-41), determinism (AC-40) and the `perpledger replay` contract."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.cli import main
from streams.core.hashchain import GENESIS_HASH, _canonical, batch_hash, first_broken_link
from streams.core.ledger import Ledger
from streams.core.model import Balance, PositionView, Posting
from tests.unit.core.builders import USDT, deposit, fill, listed, mark, run, transfer


def _scenario() -> list[dict]:
    events = [listed(event_id="l1")]
    for n, user in enumerate(("alice", "bob")):
        events.append(deposit(user, 10_000 * USDT, deposit_id="d", event_id=f"d{n}", ts_us=2))
        events.append({**transfer(user, "carol", 5, event_id=f"t{n}"), "ts_us": 3})
        events.append({"type": "MarginTransferRequested", "event_id": f"m{n}", "source": "api", "ts_us": 4,
                       "transfer_id": "m", "user": user, "market": "BTC-PERP", "asset": "USDT",
                       "amount": 600 * USDT})
    events += [fill(1, "alice", "bob", 100, 5_000_000, buyer_fee=7, event_id="f1"),
               mark(4_600_000, 1, event_id="crash")]
    return events


def test_ac41_every_batch_links_to_the_previous_and_verifies() -> None:
    ledger = Ledger()
    outcomes = run(ledger, *_scenario())
    for stage in ("account", "market"):
        batches = [o.batch for o in outcomes if o.batch is not None and o.stage == stage]
        assert batches[0].prev_hash == GENESIS_HASH
        assert [b.batch_seq for b in batches] == list(range(1, len(batches) + 1))
        assert first_broken_link(batches) is None
        assert ledger.final_hashes()[stage] == batches[-1].hash
        # tampering with any posting breaks the link where it happened
        forged = batches[2]._replace(postings=batches[2].postings[:1])
        assert batch_hash(forged) != batches[2].hash
        assert first_broken_link([*batches[:2], forged, *batches[3:]]) == 2


def test_ac01_every_batch_balances_per_asset() -> None:
    for outcome in run(Ledger(), *_scenario()):
        if outcome.batch is not None:
            totals: dict[str, int] = {}
            for posting in outcome.batch.postings:
                totals[posting.asset] = totals.get(posting.asset, 0) + posting.amount
            assert all(v == 0 for v in totals.values())


def test_ac40_replay_is_deterministic() -> None:
    first, second = Ledger(), Ledger()
    assert run(first, *_scenario()) == run(second, *_scenario())
    assert first.final_hashes() == second.final_hashes()


def _replay(tmp_path: Path, lines: list[str], *extra: str) -> dict:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.json"
    source.write_text("\n".join(lines) + "\n")
    assert main(["replay", "--input", str(source), "--output", str(target), *extra]) == 0
    return json.loads(target.read_text())


def test_replay_cli_output_contract(tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in _scenario()]
    lines += ["not json", "[1, 2]", '{"event_id": 5}', json.dumps(_scenario()[1])]  # 3 malformed, 1 duplicate
    result = _replay(tmp_path, lines, "--journal")
    assert set(result) == {"balances", "positions", "rejections", "signals", "duplicates", "hashes", "journal"}
    assert result["balances"] == sorted(result["balances"], key=lambda r: (r["account"], r["asset"]))
    assert {"account": "user:carol:wallet:USDT", "asset": "USDT", "balance": 10} in result["balances"]
    assert {"account": "user:alice:margin:BTC-PERP", "asset": "USDT", "balance": 600 * USDT - 7} in result["balances"]
    assert all(row["balance"] != 0 for row in result["balances"])
    assert result["positions"] == [
        {"market": "BTC-PERP", "user": "alice", "size": 100, "entry_price": 5_000_000, "state": "in_liquidation"},
        {"market": "BTC-PERP", "user": "bob", "size": -100, "entry_price": 5_000_000, "state": "healthy"},
    ]
    n = len(_scenario())
    assert result["rejections"] == [
        {"event_id": None, "reason": "INVALID_EVENT", "line": n + 1},
        {"event_id": None, "reason": "INVALID_EVENT", "line": n + 2},
        {"event_id": None, "reason": "INVALID_EVENT", "line": n + 3},
    ]
    assert result["signals"] == [
        {"type": "ReduceOnlyEntered", "market": "BTC-PERP", "user": "alice"},
        {"type": "LiquidationTriggered", "liquidation_id": "liq:BTC-PERP:alice:crash", "market": "BTC-PERP",
         "user": "alice"},
    ]
    assert result["duplicates"] == 1
    assert set(result["hashes"]) == {"account", "market"}
    journal = {entry["event_id"]: entry["postings"] for entry in result["journal"]}
    assert journal["t0:TransferCredited"] == [
        {"account": "user:carol:wallet:USDT", "asset": "USDT", "amount": 5, "kind": "transfer_in"},
        {"account": "system:transit:USDT", "asset": "USDT", "amount": -5, "kind": "transfer_in"},
    ]


def test_ac40_replay_output_is_byte_identical(tmp_path: Path) -> None:
    lines = [json.dumps(e) for e in _scenario()]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _replay(tmp_path / "a", lines, "--journal")
    _replay(tmp_path / "b", lines, "--journal")
    assert (tmp_path / "a" / "out.json").read_bytes() == (tmp_path / "b" / "out.json").read_bytes()


def test_replay_cli_fails_only_when_the_input_cannot_be_read(tmp_path: Path) -> None:
    assert main(["replay", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2


def test_the_engine_rejects_events_of_the_other_stage() -> None:
    ledger = Ledger()
    assert ledger.account.apply(listed()).reason == "INVALID_EVENT"
    assert ledger.market.apply(deposit("alice", 1)).reason == "INVALID_EVENT"


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12) | st.sampled_from(("", "user:u1:margin:BTC-PERP", 'q"\\\n'))
_LEAF = _TEXT | st.integers() | st.integers(min_value=-(10**40), max_value=10**40)
_BODY = st.recursive(st.tuples(_LEAF) | st.tuples(), lambda inner: st.lists(inner | _LEAF, max_size=5).map(tuple),
                     max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(_BODY, st.sampled_from((Posting, Balance, PositionView)), st.lists(_TEXT | st.integers(), min_size=5,
                                                                          max_size=5))
def test_the_canonical_bytes_are_those_of_the_standard_json_encoder(body: tuple, record: type,
                                                                    fields: list) -> None:
    """The hashed bytes are defined as compact ASCII JSON (AC-41): the encoder the chain reuses
    gives exactly json.dumps's bytes, named tuples included."""
    named = record(*fields[:len(record._fields)])
    for value in (body, (body, named), (named,), [list(body), named]):  # lists too: the sink's JSON columns
        assert _canonical(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode()
