"""Degenerate replies: loops, repeated list lines, and answers that only greet.

A small model under greedy decoding falls into loops ("…商品的基本部分和商品的基本部分…" nine
times), lists the same product twice, or answers a question with the brand greeting and sign-off
and nothing between. Each is a reply no shopper should get, whatever its overlap with the
reference. `degenerate_reasons` says which, in words, so a report can show why an answer is flagged.

- loop: within one line, a span of `LOOP_SPAN` words (English) or characters (Chinese) that
  occurs three or more times;
- repeated line: a list line (or any line of 8+ characters) that appears twice, or two list lines
  naming the same SKU;
- only greets: nothing left once the style guide's greeting, opener and sign-off are removed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from shoptune.shop import resources

LOOP_SPAN = {"zh": 6, "en": 5}
"""Span length of a loop: 6 Chinese characters or 5 English words, repeated 3+ times in a line.
Shorter spans match honest text (a list line's "颜色：" or "in stock")."""
LOOP_REPEATS = 3
_SKU = re.compile(r"\b[A-Z]{3}-\d{4}\b")
_LIST_LINE = re.compile(r"^\s*(?:\d+[.)、]|[-*•])\s*")
_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[\w'-]+")
_PUNCTUATION = re.compile(r"[\s\W_]+")


def _units(line: str) -> tuple[list[str], str]:
    """The line as Chinese characters (when it has any) or English words, punctuation dropped."""
    if _CJK.search(line):
        return [c for c in line if not _PUNCTUATION.fullmatch(c)], "zh"
    return [w.casefold() for w in _WORD.findall(line)], "en"


def loops(text: str) -> bool:
    for line in text.splitlines():
        units, lang = _units(line)
        span = LOOP_SPAN[lang]
        counts = Counter(tuple(units[i : i + span]) for i in range(len(units) - span + 1))
        if counts and max(counts.values()) >= LOOP_REPEATS:
            return True
    return False


def repeated_line(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    listed = [_LIST_LINE.sub("", line) for line in lines if _LIST_LINE.match(line)]
    long_lines = [line for line in lines if len(line) >= 8]
    skus = [sku for line in lines if _LIST_LINE.match(line) for sku in _SKU.findall(line)[:1]]
    return any(max(Counter(group).values(), default=0) >= 2 for group in (listed, long_lines, skus))


def only_greets(text: str, lang: str) -> bool:
    style = resources.style_guide()
    rest = text
    for phrase in (style.greeting[lang], style.opener[lang], style.sign_off[lang]):
        if phrase:
            rest = rest.replace(phrase, "")
    return not _PUNCTUATION.sub("", rest)


def degenerate_reasons(text: str, lang: str) -> list[str]:
    """Why a reply is degenerate (empty when it is not): "loop", "repeated line", "only greets"."""
    reasons = []
    if loops(text):
        reasons.append("loop")
    if repeated_line(text):
        reasons.append("repeated line")
    if only_greets(text, lang):
        reasons.append("only greets")
    return reasons


def score_record(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    reasons = degenerate_reasons((output or "").strip(), record["lang"])
    return {
        "degenerate": float(bool(reasons)),
        "degenerate_loop": float("loop" in reasons),
        "degenerate_repeated_line": float("repeated line" in reasons),
        "degenerate_only_greets": float("only greets" in reasons),
    }
