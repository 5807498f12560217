"""The LoRA/QLoRA training recipe, top to bottom: resolve model and data, render rows, build the
TRL trainer, train (or resume), save the adapter, write the manifest.

    shoptune train configs/tiny-qwen.yaml --out runs/tiny
    shoptune train configs/cpu-smollm2.yaml --set train.max_steps=30
    shoptune train configs/tiny-qwen.yaml --out runs/tiny --resume      # after a crash or kill
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from shoptune.config import ShoptuneConfig, load_config, write_resolved_config
from shoptune.config.loader import to_dict
from shoptune.core.atomic import atomic_directory, atomic_write_json
from shoptune.core.disk import disk_full_detail, disk_is_full
from shoptune.core.errors import BadInputError, EnvironmentProblem, ShoptuneError
from shoptune.core.hashing import sha256_file
from shoptune.core.provenance import provenance, utc_now
from shoptune.shop.reading import require_valid
from shoptune.train.callbacks import (
    GenerationMetrics,
    MetricsFile,
    NonFiniteLossGuard,
    ProgressLine,
    TensorBoardScalars,
)
from shoptune.train.checkpoints import (
    REFERENCE_ADAPTER,
    AtomicCheckpointTrainer,
    newest_checkpoint,
    remove_partial_checkpoints,
    with_atomic_checkpoints,
)
from shoptune.train.dataset import TrainingRows, build_rows, unhashed_transforms
from shoptune.train.fused_loss import enable_compact_fused_head
from shoptune.train.run_folder import RunFolder

Log = Callable[[str], None]


class TrainingDiverged(ShoptuneError):
    exit_code = 1


@dataclass(frozen=True)
class TrainResult:
    run: RunFolder
    manifest: dict[str, Any]
    main_process: bool = True
    """False in the other processes of a multi-process run (they report nothing)."""


def ensure_dataset(config: ShoptuneConfig, data_dir: Path, tokenizer: Any, log: Log) -> Path:
    """The split folder to train on; built from the config's data section when absent.

    A file lock makes concurrent processes (multi-process training) build it once.
    """
    import fcntl

    if (data_dir / "train.jsonl").exists() and (data_dir / "val.jsonl").exists():
        _check_built_with(config, data_dir)
        return data_dir  # leave a folder that is already there exactly as it was
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (data_dir / "train.jsonl").exists() and (data_dir / "val.jsonl").exists():
            _check_built_with(config, data_dir)
            return data_dir
        from shoptune.data.build import build_dataset, token_limit_for

        log(f"no dataset at {data_dir}; building it (shoptune data build, seed {config.data.seed})")
        build_dataset(config.data, data_dir, token_limit_for(config.model.name, tokenizer, config.data.max_tokens))
        write_resolved_config(config, data_dir)
    return data_dir


def _check_built_with(config: ShoptuneConfig, data_dir: Path) -> None:
    """A corpus `data build` made from another data config is stale for this run: say so."""
    manifest_path = data_dir / "manifest.json"
    if not manifest_path.is_file():
        return  # the user's own files: nothing to compare against
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    built = manifest.get("data_config")
    current = config.data.model_dump(mode="json")  # tuples as lists, as the manifest stores them
    changed = _changed_data_settings(built or {}, current, type(config.data)().model_dump(mode="json"))
    if built is not None and changed:
        raise BadInputError(
            f"{data_dir} was built with a different data config ({', '.join(changed)} differ); rebuild it with "
            f"`shoptune data build --config <this config> --out {data_dir}` or pass --data with another folder"
        )


def _changed_data_settings(built: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """The data settings that differ between a folder's build and this config. A setting newer than
    the folder was built with the default behaviour, so it differs only if this config changes it;
    one since removed no longer means anything. Where it lives does not change what it holds."""
    keys = current.keys() - {"dir"}
    return sorted(k for k in keys if built.get(k, defaults.get(k)) != current[k])


def _check_run_folder(run: RunFolder, config: ShoptuneConfig, resume: bool) -> Path | None:
    """Refuse to overwrite a run by accident; on resume, insist on the same config."""
    if not resume:
        if run.adapter.exists() or newest_checkpoint(run.checkpoints) is not None:
            raise BadInputError(
                f"{run.root} already holds a training run; pass --resume to continue it or choose another --out"
            )
        return None
    if run.config.is_file():
        saved, current = _flatten(to_dict(load_config(run.config))), _flatten(to_dict(config))
        changed = sorted(key for key in saved.keys() | current.keys() if saved.get(key) != current.get(key))
        if changed:
            raise BadInputError(
                f"--resume with a different config than {run.config}: {', '.join(changed)} differ; "
                "resume with the run's own config (or start a new run)"
            )
    removed = remove_partial_checkpoints(run.checkpoints)
    for path in removed:
        print(f"removed a partial checkpoint left by an interrupted save: {path}")
    return newest_checkpoint(run.checkpoints)


def _stopped_by_full_disk(
    error: BaseException, run: RunFolder, manifest: dict[str, Any], step: int, main: bool
) -> EnvironmentProblem:
    """Clean up after a write that ran out of space and say how to continue.

    The half-written `checkpoint-N/` is deleted (it frees space and is never resumed from);
    published `step-NNNNNN/` checkpoints are untouched, so `--resume` continues from the last.
    """
    removed = remove_partial_checkpoints(run.checkpoints) if main else []
    newest = newest_checkpoint(run.checkpoints)
    if main:
        manifest.update(status="failed", finished_at=utc_now(), failure=f"disk full at step {step}")
        with contextlib.suppress(OSError):  # still no room: the old manifest stays; resume handles that
            atomic_write_json(run.manifest, manifest)
    cleaned = f"; removed the partial {', '.join(p.name for p in removed)}" if removed else ""
    return EnvironmentProblem(
        f"training stopped at step {step}: the disk holding {run.root} is full ({disk_full_detail(error)}){cleaned}. "
        f"The last complete checkpoint is {newest or 'none'}, intact: free some space, then run the same "
        "command with --resume"
    )


def _eval_subset(rows: TrainingRows, limit: int | None):
    if not rows.rows:
        return None
    subset = TrainingRows(rows.rows[:limit] if limit else rows.rows, rows.tokens, rows.trainable_tokens)
    return subset.to_dataset()


def _generation_sample(val_path: Path, config: ShoptuneConfig) -> list[dict[str, Any]]:
    """The first N validation extraction records (fixed, so the curve compares like with like)."""
    wanted = config.train.generation_eval_records
    if not wanted or "extract" not in config.train.tasks:
        return []
    from shoptune.shop.reading import read_records

    return [r for r in read_records(val_path) if r["task"] == "extract"][:wanted]


def _silent(_: str) -> None:
    """Status lines from processes other than the first would only repeat its own."""


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "gates" and key != "task_mix":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _trim_metrics(path: Path, last_step: int) -> None:
    """On resume, drop records for steps after the checkpoint; they will be logged again."""
    if not path.is_file():
        return
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if json.loads(line)["step"] <= last_step]
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def with_resolved_machine_settings(config: ShoptuneConfig, device: str) -> ShoptuneConfig:
    """The config with `train.precision` and `train.attention` as this machine runs them ("auto"
    decided here), so the run's config.yaml and manifest say what was really used."""
    from shoptune.core.hardware import resolve_attention, resolve_precision

    train = config.train
    return config.replace(
        train=train.replace(
            precision=resolve_precision(train.precision, device),
            attention=resolve_attention(train.attention, device),
        )
    )


