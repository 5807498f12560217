"""On-policy preference pairs: a served model's own answers, the best against the worst.

    shoptune eval pairs --data runs/data/cpu-smollm2 --out runs/pairs/on-policy \\
        --endpoint http://127.0.0.1:8000/v1 --model-name shop --samples 4

For each record, `samples` answers are sampled from the endpoint as the storefront asks (guided
extraction, the reply settings) at the given temperature, each is scored against the record by
the rewards GRPO trains with (`train.grpo.rewards`, eval/rewards.py), and the best-scored answer
becomes the chosen one and the worst the rejected one, where their scores differ. So the pairs
are the model's own failures next to its own successes, not rule-made ones. A pair whose chosen
answer the record format refuses (an extraction answer that is not schema-valid JSON), or with an
answer training cannot render (its first characters merge with the chat template's last token) or
that does not fit `train.max_length` (a sampled reply can be longer than the reference), is left out
and counted. Sampling is seeded per request, so the same model gives the same pairs up to what the
server's batching of concurrent requests changes (2 of 500 records' outcomes, between two runs on CPU).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.data.pairs import write_pair_splits
from shoptune.eval.backends import EndpointBackend
from shoptune.eval.rewards import score_answer
from shoptune.shop import resources
from shoptune.shop.records import RecordValidator
from shoptune.shop.render import RenderError, render_pair

ON_POLICY = "on_policy"
ON_POLICY_SPLITS = ("train", "val")
"""The splits trained on: a test split's pairs would be sampled for nothing."""


def on_policy_pair(record: dict[str, Any], answers: Sequence[str], weights: dict[str, float]) -> dict[str, Any] | None:
    """The preference record of `record` with its best-rewarded answer chosen and its worst rejected
    (the first of equals, in sampling order); None where every answer scores the same."""
    scored = [(score_answer(record, answer, weights)[0], answer) for answer in answers]
    best = max(scored, key=lambda item: item[0])
    worst = min(scored, key=lambda item: item[0])
    if best[0] <= worst[0] or best[1] == worst[1]:
        return None
    meta = {
        **(record.get("meta") or {}),
        "failure": ON_POLICY,
        "source_id": record["id"],
        "reference": record["messages"][-1]["content"],
        "chosen_reward": best[0],
        "rejected_reward": worst[0],
    }
    messages = [*record["messages"][:-1], {"role": "assistant", "content": best[1]}]
    return {**record, "id": f"{record['id']}~{ON_POLICY}", "messages": messages, "rejected": worst[1], "meta": meta}


@dataclass(frozen=True)
class TrainingForm:
    """How training will render a pair: the model's tokenizer and `train.max_length`."""

    tokenizer: Any
    max_length: int

    def refusal(self, pair: dict[str, Any]) -> str | None:
        """Why the preference trainer would refuse `pair`, as an outcome name, or None: "untrainable"
        (an answer does not render in the form training puts it under the chat template) or "too
        long" (over `max_length` tokens with either answer; records are never truncated)."""
        try:
            rendered = render_pair(self.tokenizer, pair)
        except RenderError:
            return "untrainable"
        return "too long" if rendered.longest > self.max_length else None


@dataclass(frozen=True)
class Sampling:
    samples: int
    temperature: float
    seed: int
    weights: dict[str, float]


def _pairs_of(
    records: Sequence[dict[str, Any]], backend: EndpointBackend, sampling: Sampling, form: TrainingForm
) -> tuple[list[dict[str, Any]], Counter]:
    """The on-policy pairs of `records`, and why the others gave none ("tied", "invalid chosen",
    "untrainable", "too long")."""
    validator = RecordValidator(resources.schemas())

    def pair(record: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        answers = backend.samples(record, sampling.samples, sampling.temperature, sampling.seed)
        made = on_policy_pair(record, answers, sampling.weights)
        if made is None:
            return None, "tied"
        if validator.problems(made):
            return None, "invalid chosen"
        refusal = form.refusal(made)
        return (None, refusal) if refusal else (made, "paired")

    with ThreadPoolExecutor(max_workers=backend.concurrency) as pool:
        outcomes = list(pool.map(pair, records))
    return [made for made, _ in outcomes if made is not None], Counter(outcome for _, outcome in outcomes)


def write_on_policy_pairs(
    data_dir: Path,
    out_dir: Path,
    backend: EndpointBackend,
    sampling: Sampling,
    form: TrainingForm,
    *,
    tasks: Collection[str] | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """On-policy pairs for the train and val splits of `data_dir` into `out_dir` (the folder appears
    whole or not at all), with a manifest: the endpoint and model, sampling, reward weights, source
    digests, and per split how many records were paired, tied or gave an invalid chosen answer.
    `tasks` keeps only those tasks' records (pairs aimed at replies, say), `limit` the first N of
    each split after that."""

    def pairs_of(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        sampled = [record for record in records if tasks is None or record.get("task") in tasks][:limit]
        pairs, outcomes = _pairs_of(sampled, backend, sampling, form)
        return pairs, {"sampled_records": len(sampled), "outcomes": dict(sorted(outcomes.items()))}

    settings = {
        "generator": "shoptune.eval.onpolicy",
        "endpoint": str(backend.client.base_url),
        "model_name": backend.model_name,
        "samples": sampling.samples,
        "temperature": sampling.temperature,
        "seed": sampling.seed,
        "structured_output": backend.structured_output,
        "reward_weights": sampling.weights,
        "tasks": None if tasks is None else sorted(tasks),
    }
    return write_pair_splits(data_dir, out_dir, ON_POLICY_SPLITS, pairs_of, settings)
