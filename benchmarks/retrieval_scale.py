"""Catalogue retrieval at a real shop's size: 100,000 SKUs in an SQLite catalogue database.

The catalogue is generated from the example shop's products (each a template for many: same brand,
noun and colours, a new model number, price and stock) and written with `write_catalogue`, the
`products` table `shop.catalogue_url` reads. Per query, in milliseconds, over shopper messages in
both languages:

- storefront: what a product turn costs the storefront before the model is asked, through the code
  it runs (`LiveCatalogue`): the routing score, then the search, the revision check and the fresh
  price and stock rows of the candidates read from the database. Goal: p95 under 50 ms.
- inverted: `CatalogueIndex.search` alone (the numpy BM25 postings).
- fts5: SQLite FTS5 over the same terms, `ORDER BY bm25` (the alternative the issue names).
- scan: the previous index, every product scored in Python per query (the baseline; fewer queries).

    python benchmarks/retrieval_scale.py [--skus 100000] [--queries 40]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import percentile, write_result

QUERIES = [
    "我想买一部3000元以内的手机",
    "有没有黑色的羽绒服",
    "红色的小米手机",
    "耐克运动鞋 42码",
    "推荐一款降噪耳机",
    "想要一台轻薄笔记本电脑",
    "华为平板有货吗",
    "白色连衣裙 M码",
    "I need a phone under 3000 yuan",
    "Do you sell laptops?",
    "black down jacket size L",
    "Nike running shoes size 42",
    "a red Xiaomi phone between 2000 and 3000",
    "noise cancelling headphones",
    "Looking for a white dress",
    "Huawei tablet in stock?",
]


def generate(base: list, count: int, seed: int = 7) -> list:
    """`count` products modelled on `base`: each a variant of a base product with its own SKU,
    model number, price and stock."""
    rng = random.Random(seed)
    products = []
    for number in range(count):
        model = rng.choice(base)
        line = f"{rng.choice('ABCDEFGHKLMNPRSTXZ')}{rng.randint(1, 999)}"
        products.append(
            replace(
                model,
                sku=f"GEN-{number:06d}",
                name_zh=f"{model.brand_zh} {line} {model.noun_zh}",
                name_en=f"{model.brand_en} {line} {model.noun_en}",
                price=float(round(model.price * rng.uniform(0.5, 1.8))),
                stock=rng.choice([0, 3, 12, 40, 180]),
            )
        )
    return products


class ScanIndex:
    """The previous retrieval: every product's BM25 score computed in Python for each query."""

    def __init__(self, products: list, k1: float = 1.2, b: float = 0.75) -> None:
        from shoptune.serve.retrieval import _document, terms

        self.products, self.k1, self.b = products, k1, b
        self.docs = [Counter(terms(_document(p))) for p in products]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.average = sum(self.lengths) / len(self.lengths)
        frequency: Counter[str] = Counter()
        for doc in self.docs:
            frequency.update(doc.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in frequency.items()}

    def search(self, query: str, pool: int = 20) -> list:
        from shoptune.serve.retrieval import terms

        query_terms = Counter(terms(query))
        scores = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            score = 0.0
            for term, count in query_terms.items():
                tf = doc.get(term, 0)
                if tf:
                    norm = tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / self.average))
                    score += self.idf.get(term, 0.0) * norm * count
            scores.append(score)
        ranked = sorted(((s, i) for i, s in enumerate(scores) if s > 0), reverse=True)[:pool]
        return [self.products[i] for _, i in ranked]


class Fts5Index:
    """SQLite FTS5 over each product's terms (each term spelled as a token FTS5 keeps whole)."""

    def __init__(self, products: list) -> None:
        from shoptune.serve.retrieval import _document, terms

        self.products = products
        self.vocabulary: dict[str, str] = {}
        self.db = sqlite3.connect(":memory:")
        self.db.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
        rows = [(i, " ".join(self._token(t) for t in terms(_document(p)))) for i, p in enumerate(products)]
        self.db.executemany("INSERT INTO docs(rowid, body) VALUES (?, ?)", rows)

    def _token(self, term: str) -> str:
        return self.vocabulary.setdefault(term, f"t{len(self.vocabulary)}")

    def search(self, query: str, pool: int = 20) -> list:
        from shoptune.serve.retrieval import terms

        tokens = sorted({self.vocabulary[t] for t in terms(query) if t in self.vocabulary})
        if not tokens:
            return []
        found = self.db.execute(
            "SELECT rowid FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?", (" OR ".join(tokens), pool)
        )
        return [self.products[row] for (row,) in found]


