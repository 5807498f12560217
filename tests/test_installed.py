"""shoptune installed from its wheel, outside a checkout, on a shop folder anywhere: what works there
(a shop's check, a data build with a config of one's own) and what says clearly that it needs a
checkout (the example shop, which ships in the checkout's datasets/, not in the wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from shoptune.core.paths import REPO_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's files, unpacked where no checkout is (the environment's dependencies serve it)."""
    wheels, site = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("shoptune-*.whl")
    zipfile.ZipFile(wheel).extractall(site)
    assert not (site / "datasets").exists() and not (site / "configs").exists()
    return site


def _shoptune(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "shoptune", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_shop_folder_anywhere_is_checked_and_built(installed: Path, tmp_path: Path) -> None:
    shop = REPO_ROOT / "shops" / "voltedge"
    # no checkout, so no default config file: the typed defaults, and the folder checked is the shop
    checked = _shoptune(installed, tmp_path, "shop", "check", str(shop))
    assert checked.returncode == 0 and "warranty_claim" in checked.stdout, checked.stderr[-2000:]
    config = tmp_path / "mine.yaml"
    config.write_text((REPO_ROOT / "configs" / "tiny-qwen.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    built = _shoptune(
        installed, tmp_path, "data", "build", "--config", str(config), "--set", f"shop.dir={shop}",
        "--no-length-limit", "--out", "data",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    assert (tmp_path / "data" / "train.jsonl").is_file()


def test_what_needs_a_checkout_says_so(installed: Path, tmp_path: Path) -> None:
    no_shop = _shoptune(installed, tmp_path, "data", "build", "--no-length-limit", "--out", "data")
    assert no_shop.returncode == 2 and "ships only in a checkout; set shop.dir" in no_shop.stderr
    init = _shoptune(installed, tmp_path, "shop", "init", "myshop")
    assert init.returncode == 2 and "the example shop is not here" in init.stderr
    assert not (tmp_path / "myshop").exists()
