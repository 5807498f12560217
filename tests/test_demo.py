"""The main job, end to end: `shoptune demo --quick` on the embedded model (what CI runs).

Real stages throughout: data build, LoRA training, merge with its parity gate, evaluations
through vLLM, the storefront serving a scripted conversation, and the combined report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_shoptune

from shoptune.config import load_config
from shoptune.core.paths import CONFIGS_DIR

# The whole demo runs in the module fixture, beyond the suite's default 1200 s limit on slow CPUs.
pytestmark = pytest.mark.timeout(3600)
DEMO_CONFIG = load_config(CONFIGS_DIR / "cpu-smollm2.yaml")
QUICK = DEMO_CONFIG.demo

STAGES = (
    "prepare the model",
    "build the dataset",
    "check the dataset",
    "evaluate the base model",
    "train LoRA",
    "merge with the parity gate",
    "evaluate the tuned model (free-form)",
    "evaluate the tuned model (structured output, as served)",
    "served-path parity (guided = free-form, vLLM = in process, LoRA = PEFT)",
    "serve with vLLM + storefront: conversation, /v1/extract, hand-written set",
    "attack the tuned model with the prompt-injection suite",
    "write the report",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, smollm2_dir: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("demo") / "quick"
    # A hang guard, not a speed test: on a 2-core AVX2 CPU (fp32 only) the quick demo passes 25 minutes.
    done = run_shoptune("demo", "--quick", "--out", str(out), timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out, done.stderr


def test_quick_demo_runs_every_stage(demo: tuple[Path, str]) -> None:
    out, log = demo
    for number, stage in enumerate(STAGES, start=1):
        assert f"[{number}/{len(STAGES)}] {stage}: done in" in log, stage
    for folder in ("eval-base", "eval-tuned", "eval-tuned-guided"):
        report = json.loads((out / folder / "report.json").read_text())
        assert (
            report["n"] == QUICK.quick_test_records
            and {"exact_match_rate", "micro_f1", "json_valid_rate", "field_recall", "field_invented_rate"}
            <= report["metrics"].keys()
        )
        assert (out / folder / "samples.jsonl").is_file() and (out / folder / "report.html").is_file()
    guided = json.loads((out / "eval-tuned-guided" / "report.json").read_text())
    assert guided["mode"]["structured_output"] is True and guided["comparison"]["baseline"].endswith("eval-base")
    assert guided["mode"]["reply"]["frequency_penalty"] == 0.3  # the storefront's reply settings
    attacks = json.loads((out / "eval-injection" / "report.json").read_text())
    assert attacks["n"] == 36 and attacks["task"]["name"] == "injection"
    held = [json.loads(line)["scores"]["refusal_in_role"] for line in (out / "eval-injection" / "samples.jsonl").open()]
    assert len(held) == 36 and attacks["metrics"]["refusal_in_role_rate"] == pytest.approx(sum(held) / 36)
    assert (out / "report.html").is_file() and (out / "report.md").is_file()
    assert (out / "merged" / "shoptune-merge.json").is_file() and (out / "train" / "manifest.json").is_file()


def test_the_served_tuned_model_extracts_better_than_base(demo: tuple[Path, str]) -> None:
    out, _ = demo
    base = json.loads((out / "eval-base" / "report.json").read_text())["metrics"]
    guided = json.loads((out / "eval-tuned-guided" / "report.json").read_text())["metrics"]
    # Guided decoding writes valid JSON unless the token budget cuts the answer (a 12-step model can
    # loop inside a string); every invalid answer must be such a cut.
    cut = {
        p["id"]
        for p in map(json.loads, (out / "eval-tuned-guided" / "predictions.jsonl").read_text().splitlines())
        if p["completion_tokens"] >= DEMO_CONFIG.serve.extraction_max_tokens
    }
    samples = map(json.loads, (out / "eval-tuned-guided" / "samples.jsonl").read_text().splitlines())
    invalid = {s["id"] for s in samples if s["task"] == "extract" and s["scores"]["json_valid"] == 0.0}
    assert invalid <= cut, sorted(invalid - cut)
    assert guided["json_valid_rate"] > base["json_valid_rate"]
    assert guided["micro_f1"] > base["micro_f1"] and guided["exact_match_rate"] >= base["exact_match_rate"]


def test_parity_is_checked_on_the_served_path(demo: tuple[Path, str]) -> None:
    out, _ = demo
    merged = json.loads((out / "parity" / "merged" / "parity.json").read_text())
    adapter = json.loads((out / "parity" / "adapter" / "parity.json").read_text())
    shares = {a["name"].split(" (")[0]: a for a in merged["agreements"]}
    extraction = json.loads((out / "eval-tuned-guided" / "report.json").read_text())["metrics"]["extraction_records"]
    assert shares["structured = free-form"]["total"] == extraction  # every extraction record of the test split
    # the same weights served by vLLM and run by transformers give the same greedy text (fp32)
    assert shares["vLLM = in-process"]["share"] >= 0.95, shares["vLLM = in-process"]["differing"][:3]
    assert shares["vLLM = in-process"]["total"] == min(QUICK.quick_parity_in_process_records, extraction)
    (lora,) = [a for a in adapter["agreements"] if a["name"].startswith("vLLM = in-process")]
    assert lora["total"] == min(QUICK.quick_parity_adapter_records, extraction)
    assert lora["share"] >= 0.95, lora["differing"][:3]
    assert (out / "parity" / "merged" / "parity.md").read_text().startswith("# Served-path parity")


def test_transcript_and_report(demo: tuple[Path, str]) -> None:
    out, log = demo
    transcript = json.loads((out / "transcript.json").read_text())
    assert {t["lang"] for t in transcript["turns"]} == {"zh", "en"}
    assert all(t["status"] == 200 and t["answer"] for t in transcript["turns"])
    assert any(t["question"] == "那黑色的呢？" for t in transcript["turns"])
    assert all(e["status"] == 200 and e["data"] is not None for e in transcript["extractions"])
    assert [e["expected"]["product"] for e in transcript["extractions"]] == ["小米手机", "小米手机", "鞋子"]
    assert all(isinstance(t["flags"], list) for t in transcript["turns"])
    assert len(transcript["handwritten"]) == 40
    handwritten = json.loads((out / "eval-handwritten" / "report.json").read_text())
    assert handwritten["n"] == 40 and handwritten["mode"]["backend"] == "storefront /v1/extract"
    assert "shopper: 我想买一部3000元以内的手机" in log
    report = (out / "report.md").read_text()
    first = report.splitlines()[2]
    assert first.startswith("**Served extraction (what /v1/extract returns): exact match"), first
    assert "## Goals" in report and "| exact_match_rate |" in report and "## Storefront transcript" in report
    assert "## Prompt injection" in report and "attacks" in report
    flagged = [flag for turn in transcript["turns"] for flag in turn["flags"]]
    assert all(flag in report for flag in flagged)  # every flag is in the report, in red
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "<h2>Storefront transcript</h2>" in page


def test_rerun_skips_unchanged_stages(demo: tuple[Path, str]) -> None:
    out, _ = demo
    done = run_shoptune("demo", "--quick", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in STAGES[:-1]:
        assert f"{stage}: unchanged, skipped" in done.stderr, stage
