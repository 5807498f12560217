"""`shoptune data import --format labelled|spans`: a shop's own labelled extraction data, as CSV or
JSONL with a JSON label, or as typed character spans, into records of one of its schemas."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import invoke_shoptune

from shoptune.shop.reading import read_records

WARRANTY_CLAIM = {
    "type": "object",
    "description": "A shopper's warranty claim.",
    "properties": {
        "serial_number": {"type": ["string", "null"], "description": "The device's serial number as written."},
        "fault": {"enum": ["screen", "battery", "other", None], "description": "What is broken."},
    },
    "required": ["serial_number", "fault"],
    "additionalProperties": False,
}


def _shop_with_a_claim_schema(tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    assert invoke_shoptune("shop", "init", str(folder)).returncode == 0
    (folder / "schemas" / "warranty_claim.schema.json").write_text(json.dumps(WARRANTY_CLAIM), encoding="utf-8")
    return folder


def test_csv_with_json_labels_becomes_checked_records_and_bad_rows_are_named(tmp_path: Path) -> None:
    shop = _shop_with_a_claim_schema(tmp_path)
    source = tmp_path / "claims.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message", "answer"])
        writer.writerow(["My phone SN-7781 will not charge", '{"serial_number": "SN-7781", "fault": "battery"}'])
        writer.writerow(["屏幕碎了，序列号AB12", '{"fault": "screen", "serial_number": "AB12"}'])
        writer.writerow(["broken", '{"serial_number": null, "fault": "keyboard"}'])  # not in the enum
        writer.writerow(["no label", "not json"])
    out = tmp_path / "claims.jsonl"
    done = invoke_shoptune(
        "data", "import", str(source), "--format", "labelled", "--schema", "warranty_claim",
        "--text-field", "message", "--label-field", "answer", "--out", str(out), "--set", f"shop.dir={shop}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{source}:4: skipped: label fault: 'keyboard' is not one of" in done.stderr
    assert f"{source}:5: skipped: label is not JSON" in done.stderr
    records = read_records(out)
    assert [r["id"] for r in records] == ["claims-000002", "claims-000003"]
    second = records[1]
    assert second["lang"] == "zh" and second["schema"] == "warranty_claim"
    assert second["messages"][-1]["content"] == '{"serial_number":"AB12","fault":"screen"}'  # the one form
    assert second["messages"][0]["content"] == "Extract the shopper's message as warranty_claim JSON."
    checked = invoke_shoptune("data", "check", str(out), "--set", f"shop.dir={shop}")
    assert checked.returncode == 0, checked.stdout


def test_spans_become_objects_by_the_stated_rule(tmp_path: Path) -> None:
    source = tmp_path / "ner.jsonl"
    text = "我想买红色的小米手机，2000到3000之间"
    rows = [
        {"text": text, "spans": [
            {"start": 3, "end": 5, "label": "colour"}, {"start": 6, "end": 10, "label": "product"},
            {"start": 11, "end": 15, "label": "price_range"}, {"start": 16, "end": 20, "label": "price_range"},
        ]},
        {"text": "red or blue shoes", "label": [[0, 3, "colour"], [7, 11, "colour"], [12, 17, "product"]]},
        {"text": "鞋子", "label": [[0, 2, "brand"]]},
    ]  # fmt: skip
    source.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    out = tmp_path / "ner-records.jsonl"
    done = invoke_shoptune(
        "data", "import", str(source), "--format", "spans", "--schema", "product_query",
        "--map", "colour=color", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = read_records(out)
    assert json.loads(record["messages"][-1]["content"]) == {
        "product": "小米手机",
        "price_range": [2000, 3000],  # an array field collects its spans in text order, as numbers
        "color": "红色",
        "size": None,  # no span: null
    }
    assert f"{source}:2: skipped: color: 2 different spans ('red', 'blue') for one value" in done.stderr
    assert f"{source}:3: skipped: span type 'brand' is no field of the schema" in done.stderr


def test_labelled_import_needs_a_known_schema(tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "hi", "label": {}}\n', encoding="utf-8")
    missing = invoke_shoptune("data", "import", str(source), "--format", "labelled", "--out", str(tmp_path / "o"))
    assert missing.returncode == 2 and "needs --schema NAME" in missing.stderr
    unknown = invoke_shoptune(
        "data", "import", str(source), "--format", "labelled", "--schema", "invoice", "--out", str(tmp_path / "o")
    )
    assert unknown.returncode == 2 and "unknown schema 'invoice'; known: order_request, product_query" in unknown.stderr
    assert not (tmp_path / "o").exists()
