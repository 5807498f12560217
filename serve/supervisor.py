"""`shoptune serve up`: vLLM, the storefront and the web page as one unit.

Each runs as its own `shoptune serve ...` child (its own process group and log file); up
returns once all three answer, and stopping (Ctrl-C, SIGTERM, or any child dying) stops the
others in reverse order. In production use the supervisord/systemd files in deploy/ instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shoptune.core.process import ChildProcess, Probe


@dataclass
class ProcessGroup:
    """Children started one after another, each waited for; stopped together, newest first."""

    children: list[ChildProcess] = field(default_factory=list)

    def start(self, child: ChildProcess, ready: Probe, timeout_s: float) -> float:
        """Start `child` and wait until `ready()`; the seconds it took."""
        self.children.append(child.start())
        return child.wait_ready(ready, timeout_s, poll_s=1.0)

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
