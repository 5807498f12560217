"""Load a `ShoptuneConfig` from YAML plus `--set key=value` overrides, reporting every problem at once.

Rules (see README "Configs"):
- a YAML file may start from another with `extends: other.yaml` (a path relative to it);
- `--set section.field=value` overrides win over the files; values are YAML scalars/lists;
- unknown keys, duplicate keys, wrong types and invalid values are all errors, collected
  into one `ConfigError` that names the file and line (or the `--set` flag) of each.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from shoptune.config.schema import ShoptuneConfig
from shoptune.config.section import SectionInvalid
from shoptune.core.atomic import atomic_write_text
from shoptune.core.errors import BadInputError

KeyPath = tuple[str, ...]
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
    config = _build(ShoptuneConfig, raw, (), collector)
    for check in checks:
        for key, message in check(raw):
            collector.add(key, message)
    if collector.problems or config is None:
        raise ConfigError(source, collector.problems)
    return config


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
        is_section = section_type is None or (isinstance(section_type, type) and dataclasses.is_dataclass(section_type))
        child = node.get(part)
        if child is None and is_section:
            child = node[part] = {}
        if not is_section or not isinstance(child, dict):
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
    current: Any = ShoptuneConfig
    for part in key:
        if not (isinstance(current, type) and dataclasses.is_dataclass(current)):
            return None
        current = get_type_hints(current).get(part)
        if current is None:
            return None
    return current


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


def _build(cls: type, raw: Any, key: KeyPath, collector: _Collector) -> Any:
    """Turn a mapping into `cls`, recording unknown keys, type errors and failed checks."""
    if not isinstance(raw, dict):
        collector.add(key, f"expected a mapping (section), got {_describe(raw)}")
        return None
    hints = get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs: dict[str, Any] = {}
    rejected: set[str] = set()
    for name, value in raw.items():
        child_key = (*key, str(name))
        if name not in known:
            suggestion = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {suggestion[0]!r}?" if suggestion else f"; known keys: {', '.join(known)}"
            collector.add(child_key, f"unknown key{hint}")
            rejected.add(str(name))
            continue
        converted, valid = _coerce(value, hints[name], child_key, collector)
        if valid:
            kwargs[name] = converted
        else:
            rejected.add(name)
    # Build even when some values were rejected (their defaults stand in), so that value
    # checks on the remaining fields are reported in the same run, not after the next fix.
    try:
        instance = cls(**kwargs)
    except SectionInvalid as invalid:
        for field_name, message in invalid.problems:
            if field_name.split(".")[0] not in rejected:
                collector.add((*key, *field_name.split(".")), message)
        return None
    return None if rejected else instance


def _coerce(value: Any, tp: Any, key: KeyPath, collector: _Collector) -> tuple[Any, bool]:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        built = _build(tp, value, key, collector)
        return built, built is not None
    if _is_union(tp):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None, True
            collector.add(key, "must not be null")
            return None, False
        non_null = [option for option in options if option is not type(None)]
        if len(non_null) == 1:
            return _coerce(value, non_null[0], key, collector)
        raise TypeError(f"unsupported union in schema at {key}: {tp}")
    if value is None:
        collector.add(key, f"must not be null (expected {_type_name(tp)})")
        return None, False
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if any(value == choice and type(value) is type(choice) for choice in choices):
            return value, True
        collector.add(key, f"must be one of {list(choices)}, got {value!r}")
        return None, False
    if origin is tuple:
        element_type = get_args(tp)[0]
        if not isinstance(value, list | tuple):
            collector.add(key, f"expected a list, got {_describe(value)}")
            return None, False
        items = [_coerce(item, element_type, (*key, str(i)), collector) for i, item in enumerate(value)]
        return tuple(item for item, _ in items), all(valid for _, valid in items)
    if origin is dict:
        _, value_type = get_args(tp)
        if not isinstance(value, dict):
            collector.add(key, f"expected a mapping, got {_describe(value)}")
            return None, False
        converted = {}
        valid = True
        for name, item in value.items():
            item_value, item_valid = _coerce(item, value_type, (*key, str(name)), collector)
            converted[str(name)] = item_value
            valid = valid and item_valid
        return converted, valid
    return _coerce_scalar(value, tp, key, collector)


def _coerce_scalar(value: Any, tp: Any, key: KeyPath, collector: _Collector) -> tuple[Any, bool]:
    if tp is bool:
        if isinstance(value, bool):
            return value, True
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, True
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value), True
        if isinstance(value, str):
            # YAML 1.1 reads `1e-4` (no dot) as a string; accept any text float() accepts.
            try:
                return float(value), True
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value, True
    else:
        raise TypeError(f"unsupported type in schema at {key}: {tp}")
    collector.add(key, f"expected {_type_name(tp)}, got {_describe(value)}")
    return None, False


def _type_name(tp: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def to_dict(config: ShoptuneConfig) -> dict[str, Any]:
    """The config as plain YAML/JSON-ready data (tuples become lists)."""
    return typing.cast(dict[str, Any], _plain(config))


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
