"""Where a shop's products live: a file in its folder, or a database table that changes while the
storefront runs.

    catalogue/products.jsonl (or .csv)  the folder's file (the example shop's); read again on change
    shop.catalogue_url: sqlite:///shop.db   a `products` table in any SQLAlchemy database

Both are a `CatalogueSource`: `products()` for everything (data builds, the retrieval index),
`current(skus)` for the rows a request is about to quote, read at request time so a price or stock
change in the database is what the next answer says, and `revision()`, a cheap token that changes
when products are added or removed, which is when the storefront rebuilds its retrieval index.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from shoptune.core.errors import BadInputError
from shoptune.shop.resources import Product, catalogue_file, product_from_row, read_catalogue

PRODUCTS = Table(
    "products",
    MetaData(),
    Column("sku", String(64), primary_key=True),
    Column("category", String(64), nullable=False),
    Column("brand_zh", String(128), nullable=False),
    Column("brand_en", String(128), nullable=False),
    Column("noun_zh", String(128), nullable=False),
    Column("noun_en", String(128), nullable=False),
    Column("name_zh", String(256), nullable=False),
    Column("name_en", String(256), nullable=False),
    Column("price", Float, nullable=False),
    Column("colors", JSON, nullable=False),
    Column("sizes", JSON, nullable=False),
    Column("stock", Integer, nullable=False),
    Column("specs", JSON, nullable=False),
)
"""The catalogue table a database-backed shop provides (`shoptune shop catalogue-db` creates it)."""


class CatalogueSource(Protocol):
    def revision(self) -> Hashable:
        """Changes when products are added or removed (not on a price or stock change)."""

    def products(self) -> tuple[Product, ...]:
        """Every product, as it is now."""

    def current(self, skus: Sequence[str]) -> dict[str, Product]:
        """The products with these SKUs as they are now (a SKU no longer sold is left out)."""


class FileCatalogue:
    """The folder's `catalogue/products.jsonl` or `.csv`, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._read: tuple[Hashable, tuple[Product, ...], dict[str, Product]] | None = None

    def revision(self) -> Hashable:
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size

    def _snapshot(self) -> tuple[tuple[Product, ...], dict[str, Product]]:
        revision = self.revision()
        if self._read is None or self._read[0] != revision:
            products = read_catalogue(self.path)
            self._read = (revision, products, {p.sku: p for p in products})
        return self._read[1], self._read[2]

    def products(self) -> tuple[Product, ...]:
        return self._snapshot()[0]

    def current(self, skus: Sequence[str]) -> dict[str, Product]:
        by_sku = self._snapshot()[1]
        return {sku: by_sku[sku] for sku in skus if sku in by_sku}


class SqlCatalogue:
    """The `products` table of the database at `url` (any SQLAlchemy URL), read on every call."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = connect(url)

    def _fetch(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as connection:
                return list(connection.execute(query).mappings().all())
        except SQLAlchemyError as exc:
            raise BadInputError(f"shop.catalogue_url: {self.engine.url!r}: cannot read products: {exc}") from exc

    def _rows(self, query: Any) -> list[Product]:
        return [
            product_from_row(dict(row), where=f"{self.engine.url!r} products sku={row['sku']}")
            for row in self._fetch(query)
        ]

    def revision(self) -> Hashable:
        (row,) = self._fetch(select(func.count().label("count"), func.max(PRODUCTS.c.sku).label("last")))
        return row["count"], row["last"]

    def products(self) -> tuple[Product, ...]:
        return tuple(self._rows(select(PRODUCTS).order_by(PRODUCTS.c.sku)))

    def current(self, skus: Sequence[str]) -> dict[str, Product]:
        if not skus:
            return {}
        return {p.sku: p for p in self._rows(select(PRODUCTS).where(PRODUCTS.c.sku.in_(list(skus))))}


def connect(url: str) -> Engine:
    """An engine for `url`, or `BadInputError` saying what is wrong with it."""
    try:
        return create_engine(url)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise BadInputError(f"{url!r}: not a database URL SQLAlchemy can open: {exc}") from exc


def write_catalogue(url: str, products: Iterable[Product]) -> int:
    """Create the `products` table at `url` (if missing) and insert or replace `products`; how many."""
    rows = [product_row(p) for p in products]
    engine = connect(url)
    try:
        PRODUCTS.metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(PRODUCTS.delete().where(PRODUCTS.c.sku.in_([r["sku"] for r in rows])))
            if rows:
                connection.execute(PRODUCTS.insert(), rows)
    except SQLAlchemyError as exc:
        raise BadInputError(f"{engine.url!r}: cannot write products: {exc}") from exc
    finally:
        engine.dispose()
    return len(rows)


def product_row(product: Product) -> dict[str, Any]:
    """`product` as a row of `PRODUCTS` (and as a line of products.jsonl)."""
    return {
        "sku": product.sku,
        "category": product.category,
        "brand_zh": product.brand_zh,
        "brand_en": product.brand_en,
        "noun_zh": product.noun_zh,
        "noun_en": product.noun_en,
        "name_zh": product.name_zh,
        "name_en": product.name_en,
        "price": product.price,
        "colors": [{"zh": c.zh, "en": c.en} for c in product.colors],
        "sizes": list(product.sizes),
        "stock": product.stock,
        "specs": json.loads(json.dumps(product.specs)),
    }


def catalogue_source(folder: Path, url: str | None) -> CatalogueSource:
    """The shop's catalogue: the database at `url` if one is configured, else the folder's file."""
    return SqlCatalogue(url) if url else FileCatalogue(catalogue_file(folder))
