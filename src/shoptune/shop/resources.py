"""Typed access to a shop's folder: catalogue, extraction schemas, style guide, policy, templates.

A shop is a folder (the config's `shop.dir`; unset, the example shop in the checkout's `datasets/`).
The files are data a shop edits; this module is the one place that reads them, so every consumer
(generator, checker, eval metrics, storefront) sees the same catalogue, schemas and policy. A
process works on one shop at a time: `use_shop()` selects it where a config enters the process
(the CLI, the storefront app), and the readers below (`catalogue()`, `schemas()`, ...) read it.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from shoptune.core.errors import BadInputError
from shoptune.core.hashing import sha256_file
from shoptune.core.paths import DATASETS_DIR

if TYPE_CHECKING:
    from shoptune.shop.catalogue import CatalogueSource

SCHEMA_SUFFIX = ".schema.json"


@dataclass(frozen=True)
class Colour:
    zh: str
    en: str


@dataclass(frozen=True)
class Product:
    sku: str
    category: str
    brand_zh: str
    brand_en: str
    noun_zh: str
    noun_en: str
    name_zh: str
    name_en: str
    price: float
    colors: tuple[Colour, ...]
    sizes: tuple[str, ...]
    stock: int
    specs: dict[str, Any]

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    def name(self, lang: str) -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def colour_names(self, lang: str) -> list[str]:
        return [colour.zh if lang == "zh" else colour.en for colour in self.colors]


@dataclass(frozen=True)
class PolicyTopic:
    id: str
    title: dict[str, str]
    facts: dict[str, int]
    text: dict[str, str]
    questions: dict[str, list[str]]
    answer: dict[str, str]


@dataclass(frozen=True)
class Currency:
    """How the shop writes money: the sign before a price, and the words that name the unit in a
    budget ("3000元以内", "under 500 dollars"). The example shop's (yuan) when a style guide has none."""

    symbol: str = "¥"
    units: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"zh": ("元", "块"), "en": ("yuan", "RMB")})


@dataclass(frozen=True)
class StyleGuide:
    shop_name: dict[str, str]
    opener: dict[str, str]
    pronoun: dict[str, str]
    forbidden_pronoun: dict[str, str | None]
    greeting: dict[str, str]
    sign_off: dict[str, str]
    banned_phrases: dict[str, list[str]]
    emoji_max: int
    emoji_allowed: tuple[str, ...]
    max_zh_chars: int
    max_en_words: int
    currency: Currency = field(default_factory=lambda: Currency())
    system_prompt: str | None = None
    """The assistant's system prompt in this shop's words; None: the config's `data.system_prompt`."""


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read shop data: {exc}") from exc


_CJK = re.compile(r"[\u3400-\u9fff]")


def canonical_product(brand: str | None, noun: str) -> str:
    """An extraction target's `product`: brand and noun as the shop writes them together, run
    together in Chinese (小米手机, OPPO手机), with a space between words otherwise (Sony headphones)."""
    if not brand:
        return noun
    return f"{brand}{noun}" if _CJK.search(brand + noun) else f"{brand} {noun}"


