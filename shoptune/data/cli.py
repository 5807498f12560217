"""`shoptune data build|check|stats|show|import`."""

from __future__ import annotations

import click

from shoptune.core.errors import NotBuiltYet


@click.group("data")
def data_group() -> None:
    """Build, validate and inspect training and evaluation data."""


@data_group.command("build")
def build() -> None:
    """Generate train/val/test splits from the shipped catalogue, schemas and policies."""
    raise NotBuiltYet("data build", issue=3)


@data_group.command("check")
def check() -> None:
    """Validate JSONL files record by record (FILE:LINE: message)."""
    raise NotBuiltYet("data check", issue=3)


@data_group.command("stats")
def stats() -> None:
    """Counts per task and language, token lengths, duplicates."""
    raise NotBuiltYet("data stats", issue=3)


@data_group.command("show")
def show() -> None:
    """Print records through the chat template with the loss-bearing tokens marked."""
    raise NotBuiltYet("data show", issue=3)


@data_group.command("import")
def import_() -> None:
    """Convert ShareGPT, Alpaca or OpenAI-format files into shoptune records."""
    raise NotBuiltYet("data import", issue=3)
