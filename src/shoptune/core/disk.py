"""Telling "the disk is full" apart from other write failures.

Libraries report a full disk in different ways: `OSError(ENOSPC)` from plain writes,
`RuntimeError("... file write failed")` from `torch.save`, `SafetensorError(... StorageFull ...)`
from safetensors. Training must turn all of them into one clear message instead of a traceback.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
DISK_FULL_TEXTS = ("No space left on device", "StorageFull", "Disk quota exceeded", "File too large")
NEARLY_FULL_BYTES = 1 << 20
"""A write error with less than this free where it was writing is blamed on space."""


def _chain(error: BaseException):
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def disk_is_full(error: BaseException, folder: Path) -> bool:
    """Whether `error` (or what caused it) means the filesystem holding `folder` ran out of space."""
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in DISK_FULL_ERRNOS:
            return True
        if any(text in str(link) for text in DISK_FULL_TEXTS):
            return True
    if "write" in str(error).lower():
        try:
            return shutil.disk_usage(_existing(folder)).free < NEARLY_FULL_BYTES
        except OSError:
            return False
    return False


def disk_full_detail(error: BaseException) -> str:
    for link in _chain(error):
        if isinstance(link, OSError) and link.errno in DISK_FULL_ERRNOS:
            return f"{link.strerror}: {link.filename}" if link.filename else str(link.strerror)
    return str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__


def _existing(folder: Path) -> Path:
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder
