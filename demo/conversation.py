"""The scripted storefront conversation the demo plays, and how each answer is checked.

The script is the shop's (`eval/demo_script.yaml`, `shoptune.shop.script`). Every scripted turn
says what a right answer does: name in-stock products that meet the stated
budget and colour, or state what the policy says (a phrase it must contain). Each answer is then
flagged, with the reason in words, when it loops, repeats a line, only greets, names a product
that was not in its context, quotes a wrong price, offers something out of stock or over budget,
or misses the question, and an order answer when it does not state what the order system holds.
The extraction sentences carry their exact expected objects, and the shop's hand-written shopper
messages (`eval/handwritten_extraction.jsonl`) go through the same `/v1/extract` the storefront offers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from shoptune.eval.metrics.degenerate import degenerate_reasons
from shoptune.eval.metrics.extraction import normalised_equal
from shoptune.eval.metrics.grounding import item_lines, named_products
from shoptune.shop.orders import OrderBook
from shoptune.shop.prompts import format_price
from shoptune.shop.records import last_question
from shoptune.shop.script import DemoScript, Expect, Session

SAMPLES_PER_SCHEMA = 3
"""Test-split records of each of the shop's other schemas sent through /v1/extract by the demo."""


def schema_samples(
    script: DemoScript, records: list[dict[str, Any]], schemas: dict[str, Any], per_schema: int = SAMPLES_PER_SCHEMA
) -> list[tuple[str, str, dict[str, Any]]]:
    """(schema, text, expected) for the script's sentences whose schema the shop has, then the first
    `per_schema` test records of each schema the script has none for (a shop's own schemas)."""
    scripted = [row for row in script.sentences() if row[0] in schemas]
    covered = {schema for schema, _, _ in scripted}
    chosen: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for record in records:
        schema = record.get("schema")
        if record.get("task") == "extract" and schema in schemas and schema not in covered:
            rows = chosen.setdefault(schema, [])
            if len(rows) < per_schema:
                rows.append((schema, last_question(record), json.loads(record["messages"][-1]["content"])))
    return scripted + [row for schema in sorted(chosen) for row in chosen[schema]]


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
    flags: list[str] = field(default_factory=list)
    """What is wrong with the answer, in words (empty when nothing is)."""
    order_id: str | None = None
    """The order an order question asks about."""
    order: dict[str, Any] | None = None
    """The order system's row for it (what the answer is checked against)."""


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
                "price": product.price,
                "colours_zh": [c.zh for c in product.colors],
                "noun_zh": product.noun_zh,
            }
        )
    return rows


def order_flags(answer: str, order_id: str, order: dict[str, Any] | None) -> list[str]:
    """What an order answer misses of the order system's row (`order`: None if the row was not found)."""
    if order is None:
        return [f"order {order_id} is not in the order system for this customer"]
    return [
        f"does not state order {order_id}'s {name} {order[key]!r} (the order system's)"
        for key, name in (("order_id", "number"), ("carrier", "carrier"), ("tracking_no", "tracking number"))
        if order.get(key) and order[key] not in answer
    ]


def turn_flags(turn: Turn, expect: Expect) -> list[str]:
    """Every reason this answer is not what the shopper should get."""
    if turn.status != 200:
        return [f"error {turn.status}"]
    flags = list(degenerate_reasons(turn.answer, turn.lang))
    if expect.order:
        flags += order_flags(turn.answer, expect.order, turn.order)
    context = {row["sku"] for row in turn.grounded_on}
    for row in turn.named:
        label = f"{row['sku']} {row['name']}"
        if row["sku"] not in context:
            flags.append(f"names {label}, which was not in its context")
        if row["price_correct"] is False:
            flags.append(f"quotes ¥{row['quoted_price']} for {label} (catalogue ¥{row['catalogue_price']})")
        if not row["in_stock"]:
            flags.append(f"offers {label}, which is out of stock")
        if expect.max_price is not None and row["price"] > expect.max_price:
            flags.append(f"offers {label} at ¥{row['catalogue_price']}, over the ¥{expect.max_price:g} budget")
        if expect.colour and expect.colour not in row["colours_zh"]:
            flags.append(f"offers {label}, which has no {expect.colour}")
        if expect.noun and row["noun_zh"] != expect.noun:
            flags.append(f"offers {label}, not a {expect.noun}")
    if expect.products and not turn.named:
        flags.append("misses the question: names no product")
    if expect.mentions and not any(phrase.casefold() in turn.answer.casefold() for phrase in expect.mentions):
        flags.append(f"misses the question: says none of {' / '.join(expect.mentions)}")
    return flags


