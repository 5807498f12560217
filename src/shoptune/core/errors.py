"""Errors a user can act on, each carrying the exit code the CLI returns for it.

The CLI prints `error: <message>` for these and never a traceback: a traceback is a bug
report, these are answers. Exit codes (also in `shoptune --help`):

0  success
1  the command ran and its verdict is "no" (data check found problems, a gate failed)
2  bad invocation or input: flags, config files, data files
3  the environment lacks something: a model directory, a package, a free port, disk space
"""

from __future__ import annotations

EXIT_VERDICT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 3


class ShoptuneError(Exception):
    """Base class: a message meant for the user and the exit code that goes with it."""

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class BadInputError(ShoptuneError):
    """The user gave us something we cannot use (a file, a flag, a value)."""

    exit_code = EXIT_BAD_INPUT


class EnvironmentProblem(ShoptuneError):
    """Something outside the input is missing: a model directory, a package, disk space."""

    exit_code = EXIT_ENVIRONMENT
