"""Budget and colour stated in so many words, for when the extraction model misses them.

The storefront's filters come from the model's own extraction; a small model often returns
`price_range: null` for "3000元以内" or `color: null` for "那黑色的呢？", and then the
catalogue context holds phones at ¥8899 for a ¥3000 budget. These plain patterns catch the
common phrasings and only fill fields the extraction left empty: the model still decides
everything it did find.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from shoptune.shop import resources
from shoptune.shop.resources import Shop

_NUMBER = r"(\d+(?:\.\d+)?)"
_SIGN = r"(?:[¥$€£]|rmb\s*|usd\s*)"
_UNIT = r"(?:yuan|rmb|dollars?|usd|euros?)"
_RANGES = (
    re.compile(rf"{_NUMBER}\s*(?:元|块)?\s*(?:到|至)\s*{_NUMBER}"),
    re.compile(rf"between\s*{_SIGN}?{_NUMBER}\s*{_UNIT}?\s*and\s*{_SIGN}?{_NUMBER}", re.IGNORECASE),
    re.compile(rf"{_NUMBER}\s*[-~～]\s*{_NUMBER}\s*(?:元|块|{_UNIT})", re.IGNORECASE),
)
_CEILINGS = (
    re.compile(rf"{_NUMBER}\s*(?:元|块)?\s*(?:以内|以下|之内)"),
    re.compile(rf"(?:under|below|less than|up to|within|no more than)\s*{_SIGN}?{_NUMBER}", re.IGNORECASE),
)


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def stated_budget(text: str) -> list[int | float | None] | None:
    """[low, high] for "2000到3000" / "between 2000 and 3000", [None, high] for "3000元以内" / "under 3000"."""
    for pattern in _RANGES:
        if match := pattern.search(text):
            low, high = sorted((_number(match.group(1)), _number(match.group(2))))
            return [low, high]
    for pattern in _CEILINGS:
        if match := pattern.search(text):
            return [None, _number(match.group(1))]
    return None


@cache
def _colours(shop: Shop) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The colour names of `shop`'s catalogue, longest first, each with its pattern."""
    names = {name for product in shop.catalogue for c in product.colors for name in (c.zh, c.en)}
    ordered = sorted(names, key=len, reverse=True)  # "深蓝色" before "蓝色"
    return tuple(
        (name, re.compile(re.escape(name) if not name.isascii() else rf"\b{re.escape(name)}\b", re.IGNORECASE))
        for name in ordered
    )


def stated_colour(text: str) -> str | None:
    """A catalogue colour named in the text, as the catalogue spells it."""
    return next((name for name, pattern in _colours(resources.active()) if pattern.search(text)), None)


def fill_stated(extracted: dict[str, Any], text: str) -> dict[str, Any]:
    """The extraction with an empty price_range or color filled from the text, where it states one."""
    filled = dict(extracted)
    if filled.get("price_range") is None:
        filled["price_range"] = stated_budget(text)
    if filled.get("color") is None:
        filled["color"] = stated_colour(text)
    return filled
