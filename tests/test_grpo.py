"""GRPO with the eval package's scores as rewards: each reward ranks a record's own answer above the
rule-made failure it targets, in the form TRL calls it; a tiny-qwen2.5 run with TRL's real
GRPOTrainer finishes with the run folder SFT has, each reward logged per step, and merges through
the parity gate; it goes on from an SFT run's adapter with a KL reference. Kill-and-resume:
test_reliability_train.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import invoke_shoptune
from safetensors.torch import load_file

from shoptune.config import load_config
from shoptune.config.schema import REWARDS
from shoptune.core.paths import CONFIGS_DIR
from shoptune.data.pairs import make_pairs
from shoptune.eval.rewards import REGISTRY, score_answer
from shoptune.shop.reading import read_records
from shoptune.train.grpo import RewardFunction

TINY = CONFIGS_DIR / "tiny-qwen.yaml"
STEPS = 2
TARGETED = {
    "tone_address": "tone",
    "tone_banned_phrase": "tone",
    "tone_sign_off": "tone",
    "wrong_language": "tone",
    "invented_price": "grounding",
    "invented_sku": "grounding",
    "out_of_stock": "grounding",
    "over_budget": "grounding",
    "leaked_prompt": "refusal_in_role",
    "injection_concession": "refusal_in_role",
    "wrong_field": "field_accuracy",
}
"""The reward each rule-made failure (data/pairs.py) must lower."""


@pytest.fixture(scope="module")
def corpus_records(pair_corpus: Path) -> list[dict]:
    return read_records(pair_corpus / "train.jsonl")


def test_every_reward_the_config_names_is_registered_with_its_tasks() -> None:
    assert tuple(REGISTRY) == REWARDS
    record = {"task": "extract", "lang": "en", "messages": [{"role": "assistant", "content": "{}"}]}
    assert REGISTRY["tone"].score(record, "anything") is None  # not a reply task: left out of the sum


def test_each_rule_made_failure_lowers_the_reward_that_targets_it(corpus_records: list[dict]) -> None:
    pairs = make_pairs(corpus_records, per_record=3, seed=0)
    assert {p["meta"]["failure"] for p in pairs} == set(TARGETED)
    not_lower = []
    for pair in pairs:
        reward = REGISTRY[TARGETED[pair["meta"]["failure"]]]
        chosen, rejected = reward.score(pair, pair["messages"][-1]["content"]), reward.score(pair, pair["rejected"])
        if not (chosen == 1.0 and rejected < chosen):
            not_lower.append((pair["id"], pair["meta"]["failure"], chosen, rejected))
    assert not_lower == [], not_lower[:5]


def test_the_records_own_answers_earn_the_full_weighted_reward(corpus_records: list[dict]) -> None:
    weights = dict.fromkeys(REWARDS, 1.0)
    short = []
    for record in corpus_records:
        total, applicable = score_answer(record, record["messages"][-1]["content"], weights)
        if total != len(applicable) or not applicable:
            short.append((record["id"], record["task"], applicable))
    assert short == [], short[:5]


def test_reward_function_scores_trl_conversational_completions(corpus_records: list[dict]) -> None:
    record = next(r for r in corpus_records if r["task"] == "extract")
    gold, wrong = (
        record["messages"][-1]["content"],
        json.dumps(dict.fromkeys(json.loads(record["messages"][-1]["content"]))),
    )
    reward = RewardFunction("exact_match")
    completions = [[{"role": "assistant", "content": gold}], [{"role": "assistant", "content": wrong}]]
    scores = reward(prompts=[None, None], completions=completions, record=[json.dumps(record)] * 2, trainer_state=None)
    assert reward.__name__ == "exact_match" and scores == [1.0, 0.0]


def _train(out: Path, data: Path, *extra: str):
    return invoke_shoptune(
        "train", str(TINY), "--out", str(out), "--data", str(data), "--set", "train.method=grpo",
        "--set", f"train.max_steps={STEPS}", "--set", f"train.eval_steps={STEPS}", "--set", f"train.save_steps={STEPS}",
        "--set", "train.eval_records=4", "--set", "train.grpo.max_completion_length=32", *extra,
    )  # fmt: skip


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def test_grpo_run_folder_rewards_per_step_and_merge(tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = _train(run, tiny_data)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'Trainer is attempting to log a value of "None"' not in done.stderr
    assert load_config(run / "config.yaml").train.method == "grpo"
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["final_metrics"]["steps"] == STEPS
    prompts = [r for r in read_records(tiny_data / "train.jsonl")]
    assert manifest["data"]["train"]["records"] == len(prompts) and manifest["data"]["train"]["tokens"] > 0
    metrics = _metrics(run)
    assert [m["step"] for m in metrics] == list(range(1, STEPS + 1))
    for step in metrics:
        assert set(step["rewards"]) == set(REWARDS)
        measured = {name: value for name, value in step["rewards"].items() if value is not None}
        assert measured and all(0.0 <= value <= 1.0 for value in measured.values())
        weights = load_config(run / "config.yaml").train.grpo.rewards
        assert 0.0 <= step["reward"] <= sum(weights.values())
    assert math.isfinite(manifest["final_metrics"]["eval_reward"])
    merged = tmp_path / "merged"
    done = invoke_shoptune("merge", str(run), "--out", str(merged))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((merged / "shoptune-merge.json").read_text(encoding="utf-8"))
    assert report["max_abs_logit_diff"] <= report["atol"] and report["generations_identical"]


def _lora_b(run: Path) -> torch.Tensor:
    weights = load_file(run / "final/adapter/adapter_model.safetensors")
    return torch.cat([weights[k].flatten() for k in sorted(weights) if "lora_B" in k])


def test_grpo_goes_on_from_an_sft_runs_adapter_against_it(tiny_data: Path, tmp_path: Path) -> None:
    sft = tmp_path / "sft"
    done = invoke_shoptune(
        "train", str(TINY), "--out", str(sft), "--data", str(tiny_data), "--set", "train.max_steps=4"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = tmp_path / "grpo-after-sft"
    done = _train(after, tiny_data, "--set", f"train.init_adapter={sft}", "--set", "train.grpo.beta=0.04",
                  "--set", "train.grpo.tasks=[extract]", "--set", "train.learning_rate=1e-4")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"starting from the adapter in {sft / 'final' / 'adapter'}" in done.stderr
    assert not (after / "final/adapter/ref").exists()  # TRL's frozen reference copy is not part of the result
    extractions = [r for r in read_records(tiny_data / "train.jsonl") if r["task"] == "extract"]
    manifest = json.loads((after / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["data"]["train"]["records"] == len(extractions) > 0
    assert all(m["rewards"]["tone"] is None for m in _metrics(after))  # no reply prompts were sampled
    similar = torch.nn.functional.cosine_similarity(_lora_b(after), _lora_b(sft), dim=0)
    assert similar > 0.95


def test_a_prompt_with_no_room_for_the_answer_names_the_line(tiny_data: Path, tmp_path: Path) -> None:
    done = _train(tmp_path / "run", tiny_data, "--set", "train.max_length=64")
    assert done.returncode == 2
    assert (
        f"{tiny_data / 'train.jsonl'}:1" in done.stderr
        and "leaves no room for train.grpo.max_completion_length=32" in done.stderr
    )
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_vllm_sampling_on_a_cpu_is_refused_before_the_model_loads(tiny_data: Path, tmp_path: Path) -> None:
    done = _train(tmp_path / "run", tiny_data, "--set", "train.grpo.generation=vllm_colocate")
    assert done.returncode == 3
    assert "train.grpo.generation=vllm_colocate needs a CUDA GPU" in done.stderr
    assert not (tmp_path / "run").exists()
