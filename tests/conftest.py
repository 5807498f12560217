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


@pytest.fixture(scope="session")
def tiny_qwen_dir() -> Path:
    """tiny-qwen2.5 prepared in the shared cache ($SHOPTUNE_HOME), built once per machine."""
    return prepare_model("tiny-qwen2.5")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    return prepare_model("smollm2-135m-instruct")


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
