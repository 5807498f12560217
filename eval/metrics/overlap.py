"""Reference overlap with the usual libraries: chrF (sacrebleu) and ROUGE-L (rouge-score).

ROUGE-L tokenises Chinese by character and English by word, so both languages are measured on
units that carry meaning. Scores are in [0, 1].
"""

from __future__ import annotations

import functools
import re
from typing import Any

_TOKENS = re.compile(r"[\u3400-\u9fff]|[A-Za-z0-9]+(?:['.][A-Za-z0-9]+)*")


class _MixedTokenizer:
    def tokenize(self, text: str) -> list[str]:
        return [token.lower() for token in _TOKENS.findall(text)]


@functools.cache
def _chrf():
    from sacrebleu.metrics import CHRF

    return CHRF()


@functools.cache
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_MixedTokenizer())


def score_record(record: dict[str, Any], output: str | None) -> dict[str, float | None]:
    reference = record["messages"][-1]["content"]
    hypothesis = output or ""
    chrf = _chrf().sentence_score(hypothesis, [reference]).score / 100.0
    rouge = _rouge().score(reference, hypothesis)["rougeL"].fmeasure
    return {"chrf": chrf, "rouge_l": rouge}
