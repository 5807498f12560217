"""`shoptune train CONFIG --dry-run`: plan a run before paying for GPU hours.

Reads only the model's `config.json` (no weights) and the train config, and prints:

- parameters: total (counted from the architecture, exactly as transformers builds it) and
  LoRA-trainable (r * (in + out) per adapted projection per layer);
- GPU memory: frozen weights (bf16/fp16 2 bytes, fp32 4, nf4 4-bit with double quantisation
  ~0.516 bytes for the quantised linear layers; embeddings and norms stay 16-bit), LoRA adapters,
  their gradients and AdamW states (fp32: 4 + 4 + 8 bytes per trainable parameter), activations
  with and without gradient checkpointing, the fused LM head's [4096 x 32768] fp32 tile, and a fixed
  1 GiB for the CUDA context and allocator slack;
- tokens per optimizer step (upper bound: every record at max_length), FLOPs per token (LoRA:
  forward 2N + input-gradient backward 2N, + 2N recomputation with checkpointing) and, for a
  given peak TFLOP/s, a time estimate at an assumed 40% model FLOPs utilisation.

Activations per token per layer (16-bit, FlashAttention/SDPA, so no s^2 term): the tensors kept
for backward are the two norm outputs (2H), q, k, v (H + 2*KV), the attention output (H), the
o_proj output (H), gate, up and their product (3I): (6H + 2KV + 3I) elements. With checkpointing
only each layer's input (H) is kept, plus one layer's full set during recomputation.
Preference methods batch two sequences per record (the chosen and the rejected answer; KTO: the
answer and its KL neighbour), so a micro-batch holds twice the tokens. DPO's and KTO's reference
is the policy with its adapter off: no second copy of the weights, one more forward pass (2N per
token, no activations kept); with `train.init_adapter`, a frozen fp32 copy of that adapter. ORPO
and SimPO run on TRL's older trainers, which materialise the full fp32 logits ([tokens x
vocabulary], with their log-softmax and gradient) instead of the fused head's tile.
GRPO samples `num_generations` answers per prompt and trains on all of them: a micro-batch holds
that many sequences per prompt, and sampling adds a forward pass (2N per token) and its KV cache
(2 x KV heads x head size per token per layer, 16-bit); colocated vLLM also holds its own 16-bit
copy of the weights (4-bit under QLoRA), inside the share of the card it reserves. With
`grpo.beta` > 0 there is a reference pass, as in DPO.
How these figures compare with published ones is in the README ("Planning a GPU run").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shoptune.config.schema import ShoptuneConfig
from shoptune.train.model import adapted_layers

GIB = 1024**3
CUDA_OVERHEAD_BYTES = 1 * GIB
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)
"""4 bits per weight + 8-bit absmax per 64-weight block (double quantisation) + fp32 second-level
constants per 256 blocks: ~0.516 bytes."""
LORA_BYTES_PER_PARAM = 4 + 4 + 8
"""fp32 adapter weight, its gradient, and AdamW's two moments."""
FUSED_HEAD_VOCAB_CHUNK = 32768
FUSED_HEAD_TOKEN_CHUNK = 4096
"""TRL's chunked log-prob kernel projects [4096 tokens x 32768 vocabulary] tiles at a time."""
ASSUMED_MFU = 0.4
REFERENCE_METHODS = ("dpo", "kto")
"""Preference methods with a reference forward pass (the adapter switched off); GRPO has one when
its beta is above 0."""
FULL_LOGITS_METHODS = ("orpo", "simpo")
"""Methods whose TRL trainer builds the full logits, not the fused head's tiles."""
FULL_LOGITS_COPIES = 3
"""fp32 logits, their log-softmax, and the gradient flowing back through them."""


@dataclass(frozen=True)
class Architecture:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied_embeddings: bool
    qkv_bias: bool

    @classmethod
    def from_config(cls, config: dict) -> Architecture:
        heads = config["num_attention_heads"]
        return cls(
            hidden=config["hidden_size"],
            intermediate=config["intermediate_size"],
            layers=config["num_hidden_layers"],
            heads=heads,
            kv_heads=config.get("num_key_value_heads") or heads,
            head_dim=config.get("head_dim") or config["hidden_size"] // heads,
            vocab=config["vocab_size"],
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            qkv_bias=config.get("model_type") == "qwen2" or bool(config.get("attention_bias", False)),
        )

    def projection_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear projection in one decoder layer."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        return {
            "q_proj": (self.hidden, q),
            "k_proj": (self.hidden, kv),
            "v_proj": (self.hidden, kv),
            "o_proj": (q, self.hidden),
            "gate_proj": (self.hidden, self.intermediate),
            "up_proj": (self.hidden, self.intermediate),
            "down_proj": (self.intermediate, self.hidden),
        }

    def linear_parameters(self) -> int:
        per_layer = sum(i * o for i, o in self.projection_shapes().values())
        if self.qkv_bias:
            per_layer += self.heads * self.head_dim + 2 * self.kv_heads * self.head_dim
        return per_layer * self.layers

    def other_parameters(self) -> int:
        """Embeddings, LM head (unless tied) and RMSNorm weights: never quantised."""
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        norms = self.layers * 2 * self.hidden + self.hidden
        return embeddings + norms

    def total_parameters(self) -> int:
        return self.linear_parameters() + self.other_parameters()


