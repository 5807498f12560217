"""`extract` records: free text in, one JSON object valid against the named schema out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shoptune.core.errors import BadInputError
from shoptune.data.surface import add_typos, budget_phrase, casing_noise, order_id, shop_money
from shoptune.data.tasks.context import TaskContext, slots
from shoptune.data.tasks.queries import colour_phrase, product_phrase, sample_product_query
from shoptune.shop import resources
from shoptune.shop.prompts import extraction_system_prompt
from shoptune.shop.resources import canonical_product
from shoptune.shop.structured import json_answer

INTENTS = ("order_status", "return", "exchange", "refund", "cancel", "shipping", "other")


def extraction_messages(
    schema_name: str, text: str, target: dict[str, Any], style: str = "outline"
) -> list[dict[str, str]]:
    """The conversation of an extraction record; the storefront's /v1/extract sends the same."""
    schema = resources.schemas()[schema_name]
    return [
        {"role": "system", "content": extraction_system_prompt(schema_name, schema, style)},
        {"role": "user", "content": text},
        {"role": "assistant", "content": json_answer(target)},
    ]


OTHER_PRODUCT_SHARE = 0.15
"""Share of extraction requests about products the catalogue lacks: the model must name what
the shopper asked for, not only what the shop sells."""


def product_query_record(ctx: TaskContext) -> dict[str, Any]:
    if ctx.rng.random() < OTHER_PRODUCT_SHARE:
        return other_product_query_record(ctx)
    query = sample_product_query(ctx)
    return {
        "task": "extract",
        "schema": "product_query",
        "messages": extraction_messages("product_query", query.text, query.extraction_target(), ctx.extraction_prompt),
    }


def other_product(ctx: TaskContext) -> tuple[str, str]:
    """A product outside the catalogue: (how the shopper names it, its canonical value)."""
    lexicon = resources.templates("lexicon")
    if ctx.rng.random() < 0.5:
        brand_zh = ctx.choice(sorted(lexicon["other_brands"]))
        brand = lexicon["other_brands"][brand_zh]
        noun_zh = ctx.choice(brand["nouns"])
        noun = ctx.choice(lexicon["other_nouns"][noun_zh][ctx.lang])
        named = f"{brand_zh}{noun}" if ctx.lang == "zh" else f"{brand['en']} {noun}"
        return named, canonical_product(brand_zh, noun_zh)
    noun_zh = ctx.choice(sorted(lexicon["other_nouns"]))
    return ctx.choice(lexicon["other_nouns"][noun_zh][ctx.lang]), noun_zh


def other_product_query_record(ctx: TaskContext) -> dict[str, Any]:
    """A product_query about a product the shop does not sell: no size (it has no catalogue
    sizes), a colour and budget as the template asks."""
    template = ctx.pick_template(
        resources.templates("product_query")[ctx.lang], where=lambda t: "size" not in slots(t["text"])
    )
    wanted = slots(template["text"])
    named, canonical = other_product(ctx)
    lexicon = resources.templates("lexicon")
    colour = ctx.choice(sorted(lexicon["colours"])) if "color" in wanted else None
    price_range = other_budget(ctx) if "budget" in wanted else None
    text = add_typos(ctx.rng, template["text"], ctx.lang).format(
        product=named,
        color=colour_phrase(ctx, colour) if colour else "",
        size="",
        budget=budget_phrase(ctx.rng, ctx.lang, *price_range, shop_money()) if price_range else "",
    )
    target = {
        "product": canonical,
        "price_range": list(price_range) if price_range else None,
        "color": colour,
        "size": None,
    }
    return {
        "task": "extract",
        "schema": "product_query",
        "messages": extraction_messages("product_query", casing_noise(ctx.rng, text), target, ctx.extraction_prompt),
    }


def other_budget(ctx: TaskContext) -> tuple[int | None, int | None]:
    high = ctx.choice([100, 200, 300, 500, 800, 1000, 1500, 2000, 3000, 5000, 8000])
    kind = ctx.rng.random()
    if kind < 0.5:
        return (None, high)
    low = high // 2
    return (low, high) if kind < 0.85 else (low, None)


def order_request_record(ctx: TaskContext) -> dict[str, Any]:
    intent = ctx.choice(INTENTS)
    template = ctx.pick_template(resources.templates("order_request")[ctx.lang][intent])
    wanted = slots(template["text"])
    lexicon = resources.templates("lexicon")
    target: dict[str, Any] = {"intent": intent, "order_id": None, "product": None, "reason": None}
    values: dict[str, str] = {}
    if "order_id" in wanted:
        target["order_id"] = values["order_id"] = order_id(ctx.rng)
    if "product" in wanted and ctx.rng.random() < OTHER_PRODUCT_SHARE:
        values["product"], target["product"] = other_product(ctx)
    elif "product" in wanted:
        product = ctx.choice(ctx.product_pool())
        ctx.note_products([product])
        with_brand = ctx.rng.random() < 0.6
        values["product"] = product_phrase(ctx, product, with_brand)
        target["product"] = (product.brand_zh if with_brand else "") + product.noun_zh
    if "reason" in wanted:
        reason = ctx.choice(sorted(lexicon["reasons"]))
        values["reason"] = ctx.choice(lexicon["reasons"][reason][ctx.lang])
        target["reason"] = reason
    text = casing_noise(ctx.rng, add_typos(ctx.rng, template["text"], ctx.lang).format(**values))
    if target["order_id"] is not None and target["order_id"] not in text:
        target["order_id"] = target["order_id"].lower()  # lower-cased with the message: copied as written
    return {
        "task": "extract",
        "schema": "order_request",
        "messages": extraction_messages("order_request", text, target, ctx.extraction_prompt),
    }


GENERATED: dict[str, tuple[float, Callable[[TaskContext], dict[str, Any]]]] = {
    "product_query": (0.55, product_query_record),
    "order_request": (0.45, order_request_record),
}
"""The schemas the generator writes extraction records for, each from the shop's phrasings of the same
name (`templates/<schema>.yaml`), and their weights. A shop's other schemas come from its own
labelled records (`data import`, `labelled/`)."""


def generated_schemas() -> list[str]:
    """The schemas of `GENERATED` this shop has, with their phrasings."""
    shop = resources.active()
    return [name for name in GENERATED if name in shop.schemas and shop.has_templates(name)]


def extract_record(ctx: TaskContext) -> dict[str, Any]:
    """An extraction record of one of the generated schemas, drawn by weight."""
    names = generated_schemas()
    draw = ctx.rng.random() * sum(GENERATED[name][0] for name in names)
    for name in names:
        weight, generate = GENERATED[name]
        if draw < weight or name == names[-1]:
            return generate(ctx)
        draw -= weight
    raise BadInputError("the shop has no schema the generator writes records for; import its labelled records")
