"""Shopper product requests, with the filters they mean: the seed of extraction, recommendation
and conversation records alike (the storefront extracts exactly these filters before retrieval)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shoptune.data.surface import add_typos, budget_phrase, casing_noise, shop_money
from shoptune.data.tasks.context import TaskContext, slots
from shoptune.shop import resources
from shoptune.shop.prompts import detect_language
from shoptune.shop.resources import Product, canonical_product

SIZE_KIND = {"phone": "storage", "laptop": "storage", "shoes": "shoe", "apparel": "apparel"}


@dataclass(frozen=True)
class ProductQuery:
    text: str
    template_id: str
    noun_zh: str
    brand_zh: str | None
    price_range: tuple[int | None, int | None] | None
    color: str | None
    """Canonical (Chinese) colour name."""
    size: str | None
    target: Product

    @property
    def product(self) -> str:
        """The extraction target's `product`: canonical brand + noun, or the noun alone."""
        return canonical_product(self.brand_zh, self.noun_zh)

    def extraction_target(self) -> dict[str, object]:
        return {
            "product": self.product,
            "price_range": list(self.price_range) if self.price_range is not None else None,
            "color": self.color,
            "size": self.size,
        }

    def matches(self, product: Product) -> bool:
        """Would this product satisfy the request (ignoring stock)?"""
        if product.noun_zh != self.noun_zh or (self.brand_zh and product.brand_zh != self.brand_zh):
            return False
        if self.price_range is not None:
            low, high = self.price_range
            if (low is not None and product.price < low) or (high is not None and product.price > high):
                return False
        if self.color and self.color not in {c.zh for c in product.colors}:
            return False
        return not (self.size and self.size not in product.sizes)

    def with_colour(self, colour_zh: str) -> ProductQuery:
        return ProductQuery(
            self.text,
            self.template_id,
            self.noun_zh,
            self.brand_zh,
            self.price_range,
            colour_zh,
            self.size,
            self.target,
        )


def sizable(product: Product, lang: str) -> list[str]:
    """Sizes a shopper would name in a request; English shoppers do not type "标准版"."""
    return [size for size in product.sizes if lang == "zh" or detect_language(size) == "en"]


def _nice_step(price: float) -> int:
    if price >= 3000:
        return 500
    if price >= 1000:
        return 100
    if price >= 200:
        return 50
    return 10


def _budget(ctx: TaskContext, price: float) -> tuple[int | None, int | None]:
    """A budget the target product fits: a range, an upper bound or a lower bound, in round numbers."""
    step = _nice_step(price)
    high = int(math.ceil(price * ctx.rng.uniform(1.0, 1.4) / step) * step)
    low = int(math.floor(price * ctx.rng.uniform(0.6, 0.95) / step) * step)
    kind = ctx.rng.random()
    if kind < 0.4:
        return (max(low, step), high)
    if kind < 0.85:
        return (None, high)
    return (max(low, step), None)


def _size_phrase(ctx: TaskContext, product: Product, size: str) -> str:
    kind = SIZE_KIND.get(product.category, "plain")
    forms = resources.templates("lexicon")["size_forms"][kind][ctx.lang]
    form = ctx.choice(forms)
    if kind == "storage":
        ram, rom = size.replace("GB", "").replace("TB", "T").split("+")
        rom = rom.replace("T", "TB") if "T" in rom else rom
        return form.format(size=size, ram=ram, rom=rom)
    return form.format(size=size)


def product_phrase(ctx: TaskContext, product: Product, with_brand: bool) -> str:
    """How the shopper names the product: a noun alias, with the brand in either language."""
    nouns = resources.templates("lexicon")["nouns"][product.noun_zh]
    noun = ctx.choice(nouns[ctx.lang])
    if not with_brand:
        return noun
    if ctx.lang == "zh":
        brand = product.brand_en if ctx.rng.random() < 0.2 else product.brand_zh  # mixed zh/en
        return f"{brand}{noun}"
    return f"{product.brand_en} {noun}"


def colour_phrase(ctx: TaskContext, colour_zh: str) -> str:
    forms = resources.templates("lexicon")["colours"][colour_zh][ctx.lang]
    text = ctx.choice(forms)
    return text.capitalize() if ctx.lang == "en" and ctx.rng.random() < 0.1 else text


def sample_product_query(
    ctx: TaskContext, *, require: frozenset[str] = frozenset(), forbid: frozenset[str] = frozenset()
) -> ProductQuery:
    """Fill a product_query template from a real product, so the request is satisfiable."""
    pool = resources.templates("product_query")[ctx.lang]
    template = ctx.pick_template(pool, where=lambda t: require <= slots(t["text"]) and not (forbid & slots(t["text"])))
    wanted = slots(template["text"])

    def usable(product: Product) -> bool:
        return ("color" not in wanted or bool(product.colors)) and (
            "size" not in wanted or bool(sizable(product, ctx.lang))
        )

    target = ctx.choice(ctx.product_pool(usable))
    ctx.note_products([target])
    with_brand = ctx.rng.random() < 0.65
    colour = ctx.choice(target.colors).zh if "color" in wanted else None
    size = ctx.choice(sizable(target, ctx.lang)) if "size" in wanted else None
    price_range = _budget(ctx, target.price) if "budget" in wanted else None
    text = add_typos(ctx.rng, template["text"], ctx.lang)
    text = text.format(
        product=product_phrase(ctx, target, with_brand),
        color=colour_phrase(ctx, colour) if colour else "",
        size=_size_phrase(ctx, target, size) if size else "",
        budget=budget_phrase(ctx.rng, ctx.lang, *price_range, shop_money()) if price_range else "",
    )
    return ProductQuery(
        text=casing_noise(ctx.rng, text),
        template_id=template["id"],
        noun_zh=target.noun_zh,
        brand_zh=target.brand_zh if with_brand else None,
        price_range=price_range,
        color=colour,
        size=size,
        target=target,
    )
