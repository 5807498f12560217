"""The README's benchmark table, rendered from benchmarks/results/*.json (so the two cannot drift:
tests/test_benchmarks_table.py checks the README holds exactly this).

    python benchmarks/table.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COMMANDS = {
    "train_throughput": "python benchmarks/train_throughput.py --quick",
    "eval_throughput": "python benchmarks/eval_throughput.py --quick",
    "serve_load": "python benchmarks/serve_load.py --quick",
    "vllm_startup": "python benchmarks/vllm_startup.py",
    "retrieval_scale": "python benchmarks/retrieval_scale.py",
}


def _train(r: dict) -> tuple[str, str, str]:
    runs = r["runs"]
    ours = runs["shoptune"]
    lf = {k: v for k, v in runs.items() if k.startswith("llamafactory")}
    shown = ", ".join(f"{k.removeprefix('llamafactory_')} {v['real_tokens_per_second']}" for k, v in lf.items())
    figures = (
        f"real tok/s: shoptune {ours['real_tokens_per_second']}, plain Trainer "
        f"{runs['plain_trainer_padded_512']['real_tokens_per_second']}, LLaMA-Factory {shown}; "
        f"held-out loss {ours['assistant_loss_after']} vs "
        f"{runs['plain_trainer_padded_512']['assistant_loss_after']} / "
        + " / ".join(str(v["assistant_loss_after"]) for v in lf.values())
        + f"; peak memory {ours['peak_memory_gib']} vs {runs['plain_trainer_padded_512']['peak_memory_gib']} GiB"
    )
    ratios = f"speedup {r['speedup']} (goal 3); vs LLaMA-Factory {r.get('speedup_vs_llamafactory', '-')} (goal 1.5)"
    job = r["job"]
    return (
        f"{job['steps']} steps, batch 4, SmolLM2-135M; loss on {job['held_out_records']} held-out chats",
        figures,
        ratios,
    )


def _eval(r: dict) -> tuple[str, str, str]:
    runs = r["runs"]
    same = r["identical_answers_vs_one_at_a_time"]
    figures = (
        f"records/s: vLLM x16 bf16 {runs['shoptune_vllm_concurrency_16']['records_per_second']} (fp32 "
        f"{runs['vllm_fp32_parity']['records_per_second']}), transformers one at a time "
        f"{runs['transformers_one_at_a_time']['records_per_second']}, batched 16 "
        f"{runs['transformers_batched_16']['records_per_second']}; identical answers: vLLM fp32 "
        f"{same['vllm_fp32_parity']}, bf16 {same['shoptune_vllm_concurrency_16']}"
    )
    ratios = (
        f"speedup {r['speedup']} (goal 10; fp32 {r['speedup_fp32_parity']}); "
        f"vs batched {r['speedup_vs_batched']} (goal 2)"
    )
    return f"{r['records']} test records, greedy, {r['max_new_tokens']} new tokens", figures, ratios


def _serve(r: dict) -> tuple[str, str, str]:
    def at(run: dict, c: int) -> dict:
        return next(level for level in run["levels"] if level["concurrency"] == c)

    ours, seed = r["shoptune"], r["seed_style_baseline"]
    figures = "; ".join(
        f"c={c}: {at(ours, c)['requests_per_second']} vs {at(seed, c)['requests_per_second']} req/s, "
        f"p95 {at(ours, c)['p95_s']} vs {at(seed, c)['p95_s']} s"
        for c in (1, 8, 32)
    )
    errors = r["errors"]
    ratios = (
        f"speedup {r['speedup']} at c=8 (goal 10); p95 {r['p95_ratio_at_8']}x lower; "
        f"errors {errors['shoptune']} vs {errors['seed']}"
    )
    requests = f"{at(ours, 8)['requests']} vs {at(seed, 8)['requests']}"
    return f"/v1/chat + /v1/extract, loopback; {requests} requests at c=8", figures, ratios


def _startup(r: dict) -> tuple[str, str, str]:
    uni, mp = r["median"]["uni"], r["median"]["mp"]
    figures = (
        f"ready: uni {uni['ready_s']} s vs mp {mp['ready_s']} s; "
        f"tok/s: uni {uni['tokens_per_s']} vs mp {mp['tokens_per_s']} (medians of {len(r['runs']['uni'])} starts each)"
    )
    ratios = f"throughput {r['speedup']}x; start-up {r['startup_speedup']}x faster"
    workload = r["workload"]
    job = f"vLLM -O0, {r['model']}; {workload['requests']} concurrent chats x {workload['tokens_each']} tokens"
    return job, figures, ratios


def _retrieval(r: dict) -> tuple[str, str, str]:
    runs = r["runs"]

    def ms(name: str) -> str:
        return f"p50 {runs[name]['p50_ms']} / p95 {runs[name]['p95_ms']} ms"

    figures = (
        f"storefront turn (routing + search + fresh rows from the database) {ms('storefront')}; inverted index "
        f"{ms('inverted')}; SQLite FTS5 {ms('fts5')}; previous scan {ms('scan_baseline')}; same ranking as the "
        f"scan: {r['same_ranking_as_scan']}"
    )
    ratios = (
        f"speedup {r['speedup']} vs the scan, {r['speedup_vs_fts5']} vs FTS5 (p50); storefront p95 "
        f"{runs['storefront']['p95_ms']} ms (goal < {r['goal_p95_ms']})"
    )
    job = f"{r['skus']:,} SKUs in SQLite, {runs['storefront']['queries']} zh/en shopper queries"
    return job, figures, ratios


RENDER = {
    "train_throughput": _train,
    "eval_throughput": _eval,
    "serve_load": _serve,
    "vllm_startup": _startup,
    "retrieval_scale": _retrieval,
}


def markdown_table(results: Path = RESULTS) -> str:
    rows = [
        "| benchmark | job | figures (shoptune vs baseline) | ratios | measured | command |",
        "|---|---|---|---|---|---|",
    ]
    for name, render in RENDER.items():
        path = results / f"{name}.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text(encoding="utf-8"))
        job, figures, ratios = render(record)
        when = f"{record['created_at'][:10]}, {record['git']['commit'][:7] if record['git']['commit'] else '-'}"
        rows.append(f"| {name} | {job} | {figures} | {ratios} | {when} | `{COMMANDS[name]}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
