"""Typed access to the shop's data in `datasets/`: catalogue, schemas, style guide, policy, templates.

The files are data a shop edits; this module is the one place that reads them, so every
consumer (generator, checker, eval metrics, storefront) sees the same catalogue and policy.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shoptune.core.errors import BadInputError
from shoptune.core.hashing import sha256_file
from shoptune.core.paths import DATASETS_DIR

SCHEMA_NAMES = ("product_query", "order_request")


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


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path}: cannot read shop data: {exc}") from exc


@functools.cache
def catalogue(root: Path = DATASETS_DIR) -> tuple[Product, ...]:
    path = root / "catalogue" / "products.jsonl"
    products = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            products.append(
                Product(
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
                    specs=dict(raw.get("specs", {})),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInputError(f"{path}:{line_number}: bad product record: {exc!r}") from exc
    return tuple(products)


@functools.cache
def products_by_sku(root: Path = DATASETS_DIR) -> dict[str, Product]:
    return {product.sku: product for product in catalogue(root)}


@functools.cache
def schemas(root: Path = DATASETS_DIR) -> dict[str, dict[str, Any]]:
    """The extraction JSON Schemas by name (`product_query`, `order_request`)."""
    loaded = {}
    for name in SCHEMA_NAMES:
        path = root / "schemas" / f"{name}.schema.json"
        try:
            loaded[name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{path}: cannot read schema: {exc}") from exc
    return loaded


@functools.cache
def policy(root: Path = DATASETS_DIR) -> tuple[PolicyTopic, ...]:
    raw = _read_yaml(root / "policy" / "store_policy.yaml")
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


@functools.cache
def style_guide(root: Path = DATASETS_DIR) -> StyleGuide:
    raw = _read_yaml(root / "brand" / "style_guide.yaml")
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
    )


@functools.cache
def templates(name: str, root: Path = DATASETS_DIR) -> Any:
    """A template file from `datasets/templates/` (product_query, order_request, faq, chat, ...)."""
    return _read_yaml(root / "templates" / f"{name}.yaml")


def source_files(root: Path = DATASETS_DIR) -> list[Path]:
    """Every data file the generator reads (their hashes go into the build manifest)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in {".jsonl", ".json", ".yaml"})


def source_hashes(root: Path = DATASETS_DIR) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): sha256_file(path) for path in source_files(root)}
