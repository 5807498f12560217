"""`shoptune eval parity` as a CI job runs it: vLLM against transformers in process, on tiny-qwen2.5
(random weights, Qwen2.5's tokenizer and template), through the session's shared vLLM server
(`--endpoint`; the demo's parity stage starts its own servers through the same `ParityServers`).

A model that never learned the answer's form is what the gate exists to catch: guided decoding
forces JSON that free-form generation never writes, so the gate must fail, exit 1 and name the
records. (That structured = free-form for a model trained on the one form is shown on SmolLM2 by
the quick demo, tests/test_demo.py; tiny-qwen2.5 cannot learn the form, see the README.)
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import invoke_shoptune

from shoptune.core.paths import REPO_ROOT

RECORDS = 6


def test_parity_gate_fails_a_model_that_never_learned_the_form(tiny_vllm, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "parity"
    done = invoke_shoptune(
        "eval",
        "parity",
        "--config",
        "configs/tiny-qwen.yaml",
        "--model",
        "tiny-qwen2.5",
        "--data",
        str(tiny_data / "test.jsonl"),
        "--limit",
        str(RECORDS),
        "--out",
        str(out),
        "--endpoint",
        tiny_vllm.server.base_url,
        "--model-name",
        "shop",
        "--set",
        f"serve.dtype={tiny_vllm.DTYPE}",  # what the shared server runs: it holds both comparisons
    )
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert "using the running server at" in done.stderr and "starting vLLM" not in done.stderr
    report = json.loads((out / "parity.json").read_text())
    assert report["passed"] is False and report["records"] == RECORDS and report["git"]["commit"]
    by_name = {a["name"].split(" (")[0]: a for a in report["agreements"]}
    structured = by_name["structured = free-form"]
    assert structured["total"] == RECORDS and structured["share"] < 0.98 and not structured["passed"]
    assert {d["id"] for d in structured["differing"]} <= {json.loads(line)["id"] for line in _lines(tiny_data)}
    assert by_name["vLLM = in-process"]["total"] == RECORDS
    assert any(line.startswith("FAIL structured = free-form") for line in done.stdout.splitlines()), done.stdout
    page = (out / "parity.md").read_text()
    assert page.startswith("# Served-path parity: **FAILED**") and structured["differing"][0]["id"] in page


def test_an_endpoint_needs_its_model_name(tmp_path: Path) -> None:
    done = invoke_shoptune(
        "eval",
        "parity",
        "--model",
        "tiny-qwen2.5",
        "--data",
        str(REPO_ROOT / "datasets" / "eval" / "handwritten_extraction.jsonl"),
        "--out",
        str(tmp_path / "p"),
        "--endpoint",
        "http://127.0.0.1:9/v1",
    )
    assert done.returncode == 2 and "--endpoint needs --model-name" in done.stderr
    assert not (tmp_path / "p").exists()


def _lines(data_dir: Path) -> list[str]:
    return (data_dir / "test.jsonl").read_text(encoding="utf-8").splitlines()