def extraction_flags(got: dict[str, Any] | None, expected: dict[str, Any]) -> list[str]:
    if got is None:
        return ["no valid object"]
    return [
        f"{key}: got {got.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if not normalised_equal(got.get(key), value)
    ]


REQUESTS_AT_ONCE = 8
"""Extraction requests in flight together, as a storefront's shoppers send them (vLLM batches them)."""


def _play_session(client: Any, orders: OrderBook, session: Session) -> list[Turn]:
    """One shopper's turns, in order: each turn's history is the previous turns."""
    turns = []
    lang, customer = session.lang, session.customer
    for scripted in session.turns:
        question, expect = scripted.message, scripted.expect
        message = {"session_id": session.session, "message": question, "customer_id": customer}
        response = client.post("/v1/chat", json=message)
        body = response.json()
        answer = body.get("reply") or f"(error {response.status_code}: {body.get('error')})"
        turn = Turn(
            lang,
            session.session,
            question,
            answer,
            response.status_code,
            [{"sku": p["sku"], "name": p["name"], "price": p["price"]} for p in body.get("products", [])],
            check_answer(answer),
        )
        if expect.order:
            row = orders.lookup(expect.order, customer)
            turn.order_id, turn.order = expect.order, row.model_dump(mode="json") if row else None
        turn.flags = turn_flags(turn, expect)
        turns.append(turn)
    return turns


def _extract(client: Any, schema: str, text: str) -> tuple[int, dict[str, Any] | None, str | None]:
    """`/v1/extract`'s status, its object (None unless 200) and its error message."""
    response = client.post("/v1/extract", json={"text": text, "schema": schema})
    body = response.json()
    return response.status_code, body.get("data") if response.status_code == 200 else None, body.get("error")


def play(
    base_url: str,
    api_key: str,
    orders: OrderBook,
    script: DemoScript,
    say=print,
    handwritten: list[dict[str, Any]] | None = None,
    extractions: list[tuple[str, str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Play the script against a running storefront; returns the transcript with every check.
    `orders`: the order system the storefront answers from (order answers are checked against it);
    `script`: the shop's sessions; `extractions`: (schema, text, expected object) sent to /v1/extract
    (`schema_samples`; default: the script's sentences).

    The two shoppers talk while the extraction requests go `REQUESTS_AT_ONCE` at a time, all at
    once as on a live storefront; the log follows the script's order. `handwritten`: extraction
    records whose user message goes to `/v1/extract` as is; their raw outputs come back under
    "handwritten" for scoring by the eval package."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    handwritten = handwritten or []
    if extractions is None:
        extractions = script.sentences()
    texts = [last_question(r) for r in handwritten]
    headers = {"Authorization": f"Bearer {api_key}"}
    requests = [(schema, text) for schema, text, _ in extractions]
    requests += [(r["schema"], text) for r, text in zip(handwritten, texts, strict=True)]
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=300) as client,
        ThreadPoolExecutor(max_workers=max(1, len(script.sessions))) as shoppers,
        ThreadPoolExecutor(max_workers=REQUESTS_AT_ONCE) as pool,
    ):
        talking = [shoppers.submit(_play_session, client, orders, session) for session in script.sessions]
        answered = list(pool.map(lambda pair: _extract(client, *pair), requests))
        sessions = [future.result() for future in talking]
    turns = [turn for session in sessions for turn in session]
    for turn in turns:
        say(f"  [{turn.lang}] shopper: {turn.question}")
        say(f"  [{turn.lang}] assistant: {turn.answer}")
        for flag in turn.flags:
            say(f"    ! {flag}")
    extracted = []
    for (schema, text, expected), (status, data, error) in zip(extractions, answered[: len(extractions)], strict=True):
        row = {
            "schema": schema,
            "text": text,
            "status": status,
            "data": data,
            "expected": expected,
            "error": error,
            "flags": extraction_flags(data, expected),
        }
        extracted.append(row)
        say(f"  [extract {schema}] {text}\n    -> {data or error}")
        for flag in row["flags"]:
            say(f"    ! {flag}")
    outputs = {}
    for record, (_, data, _) in zip(handwritten, answered[len(extractions) :], strict=True):
        outputs[record["id"]] = json.dumps(data, ensure_ascii=False) if data is not None else ""
    return {"turns": [asdict(t) for t in turns], "extractions": extracted, "handwritten": outputs}
