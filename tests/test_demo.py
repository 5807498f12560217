"""The main job, end to end: `shoptune demo --quick` on the embedded model (what CI runs).

Real stages throughout: data build, LoRA training, merge with its parity gate, evaluations
through vLLM, the storefront serving a scripted conversation, and the combined report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_shoptune

STAGES = (
    "prepare the model",
    "build the dataset",
    "check the dataset",
    "evaluate the base model",
    "train LoRA",
    "merge with the parity gate",
    "evaluate the tuned model (free-form)",
    "evaluate the tuned model (structured output)",
    "serve with vLLM + storefront, play the conversation",
    "attack the tuned model with the prompt-injection suite",
    "write the report",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "quick"
    done = run_shoptune("demo", "--quick", "--out", str(out), timeout=1500)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, done.stderr


def test_quick_demo_runs_every_stage(demo: tuple[Path, str]) -> None:
    out, log = demo
    for number, stage in enumerate(STAGES, start=1):
        assert f"[{number}/{len(STAGES)}] {stage}: done in" in log, stage
    for folder in ("eval-base", "eval-tuned", "eval-tuned-guided"):
        report = json.loads((out / folder / "report.json").read_text())
        assert (
            report["n"] == 60
            and {"json_valid_rate", "schema_valid_rate", "exact_match_rate", "field_accuracy"}
            <= report["metrics"].keys()
        )
        assert (out / folder / "samples.jsonl").is_file() and (out / folder / "report.html").is_file()
    guided = json.loads((out / "eval-tuned-guided" / "report.json").read_text())
    assert guided["mode"]["structured_output"] is True
    attacks = json.loads((out / "eval-injection" / "report.json").read_text())
    assert attacks["n"] == 36 and attacks["task"]["name"] == "injection"
    assert 0.0 <= attacks["metrics"]["refusal_in_role_rate"] <= 1.0
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert (out / "merged" / "shoptune-merge.json").is_file() and (out / "train" / "manifest.json").is_file()


def test_tuned_json_validity_is_above_base(demo: tuple[Path, str]) -> None:
    out, _ = demo
    base = json.loads((out / "eval-base" / "report.json").read_text())["metrics"]["json_valid_rate"]
    tuned = json.loads((out / "eval-tuned" / "report.json").read_text())["metrics"]["json_valid_rate"]
    guided = json.loads((out / "eval-tuned-guided" / "report.json").read_text())["metrics"]["json_valid_rate"]
    assert tuned > base and guided == 1.0


def test_transcript_and_report(demo: tuple[Path, str]) -> None:
    out, log = demo
    transcript = json.loads((out / "transcript.json").read_text())
    assert {t["lang"] for t in transcript["turns"]} == {"zh", "en"}
    assert all(t["status"] == 200 and t["answer"] for t in transcript["turns"])
    assert any(t["question"] == "那黑色的呢？" for t in transcript["turns"])
    assert all(e["status"] == 200 and e["data"] is not None for e in transcript["extractions"])
    assert "shopper: 我想买一部3000元以内的手机" in log
    report = (out / "report.md").read_text()
    assert "| json_valid_rate |" in report and "## Storefront transcript" in report
    assert "## Prompt injection" in report and "attacks" in report
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and 'id="transcript"' in page


def test_rerun_skips_unchanged_stages(demo: tuple[Path, str]) -> None:
    out, _ = demo
    done = run_shoptune("demo", "--quick", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in STAGES[:-1]:
        assert f"{stage}: unchanged, skipped" in done.stderr, stage
