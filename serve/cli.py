"""`shoptune serve vllm|app|ui|up`."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import click

from shoptune.cli.console import say
from shoptune.cli.options import config_option, load_cli_config, set_option
from shoptune.core.errors import EnvironmentProblem

_LORA = click.option("--lora", "loras", multiple=True, metavar="NAME=DIR", help="A LoRA adapter to serve by name.")


@click.group("serve")
def serve_group() -> None:
    """Serve the tuned model with vLLM and the storefront service on top."""


class _StopRequested(Exception):
    """Raised by the SIGTERM/SIGINT handler so that cleanup runs in the main flow, not in the handler.

    Stopping from inside the handler deadlocks: the signal usually lands while the main thread
    is in `Popen.wait()`, which holds the lock a second `wait()` on the same child needs.
    """


@contextmanager
def _until_signalled():
    """Run the body until it returns or SIGTERM/Ctrl-C arrives; True in `.stopped` if a signal ended it."""

    def handler(signum, _frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise _StopRequested(signum)

    state = SimpleNamespace(stopped=False)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        yield state
    except _StopRequested:
        state.stopped = True


@serve_group.command("vllm")
@config_option
@set_option
@click.option("--model", "model", required=True, help="Registry name or model directory (merged or base model).")
@_LORA
@click.option("--host", default=None, help="Default: serve.host.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: serve.vllm_port.")
@click.option("--name", "served_name", default=None, help="Served model name (default: serve.served_model_name).")
def vllm(config_path, overrides, model, loras, host, port, served_name) -> None:
    """Run vLLM's OpenAI-compatible server as a managed child process until SIGTERM/Ctrl-C."""
    from shoptune.models import resolve_config_model
    from shoptune.serve.vllm_server import VllmServer, parse_lora

    config = load_cli_config(config_path, overrides)
    model_dir = resolve_config_model(config.model, model, log=say)
    server = VllmServer(
        model_dir=model_dir,
        config=config.serve,
        served_name=served_name or config.serve.served_model_name,
        port=port or config.serve.vllm_port,
        host=host or config.serve.host,
        loras=[parse_lora(spec) for spec in loras],
    )
    code = 0
    try:
        with _until_signalled() as run:
            server.start()
            say(f"starting vLLM for {model_dir} (log {server.log_path})")
            seconds = server.wait_ready()
            click.echo(
                f"vLLM ready at {server.base_url} as {server.served_name!r} after {seconds:.0f} s "
                f"(pid {server.process.pid}, log {server.log_path})"
            )
            sys.stdout.flush()
            code = server.process.wait()
    finally:
        server.stop()
    raise SystemExit(0 if run.stopped or code in (0, -signal.SIGTERM) else code)


@serve_group.command("app")
@config_option
@set_option
@click.option("--llm", "llm_url", default=None, help="vLLM base URL (default: http://serve.host:serve.vllm_port/v1).")
@click.option("--model-name", default=None, help="Served model name (default: serve.served_model_name).")
@click.option(
    "--tokenizer",
    "tokenizer_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Tokenizer of the served model, to count history tokens exactly.",
)
@click.option("--host", default=None)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: serve.app_port.")
def app(config_path, overrides, llm_url, model_name, tokenizer_dir, host, port) -> None:
    """Run the storefront Q&A service (FastAPI) against a vLLM endpoint."""
    import uvicorn

    config = load_cli_config(config_path, overrides)
    application = build_app(config, llm_url=llm_url, model_name=model_name, tokenizer_dir=tokenizer_dir)
    serve = config.serve
    uvicorn.run(
        application,
        host=host or serve.host,
        port=port or serve.app_port,
        log_level="warning",
        timeout_keep_alive=5,
        limit_concurrency=256,
    )


def build_app(config, *, llm_url: str | None = None, model_name: str | None = None, tokenizer_dir: Path | None = None):
    """The FastAPI app for a config (also used by tests and `serve up`)."""
    import logging

    from openai import OpenAI

    from shoptune.serve.app import create_app
    from shoptune.serve.sessions import open_store
    from shoptune.serve.storefront import Storefront, StorefrontSettings, load_tokenizer_for

    serve = config.serve
    api_key = os.environ.get(serve.api_key_env, "")
    if not api_key:
        raise EnvironmentProblem(
            f"set ${serve.api_key_env} to the storefront's API key (every endpoint but /healthz requires it)"
        )
    log_dir = Path(serve.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_dir / "storefront.log", encoding="utf-8", errors="backslashreplace")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("shoptune.storefront")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == handler.baseFilename for h in logger.handlers):
        logger.addHandler(handler)
    llm = OpenAI(
        base_url=llm_url or f"http://{serve.host}:{serve.vllm_port}/v1",
        api_key="EMPTY",
        timeout=serve.request_timeout_s,
        max_retries=serve.llm_max_retries,
    )
    store = open_store(serve.session_store, sqlite_path=serve.sqlite_path, redis_url=serve.redis_url)
    settings = StorefrontSettings(
        model_name=model_name or serve.served_model_name,
        system_prompt=config.data.system_prompt,
        extraction_prompt=config.data.extraction_prompt,
        serve=serve,
        shop=config.shop,
    )
    storefront = Storefront(settings, store, llm, load_tokenizer_for(tokenizer_dir))
    return create_app(
        storefront, api_key=api_key, max_body_bytes=serve.max_request_bytes, cors_origins=tuple(serve.cors_origins)
    )


