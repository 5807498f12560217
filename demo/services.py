"""The servers the demo evaluates and talks to: vLLM for one model and, on demand, the storefront
on top of it; each started once, on first use, and stopped at the end."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from shoptune.config import ShoptuneConfig
from shoptune.core.net import free_port
from shoptune.core.paths import REPO_ROOT
from shoptune.core.process import ChildProcess, http_ok, shoptune_argv
from shoptune.serve.supervisor import APP_STARTUP_S

Log = Callable[[str], None]


class Services:
    """vLLM serving `model_dir` as `served_name`, and the storefront (`serve app`) over it."""

    def __init__(self, config: ShoptuneConfig, model_dir: Path, served_name: str, logs: Path, log: Log) -> None:
        self.config, self.model_dir, self.served_name, self.logs, self.log = config, model_dir, served_name, logs, log
        self.vllm = None
        self.ready, self.started = False, 0.0
        self.app: ChildProcess | None = None
        self.app_url = ""
        self.api_key = secrets.token_urlsafe(24)

    def start_llm(self) -> None:
        """Start the vLLM server (once) without waiting for it."""
        if self.vllm is None:
            from shoptune.serve.vllm_server import VllmServer

            self.vllm = VllmServer(
                model_dir=self.model_dir,
                config=self.config.serve,
                served_name=self.served_name,
                port=free_port(),
                log_path=self.logs / f"vllm-{self.served_name}.log",
            )
            self.vllm.start()
            self.started = time.monotonic()
            self.log(f"  starting vLLM for {self.model_dir.name} (log {self.vllm.log_path})")

    def llm(self):
        """The vLLM server, started on the first call (unless `start_llm` did) and waited for."""
        self.start_llm()
        if not self.ready:
            self.vllm.wait_ready()
            self.ready = True
            self.log(f"  vLLM ready at {self.vllm.base_url} in {time.monotonic() - self.started:.0f} s")
        return self.vllm

    def storefront(self, config_path: Path) -> str:
        """The storefront's base URL, started over this vLLM with the config at `config_path` on the first call."""
        if self.app is None:
            port = free_port()
            argv = shoptune_argv(
                "serve", "app", "--config", str(config_path), "--llm", self.llm().base_url,
                "--model-name", self.served_name, "--tokenizer", str(self.model_dir), "--port", str(port),
            )  # fmt: skip
            env = {**os.environ, self.config.serve.api_key_env: self.api_key}
            self.app = ChildProcess("the storefront", argv, self.logs / "storefront-stdout.log", env=env, cwd=REPO_ROOT)
            self.app_url = f"http://127.0.0.1:{port}"
            self.app.start().wait_ready(http_ok(f"{self.app_url}/healthz", timeout_s=2), APP_STARTUP_S)
            self.log(f"  storefront ready at {self.app_url}")
        return self.app_url

    def stop(self) -> None:
        if self.app is not None:
            self.app.stop()
        if self.vllm is not None:
            self.vllm.stop()
