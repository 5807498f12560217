"""Score predictions against a corpus: per-record scores, then aggregate metrics with intervals.

`eval score` and `eval run` both end here, so saved outputs and live runs are scored by the
same code. Records without a prediction count as empty outputs (invalid for extraction).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shoptune.eval.bootstrap import bootstrap_interval
from shoptune.eval.metrics import METRICS
from shoptune.eval.parsing import parse_json_output

DEFAULT_METRICS = tuple(METRICS)
RATE_KEYS = {
    "json_valid_rate": "json_valid",
    "schema_valid_rate": "schema_valid",
    "exact_match_rate": "exact_match",
    "recommend_grounded_rate": "recommend_grounded",
    "faq_grounded_rate": "faq_grounded",
    "history_resolved_rate": "history_resolved",
    "tone_compliance_rate": "tone_compliant",
    "refusal_in_role_rate": "refusal_in_role",
    "degenerate_rate": "degenerate",
}
LOWER_IS_BETTER = frozenset({"degenerate_rate", "hallucinated_product_rate"})
"""Rates where a rise is a regression: paired verdicts and reports read them the other way."""


def lower_is_better(metric: str) -> bool:
    """`degenerate_rate`, `field_invented_rate.<field>`, ...: a rise is a regression."""
    return metric in LOWER_IS_BETTER or metric.startswith("field_invented_rate.")


MEAN_KEYS = {
    "chrf": "chrf",
    "rouge_l": "rouge_l",
    "faq_fact_recall": "faq_fact_recall",
    "recommend_reference_recall": "recommend_reference_recall",
    "judge_score": "judge_score",
}


FIELD_VIEWS = {"field_recall": "recall", "field_invented_rate": "invented", "field_accuracy": "field"}
"""Per-field views of extraction: recall on non-null gold values, the rate of values invented where
the gold is null, and plain accuracy (which counts a null predicted for a null gold as right)."""


@dataclass(frozen=True)
class ScoredSample:
    record: dict[str, Any]
    output: str | None
    scores: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        record = self.record
        user = [m["content"] for m in record["messages"][:-1] if m["role"] == "user"]
        parsed = parse_json_output(self.output).value if record["task"] == "extract" else None
        return {
            "id": record["id"],
            "task": record["task"],
            "lang": record["lang"],
            "schema": record.get("schema"),
            "input": user[-1] if user else "",
            "turns": len(user),
            "reference": record["messages"][-1]["content"],
            "output": self.output,
            "parsed": parsed,
            "scores": self.scores,
        }


def score_samples(
    records: Sequence[dict[str, Any]], predictions: dict[str, str], metric_names: Sequence[str] = DEFAULT_METRICS
) -> list[ScoredSample]:
    samples = []
    for record in records:
        output = predictions.get(record["id"])
        scores: dict[str, float | None] = {}
        for name in metric_names:
            metric = METRICS[name]
            if record["task"] in metric.tasks:
                scores.update(metric.fn(record, output))
        samples.append(ScoredSample(record, output, scores))
    return samples


def _values(samples: Sequence[ScoredSample], key: str) -> list[float]:
    return [s.scores[key] for s in samples if s.scores.get(key) is not None]


def aggregate(samples: Sequence[ScoredSample], *, bootstrap_samples: int, seed: int) -> dict[str, Any]:
    """Top-level metrics (plain numbers), their 95% intervals, and per-task / per-language views."""
    metrics: dict[str, Any] = {}
    intervals: dict[str, list[float]] = {}

    def add(name: str, values: list[float]) -> None:
        if values:
            metrics[name] = sum(values) / len(values)
            intervals[name] = bootstrap_interval(values, samples=bootstrap_samples, seed=seed)

    for name, key in {**RATE_KEYS, **MEAN_KEYS}.items():
        add(name, _values(samples, key))
    extraction = [s for s in samples if s.record["task"] == "extract"]
    if extraction:
        fields = sorted({k.split(":", 1)[1] for s in extraction for k in s.scores if k.startswith("field:")})
        for view, prefix in FIELD_VIEWS.items():
            per_field = {}
            for field in fields:
                values = _values(extraction, f"{prefix}:{field}")
                if values:
                    per_field[field] = sum(values) / len(values)
                    intervals[f"{view}.{field}"] = bootstrap_interval(values, samples=bootstrap_samples, seed=seed)
            metrics[view] = per_field
        tp, fp, fn = (sum(_values(extraction, f"f1_{k}")) for k in ("tp", "fp", "fn"))
        metrics["micro_f1"] = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
        metrics["extraction_records"] = len(extraction)
    items = sum(_values(samples, "listed_items"))
    if items:
        metrics["hallucinated_product_rate"] = sum(_values(samples, "hallucinated_items")) / items
    return {"metrics": metrics, "intervals": intervals}


def breakdowns(samples: Sequence[ScoredSample], *, bootstrap_samples: int, seed: int) -> dict[str, Any]:
    groups: dict[str, dict[str, list[ScoredSample]]] = {"by_task": defaultdict(list), "by_lang": defaultdict(list)}
    for sample in samples:
        groups["by_task"][sample.record["task"]].append(sample)
        groups["by_lang"][sample.record["lang"]].append(sample)
    return {
        view: {
            key: {"n": len(group), **aggregate(group, bootstrap_samples=bootstrap_samples, seed=seed)}
            for key, group in sorted(members.items())
        }
        for view, members in groups.items()
    }
