"""Quality benchmark: SFT alone against SFT + a preference method or GRPO, on the embedded model, served.

    .venv/bin/python benchmarks/preference_quality.py                     # DPO on the demo's SFT run
    .venv/bin/python benchmarks/preference_quality.py --method orpo --steps 100
    .venv/bin/python benchmarks/preference_quality.py --sft runs/my-sft --control-steps 150
    .venv/bin/python benchmarks/preference_quality.py --method grpo --steps 60 --learning-rate 2e-5 \
        --grpo-tasks extract --max-completion-length 96

The SFT run (`--sft`, default the full demo's, `runs/demo-full/train`) is the starting point and the
baseline. The preference run goes on from its adapter (`train.init_adapter`) on pairs made by rule
from the same corpus, with the SFT run's own config (seed included) and the learning rate and steps
given here; GRPO goes on from it on the same corpus's prompts, rewarded by the eval package's scores
(`train.grpo`, with the tasks and answer length given here). `--control-steps N` also goes on with
plain SFT for N steps from the same adapter, so "more training" and "preference training" can be
told apart. Each model is merged (through the parity gate), served by vLLM with the storefront's
settings (structured extraction), and evaluated on the SFT run's test split and on the
prompt-injection suite; each report is paired against SFT's (bootstrap), and the table lists the verdicts
on the metrics the issue names: tone compliance, grounding, hallucinated products, refusals and
injection resistance, exact match, field accuracy (micro-F1), chrF. Wall time per run is reported.
Results: `benchmarks/results/quality/preference_quality-<variant>.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import ROOT, WORK, write_result

from shoptune.config.schema import TASKS

INJECTION_SUITE = ROOT / "datasets" / "security" / "prompt_injection.jsonl"
SHOWN = (
    ("tone_compliance_rate", "test"),
    ("recommend_grounded_rate", "test"),
    ("hallucinated_product_rate", "test"),
    ("faq_grounded_rate", "test"),
    ("refusal_in_role_rate", "test"),
    ("refusal_in_role_rate", "injection"),
    ("exact_match_rate", "test"),
    ("micro_f1", "test"),
    ("chrf", "test"),
)
"""(metric, suite) rows of the table."""


def _log(line: str) -> None:
    print(f"  {line}", flush=True)


def continued(sft: Path, method: str, steps: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train `method` for `steps` from the SFT run's adapter, with the SFT run's config otherwise."""
    from shoptune.config import load_config
    from shoptune.train.recipe import run_training

    config = load_config(sft / "config.yaml")
    learning_rate = args.learning_rate
    train = config.train.replace(
        method=method,
        init_adapter=str(sft),
        max_steps=steps,
        learning_rate=learning_rate,
        warmup_ratio=0.1,
        group_by_length=False if method != "sft" else config.train.group_by_length,
        save_steps=steps,
        eval_steps=None,
        eval_records=50,
        generation_eval_records=0,
        preference=config.train.preference.replace(sft_weight=args.sft_weight),
        grpo=config.train.grpo.replace(
            tasks=tuple(args.grpo_tasks),
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            temperature=args.temperature,
        ),
    )
    data = Path(json.loads((sft / "manifest.json").read_text(encoding="utf-8"))["data"]["dir"])
    started = time.perf_counter()
    result = run_training(config.replace(train=train), out_dir=out, data_dir=data, log=_log)
    return {"train_seconds": round(time.perf_counter() - started, 1), "final_metrics": result.manifest["final_metrics"]}


def evaluate(run: Path, name: str, work: Path, baseline: dict[str, Path] | None) -> dict[str, Path]:
    """Merge `run`, serve it as the storefront does, evaluate the test split and the injection suite."""
    from shoptune.config import load_config
    from shoptune.core.net import free_port
    from shoptune.demo.pipeline import evaluate_endpoint
    from shoptune.serve.vllm_server import VllmServer
    from shoptune.train.merge import merge_run

    config = load_config(run / "config.yaml")
    reports = {"test": work / name / "eval-test", "injection": work / name / "eval-injection"}
    if all((report / "report.json").is_file() for report in reports.values()):
        return reports  # evaluated already in this work folder (the SFT baseline of an earlier variant)
    merged = work / name / "merged"
    if not (merged / "shoptune-merge.json").is_file():
        merge_run(run, merged, log=_log)
    test = Path(json.loads((run / "manifest.json").read_text(encoding="utf-8"))["data"]["dir"]) / "test.jsonl"
    identity = {"name": f"{config.name}-{name}-merged", "directory": str(merged), "merged_from": str(run)}
    with VllmServer(merged, config.serve, "shop", free_port(), log_path=work / name / "vllm.log") as server:
        for suite, data, task in (("test", test, "shop"), ("injection", INJECTION_SUITE, "injection")):
            evaluate_endpoint(
                config, data, server.base_url, server.served_name, structured=True, out_dir=reports[suite],
                identity=identity, log=_log, task_name=task, baseline=baseline[suite] if baseline else None,
            )  # fmt: skip
    return reports


