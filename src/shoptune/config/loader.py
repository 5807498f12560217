"""Load a `ShoptuneConfig` from YAML plus `--set key=value` overrides, reporting every problem at once.

Rules (see README "Configs"):
- a YAML file may start from another with `extends: other.yaml` (a path relative to it);
- `--set section.field=value` overrides win over the files; values are YAML scalars/lists;
- unknown keys, duplicate keys, wrong types and invalid values are all errors, collected
  into one `ConfigError` that names the file and line (or the `--set` flag) of each.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import ValidationError

from shoptune.config.schema import ShoptuneConfig
from shoptune.config.section import KeyPath, field_type_at, is_section, problems_from
from shoptune.core.atomic import atomic_write_text
from shoptune.core.errors import BadInputError

RESOLVED_CONFIG_NAME = "config.yaml"


@dataclass(frozen=True)
class ConfigProblem:
    where: str
    """`file:line`, or the `--set` flag the value came from."""
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.key}: {self.message}" if self.key else f"{self.where}: {self.message}"


class ConfigError(BadInputError):
    """Every problem found in one config load; the message lists them all."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        noun = "problem" if len(problems) == 1 else "problems"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid config {source} ({len(problems)} {noun}):\n{lines}")


class _Collector:
    """Accumulates problems and remembers where each key's value came from."""

    def __init__(self, default_where: str) -> None:
        self.default_where = default_where
        self.origins: dict[KeyPath, str] = {}
        self.problems: list[ConfigProblem] = []

    def where(self, key: KeyPath) -> str:
        for end in range(len(key), 0, -1):
            if key[:end] in self.origins:
                return self.origins[key[:end]]
        return self.default_where

    def add(self, key: KeyPath, message: str, where: str | None = None) -> None:
        self.problems.append(ConfigProblem(where or self.where(key), ".".join(key), message))


RawChecks = Callable[[dict[str, Any]], list[tuple[KeyPath, str]]]
"""Extra checks on the merged raw tree (e.g. against the model's config.json), reported with the rest."""


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), *, checks: Sequence[RawChecks] = ()
) -> ShoptuneConfig:
    """Read `path` (or start from defaults when None), apply overrides, validate, return the config."""
    source = str(path) if path is not None else "(defaults)"
    collector = _Collector(source)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml_tree(Path(path), collector, chain=())
    for override in overrides:
        _apply_override(raw, override, collector)
    config = _validate(raw, collector)
    for check in checks:
        for key, message in check(raw):
            collector.add(key, message)
    if collector.problems or config is None:
        raise ConfigError(source, collector.problems)
    return config


def _validate(raw: dict[str, Any], collector: _Collector) -> ShoptuneConfig | None:
    """The config pydantic builds from `raw`, or None with every problem added to `collector`."""
    try:
        return ShoptuneConfig.model_validate(raw)
    except ValidationError as invalid:
        for key, message in problems_from(invalid, ShoptuneConfig):
            collector.add(key, message)
        return None


