"""`eval run` / `eval score`: predictions -> scores -> report, with provenance.

shoptune eval run --data runs/data/cpu-smollm2/test.jsonl --model smollm2-135m-instruct --out runs/eval-base
shoptune eval run --data test.jsonl --endpoint http://127.0.0.1:8000/v1 --model-name shop --structured --out runs/e
shoptune eval score --data test.jsonl --predictions predictions.jsonl --out runs/eval-saved
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.config import ShoptuneConfig, write_resolved_config
from shoptune.config.loader import to_dict
from shoptune.core.atomic import atomic_write_text
from shoptune.core.errors import BadInputError
from shoptune.core.hashing import sha256_file
from shoptune.core.provenance import provenance
from shoptune.eval.backends import Prediction
from shoptune.eval.bootstrap import paired_difference, verdict
from shoptune.eval.metrics.reported import FIELD_VIEWS, MEANS, lower_is_better
from shoptune.eval.report import write_report
from shoptune.eval.scoring import ScoredSample, aggregate, breakdowns, score_samples
from shoptune.eval.tasks import EvalTask
from shoptune.shop.check import iter_lines, parse_json_line
from shoptune.shop.reading import read_records

Log = Callable[[str], None]


def load_predictions(path: Path) -> dict[str, str]:
    """`{"id": ..., "output": "raw model text"}` per line; every problem listed with its line."""
    predictions: dict[str, str] = {}
    problems = []
    for number, raw, file_problem in iter_lines(Path(path)):
        if file_problem:
            problems.append(f"{path}: {file_problem}")
            continue
        assert raw is not None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"{path}:{number}: not valid UTF-8")
            continue
        if not text.strip():
            continue
        value, error = parse_json_line(text)
        if error:
            problems.append(f"{path}:{number}: {error}")
        elif not isinstance(value, dict) or not isinstance(value.get("id"), str):
            problems.append(f"{path}:{number}: expected an object with a string `id`")
        elif not isinstance(value.get("output"), str):
            problems.append(f"{path}:{number}: `output` must be a string")
        elif value["id"] in predictions:
            problems.append(f"{path}:{number}: duplicate id {value['id']!r}")
        else:
            predictions[value["id"]] = value["output"]
    if problems:
        raise BadInputError("cannot read predictions:\n" + "\n".join(f"  {p}" for p in problems[:20]))
    return predictions


def select_records(data: Path, task: EvalTask, limit: int | None) -> list[dict[str, Any]]:
    records = [r for r in read_records(data) if r["task"] in task.record_tasks]
    if not records:
        raise BadInputError(f"{data} has no records of the tasks {list(task.record_tasks)} that {task.name} evaluates")
    return records[:limit] if limit else records


@dataclass(frozen=True)
class EvalJob:
    """One evaluation: the config, the task, the eval set and its selected records, the baseline
    report to pair against (if any) and the folder the report goes to."""

    config: ShoptuneConfig
    task: EvalTask
    data: Path
    records: Sequence[dict[str, Any]]
    out_dir: Path
    baseline: Path | None = None

    @classmethod
    def select(
        cls,
        config: ShoptuneConfig,
        task: EvalTask,
        data: Path,
        out_dir: Path,
        *,
        baseline: Path | None = None,
        limit: int | None = None,
    ) -> EvalJob:
        """The job over `data`'s records of the task's kinds (the first `limit` of them)."""
        return cls(config, task, data, select_records(data, task, limit), out_dir, baseline)


def compare(samples: Sequence[ScoredSample], baseline_dir: Path, *, bootstrap_samples: int, seed: int) -> dict:
    """Paired bootstrap of each metric against a baseline report on the same records."""
    baseline_file = Path(baseline_dir) / "samples.jsonl"
    if not baseline_file.is_file():
        raise BadInputError(f"--baseline {baseline_dir} has no samples.jsonl (is it an eval report folder?)")
    base_scores = {row["id"]: row["scores"] for row in map(json.loads, baseline_file.read_text().splitlines())}
    missing = [s.record["id"] for s in samples if s.record["id"] not in base_scores]
    if missing:
        raise BadInputError(
            f"baseline {baseline_dir} lacks {len(missing)} of these records (e.g. {missing[0]}); "
            "compare reports on the same data"
        )
    rows = {}
    field_keys = {
        f"{view.name}.{key.split(':', 1)[1]}": key
        for view in FIELD_VIEWS.values()
        if view.compared
        for key in sorted({k for s in samples for k in s.scores if k.startswith(f"{view.score_prefix}:")})
    }
    for name, key in {**MEANS, **field_keys}.items():
        pairs = [(s.scores.get(key), base_scores[s.record["id"]].get(key)) for s in samples]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            continue
        current, baseline = zip(*pairs, strict=True)
        difference, interval = paired_difference(current, baseline, samples=bootstrap_samples, seed=seed)
        rows[name] = {
            "current": sum(current) / len(current),
            "baseline": sum(baseline) / len(baseline),
            "difference": difference,
            "interval": interval,
            "verdict": verdict(difference, interval, higher_is_better=not lower_is_better(name)),
            "n": len(pairs),
        }
    return {"baseline": str(baseline_dir), "metrics": rows}


def build_report(
    job: EvalJob, predictions: Sequence[Prediction] | dict[str, str], model: dict[str, Any], mode: dict[str, Any]
) -> tuple[dict[str, Any], list[ScoredSample]]:
    """Score the predictions and assemble report.json's content: metrics with intervals, breakdowns,
    latency, the paired comparison with the baseline, and the provenance of model, data and config."""
    config, task, data, records, baseline = job.config, job.task, job.data, job.records, job.baseline
    outputs = predictions if isinstance(predictions, dict) else {p.id: p.output for p in predictions}
    samples = score_samples(records, outputs, task.metrics)
    eval_config = config.eval
    judged = None
    if eval_config.judge_endpoint:
        from shoptune.eval.judge import judge

        judged = judge(records, outputs, eval_config)
        for sample in samples:
            if sample.record["id"] in judged["scores"]:
                sample.scores["judge_score"] = judged["scores"][sample.record["id"]]
    summary = aggregate(samples, bootstrap_samples=eval_config.bootstrap_samples, seed=eval_config.seed)
    if judged is not None:
        summary["judge"] = {
            "endpoint": eval_config.judge_endpoint,
            "model": eval_config.judge_model,
            "failures": judged["failures"],
            "judged": judged["judged"],
        }
    timed = [] if isinstance(predictions, dict) else list(predictions)
    seconds = sum(p.seconds for p in timed)
    tokens = sum(p.completion_tokens for p in timed)
    report = {
        "n": len(samples),
        **summary,
        **breakdowns(samples, bootstrap_samples=eval_config.bootstrap_samples, seed=eval_config.seed),
        "task": {"name": task.name, "source": task.source, "metrics": list(task.metrics)},
        "mode": mode,
        "model": model,
        "data": {"path": str(data), "sha256": sha256_file(data), "records": len(records)},
        "latency": {
            "mean_seconds": seconds / len(timed) if timed else 0.0,
            "tokens_per_second": tokens / seconds if seconds else 0.0,
            "completion_tokens": tokens,
        },
        "config": to_dict(config),
        **provenance(),
    }
    if baseline is not None:
        report["comparison"] = compare(
            samples, baseline, bootstrap_samples=eval_config.bootstrap_samples, seed=eval_config.seed
        )
    return report, samples


def save(
    out_dir: Path,
    report: dict[str, Any],
    samples: Sequence[ScoredSample],
    config: ShoptuneConfig,
    predictions: Sequence[Prediction] | None,
) -> None:
    if predictions is not None:
        atomic_write_text(
            out_dir / "predictions.jsonl",
            "".join(
                json.dumps(
                    {
                        "id": p.id,
                        "output": p.output,
                        "seconds": round(p.seconds, 4),
                        "completion_tokens": p.completion_tokens,
                    },
                    ensure_ascii=False,
                )
                + "\n"
                for p in predictions
            ),
        )
    write_report(out_dir, report, samples)
    write_resolved_config(config, out_dir, header="shoptune eval")


def score_and_save(
    job: EvalJob, predictions: Sequence[Prediction] | dict[str, str], model: dict[str, Any], mode: dict[str, Any]
) -> dict[str, Any]:
    """Score outputs (from a backend, a predictions file or the storefront) into the job's report
    folder; returns report.json's content."""
    report, samples = build_report(job, predictions, model, mode)
    save(job.out_dir, report, samples, job.config, None if isinstance(predictions, dict) else predictions)
    return report


def timed_generate(backend: Any, records: Sequence[dict[str, Any]], log: Log) -> list[Prediction]:
    from rich.progress import Progress

    started = time.perf_counter()
    with Progress(transient=True) as progress:
        task_id = progress.add_task(f"generating with {backend.name}", total=len(records))
        predictions = backend.generate(records, progress=lambda n: progress.advance(task_id, n))
    log(f"generated {len(records)} answers in {time.perf_counter() - started:.1f} s")
    return predictions


def run_evaluation(
    job: EvalJob, backend: Any, identity: dict[str, Any], *, structured: bool, log: Log
) -> dict[str, Any]:
    """Generate with `backend`, score, and write the report folder; returns report.json's content."""
    predictions = timed_generate(backend, job.records, log)
    mode = {"backend": backend.name, "structured_output": bool(structured), **backend.sampling_settings()}
    return score_and_save(job, predictions, identity, mode)
