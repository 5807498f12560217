"""Evaluation tasks are data: eval/tasks/<name>.yaml names the metrics and the record tasks to run,
and may `include:` another task to start from it, so a user adds a task without code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from shoptune.config.schema import TASKS
from shoptune.core.errors import BadInputError
from shoptune.eval.metrics import METRICS

TASKS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class EvalTask:
    name: str
    description: str
    metrics: tuple[str, ...]
    record_tasks: tuple[str, ...]
    source: str


def load_task(name_or_path: str, _seen: tuple[str, ...] = ()) -> EvalTask:
    path = Path(name_or_path) if name_or_path.endswith(".yaml") else TASKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))
        raise BadInputError(f"unknown evaluation task {name_or_path!r}; known: {', '.join(known)} (or a .yaml path)")
    if str(path.resolve()) in _seen:
        raise BadInputError(f"{path}: include cycle")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    base: dict = {}
    if "include" in raw:
        parent = load_task(str(path.parent / raw["include"]), (*_seen, str(path.resolve())))
        base = {
            "name": parent.name,
            "description": parent.description,
            "metrics": list(parent.metrics),
            "tasks": list(parent.record_tasks),
        }
    merged = {**base, **{k: v for k, v in raw.items() if k != "include"}}
    problems = [f"unknown metric {m!r}" for m in merged.get("metrics", []) if m not in METRICS]
    problems += [f"unknown record task {t!r}" for t in merged.get("tasks", []) if t not in TASKS]
    unknown = set(merged) - {"name", "description", "metrics", "tasks"}
    problems += [f"unknown key {k!r}" for k in sorted(unknown)]
    if problems:
        raise BadInputError(f"{path}: " + "; ".join(problems))
    return EvalTask(
        name=merged.get("name", path.stem),
        description=merged.get("description", ""),
        metrics=tuple(merged.get("metrics", [])),
        record_tasks=tuple(merged.get("tasks", TASKS)),
        source=str(path),
    )
