"""`shoptune data build`: generate train/val/test splits and their manifest, deterministically.

    shoptune data build --out runs/data/demo
    shoptune data build --config configs/tiny-qwen.yaml --set data.seed=3 --out /tmp/data

Same config and seed -> byte-identical files. Split hygiene: no user message (normalised)
appears in two splits, and part of the test split uses templates and SKUs reserved for it. The
shop's own records (`data.imported`) make up `data.imported_share` of each split (`imported.py`).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.config.schema import DataConfig
from shoptune.core.atomic import atomic_write_json, atomic_write_text
from shoptune.core.hashing import sha256_bytes
from shoptune.data.imported import Fits, ImportedSplits, deal_imported, imported_files, user_messages
from shoptune.data.tasks.chat import chat_record
from shoptune.data.tasks.context import Redraw, TaskContext, heldout_subset
from shoptune.data.tasks.extract import extract_record, generated_schemas
from shoptune.data.tasks.faq import faq_record, question_pool
from shoptune.data.tasks.recommend import recommend_record
from shoptune.data.tasks.refusal import refusal_record
from shoptune.shop import resources
from shoptune.shop.records import RecordValidator

GENERATOR_VERSION = "1.1"
SPLITS = ("train", "val", "test")
MAX_DRAWS = 400
"""Draws per record before giving up (only reachable with a config asking for more distinct
records than the templates can make)."""

TASK_BUILDERS: dict[str, Callable[[TaskContext], dict[str, Any]]] = {
    "extract": extract_record,
    "recommend": recommend_record,
    "faq": faq_record,
    "chat": chat_record,
    "refusal": refusal_record,
}


@dataclass(frozen=True)
class TokenLimit:
    """Records longer than `max_tokens` under `model`'s chat template are redrawn, so the corpus
    fits the model the config trains (`data check --model` applies the same limit)."""

    model: str
    max_tokens: int
    count: Callable[[list[dict[str, str]]], int]


@dataclass(frozen=True)
class HeldOut:
    templates: frozenset[str]
    skus: frozenset[str]


def held_out(config: DataConfig) -> HeldOut:
    """The templates and SKUs reserved for the test split, chosen per pool by content hash."""
    pools: list[list[str]] = []
    schemas = generated_schemas()
    if "product_query" in schemas:
        product_query = resources.templates("product_query")
        pools += [[t["id"] for t in product_query[lang]] for lang in product_query]
    if "order_request" in schemas:
        order_request = resources.templates("order_request")
        pools += [
            [t["id"] for t in order_request[lang][intent]] for lang in order_request for intent in order_request[lang]
        ]
    faq = resources.templates("faq")
    pools += [[t["id"] for t in faq[lang]] for lang in faq]
    pools += [[q["id"] for q in question_pool(topic, lang)] for topic in resources.policy() for lang in topic.questions]
    refusal = resources.templates("refusal")["kinds"]
    pools += [[t["id"] for t in refusal[kind][lang]] for kind in refusal for lang in refusal[kind]]
    templates = frozenset().union(*(heldout_subset(pool, config.heldout_template_share) for pool in pools))
    by_noun: dict[str, list[str]] = {}
    for product in resources.catalogue():
        by_noun.setdefault(product.noun_zh, []).append(product.sku)
    skus = frozenset().union(*(heldout_subset(pool, config.heldout_sku_share) for pool in by_noun.values()))
    return HeldOut(templates, skus)


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split `total` records over tasks by weight (largest remainder, ties by task name)."""
    weight_sum = sum(weights.values())
    exact = {task: total * weight / weight_sum for task, weight in weights.items()}
    counts = {task: int(value) for task, value in exact.items()}
    leftovers = sorted(exact, key=lambda task: (-(exact[task] - counts[task]), task))
    for task in leftovers[: total - sum(counts.values())]:
        counts[task] += 1
    return counts


def generated_task_mix(config: DataConfig, split: str) -> dict[str, float]:
    """The split's task mix, less `extract` for a shop whose schemas are all its own (its labelled
    records are then the split's extraction records)."""
    mix = config.split_task_mix(split)
    return mix if generated_schemas() else {task: weight for task, weight in mix.items() if task != "extract"}


def generate_split(
    split: str,
    count: int,
    config: DataConfig,
    held: HeldOut,
    seen_elsewhere: set[str],
    validator: RecordValidator,
    limit: TokenLimit | None = None,
) -> list[dict[str, Any]]:
    rng = random.Random(f"shoptune-data:{config.seed}:{split}")
    plan: list[tuple[str, str]] = []
    for task, task_count in allocate(count, generated_task_mix(config, split)).items():
        plan += [(task, config.languages[i % len(config.languages)]) for i in range(task_count)]
    rng.shuffle(plan)
    records: list[dict[str, Any]] = []
    openings: set[str] = set()
    for index, (task, lang) in enumerate(plan):
        record = _draw(rng, split, task, lang, config, held, seen_elsewhere, openings, limit)
        record["id"] = f"{split}-{index:05d}"
        record = {key: record[key] for key in ("id", "task", "lang", "schema", "messages", "meta") if key in record}
        problems = validator.problems(record)
        if problems:
            raise AssertionError(f"generator bug, invalid {task} record: {problems}")
        openings.add(user_messages(record)[0])
        records.append(record)
    return records


