"""`recommend` records: a request, the retrieved catalogue excerpt in the system message, and an
answer naming only in-stock products that meet every stated condition, at their exact prices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shoptune.data.tasks.context import TaskContext
from shoptune.data.tasks.queries import ProductQuery, sample_product_query
from shoptune.shop import resources
from shoptune.shop.prompts import catalogue_context, format_price, system_message
from shoptune.shop.resources import Product

MAX_RECOMMENDED = 3
CONTEXT_SIZE = 5


def recommended(query: ProductQuery, candidates: Sequence[Product]) -> list[Product]:
    """The grounded answer's products: in stock, matching, cheapest first, at most three."""
    hits = [p for p in candidates if p.in_stock and query.matches(p)]
    return sorted(hits, key=lambda p: (p.price, p.sku))[:MAX_RECOMMENDED]


def retrieve_candidates(ctx: TaskContext, query: ProductQuery, size: int = CONTEXT_SIZE) -> list[Product]:
    """What retrieval would hand the model: the target, other products of the same kind
    (some matching, some not, some out of stock) and a few of other brands, shuffled."""
    same_noun = [p for p in ctx.regular_products(lambda p: p.noun_zh == query.noun_zh) if p.sku != query.target.sku]
    ctx.rng.shuffle(same_noun)
    picked = [query.target, *same_noun[: size - 1]]
    ctx.rng.shuffle(picked)
    ctx.note_products(picked)
    return picked


def conditions_text(ctx: TaskContext, query: ProductQuery) -> str:
    parts = []
    if query.price_range is not None:
        low, high = query.price_range
        sign = resources.style_guide().currency.symbol
        if ctx.lang == "zh":
            parts.append(
                f"{sign}{low}到{sign}{high}之间"
                if low and high
                else (f"{sign}{high}以内" if high else f"{sign}{low}以上")
            )
        else:
            parts.append(
                f"between {sign}{low} and {sign}{high}"
                if low and high
                else (f"under {sign}{high}" if high else f"over {sign}{low}")
            )
    if query.color:
        colour_en = resources.templates("lexicon")["colours"][query.color]["en"][0]
        parts.append(query.color if ctx.lang == "zh" else f"in {colour_en}")
    if query.size:
        parts.append(f"{query.size}规格" if ctx.lang == "zh" else f"in {query.size}")
    if not parts:
        return "符合条件" if ctx.lang == "zh" else "that matches"
    return "、".join(parts) + "的" if ctx.lang == "zh" else " ".join(parts)


def product_line(lang: str, index: int, product: Product) -> str:
    """One numbered product line of a recommendation, as the shop's answer templates write it."""
    phrasing = resources.templates("answers")["recommend"]
    key = "item" if product.colors else "item_no_colour"
    join = "、".join if lang == "zh" else ", ".join
    return phrasing[key][lang].format(
        index=index,
        sku=product.sku,
        name=product.name(lang),
        price=format_price(product.price),
        colors=join(product.colour_names(lang)),
        sizes=join(product.sizes),
    )


def product_detail(ctx: TaskContext, product: Product) -> str:
    phrasing = resources.templates("answers")["recommend"]
    key = "detail" if product.colors else "detail_no_colour"
    return phrasing[key][ctx.lang].format(
        name=product.name(ctx.lang),
        price=format_price(product.price),
        colors=ctx.join(product.colour_names(ctx.lang)),
        sizes=ctx.join(product.sizes),
        stock=product.stock,
    )


def recommendation_body(ctx: TaskContext, query: ProductQuery, picks: Sequence[Product]) -> str:
    phrasing = resources.templates("answers")["recommend"]
    noun = query.noun_zh if ctx.lang == "zh" else query.target.noun_en
    if not picks:
        return ctx.choice(phrasing["none"][ctx.lang]).format(noun=noun, conditions=conditions_text(ctx, query))
    if ctx.lang == "en" and len(picks) > 1 and not noun.endswith("s"):
        noun += "s"
    intro_key = "found_intro_one" if len(picks) == 1 else "found_intro"
    intro = ctx.choice(phrasing[intro_key][ctx.lang]).format(n=len(picks), noun=noun)
    return "\n".join([intro, *(product_line(ctx.lang, i, p) for i, p in enumerate(picks, start=1))])


def recommend_record(ctx: TaskContext) -> dict[str, Any]:
    query = sample_product_query(ctx)
    candidates = retrieve_candidates(ctx, query)
    picks = recommended(query, candidates)
    return {
        "task": "recommend",
        "messages": [
            system_message(ctx.system_prompt, catalogue_context(candidates, ctx.lang)),
            {"role": "user", "content": query.text},
            {"role": "assistant", "content": ctx.styled(recommendation_body(ctx, query, picks), first_reply=True)},
        ],
        "meta_extra": {
            "query": query.extraction_target(),
            "recommended_skus": [p.sku for p in picks],
            "context_skus": [p.sku for p in candidates],
        },
    }
