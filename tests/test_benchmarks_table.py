"""The README's benchmark table is the one rendered from benchmarks/results/*.json, and each
results file carries what issue 9 asks of it (a numeric top-level speedup, machine, versions, commit)."""

from __future__ import annotations

import importlib.util
import json

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
    assert {f.stem for f in files} == {"train_throughput", "eval_throughput", "serve_load"}
    for path in files:
        record = json.loads(path.read_text(encoding="utf-8"))
        assert isinstance(record["speedup"], float | int) and record["speedup"] > 0, path
        assert record["machine"]["cores"] and record["machine"]["cpu_model"], path
        assert record["packages"]["torch"] and "commit" in record["git"], path
