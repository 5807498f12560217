"""`shoptune data import --format sharegpt|alpaca|openai|preference IN --out OUT`: bring other corpora in.

`preference` reads the chosen/rejected forms TRL's preference trainers take (`prompt`, `chosen`,
`rejected`, each a string or a list of chat messages) into records with a `rejected` answer.

A source record that cannot be converted (unknown roles, tool calls, empty turns, images) is
skipped and reported with its line; what is written always passes `data check`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoptune.shop import resources
from shoptune.shop.check import iter_lines, parse_json_line
from shoptune.shop.prompts import detect_language
from shoptune.shop.records import RecordValidator

FORMATS = ("sharegpt", "alpaca", "openai", "preference")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


class Unconvertible(ValueError):
    pass


@dataclass
class ImportResult:
    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """`IN:LINE: reason` for each source record not converted."""


def _text(value: Any, where: str) -> str:
    """Content as a string; OpenAI-style lists of parts keep their text parts only if all are text."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        return "".join(str(p.get("text", "")) for p in value)
    raise Unconvertible(f"{where}: content is not text ({type(value).__name__})")


Fields = dict[str, Any]
"""What a converter makes of one source record: `messages`, and `rejected` for a preference pair."""


def from_sharegpt(source: Any) -> Fields:
    if not isinstance(source, dict) or not isinstance(source.get("conversations"), list):
        raise Unconvertible("expected an object with a `conversations` list")
    messages = []
    if isinstance(source.get("system"), str) and source["system"].strip():
        messages.append({"role": "system", "content": source["system"]})
    for index, turn in enumerate(source["conversations"]):
        if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES:
            raise Unconvertible(
                f"conversations[{index}]: unknown speaker {turn.get('from') if isinstance(turn, dict) else turn!r}"
            )
        messages.append(
            {"role": SHAREGPT_ROLES[turn["from"]], "content": _text(turn.get("value"), f"conversations[{index}]")}
        )
    return {"messages": messages}


def from_alpaca(source: Any) -> Fields:
    if (
        not isinstance(source, dict)
        or not isinstance(source.get("instruction"), str)
        or not isinstance(source.get("output"), str)
    ):
        raise Unconvertible("expected an object with string `instruction` and `output`")
    prompt = source["instruction"]
    if isinstance(source.get("input"), str) and source["input"].strip():
        prompt = f"{prompt}\n\n{source['input']}"
    messages = []
    if isinstance(source.get("system"), str) and source["system"].strip():
        messages.append({"role": "system", "content": source["system"]})
    return {
        "messages": [*messages, {"role": "user", "content": prompt}, {"role": "assistant", "content": source["output"]}]
    }


def from_openai(source: Any) -> Fields:
    if not isinstance(source, dict) or not isinstance(source.get("messages"), list):
        raise Unconvertible("expected an object with a `messages` list")
    return {"messages": _chat_messages(source["messages"], "messages")}


def _chat_messages(items: list[Any], name: str) -> list[dict[str, str]]:
    messages = []
    for index, message in enumerate(items):
        if not isinstance(message, dict):
            raise Unconvertible(f"{name}[{index}]: not an object")
        role = message.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant") or message.get("tool_calls") or message.get("function_call"):
            raise Unconvertible(f"{name}[{index}]: role {role!r} or tool calls cannot be converted")
        messages.append({"role": role, "content": _text(message.get("content"), f"{name}[{index}]")})
    return messages


def _answer(value: Any, name: str) -> str:
    """A chosen or rejected answer: a string, or a list of chat messages ending with the assistant's."""
    if isinstance(value, list):
        messages = _chat_messages(value, name)
        if not messages or messages[-1]["role"] != "assistant":
            raise Unconvertible(f"{name}: expected the assistant's answer as its last message")
        return messages[-1]["content"]
    return _text(value, name)


def from_preference(source: Any) -> Fields:
    if not isinstance(source, dict) or not all(key in source for key in ("prompt", "chosen", "rejected")):
        raise Unconvertible("expected an object with `prompt`, `chosen` and `rejected`")
    prompt = source["prompt"]
    if isinstance(prompt, list):
        messages = _chat_messages(prompt, "prompt")
    else:
        messages = [{"role": "user", "content": _text(prompt, "prompt")}]
    if isinstance(source.get("system"), str) and source["system"].strip() and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": source["system"]})
    messages.append({"role": "assistant", "content": _answer(source["chosen"], "chosen")})
    return {"messages": messages, "rejected": _answer(source["rejected"], "rejected")}


CONVERTERS: dict[str, Callable[[Any], Fields]] = {
    "sharegpt": from_sharegpt,
    "alpaca": from_alpaca,
    "openai": from_openai,
    "preference": from_preference,
}


def import_file(path: Path, fmt: str, *, task: str, id_prefix: str) -> ImportResult:
    """Convert every line of `path`; a JSON array file (common for Alpaca/ShareGPT) is accepted too."""
    validator = RecordValidator(resources.schemas())
    result = ImportResult()
    for number, source, problem in source_rows(path):
        where = f"{path}:{number}" if number else str(path)
        if problem:
            result.skipped.append(f"{where}: {problem}")
            continue
        try:
            fields = CONVERTERS[fmt](source)
        except Unconvertible as exc:
            result.skipped.append(f"{where}: skipped: {exc}")
            continue
        identifier = source.get("id") if isinstance(source.get("id"), str) and source["id"].strip() else None
        text = " ".join(m["content"] for m in fields["messages"] if m["role"] == "user")
        record = {
            "id": identifier or f"{id_prefix}-{number:06d}",
            "task": task,
            "lang": detect_language(text),
            **fields,
            "meta": {"source": str(path), "source_line": number, "format": fmt},
        }
        problems = validator.problems(record)
        if problems:
            result.skipped.append(f"{where}: skipped: {'; '.join(problems)}")
            continue
        result.records.append(record)
    seen: set[str] = set()
    for record in result.records:
        if record["id"] in seen:
            record["id"] = f"{record['id']}-line{record['meta']['source_line']}"
        seen.add(record["id"])
    return result


def source_rows(path: Path):
    """(line, parsed object, problem) per source record; a whole-file JSON array counts as one list."""
    lines = list(iter_lines(path))
    if lines and lines[0][2] is not None:
        yield 0, None, lines[0][2]
        return
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    if data.lstrip().startswith(b"["):
        parsed, error = parse_json_line(data.decode("utf-8", errors="replace"))
        if error or not isinstance(parsed, list):
            yield 0, None, error or "expected a JSON array"
            return
        for index, item in enumerate(parsed, start=1):
            yield index, item, None
        return
    for number, raw, _ in lines:
        assert raw is not None
        try:
            text = raw.removeprefix(b"\xef\xbb\xbf").removesuffix(b"\r").decode("utf-8")
        except UnicodeDecodeError:
            yield number, None, "not valid UTF-8"
            continue
        if not text.strip():
            continue
        parsed, error = parse_json_line(text)
        yield number, parsed, error
