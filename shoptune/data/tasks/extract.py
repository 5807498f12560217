"""`extract` records: free text in, one JSON object valid against the named schema out."""

from __future__ import annotations

from typing import Any

from shoptune.data import resources
from shoptune.data.prompts import extraction_system_prompt, json_answer
from shoptune.data.surface import add_typos, casing_noise, order_id
from shoptune.data.tasks.context import TaskContext, slots
from shoptune.data.tasks.queries import product_phrase, sample_product_query

INTENTS = ("order_status", "return", "exchange", "refund", "cancel", "shipping", "other")


def extraction_messages(schema_name: str, text: str, target: dict[str, Any]) -> list[dict[str, str]]:
    """The conversation of an extraction record; the storefront's /v1/extract sends the same."""
    schema = resources.schemas()[schema_name]
    return [
        {"role": "system", "content": extraction_system_prompt(schema_name, schema)},
        {"role": "user", "content": text},
        {"role": "assistant", "content": json_answer(target)},
    ]


def product_query_record(ctx: TaskContext) -> dict[str, Any]:
    query = sample_product_query(ctx)
    return {
        "task": "extract",
        "schema": "product_query",
        "messages": extraction_messages("product_query", query.text, query.extraction_target()),
    }


def order_request_record(ctx: TaskContext) -> dict[str, Any]:
    intent = ctx.choice(INTENTS)
    template = ctx.pick_template(resources.templates("order_request")[ctx.lang][intent])
    wanted = slots(template["text"])
    lexicon = resources.templates("lexicon")
    target: dict[str, Any] = {"intent": intent, "order_id": None, "product": None, "reason": None}
    values: dict[str, str] = {}
    if "order_id" in wanted:
        target["order_id"] = values["order_id"] = order_id(ctx.rng)
    if "product" in wanted:
        product = ctx.choice(ctx.product_pool())
        ctx.note_products([product])
        with_brand = ctx.rng.random() < 0.6
        values["product"] = product_phrase(ctx, product, with_brand)
        target["product"] = (product.brand_zh if with_brand else "") + product.noun_zh
    if "reason" in wanted:
        reason = ctx.choice(sorted(lexicon["reasons"]))
        values["reason"] = ctx.choice(lexicon["reasons"][reason][ctx.lang])
        target["reason"] = reason
    text = add_typos(ctx.rng, template["text"], ctx.lang).format(**values)
    return {
        "task": "extract",
        "schema": "order_request",
        "messages": extraction_messages("order_request", casing_noise(ctx.rng, text), target),
    }


def extract_record(ctx: TaskContext) -> dict[str, Any]:
    return product_query_record(ctx) if ctx.rng.random() < 0.55 else order_request_record(ctx)
