"""A model's identity for manifests: where it came from and a digest of its files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shoptune.core.hashing import file_checksums
from shoptune.models.registry import MODEL_MANIFEST_NAME, REGISTRY, read_manifest


def files_digest(files: dict[str, dict[str, Any]]) -> str:
    """One sha256 over the (path, sha256) pairs of a model's files."""
    digest = hashlib.sha256()
    for relative in sorted(files):
        digest.update(f"{relative}\0{files[relative]['sha256']}\n".encode())
    return digest.hexdigest()


def model_identity(name: str, directory: Path) -> dict[str, Any]:
    """Name, directory and content digest; registry models reuse their prepare-time checksums."""
    manifest = read_manifest(name) if name in REGISTRY else None
    if manifest is not None and Path(manifest["location"]) == Path(directory):
        files = manifest["files"]
    else:
        files = file_checksums(Path(directory), exclude=frozenset({MODEL_MANIFEST_NAME}))
    config = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8"))
    return {
        "name": name,
        "directory": str(directory),
        "architecture": (config.get("architectures") or [config.get("model_type")])[0],
        "files_sha256": files_digest(files),
    }
