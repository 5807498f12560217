"""Preference tuning on chosen/rejected answers: DPO, KTO, ORPO and SimPO with TRL's trainers.

    shoptune train configs/tiny-qwen.yaml --set train.method=dpo
    shoptune train configs/cpu-smollm2.yaml --set train.method=dpo --set train.init_adapter=runs/cpu-smollm2

The pairs are the run's training data: `train.preference.pairs` names a folder of preference
records (`shoptune data pairs`, `data import --format preference`), or, when unset, they are made
by rule from the data folder's records into the run folder (`pairs/`, with its manifest), so a
run is reproducible from its own folder. Each record becomes one conversational row, the prompt
(every message but the last) with the chosen and the rejected answer; TRL renders both with the
model's chat template, the one serving uses. Extraction answers, chosen and rejected, are put in
the one form guided decoding produces, as SFT's are. A row longer than `train.max_length` stops
the run (never truncated), as in SFT.

The reference model of DPO and KTO is the policy with the trained adapter off: the base model, or
the `init_adapter` run's adapter (TRL keeps a frozen copy of it, `ref`, which is not saved).
"""

from __future__ import annotations

import fcntl
import random
import warnings
from pathlib import Path
from typing import Any

from shoptune.config import ShoptuneConfig
from shoptune.core.errors import BadInputError
from shoptune.shop.reading import read_records
from shoptune.shop.render import RenderError, render_pair
from shoptune.train.dataset import TrainingRows, require_trainable


def preference_pairs(config: ShoptuneConfig, data_dir: Path, run_root: Path, tokenizer: Any, log) -> Path:
    """The folder of preference records to train on: the configured one, or pairs made by rule from
    `data_dir` into `run_root/pairs` (made once; a resumed run reuses them), every one within
    `train.max_length` under the model's chat template."""
    preference = config.train.preference
    if preference.pairs is not None:
        folder = Path(preference.pairs)
        if not (folder / "train.jsonl").is_file():
            raise BadInputError(
                f"train.preference.pairs: no train.jsonl in {folder} "
                f"(make pairs: shoptune data pairs DATA --out {folder})"
            )
        return folder
    folder = run_root / "pairs"
    run_root.mkdir(parents=True, exist_ok=True)
    with open(run_root / ".pairs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the processes of a multi-process run make them once
        if not (folder / "manifest.json").is_file():
            from shoptune.data.build import token_limit_for
            from shoptune.data.pairs import write_pairs

            made = write_pairs(
                data_dir,
                folder,
                kinds=preference.kinds,
                per_record=preference.pairs_per_record,
                seed=config.train.seed,
                limit=token_limit_for(config.model.name, tokenizer, config.train.max_length),
            )
            counts = ", ".join(f"{name} {entry['records']}" for name, entry in made["files"].items())
            log(f"made preference pairs by rule from {data_dir} into {folder}: {counts}")
    return folder


def preference_rows(path: Path, tokenizer: Any, max_length: int) -> TrainingRows:
    """One conversational row (prompt, chosen, rejected) per preference record of `path`; every record
    without a rejected answer, or over `max_length` tokens with either answer, listed in one error."""
    rows, problems = [], []
    tokens = trainable = 0
    for line, record in enumerate(read_records(path), start=1):
        where = f"{path}:{line} (id {record['id']})"
        if "rejected" not in record:
            problems.append(f"{where}: no `rejected` answer (make preference records with shoptune data pairs)")
            continue
        try:
            pair = render_pair(tokenizer, record)
        except RenderError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if pair.longest > max_length:
            problems.append(
                f"{where}: {pair.longest} tokens with its longer answer, over train.max_length={max_length} "
                "(records are never truncated; raise the limit or rebuild the data with data.max_tokens)"
            )
            continue
        rows.append({"prompt": pair.prompt, "chosen": [pair.answers[0]], "rejected": [pair.answers[1]]})
        tokens += sum(len(r.input_ids) for r in pair.rendered)
        trainable += sum(r.trainable_tokens for r in pair.rendered)
    require_trainable(path, problems)
    return TrainingRows(rows, tokens, trainable)


def unpaired(rows: TrainingRows, seed: int) -> TrainingRows:
    """KTO's rows: each answer on its own, labelled desirable (chosen) or not, in a seeded random
    order. KTO samples in file order (its KL term pairs each row with its neighbour's answer), and
    TRL's own unpairing puts every chosen answer before every rejected one, so its batches would
    hold one label only."""
    single = [
        {"prompt": row["prompt"], "completion": row[side], "label": side == "chosen"}
        for row in rows.rows
        for side in ("chosen", "rejected")
    ]
    random.Random(seed).shuffle(single)
    return TrainingRows(single, rows.tokens, rows.trainable_tokens)


def preference_trainer_class(method: str) -> type:
    """TRL's trainer for `method`: DPO and KTO are TRL's own; ORPO, and CPO which runs SimPO, are
    in `trl.experimental`."""
    if method == "dpo":
        from trl import DPOTrainer

        return DPOTrainer
    if method == "kto":
        from trl import KTOTrainer

        return KTOTrainer
    return (
        _from_trl_experimental("orpo", "ORPOTrainer")
        if method == "orpo"
        else _from_trl_experimental("cpo", "CPOTrainer")
    )


def _from_trl_experimental(module: str, name: str) -> type:
    """A class from `trl.experimental.<module>`, without TRL's warning on import: "experimental" is
    TRL's word for that API's stability, and trl is pinned here."""
    import importlib

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="You are importing from 'trl.experimental'")
        return getattr(importlib.import_module(f"trl.experimental.{module}"), name)


def preference_arguments(config: ShoptuneConfig, common: dict[str, Any]) -> Any:
    """The TRL config of `train.method` from the arguments every trainer shares and the method's own.

    Learning rate and precision are always passed (`common`): TRL's preference configs default to
    a learning rate of 1e-6 and bf16, neither of which a LoRA run on a CPU wants."""
    train, preference = config.train, config.train.preference
    beta = preference.beta_for(train.method)
    if train.method == "dpo":
        from trl import DPOConfig

        losses = [preference.dpo_loss, *(["sft"] if preference.sft_weight else [])]
        return DPOConfig(
            **common,
            beta=beta,
            loss_type=losses,
            loss_weights=[1.0, preference.sft_weight] if preference.sft_weight else None,
            max_length=train.max_length,
            padding_free=train.batching == "padding_free",
        )
    if train.method == "kto":
        from trl import KTOConfig

        return KTOConfig(
            **{**common, "train_sampling_strategy": "sequential"},  # its KL term pairs each row with its neighbour
            beta=beta,
            desirable_weight=preference.kto_desirable_weight,
            undesirable_weight=preference.kto_undesirable_weight,
            max_length=train.max_length,
        )
    # The experimental trainers' batches have no `input_ids` for the Trainer to count tokens by, and
    # their collator needs the text columns.
    uncounted = {**common, "include_num_input_tokens_seen": "no", "remove_unused_columns": False}
    if train.method == "orpo":
        return _from_trl_experimental("orpo", "ORPOConfig")(**uncounted, beta=beta, max_length=train.max_length)
    return _from_trl_experimental("cpo", "CPOConfig")(
        **uncounted,
        loss_type="simpo",
        cpo_alpha=0.0,  # SimPO alone; CPO's behaviour-cloning term off
        simpo_gamma=preference.simpo_gamma,
        beta=beta,
        max_length=train.max_length,
    )
