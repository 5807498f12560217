"""How conversations are put in front of the model: system messages, catalogue and policy context.

Training data and the storefront build prompts with these same functions, so the served model
sees exactly the layout it was tuned on (the chat template then renders both identically).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from shoptune.shop import resources
from shoptune.shop.resources import PolicyTopic, Product

_CJK = re.compile(r"[\u3400-\u9fff]")


def detect_language(text: str) -> str:
    """ "zh" when the text contains any CJK ideograph, else "en" (the shop's two languages)."""
    return "zh" if _CJK.search(text) else "en"


def format_price(price: float) -> str:
    """Catalogue prices as quoted in answers: 1999.0 -> "1999", 89.9 -> "89.9"."""
    return f"{price:.2f}".rstrip("0").rstrip(".")


_CATALOGUE_LAYOUT = {
    "zh": {
        "header": "商品目录（只能推荐以下商品，价格以此为准）：",
        "line": "- {sku} {name} | {currency}{price} | 颜色：{colours} | 规格：{sizes} | {stock}",
        "separator": "、",
        "no_colour": "无",
        "in_stock": "库存{count}",
        "out_of_stock": "缺货",
    },
    "en": {
        "header": "Catalogue (recommend only these products; prices as listed):",
        "line": "- {sku} {name} | {currency}{price} | colours: {colours} | sizes: {sizes} | {stock}",
        "separator": ", ",
        "no_colour": "n/a",
        "in_stock": "stock {count}",
        "out_of_stock": "out of stock",
    },
}


def catalogue_context(products: Sequence[Product], lang: str) -> str:
    """The product list injected into the system message for recommendations."""
    layout = _CATALOGUE_LAYOUT[lang]
    currency = resources.style_guide().currency.symbol
    lines = [layout["header"]]
    for product in products:
        stock = layout["in_stock"].format(count=product.stock) if product.in_stock else layout["out_of_stock"]
        lines.append(
            layout["line"].format(
                sku=product.sku,
                name=product.name(lang),
                currency=currency,
                price=format_price(product.price),
                colours=layout["separator"].join(product.colour_names(lang)) or layout["no_colour"],
                sizes=layout["separator"].join(product.sizes),
                stock=stock,
            )
        )
    return "\n".join(lines)


def policy_context(topics: Sequence[PolicyTopic], lang: str) -> str:
    header = "店铺政策：" if lang == "zh" else "Store policy:"
    return "\n".join(
        [
            header,
            *(
                f"【{t.title[lang]}】{t.text[lang]}" if lang == "zh" else f"[{t.title[lang]}] {t.text[lang]}"
                for t in topics
            ),
        ]
    )


def system_message(system_prompt: str, *context_blocks: str) -> dict[str, str]:
    """The system prompt followed by any context blocks, separated by blank lines."""
    content = "\n\n".join([system_prompt, *(block for block in context_blocks if block)])
    return {"role": "system", "content": content}


def extraction_system_prompt(schema_name: str, schema: dict[str, Any], style: str = "outline") -> str:
    """Instructions for a JSON extraction turn (`data.extraction_prompt`): the schema's name, plus a
    one-line outline of its keys ("outline"), plus the schema's description and each field's own
    description, one line each ("full"): a shop's schema explains itself to a model that reads it.

    A tuned model learns the conventions (canonical Chinese values, open price ends) from the
    examples, so on a CPU the short forms buy more examples for the same training compute; the
    description is for a model that has to read it.
    """
    head = f"Extract the shopper's message as {schema_name} JSON"
    if style == "name":
        return f"{head}."
    outline = f"{head}: {schema_outline(schema)}"
    if style == "outline":
        return outline
    fields = [
        f"- {key}: {spec['description']}"
        for key, spec in schema.get("properties", {}).items()
        if isinstance(spec, dict) and spec.get("description")
    ]
    return "\n".join(part for part in (outline, schema.get("description", ""), *fields) if part)


def schema_outline(schema: dict[str, Any]) -> str:
    """A one-line, token-cheap rendering of an object schema: {"key": type, ...}."""
    parts = []
    for key, spec in schema.get("properties", {}).items():
        parts.append(f'"{key}": {_type_outline(spec)}')
    return "{" + ", ".join(parts) + "}"


def _type_outline(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "|".join(json.dumps(value, ensure_ascii=False) for value in spec["enum"])
    if "anyOf" in spec:
        return "|".join(_type_outline(option) for option in spec["anyOf"])
    kind = spec.get("type")
    if isinstance(kind, list):
        return "|".join(kind)
    if kind == "array":
        item = _type_outline(spec.get("items", {}))
        count = spec.get("minItems")
        if count is not None and count == spec.get("maxItems"):
            return "[" + ", ".join([item] * count) + "]"
        return f"[{item}, ...]"
    return str(kind)
