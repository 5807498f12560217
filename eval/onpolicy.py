"""On-policy preference pairs: a served model's own answers, the best against the worst.

    shoptune eval pairs --data runs/data/cpu-smollm2 --out runs/pairs/on-policy \\
        --endpoint http://127.0.0.1:8000/v1 --model-name shop --samples 4

For each record, `samples` answers are sampled from the endpoint as the storefront asks (guided
extraction, the reply settings) at the given temperature, each is scored against the record by
the rewards GRPO trains with (`train.grpo.rewards`, eval/rewards.py), and the best-scored answer
becomes the chosen one and the worst the rejected one, where their scores differ. So the pairs
are the model's own failures next to its own successes, not rule-made ones. A pair whose chosen
answer the record format refuses (an extraction answer that is not schema-valid JSON) is left
out and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shoptune.core.atomic import atomic_directory, atomic_write_json
from shoptune.core.hashing import sha256_bytes, sha256_file
from shoptune.data.build import to_jsonl
from shoptune.data.pairs import PAIR_SPLITS, require_train_split
from shoptune.eval.backends import EndpointBackend
from shoptune.eval.rewards import score_answer
from shoptune.shop import resources
from shoptune.shop.reading import read_records
from shoptune.shop.records import RecordValidator

ON_POLICY = "on_policy"


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


def _pairs_of(
    records: Sequence[dict[str, Any]], backend: EndpointBackend, samples: int, temperature: float, weights
) -> tuple[list[dict[str, Any]], Counter]:
    """The on-policy pairs of `records`, and why the others gave none ("tied", "invalid chosen")."""
    validator = RecordValidator(resources.schemas())

    def pair(record: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        made = on_policy_pair(record, backend.samples(record, samples, temperature), weights)
        if made is None:
            return None, "tied"
        return (None, "invalid chosen") if validator.problems(made) else (made, "paired")

    with ThreadPoolExecutor(max_workers=backend.concurrency) as pool:
        outcomes = list(pool.map(pair, records))
    return [made for made, _ in outcomes if made is not None], Counter(outcome for _, outcome in outcomes)


def write_on_policy_pairs(
    data_dir: Path,
    out_dir: Path,
    backend: EndpointBackend,
    *,
    samples: int,
    temperature: float,
    weights: dict[str, float],
    limit: int | None = None,
) -> dict[str, Any]:
    """On-policy pairs for the train and val splits of `data_dir` into `out_dir` (the folder appears
    whole or not at all), with a manifest: the endpoint and model, sampling, reward weights, source
    digests, and per split how many records were paired, tied or gave an invalid chosen answer."""
    require_train_split(data_dir)
    present = [split for split in PAIR_SPLITS[:2] if (data_dir / f"{split}.jsonl").is_file()]
    files: dict[str, Any] = {}
    with atomic_directory(out_dir) as staging:
        for split in present:
            source = data_dir / f"{split}.jsonl"
            records = read_records(source)[:limit]
            pairs, outcomes = _pairs_of(records, backend, samples, temperature, weights)
            text = to_jsonl(pairs)
            (staging / source.name).write_text(text, encoding="utf-8")
            files[source.name] = {
                "source_sha256": sha256_file(source),
                "sha256": sha256_bytes(text.encode("utf-8")),
                "records": len(pairs),
                "sampled_records": len(records),
                "outcomes": dict(sorted(outcomes.items())),
            }
        manifest = {
            "generator": "shoptune.eval.onpolicy",
            "endpoint": str(backend.client.base_url),
            "model_name": backend.model_name,
            "samples": samples,
            "temperature": temperature,
            "structured_output": backend.structured_output,
            "reward_weights": weights,
            "source_dir": str(data_dir),
            "files": files,
        }
        atomic_write_json(staging / "manifest.json", manifest)
    return manifest
