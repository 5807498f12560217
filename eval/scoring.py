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
from shoptune.eval.metrics.reported import FIELD_VIEWS, MEANS, POOLED, ReportedMetric
from shoptune.eval.parsing import parse_json_output
from shoptune.shop.records import last_question, shopper_turns

DEFAULT_METRICS = tuple(METRICS)


@dataclass(frozen=True)
class ScoredSample:
    record: dict[str, Any]
    output: str | None
    scores: dict[str, float | None]

    def to_json(self) -> dict[str, Any]:
        record = self.record
        user = shopper_turns(record)
        parsed = parse_json_output(self.output).value if record["task"] == "extract" else None
        return {
            "id": record["id"],
            "task": record["task"],
            "lang": record["lang"],
            "schema": record.get("schema"),
            "input": last_question(record),
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

    for name, score in MEANS.items():
        add(name, _values(samples, score))
    extraction = [s for s in samples if s.record["task"] == "extract"]
    if extraction:
        fields = sorted({k.split(":", 1)[1] for s in extraction for k in s.scores if k.startswith("field:")})
        for view in FIELD_VIEWS.values():
            per_field = {}
            for field in fields:
                values = _values(extraction, f"{view.score_prefix}:{field}")
                if values:
                    per_field[field] = sum(values) / len(values)
                    intervals[f"{view.name}.{field}"] = bootstrap_interval(values, samples=bootstrap_samples, seed=seed)
            metrics[view.name] = per_field
        metrics["extraction_records"] = len(extraction)
    for name, metric in POOLED.items():
        value = _pooled(samples, metric)
        if value is not None:
            metrics[name] = value
    return {"metrics": metrics, "intervals": intervals}


def _pooled(samples: Sequence[ScoredSample], metric: ReportedMetric) -> float | None:
    """A metric over counts summed across records (None where no record has the counts)."""
    if metric.aggregation == "micro_f1":
        counts = [_values(samples, f"{metric.score}_{kind}") for kind in ("tp", "fp", "fn")]
        if not counts[0]:
            return None
        tp, fp, fn = (sum(values) for values in counts)
        return 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0
    assert metric.aggregation == "item_ratio" and metric.denominator is not None, metric
    total = sum(_values(samples, metric.denominator))
    return sum(_values(samples, metric.score)) / total if total else None


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
