"""Catalogue retrieval for Chinese and English queries: BM25 over character n-grams (Chinese has no
spaces; n-grams also survive typos and mixed zh/en), plus the filters the extraction step found
(price range, colour, size). The result mirrors what training showed the model: products that
match first, then near misses, so the model itself says when nothing fits.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoptune.shop import resources
from shoptune.shop.catalogue import CatalogueSource
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
    """BM25 (Okapi, `k1`, `b`) over the products' documents, as an inverted index: a query touches
    only the products that share a term with it, so a 100,000-SKU catalogue answers in milliseconds
    (benchmarks/retrieval_scale.py). Each posting holds its term's precomputed BM25 weight (idf
    times the saturated, length-normalised term frequency); a query sums them with numpy."""

    def __init__(self, products: Sequence[Product] | None = None, k1: float = 1.2, b: float = 0.75) -> None:
        self.products = list(products if products is not None else resources.catalogue())
        self.k1, self.b = k1, b
        docs = [Counter(terms(_document(p))) for p in self.products]
        lengths = [sum(doc.values()) for doc in docs]
        average = sum(lengths) / max(1, len(lengths))
        postings: dict[str, tuple[list[int], list[float]]] = {}
        for row, (doc, length) in enumerate(zip(docs, lengths, strict=True)):
            denominator = k1 * (1 - b + b * length / average)
            for term, tf in doc.items():
                rows, weights = postings.setdefault(term, ([], []))
                rows.append(row)
                weights.append(tf * (k1 + 1) / (tf + denominator))
        n = len(docs)
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (rows, weights) in postings.items():
            idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
            self.postings[term] = (np.asarray(rows, dtype=np.int64), idf * np.asarray(weights))

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every product for `query`, in catalogue order."""
        out = np.zeros(len(self.products))
        for term, count in Counter(terms(query)).items():
            if term in self.postings:
                rows, weights = self.postings[term]
                out[rows] += weights * count
        return out

    def best_score(self, query: str) -> float:
        """How strongly `query` names something in the catalogue: its best product's score."""
        return float(self.scores(query).max(initial=0.0))

    def ranked(self, query: str, pool: int = 20) -> list[Product]:
        """The `pool` best-scoring products (score > 0), best first; ties go to the later product."""
        scores = self.scores(query)
        hits = np.flatnonzero(scores > 0)
        if len(hits) > pool:
            hits = hits[np.argpartition(-scores[hits], pool - 1)[:pool]]
            # argpartition keeps the top `pool` scores but may cut among equal ones; take every
            # product tied with the last place back in, then sort.
            hits = np.flatnonzero(scores >= scores[hits].min())
        order = np.lexsort((-hits, -scores[hits]))[:pool]
        return [self.products[i] for i in hits[order]]

    def search(self, query: str, filters: Filters = Filters(), *, k: int = 5, pool: int = 20) -> list[Product]:
        """Top `k`: matching products (filters pass) by relevance, then the best near misses."""
        return arrange(self.ranked(query, pool), filters, k)


def arrange(ranked: Sequence[Product], filters: Filters, k: int) -> list[Product]:
    """Products that pass `filters` first (in rank order), then the near misses; the first `k`."""
    matching = [p for p in ranked if filters.accepts(p)]
    others = [p for p in ranked if not filters.accepts(p)]
    return (matching + others)[:k]


class LiveCatalogue:
    """Retrieval over a catalogue that changes while the storefront runs. The products a search
    returns are read from the source at that moment, so the prices and stock a reply quotes and the
    filters it applies are the database's now, not the index's. The index is rebuilt when products
    are added or removed (the source's revision changes), checked at most every `check_every_s`
    seconds: counting 100,000 rows costs ~20 ms, which every turn would otherwise pay."""

    def __init__(
        self, source: CatalogueSource, check_every_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source, self.check_every_s, self.clock = source, check_every_s, clock
        self._built: tuple[Hashable, CatalogueIndex] | None = None
        self._checked_at = -math.inf
        self._lock = threading.Lock()

    def index(self) -> CatalogueIndex:
        """The index of the catalogue's current products, built again if they changed."""
        with self._lock:
            now = self.clock()
            if self._built is not None and now - self._checked_at < self.check_every_s:
                return self._built[1]
            revision = self.source.revision()
            self._checked_at = now
            if self._built is None or self._built[0] != revision:
                self._built = (revision, CatalogueIndex(self.source.products()))
            return self._built[1]

    def best_score(self, query: str) -> float:
        return self.index().best_score(query)

    def search(self, query: str, filters: Filters = Filters(), *, k: int = 5, pool: int = 20) -> list[Product]:
        """`CatalogueIndex.search` with every ranked product as the source has it now."""
        ranked = self.index().ranked(query, pool)
        now = self.source.current([p.sku for p in ranked])
        return arrange([now[p.sku] for p in ranked if p.sku in now], filters, k)
