"""Quality benchmark: SFT alone against SFT + a preference method or GRPO, on the embedded model, served.

    .venv/bin/python benchmarks/preference_quality.py                     # DPO on the demo's SFT run
    .venv/bin/python benchmarks/preference_quality.py --method orpo --steps 100
    .venv/bin/python benchmarks/preference_quality.py --sft runs/my-sft --control-steps 150
    .venv/bin/python benchmarks/preference_quality.py --method grpo --steps 60 --learning-rate 2e-5 \
        --grpo-tasks extract --max-completion-length 96
    .venv/bin/python benchmarks/preference_quality.py --pairs runs/pairs/on-policy \
        --replies-test runs/data/replies-test/test.jsonl   # DPO on on-policy pairs, a larger reply suite

(The reply suite: `shoptune data build --config configs/cpu-smollm2.yaml --out runs/data/replies-test
--set data.seed=2026 --set 'data.task_mix={recommend: 0.36, faq: 0.24, chat: 0.2, refusal: 0.2}'
--set data.train_records=16 --set data.val_records=8 --set data.test_records=400`; records whose user
turns the SFT run trained on are left out.)

The SFT run (`--sft`, default the full demo's, `runs/demo-full/train`) is the starting point and the
baseline. The preference run goes on from its adapter (`train.init_adapter`) on pairs made by rule
from the same corpus (or on the pairs folder `--pairs`, e.g. on-policy pairs from `shoptune eval
pairs`), with the SFT run's own config (seed included) and the learning rate and steps given here;
GRPO goes on from it on the same corpus's prompts, rewarded by the eval package's scores
(`train.grpo`, with the tasks and answer length given here). `--control-steps N` also goes on with
plain SFT for N steps from the same adapter, so "more training" and "preference training" can be
told apart. Each model is merged (through the parity gate), served by vLLM with the storefront's
settings (structured extraction), and evaluated on the SFT run's test split, on the
prompt-injection suite and, with `--replies-test FILE`, on a larger suite of reply records (the test
split holds too few of each reply task for a verdict on what preference tuning aims at). Each report
is paired against SFT's (bootstrap), and the table lists the verdicts on the metrics the issue names:
tone compliance, grounding, hallucinated products, refusals and injection resistance, exact match,
field accuracy (micro-F1), chrF. Wall time per run is reported.
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
REPLY_ROWS = (
    ("tone_compliance_rate", "replies"),
    ("recommend_grounded_rate", "replies"),
    ("hallucinated_product_rate", "replies"),
    ("faq_grounded_rate", "replies"),
    ("refusal_in_role_rate", "replies"),
    ("history_resolved_rate", "replies"),
    ("degenerate_rate", "replies"),
    ("chrf", "replies"),
)
"""Rows added for the `--replies-test` suite."""


def _log(line: str) -> None:
    print(f"  {line}", flush=True)


def run_manifest(run: Path) -> dict[str, Any]:
    """A finished training run's manifest: its data folder, final metrics, versions."""
    return json.loads((run / "manifest.json").read_text(encoding="utf-8"))


def data_dir(run: Path) -> Path:
    """The data folder a finished training run trained on (its manifest says)."""
    return Path(run_manifest(run)["data"]["dir"])


def suites(run: Path, replies: Path | None) -> dict[str, tuple[Path, str]]:
    """Suite name -> (records, eval task) the benchmarks evaluate a model of `run`'s corpus on: its
    test split, the prompt-injection suite and, when given, the `replies` suite."""
    chosen = {"test": (data_dir(run) / "test.jsonl", "shop"), "injection": (INJECTION_SUITE, "injection")}
    return {**chosen, "replies": (replies, "shop")} if replies is not None else chosen


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
        preference=config.train.preference.replace(
            sft_weight=args.sft_weight, pairs=str(args.pairs) if args.pairs else config.train.preference.pairs
        ),
        grpo=config.train.grpo.replace(
            tasks=tuple(args.grpo_tasks),
            num_generations=args.num_generations,
            max_completion_length=args.max_completion_length,
            temperature=args.temperature,
        ),
    )
    started = time.perf_counter()
    result = run_training(config.replace(train=train), out_dir=out, data_dir=data_dir(sft), log=_log)
    return {"train_seconds": round(time.perf_counter() - started, 1), "final_metrics": result.manifest["final_metrics"]}


