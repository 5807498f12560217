"""`shoptune merge RUN_DIR --out DIR`: fold a run's LoRA adapter into its base model, with a parity gate.

    shoptune merge runs/tiny-qwen --out runs/tiny-qwen/merged

The merged model (safetensors, the training tokenizer and chat template, a generation config
that stops at `<|im_end|>`) is written to a staging folder, reloaded from disk, and compared
with base + adapter on fixed probe conversations: the logits must agree within a tolerance
(printed with the measured max abs difference) and greedy generations must be identical.
Only then is it renamed into place; otherwise the command exits 1 and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shoptune.config import load_config, write_resolved_config
from shoptune.config.schema import DEFAULT_SYSTEM_PROMPT
from shoptune.core.atomic import atomic_directory, atomic_write_json
from shoptune.core.errors import BadInputError, ShoptuneError
from shoptune.core.hashing import sha256_file
from shoptune.core.provenance import provenance
from shoptune.models.local_dir import require_adapter_dir
from shoptune.shop import resources
from shoptune.shop.prompts import extraction_system_prompt
from shoptune.train.run_folder import RunFolder

MERGE_REPORT_NAME = "shoptune-merge.json"
DEFAULT_ATOL = {"float32": 1e-3, "bfloat16": 5e-2, "float16": 5e-2}
"""Logit tolerance by dtype: fp32 merging reorders float additions only; half precision rounds."""


class ParityFailed(ShoptuneError):
    exit_code = 1


@dataclass(frozen=True)
class MergeReport:
    out_dir: str
    probes: int
    max_abs_logit_diff: float
    atol: float
    generations_identical: bool
    dtype: str
    warnings: list[str]


def probe_conversations(
    system_prompt: str = DEFAULT_SYSTEM_PROMPT, extraction_prompt: str = "outline"
) -> list[list[dict[str, str]]]:
    """Fixed probes covering the shop's tasks in both languages."""
    schema = resources.schemas()["product_query"]
    extraction = extraction_system_prompt("product_query", schema, extraction_prompt)
    return [
        [
            {"role": "system", "content": extraction},
            {"role": "user", "content": "我想找一款红色的小米手机，价格在2000到3000之间"},
        ],
        [
            {"role": "system", "content": extraction},
            {"role": "user", "content": "a black Nike running shoe in size 42 under 800"},
        ],
        [{"role": "system", "content": system_prompt}, {"role": "user", "content": "退货政策是怎样的？"}],
        [
            {"role": "system", "content": system_prompt},
            {"role": "user", "content": "Do you have any laptops under 5000?"},
        ],
    ]


def adapter_warnings(adapter_dir: Path) -> list[str]:
    """vLLM serves LoRA adapters that only hold low-rank deltas; say so when this one does not."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    warnings = []
    if config.get("modules_to_save"):
        warnings.append(f"adapter saves full modules {config['modules_to_save']}; vLLM rejects such adapters")
    from safetensors import safe_open

    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as weights:
        full = sorted(
            {key for key in weights.keys() if ("embed_tokens" in key or "lm_head" in key) and "lora_" not in key}  # noqa: SIM118 (safe_open is not a dict)
        )
    if full:
        warnings.append(f"adapter stores embed_tokens/lm_head weights ({len(full)} tensors); vLLM rejects them")
    return warnings


def _probe_outputs(model: Any, tokenizer: Any, probes: list[list[dict[str, str]]], max_new_tokens: int):
    import torch

    from shoptune.models.generation import encode_chat, new_tokens

    logits, generations = [], []
    for messages in probes:
        encoded = encode_chat(tokenizer, messages, model.device)
        with torch.inference_mode():
            logits.append(model(**encoded).logits.float().cpu())
        generations.append(new_tokens(model, tokenizer, encoded, max_new_tokens=max_new_tokens)[0].tolist())
    return logits, generations


def merge_run(
    run_dir: Path,
    out_dir: Path,
    *,
    atol: float | None = None,
    max_new_tokens: int = 24,
    log: Callable[[str], None] = print,
) -> MergeReport:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from shoptune.models import resolve_config_model
    from shoptune.models.identity import model_identity
    from shoptune.models.loading import default_device, load_tokenizer, quiet_transformers, resolve_dtype

    quiet_transformers()
    run = RunFolder(Path(run_dir))
    if not (run.adapter / "adapter_config.json").is_file() or not run.config.is_file():
        raise BadInputError(f"{run_dir} is not a finished training run (no final/adapter/ or config.yaml)")
    config = load_config(run.config)
    device = default_device()
    dtype = resolve_dtype("auto" if config.model.dtype == "auto" else config.model.dtype, device)
    dtype_name = str(dtype).removeprefix("torch.")
    atol = atol if atol is not None else DEFAULT_ATOL[dtype_name]
    warnings = adapter_warnings(run.adapter)
    for warning in warnings:
        log(f"warning: {warning}")

    model_dir = resolve_config_model(config.model, log=log)
    tokenizer = load_tokenizer(run.adapter)
    probes = probe_conversations(config.data.system_prompt, config.data.extraction_prompt)
    base = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=dtype, use_safetensors=True, local_files_only=True
    )
    with_adapter = PeftModel.from_pretrained(base, str(require_adapter_dir(run.adapter))).to(device).eval()
    reference_logits, reference_generations = _probe_outputs(with_adapter, tokenizer, probes, max_new_tokens)
    merged = with_adapter.merge_and_unload()
    eos = {tokenizer.eos_token_id}
    configured = merged.generation_config.eos_token_id
    eos |= set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    merged.generation_config.eos_token_id = sorted(eos) if len(eos) > 1 else tokenizer.eos_token_id
    merged.generation_config.pad_token_id = tokenizer.pad_token_id

    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as staging:
        merged.save_pretrained(str(staging), safe_serialization=True)
        tokenizer.save_pretrained(str(staging))
        del merged, with_adapter, base
        reloaded = (
            AutoModelForCausalLM.from_pretrained(str(staging), dtype=dtype, use_safetensors=True).to(device).eval()
        )
        merged_logits, merged_generations = _probe_outputs(reloaded, tokenizer, probes, max_new_tokens)
        max_diff = max(float((a - b).abs().max()) for a, b in zip(reference_logits, merged_logits, strict=True))
        identical = merged_generations == reference_generations
        report = MergeReport(str(out_dir), len(probes), max_diff, atol, identical, dtype_name, warnings)
        log(
            f"parity on {len(probes)} probes: max |logit diff| = {max_diff:.3g} (tolerance {atol:g}); "
            f"greedy generations {'identical' if identical else 'DIFFER'}"
        )
        if max_diff > atol or not identical:
            raise ParityFailed(
                f"merged model differs from base + adapter (max |logit diff| {max_diff:.3g}, tolerance {atol:g}, "
                f"generations {'identical' if identical else 'differ'}); nothing written to {out_dir}"
            )
        write_resolved_config(config, staging, header=f"merged from {run.root}")
        atomic_write_json(
            staging / MERGE_REPORT_NAME,
            {
                **asdict(report),
                "run": str(run.root),
                "adapter_sha256": sha256_file(run.adapter / "adapter_model.safetensors"),
                "base_model": model_identity(config.model.name, model_dir),
                **provenance(),
            },
        )
    return report
