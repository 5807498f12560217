"""What every task generator needs: the seeded RNG, the language, the pools it may draw from
(regular or held-out templates and SKUs), the style guide, and helpers to phrase answers."""

from __future__ import annotations

import hashlib
import math
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shoptune.shop import resources
from shoptune.shop.resources import Product, StyleGuide

_SLOT = re.compile(r"\{(\w+)\}")


def slots(text: str) -> set[str]:
    return set(_SLOT.findall(text))


def normalise_message(text: str) -> str:
    """The key for duplicate detection: NFKC, casefolded, without spaces or punctuation."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch).startswith("P")))


def stable_rank(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def heldout_subset(ids: Sequence[str], share: float) -> frozenset[str]:
    """The ids reserved for the test split: a fixed, hash-ordered `share` of them (at least one
    when there are three or more), so the choice does not depend on the seed or file order."""
    if share <= 0 or len(ids) < 3:
        return frozenset()
    count = max(1, math.floor(len(ids) * share))
    return frozenset(sorted(ids, key=stable_rank)[:count])


class Redraw(Exception):
    """This draw cannot make a valid record (an empty pool, too short a conversation); draw again."""


SPLIT_OWNERSHIP = (("train", 70), ("val", 85), ("test", 100))


def owning_split(message: str) -> str:
    """Which split may use a short generic message (a follow-up like "那黑色的呢？").

    Such messages recur by nature; assigning each normalised string to one split keeps every
    user message out of all other splits without starving any split of follow-ups.
    """
    bucket = int(stable_rank(normalise_message(message))[:8], 16) % 100
    return next(split for split, upper in SPLIT_OWNERSHIP if bucket < upper)


def styled(style: StyleGuide, lang: str, body: str, *, first_reply: bool) -> str:
    """Wrap an answer body in the brand voice: greeting (first reply) or opener, and sign-off."""
    head = style.greeting[lang] if first_reply else style.opener[lang]
    separator = "\n" if "\n" in body else ("" if lang == "zh" else " ")
    if lang == "zh":
        return f"{head}{body}{separator}{style.sign_off[lang]}"
    head = f"{head} " if head else ""
    return f"{head}{body}{separator}{style.sign_off[lang]}"


@dataclass
class TaskContext:
    rng: random.Random
    lang: str
    split: str
    system_prompt: str
    heldout: bool
    """Draw from the held-out templates and SKUs (test split only)."""
    heldout_templates: frozenset[str]
    heldout_skus: frozenset[str]
    extraction_prompt: str = "outline"
    """`data.extraction_prompt`: which instruction extraction records carry."""
    used_templates: list[str] = field(default_factory=list)
    used_skus: list[str] = field(default_factory=list)

    @property
    def style(self) -> StyleGuide:
        return resources.style_guide()

    # --- choosing ---------------------------------------------------------------------------
    def pick_template(self, pool: Sequence[dict[str, Any]], where: Callable[[dict], bool] = lambda _: True) -> dict:
        """A template from `pool`: only held-out ones for a held-out record, never them otherwise."""
        allowed = [t for t in pool if where(t) and ((t["id"] in self.heldout_templates) == self.heldout)]
        if not allowed:  # a pool too small to hold anything out: fall back to the regular part
            allowed = [t for t in pool if where(t) and t["id"] not in self.heldout_templates]
        if not allowed:
            raise Redraw("no template satisfies the constraints")
        template = self.rng.choice(allowed)
        self.used_templates.append(template["id"])
        return template

    def product_pool(self, where: Callable[[Product], bool] = lambda _: True) -> list[Product]:
        """Products this record may be about: held-out SKUs for held-out records, the rest otherwise."""
        return [p for p in resources.catalogue() if where(p) and ((p.sku in self.heldout_skus) == self.heldout)]

    def regular_products(self, where: Callable[[Product], bool] = lambda _: True) -> list[Product]:
        """Products any record may show as context (never held-out SKUs outside held-out records)."""
        return [p for p in resources.catalogue() if where(p) and (self.heldout or p.sku not in self.heldout_skus)]

    def note_products(self, products: Sequence[Product]) -> None:
        for product in products:
            if product.sku not in self.used_skus:
                self.used_skus.append(product.sku)

    def choice(self, options: Sequence[Any]) -> Any:
        if not options:
            raise Redraw("nothing to choose from")
        return self.rng.choice(options)

    # --- phrasing ---------------------------------------------------------------------------
    def styled(self, body: str, *, first_reply: bool) -> str:
        return styled(self.style, self.lang, body, first_reply=first_reply)

    def join(self, items: Sequence[str]) -> str:
        return "、".join(items) if self.lang == "zh" else ", ".join(items)