def evaluate(
    run: Path, name: str, work: Path, baseline: dict[str, Path] | None, replies: Path | None
) -> dict[str, Path]:
    """Merge `run`, serve it as the storefront does, evaluate the test split, the injection suite and
    the `replies` suite when given; a suite evaluated already in `work` is kept."""
    from shoptune.config import load_config
    from shoptune.core.net import free_port
    from shoptune.demo.pipeline import evaluate_endpoint
    from shoptune.serve.vllm_server import VllmServer
    from shoptune.train.merge import merge_run

    config = load_config(run / "config.yaml")
    evaluated = suites(run, replies)
    reports = {suite: work / name / f"eval-{suite}" for suite in evaluated}
    missing = [suite for suite in evaluated if not (reports[suite] / "report.json").is_file()]
    if not missing:
        return reports  # evaluated already in this work folder (the SFT baseline of an earlier variant)
    merged = work / name / "merged"
    if not (merged / "shoptune-merge.json").is_file():
        merge_run(run, merged, log=_log)
    identity = {"name": f"{config.name}-{name}-merged", "directory": str(merged), "merged_from": str(run)}
    with VllmServer(merged, config.serve, "shop", free_port(), log_path=work / name / "vllm.log") as server:
        for suite in missing:
            data, task = evaluated[suite]
            evaluate_endpoint(
                config, data, server.base_url, server.served_name, structured=True, out_dir=reports[suite],
                identity=identity, log=_log, task_name=task, baseline=baseline[suite] if baseline else None,
            )  # fmt: skip
    return reports


def _user_turns(record: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in record["messages"] if m["role"] == "user")


def held_out(replies: Path, sft: Path, work: Path) -> Path:
    """`replies` without the records whose user turns the SFT run trained on, so the suite is unseen."""
    seen = {_user_turns(json.loads(line)) for line in (data_dir(sft) / "train.jsonl").open(encoding="utf-8")}
    kept = [line for line in replies.open(encoding="utf-8") if _user_turns(json.loads(line)) not in seen]
    out = work / "replies-held-out.jsonl"
    work.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(kept), encoding="utf-8")
    _log(f"replies suite: {len(kept)} records not seen in training, from {replies}")
    return out


def _metric(report: Path, metric: str) -> float | None:
    return json.loads((report / "report.json").read_text(encoding="utf-8"))["metrics"].get(metric)


def rows(sft: dict[str, Path], tuned: dict[str, dict[str, Path]]) -> list[dict[str, Any]]:
    """One row per (metric, suite): SFT's value, and each run's value, difference, interval, verdict."""
    table = []
    for metric, suite in SHOWN + (REPLY_ROWS if "replies" in sft else ()):
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


def markdown(table: list[dict[str, Any]], names: list[str], baseline: str = "SFT", prefix: str = "SFT + ") -> str:
    """The table in Markdown: `baseline`'s column, then each run's (headed `prefix` + its name)."""
    runs = " | ".join(f"{prefix}{n} (difference [95% CI], verdict)" for n in names)
    head = f"| metric (suite) | {baseline} | {runs} |"
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
    parser.add_argument("--pairs", type=Path, default=None, help="a pairs folder (default: rule-made from the corpus)")
    parser.add_argument("--replies-test", type=Path, default=None, help="a JSONL of reply records: a larger suite")
    args = parser.parse_args()
    if not (args.sft / "final" / "adapter").is_dir():
        raise SystemExit(f"{args.sft} is not a finished SFT run (run scripts/demo.sh, or pass --sft)")
    work = WORK / "preference"
    started = time.perf_counter()
    if args.replies_test:
        args.replies_test = held_out(args.replies_test, args.sft, work)
    print("== SFT (the baseline): merge, serve, evaluate", flush=True)
    sft_reports = evaluate(args.sft, "sft", work, None, args.replies_test)
    variant = f"{args.method}-lr{args.learning_rate:g}" + (f"-sft{args.sft_weight:g}" if args.sft_weight else "")
    if args.pairs:
        variant += f"-pairs-{args.pairs.name}"
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
        else:  # trained by an earlier invocation into this work folder: its manifest has the figures
            training[name] = {"trained_earlier": True, "final_metrics": run_manifest(out)["final_metrics"]}
        tuned[name] = evaluate(out, name, work, sft_reports, args.replies_test)
    table = rows(sft_reports, tuned)
    print(markdown(table, list(tuned)), flush=True)
    write_result(
        f"quality/preference_quality-{variant}",
        {
            "sft_run": str(args.sft),
            "settings": {"runs": runs, **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}},
            "training": training,
            "table": table,
            "markdown": markdown(table, list(tuned)),
            "wall_seconds": round(time.perf_counter() - started, 1),
        },
    )


if __name__ == "__main__":
    main()