def _final_eval(trainer: Any) -> dict[str, Any]:
    """The evaluation at the last step: the one the run logged there (when `eval_steps` divides
    `max_steps`), else one more pass. Every process decides alike, from the same trainer state, so
    the collective evaluation is entered by all or none."""
    step = trainer.state.global_step
    for entry in reversed(trainer.state.log_history):
        if entry.get("step") == step and "eval_loss" in entry:
            return entry
    return trainer.evaluate()


def _common_arguments(config: ShoptuneConfig, run: RunFolder, device: str, has_eval: bool) -> dict[str, Any]:
    """The training arguments every method shares (transformers' TrainingArguments fields)."""
    train = config.train
    on_gpu = device.startswith("cuda")
    return dict(
        output_dir=str(run.checkpoints),
        per_device_train_batch_size=train.per_device_batch_size,
        per_device_eval_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.gradient_accumulation_steps,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=train.warmup_ratio,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm,
        max_steps=train.max_steps if train.max_steps is not None else -1,
        num_train_epochs=train.epochs,
        seed=train.seed,
        data_seed=train.seed,
        bf16=train.precision == "bf16",
        fp16=train.precision == "fp16" and on_gpu,
        use_cpu=not on_gpu,
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        train_sampling_strategy=(
            "group_by_length" if train.group_by_length else ("random" if train.shuffle else "sequential")
        ),
        logging_steps=train.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a NaN loss must show as NaN, not be averaged away
        eval_strategy="steps" if has_eval and train.eval_steps else "no",
        eval_steps=train.eval_steps,
        save_strategy="steps",
        save_steps=train.save_steps,
        save_total_limit=None,  # rotation is ours: it must see the published step-NNNNNN names
        include_num_input_tokens_seen="non_padding",
        report_to=["mlflow"] if train.mlflow_tracking_uri else "none",
        run_name=config.name,
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataset_num_proc=None,
        ddp_find_unused_parameters=False,
    )


