"""Which CPU cores the sandbox and the contenders run on.

The sandbox is a Python server: sharing the cores with the client being measured, it competes
with it, and whoever has more threads gets more CPU. With two or more cores the benchmark
therefore pins the sandbox (and the pod processes it starts, which inherit its affinity) to
one core and every contender's worker process (and what it starts: kubectl, xargs, a kernel)
to another, so the client's CPU and wall time are its own and the server never waits for the
client's core. With one core, or where the system has no affinity calls, nothing is pinned and
the report says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Pinning:
    """The cores of the server and of the clients, or why there are none."""

    server: frozenset[int] | None = None
    client: frozenset[int] | None = None
    #: Why nothing is pinned ("" when pinned).
    reason: str = ""

    @property
    def pinned(self) -> bool:
        return self.server is not None and self.client is not None

    def describe(self) -> str:
        """One phrase for the report: ``sandbox on core 0, contenders on core 1``."""
        if self.server is None or self.client is None:
            return f"not pinned ({self.reason})"
        return f"sandbox on core {_cores(self.server)}, contenders on core {_cores(self.client)}"

    def as_json(self) -> dict[str, object]:
        return {
            "server": sorted(self.server) if self.server is not None else None,
            "client": sorted(self.client) if self.client is not None else None,
            "reason": self.reason,
            "shown": self.describe(),
        }

    def for_client(self) -> Callable[[], None] | None:
        """A ``preexec_fn`` that pins a contender's worker process, or None."""
        return pin_to(self.client)


def plan(enabled: bool = True) -> Pinning:
    """Split the cores this process may use: the first for the server, the second for the
    clients (the same one for every contender, so they are measured alike)."""
    if not enabled:
        return Pinning(reason="--no-pin")
    if not hasattr(os, "sched_setaffinity"):
        return Pinning(reason="this system has no CPU affinity calls")
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Pinning(reason=f"only {len(cores)} core available")
    return Pinning(server=frozenset(cores[:1]), client=frozenset(cores[1:2]))


def affinity(pid: int = 0) -> list[int]:
    """The cores ``pid`` (0: this process) may run on; empty where that cannot be read."""
    if not hasattr(os, "sched_getaffinity"):
        return []
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:  # the process is gone
        return []


def pin_to(cores: frozenset[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen` that pins the child to ``cores``; None
    for None (nothing to pin)."""
    if cores is None:
        return None

    def pin() -> None:
        # Runs in the child between fork and exec: whatever it starts inherits the mask.
        os.sched_setaffinity(0, cores)

    return pin


def _cores(cores: frozenset[int]) -> str:
    return ",".join(str(core) for core in sorted(cores))
