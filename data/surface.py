"""Surface variety: how shoppers write numbers, budgets, order ids and typos.

Each function takes the generator's `random.Random`, so a seed fixes every choice.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field

from shoptune.shop import resources

_SLOT = re.compile(r"\{\w+\}")

_ZH_DIGITS = "零一二三四五六七八九"
_EN_THOUSANDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def zh_number_words(value: int) -> str | None:
    """Colloquial Chinese for round amounts: 2000 -> 两千, 2500 -> 两千五, 800 -> 八百, 12000 -> 一万二.

    Returns None for amounts people would not say this way (e.g. 2345).
    """
    if value <= 0 or value % 100:
        return None
    if value >= 10000:
        wan, rest = divmod(value, 10000)
        if wan > 9 or rest % 1000:
            return None
        head = "两" if wan == 2 else _ZH_DIGITS[wan]
        return f"{head}万" + (_ZH_DIGITS[rest // 1000] if rest else "")
    thousands, rest = divmod(value, 1000)
    hundreds = rest // 100
    if thousands:
        head = "两" if thousands == 2 else _ZH_DIGITS[thousands]
        return f"{head}千" + (_ZH_DIGITS[hundreds] if hundreds else "")
    return ("两" if hundreds == 2 else _ZH_DIGITS[hundreds]) + "百"


def number_form(rng: random.Random, value: int, lang: str, *, currency_sign: str | None = "¥") -> str:
    """One way of writing an amount: 2000, 2,000, 2k, ¥2000, 两千, 2千, two thousand...

    `currency_sign`: the shop's (¥, $); None when the surrounding phrase already names the unit (元, yuan).
    """
    forms = [str(value), str(value)]
    if value >= 1000:
        forms.append(f"{value:,}")
        if value % 1000 == 0:
            forms.append(f"{value // 1000}k")
        elif value % 100 == 0:
            forms.append(f"{value / 1000:g}k")
    if currency_sign:
        forms.append(f"{currency_sign}{value}" if lang == "zh" or value < 1000 else f"{currency_sign}{value:,}")
    if lang == "zh":
        words = zh_number_words(value)
        if words:
            forms += [words, words]
        if value >= 1000 and value % 1000 == 0:
            forms.append(f"{value // 1000}千")
    elif value % 1000 == 0 and value // 1000 in _EN_THOUSANDS:
        forms.append(f"{_EN_THOUSANDS[value // 1000]} thousand")
    return rng.choice(forms)


BUDGET_FORMS = {
    ("zh", "range"): ["价格在{lo}到{hi}之间", "{lo}到{hi}元", "{lo}-{hi}的", "预算{lo}到{hi}", "{lo}至{hi}块"],
    ("zh", "max"): ["{hi}以内", "{hi}元以下", "不超过{hi}", "{hi}块钱以下", "最多{hi}", "预算{hi}以内"],
    ("zh", "min"): ["{lo}以上", "至少{lo}元", "{lo}块以上", "不低于{lo}"],
    ("en", "range"): ["between {lo} and {hi}", "from {lo} to {hi} yuan", "in the {lo}-{hi} range", "{lo} to {hi} RMB"],
    ("en", "max"): [
        "under {hi}",
        "below {hi} yuan",
        "for less than {hi}",
        "no more than {hi}",
        "max {hi}",
        "for at most {hi} RMB",
    ],
    ("en", "min"): ["over {lo}", "above {lo} yuan", "for at least {lo}", "{lo} or more"],
}


@dataclass(frozen=True)
class Money:
    """How a shop's shoppers write money: its sign, the words naming its unit, and budget phrasings
    (`{lo}`/`{hi}` per language and kind: range, max, min). The example shop's yuan by default."""

    symbol: str = "¥"
    units: tuple[str, ...] = ("元", "块", "yuan", "RMB")
    budget_forms: dict[tuple[str, str], list[str]] = field(default_factory=lambda: BUDGET_FORMS)


