"""Checks for a model directory a user brings (Qwen2.5-7B-Instruct, a merged model, any local dir).

shoptune loads weights only from safetensors and never runs code shipped with a model
(`trust_remote_code` is off everywhere), so a directory must hold safetensors weights, a
config and a fast tokenizer; anything else gets an error listing exactly what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

from shoptune.core.errors import EnvironmentProblem


def missing_model_files(directory: Path) -> list[str]:
    """What a loadable model directory lacks (empty when complete)."""
    if not directory.exists():
        return [f"the directory itself ({directory} does not exist)"]
    if not directory.is_dir():
        return [f"a directory ({directory} is a file)"]
    missing = []
    if not (directory / "config.json").is_file():
        missing.append("config.json")
    if not any(directory.glob("*.safetensors")):
        pickled = sorted(p.name for p in directory.glob("*.bin"))
        detail = f" (found {', '.join(pickled)}: pickled weights are not loaded, convert them)" if pickled else ""
        missing.append(f"*.safetensors weights{detail}")
    elif (directory / "model.safetensors.index.json").is_file():
        index = json.loads((directory / "model.safetensors.index.json").read_text(encoding="utf-8"))
        shards = sorted(set(index.get("weight_map", {}).values()))
        absent = [shard for shard in shards if not (directory / shard).is_file()]
        if absent:
            missing.append(f"shard(s) {', '.join(absent)} named in model.safetensors.index.json")
    if not (directory / "tokenizer.json").is_file():
        missing.append("tokenizer.json")
    if not (directory / "tokenizer_config.json").is_file():
        missing.append("tokenizer_config.json")
    return missing


def require_model_dir(directory: Path, what: str) -> Path:
    missing = missing_model_files(directory)
    if missing:
        raise EnvironmentProblem(
            f"{what} at {directory} is not a usable model directory; missing: {'; '.join(missing)}"
        )
    return directory.resolve()


def has_chat_template(directory: Path) -> bool:
    if (directory / "chat_template.jinja").is_file():
        return True
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        return bool(json.loads(config_path.read_text(encoding="utf-8")).get("chat_template"))
    return False


def missing_adapter_files(directory: Path) -> list[str]:
    """What a loadable PEFT adapter folder lacks. PEFT itself would fall back to unpickling
    `adapter_model.bin` when the safetensors file is absent; shoptune never does."""
    if not directory.is_dir():
        return [f"the directory itself ({directory} is not a directory)"]
    missing = []
    if not (directory / "adapter_config.json").is_file():
        missing.append("adapter_config.json")
    if not (directory / "adapter_model.safetensors").is_file():
        pickled = " (found adapter_model.bin: pickled weights are not loaded, convert them)"
        missing.append("adapter_model.safetensors" + (pickled if (directory / "adapter_model.bin").exists() else ""))
    return missing


def require_adapter_dir(directory: Path, what: str = "adapter") -> Path:
    from shoptune.core.errors import BadInputError

    missing = missing_adapter_files(Path(directory))
    if missing:
        raise BadInputError(f"{what} at {directory} is not a usable PEFT adapter; missing: {'; '.join(missing)}")
    return Path(directory).resolve()
