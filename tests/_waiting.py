"""Waiting in tests: on a condition with a deadline, never a sleep-then-assert.

Two rules, for a machine that may be slow and busy (CI, many test runs at once):

- A test that starts something and then checks it happened waits for the event itself (a
  marker in the output, a file, a counter) or polls the condition with ``wait_until`` /
  ``await_until``: a generous deadline that only fails when the thing never happens, with a
  message saying what did not happen. A fixed sleep is either too short under load (flaky) or
  too long everywhere (slow).
- Tests assert behaviour, not wall-clock time: how long something took belongs in the
  benchmarks. Where the feature itself is a time limit (a timeout must end a hanging exec), a
  test may keep ONE generous upper bound through ``assert_ended_before``, proving only that it
  did not hang; no lower bounds, no tight upper bounds.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], *, what: str, timeout: float = 30, interval: float = 0.02
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails with ``what`` (phrased as the thing expected, e.g. "the exec ended") when
    ``timeout`` seconds pass first. The deadline is generous on purpose: it only bounds a hang.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        time.sleep(interval)


async def await_until(
    predicate: Callable[[], T | Awaitable[T]],
    *,
    what: str,
    timeout: float = 30,
    interval: float = 0.02,
) -> T:
    """``wait_until`` for async tests: polls without blocking the event loop; ``predicate``
    may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        await anyio.sleep(interval)


def assert_ended_before(started: float, limit: float, what: str) -> None:
    """Assert that something begun at ``started`` (``time.monotonic()``) did not hang.

    Only for tests of a time limit itself (a timeout, a deadline, a dropped connection noticed
    at once rather than at the command's end): ``limit`` must sit far above the expected time —
    well below the fake server's hold or the command's own length, so that the test still fails
    when the limit is ignored — and there is no lower bound. Anything finer is a benchmark.
    """
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"{what}: still not over after {elapsed:.1f}s (limit {limit:g}s)"