def _training_arguments(config: ShoptuneConfig, run: RunFolder, device: str, has_eval: bool) -> Any:
    """TRL's config for `train.method`: SFTConfig, the preference method's, or GRPOConfig."""
    common = _common_arguments(config, run, device, has_eval)
    if config.train.method == "grpo":
        from shoptune.train.grpo import grpo_arguments

        return grpo_arguments(config, common)
    if config.train.method != "sft":
        from shoptune.train.preference import preference_arguments

        return preference_arguments(config, common)
    from trl import SFTConfig

    train = config.train
    return SFTConfig(
        **common,
        # Rows are already checked against train.max_length (never truncated); TRL needs the
        # value only as the bin size when packing.
        max_length=train.max_length if train.batching == "packed" else None,
        packing=train.batching == "packed",
        packing_strategy="bfd",
        padding_free=train.batching in ("padding_free", "packed"),
        remove_unused_columns=False,
    )


def _peak_gpu_memory_gib(device: str) -> float | None:
    """What this process really held on the GPU, to set beside the --dry-run estimate."""
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _rows_summary(rows: TrainingRows) -> dict[str, int]:
    return {"records": len(rows.rows), "tokens": rows.tokens, "trainable_tokens": rows.trainable_tokens}


def _pairs_summary(pairs_dir: Path) -> dict[str, Any]:
    """The preference pairs a run trained on: folder, file digests, and their maker's manifest."""
    manifest = pairs_dir / "manifest.json"
    return {
        "dir": str(pairs_dir),
        "files": {p.name: sha256_file(p) for p in sorted(pairs_dir.glob("*.jsonl"))},
        "made": json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None,
    }


@dataclass(frozen=True)
class Process:
    """Where this process stands in the run: its device, and whether it is the first of `count`
    (under `accelerate launch` only the first writes files and reports)."""

    device: str
    main: bool
    count: int


@dataclass(frozen=True)
class TrainingInputs:
    """The resolved base model and tokenizer, and the rendered train/val rows of the data folder."""

    model_dir: Path
    tokenizer: Any
    data_dir: Path
    train_rows: TrainingRows
    val_rows: TrainingRows
    rows_dir: Path
    """Where the rows come from: `data_dir`, or for a preference method its pairs folder."""
    init_adapter: Path | None
    """The adapter folder `train.init_adapter` names (None: a fresh adapter)."""


@dataclass
class BuiltTrainer:
    trainer: Any
    metrics: MetricsFile
    guard: NonFiniteLossGuard
    trainable: int
    total: int


def _prepare_process(config: ShoptuneConfig, out_dir: Path) -> tuple[ShoptuneConfig, Process]:
    """Quiet the libraries, pick the device, resolve `precision: auto`, point TensorBoard and MLflow."""
    import datasets
    from shoptune.models.loading import default_device, quiet_transformers

    quiet_transformers()
    datasets.disable_progress_bars()
    enable_compact_fused_head()
    device = default_device()
    process = Process(device, int(os.environ.get("RANK", "0")) == 0, int(os.environ.get("WORLD_SIZE", "1")))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(out_dir) / "tensorboard")
    if config.train.mlflow_tracking_uri:
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            raise EnvironmentProblem("train.mlflow_tracking_uri is set but mlflow is not installed: pip install mlflow")
        os.environ.setdefault("MLFLOW_TRACKING_URI", config.train.mlflow_tracking_uri)
    if config.train.method == "grpo":
        from shoptune.train.grpo import require_generation_device

        require_generation_device(config, device)
    return with_resolved_machine_settings(config, device), process


