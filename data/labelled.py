"""Labelled extraction data a shop already has, as `extract` records of one of its schemas.

    shoptune data import claims.csv --format labelled --schema warranty_claim --out claims.jsonl
    shoptune data import ner.jsonl --format spans --schema product_query --out ner.jsonl

`labelled`: JSONL, or CSV (by the file's extension), with a text column and a label column that
holds the JSON object (`--text-field`, default `text`; `--label-field`, default `label`).

`spans`: JSONL of a text and its typed character spans, as annotation tools export them:
`{"text": ..., "spans": [{"start": 3, "end": 5, "label": "color"}]}` (also `entities`), or doccano's
`{"text": ..., "label": [[3, 5, "color"]]}`. A span's type names a schema field (`--map TYPE=field`
renames one). The rule for repeated types: a field whose schema type is an array collects every span
of its type in text order; any other field takes its span's text, and a type repeated with different
texts makes the record ambiguous (reported, not converted); a field no span names is null; a number
or integer field reads its span's text as a number.

`columns`: JSONL or CSV with one column per schema field (`--map COLUMN=field` renames one), as
attribute tables and intent-labelled support logs come (`title,brand,color` or `text,intent`). An
empty cell is null; a number field's cell is read as a number; an array field's cell is a JSON array
or `;`-separated; a field without a column is null; other columns are ignored.

Every label is validated against the schema; a record that cannot be converted is reported as
`FILE:LINE: reason` and never written. The conversation is the one the data build writes and the
storefront sends (`extraction_messages`, with `data.extraction_prompt`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from shoptune.core.errors import BadInputError
from shoptune.data.importers import ImportResult, Unconvertible, source_rows
from shoptune.data.tasks.extract import extraction_messages
from shoptune.shop import resources
from shoptune.shop.prompts import detect_language
from shoptune.shop.structured import ordered_like_schema

LABELLED_FORMATS = ("labelled", "spans", "columns")


def _csv_rows(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line, row as a dict, problem) per CSV row; the header is line 1."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            yield reader.line_num, row, None


def _label_object(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise Unconvertible(f"label is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise Unconvertible(f"label must be a JSON object, got {type(value).__name__}")
    return value


def _types(spec: dict[str, Any]) -> set[str]:
    kind = spec.get("type")
    kinds = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for option in spec.get("anyOf", []) + spec.get("oneOf", []):
        kinds |= _types(option)
    return kinds


def _array_items(spec: dict[str, Any]) -> dict[str, Any]:
    """The item schema of an array field, also where the array is one option of an anyOf/oneOf."""
    if "items" in spec:
        return spec["items"]
    for option in spec.get("anyOf", []) + spec.get("oneOf", []):
        if "array" in _types(option):
            return _array_items(option)
    return {}


def _span_list(source: dict[str, Any]) -> list[tuple[int, int, str]]:
    raw = source.get("spans", source.get("entities", source.get("label")))
    if not isinstance(raw, list):
        raise Unconvertible("expected `spans`, `entities` or `label` as a list of spans")
    spans = []
    for index, span in enumerate(raw):
        if isinstance(span, dict):
            start, end, kind = span.get("start"), span.get("end"), span.get("label", span.get("type"))
        elif isinstance(span, list | tuple) and len(span) == 3:
            start, end, kind = span
        else:
            raise Unconvertible(f"span {index}: expected {{start, end, label}} or [start, end, label]")
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(kind, str) and 0 <= start < end):
            raise Unconvertible(f"span {index}: start and end must be offsets with start < end, label a string")
        spans.append((start, end, kind))
    return sorted(spans)


def _as_field_value(text: str, spec: dict[str, Any], field: str) -> Any:
    kinds = _types(spec)
    if kinds & {"number", "integer"} and "string" not in kinds:
        try:
            number = float(text.replace(",", ""))
        except ValueError as exc:
            raise Unconvertible(f"{field}: {text!r} is not a number") from exc
        return int(number) if "integer" in kinds or number.is_integer() else number
    return text


def spans_to_object(
    text: str, spans: list[tuple[int, int, str]], schema: dict[str, Any], rename: dict[str, str]
) -> dict[str, Any]:
    """The schema's object from typed spans, by the rule in the module docstring."""
    properties = schema["properties"]
    found: dict[str, list[str]] = {}
    for start, end, kind in spans:
        if end > len(text):
            raise Unconvertible(f"span {kind} [{start}, {end}) runs past the text ({len(text)} characters)")
        field = rename.get(kind, kind)
        if field not in properties:
            raise Unconvertible(f"span type {kind!r} is no field of the schema ({', '.join(properties)})")
        found.setdefault(field, []).append(text[start:end].strip())
    value: dict[str, Any] = {}
    for field, spec in properties.items():
        texts = found.get(field, [])
        if "array" in _types(spec):
            value[field] = [_as_field_value(t, _array_items(spec), field) for t in texts] or None
        elif len(set(texts)) > 1:
            raise Unconvertible(f"{field}: {len(texts)} different spans ({', '.join(map(repr, texts))}) for one value")
        else:
            value[field] = _as_field_value(texts[0], spec, field) if texts else None
    return value


