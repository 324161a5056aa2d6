"""Live events of a run, for renderers: started, output chunk, finished — in order per pod.

Events are delivered on the engine's event loop, in the order they happen for each pod
(``PodStarted`` first, then its ``PodOutput`` chunks, then ``PodFinished``). A callback must be
quick and must not block: renderers buffer and throttle on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._channels import Stream

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
    """A chunk of output from one pod: ``stream`` is :attr:`Stream.STDOUT` or
    :attr:`Stream.STDERR` (an ``IntEnum``: equal to the channel numbers 1 and 2)."""

    target: PodTarget
    stream: Stream
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
"""Any one of the five events; ``match``/``isinstance`` tell them apart."""
EventCallback = Callable[[Event], None]
"""What ``on_event`` takes: called with each :data:`Event`, on the engine's loop thread."""