def _load_inputs(config: ShoptuneConfig, data_dir: Path | None, run: RunFolder, log: Log) -> TrainingInputs:
    """Resolve the model, build the data folder if the config's is absent (and the pairs of a
    preference method if it names none), check and render them."""
    from shoptune.models import resolve_config_model
    from shoptune.models.loading import load_tokenizer
    from shoptune.train.model import init_adapter_dir

    init_adapter = init_adapter_dir(config.train.init_adapter, config.model.name) if config.train.init_adapter else None
    model_dir = resolve_config_model(config.model, log=log)
    tokenizer = load_tokenizer(model_dir)
    if data_dir is not None:
        absent = [name for name in ("train.jsonl", "val.jsonl") if not (Path(data_dir) / name).exists()]
        if absent:  # an explicit --data folder is the user's: never build into it behind their back
            raise BadInputError(f"--data {data_dir}: no {' or '.join(absent)} there (build one: shoptune data build)")
    data_dir = ensure_dataset(config, Path(data_dir or config.data.dir), tokenizer, log)
    require_valid(data_dir / "train.jsonl", data_dir / "val.jsonl")
    rows_dir, rows_of = data_dir, partial(build_rows, tasks=config.train.tasks)
    if config.train.method == "grpo":
        from shoptune.train.grpo import prompt_rows

        def rows_of(path: Path, tokenizer: Any, _: int) -> TrainingRows:
            return prompt_rows(path, tokenizer, config)
    elif config.train.method != "sft":
        from shoptune.train.preference import preference_pairs, preference_rows

        rows_dir, rows_of = preference_pairs(config, data_dir, run.root, tokenizer, log), preference_rows
        require_valid(*(rows_dir / name for name in ("train.jsonl", "val.jsonl") if (rows_dir / name).is_file()))
    val = rows_dir / "val.jsonl"
    train_rows = rows_of(rows_dir / "train.jsonl", tokenizer, config.train.max_length)
    val_rows = rows_of(val, tokenizer, config.train.max_length) if val.is_file() else TrainingRows([], 0, 0)
    if not train_rows.rows:
        raise BadInputError(f"{rows_dir / 'train.jsonl'}: no record to train on{_chosen_by(config)}")
    if config.train.method == "kto":
        from shoptune.train.preference import unpaired

        train_rows, val_rows = unpaired(train_rows, config.train.seed), unpaired(val_rows, config.train.seed)
    return TrainingInputs(model_dir, tokenizer, data_dir, train_rows, val_rows, rows_dir, init_adapter)


def _chosen_by(config: ShoptuneConfig) -> str:
    """The setting that chose which records of the data folder a run of this method trains on."""
    if config.train.method == "sft":
        return f" (train.tasks: {', '.join(config.train.tasks)})"
    if config.train.method == "grpo":
        return f" (train.grpo.tasks: {', '.join(config.train.grpo.tasks)})"
    return ""


def _start_manifest(
    config: ShoptuneConfig,
    run: RunFolder,
    inputs: TrainingInputs,
    process: Process,
    checkpoint: Path | None,
    resume: bool,
) -> dict[str, Any]:
    """The manifest as the run starts: seed, device, base model and data digests, provenance; a
    resumed run keeps its first start time and adds a session."""
    from shoptune.models.identity import model_identity

    started_at = utc_now()
    previous = json.loads(run.manifest.read_text(encoding="utf-8")) if resume and run.manifest.is_file() else {}
    return {
        "name": config.name,
        "status": "running",
        "seed": config.train.seed,
        "device": process.device,
        "base_model": model_identity(config.model.name, inputs.model_dir),
        "data": {
            "dir": str(inputs.data_dir),
            "files": {name: sha256_file(inputs.data_dir / name) for name in ("train.jsonl", "val.jsonl")},
            "train": _rows_summary(inputs.train_rows),
            "val": _rows_summary(inputs.val_rows),
            **({"pairs": _pairs_summary(inputs.rows_dir)} if inputs.rows_dir != inputs.data_dir else {}),
        },
        "started_at": previous.get("started_at", started_at),
        "sessions": [
            *previous.get("sessions", []),
            {"started_at": started_at, "resumed_from": str(checkpoint) if checkpoint else None},
        ],
        "processes": process.count,
        **provenance(),
    }


