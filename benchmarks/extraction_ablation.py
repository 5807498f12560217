"""Extraction quality ablation: which recipe makes the embedded model right, on the served path.

Each variant builds the corpus, trains LoRA on SmolLM2-135M-Instruct with `shoptune train`'s own
code, merges it (parity gate), serves the merged model with vLLM exactly as the storefront does
(the config's serve settings and dtype, xgrammar without whitespace) and scores the test split's
extraction records free-form, with structured output, and with structured output limited to the
shop's vocabulary (`shoptune.shop.structured.vocabulary_schema`), plus the hand-written shopper
messages of `datasets/eval/handwritten_extraction.jsonl` (in no template). Every variant starts
from configs/cpu-smollm2.yaml and overrides only what it names; training targets are always in
the one form (`train.dataset` rewrites them), so the form itself is not a variant here.

    python benchmarks/extraction_ablation.py --list
    python benchmarks/extraction_ablation.py --variants probe-mix70-short,probe-mix70-name
    python benchmarks/extraction_ablation.py --table      # the saved results, as the README shows them

Results accumulate in `benchmarks/results/extraction_ablation.json` (one entry per variant with
its own commit and machine) and the table is printed from them; training time is reported beside
quality because the demo's 30-minute budget is what the levers trade against.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CONFIG, RESULTS, ROOT, WORK

HANDWRITTEN = ROOT / "datasets" / "eval" / "handwritten_extraction.jsonl"
RESULT_FILE = RESULTS / "quality" / "extraction_ablation.json"
LEGACY_PROMPT = (
    "Extract the shopper's message as JSON for YouXuan Mall's order system. "
    "Reply with one JSON object and nothing else.\nSchema {name}: {outline}\n{description}"
)
"""The extraction instruction shipped before this ablation (~200 SmolLM2 tokens)."""


@dataclass(frozen=True)
class Variant:
    description: str
    data: dict[str, Any] = field(default_factory=dict)
    """Overrides of the config's data section, e.g. `extraction_prompt` ("name", "outline", "full")."""
    train: dict[str, Any] = field(default_factory=dict)
    legacy_prompt: bool = False
    """Rewrite extraction records with the ~200-token instruction shipped before this ablation."""


MIX_EXTRACT_70 = {"extract": 0.7, "recommend": 0.1, "faq": 0.08, "chat": 0.06, "refusal": 0.06}

EXTRACT_ONLY_DATA = {"task_mix": {"extract": 1.0}, "extraction_prompt": "name"}
"""Extraction records only, with the schema-name instruction."""

EXTRACT_ONLY_TRAIN = {
    "gradient_accumulation_steps": 1,
    "learning_rate": 2e-3,
    "lora_dropout": 0.0,
}
"""lr 2e-3, no LoRA dropout: the extract-only variants differ in records, batch and learning rate."""

SPARE_RECORDS = 400
"""An extract-only corpus holds this many records more than a run sees (2,000 for 1,600)."""


