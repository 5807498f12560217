"""Turn corpus records into training rows: token ids and labels with loss on assistant turns only.

Rendering uses the model's own chat template (`shoptune.shop.render`), so the text trained on
is exactly what the server will render for the same conversation; extraction answers are trained
in the one form guided decoding produces (`shoptune.shop.structured`), whatever their file says. Two problems stop a run
before it starts, listing every offending record: a record longer than `train.max_length`
(never silently truncated) and a record with no token that carries loss.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.core.errors import BadInputError
from shoptune.shop.reading import read_records
from shoptune.shop.render import RenderError, render_record
from shoptune.shop.structured import in_the_one_form

IGNORE_INDEX = -100
SHOWN = 10


@dataclass(frozen=True)
class TrainingRows:
    rows: list[dict[str, list[int]]]
    tokens: int
    trainable_tokens: int

    def to_dataset(self):
        from datasets import Dataset

        return Dataset.from_list(self.rows)


def build_rows(path: Path, tokenizer: Any, max_length: int, tasks: Collection[str] | None = None) -> TrainingRows:
    """The training rows of `path`'s records (of `tasks` only, when given)."""
    records = read_records(path)
    rows, problems = [], []
    tokens = trainable = 0
    for line, record in enumerate(records, start=1):
        if tasks is not None and record["task"] not in tasks:
            continue
        where = f"{path}:{line} (id {record['id']})"
        record = in_the_one_form(record)
        try:
            rendered = render_record(tokenizer, record["messages"])
        except RenderError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if rendered.trainable_tokens == 0:
            problems.append(f"{where}: no token carries loss (no assistant content survives the chat template)")
            continue
        if len(rendered.input_ids) > max_length:
            problems.append(
                f"{where}: {len(rendered.input_ids)} tokens, over train.max_length={max_length} "
                "(records are never truncated; raise the limit or rebuild the data with data.max_tokens)"
            )
            continue
        labels = [
            tid if keep else IGNORE_INDEX for tid, keep in zip(rendered.input_ids, rendered.loss_mask, strict=True)
        ]
        rows.append({"input_ids": list(rendered.input_ids), "labels": labels})
        tokens += len(rendered.input_ids)
        trainable += rendered.trainable_tokens
    require_trainable(path, problems)
    return TrainingRows(rows, tokens, trainable)


def require_trainable(path: Path, problems: list[str]) -> None:
    """Stop the run before it starts, listing the first `SHOWN` records of `path` that cannot be trained on."""
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:SHOWN])
        more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise BadInputError(f"{len(problems)} record(s) in {path} cannot be trained on:\n{shown}{more}")


@contextlib.contextmanager
def unhashed_transforms() -> Iterator[None]:
    """`datasets` transforms without hashing their arguments, while TRL's trainers prepare data.

    `Dataset.map` fingerprints each transform by pickling it with its arguments, to name a cache
    file; TRL's preference trainers pass the tokenizer along, and pickling Qwen's 151,646-token
    tokenizer takes ~7 s a call on this CPU (ORPO: 4 calls, 31 of a 2-step run's 59 s). Shoptune's
    datasets are built in memory and never cached, so a random fingerprint (what `datasets` itself
    uses when hashing fails) loses nothing."""
    import datasets.arrow_dataset
    import datasets.fingerprint

    def random_fingerprint(fingerprint: str, transform: Any, transform_args: Any) -> str:
        return datasets.fingerprint.generate_random_fingerprint()

    modules = (datasets.arrow_dataset, datasets.fingerprint)
    saved = [module.update_fingerprint for module in modules]
    for module in modules:
        module.update_fingerprint = random_fingerprint
    try:
        yield
    finally:
        for module, original in zip(modules, saved, strict=True):
            module.update_fingerprint = original