def _model_with_adapter(config: ShoptuneConfig, inputs: TrainingInputs, device: str, log: Log) -> Any:
    """The base model with the adapter to train: a fresh LoRA, or `train.init_adapter`'s."""
    from shoptune.train.model import load_base_for_training, with_init_adapter, with_lora

    base = load_base_for_training(inputs.model_dir, config.train, device)
    if inputs.init_adapter is None:
        return with_lora(base, config.train)
    log(f"starting from the adapter in {inputs.init_adapter}")
    return with_init_adapter(base, inputs.init_adapter)


def _trainer_class(config: ShoptuneConfig) -> type:
    """TRL's trainer for `train.method`, with shoptune's atomic step-named checkpoints."""
    method = config.train.method
    if method == "sft":
        return AtomicCheckpointTrainer
    if method == "grpo":
        from shoptune.train.grpo import grpo_trainer_class

        return with_atomic_checkpoints(grpo_trainer_class(config))
    from shoptune.train.preference import preference_trainer_class

    return with_atomic_checkpoints(preference_trainer_class(method))


ROWS_ARE = {"sft": "records", "grpo": "prompts"}


def _method_inputs(config: ShoptuneConfig) -> dict[str, Any]:
    """What a method's trainer takes beside the model and data: GRPO's reward functions."""
    if config.train.method != "grpo":
        return {}
    from shoptune.train.grpo import reward_functions

    return {"reward_funcs": reward_functions(config)}


def _optimizer(config: ShoptuneConfig, model: Any, arguments: Any) -> Any:
    """LoRA+'s optimizer when `train.loraplus_lr_ratio` is set; None lets the Trainer build its own."""
    if config.train.loraplus_lr_ratio is None:
        return None
    from shoptune.train.model import loraplus_optimizer

    return loraplus_optimizer(model, arguments, config.train.loraplus_lr_ratio)


def _build_trainer(
    config: ShoptuneConfig, run: RunFolder, inputs: TrainingInputs, device: str, log: Log
) -> BuiltTrainer:
    """The base model with LoRA, and TRL's trainer over the rows with shoptune's callbacks."""
    import torch
    from transformers import PrinterCallback

    torch.manual_seed(config.train.seed)
    model = _model_with_adapter(config, inputs, device, log)
    trainable, total = model.get_nb_trainable_parameters()
    log(
        f"{config.model.name} ({config.train.method}): {trainable:,} trainable of {total:,} parameters "
        f"({100 * trainable / total:.2f}%); {len(inputs.train_rows.rows)} train / {len(inputs.val_rows.rows)} val "
        f"{ROWS_ARE.get(config.train.method, 'pairs')} on {device}"
    )
    metrics, guard = MetricsFile(run.metrics), NonFiniteLossGuard()
    generation = GenerationMetrics(_generation_sample(inputs.data_dir / "val.jsonl", config), inputs.tokenizer)
    arguments = _training_arguments(config, run, device, has_eval=bool(inputs.val_rows.rows))
    with unhashed_transforms():
        trainer = _trainer_class(config)(
            **_method_inputs(config),
            model=model,
            args=arguments,
            optimizers=(_optimizer(config, model, arguments), None),
            train_dataset=inputs.train_rows.to_dataset(),
            eval_dataset=_eval_subset(inputs.val_rows, config.train.eval_records),
            processing_class=inputs.tokenizer,
            callbacks=[generation, metrics, guard, ProgressLine(0, f"train {config.name}"), TensorBoardScalars()],
        )
    trainer.remove_callback(PrinterCallback)  # our ProgressLine and metrics.jsonl replace the raw log dicts
    trainer.keep_checkpoints = config.train.save_total_limit
    generation.trainer = trainer
    return BuiltTrainer(trainer, metrics, guard, trainable, total)


def _train(built: BuiltTrainer, run: RunFolder, manifest: dict[str, Any], checkpoint: Path | None, main: bool):
    """Train (or resume) to the end; a full disk or a non-finite loss stops it with the manifest
    marked failed and a message saying where the last good checkpoint is."""
    trainer, guard = built.trainer, built.guard
    try:
        output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except Exception as error:
        if not disk_is_full(error, run.root):
            raise
        raise _stopped_by_full_disk(error, run, manifest, trainer.state.global_step, main) from error
    if guard.bad_step is not None:
        manifest.update(status="failed", finished_at=utc_now(), failure=f"{guard.bad_value} at step {guard.bad_step}")
        if main:
            atomic_write_json(run.manifest, manifest)
        raise TrainingDiverged(
            f"training stopped: non-finite {guard.bad_value} at step {guard.bad_step}; "
            f"the last good checkpoint is {newest_checkpoint(run.checkpoints) or 'none'} "
            "(lower train.learning_rate or check the data)"
        )
    return output


