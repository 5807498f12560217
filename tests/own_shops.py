"""A shop folder of its own for the tests of `shop.dir`: the example shop's data (as `shop init`
writes it) plus a third extraction schema, `warranty_claim`, that no code knows."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from shoptune.shop.folder import init_shop

WARRANTY_CLAIM = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "A shopper's warranty claim for a device.",
    "type": "object",
    "properties": {
        "serial_number": {"type": ["string", "null"], "description": "The device's serial number as written."},
        "fault": {"enum": ["screen", "battery", "other", None], "description": "What is broken."},
    },
    "required": ["serial_number", "fault"],
    "additionalProperties": False,
}


def shop_with_a_claim_schema(folder: Path) -> Path:
    """A new shop at `folder` with `schemas/warranty_claim.schema.json` added; the folder."""
    init_shop(folder)
    (folder / "schemas" / "warranty_claim.schema.json").write_text(json.dumps(WARRANTY_CLAIM), encoding="utf-8")
    return folder


FAULTS = {"screen": ("屏幕", "screen"), "battery": ("电池", "battery"), "other": ("按键", "buttons")}
DEVICES = (("手机", "phone"), ("平板", "tablet"), ("耳机", "headphones"), ("手表", "watch"))
CLAIM_FORMS = {
    "zh": ("我的{device}序列号{serial}，{fault}坏了", "{device}的{fault}有问题，序列号是{serial}",
           "{fault}出故障了，{device}编号{serial}"),
    "en": ("My {device} {serial} has a {fault} problem", "The {fault} on my {device} broke, serial {serial}",
           "{device} not working ({fault}), serial number {serial}"),
}  # fmt: skip


def labelled_claims_csv(path: Path, count: int) -> Path:
    """`count` warranty claims as a shop keeps them: a CSV of the shopper's message and a JSON label,
    in both languages, every tenth without a serial number."""
    rows = []
    for number in range(count):
        lang = ("zh", "en")[number % 2]
        fault = tuple(FAULTS)[number % 3]
        device = DEVICES[number % 4][0 if lang == "zh" else 1]
        serial = None if number % 10 == 9 else f"SN{48000 + number * 7}"
        form = CLAIM_FORMS[lang][number % 3]
        unknown = f"不记得（工单{number}）" if lang == "zh" else f"unknown (ticket {number})"
        text = form.format(device=device, serial=serial or unknown, fault=FAULTS[fault][lang == "en"])
        rows.append([text, json.dumps({"serial_number": serial, "fault": fault}, ensure_ascii=False)])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["message", "label"])
        writer.writerows(rows)
    return path


def catalogue_as_csv(folder: Path) -> Path:
    """Replace the shop's products.jsonl with the same products as a CSV (as exported from a shop system)."""
    source = folder / "catalogue" / "products.jsonl"
    products = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    target = folder / "catalogue" / "products.csv"
    columns = ["sku", "category", "brand_en", "brand_zh", "noun_en", "noun_zh", "name_en", "name_zh", "price"]
    with target.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, "colors", "sizes", "stock", "specs"])
        for p in products:
            colours = ";".join(f"{c['zh']}/{c['en']}" for c in p["colors"])
            writer.writerow(
                [*(p[c] for c in columns), colours, ";".join(p["sizes"]), p["stock"], json.dumps(p["specs"])]
            )
    source.unlink()
    return target
