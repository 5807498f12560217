"""`shoptune eval run|score|gate`."""

from __future__ import annotations

import click

from shoptune.core.errors import NotBuiltYet


@click.group("eval")
def eval_group() -> None:
    """Evaluate models and gate releases on the results."""


@eval_group.command("run")
def run() -> None:
    """Generate answers for an eval set with a model or endpoint, then score them."""
    raise NotBuiltYet("eval run", issue=5)


@eval_group.command("score")
def score() -> None:
    """Score saved predictions against an eval set, without a model."""
    raise NotBuiltYet("eval score", issue=5)


@eval_group.command("gate")
def gate() -> None:
    """Exit 1 when a report misses a configured threshold or regresses from a baseline."""
    raise NotBuiltYet("eval gate", issue=5)
