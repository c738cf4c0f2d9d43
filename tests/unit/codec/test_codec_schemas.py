"""The schema files match ledger-spec §1/§4 and the wire conventions of architecture §3."""

from __future__ import annotations

import json

import pytest
from fastavro.schema import load_schema, parse_schema

from streams.codec import NAMESPACE, SchemaCatalog, default_schema_dir, fingerprint64

ENVELOPE = ["event_id", "source", "ts_us"]
INTERNAL = ["origin_key", "auth_tag"]

# ledger-spec §4, field lists in order (envelope and internal fields added below).
SPEC_FIELDS = {
    "DepositInitiated": ["deposit_id", "user", "asset", "amount"],
    "DepositConfirmed": ["deposit_id", "user", "asset", "amount"],
    "WithdrawalRequested": ["withdrawal_id", "user", "asset", "amount"],
    "WithdrawalConfirmed": ["withdrawal_id", "user", "asset", "amount"],
    "WithdrawalRejected": ["withdrawal_id", "user", "asset", "amount", "reason"],
    "TransferRequested": ["transfer_id", "from_user", "to_user", "asset", "amount"],
    "TransferCredited": ["transfer_id", "to_user", "asset", "amount"],
    "MarginTransferRequested": ["transfer_id", "user", "market", "asset", "amount"],
    "MarginReturned": ["transfer_id", "user", "asset", "amount"],
    "MarketListed": [
        "market", "settlement_asset", "settlement_decimals", "price_decimals", "size_decimals",
        "initial_margin_ppm", "maintenance_margin_ppm", "liquidation_fee_ppm",
    ],
    "RiskParamUpdate": ["market", "initial_margin_ppm", "maintenance_margin_ppm", "liquidation_fee_ppm"],
    "MarkPriceUpdate": ["market", "price", "price_seq"],
    "TradeFill": ["market", "trade_id", "seq", "price", "quantity", "buyer", "seller", "buyer_fee", "seller_fee"],
    "FundingRateSnapshot": ["market", "epoch", "rate_ppb", "price"],
    "FundingEpochSettle": ["market", "epoch"],
    "LiquidationFill": [
        "market", "liquidation_id", "trade_id", "seq", "price", "quantity", "liquidated_user", "counterparty",
        "counterparty_fee",
    ],
    "LiquidationCompleted": ["market", "liquidation_id"],
    "MarginCredited": ["transfer_id", "user", "market", "asset", "amount"],
    "MarginWithdrawRequested": ["transfer_id", "user", "market", "amount"],
    "InsuranceFunded": ["market", "amount"],
}  # fmt: skip
INTERNAL_EVENTS = {"TransferCredited", "MarginReturned", "MarginCredited"}
OUTPUTS = {"JournalBatch", "Rejection", "Signal", "DeadLetter"}
DECIMAL_NAMES = {
    "amount", "price", "quantity", "buyer_fee", "seller_fee", "counterparty_fee", "balance", "size",
    "entry_price",
}  # fmt: skip
LONG_NAMES = {"ts_us", "seq", "price_seq", "epoch", "rate_ppb", "batch_seq", "input_offset", "offset"}


def _branches(t):
    return [b for b in t if b != "null"] if isinstance(t, list) else [t]


def _is_decimal(t) -> bool:
    return (
        isinstance(t, dict)
        and t.get("type") == "bytes"
        and t.get("logicalType") == "decimal"
        and t.get("precision") == 38
        and t.get("scale") == 0
    )


@pytest.fixture(scope="module")
def catalog() -> SchemaCatalog:
    return SchemaCatalog.load()


def test_one_file_per_record_and_nothing_else(catalog: SchemaCatalog) -> None:
    assert set(catalog.current) == set(SPEC_FIELDS) | OUTPUTS


@pytest.mark.parametrize("name", sorted(SPEC_FIELDS))
def test_event_fields_follow_the_spec(catalog: SchemaCatalog, name: str) -> None:
    schema = catalog.current[name].schema
    assert schema["namespace"] == NAMESPACE
    expected = ENVELOPE + SPEC_FIELDS[name] + (INTERNAL if name in INTERNAL_EVENTS else [])
    assert [f["name"] for f in schema["fields"]] == expected
    for field in schema["fields"]:
        t = field["type"]
        if field["name"] in DECIMAL_NAMES:
            assert _is_decimal(t), field
        elif field["name"] in LONG_NAMES or field["name"].endswith(("_ppm", "_ppb", "_decimals")):
            assert t == "long", field
        elif field["name"] == "auth_tag":
            assert t == "bytes"
        else:
            assert t == "string", field


def test_no_type_field_anywhere(catalog: SchemaCatalog) -> None:
    # The event type is the record name; a "type" field would collide with the dict's "type" key.
    for rec in catalog.current.values():
        assert "type" not in [f["name"] for f in rec.schema["fields"]]


def test_every_field_has_a_doc(catalog: SchemaCatalog) -> None:
    def walk(schema):
        assert schema.get("doc"), schema["name"]
        for field in schema["fields"]:
            assert field.get("doc"), f"{schema['name']}.{field['name']}"
            for t in _branches(field["type"]):
                if isinstance(t, dict) and t.get("type") == "array" and isinstance(t["items"], dict):
                    walk(t["items"])

    for rec in catalog.current.values():
        walk(rec.schema)


