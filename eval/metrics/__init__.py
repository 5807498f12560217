"""Metrics: small pure functions over one record, registered by name with the tasks they score.

Each metric returns, per record, scores in [0, 1] (or None where one does not apply to that
record). `METRICS` is the registry an evaluation task (eval/tasks/*.yaml) names metrics from;
`reported.py` says how the scores aggregate into a report's figures and which way is better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoptune.eval.metrics import degenerate, extraction, grounding, overlap, refusal, tone

MetricFn = Callable[[dict[str, Any], str | None], dict[str, float | None]]


@dataclass(frozen=True)
class Metric:
    name: str
    fn: MetricFn
    """(record, raw output) -> {score name: value or None}."""
    tasks: tuple[str, ...]
    description: str = ""


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric(
            "extraction",
            extraction.score_record,
            ("extract",),
            description="JSON validity, schema validity, per-field equality, exact match, micro-F1 counts",
        ),
        Metric(
            "grounding",
            grounding.score_record,
            ("recommend",),
            description="named products exist, in stock, within budget; quoted prices exact",
        ),
        Metric(
            "faq_policy",
            grounding.score_faq,
            ("faq",),
            description="policy facts stated, no figure the policy does not contain",
        ),
        Metric(
            "history",
            grounding.score_history,
            ("chat",),
            description="multi-turn: the last answer names what the reference names (resolved from history)",
        ),
        Metric(
            "tone",
            tone.score_record,
            ("recommend", "faq", "chat", "refusal"),
            description="greeting/opener, sign-off, 您 not 你, banned phrases, emoji, length",
        ),
        Metric(
            "overlap",
            overlap.score_record,
            ("recommend", "faq", "chat", "refusal"),
            description="chrF and ROUGE-L against the reference answer",
        ),
        Metric(
            "degenerate",
            degenerate.score_record,
            ("recommend", "faq", "chat", "refusal"),
            description="replies that loop, repeat a list line or SKU, or only greet",
        ),
        Metric(
            "refusal",
            refusal.score_record,
            ("refusal",),
            description="stays in role: no instruction leak, no price/coupon concession",
        ),
    )
}
