"""Grounding: recommendations against the catalogue, FAQ answers against the policy, and
multi-turn answers against what the history required.

Products are recognised by their catalogue names (zh or en) in the answer; a numbered item line
("1. <name>，¥<price>…" / "1. <name>, ¥<price>, …", the format the corpus teaches) whose name is
not in the catalogue counts as a hallucinated product.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from shoptune.shop import resources
from shoptune.shop.resources import Product, Shop

NUMBER = re.compile(r"\d+(?:\.\d+)?")


def sku_shapes(skus: list[str]) -> str:
    """A pattern matching the shapes of the shop's SKUs (PHN-0001 -> [A-Z]{3}-\\d{4}), longest first."""

    def shape(sku: str) -> str:
        runs = re.findall(r"[A-Z]+|[a-z]+|\d+|.", sku)
        return "".join(
            f"[A-Z]{{{len(r)}}}" if r.isupper() else f"[a-z]{{{len(r)}}}" if r.isalpha() else
            f"\\d{{{len(r)}}}" if r.isdigit() else re.escape(r)
            for r in runs
        )  # fmt: skip

    return "|".join(sorted({shape(sku) for sku in skus}, key=lambda p: (-len(p), p)))


@dataclass(frozen=True)
class ShopTerms:
    """What an answer is read against, for one shop: its products by name and SKU, and the
    patterns of its SKUs and of a numbered item line with its currency sign."""

    names: dict[str, Product]
    skus: dict[str, Product]
    sku: re.Pattern[str]
    item_line: re.Pattern[str]


@functools.cache
def shop_terms(shop: Shop) -> ShopTerms:
    catalogue = shop.catalogue
    names = {name: p for p in catalogue for name in (p.name_zh, p.name_en)}
    skus = {p.sku: p for p in catalogue}
    shapes = sku_shapes(list(skus))
    sign = re.escape(shop.style_guide.currency.symbol)
    # A numbered product line: optional SKU (a model may add a colon after it), the name (a model
    # may drop it after the SKU), and the quoted price.
    item_line = re.compile(
        rf"^\s*\d+\.\s*(?:(?P<sku>{shapes})\s*[:：]?\s*)?(?P<name>[^，,\n{sign}]*?)\s*[，,]?\s*{sign}(?P<price>\d+(?:\.\d+)?)",
        re.MULTILINE,
    )
    return ShopTerms(names, skus, re.compile(rf"\b(?:{shapes})\b"), item_line)


def _names() -> dict[str, Product]:
    return shop_terms(resources.active()).names


def _skus() -> dict[str, Product]:
    return shop_terms(resources.active()).skus


def named_products(text: str) -> list[Product]:
    """Catalogue products whose name (longest names first) or SKU appears in `text`, each once."""
    found, seen = [], set()
    for name in sorted(_names(), key=len, reverse=True):
        if name in text and _names()[name].sku not in seen:
            found.append(_names()[name])
            seen.add(_names()[name].sku)
            text = text.replace(name, " ")
    for sku in shop_terms(resources.active()).sku.findall(text):
        if sku in _skus() and sku not in seen:
            found.append(_skus()[sku])
            seen.add(sku)
    return found


def _within(product: Product, price_range: list | None) -> bool:
    if not price_range:
        return True
    low, high = price_range
    return (low is None or product.price >= low) and (high is None or product.price <= high)


def item_lines(text: str) -> list[tuple[str, str, str]]:
    """(sku or "", name, quoted price) of each numbered product line in an answer; a line that
    gives only a SKU is read as naming that SKU's product (or, if no such SKU, the SKU itself)."""
    lines = []
    for match in shop_terms(resources.active()).item_line.finditer(text):
        sku, name = match["sku"] or "", match["name"].strip()
        if not name and sku:
            name = _skus()[sku].name_zh if sku in _skus() else sku
        if name:
            lines.append((sku, name, match["price"]))
    return lines


def _real(sku: str, name: str) -> bool:
    """The line names a catalogue product, and its SKU (when given) is that product's."""
    product = _names().get(name)
    return product is not None and (not sku or product.sku == sku)


def score_record(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    text = output or ""
    items = item_lines(text)
    hallucinated = sum(1 for sku, name, _ in items if not _real(sku, name))
    products = named_products(text)
    query = (record.get("meta") or {}).get("query") or {}
    price_range = query.get("price_range")
    in_stock = all(p.in_stock for p in products)
    in_budget = all(_within(p, price_range) for p in products)
    prices_exact = all(_real(sku, name) and float(price) == _names()[name].price for sku, name, price in items)
    reference = set((record.get("meta") or {}).get("recommended_skus") or [])
    if not reference:  # imported records: the reference answer says what it recommends
        reference = {p.sku for p in named_products(record["messages"][-1]["content"])}
    named = {p.sku for p in products}
    # Saying nothing is not grounded: an answer names products exactly when the reference does.
    answers_in_kind = bool(named) == bool(reference)
    return {
        "recommend_grounded": float(hallucinated == 0 and in_stock and in_budget and prices_exact and answers_in_kind),
        "recommend_in_stock": float(in_stock),
        "recommend_in_budget": float(in_budget),
        "recommend_prices_exact": float(prices_exact),
        "hallucinated_items": float(hallucinated),
        "listed_items": float(len(items)),
        "recommend_reference_recall": (len(reference & named) / len(reference)) if reference else None,
    }


def _policy_numbers(topic_ids: list[str]) -> tuple[set[str], set[str]]:
    """(figures the topics require, every figure their text and answers contain)."""
    topics = {t.id: t for t in resources.policy()}
    required, allowed = set(), set()
    for topic_id in topic_ids:
        topic = topics.get(topic_id)
        if topic is None:
            continue
        required |= {str(value) for value in topic.facts.values()}
        for text in [*topic.text.values(), *topic.answer.values()]:
            allowed |= set(NUMBER.findall(text))
    return required, allowed


def score_faq(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    topics = (record.get("meta") or {}).get("policy_topics") or []
    if not topics:
        return {"faq_grounded": None, "faq_fact_recall": None}
    required, allowed = _policy_numbers(topics)
    stated = set(NUMBER.findall(output or ""))
    recall = len(required & stated) / len(required) if required else 1.0
    invented = stated - allowed
    return {"faq_grounded": float(recall == 1.0 and not invented), "faq_fact_recall": recall}


def score_history(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    """The last turn of a conversation: same catalogue products as the reference (for follow-ups
    like "那黑色的呢？" / "the cheaper one"), or the same policy figures for policy follow-ups."""
    reference = record["messages"][-1]["content"]
    expected = {p.sku for p in named_products(reference)}
    got = {p.sku for p in named_products(output or "")}
    if expected or got:
        return {"history_resolved": float(expected == got)}
    expected_numbers = set(NUMBER.findall(reference))
    got_numbers = set(NUMBER.findall(output or ""))
    if expected_numbers:
        return {"history_resolved": float(expected_numbers <= got_numbers)}
    return {"history_resolved": None}
