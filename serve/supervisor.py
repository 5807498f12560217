"""`shoptune serve up`: vLLM, the storefront and the web page as one unit.

Each runs as its own `shoptune serve ...` child (its own process group and log file); up
returns once all three answer, and stopping (Ctrl-C, SIGTERM, or any child dying) stops the
others in reverse order. In production use the supervisord/systemd files in deploy/ instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shoptune.core.errors import EnvironmentProblem


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    return check


@dataclass
class Child:
    name: str
    argv: list[str]
    ready: Callable[[], bool]
    log_path: Path
    process: subprocess.Popen | None = None


@dataclass
class ProcessGroup:
    children: list[Child] = field(default_factory=list)

    def start(self, child: Child, timeout_s: float, env: dict[str, str] | None = None) -> float:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(child.log_path, "ab") as log:
            child.process = subprocess.Popen(
                child.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env or os.environ.copy(),
            )
        self.children.append(child)
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if child.process.poll() is not None:
                tail = "\n".join(child.log_path.read_text(errors="replace").splitlines()[-15:])
                raise EnvironmentProblem(f"{child.name} exited with code {child.process.returncode}:\n{tail}")
            if child.ready():
                return time.monotonic() - started
            time.sleep(1.0)
        raise EnvironmentProblem(f"{child.name} not ready after {timeout_s:.0f} s (log {child.log_path})")

    def stop_all(self, timeout_s: float = 30.0) -> None:
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass

    def wait_any(self) -> Child:
        """Block until one child exits; returns it."""
        while True:
            for child in self.children:
                if child.process is not None and child.process.poll() is not None:
                    return child
            time.sleep(0.5)


def shoptune_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "shoptune", *args]
