"""Checkpoints that are either complete or absent.

The Trainer writes `checkpoint-N/` in place; only when everything (adapter, optimizer,
scheduler, RNG states, trainer state) is on disk do we rename it to `step-NNNNNN/` in one
atomic `os.replace`. A run killed mid-save leaves a `checkpoint-N/` that resume never picks
(and cleans up), so `--resume` always restarts from a checkpoint that was written whole.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from trl import SFTTrainer

STEP_DIR = re.compile(r"^step-(\d{6,})$")

REFERENCE_ADAPTER = "ref"
"""The name TRL (DPO, KTO) gives its frozen copy of the adapter a run starts from: the reference."""


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def complete_checkpoints(folder: Path) -> list[Path]:
    """Published checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return [path for _, path in sorted(found)]


def newest_checkpoint(folder: Path) -> Path | None:
    checkpoints = complete_checkpoints(folder)
    return checkpoints[-1] if checkpoints else None


def remove_partial_checkpoints(folder: Path) -> list[Path]:
    """Delete what a killed save left behind (`checkpoint-N/`); returns what was removed."""
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_dir() and path.name.startswith("checkpoint-"):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


class AtomicCheckpoints:
    """A mixin (first in the bases) for any transformers Trainer: checkpoints appear atomically as
    `step-NNNNNN/` and rotate by step."""

    keep_checkpoints: int | None = None

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        if not self.args.should_save:
            return
        folder = Path(self.args.output_dir)
        staged = folder / f"checkpoint-{self.state.global_step}"
        published = folder / step_dir_name(self.state.global_step)
        # TRL's frozen reference adapter is rebuilt from `train.init_adapter` when the trainer is made.
        # Saved, it would be all that resumes: transformers loads only an adapter checkpoint's
        # sub-folders when it has any, leaving the trained adapter at its initial weights.
        shutil.rmtree(staged / REFERENCE_ADAPTER, ignore_errors=True)
        if published.exists():
            shutil.rmtree(published)
        os.replace(staged, published)
        if self.keep_checkpoints:
            for old in complete_checkpoints(folder)[: -self.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)


class AtomicCheckpointTrainer(AtomicCheckpoints, SFTTrainer):
    """TRL's SFTTrainer with atomic, step-named checkpoints."""


def with_atomic_checkpoints(trainer_class: type) -> type:
    """`trainer_class` (one of TRL's trainers) with atomic, step-named checkpoints."""
    return type(f"AtomicCheckpoint{trainer_class.__name__}", (AtomicCheckpoints, trainer_class), {})
