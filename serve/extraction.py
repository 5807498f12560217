"""The storefront's extraction: free text -> a JSON object valid against one of the shop's schemas,
through guided decoding on the served model, validated before it is returned and retried once."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from shoptune.shop import resources
from shoptune.shop.decoding import extraction_request
from shoptune.shop.prompts import extraction_system_prompt


class ModelOutputInvalid(Exception):
    """The model did not produce a schema-valid object even with guided decoding and a retry."""


class Extractor:
    """`extract(text, schema_name)` with the prompt the model was trained with (`extraction_prompt`)."""

    def __init__(self, llm: Any, model_name: str, extraction_prompt: str, *, max_tokens: int, retries: int) -> None:
        self.llm, self.model_name, self.extraction_prompt = llm, model_name, extraction_prompt
        self.max_tokens, self.retries = max_tokens, retries
        self.schemas = resources.schemas()
        self.validators = {name: Draft202012Validator(schema) for name, schema in self.schemas.items()}

    def extract(self, text: str, schema_name: str) -> dict[str, Any]:
        """A JSON object valid against `schema_name`; `ModelOutputInvalid` after `1 + retries` tries."""
        schema = self.schemas[schema_name]
        messages = [
            {"role": "system", "content": extraction_system_prompt(schema_name, schema, self.extraction_prompt)},
            {"role": "user", "content": text},
        ]
        problem = "no answer"
        for _ in range(1 + self.retries):
            reply = self.llm.chat.completions.create(
                model=self.model_name, messages=messages, **extraction_request(schema_name, self.max_tokens)
            )
            value, problem = self._parse(reply.choices[0].message.content or "", schema_name)
            if value is not None:
                return value
        raise ModelOutputInvalid(f"the model's {schema_name} output is not valid: {problem}")

    def _parse(self, content: str, schema_name: str) -> tuple[dict[str, Any] | None, str]:
        """The object if `content` is one valid against the schema, else None and what is wrong."""
        try:
            value = json.loads(content)
        except ValueError as exc:
            return None, f"not JSON ({exc})"
        if not isinstance(value, dict):
            return None, "not a JSON object"
        errors = list(self.validators[schema_name].iter_errors(value))
        return (None, errors[0].message) if errors else (value, "")