def timed(search, queries: list[str]) -> tuple[list[float], list]:
    """Milliseconds of each `search(query)`, and the results."""
    times, results = [], []
    for query in queries:
        started = time.perf_counter()
        results.append(search(query))
        times.append((time.perf_counter() - started) * 1000)
    return times, results


def summary(times: list[float]) -> dict[str, float]:
    return {
        "queries": len(times),
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "max_ms": round(max(times), 2),
    }


def overlap(a: list, b: list, k: int = 5) -> float:
    """Share of the top `k` SKUs two searches agree on, averaged over queries."""
    shares = [len({p.sku for p in x[:k]} & {p.sku for p in y[:k]}) / k for x, y in zip(a, b, strict=True) if x]
    return round(sum(shares) / max(1, len(shares)), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=48, help="storefront/inverted/fts5 queries (cycled)")
    parser.add_argument("--scan-queries", type=int, default=4, help="queries for the slow baseline")
    args = parser.parse_args()

    from shoptune.serve.retrieval import Filters, LiveCatalogue
    from shoptune.shop import resources
    from shoptune.shop.catalogue import SqlCatalogue, write_catalogue

    products = generate(list(resources.catalogue()), args.skus)
    queries = [QUERIES[i % len(QUERIES)] for i in range(args.queries)]
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite:///{Path(work) / 'catalogue.db'}"
        started = time.perf_counter()
        write_catalogue(url, products)
        written_s = time.perf_counter() - started

        live = LiveCatalogue(SqlCatalogue(url))
        started = time.perf_counter()
        index = live.index()
        build_s = time.perf_counter() - started

        def storefront_turn(query: str) -> list:
            live.best_score(query)
            return live.search(query, Filters((None, 3000.0), None, None))

        storefront_ms, storefront_hits = timed(storefront_turn, queries)
        inverted_ms, inverted_hits = timed(lambda q: index.search(q), queries)
        ranked = [index.ranked(q) for q in queries]

    started = time.perf_counter()
    fts5 = Fts5Index(products)
    fts5_build_s = time.perf_counter() - started
    fts5_ms, fts5_hits = timed(fts5.search, queries)

    started = time.perf_counter()
    scan = ScanIndex(products)
    scan_build_s = time.perf_counter() - started
    scan_queries = queries[: args.scan_queries]
    scan_ms, scan_hits = timed(scan.search, scan_queries)

    same_as_scan = all(
        [p.sku for p in got] == [p.sku for p in want]
        for got, want in zip(ranked[: len(scan_hits)], scan_hits, strict=True)
    )
    results = {
        "storefront": summary(storefront_ms),
        "inverted": summary(inverted_ms),
        "fts5": summary(fts5_ms),
        "scan_baseline": summary(scan_ms),
    }
    storefront_p95 = results["storefront"]["p95_ms"]
    write_result(
        "retrieval_scale",
        {
            "skus": args.skus,
            "goal_p95_ms": 50,
            "met": storefront_p95 < 50,
            "runs": results,
            "build_s": {
                "write_database": round(written_s, 1),
                "inverted_index_from_database": round(build_s, 1),
                "fts5": round(fts5_build_s, 1),
                "scan": round(scan_build_s, 1),
            },
            "speedup": round(percentile(scan_ms, 50) / percentile(inverted_ms, 50), 1),
            "speedup_vs_fts5": round(percentile(fts5_ms, 50) / percentile(inverted_ms, 50), 2),
            "same_ranking_as_scan": same_as_scan,
            "top5_agreement_fts5_vs_inverted": overlap(fts5_hits, ranked),
            "storefront_returned_products": sum(1 for hits in storefront_hits if hits) / len(storefront_hits),
            "inverted_returned_products": sum(1 for hits in inverted_hits if hits) / len(inverted_hits),
            "queries": sorted(set(queries), key=queries.index),
            "note": re.sub(r"\s+", " ", __doc__.split("\n\n")[1]),
        },
    )


if __name__ == "__main__":
    main()
