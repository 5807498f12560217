"""Optional LLM-as-judge with a written rubric (eval/tasks/judge_rubric.md), through any
OpenAI-compatible endpoint. Off by default. Failures (errors, timeouts, no valid grade) are
counted, and the run fails when their share exceeds `eval.judge_max_error_rate`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shoptune.config.schema import EvalConfig
from shoptune.core.errors import ShoptuneError
from shoptune.shop.records import last_question

RUBRIC = Path(__file__).resolve().parent / "tasks" / "judge_rubric.md"
GRADE_SCHEMA = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}, "reason": {"type": "string"}},
    "required": ["score", "reason"],
    "additionalProperties": False,
}


class JudgeFailed(ShoptuneError):
    exit_code = 1


def _grade(client: Any, model: str, rubric: str, record: dict[str, Any], output: str | None) -> float | None:
    question = last_question(record)
    prompt = (
        f"Shopper: {question}\n\nReference reply: {record['messages'][-1]['content']}\n\n"
        f"Assistant reply: {output or ''}"
    )
    try:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": rubric}, {"role": "user", "content": prompt}],
            temperature=0.0,
            max_tokens=120,
            response_format={"type": "json_schema", "json_schema": {"name": "grade", "schema": GRADE_SCHEMA}},
        )
        grade = json.loads(reply.choices[0].message.content or "")
        score = int(grade["score"])
    except Exception:  # a judge failure of any kind is counted, never fatal on its own
        return None
    return (score - 1) / 4 if 1 <= score <= 5 else None


def judge(records: Sequence[dict[str, Any]], outputs: dict[str, str], config: EvalConfig) -> dict[str, Any]:
    """`{id: score in [0, 1] or None}` plus the failure count; raises past the allowed error rate."""
    from openai import OpenAI

    assert config.judge_endpoint and config.judge_model
    client = OpenAI(base_url=config.judge_endpoint, api_key="EMPTY", timeout=120, max_retries=1)
    rubric = RUBRIC.read_text(encoding="utf-8")
    judged = [r for r in records if r["task"] != "extract"]
    with ThreadPoolExecutor(max_workers=config.concurrency) as pool:
        grades = list(pool.map(lambda r: _grade(client, config.judge_model, rubric, r, outputs.get(r["id"])), judged))
    failures = sum(g is None for g in grades)
    rate = failures / len(judged) if judged else 0.0
    if rate > config.judge_max_error_rate:
        raise JudgeFailed(
            f"LLM judge failed on {failures} of {len(judged)} records ({rate:.0%}), above "
            f"eval.judge_max_error_rate={config.judge_max_error_rate:.0%}; judge: {config.judge_endpoint}"
        )
    return {
        "scores": {r["id"]: g for r, g in zip(judged, grades, strict=True)},
        "failures": failures,
        "judged": len(judged),
    }
