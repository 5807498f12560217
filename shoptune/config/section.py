"""The base every config dataclass derives from: validation that collects, rather than stops.

A section lists all of its problems in `check()`; `__post_init__` raises them together in one
`SectionInvalid`, so a config built in Python is validated exactly like one loaded from YAML.
"""

from __future__ import annotations

from dataclasses import dataclass


class SectionInvalid(ValueError):
    """Raised by a section's `__post_init__` with every `(field, message)` problem it found."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {message}" for name, message in problems))


@dataclass(frozen=True)
class ConfigSection:
    def check(self) -> list[tuple[str, str]]:
        """Return `(field name, message)` for each invalid value; empty when valid."""
        return []

    def __post_init__(self) -> None:
        problems = self.check()
        if problems:
            raise SectionInvalid(problems)