def _save_adapter(trainer: Any, tokenizer: Any, run: RunFolder, manifest: dict[str, Any]) -> None:
    """The adapter and tokenizer into `run.adapter`, whole or not at all."""
    try:
        with atomic_directory(run.adapter) as staging:
            trainer.save_model(str(staging))
            # TRL's frozen reference copy of an initial adapter (DPO, KTO) is no part of the result
            shutil.rmtree(staging / REFERENCE_ADAPTER, ignore_errors=True)
            tokenizer.save_pretrained(str(staging))
            (staging / "training_args.bin").unlink(missing_ok=True)  # a pickle; the run's config.yaml says it all
    except Exception as error:
        if not disk_is_full(error, run.root):
            raise
        raise _stopped_by_full_disk(error, run, manifest, trainer.state.global_step, True) from error


def _final_metrics(built: BuiltTrainer, output: Any, final_eval: dict[str, Any], device: str) -> dict[str, Any]:
    state, runtime = built.trainer.state, output.metrics.get("train_runtime")
    train_losses = [m["loss"] for m in built.metrics.history if isinstance(m.get("loss"), float)]
    return {
        "steps": state.global_step,
        "train_loss_last": train_losses[-1] if train_losses else None,
        "train_loss_mean": output.training_loss,
        "eval_loss": final_eval.get("eval_loss"),
        "eval_reward_margin": final_eval.get("eval_rewards/margins"),
        "eval_reward_accuracy": final_eval.get("eval_rewards/accuracies"),
        "eval_reward": final_eval.get("eval_reward"),
        "tokens_seen": state.num_input_tokens_seen,
        "train_runtime_s": runtime,
        "tokens_per_second": state.num_input_tokens_seen / runtime if runtime and state.num_input_tokens_seen else None,
        "trainable_parameters": built.trainable,
        "total_parameters": built.total,
        "peak_gpu_memory_gib": _peak_gpu_memory_gib(device),
    }


def run_training(
    config: ShoptuneConfig, *, out_dir: Path, data_dir: Path | None = None, resume: bool = False, log: Log = print
) -> TrainResult:
    """Train one LoRA run into `out_dir`: prepare the run, build the trainer, train and save, finish
    the manifest."""
    config, process = _prepare_process(config, out_dir)
    log = log if process.main else _silent
    run = RunFolder(Path(out_dir))
    if process.main:
        checkpoint = _check_run_folder(run, config, resume)
    else:  # partial checkpoints are named checkpoint-N, so the others never see them as candidates
        checkpoint = newest_checkpoint(run.checkpoints) if resume else None
    if resume and run.adapter.exists():
        log(f"{run.root} already finished; nothing to resume")
        return TrainResult(run, json.loads(run.manifest.read_text(encoding="utf-8")))

    inputs = _load_inputs(config, data_dir, run, log)
    run.root.mkdir(parents=True, exist_ok=True)
    manifest = _start_manifest(config, run, inputs, process, checkpoint, resume)
    if process.main:
        write_resolved_config(config, run.root, header=f"shoptune train run {run.root}")
        atomic_write_json(run.manifest, manifest)
        if checkpoint is not None:
            log(f"resuming from {checkpoint}")
            _trim_metrics(run.metrics, int(checkpoint.name.split("-")[1]))
        elif run.metrics.exists():
            run.metrics.unlink()

    built = _build_trainer(config, run, inputs, process.device, log)
    output = _train(built, run, manifest, checkpoint, process.main)
    final_eval = _final_eval(built.trainer) if inputs.val_rows.rows else {}
    if process.main:
        _save_adapter(built.trainer, inputs.tokenizer, run, manifest)
    manifest.update(
        status="finished",
        finished_at=utc_now(),
        final_metrics=_final_metrics(built, output, final_eval, process.device),
        adapter=str(run.adapter),
    )
    if process.main:
        atomic_write_json(run.manifest, manifest)
    if not math.isfinite(output.training_loss):
        raise TrainingDiverged(f"training finished with a non-finite mean loss ({output.training_loss})")
    return TrainResult(run, manifest, process.main)
