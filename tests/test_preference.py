"""Preference tuning with TRL's real trainers on tiny-qwen2.5: DPO, KTO, ORPO and SimPO each finish
with the run folder SFT has (pairs made by rule into it, config, manifest, metrics with the reward
margin, adapter without TRL's reference copy) and merge through the parity gate; DPO goes on from
an SFT run's adapter. Kill-and-resume for DPO: test_reliability_train.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import invoke_shoptune
from safetensors.torch import load_file

from shoptune.config import load_config
from shoptune.core.paths import CONFIGS_DIR

TINY = CONFIGS_DIR / "tiny-qwen.yaml"
STEPS = 2


def _train(out: Path, data: Path, method: str, *extra: str):
    return invoke_shoptune(
        "train", str(TINY), "--out", str(out), "--data", str(data), "--set", f"train.method={method}",
        "--set", f"train.max_steps={STEPS}", "--set", f"train.eval_steps={STEPS}", "--set", f"train.save_steps={STEPS}",
        "--set", "train.eval_records=8", *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path) -> Path:
    out = tmp_path_factory.mktemp("dpo") / "run"
    done = _train(out, tiny_data, "dpo", "--set", "train.generation_eval_records=2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "made preference pairs by rule" in done.stderr
    return out


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]


def _assert_finished_run(run: Path, method: str) -> dict:
    for name in ("config.yaml", "final/adapter/adapter_config.json", "final/adapter/adapter_model.safetensors"):
        assert (run / name).is_file(), name
    assert not (run / "final/adapter/ref").exists()  # TRL's frozen reference copy is not part of the result
    assert load_config(run / "config.yaml").train.method == method
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "finished" and manifest["final_metrics"]["steps"] == STEPS
    assert math.isfinite(manifest["final_metrics"]["eval_loss"])
    pairs = manifest["data"]["pairs"]
    assert pairs["dir"] == str(run / "pairs") and pairs["made"]["seed"] == 42
    train_digest = __import__("hashlib").sha256((run / "pairs/train.jsonl").read_bytes()).hexdigest()
    assert pairs["files"]["train.jsonl"] == train_digest
    rows_per_pair = 2 if method == "kto" else 1  # KTO trains on each answer alone
    assert manifest["data"]["train"]["records"] == rows_per_pair * pairs["made"]["files"]["train.jsonl"]["records"] > 0
    assert [m["step"] for m in _metrics(run)] == list(range(1, STEPS + 1))
    return manifest


def _assert_merges(run: Path, out: Path) -> None:
    done = invoke_shoptune("merge", str(run), "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "shoptune-merge.json").read_text(encoding="utf-8"))
    assert report["max_abs_logit_diff"] <= report["atol"] and report["generations_identical"]


def test_dpo_run_folder_metrics_and_merge(dpo_run: Path, tmp_path: Path) -> None:
    manifest = _assert_finished_run(dpo_run, "dpo")
    metrics = _metrics(dpo_run)
    assert metrics[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # policy == reference at step 1
    assert all(m["reward_margin"] is not None and 0 <= m["reward_accuracy"] <= 1 for m in metrics)
    last = metrics[-1]
    assert last["eval_reward_accuracy"] is not None and last["eval_json_valid_rate"] is not None
    assert manifest["final_metrics"]["eval_reward_margin"] == last["eval_reward_margin"]
    assert manifest["final_metrics"]["tokens_per_second"] > 0
    _assert_merges(dpo_run, tmp_path / "merged")


@pytest.mark.parametrize("method", ["kto", "orpo", "simpo"])
def test_other_preference_methods_finish_and_merge(method: str, tiny_data: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = _train(run, tiny_data, method)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = _assert_finished_run(run, method)
    if method != "kto":  # KTO has a margin only in batches that hold both labels: its evaluation's
        assert all(m["reward_margin"] is not None for m in _metrics(run))
    assert manifest["final_metrics"]["eval_reward_margin"] is not None
    _assert_merges(run, tmp_path / "merged")


def _lora_b(run: Path) -> torch.Tensor:
    weights = load_file(run / "final/adapter/adapter_model.safetensors")
    return torch.cat([weights[k].flatten() for k in sorted(weights) if "lora_B" in k])


def test_dpo_goes_on_from_an_sft_runs_adapter(dpo_run: Path, tiny_data: Path, tmp_path: Path) -> None:
    sft = tmp_path / "sft"
    done = invoke_shoptune(
        "train", str(TINY), "--out", str(sft), "--data", str(tiny_data), "--set", "train.max_steps=6"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    after = tmp_path / "dpo-after-sft"
    done = _train(after, tiny_data, "dpo", "--set", f"train.init_adapter={sft}", "--set", "train.learning_rate=1e-4")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"starting from the adapter in {sft / 'final' / 'adapter'}" in done.stderr
    _assert_finished_run(after, "dpo")
    assert _metrics(after)[0]["loss"] == pytest.approx(math.log(2), abs=1e-3)  # the reference is the SFT adapter
    sft_b, after_b, fresh_b = _lora_b(sft), _lora_b(after), _lora_b(dpo_run)
    similar = torch.nn.functional.cosine_similarity
    assert similar(after_b, sft_b, dim=0) > 0.95 and abs(similar(fresh_b, sft_b, dim=0)) < 0.5
    assert not torch.equal(after_b, sft_b)  # and it trained on


def test_init_adapter_that_is_not_a_run_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    done = _train(tmp_path / "run", tiny_data, "dpo", "--set", f"train.init_adapter={tmp_path}")
    assert done.returncode == 2 and "is neither a finished training run nor an adapter folder" in done.stderr
    assert not (tmp_path / "run").exists()


def test_configured_pairs_without_rejected_answers_name_the_line(tiny_data: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for name in ("train.jsonl", "val.jsonl"):
        (pairs / name).write_bytes((tiny_data / name).read_bytes())  # plain records: no `rejected` answer
    done = _train(tmp_path / "run", tiny_data, "dpo", "--set", f"train.preference.pairs={pairs}")
    assert done.returncode == 2
    assert f"{pairs / 'train.jsonl'}:1" in done.stderr and "no `rejected` answer" in done.stderr
    assert not (tmp_path / "run" / "manifest.json").exists()
