"""Extraction metrics: the parsed output against the gold JSON (the record's last assistant message).

Equality after normalisation: strings NFKC-normalised, trimmed and case-folded; numbers compared
as numbers (2000 == 2000.0; a string never equals a number; booleans are not numbers); lists of
equal length element by element; a missing key counts as null. An invalid output gets every
field wrong.

Nulls cannot game the headline. Per field, `recall:<field>` is scored only where the gold value
is non-null (an all-null answer has recall 0) and `invented:<field>` only where it is null (a
value the shopper never gave); micro-F1 counts a wrong value as both a false positive and a false
negative, so exact match and micro-F1 lead the report and field accuracy is a detail.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from typing import Any

from jsonschema import Draft202012Validator

from shoptune.eval.parsing import parse_json_output
from shoptune.shop import resources


def normalised_equal(predicted: Any, gold: Any) -> bool:
    if predicted is None or gold is None:
        return predicted is None and gold is None
    if isinstance(gold, bool) or isinstance(predicted, bool):
        return isinstance(gold, bool) and isinstance(predicted, bool) and gold == predicted
    if isinstance(gold, int | float) or isinstance(predicted, int | float):
        return isinstance(gold, int | float) and isinstance(predicted, int | float) and float(gold) == float(predicted)
    if isinstance(gold, str) or isinstance(predicted, str):
        return isinstance(gold, str) and isinstance(predicted, str) and _text(gold) == _text(predicted)
    if isinstance(gold, list) or isinstance(predicted, list):
        return (
            isinstance(gold, list)
            and isinstance(predicted, list)
            and len(gold) == len(predicted)
            and all(normalised_equal(p, g) for p, g in zip(predicted, gold, strict=True))
        )
    if isinstance(gold, dict) and isinstance(predicted, dict):
        keys = gold.keys() | predicted.keys()
        return all(normalised_equal(predicted.get(k), gold.get(k)) for k in keys)
    return False


def _text(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().casefold()


@functools.cache
def _validator(schema_name: str) -> Draft202012Validator:
    return Draft202012Validator(resources.schemas()[schema_name])


def gold_target(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(record["messages"][-1]["content"])


def score_record(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    """Per-record extraction scores; `field:<name>` entries feed field_accuracy."""
    gold = gold_target(record)
    parsed = parse_json_output(output)
    scores: dict[str, float | None] = {"json_valid": float(parsed.valid)}
    predicted = parsed.value
    schema_name = record.get("schema")
    if predicted is None:
        scores["schema_valid"] = 0.0
    elif schema_name in resources.schemas():
        scores["schema_valid"] = float(_validator(schema_name).is_valid(predicted))
    else:
        scores["schema_valid"] = None
    equal = {}
    for field, gold_value in gold.items():
        equal[field] = predicted is not None and normalised_equal(predicted.get(field), gold_value)
        scores[f"field:{field}"] = float(equal[field])
        predicted_value = predicted.get(field) if predicted is not None else None
        scores[f"recall:{field}"] = float(equal[field]) if gold_value is not None else None
        scores[f"invented:{field}"] = float(predicted_value is not None) if gold_value is None else None
    scores["exact_match"] = float(predicted is not None and all(equal.values()))
    tp = fp = fn = 0
    for field, gold_value in gold.items():
        predicted_value = predicted.get(field) if predicted is not None else None
        if predicted_value is not None and gold_value is not None and equal[field]:
            tp += 1
        else:
            fp += predicted_value is not None
            fn += gold_value is not None
    if predicted is not None:
        fp += sum(1 for key, value in predicted.items() if key not in gold and value is not None)
    scores.update({"f1_tp": float(tp), "f1_fp": float(fp), "f1_fn": float(fn)})
    return scores
