"""The `shoptune` entry point: assembles the stage command groups and turns errors into exit codes."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from shoptune import __version__
from shoptune.cli.chat_cmd import chat
from shoptune.cli.config_cmd import config_group
from shoptune.cli.demo import demo
from shoptune.cli.models import models_group
from shoptune.core.errors import ShoptuneError
from shoptune.data.cli import data_group
from shoptune.eval.cli import eval_group
from shoptune.serve.cli import serve_group
from shoptune.train.cli import merge, train

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


class ShoptuneGroup(click.Group):
    """Prints a `ShoptuneError` as one `error:` message with its exit code, never a traceback.

    Set SHOPTUNE_DEBUG=1 to get the traceback as well.
    """

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


for command in (models_group, data_group, train, merge, eval_group, serve_group, demo, chat, config_group):
    cli.add_command(command)


def main() -> None:
    sys.exit(cli.main(prog_name="shoptune"))