def _draw(
    rng: random.Random,
    split: str,
    task: str,
    lang: str,
    config: DataConfig,
    held: HeldOut,
    seen_elsewhere: set[str],
    openings: set[str],
    limit: TokenLimit | None,
) -> dict[str, Any]:
    for attempt in range(MAX_DRAWS):
        heldout = split == "test" and rng.random() < config.test_heldout_share
        ctx = TaskContext(
            rng, lang, split, config.system_prompt, heldout, held.templates, held.skus, config.extraction_prompt
        )
        try:
            draft = TASK_BUILDERS[task](ctx)
        except Redraw:
            continue
        users = user_messages(draft)
        if any(user in seen_elsewhere for user in users):
            continue  # would leak a user message across splits
        if users[0] in openings and attempt < MAX_DRAWS // 2:
            continue  # prefer variety inside a split; accept a repeat only when templates run dry
        if limit is not None and limit.count(draft["messages"]) > limit.max_tokens:
            continue
        meta = {
            "templates": ctx.used_templates,
            "skus": ctx.used_skus,
            "heldout_templates": any(t in held.templates for t in ctx.used_templates),
            "heldout_skus": any(s in held.skus for s in ctx.used_skus),
            **draft.get("meta_extra", {}),
        }
        record = {"task": draft["task"], "lang": lang, "messages": draft["messages"], "meta": meta}
        if "schema" in draft:
            record["schema"] = draft["schema"]
        return record
    raise RuntimeError(f"could not draw a distinct {task}/{lang} record for {split} after {MAX_DRAWS} tries")


def to_jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)


def build_splits(
    config: DataConfig, limit: TokenLimit | None = None
) -> tuple[dict[str, list[dict[str, Any]]], ImportedSplits]:
    """Each split: its share of the shop's imported records, the rest generated; no user message in
    two splits. Also what was imported (for the manifest)."""
    held = held_out(config)
    validator = RecordValidator(resources.schemas())
    importing = bool(imported_files(config))
    imported = deal_imported(config, SPLITS, _fits(limit)) if importing else ImportedSplits()
    splits: dict[str, list[dict[str, Any]]] = {}
    seen: dict[str, set[str]] = {split: imported.texts(split) for split in SPLITS}
    for split in SPLITS:
        others = set().union(*(texts for other, texts in seen.items() if other != split))
        own = imported.records.get(split, [])
        count = getattr(config, f"{split}_records") - len(own)
        records = [*own, *generate_split(split, count, config, held, others, validator, limit)]
        if own:
            random.Random(f"shoptune-mix:{config.seed}:{split}").shuffle(records)
        splits[split] = records
        seen[split] = {user for record in records for user in user_messages(record)}
    return splits, imported


def _fits(limit: TokenLimit | None) -> Fits:
    if limit is None:
        return lambda messages: True
    return lambda messages: limit.count(messages) <= limit.max_tokens


def hygiene_report(splits: dict[str, list[dict[str, Any]]], held: HeldOut) -> dict[str, Any]:
    """Measured, not assumed: overlaps between splits and how much of test is held out."""
    users = {split: {u for r in records for u in user_messages(r)} for split, records in splits.items()}
    overlaps = {f"{a}/{b}": len(users[a] & users[b]) for i, a in enumerate(SPLITS) for b in SPLITS[i + 1 :]}
    test = splits["test"]
    with_templates = sum(r["meta"]["heldout_templates"] for r in test)
    with_skus = sum(r["meta"]["heldout_skus"] for r in test)
    leaked = sum(
        r["meta"]["heldout_templates"] or r["meta"]["heldout_skus"] for split in ("train", "val") for r in splits[split]
    )
    return {
        "user_messages_shared_between_splits": overlaps,
        "heldout_templates": len(held.templates),
        "heldout_skus": len(held.skus),
        "test_records": len(test),
        "test_records_with_heldout_templates": with_templates,
        "test_records_with_heldout_skus": with_skus,
        "test_heldout_template_share": round(with_templates / len(test), 4) if test else 0.0,
        "test_heldout_sku_share": round(with_skus / len(test), 4) if test else 0.0,
        "train_val_records_using_heldout_items": leaked,
    }


def split_counts(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "records": len(records),
        "by_task": dict(sorted(Counter(r["task"] for r in records).items())),
        "by_lang": dict(sorted(Counter(r["lang"] for r in records).items())),
        "by_schema": dict(sorted(Counter(r["schema"] for r in records if "schema" in r).items())),
        "turns": dict(sorted(Counter(sum(m["role"] == "user" for m in r["messages"]) for r in records).items())),
    }


def build_dataset(config: DataConfig, out_dir: Path, limit: TokenLimit | None = None) -> dict[str, Any]:
    """Write train/val/test.jsonl and manifest.json into `out_dir`; return the manifest."""
    splits, imported = build_splits(config, limit)
    held = held_out(config)
    files: dict[str, Any] = {}
    for split, records in splits.items():
        text = to_jsonl(records)
        atomic_write_text(out_dir / f"{split}.jsonl", text)
        files[f"{split}.jsonl"] = {"sha256": sha256_bytes(text.encode("utf-8")), "records": len(records)}
    manifest = {
        "generator": "shoptune.data.build",
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "data_config": config.model_dump(mode="json"),
        "sources": resources.source_hashes(),
        "token_limit": {"model": limit.model, "max_tokens": limit.max_tokens} if limit else None,
        "files": files,
        "counts": {split: split_counts(records) for split, records in splits.items()},
        "split_hygiene": hygiene_report(splits, held),
        "imported": imported.summary() if imported_files(config) else None,
    }
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def token_limit_for(model_name: str, tokenizer: Any, max_tokens: int) -> TokenLimit:
    """A `TokenLimit` that counts tokens exactly as training will (the model's chat template)."""
    from shoptune.shop.render import render_record

    return TokenLimit(
        model=model_name,
        max_tokens=max_tokens,
        count=lambda messages: len(render_record(tokenizer, messages).input_ids),
    )