def extract_only(
    description: str, *, records: int, batch: int, learning_rate: float | None = None, top_layers: int | None = None
) -> Variant:
    """Extraction records only, with the schema-name instruction: `records` distinct records seen
    once, `batch` a step (so records / batch steps); adapters on the top `top_layers` layers if set."""
    train = {**EXTRACT_ONLY_TRAIN, "per_device_batch_size": batch, "max_steps": records // batch}
    if learning_rate is not None:
        train["learning_rate"] = learning_rate
    if top_layers is not None:
        train["lora_top_layers"] = top_layers
    return Variant(description, data={**EXTRACT_ONLY_DATA, "train_records": records + SPARE_RECORDS}, train=train)


VARIANTS: dict[str, Variant] = {
    "shipped-prompt": Variant(
        "0c9baa7's instruction and mix (50% extraction), compact targets, 120 steps x 4, lr 7e-4",
        data={"task_mix": {"extract": 0.5, "recommend": 0.2, "faq": 0.1, "chat": 0.1, "refusal": 0.1}},
        train={"max_steps": 120, "per_device_batch_size": 4, "learning_rate": 7e-4},
        legacy_prompt=True,
    ),
    "probe-mix70-short": Variant(
        "70% extraction, instruction with key outline, 60 steps x 8 (480 records), lr 1e-3",
        data={"task_mix": MIX_EXTRACT_70, "extraction_prompt": "outline"},
        train={"max_steps": 60, "per_device_batch_size": 8, "learning_rate": 1e-3},
    ),
    "probe-mix70-name": Variant(
        "as probe-mix70-short, instruction = the schema's name only",
        data={"task_mix": MIX_EXTRACT_70, "extraction_prompt": "name"},
        train={"max_steps": 60, "per_device_batch_size": 8, "learning_rate": 1e-3},
    ),
    "extract-only-name-1600": extract_only(
        "extraction records only, schema-name instruction, 100 steps x 16 (1,600 records), lr 2e-3, no dropout",
        records=1600,
        batch=16,
    ),
    "extract-only-name-1600-b8": extract_only(
        "as extract-only-name-1600 with twice the optimizer steps at the same compute: 200 steps x 8",
        records=1600,
        batch=8,
    ),
    "extract-only-name-1600-b4": extract_only(
        "as extract-only-name-1600-b8 with twice the optimizer steps again: 400 steps x 4", records=1600, batch=4
    ),
    "extract-only-name-1600-b8-lr4e-3": extract_only(
        "as extract-only-name-1600-b8 with twice the learning rate: 200 steps x 8, lr 4e-3",
        records=1600,
        batch=8,
        learning_rate=4e-3,
    ),
    "extract-only-name-1600-b4-lr4e-3": extract_only(
        "both levers at once: 400 steps x 4, lr 4e-3", records=1600, batch=4, learning_rate=4e-3
    ),
    "extract-only-name-1600-b2": extract_only(
        "as extract-only-name-1600-b4 with twice the optimizer steps again: 800 steps x 2", records=1600, batch=2
    ),
    "extract-only-name-3200": extract_only(
        "as extract-only-name-1600 with twice the examples: 200 steps x 16 (3,200 distinct records)",
        records=3200,
        batch=16,
    ),
    "extract-only-name-2400-b2": extract_only(
        "between the two: 2,400 distinct extraction records as 1,200 steps x 2, lr 2e-3", records=2400, batch=2
    ),
    "extract-only-name-3200-b2": extract_only(
        "both measured levers: 3,200 distinct extraction records as 1,600 steps x 2, lr 2e-3", records=3200, batch=2
    ),
    "extract-only-name-3200-b2-top10": extract_only(
        "as extract-only-name-3200-b2 with adapters on the top 10 of 30 layers only (1.75x faster steps)",
        records=3200,
        batch=2,
        top_layers=10,
    ),
}


def rewrite(records: list[dict[str, Any]], variant: Variant, style: str) -> list[dict[str, Any]]:
    """Extraction records with the variant's instruction (others unchanged); the hand-written set
    goes through it too, so its prompts are always the ones trained on, as /v1/extract's are."""
    from shoptune.shop import resources
    from shoptune.shop.prompts import extraction_system_prompt, schema_outline

    for record in records:
        if record["task"] != "extract":
            continue
        name = record["schema"]
        schema = resources.schemas()[name]
        record["messages"][0]["content"] = (
            LEGACY_PROMPT.format(name=name, outline=schema_outline(schema), description=schema.get("description", ""))
            if variant.legacy_prompt
            else extraction_system_prompt(name, schema, style)
        ).strip()
    return records


def rewrite_corpus(data_dir: Path, variant: Variant, style: str) -> None:
    from shoptune.data.build import to_jsonl
    from shoptune.shop.reading import read_records

    for split in ("train", "val", "test"):
        path = data_dir / f"{split}.jsonl"
        path.write_text(to_jsonl(rewrite(read_records(path), variant, style)), encoding="utf-8")


def variant_config(base, variant: Variant, data_dir: Path):
    data = base.data.replace(dir=str(data_dir), **variant.data)
    no_mid_run_eval = {"eval_steps": None, "save_steps": 10_000, "generation_eval_records": 0}
    train = base.train.replace(**{**no_mid_run_eval, **variant.train})
    return base.replace(data=data, train=train)


def score(records: list[dict[str, Any]], outputs: dict[str, str], config) -> dict[str, Any]:
    from shoptune.eval.scoring import aggregate, score_samples

    samples = score_samples(records, outputs, ("extraction",))
    metrics = aggregate(samples, bootstrap_samples=200, seed=0)["metrics"]
    keep = ("exact_match_rate", "micro_f1", "json_valid_rate", "schema_valid_rate")
    return {
        **{key: round(metrics[key], 4) for key in keep if key in metrics},
        "field_recall": {k: round(v, 4) for k, v in metrics.get("field_recall", {}).items()},
        "field_invented_rate": {k: round(v, 4) for k, v in metrics.get("field_invented_rate", {}).items()},
    }


def served_outputs(server, records, *, structured: bool, config, vocabulary: bool = False) -> dict[str, str]:
    from shoptune.eval.backends import EndpointBackend
    from shoptune.shop.decoding import reply_request
    from shoptune.shop.structured import response_format

    class Backend(EndpointBackend):
        def sampling(self, record):
            request = super().sampling(record)
            if vocabulary and "response_format" in request:
                request["response_format"] = response_format(record["schema"], vocabulary=True)
            return request

    backend = Backend(
        server.base_url,
        server.served_name,
        api_key="",
        concurrency=config.eval.concurrency,
        reply=reply_request(config.serve),
        structured_output=structured,
    )
    return {p.id: p.output for p in backend.generate(records)}


def save_outputs(path: Path, records: list[dict[str, Any]], outputs: dict[str, str]) -> None:
    """Each test record's text, gold answer and served answer, for reading the errors behind a row."""
    from shoptune.core.atomic import atomic_write_text
    from shoptune.shop.records import last_question

    rows = [
        {
            "id": r["id"],
            "text": last_question(r),
            "gold": r["messages"][-1]["content"],
            "output": outputs[r["id"]],
        }
        for r in records
    ]
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def run_variant(name: str, variant: Variant, log: Callable[[str], None]) -> dict[str, Any]:
    from shoptune.config import load_config
    from shoptune.core.net import free_port
    from shoptune.core.provenance import provenance
    from shoptune.data.build import build_dataset, token_limit_for
    from shoptune.models import resolve_model_dir
    from shoptune.models.loading import load_tokenizer
    from shoptune.serve.vllm_server import VllmServer
    from shoptune.shop.reading import read_records
    from shoptune.train.merge import merge_run
    from shoptune.train.recipe import run_training

    work = WORK / "ablation" / name
    shutil.rmtree(work, ignore_errors=True)
    config = variant_config(load_config(CONFIG), variant, work / "data")
    model_dir = resolve_model_dir(config.model.name)
    limit = token_limit_for(config.model.name, load_tokenizer(model_dir), config.data.max_tokens)
    build_dataset(config.data, work / "data", limit)
    if variant.legacy_prompt:
        rewrite_corpus(work / "data", variant, config.data.extraction_prompt)
    started = time.perf_counter()
    result = run_training(config, out_dir=work / "train", data_dir=work / "data", log=log)
    train_seconds = time.perf_counter() - started
    merge_run(work / "train", work / "merged", log=log)
    test = [r for r in read_records(work / "data" / "test.jsonl") if r["task"] == "extract"]
    handwritten = rewrite(read_records(HANDWRITTEN), variant, config.data.extraction_prompt)
    server = VllmServer(work / "merged", config.serve, "shop", free_port(), log_path=work / "vllm.log")
    with server:
        free = served_outputs(server, test, structured=False, config=config)
        guided = served_outputs(server, test, structured=True, config=config)
        hand = served_outputs(server, handwritten, structured=True, config=config)
        vocab = served_outputs(server, test, structured=True, config=config, vocabulary=True)
        hand_vocab = served_outputs(server, handwritten, structured=True, config=config, vocabulary=True)
    save_outputs(work / "structured_outputs.jsonl", test, guided)
    final = result.manifest["final_metrics"]
    return {
        "description": variant.description,
        "settings": {"data": variant.data, "train": variant.train, "legacy_prompt": variant.legacy_prompt},
        "train_seconds": round(train_seconds, 1),
        "train_tokens_per_second": round(final["tokens_per_second"] or 0.0, 1),
        "train_records_seen": final["steps"]
        * config.train.per_device_batch_size
        * config.train.gradient_accumulation_steps,
        "extraction_records_in_train": sum(r["task"] == "extract" for r in read_records(work / "data" / "train.jsonl")),
        "test_extraction_records": len(test),
        "free_form": score(test, free, config),
        "structured": score(test, guided, config),
        "structured_equals_free_form": round(sum(free[r["id"]] == guided[r["id"]] for r in test) / len(test), 4),
        "handwritten_structured": score(handwritten, hand, config),
        "structured_vocabulary": score(test, vocab, config),
        "handwritten_structured_vocabulary": score(handwritten, hand_vocab, config),
        "provenance": {k: provenance()[k] for k in ("git", "machine", "created_at")},
    }


def load_results() -> dict[str, Any]:
    return json.loads(RESULT_FILE.read_text(encoding="utf-8")) if RESULT_FILE.is_file() else {"variants": {}}


def recall_floor(scores: dict[str, Any]) -> str:
    recalls = scores.get("field_recall") or {}
    if not recalls:
        return "-"
    field_name = min(recalls, key=recalls.get)
    return f"{recalls[field_name]:.2f} ({field_name})"


def table(results: dict[str, Any]) -> str:
    """The README's ablation table, from the saved results (tests/test_benchmarks_table.py checks it)."""
    lines = [
        "| variant | records trained (extraction) | train s | tok/s | EM free-form | EM structured "
        "| EM structured + vocabulary | micro-F1 structured | lowest field recall | structured = free-form "
        "| hand-written EM / micro-F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["variants"].items():
        hand, guided = row["handwritten_structured"], row["structured"]
        lines.append(
            f"| {name} | {row['train_records_seen']} ({row['extraction_records_in_train']} in the corpus) | "
            f"{row['train_seconds']:.0f} | {row['train_tokens_per_second']:.0f} | "
            f"{row['free_form']['exact_match_rate']:.3f} | {guided['exact_match_rate']:.3f} | "
            f"{row['structured_vocabulary']['exact_match_rate']:.3f} | {guided['micro_f1']:.3f} | "
            f"{recall_floor(guided)} | {row['structured_equals_free_form']:.3f} | "
            f"{hand['exact_match_rate']:.2f} / {hand['micro_f1']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="all", help="comma-separated names, or all")
    parser.add_argument("--list", action="store_true", help="print the variants and exit")
    parser.add_argument("--table", action="store_true", help="print the table of saved results and exit")
    args = parser.parse_args()
    if args.list:
        for name, variant in VARIANTS.items():
            print(f"{name}: {variant.description}")
        return
    results = load_results()
    if not args.table:
        from shoptune.core.atomic import atomic_write_json

        names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            raise SystemExit(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
        for name in names:
            print(f"== {name}: {VARIANTS[name].description}", flush=True)
            results["variants"][name] = run_variant(
                name, VARIANTS[name], log=lambda line: print(f"  {line}", flush=True)
            )
            atomic_write_json(RESULT_FILE, results)
            print(json.dumps(results["variants"][name], ensure_ascii=False), flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