@dataclass(frozen=True)
class Estimate:
    model: str
    total_parameters: int
    trainable_parameters: int
    weights_gib: float
    lora_states_gib: float
    activations_gib_with_checkpointing: float
    activations_gib_without_checkpointing: float
    lm_head_chunk_gib: float
    """The fused head's tile, or (ORPO, SimPO) the full logits."""
    generation_gib: float
    """GRPO's sampling: the KV cache of a micro-batch's answers, and colocated vLLM's weights."""
    overhead_gib: float
    total_gib: float
    """With the configured gradient-checkpointing setting."""
    tokens_per_step: int
    flops_per_token: float
    seconds_per_step: float | None
    peak_tflops: float | None


def lora_parameters(arch: Architecture, targets: tuple[str, ...], rank: int, layers: int | None = None) -> int:
    """LoRA parameters on `targets` in `layers` decoder layers (None: every layer)."""
    shapes = arch.projection_shapes()
    layers = arch.layers if layers is None else layers
    return layers * sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets if t in shapes)


def estimate(config: ShoptuneConfig, model_config: dict, *, peak_tflops: float | None = None) -> Estimate:
    train = config.train
    arch = Architecture.from_config(model_config)
    adapted = adapted_layers(arch.layers, train)
    trainable = lora_parameters(arch, train.target_modules, train.lora_r, None if adapted is None else len(adapted))
    half = 4 if train.precision == "fp32" else 2
    if train.adapter == "qlora":
        weights = arch.linear_parameters() * NF4_BYTES_PER_PARAM + arch.other_parameters() * 2
    else:
        weights = arch.total_parameters() * half
    lora_states = trainable * LORA_BYTES_PER_PARAM
    if has_reference_pass(config) and train.init_adapter:
        lora_states += trainable * 4  # TRL's frozen fp32 copy of the initial adapter: the reference
    micro_tokens = train.per_device_batch_size * train.max_length * sequences_per_record(config)
    kv = arch.kv_heads * arch.head_dim
    generation = generation_bytes(config, arch, micro_tokens, kv, weights) if train.method == "grpo" else 0
    full_layer = (6 * arch.hidden + 2 * kv + 3 * arch.intermediate) * half
    without = micro_tokens * arch.layers * full_layer
    with_checkpointing = micro_tokens * (arch.layers * arch.hidden * half + full_layer)
    if train.method in FULL_LOGITS_METHODS:
        head_chunk = micro_tokens * arch.vocab * 4 * FULL_LOGITS_COPIES
    else:
        head_tile = min(micro_tokens, FUSED_HEAD_TOKEN_CHUNK) * min(arch.vocab, FUSED_HEAD_VOCAB_CHUNK)
        head_chunk = head_tile * 4 * 2  # fp32 logits tile + its gradient in backward
    activations = with_checkpointing if train.gradient_checkpointing else without
    total = weights + lora_states + activations + head_chunk + generation + CUDA_OVERHEAD_BYTES
    n = arch.total_parameters()
    passes = (6 if train.gradient_checkpointing else 4) + (2 if has_reference_pass(config) else 0)
    flops_per_token = (passes + (2 if train.method == "grpo" else 0)) * n  # GRPO: + sampling's forward pass
    tokens_per_step = micro_tokens * train.gradient_accumulation_steps
    seconds = tokens_per_step * flops_per_token / (peak_tflops * 1e12 * ASSUMED_MFU) if peak_tflops else None
    return Estimate(
        model=config.model.name,
        total_parameters=n,
        trainable_parameters=trainable,
        weights_gib=weights / GIB,
        lora_states_gib=lora_states / GIB,
        activations_gib_with_checkpointing=with_checkpointing / GIB,
        activations_gib_without_checkpointing=without / GIB,
        lm_head_chunk_gib=head_chunk / GIB,
        generation_gib=generation / GIB,
        overhead_gib=CUDA_OVERHEAD_BYTES / GIB,
        total_gib=total / GIB,
        tokens_per_step=tokens_per_step,
        flops_per_token=float(flops_per_token),
        seconds_per_step=seconds,
        peak_tflops=peak_tflops,
    )