def _read_yaml_tree(path: Path, collector: _Collector, chain: tuple[Path, ...]) -> dict[str, Any]:
    """Parse one YAML file (and what it `extends`), recording the line of every key."""
    display = str(path)
    if path.resolve() in chain:
        collector.add((), f"`extends` cycle: {' -> '.join(str(p) for p in (*chain, path))}", display)
        return {}
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        collector.add((), "file not found", display)
        return {}
    except IsADirectoryError:
        collector.add((), "is a directory, expected a YAML file", display)
        return {}
    except UnicodeDecodeError as exc:
        collector.add((), f"not valid UTF-8 (byte {exc.start})", display)
        return {}
    except OSError as exc:
        collector.add((), f"cannot read: {exc.strerror}", display)
        return {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{display}:{mark.line + 1}" if mark is not None else display
        problem = getattr(exc, "problem", None) or str(exc)
        collector.add((), f"invalid YAML: {problem}", where)
        return {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        collector.add((), f"the top level must be a mapping of sections, got {type(data).__name__}", display)
        return {}
    origins: dict[KeyPath, str] = {}
    _record_origins(root, (), display, origins, collector)

    parent = data.pop("extends", None)
    merged: dict[str, Any] = {}
    if parent is not None:
        if not isinstance(parent, str):
            collector.add(("extends",), "must be a file path", origins.get(("extends",), display))
        else:
            merged = _read_yaml_tree(path.parent / parent, collector, (*chain, path.resolve()))
    origins.pop(("extends",), None)
    collector.origins.update(origins)
    return _deep_merge(merged, data)


def _record_origins(
    node: yaml.Node | None, prefix: KeyPath, display: str, origins: dict[KeyPath, str], collector: _Collector
) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = str(key_node.value)
        where = f"{display}:{key_node.start_mark.line + 1}"
        if key in seen:
            collector.add((*prefix, key), "duplicate key (YAML would silently keep the last one)", where)
        seen.add(key)
        origins[(*prefix, key)] = where
        _record_origins(value_node, (*prefix, key), display, origins, collector)


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _apply_override(raw: dict[str, Any], override: str, collector: _Collector) -> None:
    flag = f"--set {override}"
    if "=" not in override:
        collector.add((), "expected key=value", flag)
        return
    dotted, text = override.split("=", 1)
    key = tuple(part.strip() for part in dotted.strip().split("."))
    if not all(key):
        collector.add((), f"bad key {dotted!r}", flag)
        return
    target_type = _field_type(key)
    try:
        value = _parse_override_value(text, target_type)
    except yaml.YAMLError:
        collector.add(key, f"cannot parse value {text!r}", flag)
        return
    node = raw
    for depth, part in enumerate(key[:-1]):
        section_type = _field_type(key[: depth + 1])
        inside_section = section_type is None or is_section(section_type)
        child = node.get(part)
        if child is None and inside_section:
            child = node[part] = {}
        if not inside_section or not isinstance(child, dict):
            collector.add(key[: depth + 1], "is not a section, cannot set a key inside it", flag)
            return
        node = child
    node[key[-1]] = value
    # A whole-section override (`--set train={...}`) replaces what the file said below it.
    for known in list(collector.origins):
        if known[: len(key)] == key:
            del collector.origins[known]
    collector.origins[key] = flag


def _field_type(key: KeyPath) -> Any:
    """The annotated type at `key` in the schema, or None when the key is unknown."""
    return field_type_at(ShoptuneConfig, key)


def _parse_override_value(text: str, target_type: Any) -> Any:
    """YAML-parse a `--set` value, except that string fields take the text verbatim.

    Without the exception `--set data.system_prompt=Hi: there` would become a mapping.
    """
    if _accepts_str(target_type) and text.strip() not in ("null", "~"):
        return text
    return yaml.safe_load(text) if text.strip() else text


def _accepts_str(tp: Any) -> bool:
    if tp is str:
        return True
    if _is_union(tp):
        return any(_accepts_str(arg) for arg in get_args(tp))
    if get_origin(tp) is Literal:
        return all(isinstance(arg, str) for arg in get_args(tp))
    return False


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def to_dict(config: ShoptuneConfig) -> dict[str, Any]:
    """The config as plain YAML/JSON-ready data (tuples become lists)."""
    return config.model_dump(mode="json")


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a config file, for editors that check YAML as it is typed.

    It is the pydantic models' schema plus the file-level `extends` key; a file may leave out any
    field (defaults apply), as `load_config` allows.
    """
    schema = ShoptuneConfig.model_json_schema()
    schema["properties"] = {
        "extends": {"type": "string", "description": "Another config file (relative to this one) to start from."},
        **schema["properties"],
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "shoptune config"}


def to_yaml(config: ShoptuneConfig) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True, width=100)


def write_resolved_config(config: ShoptuneConfig, folder: Path, *, header: str = "") -> Path:
    """Save the fully resolved config as `folder/config.yaml`; `load_config` reads it back unchanged."""
    target = Path(folder) / RESOLVED_CONFIG_NAME
    comment = "".join(f"# {line}\n" for line in header.splitlines()) if header else ""
    atomic_write_text(
        target, comment + "# Resolved shoptune config: every default and override applied.\n" + to_yaml(config)
    )
    return target
