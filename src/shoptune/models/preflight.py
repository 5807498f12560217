"""Config problems that only the model can reveal, found before anything loads.

A missing model directory or a `train.max_length` beyond the model's context would otherwise
surface minutes later (after data building, while loading weights) as a library traceback.
These checks read only `config.json` and the registry's manifest, never the weights, and work
on the raw (merged, overridden) config tree so they can be reported together with the
config's own problems even when some other value in the file is wrong.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoptune.config.schema import ModelConfig, ServeConfig, TrainConfig
from shoptune.models.local_dir import missing_model_files
from shoptune.models.registry import REGISTRY, _manifest_is_current, get_spec, read_manifest

KeyPath = tuple[str, ...]


def _value(raw: Mapping[str, Any], key: KeyPath, default: Any) -> Any:
    node: Any = raw
    for part in key:
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _model_dir(raw: Mapping[str, Any]) -> tuple[Path | None, list[tuple[KeyPath, str]]]:
    """The directory the model will load from, if it can be known without building it."""
    name = _value(raw, ("model", "name"), ModelConfig.model_fields["name"].default)
    path = _value(raw, ("model", "path"), None)
    if not isinstance(name, str) or (path is not None and not isinstance(path, str)):
        return None, []  # a type error the loader already reports
    if name in REGISTRY:
        spec = get_spec(name)
        if not spec.external:
            manifest = read_manifest(name)
            prepared = _manifest_is_current(spec, manifest, None)
            return (Path(manifest["location"]) if prepared and manifest else None), []
        configured = path or (os.environ.get(spec.path_env) if spec.path_env else None)
        if not configured:
            key = ("model", "path")
            return None, [
                (key, f"{name} is not available offline: set model.path or ${spec.path_env} to its directory")
            ]
        directory, key = Path(configured).expanduser(), ("model", "path")
    else:
        directory, key = Path(name).expanduser(), ("model", "name")
        if not directory.exists() and os.sep not in name:
            return None, [
                (key, f"unknown model {name!r}: neither a registry name ({', '.join(REGISTRY)}) nor a directory")
            ]
    missing = missing_model_files(directory)
    if missing:
        return None, [(key, f"{directory} is not a usable model directory; missing: {'; '.join(missing)}")]
    return directory, []


def model_problems(raw: Mapping[str, Any]) -> list[tuple[KeyPath, str]]:
    """Problems with the model a config names: its directory, and lengths beyond its context."""
    directory, problems = _model_dir(raw)
    if directory is None:
        return problems
    try:
        model_config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        return [(("model", "path"), f"cannot read {directory / 'config.json'}: {error}")]
    context = model_config.get("max_position_embeddings")
    if not isinstance(context, int):
        return problems
    for key, default in (
        (("train", "max_length"), TrainConfig.model_fields["max_length"].default),
        (("serve", "max_model_len"), ServeConfig.model_fields["max_model_len"].default),
    ):
        value = _value(raw, key, default)
        if isinstance(value, int) and not isinstance(value, bool) and value > context:
            where = directory / "config.json"
            message = f"{value} is above the model's context of {context} tokens (max_position_embeddings in {where})"
            problems.append((key, message))
    return problems
