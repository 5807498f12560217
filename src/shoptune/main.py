"""The `shoptune` entry point: assembles the stage command groups and turns errors into exit codes."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from shoptune import __version__
from shoptune.core.errors import ShoptuneError

# bitsandbytes (installed for QLoRA) warns on import on any AVX-512 CPU that an optional
# Hugging Face kernel package is absent; it is irrelevant to every CPU command.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

EXIT_CODES = """\b
Exit codes:
  0  success
  1  the command ran and its verdict is no (data check found problems, a gate failed)
  2  bad invocation or input (flags, configs, data files)
  3  the environment lacks something (a model directory, a package, disk space)
"""


COMMANDS = {
    "models": "shoptune.cli.models:models_group",
    "data": "shoptune.data.cli:data_group",
    "train": "shoptune.train.cli:train",
    "merge": "shoptune.train.cli:merge",
    "eval": "shoptune.eval.cli:eval_group",
    "serve": "shoptune.serve.cli:serve_group",
    "demo": "shoptune.demo.cli:demo",
    "chat": "shoptune.cli.chat_cmd:chat",
    "config": "shoptune.cli.config_cmd:config_group",
    "shop": "shoptune.cli.shop_cmd:shop_group",
}
"""Each command and the module that defines it. Imported by name when used, so the entry point
depends on no stage at import time (the layer contract in pyproject.toml holds) and `shoptune
data check` does not import the training stack."""


class ShoptuneGroup(click.Group):
    """Loads the stage commands of `COMMANDS` on demand, and prints a `ShoptuneError` as one
    `error:` message with its exit code, never a traceback (SHOPTUNE_DEBUG=1 adds the traceback).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ShoptuneError as error:
            if os.environ.get("SHOPTUNE_DEBUG"):
                raise
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


@click.group(
    cls=ShoptuneGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, prog_name="shoptune")
def cli() -> None:
    """shoptune: LoRA fine-tuning and evaluation workbench for e-commerce customer service.

    Stages: models -> data -> train -> merge -> eval -> serve; `demo` runs them all.
    """


def main() -> None:
    sys.exit(cli.main(prog_name="shoptune"))
