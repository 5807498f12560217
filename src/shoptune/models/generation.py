"""Generation with transformers, as every in-process path does it: greedy unless a temperature is
given, the pad token set, only the new tokens returned.

The chat command, the merge parity probes, the in-process eval backend and the mid-training
generation metrics all decode through `new_tokens`, so they agree with each other token for token.
"""

from __future__ import annotations

from typing import Any

GREEDY: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
"""`generate` settings for greedy decoding; the None values silence a model's sampling defaults."""


def encode_chat(tokenizer: Any, messages: list[dict[str, str]], device: Any) -> Any:
    """One conversation through the chat template, ready for the assistant's turn, on `device`."""
    return tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    ).to(device)


def new_tokens(model: Any, tokenizer: Any, encoded: Any, *, max_new_tokens: int, temperature: float = 0.0) -> Any:
    """The tokens `model` generates after `encoded` (a batch; left padded when longer than one), one row each."""
    import torch

    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else GREEDY
    with torch.inference_mode():
        output = model.generate(
            **encoded, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, use_cache=True, **sampling
        )
    return output[:, encoded["input_ids"].shape[1] :]