def _cell_value(cell: Any, spec: dict[str, Any], field: str) -> Any:
    """A column's cell as the field's value: strings from a CSV are parsed by the field's type."""
    if not isinstance(cell, str):
        return cell  # JSONL: already typed
    cell = cell.strip()
    if not cell:
        return None
    if "array" in _types(spec):
        try:
            items = json.loads(cell) if cell.startswith("[") else [part.strip() for part in cell.split(";")]
        except ValueError as exc:
            raise Unconvertible(f"{field}: {cell!r} is not a JSON array") from exc
        return [_cell_value(item, _array_items(spec), field) if isinstance(item, str) else item for item in items]
    if "boolean" in _types(spec) and cell.lower() in {"true", "false"}:
        return cell.lower() == "true"
    return _as_field_value(cell, spec, field)


def columns_to_object(source: dict[str, Any], schema: dict[str, Any], rename: dict[str, str]) -> dict[str, Any]:
    """The schema's object from one column per field (see the module docstring)."""
    by_field = {rename.get(column, column): column for column in source}
    return {
        field: _cell_value(source[by_field[field]], spec, field) if field in by_field else None
        for field, spec in schema["properties"].items()
    }


def _text_and_label(source: Any, fmt: str, text_field: str, label_field: str, schema: dict, rename: dict) -> tuple:
    if not isinstance(source, dict):
        raise Unconvertible("expected an object")
    text = source.get(text_field)
    if not isinstance(text, str) or not text.strip():
        raise Unconvertible(f"{text_field}: missing or empty text")
    if fmt == "spans":
        return text, spans_to_object(text, _span_list(source), schema, rename)
    if fmt == "columns":
        return text, columns_to_object({k: v for k, v in source.items() if k != text_field}, schema, rename)
    if label_field not in source:
        raise Unconvertible(f"{label_field}: missing label")
    return text, _label_object(source[label_field])


def import_labelled(
    path: Path,
    fmt: str,
    *,
    schema_name: str,
    extraction_prompt: str,
    text_field: str = "text",
    label_field: str = "label",
    rename: dict[str, str] | None = None,
) -> ImportResult:
    """Convert every row of `path` into an `extract` record of `schema_name` (see the module docstring)."""
    schemas = resources.schemas()
    if schema_name not in schemas:
        raise BadInputError(f"--schema: unknown schema {schema_name!r}; known: {', '.join(schemas)}")
    schema = schemas[schema_name]
    validator = Draft202012Validator(schema)
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" and fmt != "spans" else source_rows(path)
    result = ImportResult()
    for number, source, problem in rows:
        where = f"{path}:{number}" if number else str(path)
        if problem:
            result.skipped.append(f"{where}: {problem}")
            continue
        try:
            text, label = _text_and_label(source, fmt, text_field, label_field, schema, rename or {})
        except Unconvertible as exc:
            result.skipped.append(f"{where}: skipped: {exc}")
            continue
        errors = sorted(validator.iter_errors(label), key=lambda error: list(error.absolute_path))
        if errors:
            field = "/".join(str(part) for part in errors[0].absolute_path) or "(object)"
            result.skipped.append(f"{where}: skipped: label {field}: {errors[0].message}")
            continue
        result.records.append(
            {
                "id": f"{path.stem}-{number:06d}",
                "task": "extract",
                "lang": detect_language(text),
                "schema": schema_name,
                "messages": extraction_messages(
                    schema_name, text, ordered_like_schema(label, schema), extraction_prompt
                ),
                "meta": {"source": str(path), "source_line": number, "format": fmt},
            }
        )
    return result
