"""Load the base model for training and wrap it with LoRA adapters (PEFT).

Frozen base weights in the compute precision: bf16 on a GPU and, with bf16 autocast, on a CPU too
(no per-step cast of every weight: 12% faster steps here); fp16 on a GPU; fp32 otherwise; 4-bit nf4
with double quantisation for QLoRA. The adapters themselves stay fp32 (PEFT upcasts them).

No `modules_to_save`: vLLM rejects adapters that carry `embed_tokens`/`lm_head`, so adapters stay
pure low-rank deltas on the projections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoptune.config.schema import TrainConfig
from shoptune.core.errors import BadInputError, EnvironmentProblem


def weights_dtype(config: TrainConfig, device: str):
    import torch

    if device.startswith("cuda"):
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[config.precision]
    return torch.bfloat16 if config.precision == "bf16" else torch.float32  # CPU fp16: no autocast, fp32


def quantization_config(config: TrainConfig):
    if config.adapter != "qlora":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if config.precision == "bf16" else torch.float16,
    )


def load_base_for_training(model_dir: Path, config: TrainConfig, device: str) -> Any:
    from transformers import AutoModelForCausalLM

    from shoptune.core.hardware import resolve_attention

    if config.adapter == "qlora" and not device.startswith("cuda"):
        raise EnvironmentProblem(
            "train.adapter=qlora needs a CUDA GPU (bitsandbytes 4-bit); use train.adapter=lora on this machine"
        )
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir),
        dtype=weights_dtype(config, device),
        quantization_config=quantization_config(config),
        use_safetensors=True,
        trust_remote_code=False,
        local_files_only=True,
        attn_implementation=resolve_attention(config.attention, device),
    )
    if config.adapter == "qlora":
        prepare_for_4bit_training(model, config)
    model.config.use_cache = False  # the KV cache is for generation; in training it only costs memory
    return model


def prepare_for_4bit_training(model: Any, config: TrainConfig) -> None:
    """Freeze the base and let gradients reach the adapters through checkpointed layers.

    Not `peft.prepare_model_for_kbit_training`: it upcasts every parameter that is not 4-bit
    to fp32, the embeddings and LM head included: on Qwen2.5-7B, 1.09B frozen parameters
    doubled in size for nothing (they get no gradient and compute runs in bf16 either way).
    Measured on an H100 at batch 1 x 512 (scripts/gpu_smoke.py): peak 8.23 GiB with it,
    5.75 GiB with this, same losses.
    """
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    if config.gradient_checkpointing:
        # Checkpointed blocks only backpropagate into inputs that require grad; with the
        # embeddings frozen, make their output require it so the LoRA weights inside get grads.
        model.enable_input_require_grads()


def check_target_modules(model: Any, config: TrainConfig) -> None:
    """Every configured target module must exist; PEFT silently skips names that match nothing."""
    import torch

    linear_names = {
        name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
    }
    missing = [name for name in config.target_modules if name not in linear_names]
    if missing:
        raise BadInputError(
            f"train.target_modules: {missing} match no linear layer of this model; "
            f"its linear layers are named {sorted(linear_names - {'lm_head'})}"
        )


def adapted_layers(layers: int, config: TrainConfig) -> list[int] | None:
    """Indices of the decoder layers (of `layers`) that get adapters: the top `lora_top_layers`, or
    None for all. The training run and `train --dry-run`'s estimate both count with this."""
    if config.lora_top_layers is None:
        return None
    if config.lora_top_layers > layers:
        raise BadInputError(f"train.lora_top_layers: {config.lora_top_layers} but this model has {layers} layers")
    return list(range(layers - config.lora_top_layers, layers))


def lora_config(config: TrainConfig, layers_to_transform: list[int] | None = None):
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        layers_to_transform=layers_to_transform,
        use_rslora=config.use_rslora,
        use_dora=config.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def with_lora(model: Any, config: TrainConfig) -> Any:
    from peft import get_peft_model

    check_target_modules(model, config)
    return get_peft_model(model, lora_config(config, adapted_layers(model.config.num_hidden_layers, config)))


def loraplus_optimizer(model: Any, arguments: Any, ratio: float) -> Any:
    """The optimizer `arguments` name (e.g. AdamW) over the adapter's parameters, with the B
    matrices at `ratio` times the learning rate (LoRA+). The Trainer builds its schedule on top, so
    warm-up and decay scale both rates alike."""
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(arguments, model)
    optimizer_kwargs.pop("lr", None)
    return create_loraplus_optimizer(
        model,
        optimizer_cls,
        lr=arguments.learning_rate,
        loraplus_lr_ratio=ratio,
        loraplus_weight_decay=arguments.weight_decay,
        **optimizer_kwargs,
    )


def init_adapter_dir(where: str, base_model: str) -> Path:
    """The adapter folder `train.init_adapter` names: a finished run folder's `final/adapter`, or an
    adapter folder itself. A run trained on another base model is refused."""
    import json

    folder = Path(where)
    adapter = folder / "final" / "adapter" if (folder / "final" / "adapter").is_dir() else folder
    if not (adapter / "adapter_config.json").is_file():
        raise BadInputError(
            f"train.init_adapter: {where} is neither a finished training run nor an adapter folder "
            "(no final/adapter/adapter_config.json or adapter_config.json)"
        )
    manifest = folder / "manifest.json"
    if adapter != folder and manifest.is_file():
        trained_on = json.loads(manifest.read_text(encoding="utf-8")).get("base_model", {}).get("name")
        if trained_on and trained_on != base_model:
            raise BadInputError(
                f"train.init_adapter: {where} was trained on {trained_on}, this run's model is {base_model}"
            )
    from shoptune.models.local_dir import require_adapter_dir

    return require_adapter_dir(adapter, "train.init_adapter")


def with_init_adapter(model: Any, adapter: Path) -> Any:
    """`model` with a trained adapter loaded to go on training (its LoRA shape is the adapter's own)."""
    from peft import PeftModel

    from shoptune.models.local_dir import require_adapter_dir

    return PeftModel.from_pretrained(model, str(require_adapter_dir(adapter, "train.init_adapter")), is_trainable=True)
