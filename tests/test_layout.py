"""The repo layout users asked for, without shadowing Hugging Face's `datasets`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import shoptune.data
import shoptune.demo
import shoptune.eval
import shoptune.serve
import shoptune.train
from shoptune.core.paths import DATASETS_DIR, REPO_ROOT


def test_top_level_folders_exist() -> None:
    for name in ("data", "train", "eval", "serve", "demo", "datasets", "configs", "tests", "pyproject.toml"):
        assert (REPO_ROOT / name).exists(), name


def test_stage_folders_are_shoptune_subpackages() -> None:
    """Each stage folder is `shoptune.<folder>` (through the strict editable install's link tree)."""
    for stage in (shoptune.data, shoptune.train, shoptune.eval, shoptune.serve, shoptune.demo):
        folder = stage.__name__.split(".")[1]
        assert Path(stage.__file__).resolve() == REPO_ROOT / folder / "__init__.py"


def test_the_package_folder_holds_only_what_every_stage_shares() -> None:
    shared = {"cli", "config", "core", "models", "shop", "__pycache__"}
    assert {p.name for p in (REPO_ROOT / "src" / "shoptune").iterdir() if p.is_dir()} <= shared


def test_datasets_folder_holds_no_code() -> None:
    code = [p for p in DATASETS_DIR.rglob("*") if p.suffix in {".py", ".pyc", ".so"}]
    assert code == []


def test_import_datasets_is_hugging_face_even_from_the_repo_root() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import datasets; print(datasets.__file__); print(datasets.load_dataset)"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "site-packages" in done.stdout.splitlines()[0]
