"""GPU smoke check: the shipped 7B LoRA and QLoRA configs, trained for real on one GPU.

The real Qwen2.5-7B-Instruct weights are 15 GB from a hub this project may not reach, but
memory, dtype, 4-bit and kernel problems do not depend on the weights' values. So this builds
Qwen2.5-7B-Instruct's exact architecture (src/shoptune/models/architectures/qwen2.5-7b-instruct.json)
with random bf16 weights and Qwen2.5's exact tokenizer (taken from tiny-qwen2.5), then runs the
unchanged `shoptune train configs/qwen2.5-7b-{lora,qlora}.yaml` for a few steps and sets the
measured peak GPU memory beside the `--dry-run` estimate for the same batch.

    python scripts/gpu_smoke.py --tokenizer-from "$(shoptune models path tiny-qwen2.5)" --work /tmp/gpu-smoke

Prints one JSON line per config and writes WORK/gpu_smoke.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "shoptune" / "models" / "architectures" / "qwen2.5-7b-instruct.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
CONFIGS = ("qwen2.5-7b-lora", "qwen2.5-7b-qlora")


def build_random_model(tokenizer_dir: Path, target: Path) -> float:
    """Qwen2.5-7B's shape with seeded random weights, saved as safetensors; returns seconds taken."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (target / "config.json").is_file():
        return 0.0
    started = time.perf_counter()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(tokenizer_dir / name, staging / name)
    shutil.copy2(ARCHITECTURE, staging / "config.json")
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(staging), dtype=torch.bfloat16)
    model.save_pretrained(staging, max_shard_size="5GB")
    del model
    torch.cuda.empty_cache()
    staging.rename(target)
    return time.perf_counter() - started


def shoptune(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "shoptune", *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"shoptune {' '.join(args)} exited {done.returncode}")
    return done.stdout + done.stderr


def smoke(config: str, model_dir: Path, work: Path, steps: int) -> dict:
    overrides = [
        f"model.path={model_dir}",
        "train.per_device_batch_size=1",
        "train.gradient_accumulation_steps=1",
        "train.max_length=512",
        f"train.max_steps={steps}",
        "train.logging_steps=1",
        f"train.save_steps={steps}",
        f"data.dir={work / 'data'}",
        "data.train_records=64",
        "data.val_records=8",
        "data.test_records=8",
        "data.max_tokens=512",
    ]
    sets = [part for item in overrides for part in ("--set", item)]
    plan = shoptune("train", f"configs/{config}.yaml", "--dry-run", *sets)
    estimate = float(re.search(r"^\s*total\s+([\d.]+)", plan, re.MULTILINE).group(1))
    shutil.rmtree(work / config, ignore_errors=True)  # a fresh run each time; the model dir is reused
    started = time.perf_counter()
    shoptune("train", f"configs/{config}.yaml", "--out", str(work / config), *sets)
    wall = time.perf_counter() - started
    manifest = json.loads((work / config / "manifest.json").read_text(encoding="utf-8"))
    final = manifest["final_metrics"]
    losses = [json.loads(line).get("loss") for line in (work / config / "metrics.jsonl").read_text().splitlines()]
    return {
        "config": config,
        "steps": final["steps"],
        "estimated_gib": estimate,
        "peak_gpu_memory_gib": final["peak_gpu_memory_gib"],
        "train_runtime_s": round(final["train_runtime_s"], 1),
        "wall_s_including_load": round(wall, 1),
        "tokens_per_second": round(final["tokens_per_second"], 1),
        "losses": [round(x, 3) for x in losses if isinstance(x, float)],
        "eval_loss": final["eval_loss"],
        "adapter_files": sorted(p.name for p in (work / config / "final" / "adapter").iterdir()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer-from", type=Path, required=True, help="a prepared tiny-qwen2.5 directory")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-smoke"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_smoke.py needs a CUDA GPU")
    model_dir = args.work / "qwen2.5-7b-random"
    build_s = build_random_model(args.tokenizer_from, model_dir)
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "random_model_build_s": round(build_s, 1)}), flush=True)
    results = []
    for config in args.configs:
        result = smoke(config, model_dir, args.work, args.steps)
        print(json.dumps(result), flush=True)
        results.append(result)
    (args.work / "gpu_smoke.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
