"""`shoptune data build|check|stats|show|import|pairs`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from shoptune.cli.console import say
from shoptune.cli.options import config_option, load_cli_config, set_option
from shoptune.config.schema import TASKS
from shoptune.core.errors import EXIT_VERDICT_FAILED, BadInputError
from shoptune.data.importers import FORMATS
from shoptune.data.labelled import LABELLED_FORMATS


def _tokenizer(model: str):
    from shoptune.models import resolve_model_dir
    from shoptune.models.loading import load_tokenizer

    return load_tokenizer(resolve_model_dir(model, log=say))


def _tokenizer_for(config):
    from shoptune.models import resolve_config_model
    from shoptune.models.loading import load_tokenizer

    return load_tokenizer(resolve_config_model(config.model, log=say))


@click.group("data")
def data_group() -> None:
    """Build, validate and inspect training and evaluation data."""


@data_group.command("build")
@config_option
@set_option
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Default: the config's data.dir."
)
@click.option(
    "--no-length-limit",
    is_flag=True,
    help="Skip loading the config's tokenizer to keep records within data.max_tokens.",
)
def build(config_path: Path | None, overrides: tuple[str, ...], out_dir: Path | None, no_length_limit: bool) -> None:
    """Generate train/val/test splits from the shipped catalogue, schemas, style guide and policy.

    Records longer than data.max_tokens under the config's model's chat template are redrawn,
    so the corpus fits the model it is built for (the manifest records which).
    """
    from shoptune.config import write_resolved_config
    from shoptune.data.build import build_dataset, token_limit_for

    config = load_cli_config(config_path, overrides)
    out_dir = out_dir or Path(config.data.dir)
    started = time.perf_counter()
    limit = None
    if not no_length_limit:
        limit = token_limit_for(config.model.name, _tokenizer_for(config), config.data.max_tokens)
    manifest = build_dataset(config.data, out_dir, limit)
    write_resolved_config(config, out_dir)
    elapsed = time.perf_counter() - started
    for split, counts in manifest["counts"].items():
        tasks = ", ".join(f"{task} {n}" for task, n in counts["by_task"].items())
        langs = ", ".join(f"{lang} {n}" for lang, n in counts["by_lang"].items())
        click.echo(f"{split:5s} {counts['records']:6d} records  ({tasks}; {langs})")
    hygiene = manifest["split_hygiene"]
    click.echo(
        f"test: {hygiene['test_heldout_template_share']:.0%} use held-out templates, "
        f"{hygiene['test_heldout_sku_share']:.0%} held-out SKUs; user messages shared between splits: "
        f"{sum(hygiene['user_messages_shared_between_splits'].values())}"
    )
    say(f"wrote {out_dir}/{{train,val,test}}.jsonl and manifest.json in {elapsed:.1f} s")


@data_group.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@config_option
@set_option
@click.option("--model", default=None, help="Also check token lengths after this model's chat template.")
@click.option("--max-tokens", type=click.IntRange(1), default=None, help="Token limit (default: data.max_tokens).")
def check(
    files: tuple[Path, ...],
    config_path: Path | None,
    overrides: tuple[str, ...],
    model: str | None,
    max_tokens: int | None,
) -> None:
    """Validate JSONL files record by record: one `FILE:LINE: message` per problem; exit 1 if any.
    Extraction records are checked against the config's shop's schemas (`shop.dir`)."""
    from shoptune.shop import resources
    from shoptune.shop.check import CheckSummary, check_file
    from shoptune.shop.records import RecordValidator
    from shoptune.shop.render import render_record

    config = load_cli_config(config_path, overrides)
    count_tokens = None
    if model is not None:
        tokenizer = _tokenizer(model)
        max_tokens = max_tokens or config.data.max_tokens

        def count_tokens(messages):
            return len(render_record(tokenizer, messages).input_ids)

    validator = RecordValidator(resources.schemas())
    summary = CheckSummary()
    for path in files:
        for problem in check_file(path, validator, count_tokens=count_tokens, max_tokens=max_tokens, summary=summary):
            click.echo(str(problem))
    say(
        f"checked {summary.records} record(s) in {summary.files} file(s): "
        f"{summary.valid_records} valid, {summary.problems} problem(s)"
    )
    if summary.problems:
        raise SystemExit(EXIT_VERDICT_FAILED)


@data_group.command("stats")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--model", default=None, help="Report token lengths after this model's chat template.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def stats(file: Path, model: str | None, as_json: bool) -> None:
    """Counts per task and language, turns, token lengths (min/median/p95/max), duplicates."""
    from shoptune.data.stats import corpus_stats
    from shoptune.shop.reading import read_records

    figures = corpus_stats(read_records(file), _tokenizer(model) if model else None)
    if as_json:
        click.echo(json.dumps(figures, ensure_ascii=False, indent=2))
        return
    for key, value in figures.items():
        if isinstance(value, dict):
            click.echo(f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items()))
        else:
            click.echo(f"{key}: {value}")


@data_group.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--model", required=True, help="Render with this model's chat template.")
@click.option("--n", "count", default=3, show_default=True, type=click.IntRange(1))
@click.option("--id", "record_id", default=None, help="Show the record with this id.")
def show(file: Path, model: str, count: int, record_id: str | None) -> None:
    """Print records as the model will see them; «…» marks the tokens that carry loss."""
    from shoptune.shop.reading import read_records
    from shoptune.shop.render import marked_text, render_record

    records = read_records(file)
    if record_id is not None:
        records = [r for r in records if r["id"] == record_id]
        if not records:
            raise BadInputError(f"{file}: no record with id {record_id!r}")
    tokenizer = _tokenizer(model)
    for record in records[:count]:
        rendered = render_record(tokenizer, record["messages"])
        click.echo(
            f"=== {record['id']} ({record['task']}, {record['lang']}): {len(rendered.input_ids)} tokens, "
            f"{rendered.trainable_tokens} carry loss (marked «…»)"
        )
        click.echo(marked_text(rendered))
        if "rejected" in record:
            failure = (record.get("meta") or {}).get("failure")
            click.echo(f"--- rejected{f' ({failure})' if failure else ''}, in place of the last answer:")
            click.echo(record["rejected"])


@data_group.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, type=click.Choice([*FORMATS, *LABELLED_FORMATS]))
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--task", default="chat", show_default=True, type=click.Choice(TASKS), help="Task of chat-format records."
)
@click.option("--schema", "schema_name", default=None, help="labelled/spans/columns: the shop schema of the labels.")
@click.option("--text-field", default="text", show_default=True, help="labelled/spans/columns: the text's column.")
@click.option("--label-field", default="label", show_default=True, help="labelled: the column with the JSON label.")
@click.option(
    "--map",
    "renames",
    multiple=True,
    metavar="NAME=FIELD",
    help="spans/columns: a span type's or column's schema field.",
)
@config_option
@set_option
def import_(
    source: Path,
    fmt: str,
    out_file: Path,
    task: str,
    schema_name: str | None,
    text_field: str,
    label_field: str,
    renames: tuple[str, ...],
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Convert ShareGPT, Alpaca or OpenAI-chat files, or labelled extraction data (JSONL/CSV with a
    JSON label, typed character spans, or one column per field) into shoptune records; what is
    skipped is reported."""
    from shoptune.core.atomic import atomic_write_text
    from shoptune.data.build import to_jsonl
    from shoptune.data.importers import import_file
    from shoptune.data.labelled import import_labelled

    config = load_cli_config(config_path, overrides)  # the shop (its schemas) and data.extraction_prompt
    if fmt in LABELLED_FORMATS:
        if schema_name is None:
            raise BadInputError(f"--format {fmt} needs --schema NAME (one of the shop's extraction schemas)")
        result = import_labelled(
            source,
            fmt,
            schema_name=schema_name,
            extraction_prompt=config.data.extraction_prompt,
            text_field=text_field,
            label_field=label_field,
            rename=dict(_pair(spec) for spec in renames),
        )
    elif task == "extract":
        raise BadInputError("--task extract needs a schema per record: use --format labelled or spans with --schema")
    else:
        result = import_file(source, fmt, task=task, id_prefix=source.stem)
    for line in result.skipped:
        click.echo(line, err=True)
    if not result.records:
        raise BadInputError(f"{source}: nothing could be converted from {fmt}; {out_file} not written")
    atomic_write_text(out_file, to_jsonl(result.records))
    say(f"wrote {len(result.records)} record(s) to {out_file}; skipped {len(result.skipped)}")


