"""The reported-metric registry: every figure it lists is produced by the scorer, its direction is
read by the gates and the comparisons, and a failed record is marked the right way round."""

from __future__ import annotations

import json
from pathlib import Path

from shoptune.config import load_config
from shoptune.eval.gate import check_gates
from shoptune.eval.metrics.reported import (
    HEADLINE,
    MEANS,
    REPORTED,
    SUMMARY,
    TASK_HEADLINE,
    lower_is_better,
    score_marks_failure,
)
from shoptune.eval.scoring import aggregate, score_samples
from shoptune.shop.reading import read_records

NEEDS_A_JUDGE = {"judge_score"}


def test_every_reported_metric_is_produced_on_a_real_corpus(tiny_data: Path) -> None:
    records = read_records(tiny_data / "test.jsonl")
    gold = {record["id"]: record["messages"][-1]["content"] for record in records}
    metrics = aggregate(score_samples(records, gold), bootstrap_samples=0, seed=0)["metrics"]
    missing = sorted(set(REPORTED) - set(metrics) - NEEDS_A_JUDGE)
    assert not missing, f"listed in the registry but never computed: {missing}"
    assert {task for task in TASK_HEADLINE} == {record["task"] for record in records}
    assert set(SUMMARY) <= set(HEADLINE) and set(MEANS) <= set(REPORTED)


def test_directions_cover_field_views_and_rates() -> None:
    assert lower_is_better("degenerate_rate") and lower_is_better("hallucinated_product_rate")
    assert lower_is_better("field_invented_rate.color")
    assert not lower_is_better("field_recall.color") and not lower_is_better("exact_match_rate")
    assert score_marks_failure("degenerate", 1.0) and not score_marks_failure("degenerate", 0.0)
    assert score_marks_failure("invented:color", 1.0) and not score_marks_failure("invented:color", 0.0)
    assert score_marks_failure("exact_match", 0.0) and not score_marks_failure("exact_match", 1.0)
    assert not score_marks_failure("f1_fn", 0.0) and not score_marks_failure("exact_match", None)


def _report_folder(folder: Path, metrics: dict[str, object], gates: dict[str, float]) -> Path:
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"metrics": metrics}), encoding="utf-8")
    (folder / "config.yaml").write_text(f"eval:\n  gates: {json.dumps(gates)}\n", encoding="utf-8")
    return folder


def test_a_lower_is_better_gate_is_a_ceiling(tmp_path: Path) -> None:
    gates = {"degenerate_rate": 0.01, "exact_match_rate": 0.8, "field_invented_rate.color": 0.05}
    clean = {"degenerate_rate": 0.0, "exact_match_rate": 0.9, "field_invented_rate": {"color": 0.0}}
    assert check_gates(_report_folder(tmp_path / "clean", clean, gates)) == []
    worse = {"degenerate_rate": 0.2, "exact_match_rate": 0.7, "field_invented_rate": {"color": 0.3}}
    looping = _report_folder(tmp_path / "looping", worse, gates)
    failures = check_gates(looping, config=load_config(looping / "config.yaml"))
    assert failures == [
        "degenerate_rate: 0.2000 is above the ceiling 0.01 (lower is better)",
        "exact_match_rate: 0.7000 is below the threshold 0.8",
        "field_invented_rate.color: 0.3000 is above the ceiling 0.05 (lower is better)",
    ]
