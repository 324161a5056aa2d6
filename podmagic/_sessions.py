"""One HTTP session per event loop for a :class:`~podmagic.Cluster`, kept across its runs.

A run needs an ``aiohttp`` session (a connection pool) for its REST requests and a TLS context
for its exec WebSockets. Making them anew for every run costs a TCP connect, a full TLS
handshake and the session's own set-up each time — most of a one-pod run. So a ``Cluster``
keeps one lending :class:`~podmagic._kubeapi.KubeApi` per event loop, and each run borrows it
(:meth:`KubeApi.sharing`) with its own per-pod timeout: the second run on a loop reuses the
pooled connection and the TLS sessions of the first.

A session belongs to the loop it was made on (aiohttp's connections do), so every loop gets
its own and none is shared. It is closed:

* when its loop shuts down — ``asyncio.run``, ``anyio.run``, the portal loop behind the
  blocking API (also at interpreter exit), pytest's anyio runner: each of them closes the
  loop's async generators first, and a small one, started on the loop with the session,
  closes it from its ``finally``;
* when the ``Cluster`` closes (:meth:`LoopSessions.aclose` for the current loop,
  :meth:`LoopSessions.close` for all of them);
* soon after the ``Cluster`` is dropped, on its loop if that loop is running (else with the
  loop, or at exit);
* at interpreter exit, for loops that are still open (``loop.run_until_complete`` without
  ``loop.close()``; a notebook's own loop).

Until then every open session is held by this module (``_OPEN``), never only by its Cluster:
a session reachable only from garbage in a reference cycle (a Cluster in a traceback, say)
would be finalized by the garbage collector before anything could close it, and aiohttp
reports that as a leak.

A loop closed by hand (``loop.close()``) without ``await loop.shutdown_asyncgens()`` first
gives nothing a chance to run: its session is let go (:meth:`KubeApi.discard`) at the next
borrow or close, and its socket is left to the garbage collector (a ``ResourceWarning`` under
``python -X dev``). Close the Cluster (``await cluster.aclose()``) before closing such a loop.

Credentials are not part of a session: every request asks the credentials for its headers,
so a refreshed or rotated token is used by the next request on a reused session.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
import weakref
from collections.abc import AsyncGenerator, Callable

from ._kubeapi import KubeApi

__all__ = ["LoopSessions"]

#: How long a blocking close waits for a loop in another thread to close its session.
_CLOSE_WAIT = 10.0


class _Lender:
    """The lending client of one loop, and the generator that closes it with the loop."""

    def __init__(self, api: KubeApi, loop: asyncio.AbstractEventLoop) -> None:
        self.api = api
        self.loop = loop
        # Holds the client, not the lender: no reference cycle (see the module docstring).
        self.guard: AsyncGenerator[None, None] = _guard(api)
        #: The closing under way, which a second closer waits for too.
        self.closing: asyncio.Future[None] | None = None


#: Every open session's lender, until it is closed (by its guard) or let go.
_OPEN: set[_Lender] = set()
_OPEN_LOCK = threading.Lock()


class LoopSessions:
    """The lending :class:`KubeApi` of each event loop, made by ``make`` on first use.

    ``make`` must not refer to the owner of this object (a ``Cluster``): that would be a
    reference cycle, and the owner is meant to go away by reference counting.
    """

    def __init__(self, make: Callable[[], KubeApi]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._lenders: dict[int, _Lender] = {}  # by id(loop)
        # When the owner goes, its sessions are closed (the finalizer holds the dict only).
        # Not at exit: _close_every closes them then, waiting for each.
        weakref.finalize(self, _release, self._lenders).atexit = False

    def __len__(self) -> int:
        """How many loops hold an open session now."""
        with self._lock:
            return sum(1 for lender in self._lenders.values() if lender in _OPEN)

    def borrow(self, timeout: float | None) -> KubeApi:
        """A client for one run on the running loop, on that loop's pooled session.

        Closing the client returns it; the session stays open for the next run.
        """
        loop = asyncio.get_running_loop()
        _let_go_of_closed_loops()
        with self._lock:
            lender = self._lenders.get(id(loop))
            if lender is not None and (
                lender.loop is not loop or lender not in _OPEN or not lender.api.usable
            ):
                lender = None  # closed with its loop, or by close(): start afresh
            if lender is None:
                lender = _Lender(self._make(), loop)
                self._lenders[id(loop)] = lender
                with _OPEN_LOCK:
                    _OPEN.add(lender)
                _start(lender.guard)
        return lender.api.sharing(timeout=timeout)

    async def aclose(self) -> None:
        """Close the running loop's session; close the others' from their own loops."""
        loop = asyncio.get_running_loop()
        for lender in self._take():
            if lender.loop is loop:
                await _close_here(lender)
            else:
                _close_elsewhere(lender)

    def close(self) -> None:
        """Close every loop's session, from any thread.

        A session whose loop runs in this thread (a notebook's own loop, during a cell) is
        closed as soon as the loop gets control back; one on a loop in another thread (the
        portal) is closed there, waited for; one on a loop that is not running is closed
        by running it briefly.
        """
        for lender in self._take():
            _close_elsewhere(lender)

    def _take(self) -> list[_Lender]:
        with self._lock:
            lenders = list(self._lenders.values())
            self._lenders.clear()
        return lenders


async def _guard(api: KubeApi) -> AsyncGenerator[None, None]:
    """Suspended for the loop's lifetime; its ``finally`` closes the session when the loop
    shuts down its async generators, or when the Cluster closes or goes."""
    try:
        yield
    finally:
        with _OPEN_LOCK:
            for lender in [lender for lender in _OPEN if lender.api is api]:
                _OPEN.discard(lender)
        await api.aclose()


def _start(guard: AsyncGenerator[None, None]) -> None:
    """Advance ``guard`` to its ``yield`` without awaiting: its first step registers it with
    the running loop (``sys.set_asyncgen_hooks``), which closes it when it shuts down."""
    step = guard.asend(None)
    with contextlib.suppress(StopIteration):
        step.send(None)


async def _close_here(lender: _Lender) -> None:
    """Close ``lender``'s session (call on its loop); a second call waits for the first."""
    if lender.closing is None:
        if lender not in _OPEN:
            return  # closed with its loop, or let go
        with _OPEN_LOCK:
            _OPEN.discard(lender)
        lender.closing = asyncio.ensure_future(lender.guard.aclose())  # its finally closes
    await asyncio.shield(lender.closing)


def _close_elsewhere(lender: _Lender) -> None:
    """Close ``lender``'s session from outside its loop, as far as that loop allows."""
    loop = lender.loop
    if lender not in _OPEN and lender.closing is None:
        return
    if loop.is_closed():
        _let_go(lender)
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        # This thread runs that loop but cannot wait for it: close on its next turn.
        _spawn(lender)
        return
    if loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_close_here(lender), loop)
        with contextlib.suppress(Exception):
            future.result(_CLOSE_WAIT)
        return
    with contextlib.suppress(Exception):
        loop.run_until_complete(_close_here(lender))


