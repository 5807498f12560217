"""`shoptune serve up`: vLLM, the storefront and the web page as one unit.

Each runs as its own `shoptune serve ...` child (its own process group and log file); up
returns once all three answer, and stopping (Ctrl-C, SIGTERM, or any child dying) stops the
others in reverse order. In production use the supervisord/systemd files in deploy/ instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shoptune.core.process import ChildProcess, Probe

APP_STARTUP_S = 120.0
"""How long the storefront or the web page may take to answer (no model to load: imports only)."""


@dataclass(frozen=True)
class Service:
    """A child, the probe that says it answers, how long it may take, and what to say when it does."""

    child: ChildProcess
    ready: Probe
    timeout_s: float
    ready_message: str


@dataclass
class ProcessGroup:
    """Children started together, then each waited for; stopped together, newest first.

    Starting them at once overlaps their start-ups (mostly single-threaded imports: vLLM's ~20 s
    on a CPU hides the storefront's and the web page's). Neither of those needs vLLM to answer
    its own readiness probe; the storefront answers 503 until vLLM is up."""

    children: list[ChildProcess] = field(default_factory=list)

    def start_all(self, services: list[Service], say: Callable[[str], None]) -> None:
        started = time.monotonic()
        for service in services:
            self.children.append(service.child.start())
        for service in services:
            service.child.wait_ready(service.ready, service.timeout_s, poll_s=0.25)
            say(f"{service.ready_message} ({time.monotonic() - started:.0f} s)")

    def stop_all(self, timeout_s: float = 30.0) -> None:
        for child in reversed(self.children):
            child.stop(timeout_s)

    def wait_any(self) -> ChildProcess:
        """Block until one child exits; returns it."""
        while True:
            for child in self.children:
                if not child.alive():
                    return child
            time.sleep(0.5)