def test_money_docs_name_their_unit(catalog: SchemaCatalog) -> None:
    for rec in catalog.current.values():
        for field in rec.schema["fields"]:
            if field["name"] in ("amount", "buyer_fee", "seller_fee", "counterparty_fee"):
                assert "minor units" in field["doc"], f"{rec.name}.{field['name']}"
            if field["name"] == "price":
                assert "10^price_decimals" in field["doc"], f"{rec.name}.{field['name']}"
            if field["name"].endswith("_ppm"):
                assert "parts per million" in field["doc"]


def test_output_records(catalog: SchemaCatalog) -> None:
    def fields(name):
        return {f["name"]: f["type"] for f in catalog.current[name].schema["fields"]}

    jb = fields("JournalBatch")
    assert list(jb) == [
        "stage", "key", "origin_key", "event_id", "event_type", "ts_us", "input_topic", "input_partition",
        "input_offset", "batch_seq", "payload_json", "postings", "balances", "positions", "prev_hash", "hash",
    ]  # fmt: skip
    assert jb["input_partition"] == ["null", "int"] and jb["input_offset"] == ["null", "long"]
    posting = jb["postings"]["items"]
    assert posting["name"] == "Posting"
    assert [f["name"] for f in posting["fields"]] == ["posting_id", "account", "asset", "amount", "kind"]
    assert [f["name"] for f in jb["balances"]["items"]["fields"]] == ["account", "asset", "balance"]
    assert [f["name"] for f in jb["positions"]["items"]["fields"]] == [
        "market", "user", "size", "entry_price", "state",
    ]  # fmt: skip
    rej = fields("Rejection")
    assert list(rej) == [
        "stage", "key", "event_id", "event_type", "reason", "detail", "ts_us", "input_topic", "input_partition",
        "input_offset", "payload_json",
    ]  # fmt: skip
    assert rej["key"] == ["null", "string"] and rej["ts_us"] == ["null", "long"]
    sig = fields("Signal")
    assert list(sig) == [
        "stage", "key", "signal_type", "event_id", "ts_us", "market", "user", "liquidation_id", "amount",
    ]  # fmt: skip
    assert sig["amount"][0] == "null" and _is_decimal(sig["amount"][1])
    dl = fields("DeadLetter")
    assert dl == {
        "topic": "string", "partition": "int", "offset": "long", "key": ["null", "bytes"], "value": "bytes",
        "error": "string", "error_kind": "string",
    }  # fmt: skip


def test_nullable_fields_default_to_null(catalog: SchemaCatalog) -> None:
    for rec in catalog.current.values():
        for field in rec.schema["fields"]:
            if isinstance(field["type"], list):
                assert field["type"][0] == "null" and field.get("default", "missing") is None, field


def test_topic_unions() -> None:
    catalog = SchemaCatalog.load()
    account = {
        "DepositInitiated", "DepositConfirmed", "WithdrawalRequested", "WithdrawalConfirmed", "WithdrawalRejected",
        "TransferRequested", "MarginTransferRequested", "TransferCredited", "MarginReturned",
    }  # fmt: skip
    assert set(catalog.topics["ledger.account-events"]) == account
    assert set(catalog.topics["ledger.market-events"]) == set(SPEC_FIELDS) - account
    assert catalog.topics["ledger.journal"] == ("JournalBatch",)
    assert catalog.topics["ledger.rejections"] == ("Rejection",)
    assert catalog.topics["ledger.signals"] == ("Signal",)
    assert catalog.topics["ledger.dlq"] == ("DeadLetter",)
    parse_schema(catalog.topic_union("ledger.market-events"))


def test_readme_topic_table_matches_topics_json() -> None:
    readme = (default_schema_dir() / "README.md").read_text()
    topics = json.loads((default_schema_dir() / "topics.json").read_text())
    for topic, spec in topics.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{topic}`"))
        for full in spec["records"]:
            assert f"`{full.rsplit('.', 1)[-1]}`" in row, (topic, full)


@pytest.mark.parametrize("path", sorted(default_schema_dir().glob("*.avsc")), ids=lambda p: p.name)
def test_files_load_with_fastavro_load_schema(path) -> None:
    parsed = load_schema(str(path))
    assert parsed["name"] == f"{NAMESPACE}.{path.stem}"


def test_crc64_avro_matches_the_avro_spec_vector() -> None:
    # From Avro's share/test/data/schema-tests.txt: the 64-bit Rabin fingerprint of "int".
    assert fingerprint64("int") == 8247732601305521295


def test_fingerprint_matches_an_independent_crc64() -> None:
    from fastavro.schema import to_parsing_canonical_form

    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)

    def crc(data: bytes) -> int:
        fp = empty
        for byte in data:
            fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
        return fp

    catalog = SchemaCatalog.load()
    for rec in catalog.current.values():
        assert rec.fingerprint == crc(to_parsing_canonical_form(rec.schema).encode())
        assert rec.single_object_header == b"\xc3\x01" + rec.fingerprint.to_bytes(8, "little")
    assert len({r.fingerprint for r in catalog.current.values()}) == len(catalog.current)
