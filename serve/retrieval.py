"""Catalogue retrieval for Chinese and English queries: BM25 over character n-grams (Chinese has no
spaces; n-grams also survive typos and mixed zh/en), plus the filters the extraction step found
(price range, colour, size). The result mirrors what training showed the model: products that
match first, then near misses, so the model itself says when nothing fits.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shoptune.shop import resources
from shoptune.shop.resources import Product

_WORD = re.compile(r"[a-z0-9]+")
_CJK = re.compile(r"[\u3400-\u9fff]+")


def terms(text: str) -> list[str]:
    """Character 1- and 2-grams of CJK runs, plus lower-cased words and their 3-grams."""
    text = text.lower()
    found: list[str] = []
    for run in _CJK.findall(text):
        found += list(run) + [run[i : i + 2] for i in range(len(run) - 1)]
    for word in _WORD.findall(text):
        found.append(word)
        found += [f"#{word[i : i + 3]}" for i in range(max(0, len(word) - 2))]
    return found


def _document(product: Product) -> str:
    lexicon = resources.templates("lexicon")
    aliases = lexicon["nouns"].get(product.noun_zh, {})
    colours = " ".join(f"{c.zh} {c.en}" for c in product.colors)
    return " ".join(
        [
            product.name_zh,
            product.name_en,
            product.brand_zh,
            product.brand_en,
            product.noun_zh,
            product.noun_en,
            *aliases.get("zh", []),
            *aliases.get("en", []),
            colours,
            product.category,
        ]
    )


@dataclass(frozen=True)
class Filters:
    price_range: tuple[float | None, float | None] | None = None
    color: str | None = None
    size: str | None = None

    @classmethod
    def from_extraction(cls, extracted: dict[str, Any] | None) -> Filters:
        if not extracted:
            return cls()
        price = extracted.get("price_range")
        return cls(
            tuple(price) if isinstance(price, list) and len(price) == 2 else None,
            extracted.get("color"),
            extracted.get("size"),
        )

    def accepts(self, product: Product) -> bool:
        if self.price_range:
            low, high = self.price_range
            if (low is not None and product.price < low) or (high is not None and product.price > high):
                return False
        if self.color and self.color not in {c.zh for c in product.colors} | {c.en for c in product.colors}:
            return False
        return not (self.size and self.size.casefold() not in {s.casefold() for s in product.sizes})


class CatalogueIndex:
    def __init__(self, products: Sequence[Product] | None = None, k1: float = 1.2, b: float = 0.75) -> None:
        self.products = list(products if products is not None else resources.catalogue())
        self.docs = [Counter(terms(_document(p))) for p in self.products]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.average = sum(self.lengths) / max(1, len(self.lengths))
        frequency: Counter[str] = Counter()
        for doc in self.docs:
            frequency.update(doc.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}
        self.k1, self.b = k1, b

    def scores(self, query: str) -> list[float]:
        query_terms = Counter(terms(query))
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            score = 0.0
            for term, count in query_terms.items():
                tf = doc.get(term, 0)
                if tf:
                    norm = tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / self.average))
                    score += self.idf.get(term, 0.0) * norm * count
            out.append(score)
        return out

    def search(self, query: str, filters: Filters = Filters(), *, k: int = 5, pool: int = 20) -> list[Product]:
        """Top `k`: matching products (filters pass) by relevance, then the best near misses."""
        scored = sorted(((s, i) for i, s in enumerate(self.scores(query)) if s > 0), reverse=True)[:pool]
        ranked = [self.products[i] for _, i in scored]
        matching = [p for p in ranked if filters.accepts(p)]
        others = [p for p in ranked if not filters.accepts(p)]
        return (matching + others)[:k]
