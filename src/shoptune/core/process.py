"""A child process shoptune starts and owns: vLLM, the storefront, the web page, a training run.

Every such child runs in its own process group (so stopping it stops what it spawned, as vLLM's
engine core), writes its output to a log file (so a failure can quote the log's tail), counts
as ready only when a probe says so (a process can be alive and still unable to serve), and is
stopped with SIGTERM to the group, then SIGKILL for what is left after a grace period. A child
runs at its parent's CPU priority (`nice shoptune demo` lowers the servers the demo starts too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shoptune.core.errors import EnvironmentProblem

Probe = Callable[[], bool]


def shoptune_argv(*args: str) -> list[str]:
    """The command line of a `shoptune ...` child, run with this interpreter."""
    return [sys.executable, "-m", "shoptune", *args]


def http_ok(url: str, timeout_s: float = 5.0) -> Probe:
    """A probe: does a GET of `url` answer 200?"""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    return check


def completion_ok(base_url: str, model: str, timeout_s: float = 30.0) -> Probe:
    """A probe: does a one-token completion from an OpenAI-compatible server at `base_url` succeed?"""
    body = json.dumps({"model": model, "prompt": "Hi", "max_tokens": 1, "temperature": 0}).encode()

    def check() -> bool:
        request = urllib.request.Request(
            f"{base_url}/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status == 200 and bool(json.loads(response.read())["choices"])
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError, KeyError):
            return False

    return check


def lower_priority(pid: int, niceness: int) -> None:
    """Run process `pid` (just started in a session of its own) at `niceness`, and its session's
    scheduling group too, so that a child runs at its parent's priority. Where Linux groups
    processes by session for the CPU (autogroups, on by default in many kernels) a new session gets
    its own group at niceness 0, which shares the CPU equally with every other group whatever its
    processes' own niceness: without this a lowered priority would not reach a child. Nothing to do
    at niceness 0 or below."""
    if niceness <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        os.setpriority(os.PRIO_PROCESS, pid, niceness)
    with contextlib.suppress(OSError):  # no autogroups (or not Linux): the process's niceness is enough
        Path(f"/proc/{pid}/autogroup").write_text(f"{niceness}\n")


@dataclass
class ChildProcess:
    """One child: `start()`, `wait_ready(probe, timeout_s)`, `stop()`; a context manager that stops it."""

    name: str
    argv: list[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> ChildProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=dict(self.env) if self.env is not None else None,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        lower_priority(self.process.pid, os.nice(0))  # this process's niceness
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, probe: Probe, timeout_s: float, poll_s: float = 0.5) -> float:
        """Block until `probe()` is true; the seconds it took. Raises, quoting the log, if the child
        exits first or `timeout_s` passes (and then stops it)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.alive():
                raise EnvironmentProblem(
                    f"{self.name} exited with code {self.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if probe():
                return time.monotonic() - started
            time.sleep(poll_s)
        self.stop()
        raise EnvironmentProblem(
            f"{self.name} was not ready after {timeout_s:.0f} s; last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal_group(self, signum: int) -> None:
        """Send `signum` to the child's whole process group (nothing if it is gone)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def group_alive(self) -> bool:
        """Whether any process of the child's group is left (its leader or what it started)."""
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the process group; SIGKILL what is left of it after `timeout_s`."""
        if self.process is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait(timeout=10)
        deadline = time.monotonic() + min(timeout_s, 10.0)
        while self.group_alive() and time.monotonic() < deadline:  # e.g. vLLM's engine core, still exiting
            time.sleep(0.2)
        self.signal_group(signal.SIGKILL)

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
