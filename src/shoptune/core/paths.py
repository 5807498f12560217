"""Where things live: the repo's data and config folders, and the model cache ($SHOPTUNE_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The checkout shoptune runs from (shoptune is installed editable, see README)."""

DATASETS_DIR = REPO_ROOT / "datasets"
CONFIGS_DIR = REPO_ROOT / "configs"
DEFAULT_CONFIG = CONFIGS_DIR / "cpu-smollm2.yaml"


def shoptune_home() -> Path:
    """The cache root for prepared models and downloads: $SHOPTUNE_HOME or ~/.cache/shoptune."""
    configured = os.environ.get("SHOPTUNE_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path.home() / ".cache" / "shoptune"
