"""The one form of structured output, shared by data, training, decoding and scoring.

vLLM's xgrammar backend runs with `disable_any_whitespace` (a weak model can otherwise emit
whitespace until it runs out of tokens), which admits exactly one spelling of a JSON object: no
space after `,` or `:`, keys in the schema's order. Training targets are written in that same
spelling, so under guided decoding the tuned model is asked for the very tokens it was trained
to produce, and structured output equals free-form output. Both the evaluation backends and the
storefront ask for an extraction with `shoptune.shop.decoding.extraction_request`, so a score
measures what the storefront gets.
"""

from __future__ import annotations

import json
from typing import Any

from shoptune.shop import resources
from shoptune.shop.resources import canonical_product


def json_answer(value: dict[str, Any]) -> str:
    """The exact text of an extraction answer: compact JSON (`{"a":1,"b":null}`), keys in the
    schema's order, non-ASCII kept: what xgrammar's whitespace-free grammar produces."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def ordered_like_schema(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`value` with its keys in the schema's property order (the order guided decoding emits)."""
    order = list(schema.get("properties", {}))
    ranked = sorted(value, key=lambda key: order.index(key) if key in order else len(order))
    return {key: value[key] for key in ranked}


def response_format(schema_name: str, *, vocabulary: bool = False) -> dict[str, Any]:
    """vLLM structured output for one of the shop's schemas (OpenAI `json_schema`, strict);
    `vocabulary=True` also limits the shop's closed fields to their known values."""
    schema = vocabulary_schema(schema_name) if vocabulary else resources.schemas()[schema_name]
    return {"type": "json_schema", "json_schema": {"name": schema_name, "schema": schema, "strict": True}}


def shop_vocabulary() -> dict[str, list[str]]:
    """The values the shop's data knows for each extraction field (canonical Chinese)."""
    lexicon = resources.templates("lexicon")
    catalogue = resources.catalogue()
    products = {p.noun_zh for p in catalogue} | {canonical_product(p.brand_zh, p.noun_zh) for p in catalogue}
    products |= set(lexicon["other_nouns"])
    products |= {
        canonical_product(brand, noun) for brand, spec in lexicon["other_brands"].items() for noun in spec["nouns"]
    }
    return {
        "product": sorted(products),
        "color": sorted(lexicon["colours"]),
        "size": sorted({size for p in catalogue for size in p.sizes}),
        "reason": sorted(lexicon["reasons"]),
    }


def vocabulary_schema(schema_name: str) -> dict[str, Any]:
    """The schema with each string field the shop has a vocabulary for turned into that enum (or
    null), so guided decoding can only spell a known value."""
    import copy

    schema = copy.deepcopy(resources.schemas()[schema_name])
    for field_name, values in shop_vocabulary().items():
        if field_name in schema.get("properties", {}):
            schema["properties"][field_name] = {"enum": [*values, None]}
    return schema


def in_the_one_form(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with an extraction answer rewritten in the one form (compact, keys in schema order),
    so a shop's own records written with spaces or another key order train the spelling guided
    decoding will ask for; other records, and answers that are not a JSON object, unchanged."""
    if record.get("task") != "extract" or record.get("schema") not in resources.schemas():
        return record
    answer = record["messages"][-1]
    try:
        value = json.loads(answer["content"])
    except ValueError:
        return record
    if not isinstance(value, dict):
        return record
    canonical = json_answer(ordered_like_schema(value, resources.schemas()[record["schema"]]))
    if canonical == answer["content"]:
        return record
    return {**record, "messages": [*record["messages"][:-1], {**answer, "content": canonical}]}
