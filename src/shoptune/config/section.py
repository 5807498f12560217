"""The pydantic base every config section derives from, the value types they share, and the
translation of pydantic's errors into the `(key path, message)` problems the loader reports.

Sections are frozen and strict (no silent str -> int coercion, no unknown keys); a section built
in Python is validated exactly like one loaded from YAML (pydantic's `ValidationError` lists every
bad field at once); the loader rewords the same errors with the file and line of each value.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Annotated, Any, Self, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

KeyPath = tuple[str, ...]
Problem = tuple[KeyPath, str]


class ConfigSection(BaseModel):
    """A frozen, strict pydantic model whose attribute docstrings become its JSON Schema descriptions."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, use_attribute_docstrings=True)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied and validated (pydantic's `model_copy` does not validate)."""
        return type(self)(**{**dict(self), **changes})


def rule_broken(field: str, message: str) -> PydanticCustomError:
    """The error a cross-field `model_validator` raises, naming the (dotted) field to blame."""
    return PydanticCustomError("config_rule", "{message}", {"field": field, "message": message})


def _number_from_text(value: Any) -> Any:
    """YAML 1.1 reads `1e-4` (no dot) as a string; a number field accepts any text float() accepts."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _tuple_from_list(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def checked(predicate: Any, message: str) -> AfterValidator:
    """A validator failing with `message, got <value>` where `predicate(value)` is false (None passes)."""

    def validate(value: Any) -> Any:
        if value is not None and not predicate(value):
            context = {"message": message, "value": repr(value)}
            raise PydanticCustomError("config_value", "{message}, got {value}", context)
        return value

    return AfterValidator(validate)


Number = Annotated[float, BeforeValidator(_number_from_text)]
PositiveNumber = Annotated[Number, checked(lambda v: v > 0 and math.isfinite(v), "must be a positive number")]
Share = Annotated[Number, checked(lambda v: 0 <= v < 1, "must be in [0, 1)")]
"""A share of something that must leave some of it: 0 <= x < 1."""
Fraction = Annotated[Number, checked(lambda v: 0 <= v <= 1, "must be in [0, 1]")]
Count = Annotated[int, Field(ge=1)]
Port = Annotated[int, checked(lambda v: 1 <= v <= 65535, "must be a TCP port 1-65535")]
NonBlank = Annotated[str, checked(lambda v: bool(v.strip()), "must not be empty")]
NonEmpty = checked(len, "must name at least one")
"""For a list field that must not be empty: `Annotated[Items[str], NonEmpty]`."""

Item = TypeVar("Item")
Items = Annotated[tuple[Item, ...], BeforeValidator(_tuple_from_list)]
"""A list in YAML, a tuple in the (frozen) config."""


def problems_from(invalid: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Each pydantic error as `(key path, message)` in the loader's wording."""
    problems = []
    for error in invalid.errors():
        key = tuple(str(part) for part in error["loc"])
        ctx = error.get("ctx") or {}
        if error["type"] == "config_rule":
            key = (*key, *str(ctx["field"]).split("."))
        problems.append((key, _message(error, model, key)))
    return problems


_EXPECTED = {
    "bool_type": "true or false",
    "int_type": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping (section)",
    "model_attributes_type": "a mapping (section)",
}
_BOUNDS = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
}


def _message(error: Any, model: type[BaseModel], key: KeyPath) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        return "unknown key" + _suggestion(key[-1], _known_keys(model, key[:-1]))
    if kind in _EXPECTED:
        if value is None:
            return f"must not be null (expected {_EXPECTED[kind]})"
        return f"expected {_EXPECTED[kind]}, got {describe(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {value!r}"
    if kind in _BOUNDS:
        return _BOUNDS[kind].format(**ctx) + f", got {value}"
    return str(error["msg"]).removeprefix("Value error, ")


def field_type_at(model: type[BaseModel], key: Sequence[str]) -> Any:
    """The annotated type at `key` below `model` (`model` itself for an empty key), or None when unknown."""
    current: Any = model
    for part in key:
        field = current.model_fields.get(part) if is_section(current) else None
        if field is None:
            return None
        current = field.annotation
    return current


def _known_keys(model: type[BaseModel], key: Sequence[str]) -> list[str]:
    section = field_type_at(model, key)
    return list(section.model_fields) if is_section(section) else []


def _suggestion(name: str, known: list[str]) -> str:
    match = difflib.get_close_matches(name, known, n=1)
    if match:
        return f"; did you mean {match[0]!r}?"
    return f"; known keys: {', '.join(known)}" if known else ""


def is_section(tp: Any) -> bool:
    """Whether a field's type is a nested config section (a pydantic model)."""
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def describe(value: Any) -> str:
    """A value as an error message shows it: its repr (shortened) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"
