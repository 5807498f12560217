"""What every benchmark shares: the test data, the model, the results file.

Each benchmark runs shoptune and its baseline in the same process tree on the same machine,
one after the other (never at once: they would share the two cores), and writes
`benchmarks/results/<name>.json` with its figures, a top-level `speedup`, the machine, the
package versions and the git commit.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs" / "bench"
CONFIG = ROOT / "configs" / "cpu-smollm2.yaml"
MODEL = "smollm2-135m-instruct"


def shoptune(*args: str) -> str:
    """The installed CLI, as a user runs it; its stdout."""
    from shoptune.core.process import shoptune_argv

    done = subprocess.run(shoptune_argv(*args), cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"shoptune {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def set_options(settings: dict[str, Any]) -> list[str]:
    """`--set key=value` for each config override, as the CLI takes them."""
    return [part for key, value in settings.items() for part in ("--set", f"{key}={value}")]


def model_dir(name: str = MODEL) -> Path:
    return Path(shoptune("models", "path", name).strip())


def test_split() -> Path:
    """The demo config's test split, built once (deterministic: same seed, same records)."""
    data = WORK / "data"
    if not (data / "test.jsonl").is_file():
        shoptune("data", "build", "--config", str(CONFIG), "--out", str(data))
    return data / "test.jsonl"


def write_result(name: str, figures: dict[str, Any]) -> Path:
    """benchmarks/results/<name>.json (atomically) and the same as one JSON line on stdout."""
    from shoptune.core.atomic import atomic_write_json
    from shoptune.core.provenance import provenance

    # The results files of earlier benchmarks in the same `make bench` do not make the tree dirty.
    record = provenance(ignore=(str(RESULTS.relative_to(ROOT)),))
    machine = record["machine"]
    payload = {
        "benchmark": name,
        **figures,
        # provenance already reads the CPU model and core count; named plainly for the reader.
        "machine": {**machine, "cpu_model": machine["processor"], "cores": machine["cpu_count"]},
        "packages": record["packages"],
        "git": record["git"],
        "created_at": record["created_at"],
    }
    path = RESULTS / f"{name}.json"  # a name with a folder ("quality/...") for what is not a speed benchmark
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload)
    print(json.dumps(payload, ensure_ascii=False), flush=True)
    return path


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
