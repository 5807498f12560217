"""`shoptune eval gate DIR [--baseline DIR]`: the CI verdict on a report.

Fails (exit 1, one line per failure) when a metric is on the wrong side of its threshold
(`eval.gates` in the report's own resolved config, or in --config: a floor, or a ceiling for a
lower-is-better metric such as `degenerate_rate`), when a gated metric was not measured, or, with
a baseline, when a metric is worse than the baseline beyond its 95% paired-bootstrap interval.
"""

from __future__ import annotations

import json
from pathlib import Path

from shoptune.config import ShoptuneConfig, load_config
from shoptune.core.errors import BadInputError
from shoptune.eval.metrics.reported import lower_is_better
from shoptune.eval.runner import compare
from shoptune.eval.scoring import ScoredSample


def _report(directory: Path) -> dict:
    path = Path(directory) / "report.json"
    if not path.is_file():
        raise BadInputError(f"{directory} has no report.json (is it an eval report folder?)")
    return json.loads(path.read_text(encoding="utf-8"))


def _metric(report: dict, name: str) -> float | None:
    value: object = report["metrics"]
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def check_gates(report_dir: Path, *, config: ShoptuneConfig | None = None, baseline: Path | None = None) -> list[str]:
    report = _report(report_dir)
    config = config or load_config(Path(report_dir) / "config.yaml")
    failures = []
    for name, threshold in sorted(config.eval.gates.items()):
        value = _metric(report, name)
        if value is None:
            failures.append(f"{name}: not measured in {report_dir} (gate {threshold})")
        elif (ceiling := lower_is_better(name)) and value > threshold:
            failures.append(f"{name}: {value:.4f} is above the ceiling {threshold} (lower is better)")
        elif not ceiling and value < threshold:
            failures.append(f"{name}: {value:.4f} is below the threshold {threshold}")
    if baseline is not None:
        _report(baseline)
        samples = [
            ScoredSample({"id": row["id"], "task": row["task"]}, row["output"], row["scores"])
            for row in map(json.loads, (Path(report_dir) / "samples.jsonl").read_text().splitlines())
        ]
        comparison = compare(samples, baseline, bootstrap_samples=config.eval.bootstrap_samples, seed=config.eval.seed)
        for name, row in comparison["metrics"].items():
            if row["verdict"] == "worse":
                low, high = row["interval"]
                failures.append(
                    f"{name}: worse than baseline {baseline} ({row['current']:.4f} vs {row['baseline']:.4f}, "
                    f"difference {row['difference']:+.4f}, 95% interval [{low:+.4f}, {high:+.4f}])"
                )
    return failures
