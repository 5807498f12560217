"""The shop's data in datasets/: catalogue, schemas, style guide, policy and templates hold together."""

from __future__ import annotations

import re

from jsonschema import Draft202012Validator

from shoptune.shop import resources
from shoptune.shop.prompts import extraction_system_prompt, format_price

SEED_TARGET = {"product": "小米手机", "price_range": [2000, 3000], "color": "红色", "size": None}


def test_catalogue_size_and_shape() -> None:
    products = resources.catalogue()
    assert len(products) >= 300
    assert len({p.category for p in products}) >= 8
    assert len({p.sku for p in products}) == len(products)
    for p in products:
        assert p.name_zh and p.name_en and p.brand_zh and p.brand_en
        assert re.search(r"[\u4e00-\u9fff]", p.name_zh), p.sku
        assert p.price > 0 and p.stock >= 0 and p.sizes
    assert any(not p.in_stock for p in products) and sum(p.in_stock for p in products) > 250


def test_every_catalogue_value_has_surface_forms() -> None:
    lexicon = resources.templates("lexicon")
    for p in resources.catalogue():
        assert p.noun_zh in lexicon["nouns"], p.noun_zh
        for colour in p.colors:
            assert colour.zh in lexicon["colours"], colour.zh


def test_schemas_are_valid_and_accept_the_seed_example() -> None:
    schemas = resources.schemas()
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    product_query = Draft202012Validator(schemas["product_query"])
    assert product_query.is_valid(SEED_TARGET)
    assert product_query.is_valid({"product": None, "price_range": [None, 3000], "color": None, "size": None})
    assert not product_query.is_valid({**SEED_TARGET, "price_range": [2000]})  # exactly two items
    assert not product_query.is_valid({**SEED_TARGET, "price_range": ["2000", 3000]})  # numbers only
    assert not product_query.is_valid({**SEED_TARGET, "brand": "小米"})  # no additional properties
    assert not product_query.is_valid({k: v for k, v in SEED_TARGET.items() if k != "size"})  # all required
    order = Draft202012Validator(schemas["order_request"])
    assert order.is_valid({"intent": "return", "order_id": "YX202611250001", "product": None, "reason": "尺码不合适"})
    assert not order.is_valid({"intent": "complain", "order_id": None, "product": None, "reason": None})


def test_extraction_prompt_names_every_field() -> None:
    for name, schema in resources.schemas().items():
        prompt = extraction_system_prompt(name, schema)
        for key in schema["properties"]:
            assert f'"{key}"' in prompt


def test_the_full_extraction_prompt_reads_the_schema_and_field_descriptions() -> None:
    schema = {
        "type": "object",
        "description": "A warranty claim.",
        "properties": {
            "serial_number": {"type": ["string", "null"], "description": "The serial number as written."},
            "fault": {"enum": ["screen", "battery", None]},
        },
    }
    full = extraction_system_prompt("warranty_claim", schema, "full").splitlines()
    assert full == [
        'Extract the shopper\'s message as warranty_claim JSON: {"serial_number": string|null, '
        '"fault": "screen"|"battery"|null}',
        "A warranty claim.",
        "- serial_number: The serial number as written.",
    ]
    assert "serial number as written" not in extraction_system_prompt("warranty_claim", schema, "outline")


def test_policy_and_style_guide() -> None:
    topics = resources.policy()
    assert {"returns", "exchange", "refund", "shipping", "invoices", "warranty"} <= {t.id for t in topics}
    for topic in topics:
        for lang in ("zh", "en"):
            assert topic.questions[lang] and topic.answer[lang] and topic.text[lang]
            for value in topic.facts.values():
                assert str(value) in topic.text[lang] and str(value) in topic.answer[lang], (topic.id, lang, value)
    style = resources.style_guide()
    assert style.greeting["zh"].startswith(style.opener["zh"])
    assert style.banned_phrases["zh"] and style.banned_phrases["en"] and style.emoji_max >= 0


def test_price_formatting() -> None:
    assert format_price(1999.0) == "1999" and format_price(89.9) == "89.9" and format_price(12.5) == "12.5"
