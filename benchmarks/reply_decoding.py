"""Reply decoding ablation: which storefront settings keep a tuned model's replies from degenerating.

Serves one merged model with vLLM exactly as the storefront does (the config's serve settings) and
generates the reply records of a split (recommend, faq, chat, refusal) once per variant, each
variant overriding only the reply's sampling arguments (`serve.decoding.reply_request`):
frequency and repetition penalties and stop strings. Every variant is scored with the `replies`
evaluation task's metrics, so a setting that stops loops by breaking grounding or tone shows it.

    python benchmarks/reply_decoding.py --model runs/demo/merged --data runs/demo/data/test.jsonl
    python benchmarks/reply_decoding.py --table     # the saved results, as the README shows them

Results go to `benchmarks/results/quality/reply_decoding.json`, saved after each variant with its
commit and machine; a later run on the same model and data adds to them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIG, RESULTS, WORK

RESULT_FILE = RESULTS / "quality" / "reply_decoding.json"
VARIANTS: dict[str, dict[str, Any]] = {
    "greedy": {"frequency_penalty": 0.0},
    "frequency-0.3": {"frequency_penalty": 0.3},
    "frequency-0.8": {"frequency_penalty": 0.8},
    "repetition-1.1": {"frequency_penalty": 0.0, "repetition_penalty": 1.1},
    "frequency-0.3+stop-4th-item": {"frequency_penalty": 0.3, "reply_stop": ("\n4.",)},
    "repetition-1.1+stop-4th-item": {"frequency_penalty": 0.0, "repetition_penalty": 1.1, "reply_stop": ("\n4.",)},
}
"""Overrides of the config's serve section; "\\n4." ends a recommendation at the style guide's
three products."""
SHOWN = (
    "degenerate_rate",
    "recommend_grounded_rate",
    "hallucinated_product_rate",
    "faq_grounded_rate",
    "history_resolved_rate",
    "tone_compliance_rate",
    "refusal_in_role_rate",
    "chrf",
)


def generate(server, records: list[dict[str, Any]], serve, concurrency: int) -> dict[str, str]:
    from shoptune.eval.backends import EndpointBackend
    from shoptune.shop.decoding import reply_request

    backend = EndpointBackend(
        server.base_url,
        server.served_name,
        api_key="",
        concurrency=concurrency,
        reply=reply_request(serve),
        extraction_max_tokens=serve.extraction_max_tokens,
        structured_output=True,
    )
    return {p.id: p.output for p in backend.generate(records)}


def score(records: list[dict[str, Any]], outputs: dict[str, str], metric_names: tuple[str, ...]) -> dict[str, Any]:
    from shoptune.eval.scoring import aggregate, score_samples

    samples = score_samples(records, outputs, metric_names)
    metrics = aggregate(samples, bootstrap_samples=200, seed=0)["metrics"]
    degenerate = [s.record["id"] for s in samples if s.scores.get("degenerate") == 1.0]
    return {**{k: round(metrics[k], 4) for k in SHOWN if metrics.get(k) is not None}, "degenerate_ids": degenerate}


def run(model: Path, data: Path, names: list[str], save: Callable[[dict[str, Any]], None]) -> None:
    from shoptune.config import load_config
    from shoptune.core.net import free_port
    from shoptune.core.provenance import provenance
    from shoptune.eval.runner import select_records
    from shoptune.eval.tasks import load_task
    from shoptune.serve.vllm_server import VllmServer

    config = load_config(CONFIG)
    task = load_task("replies")
    records = select_records(data, task, None)
    results = load_results()
    if results.get("model") != str(model) or results.get("data") != str(data):
        results = {"model": str(model), "data": str(data), "records": len(records), "variants": {}}
    with VllmServer(model, config.serve, "shop", free_port(), log_path=WORK / "reply_vllm.log") as server:
        for name in names:
            serve = config.serve.replace(**VARIANTS[name])
            print(f"== {name}: {VARIANTS[name]}", flush=True)
            outputs = generate(server, records, serve, config.eval.concurrency)
            row = {"settings": VARIANTS[name], **score(records, outputs, task.metrics)}
            results["variants"][name] = {**row, "provenance": {k: provenance()[k] for k in ("git", "machine")}}
            save(results)  # one variant at a time: a long run keeps what it measured
            print(json.dumps(row, ensure_ascii=False), flush=True)


def load_results() -> dict[str, Any]:
    return json.loads(RESULT_FILE.read_text(encoding="utf-8")) if RESULT_FILE.is_file() else {"variants": {}}


def table(results: dict[str, Any]) -> str:
    """The README's reply table, from the saved results."""
    lines = [
        f"| variant ({results['records']} replies) | " + " | ".join(SHOWN) + " |",
        "|---" * (len(SHOWN) + 1) + "|",
    ]
    for name, row in results["variants"].items():
        cells = [f"{row[k]:.3f}" if k in row else "-" for k in SHOWN]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a merged model directory (e.g. runs/demo/merged)")
    parser.add_argument("--data", type=Path, help="a split with reply records (e.g. runs/demo/data/test.jsonl)")
    parser.add_argument("--variants", default="all", help="comma-separated names, or all")
    parser.add_argument("--table", action="store_true", help="print the table of saved results and exit")
    args = parser.parse_args()
    if not args.table:
        from shoptune.core.atomic import atomic_write_json

        if not (args.model and args.data):
            parser.error("--model and --data are required unless --table")
        names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
        run(args.model, args.data, names, save=lambda results: atomic_write_json(RESULT_FILE, results))
    print(table(load_results()))


if __name__ == "__main__":
    main()
