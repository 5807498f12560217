"""`shoptune data stats FILE [--model NAME]`: what a corpus holds, and how long it is in tokens."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from shoptune.data.tasks.context import normalise_message
from shoptune.shop.render import render_record


def _distribution(values: list[int]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"min": ordered[0], "median": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def corpus_stats(records: list[dict[str, Any]], tokenizer: Any | None = None) -> dict[str, Any]:
    firsts = Counter(
        normalise_message(next(m["content"] for m in r["messages"] if m["role"] == "user")) for r in records
    )
    stats: dict[str, Any] = {
        "records": len(records),
        "by_task": dict(sorted(Counter(r["task"] for r in records).items())),
        "by_lang": dict(sorted(Counter(r["lang"] for r in records).items())),
        "by_task_and_lang": {
            f"{task}/{lang}": n for (task, lang), n in sorted(Counter((r["task"], r["lang"]) for r in records).items())
        },
        "by_schema": dict(sorted(Counter(r["schema"] for r in records if "schema" in r).items())),
        "user_turns": dict(sorted(Counter(sum(m["role"] == "user" for m in r["messages"]) for r in records).items())),
        "duplicates": {
            "ids": sum(n - 1 for n in Counter(r["id"] for r in records).values() if n > 1),
            "opening_user_messages": sum(n - 1 for n in firsts.values() if n > 1),
        },
    }
    if tokenizer is not None:
        rendered = [render_record(tokenizer, r["messages"]) for r in records]
        stats["tokens"] = _distribution([len(r.input_ids) for r in rendered])
        stats["trainable_tokens"] = _distribution([r.trainable_tokens for r in rendered])
        stats["tokens_total"] = sum(len(r.input_ids) for r in rendered)
    return stats
