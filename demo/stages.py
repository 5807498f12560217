"""Stages that are skipped when their inputs have not changed.

Each stage has a name, a content hash of everything it depends on (config sections, upstream
stages' hashes, data files) and the outputs it must leave; `demo-state.json` remembers the hash
each stage last finished with. A stage runs again when its hash changed, an output is missing,
or `--force` is given. Stage hashes chain, so changing the data reruns everything after it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoptune.core.atomic import atomic_write_json
from shoptune.core.provenance import utc_now


def content_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


@dataclass
class StageResult:
    name: str
    skipped: bool
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageRunner:
    state_path: Path
    force: bool = False
    announce: Callable[[str], None] = print
    results: list[StageResult] = field(default_factory=list)
    total: int = 0

    def __post_init__(self) -> None:
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text(encoding="utf-8")) if self.state_path.is_file() else {}
        )
        self.started = time.perf_counter()

    def will_skip(self, name: str, inputs_hash: str, outputs: list[Path]) -> bool:
        """Whether `run` would skip this stage: same inputs as last time, outputs all there, no --force."""
        previous = self.state.get(name, {})
        return not self.force and previous.get("inputs") == inputs_hash and all(p.exists() for p in outputs)

    def run(self, name: str, inputs_hash: str, outputs: list[Path], body: Callable[[], dict[str, Any]]) -> StageResult:
        number = len(self.results) + 1
        previous = self.state.get(name, {})
        elapsed = time.perf_counter() - self.started
        if self.will_skip(name, inputs_hash, outputs):
            self.announce(f"[{number}/{self.total}] {name}: unchanged, skipped  ({elapsed:.0f} s elapsed)")
            result = StageResult(name, True, 0.0, previous.get("summary", {}))
        else:
            self.announce(f"[{number}/{self.total}] {name} ...  ({elapsed:.0f} s elapsed)")
            started = time.perf_counter()
            summary = body()
            seconds = time.perf_counter() - started
            self.state[name] = {
                "inputs": inputs_hash,
                "finished_at": utc_now(),
                "seconds": round(seconds, 1),
                "summary": summary,
            }
            atomic_write_json(self.state_path, self.state)
            self.announce(f"[{number}/{self.total}] {name}: done in {seconds:.0f} s")
            result = StageResult(name, False, seconds, summary)
        self.results.append(result)
        return result
