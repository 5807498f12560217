"""Training speed: shoptune against a plain Trainer and LLaMA-Factory, same job, same machine.

The job: SmolLM2-135M-Instruct, 256 extraction chats from the demo corpus, LoRA r=16,
alpha=32 on all linear projections, batch 4, the same learning rate, schedule and number of
optimizer steps, one run after another:

- shoptune: `shoptune train configs/cpu-smollm2.yaml` (its shipped CPU settings: bf16 autocast,
  length-grouped padded batches, the compact fused LM head, no gradient checkpointing);
- plain: benchmarks/plain_trainer.py (HF `Trainer` + PEFT, padded to 512, fp32 defaults);
- LLaMA-Factory 0.9.5 through its own CLI and YAML, in its own venv (its pins differ from
  ours), with its best settings for this job on a CPU (gradient checkpointing off), without
  and with packing.

For each: real (non-padding) tokens per second of training, peak resident memory of the
process, and the loss on assistant tokens of 64 held-out extraction chats after training,
computed by one function for every adapter (speed must not cost quality). A large matrix
product timed in the same run gives the machine's measured peak; the share of it each run
reaches uses 4 FLOPs per parameter per token (LoRA: forward + input gradients).

    python benchmarks/train_throughput.py [--quick] [--skip-llamafactory]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIG, MODEL, ROOT, WORK, model_dir, set_options, test_split, write_result

from shoptune.core.process import shoptune_argv

TRAIN_RECORDS = 256
VAL_RECORDS = 64
LEARNING_RATE = 7e-4
LLAMAFACTORY = "llamafactory==0.9.5"
LF_VENV = WORK / "llamafactory-venv"
TORCH = "torch==2.13.0"


def job_data() -> Path:
    """256 extraction chats for training and 64 held out, from the demo corpus."""
    from shoptune.shop.reading import read_records

    split = test_split().parent
    folder = WORK / "train-job"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source, count in (("train", "train.jsonl", TRAIN_RECORDS), ("val", "val.jsonl", VAL_RECORDS)):
        records = [r for r in read_records(split / source) if r["task"] == "extract"][:count]
        assert len(records) == count, f"{split / source} has {len(records)} extraction records, need {count}"
        (folder / f"{name}.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
    return folder


def run_measured(command: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> tuple[str, float]:
    """Run to completion; returns (stdout, peak resident memory in GiB of it and its children)."""
    sink = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=sink)
    stdout = process.stdout.read().decode() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if log:
        sink.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} ... exited {process.returncode}; log: {log}")
    return stdout, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def ours(data: Path, steps: int) -> dict[str, Any]:
    out = WORK / "train-shoptune"
    shutil.rmtree(out, ignore_errors=True)
    sets = {
        "train.max_steps": steps,
        "train.eval_steps": "null",
        "train.generation_eval_records": 0,
        "train.save_steps": steps,
        "train.learning_rate": LEARNING_RATE,
        "train.lora_r": 16,
        "train.lora_alpha": 32,
        "train.per_device_batch_size": 4,
        "train.gradient_accumulation_steps": 1,
    }
    command = shoptune_argv("train", str(CONFIG), "--data", str(data), "--out", str(out), *set_options(sets))
    _, peak = run_measured(command, log=WORK / "train-shoptune.log")
    final = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["final_metrics"]
    return {
        "real_tokens_per_second": final["tokens_per_second"],
        "real_tokens": final["tokens_seen"],
        "train_runtime_s": round(final["train_runtime_s"], 1),
        "peak_memory_gib": round(peak, 2),
        "adapter": str(out / "final" / "adapter"),
    }


def plain(data: Path, steps: int, model: Path) -> dict[str, Any]:
    out = WORK / "train-plain"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "plain_trainer.py"),
        "--model",
        str(model),
        "--data",
        str(data / "train.jsonl"),
        "--out",
        str(out),
        "--steps",
        str(steps),
        "--learning-rate",
        str(LEARNING_RATE),
    ]
    stdout, peak = run_measured(command, log=WORK / "train-plain.log")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {
        "real_tokens_per_second": result["real_tokens_per_second"],
        "real_tokens": result["real_tokens"],
        "train_runtime_s": round(result["train_runtime_s"], 1),
        "peak_memory_gib": round(peak, 2),
        "adapter": str(out / "adapter"),
    }


def llamafactory_venv() -> Path:
    """LLaMA-Factory in its own venv (created once): CPU torch 2.13.0, no torchvision, and
    torchaudio's CUDA-only native library moved aside (its mm_plugin imports torchaudio)."""
    cli = LF_VENV / "bin" / "llamafactory-cli"
    if cli.exists():
        return cli
    pip = [str(LF_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([sys.executable, "-m", "venv", str(LF_VENV)], check=True)
    subprocess.run([*pip, TORCH], check=True)
    subprocess.run([*pip, LLAMAFACTORY, TORCH], check=True)
    subprocess.run([str(LF_VENV / "bin" / "python"), "-m", "pip", "uninstall", "-y", "torchvision"], check=False)
    for library in LF_VENV.glob("lib/python*/site-packages/torchaudio/lib/_torchaudio*.so"):
        library.rename(library.with_suffix(".so.disabled"))
    return cli


def llamafactory(data: Path, steps: int, model: Path, packing: bool) -> dict[str, Any]:
    import yaml

    cli = llamafactory_venv()
    label = "packing" if packing else "no-packing"
    out = WORK / f"train-llamafactory-{label}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "dataset_info.json").write_text(
        json.dumps(
            {
                "shop_extract": {
                    "file_name": str(data / "train.jsonl"),
                    "formatting": "sharegpt",
                    "columns": {"messages": "messages"},
                    "tags": {
                        "role_tag": "role",
                        "content_tag": "content",
                        "user_tag": "user",
                        "assistant_tag": "assistant",
                        "system_tag": "system",
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    settings = {
        "model_name_or_path": str(model),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "lora",
        "lora_rank": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_target": "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
        "dataset": "shop_extract",
        "dataset_dir": str(out),
        "template": "smollm2",
        "cutoff_len": 640,
        "packing": packing,
        "output_dir": str(out / "adapter"),
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": LEARNING_RATE,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.03,  # transformers 5: a float below 1 is a ratio, as in shoptune's runs
        "max_steps": steps,
        "logging_steps": 5,
        "save_strategy": "no",
        "use_cpu": True,
        "bf16": False,
        "disable_gradient_checkpointing": True,  # its best on this CPU: 188 vs 160 real tok/s
        "include_num_input_tokens_seen": "non_padding",
        "report_to": "none",
        "preprocessing_num_workers": 1,
        "dataloader_num_workers": 0,
        "seed": 42,
    }
    (out / "train.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DISABLE_VERSION_CHECK": "1", "PYTHONPATH": ""}
    _, peak = run_measured([str(cli), "train", str(out / "train.yaml")], env=env, log=out / "train.log")
    state = json.loads((out / "adapter" / "trainer_state.json").read_text(encoding="utf-8"))
    # The final entry (the one with train_loss): LLaMA-Factory also puts a running train_runtime
    # into every logging step's entry.
    runtime = next(entry["train_runtime"] for entry in reversed(state["log_history"]) if "train_loss" in entry)
    real = state["num_input_tokens_seen"]
    return {
        "real_tokens_per_second": real / runtime,
        "real_tokens": real,
        "train_runtime_s": round(runtime, 1),
        "peak_memory_gib": round(peak, 2),
        "adapter": str(out / "adapter"),
    }


def right_padded(values: list[list[int]], fill: int) -> Any:
    """One tensor of `values`, each list padded on the right with `fill` to the longest."""
    import torch

    width = max(len(v) for v in values)
    return torch.tensor([v + [fill] * (width - len(v)) for v in values])


def assistant_loss(model: Path, adapter: Path, val: Path, records: int) -> float:
    """Mean loss over the assistant tokens of the first `records` held-out chats, in fp32: one
    yardstick for every run. Rows go in length-sorted batches of 8, right-padded and masked, which
    gives the per-row figure to 1e-7 in a fifth less time (measured: 0.5941942 either way)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shoptune.train.dataset import build_rows

    tokenizer = AutoTokenizer.from_pretrained(model)
    base = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    scored = PeftModel.from_pretrained(base, str(adapter)).eval()
    rows = sorted(build_rows(val, tokenizer, 4096).rows[:records], key=lambda row: len(row["input_ids"]))
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(rows), 8):
            batch = rows[start : start + 8]
            mask = right_padded([[1] * len(row["input_ids"]) for row in batch], 0)
            ids = right_padded([row["input_ids"] for row in batch], 0)
            logits = scored(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            targets = right_padded([row["labels"] for row in batch], -100)[:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.transpose(1, 2), targets, ignore_index=-100, reduction="sum"
            )
            total += losses.item()
            count += int((targets != -100).sum())
    return total / count


def matmul_peak_flops() -> dict[str, float]:
    """Measured peak of this machine: a 2048^3 product, fp32 and bf16, best of 5."""
    import torch

    peaks = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - started)
        peaks[str(dtype).removeprefix("torch.")] = 2 * 2048**3 / best
    return peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="12 steps instead of 30, loss on 32 held-out chats instead of 64 (under 10 minutes once set up)",
    )
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--skip-llamafactory", action="store_true", help="only shoptune and the plain baseline")
    args = parser.parse_args()
    steps = args.steps or (12 if args.quick else 30)
    held_out = VAL_RECORDS // 2 if args.quick else VAL_RECORDS

    from shoptune.models.loading import load_causal_lm

    model = model_dir(MODEL)
    data = job_data()
    if not args.skip_llamafactory:
        started = time.perf_counter()
        llamafactory_venv()
        print(f"LLaMA-Factory venv ready in {time.perf_counter() - started:.0f} s", flush=True)
    runs: dict[str, dict[str, Any]] = {}
    runs["shoptune"] = ours(data, steps)
    print(f"shoptune: {runs['shoptune']}", flush=True)
    runs["plain_trainer_padded_512"] = plain(data, steps, model)
    print(f"plain: {runs['plain_trainer_padded_512']}", flush=True)
    if not args.skip_llamafactory:
        for packing in (False, True):
            name = f"llamafactory_{'packing' if packing else 'no_packing'}"
            runs[name] = llamafactory(data, steps, model, packing)
            print(f"{name}: {runs[name]}", flush=True)
    for run in runs.values():
        adapter = Path(run.pop("adapter"))
        run["assistant_loss_after"] = round(assistant_loss(model, adapter, data / "val.jsonl", held_out), 4)
        run["real_tokens_per_second"] = round(run["real_tokens_per_second"], 1)

    parameters = sum(p.numel() for p in load_causal_lm(model, dtype="float32").parameters())
    peaks = matmul_peak_flops()
    for run in runs.values():
        achieved = run["real_tokens_per_second"] * 4 * parameters
        run["share_of_measured_fp32_peak"] = round(achieved / peaks["float32"], 3)
        run["share_of_measured_bf16_peak"] = round(achieved / peaks["bfloat16"], 3)
    lf = [run for name, run in runs.items() if name.startswith("llamafactory")]
    figures: dict[str, Any] = {
        "quick": args.quick,
        "job": {
            "model": MODEL,
            "train_records": TRAIN_RECORDS,
            "held_out_records": held_out,
            "steps": steps,
            "batch_size": 4,
            "lora": "r=16, alpha=32, all linear projections",
            "learning_rate": LEARNING_RATE,
        },
        "runs": runs,
        "measured_peak_gflops": {k: round(v / 1e9, 1) for k, v in peaks.items()},
        "speedup": round(
            runs["shoptune"]["real_tokens_per_second"] / runs["plain_trainer_padded_512"]["real_tokens_per_second"], 2
        ),
        "goals": {"speedup": 3, "speedup_vs_llamafactory": 1.5},
    }
    if lf:
        best = max(run["real_tokens_per_second"] for run in lf)
        figures["speedup_vs_llamafactory"] = round(runs["shoptune"]["real_tokens_per_second"] / best, 2)
    write_result("train_throughput", figures)


if __name__ == "__main__":
    main()
