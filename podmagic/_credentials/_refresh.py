"""Authentication sources and their refresh: the one job here is a fresh ``Authorization``
value, fetched once however many callers want it.

The official client refreshes synchronously in the caller's thread; here a refresh (exec
plugin, token file, auth provider) runs in a worker thread, off the event loop, and
concurrent callers (in one loop or several) share it. A token read from a file (``tokenFile``,
in-cluster) is re-read at most every :data:`TOKEN_FILE_REREAD_SECONDS`, as kubectl does (the
package reads a ``tokenFile`` once and prefers ``token`` to it).
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
import threading
import time
import weakref
from collections.abc import Mapping

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from kubernetes.config.dateutil import UTC

from podmagic._errors import ConfigError

__all__ = [
    "TOKEN_FILE_REREAD_SECONDS",
    "AuthSource",
    "FileTokenAuth",
    "RefreshingAuth",
    "StaticAuth",
    "utcnow",
]

log = logging.getLogger(__name__)


#: How long a token read from a file (``tokenFile``, in-cluster) is used before re-reading it.
TOKEN_FILE_REREAD_SECONDS = 60.0


def utcnow() -> _dt.datetime:
    """The current time (a seam for tests)."""
    return _dt.datetime.now(tz=UTC)


class AuthSource:
    """Produces the ``Authorization`` header value; subclasses refresh it when needed."""

    kind = "none"

    def describe(self) -> str | None:
        """What the credentials come from, for messages, when the source names itself."""
        return None

    async def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self, used: Mapping[str, str] | None = None) -> None:
        return None


class StaticAuth(AuthSource):
    """A bearer token or basic-auth header fixed in the kubeconfig."""

    def __init__(self, value: str, kind: str) -> None:
        self._value = value
        self.kind = kind

    async def headers(self) -> dict[str, str]:
        return {"Authorization": self._value}


_REFRESH_LOCKS: RunVar[weakref.WeakKeyDictionary[RefreshingAuth, anyio.Lock]] = RunVar(
    "podmagic_credential_refresh_locks"
)


def _refresh_lock(source: RefreshingAuth) -> anyio.Lock:
    """The lock that serialises refreshes of ``source`` within the running event loop."""
    locks = _REFRESH_LOCKS.get(None)
    if locks is None:
        locks = weakref.WeakKeyDictionary()
        _REFRESH_LOCKS.set(locks)
    lock = locks.get(source)
    if lock is None:
        lock = locks[source] = anyio.Lock()
    return lock


class RefreshingAuth(AuthSource):
    """A header value that expires or can be invalidated, refreshed in a worker thread.

    Callers in one event loop queue on an ``anyio.Lock`` (one per loop, so the object can be
    shared between loops, e.g. a blocking API's private loop and Jupyter's); refreshes from
    different loops or threads are serialised by a thread lock. Callers that queued behind a
    refresh use its result — or its error — instead of starting another one.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()  # guards the fields below; never held while waiting
        self._refresh_mutex = threading.Lock()  # one fetch at a time, across loops and threads
        self._value: str | None = None
        self._expires_at: _dt.datetime | None = None  # wall clock (token expiry)
        self._reread_at: float | None = None  # monotonic clock (file re-read)
        self._stale = False
        self._aborted = False
        self._attempts = 0
        self._last_error: ConfigError | None = None

    # -- state ---------------------------------------------------------------------------

    def _current(self) -> str | None:
        with self._mutex:
            if self._value is None or self._stale:
                return None
            if self._expires_at is not None and utcnow() >= self._expires_at:
                return None
            if self._reread_at is not None and time.monotonic() >= self._reread_at:
                return None
            return self._value

    def _store(self, value: str, expires_at: _dt.datetime | None, reread_at: float | None) -> None:
        with self._mutex:
            self._value = value
            self._expires_at = expires_at
            self._reread_at = reread_at
            self._stale = False

    def invalidate(self, used: Mapping[str, str] | None = None) -> None:
        with self._mutex:
            if used is not None and used.get("Authorization") != self._value:
                return  # someone already replaced the token that was rejected
            self._stale = True

    # -- refresh -------------------------------------------------------------------------

    def _fetch(self) -> tuple[str, _dt.datetime | None, float | None]:
        """Obtain a fresh header value (runs in a worker thread)."""
        raise NotImplementedError

    def _abort(self) -> None:
        """Stop a fetch in progress (the caller was cancelled)."""

    def _refresh_blocking(self) -> str:
        with self._refresh_mutex:
            value = self._current()  # another loop or thread may have refreshed meanwhile
            if value is None:
                value, expires_at, reread_at = self._fetch()
                self._store(value, expires_at, reread_at)
            return value

    async def headers(self) -> dict[str, str]:
        value = self._current()
        if value is None:
            seen = self._attempts
            async with _refresh_lock(self):
                value = self._current()
                if value is None:
                    if self._attempts != seen and self._last_error is not None:
                        raise copy.copy(self._last_error)
                    value = await self._refresh()
        return {"Authorization": value}

    async def _refresh(self) -> str:
        with self._mutex:
            self._aborted = False
        try:
            value = await anyio.to_thread.run_sync(self._refresh_blocking, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            self._abort()
            raise
        except ConfigError as exc:
            with self._mutex:
                self._attempts += 1
                self._last_error = exc
            raise
        with self._mutex:
            self._attempts += 1
            self._last_error = None
        return value


class FileTokenAuth(RefreshingAuth):
    """A bearer token read from a file that may rotate (``tokenFile``, in-cluster token)."""

    def __init__(self, path: str, kind: str, *, what: str, fallback: str | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._path = path
        self._what = what
        self._fallback = fallback
        # Read once now, as kubectl does, so a missing file is reported when loading.
        self._store(*self._fetch())

    def _fetch(self) -> tuple[str, _dt.datetime | None, float | None]:
        reread_at = time.monotonic() + TOKEN_FILE_REREAD_SECONDS
        try:
            with open(self._path, encoding="utf-8") as handle:
                token = handle.read().strip()
            reason = "it is empty"
        except (OSError, UnicodeDecodeError) as exc:
            token = ""
            reason = getattr(exc, "strerror", None) or type(exc).__name__
        if token:
            return f"Bearer {token}", None, reread_at
        # Like client-go: keep using the last good token (or the static one) meanwhile.
        previous = self._value or (f"Bearer {self._fallback}" if self._fallback else None)
        if previous is not None:
            log.warning(
                "cannot re-read token file %s (%s); using the previous token", self._path, reason
            )
            return previous, None, reread_at
        raise ConfigError(
            f"cannot use the token file {self._path} of {self._what} ({reason})",
            hint="check that it exists, is readable and holds a token",
        )
