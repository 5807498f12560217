"""Tone against the brand style guide (datasets/brand/style_guide.yaml)."""

from __future__ import annotations

import re
from typing import Any

from shoptune.shop import resources
from shoptune.shop.records import is_first_reply

EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")
ZH_MIN_CJK_SHARE = 0.3
EN_MAX_CJK_SHARE = 0.25
"""A reply is in the record's language when this share of its letters (CJK or Latin) is CJK: at
least 0.3 for Chinese (SKUs and brand names are Latin), at most 0.25 for English (catalogue sizes
such as 标准版 stay Chinese). The example corpus's reference answers: zh 0.61 to 1.0, en 0 to 0.11."""


def in_language(text: str, lang: str) -> bool:
    cjk, latin = len(CJK.findall(text)), len(LATIN.findall(text))
    share = cjk / (cjk + latin) if cjk + latin else 0.0
    return share >= ZH_MIN_CJK_SHARE if lang == "zh" else share <= EN_MAX_CJK_SHARE


def score_record(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    style = resources.style_guide()
    lang = record["lang"]
    text = (output or "").strip()
    opening = style.greeting[lang] if is_first_reply(record) else style.opener[lang]
    forbidden = style.forbidden_pronoun.get(lang)
    emoji = EMOJI.findall(text)
    length_ok = len(text) <= style.max_zh_chars if lang == "zh" else len(text.split()) <= style.max_en_words
    checks = {
        "tone_opening": (not opening) or text.startswith(opening),
        "tone_sign_off": text.endswith(style.sign_off[lang]),
        "tone_address": not forbidden or forbidden not in text.replace(style.pronoun[lang], ""),
        "tone_no_banned_phrase": not any(p.casefold() in text.casefold() for p in style.banned_phrases[lang]),
        "tone_emoji": len(emoji) <= style.emoji_max and all(e in style.emoji_allowed for e in emoji),
        "tone_length": length_ok and bool(text),
        "tone_language": in_language(text, lang),
    }
    scores: dict[str, float | None] = {name: float(ok) for name, ok in checks.items()}
    scores["tone_compliant"] = float(all(checks.values()))
    return scores
