"""Shared fixtures. Every test runs offline: an accidental hub call must fail loudly."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shoptune.core.paths import REPO_ROOT
from shoptune.models import prepare_model

SHOPTUNE_BIN = Path(sys.executable).with_name("shoptune")


MODEL_FIXTURES = {"tiny_qwen_dir", "smollm2_dir", "tiny_data"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that needs a prepared model, directly, through any fixture it uses, or by a fixture name
    it is parametrized with, is `slow`: it loads weights, trains or serves. `pytest -m "not slow"` is
    the fast tier."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        named = {value for value in callspec.params.values() if isinstance(value, str)} if callspec else set()
        if MODEL_FIXTURES & (set(getattr(item, "fixturenames", ())) | named):  # named: getfixturevalue(param)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def tiny_qwen_dir() -> Path:
    """tiny-qwen2.5 prepared in the shared cache ($SHOPTUNE_HOME), built once per machine."""
    return prepare_model("tiny-qwen2.5")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return prepare_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory, tiny_qwen_dir: Path) -> Path:
    """The tiny-qwen config's corpus, built once per test session by the real `data build`."""
    out = tmp_path_factory.mktemp("tiny-data")
    done = run_shoptune("data", "build", "--config", str(REPO_ROOT / "configs" / "tiny-qwen.yaml"), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def run_shoptune(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT, timeout: float = 600):
    """Run the installed `shoptune` console script as a user would, capturing its output."""
    assert shutil.which(str(SHOPTUNE_BIN)), f"{SHOPTUNE_BIN} missing: install with scripts/install.sh"
    return subprocess.run(
        [str(SHOPTUNE_BIN), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the reliability ledger -------------------------------------------------------------
# Reliability and security tests record what they tried and what happened; the table is
# printed at the end of the run and written to runs/reliability.md, and the README's table
# is copied from it (so its numbers come from the tests' own output).

RELIABILITY_ROWS: list[tuple[str, str, int, str]] = []


@pytest.fixture(scope="session")
def ledger():
    def record(area: str, tried: str, cases: int, outcome: str) -> None:
        RELIABILITY_ROWS.append((area, tried, cases, outcome))

    return record


def _ledger_markdown() -> str:
    lines = ["| area | what was tried | cases | what happened |", "|---|---|---:|---|"]
    lines += [f"| {area} | {tried} | {cases} | {outcome} |" for area, tried, cases, outcome in RELIABILITY_ROWS]
    return "\n".join(lines) + "\n"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not RELIABILITY_ROWS:
        return
    table = _ledger_markdown()
    terminalreporter.section("reliability and security ledger")
    terminalreporter.write(table)
    out = REPO_ROOT / "runs" / "reliability.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table, encoding="utf-8")
