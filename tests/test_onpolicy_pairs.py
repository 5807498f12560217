"""On-policy preference pairs: answers sampled from the served model (the session's vLLM server,
through the real `openai` client), scored by the GRPO rewards, best paired with worst; the folder
passes `data check` and DPO trains on it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import invoke_shoptune

from shoptune.config import load_config
from shoptune.core.paths import CONFIGS_DIR
from shoptune.eval.onpolicy import TrainingForm, on_policy_pair
from shoptune.eval.rewards import score_answer
from shoptune.models.loading import load_tokenizer
from shoptune.shop.reading import read_records

WEIGHTS = dict(load_config(CONFIGS_DIR / "tiny-qwen.yaml").train.grpo.rewards)


def _extraction(tiny_data: Path) -> dict:
    return next(r for r in read_records(tiny_data / "train.jsonl") if r["task"] == "extract")


def test_the_best_answer_is_chosen_and_the_worst_rejected(tiny_data: Path) -> None:
    record = _extraction(tiny_data)
    gold = record["messages"][-1]["content"]
    nulls = json.dumps(dict.fromkeys(json.loads(gold)))
    pair = on_policy_pair(record, ["not json", gold, nulls], WEIGHTS)
    assert pair["messages"][-1]["content"] == gold and pair["rejected"] == "not json"
    assert pair["messages"][:-1] == record["messages"][:-1] and pair["meta"]["reference"] == gold
    assert pair["meta"]["chosen_reward"] > pair["meta"]["rejected_reward"]
    assert on_policy_pair(record, [nulls, nulls], WEIGHTS) is None  # nothing to prefer


def test_a_pair_training_would_refuse_is_named(tiny_data: Path, tiny_qwen_dir: Path) -> None:
    record = next(r for r in read_records(tiny_data / "train.jsonl") if r["task"] == "recommend")
    answer = record["messages"][-1]["content"]
    pair = on_policy_pair(record, [answer, "Sorry."], WEIGHTS)
    form = TrainingForm(load_tokenizer(tiny_qwen_dir), max_length=512)
    assert form.refusal(pair) is None
    assert form.refusal({**pair, "rejected": answer + " Happy shopping!" * 200}) == "too long"
    assert TrainingForm(form.tokenizer, max_length=8).refusal(pair) == "too long"


def test_eval_pairs_samples_the_served_model_into_pairs_data_check_and_dpo_accept(
    tiny_vllm, tiny_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "on-policy"
    done = invoke_shoptune(
        "eval", "pairs", "--config", "configs/tiny-qwen.yaml", "--data", str(tiny_data), "--out", str(out),
        "--endpoint", tiny_vllm.server.base_url, "--model-name", "shop-lora", "--samples", "4",
        "--task", "extract", "--task", "refusal", "--limit", "16",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["samples"] == 4 and manifest["structured_output"] and manifest["reward_weights"] == WEIGHTS
    assert manifest["seed"] == 42 and manifest["tasks"] == ["extract", "refusal"]  # seed: the config's train.seed
    train = manifest["files"]["train.jsonl"]
    assert sum(train["outcomes"].values()) == train["sampled_records"] == 16
    pairs = read_records(out / "train.jsonl")
    assert len(pairs) == train["records"] == train["outcomes"]["paired"] > 0
    sources = {r["id"]: r for r in read_records(tiny_data / "train.jsonl")}
    for pair in pairs:
        source = sources[pair["meta"]["source_id"]]
        assert source["task"] in ("extract", "refusal")
        chosen, _ = score_answer(source, pair["messages"][-1]["content"], WEIGHTS)
        rejected, _ = score_answer(source, pair["rejected"], WEIGHTS)
        assert (chosen, rejected) == (pair["meta"]["chosen_reward"], pair["meta"]["rejected_reward"])
        assert chosen > rejected
    checked = invoke_shoptune("data", "check", str(out / "train.jsonl"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    run = tmp_path / "dpo"
    done = invoke_shoptune(
        "train", "configs/tiny-qwen.yaml", "--out", str(run), "--data", str(tiny_data),
        "--set", "train.method=dpo", "--set", f"train.preference.pairs={out}", "--set", "train.max_steps=2",
        "--set", "train.eval_steps=null",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    trained = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert trained["data"]["pairs"]["made"]["generator"] == "shoptune.eval.onpolicy"
