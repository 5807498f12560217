"""`shoptune train CONFIG` and `shoptune merge RUN_DIR`."""

from __future__ import annotations

from pathlib import Path

import click

from shoptune.cli.options import load_cli_config, set_option
from shoptune.core.errors import NotBuiltYet


@click.command("train")
@click.argument("config_path", metavar="CONFIG", type=click.Path(path_type=Path, dir_okay=False))
@set_option
@click.option(
    "--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), help="Run folder (default runs/<name>)."
)
@click.option("--resume", is_flag=True, help="Continue from the newest complete checkpoint in the run folder.")
@click.option("--dry-run", is_flag=True, help="Print parameters, memory and time estimates; train nothing.")
def train(config_path: Path, overrides: tuple[str, ...], out_dir: Path | None, resume: bool, dry_run: bool) -> None:
    """Fine-tune the config's model with LoRA/QLoRA on the built dataset."""
    load_cli_config(config_path, overrides)  # a bad config is reported in full before anything else
    raise NotBuiltYet("train", issue=4)


@click.command("merge")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path, file_okay=False))
def merge(run_dir: Path, out_dir: Path) -> None:
    """Merge a run's adapter into its base model and check logit/generation parity."""
    raise NotBuiltYet("merge", issue=4)