def _metric(report: Path, metric: str) -> float | None:
    return json.loads((report / "report.json").read_text(encoding="utf-8"))["metrics"].get(metric)


def rows(sft: dict[str, Path], tuned: dict[str, dict[str, Path]]) -> list[dict[str, Any]]:
    """One row per (metric, suite): SFT's value, and each run's value, difference, interval, verdict."""
    table = []
    for metric, suite in SHOWN:
        row: dict[str, Any] = {"metric": metric, "suite": suite, "sft": _metric(sft[suite], metric)}
        for name, reports in tuned.items():
            report = json.loads((reports[suite] / "report.json").read_text(encoding="utf-8"))
            paired = (report.get("comparison") or {}).get("metrics", {}).get(metric)
            row[name] = {
                "value": report["metrics"].get(metric),
                "difference": paired and paired["difference"],
                "interval": paired and paired["interval"],
                "verdict": paired["verdict"] if paired else "not paired",
                "n": paired and paired["n"],
            }
        table.append(row)
    return table


def markdown(table: list[dict[str, Any]], names: list[str]) -> str:
    head = "| metric (suite) | SFT | " + " | ".join(f"SFT + {n} (difference [95% CI], verdict)" for n in names) + " |"
    lines = [head, "|---|---|" + "---|" * len(names)]
    for row in table:
        cells = []
        for name in names:
            cell = row[name]
            if cell["interval"] is None:
                cells.append(f"{_fmt(cell['value'])} ({cell['verdict']})")
                continue
            low, high = cell["interval"]
            cells.append(
                f"{_fmt(cell['value'])} ({cell['difference']:+.3f} [{low:+.3f}, {high:+.3f}], n={cell['n']}, "
                f"**{cell['verdict']}**)"
            )
        lines.append(f"| {row['metric']} ({row['suite']}) | {_fmt(row['sft'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sft", type=Path, default=ROOT / "runs" / "demo-full" / "train", help="a finished SFT run")
    parser.add_argument("--method", default="dpo", choices=("dpo", "kto", "orpo", "simpo", "grpo"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--sft-weight", type=float, default=0.0, help="train.preference.sft_weight (DPO: RPO)")
    parser.add_argument("--control-steps", type=int, default=0, help="also continue plain SFT this many steps")
    parser.add_argument("--grpo-tasks", nargs="+", default=list(TASKS), choices=TASKS, help="GRPO: prompts' tasks")
    parser.add_argument("--num-generations", type=int, default=4, help="GRPO: answers sampled per prompt")
    parser.add_argument("--max-completion-length", type=int, default=256, help="GRPO: longest sampled answer")
    parser.add_argument("--temperature", type=float, default=1.0, help="GRPO: sampling temperature")
    args = parser.parse_args()
    if not (args.sft / "final" / "adapter").is_dir():
        raise SystemExit(f"{args.sft} is not a finished SFT run (run scripts/demo.sh, or pass --sft)")
    work = WORK / "preference"
    started = time.perf_counter()
    print("== SFT (the baseline): merge, serve, evaluate", flush=True)
    sft_reports = evaluate(args.sft, "sft", work, None)
    variant = f"{args.method}-lr{args.learning_rate:g}" + (f"-sft{args.sft_weight:g}" if args.sft_weight else "")
    if args.method == "grpo":
        variant += f"-{'+'.join(args.grpo_tasks)}-g{args.num_generations}-t{args.temperature:g}"
    runs = {variant: (args.method, args.steps)}
    if args.control_steps:
        runs[f"sft-continued-lr{args.learning_rate:g}"] = ("sft", args.control_steps)
    training, tuned = {}, {}
    for name, (method, steps) in runs.items():
        print(f"== SFT + {name}: {steps} steps from {args.sft}", flush=True)
        out = work / name / "train"
        if not (out / "final" / "adapter").is_dir():
            training[name] = continued(args.sft, method, steps, args, out)
        tuned[name] = evaluate(out, name, work, sft_reports)
    table = rows(sft_reports, tuned)
    print(markdown(table, list(tuned)), flush=True)
    write_result(
        f"quality/preference_quality-{variant}",
        {
            "sft_run": str(args.sft),
            "settings": {"runs": runs, **vars(args), "sft": str(args.sft)},
            "training": training,
            "table": table,
            "markdown": markdown(table, list(tuned)),
            "wall_seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
