"""How a model's raw text becomes a JSON object for the extraction metrics. Nothing is repaired.

Rules: strip surrounding whitespace; if the text starts and ends with a Markdown code fence,
drop the opening fence line (``` or ```json) and the closing fence; what is left must parse as
a JSON *object*. Anything else (prose around the JSON, an array, truncated output) is invalid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_OPENING_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n")


@dataclass(frozen=True)
class ParsedOutput:
    value: dict[str, Any] | None
    error: str | None

    @property
    def valid(self) -> bool:
        return self.value is not None


def parse_json_output(text: str | None) -> ParsedOutput:
    if text is None:
        return ParsedOutput(None, "no prediction")
    body = text.strip()
    if body.startswith("```") and body.endswith("```") and len(body) >= 6:
        opening = _OPENING_FENCE.match(body)
        if opening is None:
            return ParsedOutput(None, "code fence without a newline after it")
        body = body[opening.end() : -3].strip()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        return ParsedOutput(None, f"not JSON: {exc}")
    if not isinstance(value, dict):
        return ParsedOutput(None, f"JSON {type(value).__name__}, not an object")
    return ParsedOutput(value, None)
