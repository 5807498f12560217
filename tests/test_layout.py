"""The repo layout users asked for, without shadowing Hugging Face's `datasets`."""

from __future__ import annotations

import subprocess
import sys

import shoptune.eval
import shoptune.serve
import shoptune.train
from shoptune.core.paths import DATASETS_DIR, REPO_ROOT


def test_top_level_folders_exist() -> None:
    for name in ("train", "eval", "serve", "datasets", "configs", "tests", "pyproject.toml"):
        assert (REPO_ROOT / name).exists(), name


def test_stage_folders_are_shoptune_subpackages() -> None:
    assert shoptune.train.__file__ == str(REPO_ROOT / "train" / "__init__.py")
    assert shoptune.eval.__file__ == str(REPO_ROOT / "eval" / "__init__.py")
    assert shoptune.serve.__file__ == str(REPO_ROOT / "serve" / "__init__.py")


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
