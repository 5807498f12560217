"""How the storefront asks the model for an answer: the sampling arguments of its two kinds of call.

The storefront and the evaluation backends both build their requests here, so an evaluation
through an endpoint measures exactly what a shopper gets: the same greedy decoding, token budgets,
penalties and, for extraction, the same guided decoding.
"""

from __future__ import annotations

from typing import Any

from shoptune.config.schema import ServeConfig
from shoptune.shop.structured import response_format


def extraction_request(schema_name: str, max_tokens: int, *, structured: bool = True) -> dict[str, Any]:
    """Sampling arguments of an extraction call (greedy, `max_tokens` from `serve.extraction_max_tokens`),
    with guided decoding or without.

    The storefront always decodes guided; `eval run --free-form` and the parity gate drop only the
    `response_format`, so any difference between the two is the grammar's and nothing else.
    """
    request: dict[str, Any] = {"temperature": 0.0, "max_tokens": max_tokens}
    if structured:
        request["response_format"] = response_format(schema_name)
    return request


def reply_request(serve: ServeConfig) -> dict[str, Any]:
    """Sampling arguments of a chat or recommendation reply: greedy, the storefront's token budget,
    penalties and stop strings (vLLM's own `repetition_penalty` travels in `extra_body`)."""
    request: dict[str, Any] = {
        "temperature": 0.0,
        "max_tokens": serve.max_new_tokens,
        "frequency_penalty": serve.frequency_penalty,
    }
    if serve.repetition_penalty != 1.0:
        request["extra_body"] = {"repetition_penalty": serve.repetition_penalty}
    if serve.reply_stop:
        request["stop"] = list(serve.reply_stop)
    return request
