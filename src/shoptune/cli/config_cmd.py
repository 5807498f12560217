"""`shoptune config show`: the resolved config a command would run with; `config schema`: its JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import click

from shoptune.cli.options import load_cli_config, set_option
from shoptune.config import json_schema, to_yaml


@click.group("config")
def config_group() -> None:
    """Inspect and validate configs."""


@config_group.command("show")
@click.argument("config_path", type=click.Path(path_type=Path, dir_okay=False))
@set_option
def show(config_path: Path, overrides: tuple[str, ...]) -> None:
    """Validate CONFIG_PATH with overrides and print the fully resolved YAML."""
    click.echo(to_yaml(load_cli_config(config_path, overrides)), nl=False)


@config_group.command("schema")
def schema() -> None:
    """Print the JSON Schema of a config file (point an editor's YAML plugin at it)."""
    click.echo(json.dumps(json_schema(), indent=2, ensure_ascii=False))
