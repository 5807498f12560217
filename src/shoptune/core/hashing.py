"""Content hashes used for checksums, provenance and skip-if-unchanged logic."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (model shards are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_checksums(folder: Path, *, exclude: frozenset[str] = frozenset()) -> dict[str, dict[str, int | str]]:
    """`{relative path: {"sha256": ..., "bytes": ...}}` for every file under `folder`, sorted."""
    folder = Path(folder)
    records: dict[str, dict[str, int | str]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative in exclude:
            continue
        records[relative] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return records
