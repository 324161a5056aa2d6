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
* when the ``Cluster`` is garbage-collected while its loop still runs (the loop finalizes the
  dropped generator, which closes the session);
* at interpreter exit, for loops that are still open (``loop.run_until_complete`` without
  ``loop.close()``; a notebook's own loop).

A loop closed by hand (``loop.close()``) without ``await loop.shutdown_asyncgens()`` first
gives nothing a chance to run: its session is let go (:meth:`KubeApi.discard`) when the
Cluster next runs or closes, and its socket is left to the garbage collector (a
``ResourceWarning`` under ``python -X dev``). Close the Cluster (``await cluster.aclose()``)
before closing such a loop.

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
from dataclasses import dataclass
from functools import partial

from ._kubeapi import KubeApi

__all__ = ["LoopSessions"]

#: How long a blocking close waits for a loop in another thread to close its session.
_CLOSE_WAIT = 10.0


@dataclass
class _Lender:
    """The lending client of one loop, and the generator that closes it with the loop."""

    api: KubeApi
    loop: asyncio.AbstractEventLoop
    guard: AsyncGenerator[None, None] | None = None


class LoopSessions:
    """The lending :class:`KubeApi` of each event loop, made by ``make`` on first use."""

    def __init__(self, make: Callable[[], KubeApi]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._lenders: dict[int, _Lender] = {}  # by id(loop); removed when the loop shuts down
        _EVERY.add(self)

    def __len__(self) -> int:
        """How many loops hold an open session now."""
        with self._lock:
            return len(self._lenders)

    def borrow(self, timeout: float | None) -> KubeApi:
        """A client for one run on the running loop, on that loop's pooled session.

        Closing the client returns it; the session stays open for the next run.
        """
        loop = asyncio.get_running_loop()
        with self._lock:
            for key, other in list(self._lenders.items()):
                if other.loop.is_closed():  # closed without shutting down (see above)
                    del self._lenders[key]
                    other.api.discard()
            lender = self._lenders.get(id(loop))
            if lender is not None and not lender.api.usable:
                del self._lenders[id(loop)]  # its session was closed under us: start afresh
                lender = None
            if lender is None:
                lender = _Lender(self._make(), loop)
                lender.guard = _guard(lender.api, partial(_forget, weakref.ref(self), id(loop)))
                self._lenders[id(loop)] = lender
                started = True
            else:
                started = False
        if started:
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


async def _guard(api: KubeApi, forget: Callable[[KubeApi], None]) -> AsyncGenerator[None, None]:
    """Suspended for the loop's lifetime; its ``finally`` closes the session when the loop
    shuts down its async generators, when the Cluster closes it, or when the Cluster is
    dropped (the loop then finalizes it).

    It holds the client, not its owners: nothing here may form a reference cycle, or the
    garbage collector could finalize the session before this closes it."""
    try:
        yield
    finally:
        forget(api)
        await api.aclose()


def _forget(owner: weakref.ref[LoopSessions], key: int, api: KubeApi) -> None:
    sessions = owner()
    if sessions is None:
        return
    with sessions._lock:
        lender = sessions._lenders.get(key)
        if lender is not None and lender.api is api:
            del sessions._lenders[key]


def _start(guard: AsyncGenerator[None, None] | None) -> None:
    """Advance ``guard`` to its ``yield`` without awaiting: its first step registers it with
    the running loop (``sys.set_asyncgen_hooks``), which closes it when it shuts down."""
    assert guard is not None
    step = guard.asend(None)
    with contextlib.suppress(StopIteration):
        step.send(None)


async def _close_here(lender: _Lender) -> None:
    if lender.guard is not None:
        await lender.guard.aclose()  # its finally closes the session
    else:
        await lender.api.aclose()


def _close_elsewhere(lender: _Lender) -> None:
    loop = lender.loop
    if loop.is_closed():
        lender.api.discard()
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        # This thread runs that loop but cannot wait for it: close on its next turn.
        task = loop.create_task(_close_here(lender))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)
        return
    if loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_close_here(lender), loop)
        with contextlib.suppress(Exception):
            future.result(_CLOSE_WAIT)
        return
    with contextlib.suppress(Exception):
        loop.run_until_complete(_close_here(lender))


#: Closing tasks scheduled on this thread's own running loop (kept until done).
_PENDING: set[asyncio.Task[None]] = set()

#: Every Cluster's sessions, for the close at interpreter exit.
_EVERY: weakref.WeakSet[LoopSessions] = weakref.WeakSet()


@atexit.register
def _close_every() -> None:
    # Registered after the portal's shutdown (the client imports it first), so this runs
    # before it, while the portal's loop can still close its sessions; the portal's shutdown
    # would close them too, other loops' sessions only this.
    for sessions in list(_EVERY):
        sessions.close()