def product_from_row(raw: dict[str, Any], *, where: str) -> Product:
    """A catalogue row (a products.jsonl line or a database row) as a `Product`; `where` names it in errors."""
    try:
        return Product(
            sku=raw["sku"],
            category=raw["category"],
            brand_zh=raw["brand_zh"],
            brand_en=raw["brand_en"],
            noun_zh=raw["noun_zh"],
            noun_en=raw["noun_en"],
            name_zh=raw["name_zh"],
            name_en=raw["name_en"],
            price=float(raw["price"]),
            colors=tuple(Colour(c["zh"], c["en"]) for c in raw["colors"]),
            sizes=tuple(raw["sizes"]),
            stock=int(raw["stock"]),
            specs=dict(raw.get("specs") or {}),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInputError(f"{where}: bad product record: {exc!r}") from exc


CATALOGUE_FILES = ("products.jsonl", "products.csv")
"""A folder's catalogue file, the first of these that exists under `catalogue/`."""
CSV_LISTS = ("colors", "sizes")
"""CSV cells holding lists, `;`-separated; a colour is `zh/en` or one name for both languages."""


def catalogue_file(root: Path) -> Path:
    """The shop's catalogue file: `catalogue/products.jsonl`, or else `catalogue/products.csv`."""
    folder = root / "catalogue"
    return next((folder / name for name in CATALOGUE_FILES if (folder / name).is_file()), folder / CATALOGUE_FILES[0])


def _number(cell: str) -> float | str:
    try:
        return float(cell)
    except ValueError:
        return cell  # left as written: the row's check names the field


def _colour(cell: str) -> dict[str, str]:
    zh, _, en = cell.partition("/")
    return {"zh": zh.strip(), "en": (en or zh).strip()}


def csv_product(row: dict[str, str]) -> dict[str, Any]:
    """A `products.csv` row as a catalogue record. The zh columns may be left out (an English-only
    shop): each then reads its en column. `specs` is a JSON object or empty."""
    raw: dict[str, Any] = {key: (value or "").strip() for key, value in row.items() if key}
    for field_name in ("brand", "noun", "name"):
        raw[f"{field_name}_zh"] = raw.get(f"{field_name}_zh") or raw.get(f"{field_name}_en", "")
    raw["price"] = _number(raw.get("price", ""))
    stock = _number(raw.get("stock", ""))
    raw["stock"] = int(stock) if isinstance(stock, float) and stock.is_integer() else stock
    parts = {name: [part.strip() for part in raw.get(name, "").split(";") if part.strip()] for name in CSV_LISTS}
    raw["colors"] = [_colour(part) for part in parts["colors"]]
    raw["sizes"] = parts["sizes"]
    raw["specs"] = json.loads(raw["specs"]) if raw.get("specs") else {}
    return raw


def catalogue_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | ValueError]]:
    """(line, record) for each product of a products.jsonl or products.csv; a line that cannot be
    parsed at all comes as its `ValueError`."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            try:
                yield reader.line_num, csv_product(row)
            except ValueError as exc:
                yield reader.line_num, exc
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                yield number, exc


def read_catalogue(path: Path) -> tuple[Product, ...]:
    products = []
    for number, raw in catalogue_rows(path):
        if isinstance(raw, ValueError):
            raise BadInputError(f"{path}:{number}: bad product record: {raw!r}")
        products.append(product_from_row(raw, where=f"{path}:{number}"))
    return tuple(products)


def read_schema(path: Path) -> dict[str, Any]:
    """One extraction schema: a JSON Schema (draft 2020-12) of an object, or `BadInputError` naming the file."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read schema: {exc}") from exc
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(top level)"
        raise BadInputError(f"{path}: not a valid JSON Schema at {where}: {exc.message}") from exc
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise BadInputError(f'{path}: an extraction schema must be "type": "object" with "properties"')
    return schema


def schema_name(path: Path) -> str:
    """`schemas/warranty_claim.schema.json` -> `warranty_claim`."""
    return path.name.removesuffix(SCHEMA_SUFFIX)


def _currency(raw: dict[str, Any] | None) -> Currency:
    if not raw:
        return Currency()
    return Currency(raw["symbol"], {lang: tuple(words) for lang, words in raw["units"].items()})


