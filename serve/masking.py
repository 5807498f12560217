"""Mask personal data before anything reaches a log: phone numbers, street addresses, order ids.

Logs are read by more people than the order system is; a shopper's phone number or address
has no business in them. Patterns cover the formats the shop sees (Chinese mobiles and
landlines, +86, Chinese and English street addresses, YX order numbers).
"""

from __future__ import annotations

import re

ORDER_ID = re.compile(r"(?<![A-Za-z0-9])YX\d{12}(?!\d)", re.IGNORECASE)
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ORDER_ID", ORDER_ID),
    ("PHONE", re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d(?:[-\s]?\d{4}){2}(?!\d)")),
    ("PHONE", re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)")),
    ("PHONE", re.compile(r"(?<!\d)\+?\d{1,3}[-\s]\(?\d{3}\)?[-\s]\d{3}[-\s]\d{4}(?!\d)")),
    (
        "ADDRESS",
        re.compile(
            r"[\u4e00-\u9fff]{2,12}(?:省|市|区|县|镇|街道)[\u4e00-\u9fff0-9]{0,20}(?:路|街|道|巷|弄)"
            r"[0-9一二三四五六七八九十]+号(?:[0-9A-Za-z\u4e00-\u9fff-]{0,12}(?:室|楼|单元|栋))*"
        ),
    ),
    (
        "ADDRESS",
        re.compile(
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s){1,4}(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Boulevard|Blvd"
            r"|Drive|Dr)\b\.?(?:,?\s*(?:Apt|Unit|Suite)\s*\w+)?"
        ),
    ),
)


def mask(text: str) -> str:
    for label, pattern in PATTERNS:
        text = pattern.sub(f"[{label}]", text)
    return text
