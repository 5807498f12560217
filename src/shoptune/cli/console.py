"""Terminal output: results on stdout, progress and status on stderr (so stdout stays scriptable)."""

from __future__ import annotations

from rich.console import Console

status_console = Console(stderr=True, highlight=False, soft_wrap=True)


def say(message: str) -> None:
    """A status line for the person at the terminal (stderr)."""
    status_console.print(message, markup=False)
