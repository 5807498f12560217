"""Rewards: the eval metrics' per-answer scores as numbers a policy can be trained towards.

Each reward scores one answer against its record, in [0, 1], with the same functions an
evaluation report uses, so what GRPO optimises is what the report measures. A reward that does
not apply to the record's task (or to this record: a schema the shop does not have) is None, and
TRL leaves it out of that answer's weighted sum. `train.grpo.rewards` names them with weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoptune.config.schema import REWARDS
from shoptune.eval.metrics import degenerate, extraction, grounding, refusal, tone

RewardFn = Callable[[dict[str, Any], str], float | None]

REPLY_TASKS = ("recommend", "faq", "chat", "refusal")


@dataclass(frozen=True)
class Reward:
    name: str
    fn: RewardFn
    """(record, answer) -> score in [0, 1], or None where it does not apply."""
    tasks: tuple[str, ...]
    description: str

    def score(self, record: dict[str, Any], answer: str) -> float | None:
        return self.fn(record, answer) if record["task"] in self.tasks else None


def _extraction_score(name: str) -> RewardFn:
    return lambda record, answer: extraction.score_record(record, answer)[name]


def _field_accuracy(record: dict[str, Any], answer: str) -> float:
    """The share of the gold object's fields the answer has equal (a dense signal between a wrong
    and a right object; an invalid answer gets 0)."""
    scores = extraction.score_record(record, answer)
    fields = [value for key, value in scores.items() if key.startswith("field:") and value is not None]
    return sum(fields) / len(fields) if fields else float(scores["exact_match"])


GROUNDED_SCORE = {
    "recommend": (grounding.score_record, "recommend_grounded"),
    "faq": (grounding.score_faq, "faq_grounded"),
    "chat": (grounding.score_history, "history_resolved"),
}


def _grounded(record: dict[str, Any], answer: str) -> float | None:
    metric, name = GROUNDED_SCORE[record["task"]]
    return metric(record, answer)[name]


def _tone_share(record: dict[str, Any], answer: str) -> float:
    """The share of the style guide's checks the answer passes (all of them: tone compliance)."""
    checks = {key: value for key, value in tone.score_record(record, answer).items() if key != "tone_compliant"}
    return sum(checks.values()) / len(checks)


REGISTRY: dict[str, Reward] = {
    reward.name: reward
    for reward in (
        Reward("json_valid", _extraction_score("json_valid"), ("extract",), "the answer parses as one JSON object"),
        Reward(
            "schema_valid",
            _extraction_score("schema_valid"),
            ("extract",),
            "the object is valid against the record's extraction schema",
        ),
        Reward(
            "field_accuracy",
            _field_accuracy,
            ("extract",),
            "share of the gold object's fields the answer has equal (nulls included)",
        ),
        Reward("exact_match", _extraction_score("exact_match"), ("extract",), "every field equals the gold object's"),
        Reward(
            "grounding",
            _grounded,
            tuple(GROUNDED_SCORE),
            "recommendations: real, in stock, in budget, exact prices; FAQ: the policy's figures and no other; "
            "multi-turn: the products or figures the history resolves to",
        ),
        Reward("tone", _tone_share, REPLY_TASKS, "share of the brand style checks passed"),
        Reward(
            "refusal_in_role",
            lambda record, answer: refusal.score_record(record, answer)["refusal_in_role"],
            ("refusal",),
            "answers, leaks no instruction, concedes no price or coupon",
        ),
        Reward(
            "not_degenerate",
            lambda record, answer: 1.0 - degenerate.score_record(record, answer)["degenerate"],
            REPLY_TASKS,
            "does not loop, repeat a list line or only greet",
        ),
    )
}
assert tuple(REGISTRY) == REWARDS, "every reward the config can name is registered, in the same order"


def score_answer(record: dict[str, Any], answer: str, weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(weighted sum, each applicable reward) of one answer: how on-policy pairs are ranked, and
    what GRPO's advantage is computed from."""
    scores = {name: REGISTRY[name].score(record, answer) for name in weights}
    applicable = {name: value for name, value in scores.items() if value is not None}
    return sum(weights[name] * value for name, value in applicable.items()), applicable
