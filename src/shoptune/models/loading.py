"""Load a prepared model the one safe way: safetensors only, no remote code, offline.

Every stage (chat, train, merge, eval) loads through here, so the safety settings and the
dtype policy are decided once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DtypeName = Literal["auto", "float32", "bfloat16", "float16"]


def resolve_dtype(name: DtypeName, device: str) -> torch.dtype:
    """ "auto" is bfloat16 on CUDA and float32 on CPU (the well-tested CPU path)."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_transformers() -> None:
    """Drop transformers' per-load progress bars; shoptune shows its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False, local_files_only=True)


def load_causal_lm(model_dir: Path, dtype: DtypeName = "auto", device: str | None = None) -> PreTrainedModel:
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    device = device or default_device()
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        dtype=resolve_dtype(dtype, device),
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
    )
    return model.to(device).eval()
