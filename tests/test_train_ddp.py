"""Beyond one device: the same `shoptune train` under `accelerate launch` with 2 CPU processes (gloo).

Documented tolerance: with `train.shuffle=false` both runs see the same records in the same
global batches (2 processes x batch 2 == 1 process x batch 2 x accumulation 2), and the loss is
normalised by the token count summed over processes, so the trajectories agree to float
rounding; the test allows 1e-4 per step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import invoke_shoptune

from shoptune.core.paths import CONFIGS_DIR, REPO_ROOT

COMMON = (
    "--set",
    "train.max_steps=4",
    "--set",
    "train.eval_steps=null",
    "--set",
    "train.shuffle=false",
    "--set",
    "train.per_device_batch_size=2",
)


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_match_one(tmp_path: Path, tiny_data: Path) -> None:
    data = tiny_data
    single = tmp_path / "single"
    done = invoke_shoptune(
        "train",
        "configs/tiny-qwen.yaml",
        "--out",
        str(single),
        "--data",
        str(data),
        *COMMON,
        "--set",
        "train.gradient_accumulation_steps=2",
    )
    assert done.returncode == 0, done.stderr

    double = tmp_path / "double"
    accelerate = Path(sys.executable).with_name("accelerate")
    launched = subprocess.run(
        [
            str(accelerate),
            "launch",
            "--config_file",
            str(CONFIGS_DIR / "accelerate/cpu-ddp.yaml"),
            "--main_process_port",
            "29533",
            "-m",
            "shoptune",
            "train",
            "configs/tiny-qwen.yaml",
            "--out",
            str(double),
            "--data",
            str(data),
            *COMMON,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    manifest = json.loads((double / "manifest.json").read_text())
    assert manifest["processes"] == 2 and manifest["status"] == "finished"
    assert (double / "final/adapter/adapter_model.safetensors").is_file()
    assert launched.stdout.count("run ") == 1  # only the first process reports
    assert _losses(double) == pytest.approx(_losses(single), abs=1e-4)


@pytest.mark.parametrize("name", ["cpu-ddp.yaml", "fsdp-8gpu.yaml", "deepspeed-zero3-8gpu.yaml"])
def test_accelerate_configs_are_complete(name: str) -> None:
    text = (CONFIGS_DIR / "accelerate" / name).read_text()
    assert text.startswith("#") and "accelerate launch --config_file configs/accelerate/" + name in text
    config = yaml.safe_load(text)
    assert config["num_processes"] >= 2 and config["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"}
    if config["distributed_type"] == "FSDP":
        assert config["fsdp_config"]["fsdp_transformer_layer_cls_to_wrap"] == "Qwen2DecoderLayer"
    if config["distributed_type"] == "DEEPSPEED":
        assert config["deepspeed_config"]["zero_stage"] == 3
