"""`shoptune chat MESSAGE`: ask a model one question, in-process, greedy."""

from __future__ import annotations

from pathlib import Path

import click

from shoptune.cli.console import say, status_console
from shoptune.cli.options import config_option, load_cli_config, set_option


@click.command("chat")
@click.argument("message")
@config_option
@set_option
@click.option(
    "--model", "model_name", default=None, help="Registry name or model directory (default: the config's model.name)."
)
@click.option("--max-new-tokens", default=128, show_default=True, type=click.IntRange(1, 4096))
def chat(
    message: str, config_path: Path | None, overrides: tuple[str, ...], model_name: str | None, max_new_tokens: int
) -> None:
    """Answer MESSAGE as the shop assistant, with the config's system prompt and the model's chat template."""
    from shoptune.chat import generate_reply
    from shoptune.models import resolve_config_model

    config = load_cli_config(config_path, overrides)
    name = model_name or config.model.name
    model_dir = resolve_config_model(config.model, name, log=say)
    messages = [{"role": "system", "content": config.data.system_prompt}, {"role": "user", "content": message}]
    with status_console.status(f"{name} is answering"):
        reply = generate_reply(model_dir, messages, max_new_tokens=max_new_tokens, dtype=config.model.dtype)
    say(f"shopper: {message}")
    click.echo(reply.text)
    ending = "stopped at EOS" if reply.stopped_at_eos else f"hit --max-new-tokens {max_new_tokens}"
    say(f"[{name}: {reply.new_tokens} tokens in {reply.seconds:.1f} s, {ending}]")
