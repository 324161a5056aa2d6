"""The widget views' flush timer: one pending flush on a short-lived timer thread.

Events arrive on the engine's loop thread, which must never wait for comm traffic: they only
arm this timer, and the flush runs on the timer's own thread. The owner's lock guards every
method; :func:`join` and the callback run without it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["FlushTimer"]

#: The flush threads' name (tests check that none outlives its view).
THREAD_NAME = "podmagic-render-flush"


class FlushTimer:
    """At most one armed flush, re-armed only to run earlier; cancelled and joined at close.

    The callback starts with ``if not timer.claim(): return`` under the owner's lock (a
    timer replaced by an earlier one, or cancelled as it fired, does nothing) and ends with
    :meth:`done` in a ``finally``.
    """

    __slots__ = ("_callback", "_threads", "_timer", "due")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._timer: threading.Timer | None = None
        self._threads: set[threading.Thread] = set()
        self.due = math.inf
        """When the armed flush runs (``time.monotonic()``), ``inf`` when none is armed."""

    @property
    def armed(self) -> bool:
        """Whether a flush is armed."""
        return self._timer is not None

    def schedule(self, due: float) -> None:
        """Arm a flush at ``due`` (``time.monotonic()``), unless one is armed as soon."""
        if self._timer is not None:
            if self.due <= due:
                return  # a flush is already armed, soon enough
            self._timer.cancel()
        timer = threading.Timer(max(0.0, due - time.monotonic()), self._callback)
        timer.name = THREAD_NAME
        timer.daemon = True  # a kernel exiting mid-run must not wait for a redraw
        self._timer, self.due = timer, due
        # Cancelled timers never reach done() to remove themselves: prune them here.
        self._threads = {thread for thread in self._threads if thread.is_alive()}
        self._threads.add(timer)
        timer.start()

    def cancel(self) -> None:
        """Disarm the pending flush, if any."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self.due = None, math.inf

    def claim(self) -> bool:
        """In the callback: True if the calling thread is the armed timer (now disarmed)."""
        if self._timer is not threading.current_thread():
            return False
        self._timer, self.due = None, math.inf
        return True

    def done(self) -> None:
        """In the callback's ``finally``: the calling thread is finished."""
        self._threads.discard(threading.current_thread())

    def threads(self) -> list[threading.Thread]:
        """The timer threads that may still run (take under the owner's lock, then join)."""
        current = threading.current_thread()
        return [thread for thread in self._threads if thread is not current]


def join(threads: list[threading.Thread], timeout: float = 10.0) -> None:
    """Wait for flush threads taken by :meth:`FlushTimer.threads` (outside the lock)."""
    for thread in threads:
        thread.join(timeout=timeout)
