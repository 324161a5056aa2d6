"""Live events of a run, for renderers: started, output chunk, finished — in order per pod.

Events are delivered on the engine's event loop, in the order they happen for each pod
(``PodStarted`` first, then its ``PodOutput`` chunks, then ``PodFinished``). A callback must be
quick and must not block: renderers buffer and throttle on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._resolve import PodTarget, Selection
    from ._results import PodResult, PodResults

__all__ = [
    "Event",
    "EventCallback",
    "PodFinished",
    "PodOutput",
    "PodStarted",
    "RunFinished",
    "RunStarted",
]


@dataclass(frozen=True)
class RunStarted:
    """Targets are resolved; execs are about to start."""

    context: str
    selection: Selection
    command: str


@dataclass(frozen=True)
class PodStarted:
    """The exec in one pod is connected: the command is running."""

    target: PodTarget


@dataclass(frozen=True)
class PodOutput:
    """A chunk of output from one pod: ``stream`` is 1 (stdout) or 2 (stderr)."""

    target: PodTarget
    stream: int
    data: bytes


@dataclass(frozen=True)
class PodFinished:
    """One pod is done (any status); ``result`` is final."""

    result: PodResult


@dataclass(frozen=True)
class RunFinished:
    """Every pod is done (or the run was cancelled); ``results`` is what the caller gets."""

    results: PodResults


Event = RunStarted | PodStarted | PodOutput | PodFinished | RunFinished
EventCallback = Callable[[Event], None]
