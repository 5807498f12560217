"""The shop's own records (`data.imported`) mixed into the generated splits.

Each imported file is validated as `data check` validates it. Exact repeats (the same user
messages) are dropped, the rest shuffled with the build's seed and dealt out to the splits,
`data.imported_share` of each split's records; a record whose user message is already in another
split is passed over, so no text is in two splits, and the generator then avoids every imported
text of the other splits too. Records over the token limit are passed over as well. The manifest
says how many of each were used and dropped.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoptune.config.schema import DataConfig
from shoptune.core.errors import BadInputError
from shoptune.core.hashing import sha256_file
from shoptune.data.tasks.context import normalise_message
from shoptune.data.tasks.extract import extraction_messages
from shoptune.shop import resources
from shoptune.shop.reading import read_records

Fits = Callable[[list[dict[str, str]]], bool]
"""Whether a conversation is within the build's token limit."""


def user_messages(record: dict[str, Any]) -> list[str]:
    """A record's user messages, normalised as split hygiene compares them."""
    return [normalise_message(m["content"]) for m in record["messages"] if m["role"] == "user"]


@dataclass
class ImportedSplits:
    """The imported records of each split, and what was passed over."""

    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    available: int = 0
    repeats_dropped: int = 0
    too_long_dropped: int = 0
    files: dict[str, str] = field(default_factory=dict)

    def texts(self, split: str) -> set[str]:
        return {text for record in self.records.get(split, []) for text in user_messages(record)}

    def summary(self) -> dict[str, Any]:
        return {
            "files_sha256": self.files,
            "available": self.available,
            "repeats_dropped": self.repeats_dropped,
            "too_long_dropped": self.too_long_dropped,
            "per_split": {split: len(records) for split, records in self.records.items()},
        }


def imported_files(config: DataConfig) -> list[str]:
    """The record files a build imports: `data.imported`, or else the shop folder's `labelled/*.jsonl`."""
    if config.imported:
        return list(config.imported)
    return [str(path) for path in sorted((resources.active().root / "labelled").glob("*.jsonl"))]


def imported_file_hashes(config: DataConfig) -> dict[str, str]:
    return {path: sha256_file(Path(path)) for path in imported_files(config)}


def with_build_prompt(record: dict[str, Any], extraction_prompt: str) -> dict[str, Any]:
    """An imported extraction record with the instruction this build's config writes (its
    `data.extraction_prompt`), whatever config it was imported with: the model is trained on, and
    served with, one instruction per schema."""
    messages = record["messages"]
    roles = [m["role"] for m in messages]
    if record.get("task") != "extract" or roles != ["system", "user", "assistant"]:
        return record
    target = json.loads(messages[-1]["content"])
    return {
        **record,
        "messages": extraction_messages(record["schema"], messages[1]["content"], target, extraction_prompt),
    }


def _pool(config: DataConfig, fits: Fits) -> tuple[list[dict[str, Any]], ImportedSplits]:
    result = ImportedSplits(files=imported_file_hashes(config))
    seen: set[tuple[str, ...]] = set()
    pool = []
    for path in imported_files(config):
        for source in read_records(Path(path)):
            result.available += 1
            record = with_build_prompt(source, config.extraction_prompt)
            key = tuple(user_messages(record))
            if key in seen:
                result.repeats_dropped += 1
            elif not fits(record["messages"]):
                result.too_long_dropped += 1
            else:
                seen.add(key)
                meta = {**record.get("meta", {}), "imported_from": path}
                pool.append({**record, "meta": {**meta, "heldout_templates": False, "heldout_skus": False}})
    random.Random(f"shoptune-imported:{config.seed}").shuffle(pool)
    return pool, result


AUTO_SHARE_CAP = 0.5
"""With no `data.imported_share`, the most of each split the imported records take: the rest stays the
generated chat, recommendation, FAQ and refusal records an assistant also needs."""


def deal_imported(config: DataConfig, splits: tuple[str, ...], fits: Fits) -> ImportedSplits:
    """`imported_share` of each split's records from the imported files; refuses a split the files
    cannot fill, naming both counts. No share configured: the share all the usable records make of
    the splits together, at most `AUTO_SHARE_CAP`, rounded down per split."""
    pool, result = _pool(config, fits)
    sizes = {split: getattr(config, f"{split}_records") for split in splits}
    share = config.imported_share
    if share is None:
        share = min(AUTO_SHARE_CAP, len(pool) / sum(sizes.values()))
    taken: dict[str, set[str]] = {}
    for split in splits:
        wanted = math.floor(sizes[split] * share) if config.imported_share is None else round(sizes[split] * share)
        elsewhere = set().union(*taken.values()) if taken else set()
        chosen, rest = [], []
        for record in pool:
            texts = user_messages(record)
            if len(chosen) < wanted and not any(text in elsewhere for text in texts):
                chosen.append(record)
            else:
                rest.append(record)
        if len(chosen) < wanted:
            raise BadInputError(
                f"data.imported_share {share} asks for {wanted} imported {split} records, but "
                f"data.imported ({', '.join(imported_files(config))}) has {len(chosen)} left for it "
                f"({result.available} in all, {result.repeats_dropped} repeats, {result.too_long_dropped} too long)"
            )
        result.records[split] = chosen
        taken[split] = result.texts(split)
        pool = rest
    return result
