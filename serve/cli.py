"""`shoptune serve vllm|app|up`."""

from __future__ import annotations

import click

from shoptune.core.errors import NotBuiltYet


@click.group("serve")
def serve_group() -> None:
    """Serve the tuned model with vLLM and the storefront service on top."""


@serve_group.command("vllm")
def vllm() -> None:
    """Run vLLM's OpenAI-compatible server for a merged model or base + LoRA adapters."""
    raise NotBuiltYet("serve vllm", issue=6)


@serve_group.command("app")
def app() -> None:
    """Run the storefront Q&A service (FastAPI) against a vLLM endpoint."""
    raise NotBuiltYet("serve app", issue=6)


@serve_group.command("up")
def up() -> None:
    """Start vLLM, the storefront service and the web page together."""
    raise NotBuiltYet("serve up", issue=6)
