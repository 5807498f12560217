"""`shoptune data import --format labelled|spans`: a shop's own labelled extraction data, as CSV or
JSONL with a JSON label, or as typed character spans, into records of one of its schemas."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import invoke_shoptune, train_and_evaluate
from own_shops import shop_with_a_claim_schema

from shoptune.shop.reading import read_records


def test_csv_with_json_labels_becomes_checked_records_and_bad_rows_are_named(tmp_path: Path) -> None:
    shop = shop_with_a_claim_schema(tmp_path / "shop")
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


def _claims(tmp_path: Path, shop: Path, count: int) -> Path:
    faults = ("screen", "battery", "other")
    rows = [
        {
            "text": f"My device SN-{1000 + i} has a {fault} problem",
            "label": {"serial_number": f"SN-{1000 + i}", "fault": fault},
        }
        for i, fault in ((i, faults[i % 3]) for i in range(count))
    ]
    source = tmp_path / "claims-source.jsonl"
    source.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    out = tmp_path / "claims.jsonl"
    done = invoke_shoptune(
        "data", "import", str(source), "--format", "labelled", "--schema", "warranty_claim", "--out", str(out),
        "--set", f"shop.dir={shop}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def _data_settings(shop: Path, claims: Path, share: float, train: int, val: int, test: int) -> list[str]:
    """`--set` flags for the shop and a data section of `claims` at `share` (build and train alike)."""
    return [
        "--set", f"shop.dir={shop}", "--set", f"data.imported=[{claims}]", "--set", f"data.imported_share={share}",
        "--set", f"data.train_records={train}", "--set", f"data.val_records={val}",
        "--set", f"data.test_records={test}",
    ]  # fmt: skip


def _build(shop: Path, claims: Path, out: Path, share: float, *sizes: int, limit: bool = True) -> object:
    """`data build` on the tiny-qwen config; with `limit`, records are held to its token limit
    (tiny-qwen2.5's tokenizer, so the test needs the prepared model)."""
    settings = _data_settings(shop, claims, share, *sizes)
    no_limit = [] if limit else ["--no-length-limit"]
    return invoke_shoptune(
        "data", "build", "--config", "configs/tiny-qwen.yaml", "--out", str(out), *settings, *no_limit
    )


def test_the_build_mixes_imported_records_into_every_split_without_sharing_a_text(
    tmp_path: Path, tiny_qwen_dir: Path
) -> None:
    shop = shop_with_a_claim_schema(tmp_path / "shop")
    claims = _claims(tmp_path, shop, 40)
    out = tmp_path / "data"
    done = _build(shop, claims, out, 0.5, 40, 10, 10)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["imported"]["per_split"] == {"train": 20, "val": 5, "test": 5}
    assert manifest["imported"]["available"] == 40 and manifest["imported"]["files_sha256"][str(claims)]
    assert set(manifest["split_hygiene"]["user_messages_shared_between_splits"].values()) == {0}
    texts = {}
    for split, size in (("train", 40), ("val", 10), ("test", 10)):
        records = read_records(out / f"{split}.jsonl")
        imported = [r for r in records if r.get("schema") == "warranty_claim"]
        assert len(records) == size and len(imported) == size // 2
        texts[split] = {r["messages"][1]["content"] for r in imported}
    assert not (texts["train"] & texts["val"] or texts["train"] & texts["test"] or texts["val"] & texts["test"])
    again = _build(shop, claims, tmp_path / "again", 0.5, 40, 10, 10)
    assert again.returncode == 0
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == (out / "train.jsonl").read_bytes()  # deterministic


def test_a_build_of_imported_records_only_and_one_they_cannot_fill(tmp_path: Path) -> None:
    shop = shop_with_a_claim_schema(tmp_path / "shop")
    claims = _claims(tmp_path, shop, 30)
    only = _build(shop, claims, tmp_path / "only", 1.0, 20, 5, 5, limit=False)
    assert only.returncode == 0, only.stderr
    train = read_records(tmp_path / "only" / "train.jsonl")
    assert len(train) == 20 and {r["schema"] for r in train} == {"warranty_claim"}
    short = _build(shop, claims, tmp_path / "short", 1.0, 30, 5, 5, limit=False)
    assert short.returncode == 2
    # train takes all 30: nothing is left for val, and the message says so with the counts
    assert "data.imported_share 1.0 asks for 5 imported val records" in short.stderr
    assert "has 0 left for it (30 in all, 0 repeats, 0 too long)" in short.stderr
    assert not (tmp_path / "short" / "train.jsonl").exists()


def test_a_run_trains_and_evaluates_on_the_shops_own_records_only(tmp_path: Path, tiny_qwen_dir: Path) -> None:
    shop = shop_with_a_claim_schema(tmp_path / "shop")
    claims, data = _claims(tmp_path, shop, 30), tmp_path / "only"
    settings = _data_settings(shop, claims, 1.0, 8, 2, 3)
    assert _build(shop, claims, data, 1.0, 8, 2, 3).returncode == 0
    run, metrics = train_and_evaluate(data, tmp_path, *settings)
    final = json.loads((run / "manifest.json").read_text(encoding="utf-8"))["final_metrics"]
    assert final["steps"] == 4 and (run / "final" / "adapter" / "adapter_model.safetensors").is_file()
    assert metrics["extraction_records"] == 3 and "schema_valid_rate" in metrics
    assert sorted(metrics["field_recall"]) == ["fault", "serial_number"]  # scored on the shop's own fields


TITLE_ATTRIBUTES = {
    "type": "object",
    "properties": {
        "brand": {"type": ["string", "null"], "description": "The maker named in the title."},
        "storage_gb": {"type": ["integer", "null"], "description": "Storage in GB."},
        "colors": {"type": ["array", "null"], "items": {"type": "string"}, "description": "Colours offered."},
    },
    "required": ["brand", "storage_gb", "colors"],
    "additionalProperties": False,
}


def test_one_column_per_field_as_attribute_tables_and_intent_logs_come(tmp_path: Path) -> None:
    """Public e-commerce data shapes: product titles with attribute columns; support messages with an
    intent column (the example's order_request), imported without code."""
    shop = shop_with_a_claim_schema(tmp_path / "shop")
    (shop / "schemas" / "title_attributes.schema.json").write_text(json.dumps(TITLE_ATTRIBUTES), encoding="utf-8")
    titles = tmp_path / "titles.csv"
    titles.write_text(
        "title,maker,storage_gb,colors,listing_id\n"
        "Apple iPhone 15 128GB Black/Blue,Apple,128,black;blue,881\n"
        "Generic USB-C cable 1m,,,,882\n"
        "Xiaomi 14 Pro 512 GB,Xiaomi,lots,,883\n",
        encoding="utf-8",
    )
    out = tmp_path / "titles.jsonl"
    done = invoke_shoptune(
        "data", "import", str(titles), "--format", "columns", "--schema", "title_attributes", "--text-field",
        "title", "--map", "maker=brand", "--out", str(out), "--set", f"shop.dir={shop}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{titles}:4: skipped: storage_gb: 'lots' is not a number" in done.stderr
    first, second = (json.loads(r["messages"][-1]["content"]) for r in read_records(out))
    assert first == {"brand": "Apple", "storage_gb": 128, "colors": ["black", "blue"]}
    assert second == {"brand": None, "storage_gb": None, "colors": None}

    intents = tmp_path / "support.jsonl"
    rows = [
        {"text": "where is my parcel YX202611250001", "intent": "order_status", "order_id": "YX202611250001"},
        {"text": "I want my money back", "intent": "refund"},
        {"text": "hello", "intent": "greeting"},
    ]
    intents.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    done = invoke_shoptune(
        "data", "import", str(intents), "--format", "columns", "--schema", "order_request",
        "--out", str(tmp_path / "intents.jsonl"), "--set", f"shop.dir={shop}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{intents}:3: skipped: label intent: 'greeting' is not one of" in done.stderr
    labels = [json.loads(r["messages"][-1]["content"]) for r in read_records(tmp_path / "intents.jsonl")]
    assert labels[1] == {"intent": "refund", "order_id": None, "product": None, "reason": None}


def test_imported_records_take_the_builds_extraction_instruction(tmp_path: Path) -> None:
    """Imported with one config (`name`: the schema's name only), built with another (`full`): the
    build writes the instruction its own config trains and serves with."""
    shop = shop_with_a_claim_schema(tmp_path / "shop")
    claims = _claims(tmp_path, shop, 12)
    out = tmp_path / "full"
    done = invoke_shoptune(
        "data", "build", "--config", "configs/tiny-qwen.yaml", "--out", str(out), "--no-length-limit",
        *_data_settings(shop, claims, 0.5, 8, 2, 2), "--set", "data.extraction_prompt=full",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported = [r for r in read_records(out / "train.jsonl") if r.get("schema") == "warranty_claim"]
    assert imported and all("The device's serial number as written." in r["messages"][0]["content"] for r in imported)
    assert read_records(claims)[0]["messages"][0]["content"] == "Extract the shopper's message as warranty_claim JSON."