@serve_group.command("ui")
@config_option
@set_option
@click.option("--api", "api_url", default=None, help="Storefront base URL (default: http://serve.host:serve.app_port).")
@click.option("--host", default=None)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: serve.ui_port (7860).")
def ui(config_path, overrides, api_url, host, port) -> None:
    """Run the web chat page (Gradio) that talks to the storefront API."""
    from shoptune.serve.webui import build_ui

    config = load_cli_config(config_path, overrides)
    serve = config.serve
    api_key = os.environ.get(serve.api_key_env, "")
    if not api_key:
        raise EnvironmentProblem(f"set ${serve.api_key_env}: the page calls the storefront API with it")
    page = build_ui(api_url or f"http://{serve.host}:{serve.app_port}", api_key)
    page.launch(
        server_name=host or serve.host, server_port=port or serve.ui_port, share=False, show_error=True, quiet=True
    )


@serve_group.command("up")
@config_option
@set_option
@click.option("--model", "model", default=None, help="Model to serve (default: the config's model.name).")
@_LORA
@click.option("--no-ui", is_flag=True, help="Skip the web page.")
def up(config_path, overrides, model, loras, no_ui) -> None:
    """Start vLLM, the storefront service and the web page together; Ctrl-C stops all of them."""
    from shoptune.core.process import ChildProcess, completion_ok, http_ok, shoptune_argv
    from shoptune.serve.supervisor import APP_STARTUP_S, ProcessGroup, Service

    config = load_cli_config(config_path, overrides)
    serve = config.serve
    if not os.environ.get(serve.api_key_env):
        raise EnvironmentProblem(f"set ${serve.api_key_env} to the storefront's API key")
    common = [*(["--config", str(config_path)] if config_path else []), *(f"--set={o}" for o in overrides)]
    model = model or config.model.name
    vllm_args = ["--model", model, *(f"--lora={spec}" for spec in loras)]
    tokenizer = _tokenizer_dir(model, config)
    app_argv = shoptune_argv("serve", "app", *common, *(["--tokenizer", str(tokenizer)] if tokenizer else []))
    logs = Path(serve.log_dir)
    services = [
        Service(
            ChildProcess("vllm", shoptune_argv("serve", "vllm", *common, *vllm_args), logs / "up-vllm.log"),
            completion_ok(f"http://{serve.host}:{serve.vllm_port}/v1", serve.served_model_name),
            serve.startup_timeout_s,
            f"vLLM ready on :{serve.vllm_port}",
        ),
        Service(
            ChildProcess("storefront", app_argv, logs / "up-app.log"),
            http_ok(f"http://{serve.host}:{serve.app_port}/healthz"),
            APP_STARTUP_S,
            f"storefront ready on http://{serve.host}:{serve.app_port}",
        ),
    ]
    if not no_ui:
        services.append(
            Service(
                ChildProcess("web page", shoptune_argv("serve", "ui", *common), logs / "up-ui.log"),
                http_ok(f"http://{serve.host}:{serve.ui_port}/"),
                APP_STARTUP_S,
                f"web page on http://{serve.host}:{serve.ui_port}",
            )
        )
    group = ProcessGroup()
    try:
        with _until_signalled() as run:
            group.start_all(services, say)
            click.echo("all services up; Ctrl-C stops them")
            sys.stdout.flush()
            ended = group.wait_any()
            say(f"{ended.name} exited ({ended.returncode}); stopping the others")
    finally:
        group.stop_all()
    if not run.stopped:
        raise SystemExit(1)  # a service died on its own: supervisors should restart the unit


def _tokenizer_dir(model: str, config) -> Path | None:
    from shoptune.models import resolve_config_model

    try:
        return resolve_config_model(config.model, model)
    except Exception:
        return None
