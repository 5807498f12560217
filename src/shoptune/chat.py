"""One-shot chat with a model in-process (transformers `generate`), for a quick look at its answers.

    shoptune chat "I need a phone under 2000 yuan, what do you have?"
    shoptune chat --model tiny-qwen2.5 --max-new-tokens 8 "你好"

The conversation is rendered by the model's own chat template with the config's system
prompt, exactly as training and serving render it. Decoding is greedy so answers repeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from shoptune.models.generation import encode_chat, new_tokens
from shoptune.models.loading import DtypeName, load_causal_lm, load_tokenizer


@dataclass(frozen=True)
class ChatReply:
    text: str
    new_tokens: int
    seconds: float
    stopped_at_eos: bool


def generate_reply(
    model_dir: Path,
    messages: list[dict[str, str]],
    *,
    max_new_tokens: int = 128,
    dtype: DtypeName = "auto",
) -> ChatReply:
    tokenizer = load_tokenizer(model_dir)
    model = load_causal_lm(model_dir, dtype=dtype)
    encoded = encode_chat(tokenizer, messages, model.device)
    started = time.perf_counter()
    new_ids = new_tokens(model, tokenizer, encoded, max_new_tokens=max_new_tokens)[0].tolist()
    seconds = time.perf_counter() - started
    eos_ids = model.generation_config.eos_token_id
    eos_ids = set(eos_ids if isinstance(eos_ids, list) else [eos_ids])
    return ChatReply(
        text=tokenizer.decode(new_ids, skip_special_tokens=True).strip(),
        new_tokens=len(new_ids),
        seconds=seconds,
        stopped_at_eos=bool(new_ids) and new_ids[-1] in eos_ids,
    )
