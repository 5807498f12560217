"""The metrics a report carries: name, aggregation, direction, and where each is shown.

Per-record scores come from the metric functions registered in `shoptune.eval.metrics.METRICS`;
this table says how they become a report's figures. The scorer, the paired comparison, the gates,
the reports, the CLI summary and the demo all read it, so adding a reported metric is one entry
here (and its per-record score in a metric function), and a lower-is-better metric is read the
right way round everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ReportedMetric:
    name: str
    """Its key in report.json's `metrics`."""
    aggregation: Literal["mean", "micro_f1", "item_ratio"]
    """"mean": the mean of the per-record score `score` (with a bootstrap interval and a paired
    comparison against a baseline); "micro_f1": from the per-record `<score>_tp/fp/fn` counts,
    pooled; "item_ratio": the `score` counts over the `denominator` counts, pooled across records."""
    score: str
    """The per-record score it is computed from."""
    denominator: str | None = None
    """For "item_ratio": the per-record count it is a share of."""
    higher_is_better: bool = True
    headline: bool = True
    """In the report's headline table (in this table's order)."""
    diagnostic: bool = False
    """Listed, but not among the figures that say whether the job is done (the HTML headline)."""
    summary: bool = False
    """On the one-line summaries of `eval run` and the demo."""
    task_headline: str | None = None
    """The task whose records it is the headline of (per-task plots and tables)."""
    extraction: bool = False
    """Measured on extraction records: the demo's extraction table."""


@dataclass(frozen=True)
class FieldView:
    """A per-field view of extraction, reported as `<name>.<field>`."""

    name: str
    score_prefix: str
    """Per-record scores `<prefix>:<field>`."""
    higher_is_better: bool
    compared: bool
    """Part of the paired comparison against a baseline."""
    description: str


REPORTED: dict[str, ReportedMetric] = {
    metric.name: metric
    for metric in (
        ReportedMetric(
            "exact_match_rate", "mean", "exact_match", summary=True, task_headline="extract", extraction=True
        ),
        ReportedMetric("micro_f1", "micro_f1", "f1", summary=True, extraction=True),
        ReportedMetric("json_valid_rate", "mean", "json_valid", extraction=True),
        ReportedMetric("schema_valid_rate", "mean", "schema_valid", extraction=True),
        ReportedMetric(
            "recommend_grounded_rate", "mean", "recommend_grounded", summary=True, task_headline="recommend"
        ),
        ReportedMetric(
            "hallucinated_product_rate",
            "item_ratio",
            "hallucinated_items",
            denominator="listed_items",
            higher_is_better=False,
        ),
        ReportedMetric("faq_grounded_rate", "mean", "faq_grounded", task_headline="faq"),
        ReportedMetric("history_resolved_rate", "mean", "history_resolved", task_headline="chat"),
        ReportedMetric("tone_compliance_rate", "mean", "tone_compliant", summary=True),
        ReportedMetric("refusal_in_role_rate", "mean", "refusal_in_role", summary=True, task_headline="refusal"),
        ReportedMetric("degenerate_rate", "mean", "degenerate", higher_is_better=False, summary=True),
        ReportedMetric("chrf", "mean", "chrf", diagnostic=True),
        ReportedMetric("rouge_l", "mean", "rouge_l", diagnostic=True),
        ReportedMetric("faq_fact_recall", "mean", "faq_fact_recall", headline=False),
        ReportedMetric("recommend_reference_recall", "mean", "recommend_reference_recall", headline=False),
        ReportedMetric("judge_score", "mean", "judge_score", headline=False),
    )
}

FIELD_VIEWS: dict[str, FieldView] = {
    view.name: view
    for view in (
        FieldView("field_recall", "recall", True, True, "recall on non-null gold values"),
        FieldView("field_invented_rate", "invented", False, True, "values invented where the gold is null"),
        FieldView(
            "field_accuracy", "field", True, False, "plain accuracy, which counts a null predicted for a null gold"
        ),
    )
}

"""Per-record scores that are counts to pool, not a pass (1) or a failure (0) of the record."""

HEADLINE = tuple(name for name, metric in REPORTED.items() if metric.headline)
SUMMARY = tuple(name for name, metric in REPORTED.items() if metric.summary)
EXTRACTION = tuple(name for name in HEADLINE if REPORTED[name].extraction)
TASK_HEADLINE = {metric.task_headline: name for name, metric in REPORTED.items() if metric.task_headline}
MEANS = {name: metric.score for name, metric in REPORTED.items() if metric.aggregation == "mean"}
POOLED = {name: metric for name, metric in REPORTED.items() if metric.aggregation != "mean"}
COUNT_SCORES = frozenset(
    key
    for metric in POOLED.values()
    for key in (
        [f"{metric.score}_{kind}" for kind in ("tp", "fp", "fn")]
        if metric.aggregation == "micro_f1"
        else [metric.score, metric.denominator]
    )
)
"""Per-record scores that are counts for a pooled metric, not a pass/fail of the record."""
"""Report name -> per-record score, for every metric that is a mean of one score."""


def lower_is_better(name: str) -> bool:
    """Whether a rise in the reported metric `name` (or `<field view>.<field>`) is a regression."""
    view = FIELD_VIEWS.get(name.split(".", 1)[0]) if "." in name else None
    if view is not None:
        return not view.higher_is_better
    metric = REPORTED.get(name)
    return metric is not None and not metric.higher_is_better


_LOWER_IS_BETTER_SCORES = frozenset(m.score for m in REPORTED.values() if not m.higher_is_better)
_LOWER_IS_BETTER_PREFIXES = frozenset(v.score_prefix for v in FIELD_VIEWS.values() if not v.higher_is_better)


def score_marks_failure(score: str, value: float | None) -> bool:
    """Whether a per-record score value marks that record as failed (1 for a lower-is-better score, else 0)."""
    if value is None or score in COUNT_SCORES:
        return False
    return value == 1.0 if score_lower_is_better(score) else value == 0.0


def score_lower_is_better(score: str) -> bool:
    """Per-record scores where 1 marks the failure: `degenerate`, `invented:<field>`, ..."""
    if ":" in score:
        return score.split(":", 1)[0] in _LOWER_IS_BETTER_PREFIXES
    return score in _LOWER_IS_BETTER_SCORES