def has_reference_pass(config: ShoptuneConfig) -> bool:
    train = config.train
    return train.method in REFERENCE_METHODS or (train.method == "grpo" and train.grpo.beta > 0)


def generation_bytes(config: ShoptuneConfig, arch: Architecture, micro_tokens: int, kv: int, weights: float) -> float:
    """GRPO's sampling memory on the training GPU: the KV cache of a micro-batch's sequences (16-bit
    keys and values in every layer), and colocated vLLM's own copy of the weights."""
    cache = micro_tokens * arch.layers * 2 * kv * 2
    grpo = config.train.grpo
    if grpo.generation == "vllm_server":
        return 0.0  # sampled on the server's GPU
    if grpo.generation == "vllm_colocate":
        quantised = config.train.adapter == "qlora"
        return cache + (weights if quantised else arch.total_parameters() * 2)
    return cache


def render(est: Estimate, config: ShoptuneConfig, steps: int | None) -> str:
    train = config.train
    lines = [
        f"model {est.model}: {est.total_parameters:,} parameters; LoRA r={train.lora_r} on "
        f"{', '.join(train.target_modules)}: {est.trainable_parameters:,} trainable "
        f"({100 * est.trainable_parameters / est.total_parameters:.2f}%)",
        f"method {train.method} ({train.adapter}), precision {train.precision}, batch {train.per_device_batch_size} x "
        f"{train.max_length} tokens, accumulation {train.gradient_accumulation_steps}",
        "estimated GPU memory (GiB):",
        f"  weights                {est.weights_gib:8.2f}",
        f"  LoRA weights+grads+Adam{est.lora_states_gib:8.2f}",
        f"  activations            {est.activations_gib_with_checkpointing:8.2f} with checkpointing, "
        f"{est.activations_gib_without_checkpointing:.2f} without",
        f"  {'full logits (TRL)     ' if train.method in FULL_LOGITS_METHODS else 'fused LM head chunk   '} "
        f"{est.lm_head_chunk_gib:8.2f}",
        *(
            [f"  sampling ({train.grpo.generation:<13}){est.generation_gib:8.2f}  ({_sampling_note(config)})"]
            if train.method == "grpo"
            else []
        ),
        f"  CUDA context, slack    {est.overhead_gib:8.2f}",
        f"  total                  {est.total_gib:8.2f}  (gradient checkpointing "
        f"{'on' if train.gradient_checkpointing else 'off'})",
        f"tokens per optimizer step: {est.tokens_per_step:,} (upper bound: every record at max_length"
        f"{_sequences_note(config)})",
        *(
            ["reference model: this model with the adapter off (no extra weights; one more forward pass)"]
            if has_reference_pass(config)
            else []
        ),
        f"FLOPs per token: {est.flops_per_token:.3g}",
    ]
    if est.seconds_per_step is not None:
        line = (
            f"at {est.peak_tflops:g} peak TFLOP/s and {ASSUMED_MFU:.0%} utilisation: {est.seconds_per_step:.2f} s/step"
        )
        if steps:
            line += f", {steps} steps ~ {est.seconds_per_step * steps / 3600:.2f} h"
        lines.append(line)
    return "\n".join(lines)


def _sampling_note(config: ShoptuneConfig) -> str:
    grpo = config.train.grpo
    if grpo.generation == "vllm_colocate":
        return f"KV cache + vLLM's weights; vLLM reserves {grpo.vllm_gpu_memory_utilization:.0%} of the card"
    if grpo.generation == "vllm_server":
        return "on the vLLM server's GPU"
    return "KV cache of generate"


def _sequences_note(config: ShoptuneConfig) -> str:
    method = config.train.method
    if method == "grpo":
        return f", {config.train.grpo.num_generations} sampled answers per prompt"
    return "" if method == "sft" else ", two sequences per record"


def sequences_per_record(config: ShoptuneConfig) -> int:
    """Sequences a record puts in a micro-batch: one for SFT; two for the preference methods; GRPO's
    sampled answers to its prompt."""
    method = config.train.method
    if method == "grpo":
        return config.train.grpo.num_generations
    return 1 if method == "sft" else 2


def planned_steps(config: ShoptuneConfig, train_records: int | None) -> int | None:
    if config.train.max_steps:
        return config.train.max_steps
    if train_records is None:
        return None
    per_step = config.train.per_device_batch_size * config.train.gradient_accumulation_steps
    return math.ceil(train_records / per_step * config.train.epochs)
