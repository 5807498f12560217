"""Trainer callbacks: the metrics file, the terminal progress line, and the non-finite-loss stop."""

from __future__ import annotations

import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import TensorBoardCallback

METRIC_KEYS = (
    "step",
    "loss",
    "learning_rate",
    "grad_norm",
    "tokens_per_second",
    "eval_loss",
    "eval_json_valid_rate",
    "eval_exact_match_rate",
    "eval_micro_f1",
    "reward_margin",
    "reward_accuracy",
    "eval_reward_margin",
    "eval_reward_accuracy",
    "reward",
    "rewards",
    "eval_reward",
)
EVAL_KEYS = (
    "eval_loss",
    "eval_json_valid_rate",
    "eval_exact_match_rate",
    "eval_micro_f1",
    "eval_reward_margin",
    "eval_reward_accuracy",
    "eval_reward",
)
TRL_NAMES = {
    "rewards/margins": "reward_margin",
    "rewards/accuracies": "reward_accuracy",
    "eval_rewards/margins": "eval_reward_margin",
    "eval_rewards/accuracies": "eval_reward_accuracy",
}
"""Preference trainers' logs under shoptune's names: the mean margin of the chosen answer's implicit
reward over the rejected one's, and the share of pairs where it is ahead (null in SFT, and
accuracy in KTO, which has no pairs)."""
GRPO_REWARD = re.compile(r"^rewards/(?P<name>[a-z_]+)/mean$")
"""GRPO logs each reward's mean over the step's answers as `rewards/<name>/mean`; shoptune's
metrics.jsonl gathers them in `rewards` ({name: mean}) beside `reward`, their weighted sum."""


def _rewards(logs: dict[str, Any]) -> dict[str, float] | None:
    means = {match["name"]: value for key, value in logs.items() if (match := GRPO_REWARD.match(key))}
    return means or None


