"""The scripted storefront conversation the demo plays, and how its answers are checked against
the catalogue (named products must exist and be quoted at their catalogue price)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shoptune.data.prompts import format_price
from shoptune.eval.metrics.grounding import item_lines, named_products

SCRIPT: list[tuple[str, str, list[str]]] = [
    (
        "zh",
        "demo-zh",
        ["我想买一部3000元以内的手机", "那黑色的呢？", "我的订单YX202611250001到哪了？", "衣服尺码不合适，怎么退货？"],
    ),
    ("en", "demo-en", ["I need a phone under 3000 yuan", "What about black?", "How do I return an item?"]),
]
EXTRACTIONS: list[tuple[str, str]] = [
    ("product_query", "我想找一款红色的小米手机，价格在2000到3000之间"),
    ("order_request", "订单YX202611250001的鞋子尺码不合适，我要退货"),
]


@dataclass
class Turn:
    lang: str
    session: str
    question: str
    answer: str
    status: int
    grounded_on: list[dict[str, Any]] = field(default_factory=list)
    named: list[dict[str, Any]] = field(default_factory=list)
    """Catalogue products the answer names, with the price it quoted and the catalogue price."""


def check_answer(answer: str) -> list[dict[str, Any]]:
    quoted = {name: price for _, name, price in item_lines(answer)}
    rows = []
    for product in named_products(answer):
        price = quoted.get(product.name_zh) or quoted.get(product.name_en)
        rows.append(
            {
                "sku": product.sku,
                "name": next(
                    (n for n in (product.name_zh, product.name_en) if n in answer), f"{product.sku} (SKU only)"
                ),
                "catalogue_price": format_price(product.price),
                "quoted_price": price,
                "price_correct": None if price is None else float(price) == product.price,
                "in_stock": product.in_stock,
            }
        )
    return rows


def play(base_url: str, api_key: str, say=print) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    turns: list[Turn] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as client:
        for lang, session, questions in SCRIPT:
            for question in questions:
                response = client.post("/v1/chat", json={"session_id": session, "message": question})
                body = response.json()
                answer = body.get("reply") or f"(error {response.status_code}: {body.get('error')})"
                turn = Turn(
                    lang,
                    session,
                    question,
                    answer,
                    response.status_code,
                    [{"sku": p["sku"], "name": p["name"], "price": p["price"]} for p in body.get("products", [])],
                    check_answer(answer),
                )
                turns.append(turn)
                say(f"  [{lang}] shopper: {question}")
                say(f"  [{lang}] assistant: {answer}")
        extractions = []
        for schema, text in EXTRACTIONS:
            response = client.post("/v1/extract", json={"text": text, "schema": schema})
            body = response.json()
            extractions.append(
                {
                    "schema": schema,
                    "text": text,
                    "status": response.status_code,
                    "data": body.get("data"),
                    "error": body.get("error"),
                }
            )
            say(f"  [extract {schema}] {text}\n    -> {body.get('data') or body.get('error')}")
    return {"turns": [asdict(t) for t in turns], "extractions": extractions}
