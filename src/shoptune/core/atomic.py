"""Write files and folders so that a crash never leaves a half-written artefact behind.

Everything is written under a temporary name in the same folder (same filesystem, so the
final `os.replace` is atomic) and renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600; match what open() would make
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_json(path: Path, payload: Any) -> None:
    """Write `payload` as indented UTF-8 JSON (non-ASCII kept readable), atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


@contextlib.contextmanager
def atomic_directory(final_path: Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `final_path` in one rename.

    On any exception the staging folder is deleted and `final_path` is left as it was.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.", suffix=".partial", dir=final_path.parent))
    os.chmod(staging, 0o777 & ~_current_umask())  # mkdtemp makes 0700; the result should look like mkdir's
    try:
        yield staging
        if final_path.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.", suffix=".old", dir=final_path.parent))
            os.replace(final_path, trash / "old")
            os.replace(staging, final_path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, final_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