@dataclass(frozen=True)
class Shop:
    """One shop's folder, each file read once on first use."""

    root: Path
    catalogue_url: str | None = None
    """A database whose `products` table is the catalogue (`shop.catalogue_url`); None: the folder's file."""
    _templates: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def catalogue_source(self) -> CatalogueSource:
        """The catalogue as it changes (the storefront reads prices and stock from it per request)."""
        from shoptune.shop.catalogue import catalogue_source

        return catalogue_source(self.root, self.catalogue_url)

    @cached_property
    def catalogue(self) -> tuple[Product, ...]:
        """The catalogue as it was when first read (what a data build or an eval run works from)."""
        return self.catalogue_source.products()

    @cached_property
    def products_by_sku(self) -> dict[str, Product]:
        return {product.sku: product for product in self.catalogue}

    @cached_property
    def schemas(self) -> dict[str, dict[str, Any]]:
        """The extraction schemas by name: every `schemas/<name>.schema.json`, in name order."""
        folder = self.root / "schemas"
        paths = sorted(folder.glob(f"*{SCHEMA_SUFFIX}"))
        if not paths:
            raise BadInputError(f"{folder}: no extraction schema (*{SCHEMA_SUFFIX})")
        return {schema_name(path): read_schema(path) for path in paths}

    @cached_property
    def policy(self) -> tuple[PolicyTopic, ...]:
        raw = _read_yaml(self.root / "policy" / "store_policy.yaml")
        return tuple(
            PolicyTopic(
                id=topic["id"],
                title=topic["title"],
                facts=dict(topic.get("facts") or {}),
                text=topic["text"],
                questions=topic["questions"],
                answer=topic["answer"],
            )
            for topic in raw["topics"]
        )

    @cached_property
    def style_guide(self) -> StyleGuide:
        raw = _read_yaml(self.root / "brand" / "style_guide.yaml")
        address = raw["address_form"]
        return StyleGuide(
            shop_name=raw["shop_name"],
            opener={lang: address[lang]["opener"] for lang in address},
            pronoun={lang: address[lang]["pronoun"] for lang in address},
            forbidden_pronoun={lang: address[lang]["forbidden_pronoun"] for lang in address},
            greeting=raw["greeting"],
            sign_off=raw["sign_off"],
            banned_phrases=raw["banned_phrases"],
            emoji_max=int(raw["emoji"]["max_per_reply"]),
            emoji_allowed=tuple(raw["emoji"]["allowed"]),
            max_zh_chars=int(raw["max_length"]["zh_chars"]),
            max_en_words=int(raw["max_length"]["en_words"]),
            currency=_currency(raw.get("currency")),
            system_prompt=raw.get("system_prompt"),
        )

    def has_templates(self, name: str) -> bool:
        return (self.root / "templates" / f"{name}.yaml").is_file()

    def templates(self, name: str) -> Any:
        """A template file from `templates/` (product_query, order_request, faq, chat, ...)."""
        if name not in self._templates:
            self._templates[name] = _read_yaml(self.root / "templates" / f"{name}.yaml")
        return self._templates[name]

    def source_files(self) -> list[Path]:
        """Every data file of the shop (their hashes go into the build manifest)."""
        return sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix in {".jsonl", ".json", ".yaml", ".csv"}
        )

    def source_hashes(self) -> dict[str, str]:
        return {path.relative_to(self.root).as_posix(): sha256_file(path) for path in self.source_files()}


@functools.cache
def open_shop(root: Path, catalogue_url: str | None = None) -> Shop:
    return Shop(root, catalogue_url)


_selected: list[tuple[Path, str | None]] = [(DATASETS_DIR, None)]


def use_shop(folder: str | Path | None, catalogue_url: str | None = None) -> Shop:
    """Make `folder` (None: the example shop), its catalogue in the database at `catalogue_url` if
    given, the shop this process reads; the shop, opened."""
    root = DATASETS_DIR if folder is None else Path(folder).resolve()
    if not root.is_dir():
        if folder is None:
            raise BadInputError(
                f"shop.dir: unset, and the example shop ({root}) ships only in a checkout; set shop.dir"
            )
        raise BadInputError(f"shop.dir: {folder}: no such folder")
    _selected[0] = (root, catalogue_url)
    return open_shop(root, catalogue_url)


def active() -> Shop:
    """The shop this process reads (`use_shop`)."""
    return open_shop(*_selected[0])


def catalogue() -> tuple[Product, ...]:
    return active().catalogue


def products_by_sku() -> dict[str, Product]:
    return active().products_by_sku


def schemas() -> dict[str, dict[str, Any]]:
    """The shop's extraction JSON Schemas by name."""
    return active().schemas


def policy() -> tuple[PolicyTopic, ...]:
    return active().policy


def style_guide() -> StyleGuide:
    return active().style_guide


def templates(name: str) -> Any:
    return active().templates(name)


def source_hashes() -> dict[str, str]:
    return active().source_hashes()
