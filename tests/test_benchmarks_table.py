"""The README's benchmark table is the one rendered from benchmarks/results/*.json, and each
results file carries what a reader needs to trust it (a numeric top-level speedup, machine, versions, commit)."""

from __future__ import annotations

import importlib.util
import json
import sys

from shoptune.core.paths import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"


def _table_module():
    spec = importlib.util.spec_from_file_location("benchmark_table", BENCHMARKS / "table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_matches_the_results_files() -> None:
    table = _table_module().markdown_table()
    assert table.count("\n") >= 2, "no results in benchmarks/results"
    assert table in (REPO_ROOT / "README.md").read_text(encoding="utf-8"), (
        "README's benchmark table differs from the results files: paste `python benchmarks/table.py`"
    )


def test_results_files_carry_speedup_machine_versions_and_commit() -> None:
    files = sorted((BENCHMARKS / "results").glob("*.json"))
    assert {f.stem for f in files} == {
        "train_throughput",
        "eval_throughput",
        "serve_load",
        "vllm_startup",
        "retrieval_scale",
    }
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(record["speedup"], float | int) and record["speedup"] > 0, path
        assert record["machine"]["cores"] and record["machine"]["cpu_model"], path
        assert record["packages"]["torch"] and "commit" in record["git"], path


def test_readme_ablation_table_matches_the_quality_results() -> None:
    spec = importlib.util.spec_from_file_location("extraction_ablation", BENCHMARKS / "extraction_ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    results = module.load_results()
    assert results["variants"], "no ablation results in benchmarks/results/quality"
    for row in results["variants"].values():
        assert row["provenance"]["git"]["commit"] and row["provenance"]["machine"]["cpu_count"]
    assert module.table(results) in (REPO_ROOT / "README.md").read_text(encoding="utf-8"), (
        "README's ablation table differs from the results: paste `python benchmarks/extraction_ablation.py --table`"
    )


def test_readme_reply_table_matches_the_quality_results() -> None:
    spec = importlib.util.spec_from_file_location("reply_decoding", BENCHMARKS / "reply_decoding.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    results = module.load_results()
    assert results["variants"], "no reply decoding results in benchmarks/results/quality"
    for row in results["variants"].values():
        assert row["provenance"]["git"]["commit"] and 0.0 <= row["degenerate_rate"] <= 1.0
    assert module.table(results) in (REPO_ROOT / "README.md").read_text(encoding="utf-8"), (
        "README's reply table differs from the results: paste `python benchmarks/reply_decoding.py --table`"
    )


def test_readme_task_adapter_table_matches_the_quality_result() -> None:
    result = json.loads((BENCHMARKS / "results" / "quality" / "task_adapters.json").read_text(encoding="utf-8"))
    assert result["git"]["commit"] and result["training"]["extract"]["steps"] > 0
    assert result["markdown"] in (REPO_ROOT / "README.md").read_text(encoding="utf-8"), (
        "README's one-adapter-per-task table differs from benchmarks/results/quality/task_adapters.json"
    )
