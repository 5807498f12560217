"""`shoptune data check FILE...`: validate JSONL corpora record by record.

    shoptune data check runs/data/cpu-smollm2/train.jsonl
    shoptune data check mine.jsonl --model smollm2-135m-instruct --max-tokens 768

Prints `FILE:LINE: message` for every problem (1-based lines), goes on to the end of each
file, and exits 1 if anything was wrong, 0 if nothing was. Any bytes at all, including
binary junk, produce messages, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoptune.shop.records import RecordValidator

MAX_LINE_BYTES = 1 << 20
"""One record per line; a line over 1 MiB is a broken file, not a conversation."""

BOM = b"\xef\xbb\xbf"

TokenCounter = Callable[[list[dict[str, str]]], int]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line is not None else f"{self.file}: {self.message}"


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error's location as the checkers print it: `topics.0.facts.return_days`."""
    return ".".join(str(part) for part in loc) or "(whole)"


@dataclass
class CheckSummary:
    files: int = 0
    records: int = 0
    valid_records: int = 0
    problems: int = 0


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_line(text: str) -> tuple[Any, str | None]:
    """Parse one line strictly (no NaN/Infinity, no duplicate keys); return (value, error)."""
    try:
        return json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant), None
    except _DuplicateKey as dup:
        return None, f"invalid JSON: duplicate key {str(dup)!r} in an object"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"


_NOT_UTF8_JSONL = (
    (b"\x1f\x8b", "file is gzip-compressed: decompress it first (gunzip FILE)"),
    (b"PK\x03\x04", "file is a zip archive: extract the JSONL file from it first"),
    (b"\xff\xfe", "file is UTF-16 (little-endian byte-order mark): save it as UTF-8"),
    (b"\xfe\xff", "file is UTF-16 (big-endian byte-order mark): save it as UTF-8"),
)
"""Leading bytes of files that are not UTF-8 text at all."""


def iter_lines(path: Path) -> Iterator[tuple[int, bytes | None, str | None]]:
    """(line number, raw bytes, or None with a file-level problem) for every line of `path`."""
    if not path.exists():
        yield 0, None, "file not found"
        return
    if path.is_dir():
        yield 0, None, "is a directory, expected a JSONL file"
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        yield 0, None, f"cannot read: {exc.strerror}"
        return
    if not data.strip():
        yield 0, None, "file is empty: expected one JSON record per line"
        return
    for magic, problem in _NOT_UTF8_JSONL:
        if data.startswith(magic):
            yield 0, None, problem  # one clear line instead of a wall of per-line decoding errors
            return
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline ends the last line, it does not start a new one
    for number, raw in enumerate(lines, start=1):
        yield number, raw, None


def check_file(
    path: Path,
    validator: RecordValidator,
    *,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    summary: CheckSummary | None = None,
) -> Iterator[Problem]:
    """Every problem in one file, in line order."""
    summary = summary if summary is not None else CheckSummary()
    summary.files += 1
    name = str(path)
    first_seen: dict[str, int] = {}
    for number, raw, file_problem in iter_lines(path):
        if file_problem is not None:
            summary.problems += 1
            yield Problem(name, None, file_problem)
            continue
        assert raw is not None
        summary.records += 1
        problems = list(_line_problems(number, raw, validator, first_seen, count_tokens, max_tokens))
        if not problems:
            summary.valid_records += 1
        for message in problems:
            summary.problems += 1
            yield Problem(name, number, message)


def _line_problems(
    number: int,
    raw: bytes,
    validator: RecordValidator,
    first_seen: dict[str, int],
    count_tokens: TokenCounter | None,
    max_tokens: int | None,
) -> Iterator[str]:
    if len(raw) > MAX_LINE_BYTES:
        yield f"line is {len(raw):,} bytes, over the {MAX_LINE_BYTES:,}-byte limit for one record"
        return
    if number == 1 and raw.startswith(BOM):
        yield "file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM"
        raw = raw[len(BOM) :]
    raw = raw.removesuffix(b"\r")
    if not raw.strip():
        yield "blank line: expected a JSON record"
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at position {exc.start + 1}"
        return
    record, error = parse_json_line(text)
    if error:
        yield error
        return
    problems = validator.problems(record)
    yield from problems
    if isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"].strip():
        if record["id"] in first_seen:
            yield f"id: duplicate id {record['id']!r} (first on line {first_seen[record['id']]})"
        else:
            first_seen[record["id"]] = number
    if count_tokens is not None and max_tokens is not None and not problems:
        try:
            tokens = count_tokens(record["messages"])
        except Exception as exc:  # a template that cannot render this record is a finding, not a crash
            yield f"messages: the chat template cannot render this record: {exc}"
            return
        if tokens > max_tokens:
            yield f"messages: {tokens} tokens after the chat template, over the limit of {max_tokens}"