def _spawn(lender: _Lender) -> None:
    """Start closing ``lender``'s session as a task of its own loop (call on that loop)."""
    task = lender.loop.create_task(_close_here(lender))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


def _release(lenders: dict[int, _Lender]) -> None:
    """The owner went (any thread, maybe inside the garbage collector): close its sessions on
    their running loops; sessions on stopped loops close with the loop, or at exit."""
    for lender in list(lenders.values()):
        if lender.loop.is_running() and not lender.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile
                lender.loop.call_soon_threadsafe(_spawn, lender)
    lenders.clear()


def _let_go(lender: _Lender) -> None:
    with _OPEN_LOCK:
        _OPEN.discard(lender)
    lender.api.discard()


def _let_go_of_closed_loops() -> None:
    with _OPEN_LOCK:
        closed = [lender for lender in _OPEN if lender.loop.is_closed()]
    for lender in closed:
        _let_go(lender)


#: Closing tasks scheduled on a loop (kept until done).
_PENDING: set[asyncio.Task[None]] = set()


@atexit.register
def _close_every() -> None:
    # Registered after the portal's shutdown (the client imports it first), so this runs
    # before it, while the portal's loop can still close its sessions; the portal's shutdown
    # would close those too, but other loops' sessions only this.
    with _OPEN_LOCK:
        lenders = list(_OPEN)
    for lender in lenders:
        _close_elsewhere(lender)