def shop_money() -> Money:
    """The active shop's money: its style guide's currency, its lexicon's `budget_forms` if it has any."""
    currency = resources.style_guide().currency
    units = tuple(word for words in currency.units.values() for word in words)
    custom = resources.templates("lexicon").get("budget_forms")
    forms = (
        {(lang, kind): phrasings for lang, kinds in custom.items() for kind, phrasings in kinds.items()}
        if custom
        else BUDGET_FORMS
    )
    return Money(currency.symbol, units, forms)


def budget_phrase(rng: random.Random, lang: str, low: int | None, high: int | None, money: Money = Money()) -> str:
    """A budget phrase whose meaning is exactly [low, high] (either end may be open)."""
    kind = "range" if low is not None and high is not None else ("max" if high is not None else "min")
    template = rng.choice(money.budget_forms[(lang, kind)])
    sign = None if any(unit in template for unit in money.units) else money.symbol
    return template.format(
        lo=number_form(rng, low, lang, currency_sign=sign) if low is not None else "",
        hi=number_form(rng, high, lang, currency_sign=sign) if high is not None else "",
    )


def shop_order_id(rng: random.Random) -> str:
    """YX + 12 digits (date-like prefix), the shop's own order number format."""
    return f"YX2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 9999):04d}"


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _letters(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(count))


_OTHER_ORDER_FORMS = (
    lambda rng: _digits(rng, rng.randint(10, 19)),  # a bare order number, as many marketplaces print it
    lambda rng: _letters(rng, rng.randint(1, 3)) + _digits(rng, rng.randint(6, 14)),
    lambda rng: f"{_letters(rng, rng.randint(2, 3))}-{_digits(rng, rng.randint(5, 10))}",
    lambda rng: f"{_digits(rng, 3)}-{_digits(rng, 7)}-{_digits(rng, 4)}",
    lambda rng: (
        f"{_letters(rng, rng.randint(1, 3))}-2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{_digits(rng, 4)}"
    ),
    lambda rng: f"2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}-{_digits(rng, rng.randint(3, 6))}",
)


def order_id(rng: random.Random, shop_share: float = 0.6) -> str:
    """An order number as a shopper pastes it: mostly the shop's YX form, otherwise the forms
    other shops and marketplaces use (bare digits, letter prefixes, dashes). Extraction copies
    it exactly as written, whatever the form."""
    if rng.random() < shop_share:
        return shop_order_id(rng)
    return rng.choice(_OTHER_ORDER_FORMS)(rng)


def coupon_code(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(4, 6))) + str(rng.randint(10, 999))


_EN_TYPOS = {
    "looking": "lookin",
    "recommend": "recomend",
    "please": "pls",
    "preferably": "prefferably",
    "anything": "anythin",
    "available": "availabe",
    "want": "wnat",
    "need": "ned",
    "you": "u",
    "which": "wich",
    "shipping": "shiping",
    "return": "retrun",
    "order": "oder",
}
_ZH_TYPOS = {
    "推荐": "推见",
    "有没有": "有木有",
    "想买": "想卖",
    "什么": "神马",
    "怎么": "咋",
    "一下": "一哈",
    "吗": "嘛",
}


def add_typos(rng: random.Random, template: str, lang: str, rate: float = 0.35) -> str:
    """Sometimes misspell one common filler word of a template, never inside a `{slot}`,
    so slot values (and the targets derived from them) stay exact."""
    if rng.random() > rate:
        return template
    table = _ZH_TYPOS if lang == "zh" else _EN_TYPOS
    parts = re.split(r"(\{\w+\})", template)
    candidates = [
        (i, word) for i, part in enumerate(parts) if not _SLOT.fullmatch(part) for word in table if word in part
    ]
    if not candidates:
        return template
    index, word = rng.choice(candidates)
    parts[index] = parts[index].replace(word, table[word], 1)
    return "".join(parts)


def casing_noise(rng: random.Random, text: str, rate: float = 0.15) -> str:
    """Shoppers type in lower case or drop the final punctuation now and then."""
    roll = rng.random()
    if roll < rate / 2:
        return text.lower()
    if roll < rate:
        return text.rstrip("?!.？！。")
    return text
