"""The canonical record and its rules: what `data check` enforces and `data build` guarantees.

    {"id": str, "task": "extract"|"recommend"|"faq"|"chat"|"refusal", "lang": "zh"|"en",
     "schema": str (extract only), "messages": [...], "rejected": str (optional), "meta": {...} (optional)}

`messages`: an optional system message, then user/assistant alternating, ending with the
assistant message that is the training target; contents are non-empty strings. For `extract`
the last assistant content is a JSON object valid against the named schema.

`rejected` makes the record a preference pair: the last assistant message is the chosen answer,
`rejected` a worse answer to the same conversation (`meta.failure` may say what is wrong with
it). Supervised training ignores it; preference methods (`train.method` dpo, kto, orpo, simpo)
need it.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from shoptune.config.schema import LANGUAGES, TASKS

RECORD_KEYS = ("id", "task", "lang", "schema", "messages", "rejected", "meta")
MESSAGE_KEYS = ("role", "content")
ROLES = ("system", "user", "assistant")


def shopper_turns(record: dict[str, Any]) -> list[str]:
    """What the shopper said, turn by turn, before the answer the record trains or evaluates."""
    return [m["content"] for m in record["messages"][:-1] if m["role"] == "user"]


def last_question(record: dict[str, Any]) -> str:
    """The shopper's message the record's answer replies to ("" when there is none)."""
    turns = shopper_turns(record)
    return turns[-1] if turns else ""


def _validators(schemas: dict[str, dict[str, Any]]) -> dict[str, Draft202012Validator]:
    return {name: Draft202012Validator(schema) for name, schema in schemas.items()}


class RecordValidator:
    """Checks one parsed record; returns problems as `field: message` strings (empty when valid)."""

    def __init__(self, schemas: dict[str, dict[str, Any]]) -> None:
        self.schemas = schemas
        self.validators = _validators(schemas)

    def problems(self, record: Any) -> list[str]:
        if not isinstance(record, dict):
            return [f"record: expected a JSON object, got {_json_type(record)}"]
        problems = [
            f"{key}: unknown key (allowed: {', '.join(RECORD_KEYS)})" for key in record if key not in RECORD_KEYS
        ]
        problems += [f"{key}: missing required key" for key in ("id", "task", "lang", "messages") if key not in record]
        if "id" in record and not (isinstance(record["id"], str) and record["id"].strip()):
            problems.append(f"id: must be a non-empty string, got {_short(record['id'])}")
        task = record.get("task")
        if "task" in record and task not in TASKS:
            problems.append(f"task: must be one of {', '.join(TASKS)}; got {_short(task)}")
        if "lang" in record and record["lang"] not in LANGUAGES:
            problems.append(f"lang: must be one of {', '.join(LANGUAGES)}; got {_short(record['lang'])}")
        problems += self._schema_problems(record, task)
        problems += _rejected_problems(record)
        if "meta" in record and not isinstance(record["meta"], dict):
            problems.append(f"meta: must be a JSON object, got {_json_type(record['meta'])}")
        if "messages" in record:
            message_problems = self._message_problems(record["messages"])
            problems += message_problems
            if not message_problems and task == "extract" and record.get("schema") in self.validators:
                problems += self._target_problems(record["messages"], record["schema"])
        return problems

    def _schema_problems(self, record: dict[str, Any], task: Any) -> list[str]:
        if "schema" not in record:
            return ["schema: required when task is extract"] if task == "extract" else []
        schema = record["schema"]
        if task != "extract":
            return [f"schema: only extract records name a schema (task is {_short(task)})"]
        if schema not in self.schemas:
            return [f"schema: unknown schema {_short(schema)}; known: {', '.join(self.schemas)}"]
        return []

    def _message_problems(self, messages: Any) -> list[str]:
        if not isinstance(messages, list):
            return [f"messages: must be a list, got {_json_type(messages)}"]
        if not messages:
            return ["messages: must not be empty"]
        problems = []
        roles = []
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                problems.append(f"{where}: expected an object with role and content, got {_json_type(message)}")
                roles.append(None)
                continue
            problems += [f"{where}.{key}: unknown key" for key in message if key not in MESSAGE_KEYS]
            role = message.get("role")
            if role not in ROLES:
                problems.append(f"{where}.role: must be one of {', '.join(ROLES)}; got {_short(role)}")
            content = message.get("content")
            if not isinstance(content, str):
                problems.append(f"{where}.content: must be a string, got {_json_type(content)}")
            elif not content.strip():
                problems.append(f"{where}.content: must not be empty")
            roles.append(role)
        problems += _role_order_problems(roles)
        return problems

    def _target_problems(self, messages: list[dict[str, Any]], schema_name: str) -> list[str]:
        where = f"messages[{len(messages) - 1}].content"
        try:
            target = json.loads(messages[-1]["content"])
        except ValueError as exc:
            return [f"{where}: extraction target is not JSON ({exc.msg} at char {exc.pos})"]
        if not isinstance(target, dict):
            return [f"{where}: extraction target must be a JSON object, got {_json_type(target)}"]
        problems = []
        for error in sorted(self.validators[schema_name].iter_errors(target), key=lambda e: list(e.path)):
            path = "/".join(str(part) for part in error.path) or "(root)"
            problems.append(f"{where}: extraction target breaks schema {schema_name} at {path}: {error.message}")
        return problems


def is_first_reply(record: dict[str, Any]) -> bool:
    """The record's answer is the assistant's first in its conversation (it opens with the greeting,
    not the follow-up opener)."""
    return sum(m["role"] == "assistant" for m in record["messages"]) == 1


def _rejected_problems(record: dict[str, Any]) -> list[str]:
    """A rejected answer is a non-empty string that differs from the chosen one."""
    if "rejected" not in record:
        return []
    rejected = record["rejected"]
    if not isinstance(rejected, str):
        return [f"rejected: must be a string (the rejected answer), got {_json_type(rejected)}"]
    if not rejected.strip():
        return ["rejected: must not be empty"]
    messages = record.get("messages")
    chosen = (
        messages[-1].get("content")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict)
        else None
    )
    if rejected == chosen:
        return ["rejected: is the same as the chosen answer (the last assistant message)"]
    return []


def _role_order_problems(roles: list[str | None]) -> list[str]:
    """system? then user, assistant, user, assistant, ..., ending with assistant."""
    if any(role is None or role not in ROLES for role in roles):
        return []  # already reported per message
    problems = []
    start = 1 if roles[0] == "system" else 0
    for index in range(start, len(roles)):
        expected = "user" if (index - start) % 2 == 0 else "assistant"
        if roles[index] != expected:
            detail = "system is only allowed as the first message" if roles[index] == "system" else ""
            problems.append(
                f"messages[{index}].role: expected {expected}, got {roles[index]}" + (f" ({detail})" if detail else "")
            )
            return problems
    if len(roles) - start < 2:
        problems.append("messages: need at least one user message and the assistant answer")
    elif roles[-1] != "assistant":
        problems.append(f"messages[{len(roles) - 1}].role: the last message must be the assistant's answer")
    return problems


def _json_type(value: Any) -> str:
    names = {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        type(None): "null",
        int: "number",
        float: "number",
    }
    return names.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
