"""Quality benchmark: one adapter per task (vLLM multi-LoRA) against one shared adapter, same data and compute.

    .venv/bin/python benchmarks/task_adapters.py                  # against the full demo's SFT run
    .venv/bin/python benchmarks/task_adapters.py --sft runs/my-sft --replies-test runs/data/replies-test/test.jsonl

The shared run (`--sft`, default the full demo's, `runs/demo-full/train`) trains one adapter on every
task's records. This benchmark trains two fresh adapters from the same base model with the shared
run's config (seed, learning rate, schedule, batch) and corpus: one on the extraction records only
(`train.tasks: [extract]`), one on the reply records only. Each gets the steps the shared run spent on
its records (the shared run's steps times the task's share of the training split), so the two
together see the same records and cost the same compute as the shared adapter. vLLM then serves the
base model with both adapters (`--lora extract=... --lora shop=...`) and the evaluation asks each
record's adapter as the storefront would with `serve.extraction_model_name: extract`: structured
extraction, the storefront's reply settings. The test split, the prompt-injection suite and (with
`--replies-test`) a larger held-out reply suite are paired by bootstrap against the shared adapter's
reports (`benchmarks/preference_quality.py`'s, reused from its work folder when present).
Results: `benchmarks/results/quality/task_adapters.json`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import ROOT, WORK, write_result
from preference_quality import data_dir, evaluate, held_out, markdown, rows, run_manifest, suites

from shoptune.config.schema import TASKS

EXTRACTION = ("extract",)
REPLIES = tuple(task for task in TASKS if task != "extract")
ADAPTERS = {"extract": EXTRACTION, "shop": REPLIES}
"""Served name -> the tasks its adapter trains on ("shop": the storefront's reply model name)."""


def _log(line: str) -> None:
    print(f"  {line}", flush=True)


def steps_for(sft: Path, tasks: tuple[str, ...]) -> int:
    """The shared run's steps times `tasks`' share of its training split: what it spent on them."""
    from shoptune.config import load_config
    from shoptune.shop.reading import read_records

    records = read_records(data_dir(sft) / "train.jsonl")
    share = sum(record["task"] in tasks for record in records) / len(records)
    return max(1, round(load_config(sft / "config.yaml").train.max_steps * share))


def train_adapter(sft: Path, tasks: tuple[str, ...], steps: int, out: Path) -> dict[str, Any]:
    """A fresh adapter on `tasks`' records of the shared run's corpus, with its config otherwise."""
    from shoptune.config import load_config
    from shoptune.train.recipe import run_training

    if (out / "final" / "adapter").is_dir():  # trained by an earlier invocation: its manifest has the figures
        return {"trained_earlier": True, "steps": steps, "final_metrics": run_manifest(out)["final_metrics"]}
    config = load_config(sft / "config.yaml")
    train = config.train.replace(tasks=tasks, max_steps=steps, save_steps=min(config.train.save_steps, steps))
    started = time.perf_counter()
    result = run_training(config.replace(train=train), out_dir=out, data_dir=data_dir(sft), log=_log)
    seconds = round(time.perf_counter() - started, 1)
    return {"train_seconds": seconds, "steps": steps, "final_metrics": result.manifest["final_metrics"]}


def evaluate_adapters(
    sft: Path, runs: dict[str, Path], work: Path, baseline: dict[str, Path], replies: Path | None
) -> dict[str, Path]:
    """Serve the base model with every adapter of `runs` (served name -> run) and evaluate each suite,
    asking extraction records of "extract" and the rest of "shop"; a suite evaluated already is kept."""
    from shoptune.config import load_config
    from shoptune.core.net import free_port
    from shoptune.demo.pipeline import evaluate_endpoint
    from shoptune.models import resolve_config_model
    from shoptune.serve.vllm_server import LoraModule, VllmServer

    config = load_config(sft / "config.yaml")
    config = config.replace(serve=config.serve.replace(extraction_model_name="extract"))
    evaluated = suites(sft, replies)
    reports = {suite: work / "per-task" / f"eval-{suite}" for suite in evaluated}
    missing = [suite for suite in evaluated if not (reports[suite] / "report.json").is_file()]
    if not missing:
        return reports
    loras = [LoraModule(name, run / "final" / "adapter") for name, run in runs.items()]
    identity = {"name": f"{config.name}-per-task", "adapters": {name: str(run) for name, run in runs.items()}}
    base = resolve_config_model(config.model, log=_log)
    log_path = work / "per-task" / "vllm.log"
    with VllmServer(base, config.serve, "base", free_port(), loras=loras, log_path=log_path) as server:
        for suite in missing:
            data, task = evaluated[suite]
            evaluate_endpoint(
                config, data, server.base_url, "shop", structured=True, out_dir=reports[suite], identity=identity,
                log=_log, task_name=task, baseline=baseline[suite], extraction_model_name="extract",
            )  # fmt: skip
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    shared_run = ROOT / "runs" / "demo-full" / "train"
    parser.add_argument("--sft", type=Path, default=shared_run, help="the shared-adapter run")
    parser.add_argument("--replies-test", type=Path, default=None, help="a JSONL of reply records: a larger suite")
    args = parser.parse_args()
    if not (args.sft / "final" / "adapter").is_dir():
        raise SystemExit(f"{args.sft} is not a finished SFT run (run scripts/demo.sh, or pass --sft)")
    shared_work, work = WORK / "preference", WORK / "task-adapters"
    started = time.perf_counter()
    if args.replies_test:
        args.replies_test = held_out(args.replies_test, args.sft, shared_work)
    print("== one shared adapter (the baseline): merge, serve, evaluate", flush=True)
    shared = evaluate(args.sft, "sft", shared_work, None, args.replies_test)
    training, runs = {}, {}
    for name, tasks in ADAPTERS.items():
        steps = steps_for(args.sft, tasks)
        print(f"== the {name!r} adapter: {steps} steps on {', '.join(tasks)} records", flush=True)
        runs[name] = work / name / "train"
        training[name] = train_adapter(args.sft, tasks, steps, runs[name])
    print("== base + both adapters (vLLM multi-LoRA): serve, evaluate", flush=True)
    per_task = evaluate_adapters(args.sft, runs, work, shared, args.replies_test)
    table = rows(shared, {"per-task adapters": per_task})
    shown = markdown(table, ["per-task adapters"], baseline="one shared adapter", prefix="")
    print(shown, flush=True)
    write_result(
        "quality/task_adapters",
        {
            "shared_run": str(args.sft),
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "adapters": {name: list(tasks) for name, tasks in ADAPTERS.items()},
            "training": training,
            "table": table,
            "markdown": shown,
            "wall_seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
