"""Atomic writes: a failure never leaves a half-written artefact or a stray temp file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shoptune.core.atomic import atomic_directory, atomic_write_json, atomic_write_text
from shoptune.core.provenance import git_commit, provenance


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "a" / "report.json"
    atomic_write_json(target, {"n": 1, "名": "值"})
    atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_atomic_directory_keeps_the_old_copy_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(RuntimeError), atomic_directory(target) as staging:
        (staging / "weights").write_text("half")
        raise RuntimeError("crash")
    assert (target / "weights").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_directory(target) as staging:
        (staging / "weights").write_text("v2")
    assert (target / "weights").read_text() == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_provenance_names_commit_and_versions() -> None:
    record = provenance()
    assert set(record) == {"git", "packages", "machine", "created_at"}
    assert "torch" in record["packages"] and "transformers" in record["packages"]
    assert record["machine"]["cpu_count"] >= 1


def test_git_commit_dirty_unless_only_ignored_paths_changed(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "bench.json").write_text("{}")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    assert git_commit(repo=tmp_path)["dirty"] is False
    (tmp_path / "results" / "bench.json").write_text('{"speedup": 2}')
    assert git_commit(repo=tmp_path)["dirty"] is True
    assert git_commit(ignore=("results",), repo=tmp_path)["dirty"] is False
    (tmp_path / "train.py").write_text("x = 2\n")
    assert git_commit(ignore=("results",), repo=tmp_path)["dirty"] is True


AUTOGROUPS_FILE = Path("/proc/sys/kernel/sched_autogroup_enabled")
AUTOGROUPS = AUTOGROUPS_FILE.is_file() and AUTOGROUPS_FILE.read_text().strip() == "1"
GRANDCHILD = """
import os, sys, time
from pathlib import Path
from shoptune.core.process import ChildProcess
os.nice(3)
child = ChildProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], Path(sys.argv[1])).start()
group = Path(f"/proc/{child.pid}/autogroup")
print(os.getpriority(os.PRIO_PROCESS, child.pid), group.read_text().split()[-1] if group.exists() else "-")
child.stop()
"""


def test_a_child_runs_at_its_parents_niceness_and_so_does_its_session(tmp_path: Path) -> None:
    # its own session's CPU group included: without it the group would be at niceness 0
    done = subprocess.run(
        [sys.executable, "-c", GRANDCHILD, str(tmp_path / "grandchild.log")], capture_output=True, text=True, check=True
    )
    own, group = done.stdout.split()
    assert own == "3" and group == ("3" if AUTOGROUPS else "-")
