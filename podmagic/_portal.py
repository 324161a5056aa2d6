"""One long-lived event-loop thread behind every blocking call.

Jupyter already runs an event loop in the main thread, so a blocking API cannot call
``asyncio.run``. Like kr8s, podmagic keeps one anyio ``BlockingPortal`` in a named daemon
thread and routes every sync call through it. Sockets and sessions created there stay on
that loop, so connection pools are reused across calls.

A Ctrl-C (``KeyboardInterrupt``) in the waiting thread does not abandon the work: the
caller's ``on_interrupt`` callback runs on the loop (the engine uses it to cancel its runs
and gather partial results), and the call then waits for the task to finish. A second
Ctrl-C cancels the task outright.

The wait is taken in short slices rather than one blocking wait. A process-wide SIGINT can be
delivered to any thread (a kernel's interrupt often lands on one of its helper threads); the
Python handler then only runs once the main thread executes bytecode again, which a single
lock wait would postpone until the whole run had finished.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, wait
from typing import Any, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

__all__ = ["THREAD_NAME", "get_portal", "run_blocking", "shutdown_portal"]

T = TypeVar("T")
THREAD_NAME = "podmagic-loop"
# How long the waiting thread sleeps before it looks for a pending Ctrl-C again.
_WAIT_SLICE = 0.2

_lock = threading.Lock()
_portal: BlockingPortal | None = None
_portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None


def get_portal() -> BlockingPortal:
    """The shared portal, started on first use."""
    global _portal, _portal_cm
    with _lock:
        if _portal is None:
            manager = start_blocking_portal("asyncio", name=THREAD_NAME)
            _portal = manager.__enter__()
            _portal_cm = manager
        return _portal


def shutdown_portal() -> None:
    """Stop the loop thread (cancelling what still runs there). Safe to call repeatedly."""
    global _portal, _portal_cm
    with _lock:
        portal, manager, _portal, _portal_cm = _portal, _portal_cm, None, None
    if portal is not None and manager is not None:
        # Cancel first: leaving the portal's context waits for every task, so at interpreter
        # exit a run still going (a --bg run, a daemon thread's) would hold the process up.
        with contextlib.suppress(Exception):
            portal.call(portal.stop, True)
        with contextlib.suppress(Exception):
            manager.__exit__(None, None, None)


atexit.register(shutdown_portal)


def run_blocking(
    function: Callable[..., Awaitable[T]],
    *args: Any,
    on_interrupt: Callable[[], None] | None = None,
) -> T:
    """Run ``await function(*args)`` on the loop thread and wait for its result.

    On KeyboardInterrupt, ``on_interrupt`` (if given) is called on the loop thread and the
    result — typically partial — is still awaited and returned; without it, or on a second
    interrupt, the task is cancelled and KeyboardInterrupt propagates.
    """
    portal = get_portal()
    if threading.current_thread().name == THREAD_NAME:
        raise RuntimeError(
            "run_blocking() called from the loop thread; await the async API instead"
        )
    future: Future[T] = portal.start_task_soon(function, *args)
    try:
        return _result(future)
    except KeyboardInterrupt:
        if on_interrupt is None:
            future.cancel()
            raise
        portal.call(_call_sync, on_interrupt)
        try:
            return _result(future)
        except KeyboardInterrupt:
            future.cancel()
            raise


def _result(future: Future[T]) -> T:
    """``future.result()``, waking every slice so a pending Ctrl-C is raised promptly."""
    while not wait((future,), timeout=_WAIT_SLICE).done:
        pass
    return future.result()


async def _call_sync(callback: Callable[[], None]) -> None:
    callback()