def _pair(spec: str) -> tuple[str, str]:
    kind, sep, field = spec.partition("=")
    if not sep or not kind or not field:
        raise BadInputError(f"--map expects TYPE=FIELD, got {spec!r}")
    return kind, field


@data_group.command("pairs")
@click.argument("data_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
@config_option
@set_option
@click.option(
    "--kinds",
    default=None,
    help="Comma-separated failures to write (default: the config's train.preference.kinds).",
)
@click.option("--per-record", type=click.IntRange(1), default=None, help="Default: train.preference.pairs_per_record.")
@click.option("--seed", type=int, default=None, help="Default: the config's train.seed.")
@click.option(
    "--no-length-limit",
    is_flag=True,
    help="Skip loading the config's tokenizer to keep rejected answers within data.max_tokens.",
)
def pairs(
    data_dir: Path,
    out_dir: Path,
    config_path: Path | None,
    overrides: tuple[str, ...],
    kinds: str | None,
    per_record: int | None,
    seed: int | None,
    no_length_limit: bool,
) -> None:
    """Make chosen/rejected preference pairs from a data folder's records: the record's own answer
    is chosen, a copy with one rule-made failure (tone, language, an invented price or SKU, a product
    out of stock or over budget, a leaked prompt, a concession, a wrong field) is rejected. A rejected
    answer over data.max_tokens under the config's model's chat template gives way to another failure.
    Pairs from a served model's own answers: shoptune eval pairs."""
    from shoptune.config.schema import PAIR_KINDS
    from shoptune.data.build import token_limit_for
    from shoptune.data.pairs import require_train_split, write_pairs

    require_train_split(data_dir)
    config = load_cli_config(config_path, overrides)
    preference = config.train.preference
    chosen_kinds = tuple(k.strip() for k in kinds.split(",")) if kinds else preference.kinds
    unknown = [k for k in chosen_kinds if k not in PAIR_KINDS]
    if unknown:
        raise BadInputError(f"--kinds: unknown {', '.join(unknown)}; known: {', '.join(PAIR_KINDS)}")
    limit = None
    if not no_length_limit:
        limit = token_limit_for(config.model.name, _tokenizer_for(config), config.data.max_tokens)
    manifest = write_pairs(
        data_dir,
        out_dir,
        kinds=chosen_kinds,
        per_record=per_record or preference.pairs_per_record,
        seed=config.train.seed if seed is None else seed,
        limit=limit,
    )
    for name, figures in manifest["files"].items():
        counts = ", ".join(f"{kind} {n}" for kind, n in figures["by_failure"].items())
        click.echo(f"{name:12s} {figures['records']:6d} pairs  ({counts})")
    say(f"wrote {out_dir}/ (check it: shoptune data check {out_dir}/train.jsonl)")