class MetricsFile(TrainerCallback):
    """`metrics.jsonl`: one flat record per logging step with fixed keys (null when not measured).

    An evaluation at the same step as a training log is merged into that step's record.
    """

    def __init__(self, path: Path, *, echo: bool = True) -> None:
        self.path = path
        self.echo = echo
        self.pending: dict[str, Any] | None = None
        self.last_tokens = 0
        self.last_time = time.perf_counter()
        self.history: list[dict[str, Any]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_tokens = state.num_input_tokens_seen
        self.last_time = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        logs = {TRL_NAMES.get(key, key): value for key, value in logs.items()}
        evaluated = {key: logs[key] for key in EVAL_KEYS if key in logs}
        if evaluated:
            if self.pending is None or self.pending["step"] != state.global_step:
                self._flush()
                self.pending = {**dict.fromkeys(METRIC_KEYS), "step": state.global_step}
            self.pending.update(evaluated)
            return
        if "loss" not in logs:
            return  # the end-of-training summary (train_runtime, ...) goes to the manifest instead
        self._flush()
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen - self.last_tokens
        speed = tokens / (now - self.last_time) if now > self.last_time and tokens else None  # none: not counted
        self.last_tokens, self.last_time = state.num_input_tokens_seen, now
        self.pending = {
            "step": state.global_step,
            "loss": logs.get("loss"),
            "learning_rate": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_second": round(speed, 2) if speed is not None else None,
            "reward_margin": logs.get("reward_margin"),
            "reward_accuracy": logs.get("reward_accuracy"),
            "reward": logs.get("reward"),
            "rewards": _rewards(logs),
            **dict.fromkeys(EVAL_KEYS),
        }

    def on_evaluate(self, args, state, control, **kwargs):
        self.last_time = time.perf_counter()  # evaluation time is not training throughput

    def on_save(self, args, state, control, **kwargs):
        self._flush()  # a checkpoint's metrics are on disk before anyone can resume from it

    def on_step_begin(self, args, state, control, **kwargs):
        self._flush()

    def on_train_end(self, args, state, control, **kwargs):
        self._flush()

    def _flush(self) -> None:
        if self.pending is None:
            return
        record = {key: _plain(self.pending.get(key)) for key in METRIC_KEYS}
        self.history.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        self.pending = None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN; keep the fact visible
    return value


class ProgressLine(TrainerCallback):
    """A progress bar with ETA, loss and tokens/s on a terminal; a line per log step otherwise."""

    def __init__(self, total_steps: int, label: str) -> None:
        self.total = total_steps
        self.label = label
        self.progress = None
        self.task = None
        self.started = time.perf_counter()
        self.first_step = 0
        self.last_tokens = 0
        self.last_time = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.started = time.perf_counter()
        self.first_step = state.global_step
        self.total = state.max_steps
        self.last_tokens, self.last_time = state.num_input_tokens_seen, time.perf_counter()
        if sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total, completed=state.global_step, status="")

    def on_evaluate(self, args, state, control, **kwargs):
        self.last_time = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        now = time.perf_counter()
        speed = (state.num_input_tokens_seen - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_tokens, self.last_time = state.num_input_tokens_seen, now
        status = f"loss {logs['loss']:.4f}" + (f"  {speed:,.0f} tok/s" if speed else "")
        if self.progress is not None:
            self.progress.update(self.task, status=status)
        else:
            elapsed = now - self.started
            done = max(state.global_step - self.first_step, 1)
            eta = elapsed / done * (self.total - state.global_step)
            print(
                f"[train] step {state.global_step}/{self.total}  {status}  eta {eta:.0f}s", file=sys.stderr, flush=True
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.stop()


class NonFiniteLossGuard(TrainerCallback):
    """Stops training at the first NaN or infinite loss (or gradient norm, or eval loss) and
    remembers the step, so the run ends with a clear error instead of training garbage."""

    WATCHED = ("loss", "grad_norm", "eval_loss")

    def __init__(self) -> None:
        self.bad_step: int | None = None
        self.bad_value: str | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in self.WATCHED:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)) and self.bad_step is None:
                self.bad_step, self.bad_value = state.global_step, f"{key} = {float(value)}"
                control.should_training_stop = True
                control.should_save = False


class GenerationMetrics(TrainerCallback):
    """At each evaluation, generate answers for a fixed sample of validation extraction records
    with the model being trained, score them with the eval package, and log exact match and
    micro-F1 (what nulls cannot game) and JSON validity beside the eval loss."""

    def __init__(self, records: list[dict[str, Any]], tokenizer: Any, *, max_new_tokens: int = 128) -> None:
        self.records = records
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.trainer: Any = None

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not self.records or model is None or not state.is_world_process_zero:
            return
        from shoptune.eval.backends import generate_in_process
        from shoptune.eval.metrics import extraction

        was_training = model.training
        model.eval()
        try:
            predictions = generate_in_process(
                model, self.tokenizer, self.records, batch_size=8, max_new_tokens=self.max_new_tokens
            )
        finally:
            if was_training:
                model.train()
        scores = [extraction.score_record(r, p.output) for r, p in zip(self.records, predictions, strict=True)]
        tp, fp, fn = (sum(s[f"f1_{k}"] for s in scores) for k in ("tp", "fp", "fn"))
        logs = {
            "eval_json_valid_rate": sum(s["json_valid"] for s in scores) / len(scores),
            "eval_exact_match_rate": sum(s["exact_match"] for s in scores) / len(scores),
            "eval_micro_f1": 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else 1.0,
        }
        if self.trainer is not None:
            self.trainer.log(logs)


class TensorBoardScalars(TensorBoardCallback):
    """TensorBoard's callback without the values a step did not measure: GRPO logs None for a reward
    that applied to none of the step's answers, and transformers warns about each one each step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        measured = {key: value for key, value in (logs or {}).items() if value is not None}
        return super().on_log(args, state, control, logs=measured, **kwargs)
