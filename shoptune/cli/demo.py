"""`shoptune demo`: the end-to-end pipeline on the embedded model (issue 7)."""

from __future__ import annotations

import click

from shoptune.core.errors import NotBuiltYet


@click.command("demo")
def demo() -> None:
    """Run data -> LoRA -> merge -> eval base vs tuned -> vLLM -> storefront, with one report."""
    raise NotBuiltYet("demo", issue=7)
