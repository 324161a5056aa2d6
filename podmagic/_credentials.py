"""Cluster credentials, resolved the way kubectl resolves them, for an aiohttp client.

``load_credentials()`` picks the kubeconfig like kubectl (``--kubeconfig``, else the
``KUBECONFIG`` list merged with first-wins rules, else ``~/.kube/config``; with none of them and
a pod's service account available, the in-cluster configuration), resolves one context and
pins it: the returned :class:`ClusterCredentials` keeps that context's server, namespace, TLS
material and authentication no matter what later happens to the kubeconfig's
``current-context``.

The pinned context is loaded by the ``kubernetes`` package's public loader
(``kubernetes.config.load_kube_config_from_dict`` into a private ``Configuration``, never the
process-wide default): ``-data`` fields, static tokens, basic auth and the ``oidc``/``gcp``
auth providers come from there. Kept here, because the package does it differently:

* the context: kubectl takes the *first* ``current-context`` among the ``KUBECONFIG`` files,
  the package's merger the last one, so the files are merged here (first definition of a name
  wins, as in both) and only the chosen context goes to the loader;
* exec credential plugins (see :class:`_ExecAuth`): run lazily in a worker thread with
  ``KUBERNETES_EXEC_INFO`` and ``interactiveMode``, cached until their
  ``expirationTimestamp``, stopped with the processes they started after ``plugin_timeout``
  (:data:`DEFAULT_PLUGIN_TIMEOUT`) with an error that names them;
* ``tokenFile`` and in-cluster tokens, re-read at most every :data:`TOKEN_FILE_REREAD_SECONDS`
  as kubectl does (the package reads a ``tokenFile`` once and prefers ``token`` to it);
* refreshes (exec plugin, token file, auth provider) run off the event loop, and concurrent
  callers share one (:meth:`ClusterCredentials.auth_headers`); a 401 forgets the token
  (:meth:`~ClusterCredentials.invalidate_token`);
* the ``ssl.SSLContext`` for aiohttp and websockets (the package configures urllib3);
* one-line :class:`~podmagic.ConfigError` messages that say what to do. Nothing secret
  (tokens, passwords, keys, certificate data, exec plugin environment or output) ever appears
  in an error message, a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import contextvars
import copy
import datetime as _dt
import json
import logging
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import anyio
import anyio.to_thread
import kubernetes.config
import yaml
from anyio.lowlevel import RunVar
from kubernetes.client import Configuration
from kubernetes.config import ConfigException
from kubernetes.config import incluster_config as _incluster
from kubernetes.config.dateutil import UTC, parse_rfc3339

from podmagic._errors import ConfigError

__all__ = [
    "DEFAULT_KUBECONFIG",
    "DEFAULT_PLUGIN_TIMEOUT",
    "IN_CLUSTER_CONTEXT",
    "SERVICE_ACCOUNT_DIR",
    "TOKEN_FILE_REREAD_SECONDS",
    "ClusterCredentials",
    "load_credentials",
    "noting_credential_waits",
]

log = logging.getLogger(__name__)

#: Where kubectl looks when neither ``--kubeconfig`` nor ``KUBECONFIG`` is given.
DEFAULT_KUBECONFIG = os.path.join("~", ".kube", "config")
#: The context name reported for (and accepted to request) the in-cluster configuration.
IN_CLUSTER_CONTEXT = "in-cluster"
#: The service-account mount a pod gets (``token``, ``ca.crt`` and ``namespace`` inside).
SERVICE_ACCOUNT_DIR = os.path.dirname(_incluster.SERVICE_TOKEN_FILENAME)
#: How long a token read from a file (``tokenFile``, in-cluster) is used before re-reading it.
TOKEN_FILE_REREAD_SECONDS = 60.0
#: Seconds an exec credential plugin may run (a browser login included) before it is stopped.
DEFAULT_PLUGIN_TIMEOUT = 60.0

_EXEC_API_VERSIONS = (
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
)
_SUPPORTED_AUTH_PROVIDERS = ("oidc", "gcp")
# The official loader renews an auth-provider token this long before it expires; a cached
# token is given up exactly then, so that loading again renews it instead of returning it.
_PROVIDER_REFRESH_MARGIN = _dt.timedelta(minutes=5)
# Values under these user-entry keys are paths or names, not secrets; everything else in a user
# entry is treated as secret when scrubbing text that came from elsewhere.
_NON_SECRET_USER_KEYS = frozenset(
    {
        "name",
        "tokenFile",
        "client-certificate",
        "client-key",
        "command",
        "apiVersion",
        "interactiveMode",
        "installHint",
        "username",
        "provideClusterInfo",
    }
)


def _utcnow() -> _dt.datetime:
    """The current time (a seam for tests)."""
    return _dt.datetime.now(tz=UTC)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _seconds(value: float | None) -> str:
    """A number of seconds as the user gave it (see :func:`podmagic._kubeapi.format_seconds`)."""
    from ._kubeapi import format_seconds  # here: kubeapi's types refer to this module

    return format_seconds(value) if value is not None else "no limit"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return _one_line(line)
    return ""


class _Redactor:
    """Remembers secret strings and blanks them out of text that came from elsewhere."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if isinstance(secret, str) and len(secret.strip()) >= 4:
                self._secrets.add(secret.strip())

    def add_tree(self, value: Any, skip_keys: frozenset[str] = frozenset()) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key not in skip_keys:
                    self.add_tree(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.add_tree(item)
        elif isinstance(value, str):
            self.add(value)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _describe_loader_error(exc: BaseException, redact: _Redactor) -> str:
    """A short, secret-free description of an error raised by the kubernetes loaders."""
    text = str(exc)
    # ConfigNode names embed whole kubeconfig entries (tokens included): keep only the key.
    match = re.search(r"Expected key (\S+) in", text)
    if match:
        return f"missing key {match.group(1)!r}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or type(exc).__name__}: {exc.filename}"
    text = text.replace("Invalid kube-config file. ", "").replace("Invalid kube-config. ", "")
    return redact(_first_line(text)) or type(exc).__name__


def _where(paths: Iterable[str]) -> str:
    return ", ".join(paths)


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> str:
    # OpenSSL would otherwise prompt on the terminal for an encrypted key's pass phrase.
    raise _EncryptedKey


def _build_ssl_context(
    *,
    server: str,
    verify: bool = True,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    what: str = "the cluster",
) -> _TlsSetup:
    """The SSL context kubectl would use (``False`` when there is nothing to do).

    ``tls-server-name`` is not applied here: callers pass it as ``server_hostname`` with
    each connection, as aiohttp and websockets allow."""
    if urlsplit(server).scheme == "http":
        return _TlsSetup(False)
    if not verify and not cert_file:
        return _TlsSetup(False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        # Like Go's crypto/tls, any certificate in the trust pool is an anchor.
        ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
        if ca_file:
            try:
                ctx.load_verify_locations(cafile=ca_file)
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigError(
                    f"the certificate-authority of {what} is not a valid PEM certificate "
                    f"({getattr(exc, 'reason', None) or type(exc).__name__})",
                    hint="fix it in the kubeconfig",
                ) from None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the certificate-authority of {what} ({exc.strerror})",
                    hint="fix the path in the kubeconfig",
                ) from None
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file or key_file:
        if not (cert_file and key_file):
            missing = "client-key" if cert_file else "client-certificate"
            raise ConfigError(
                f"{what} has a client certificate or key but no {missing}(-data)",
                hint="set both in the kubeconfig",
            )
        try:
            ctx.load_cert_chain(cert_file, key_file, password=_refuse_password)
        except _EncryptedKey:
            raise ConfigError(
                f"the client key of {what} is encrypted",
                hint="decrypt it (openssl pkey) or use another user; kubectl cannot use "
                "encrypted keys either",
            ) from None
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            hint = (
                "the certificate and key do not belong together"
                if "MISMATCH" in str(reason)
                else "not valid PEM"
            )
            raise ConfigError(
                f"the client certificate/key of {what} cannot be used ({hint}: {reason})",
                hint="fix them in the kubeconfig",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the client certificate/key of {what} ({exc.strerror})",
                hint="fix the paths in the kubeconfig",
            ) from None
    return _TlsSetup(ctx, client_certificate=bool(cert_file))


@dataclass(frozen=True)
class _TlsSetup:
    """The ``ssl`` argument for aiohttp and websockets, and whether it presents a client
    certificate (an ``ssl.SSLContext`` cannot be asked)."""

    context: ssl.SSLContext | bool
    client_certificate: bool = False


class _TlsState:
    """Builds the TLS setup once and hands out the same one afterwards."""

    def __init__(self, value: _TlsSetup | None = None) -> None:
        self._lock = threading.Lock()
        self._value = value

    def peek(self) -> _TlsSetup | None:
        """The setup if it was built already, else ``None``."""
        with self._lock:
            return self._value

    def get(self, build: Callable[[], _TlsSetup]) -> _TlsSetup:
        with self._lock:
            if self._value is None:
                self._value = build()
            return self._value


# --------------------------------------------------------------------------------------------
# Authentication sources
# --------------------------------------------------------------------------------------------


class _AuthSource:
    """Produces the ``Authorization`` header value; subclasses refresh it when needed."""

    kind = "none"

    async def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self, used: Mapping[str, str] | None = None) -> None:
        return None


class _StaticAuth(_AuthSource):
    """A bearer token or basic-auth header fixed in the kubeconfig."""

    def __init__(self, value: str, kind: str) -> None:
        self._value = value
        self.kind = kind

    async def headers(self) -> dict[str, str]:
        return {"Authorization": self._value}


_REFRESH_LOCKS: RunVar[weakref.WeakKeyDictionary[_RefreshingAuth, anyio.Lock]] = RunVar(
    "podmagic_credential_refresh_locks"
)


def _refresh_lock(source: _RefreshingAuth) -> anyio.Lock:
    """The lock that serialises refreshes of ``source`` within the running event loop."""
    locks = _REFRESH_LOCKS.get(None)
    if locks is None:
        locks = weakref.WeakKeyDictionary()
        _REFRESH_LOCKS.set(locks)
    lock = locks.get(source)
    if lock is None:
        lock = locks[source] = anyio.Lock()
    return lock


class _RefreshingAuth(_AuthSource):
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
            if self._expires_at is not None and _utcnow() >= self._expires_at:
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


class _FileTokenAuth(_RefreshingAuth):
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


class _ExecAuth(_RefreshingAuth):
    """A token from an exec credential plugin, run the way kubectl runs it.

    Run here rather than by the package's ``ExecProvider``: that one has no time limit, no
    ``interactiveMode``, takes "interactive" from stdout rather than stdin, sends the cluster
    entry as written (a ``certificate-authority`` path, not its data) as ``spec.cluster``, and
    its loader runs the plugin while loading and logs its stderr.
    """

    kind = "exec"

    def __init__(
        self,
        exec_config: Mapping[str, Any],
        *,
        user: str,
        base_path: str,
        cluster_info: dict[str, Any] | None,
        redact: _Redactor,
        timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
    ) -> None:
        super().__init__()
        self._timeout = timeout
        self._user = user
        self._cluster_info = cluster_info
        self._redact = redact
        self._proc: subprocess.Popen[bytes] | None = None

        def invalid(why: str, hint: str = "fix the kubeconfig") -> ConfigError:
            return ConfigError(f'the exec section of user "{user}" is invalid ({why})', hint=hint)

        for key in ("command", "apiVersion"):
            if not exec_config.get(key):
                raise invalid(f"missing key {key!r}")
        self.api_version = str(exec_config["apiVersion"])
        if self.api_version not in _EXEC_API_VERSIONS:
            raise ConfigError(
                f'the exec plugin of user "{user}" uses apiVersion "{self.api_version}", which '
                "is not supported",
                hint=f"use {' or '.join(_EXEC_API_VERSIONS)}",
            )
        self._mode = str(exec_config.get("interactiveMode") or "IfAvailable")
        if self._mode not in ("Never", "IfAvailable", "Always"):
            raise ConfigError(
                f'the exec plugin of user "{user}" has interactiveMode "{self._mode}"',
                hint="use Never, IfAvailable or Always",
            )
        args, entries = exec_config.get("args") or [], exec_config.get("env") or []
        if not (isinstance(args, list) and isinstance(entries, list)) or not all(
            isinstance(entry, Mapping) for entry in entries
        ):
            raise invalid("args and env must be lists; env entries need a name and a value")
        missing = next((k for entry in entries for k in ("name", "value") if k not in entry), "")
        if missing:
            raise invalid(f"missing key {missing!r}")
        self._env: dict[str, str] = {entry["name"]: entry["value"] for entry in entries}
        command = exec_config["command"]
        if not (
            isinstance(command, str)
            and all(isinstance(arg, str) for arg in args)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in self._env.items())
        ):
            raise invalid(
                "command, args and env values must be strings", hint="quote them in the kubeconfig"
            )
        self._args: list[str] = list(args)
        # client-go resolves a command containing a path separator against the kubeconfig's
        # folder; a bare name is looked up on PATH. The plugin runs in the current folder.
        if os.sep in command and not os.path.isabs(command):
            command = os.path.normpath(os.path.join(base_path, command))
        self._command = command
        self._install_hint = _first_line(str(exec_config.get("installHint") or ""))

    @property
    def command_name(self) -> str:
        return os.path.basename(self._command) or self._command

    def _what(self) -> str:
        return f'exec credential plugin "{self.command_name}" of user "{self._user}"'

    @staticmethod
    def _stdin_is_terminal() -> bool:
        try:
            return sys.stdin is not None and sys.stdin.isatty()
        except (AttributeError, ValueError, OSError):
            return False

    def _abort(self) -> None:
        with self._mutex:
            self._aborted = True
            proc = self._proc
        if proc is not None:
            _kill_plugin(proc)

    def _fetch(self) -> tuple[str, _dt.datetime | None, float | None]:
        interactive = self._mode != "Never" and self._stdin_is_terminal()
        if self._mode == "Always" and not interactive:
            raise ConfigError(
                f"the {self._what()} needs an interactive terminal (interactiveMode: Always)",
                hint="log in from a terminal first or change interactiveMode",
            )
        info: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": interactive},
        }
        if self._cluster_info is not None:
            info["spec"]["cluster"] = self._cluster_info
        # The environment as of now, like a fresh kubectl process, plus the kubeconfig's.
        env = {**os.environ, **self._env, "KUBERNETES_EXEC_INFO": json.dumps(info)}
        try:
            proc = subprocess.Popen(
                [self._command, *self._args],
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                # Interactive plugins prompt on stderr, so it stays on the terminal then.
                stderr=None if interactive else subprocess.PIPE,
                env=env,
                # Its own session, so that stopping it stops what it started too (a shell
                # script's children would otherwise keep its output pipe open). Not for an
                # interactive plugin: it must keep the terminal to prompt on.
                start_new_session=not interactive,
            )
        except FileNotFoundError:
            hint = f" ({self._install_hint})" if self._install_hint else ""
            raise ConfigError(
                f"the {self._what()} was not found{hint}",
                hint="install it or fix users[].user.exec.command in the kubeconfig",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot start the {self._what()} ({exc.strerror or type(exc).__name__})",
                hint="check users[].user.exec.command in the kubeconfig",
            ) from None
        with self._mutex:
            self._proc = proc
            aborted = self._aborted
        if aborted:
            _kill_plugin(proc)
        try:
            stdout, stderr = proc.communicate(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            _stop_plugin(proc)
            raise ConfigError(
                f"the {self._what()} did not finish within {_seconds(self._timeout)}s and was "
                "stopped",
                hint="run it by hand to see what it waits for (a login, the network); if it "
                "needs longer, raise plugin_timeout (Cluster(plugin_timeout=...), "
                "%config PodMagic.plugin_timeout)",
            ) from None
        finally:
            with self._mutex:
                self._proc = None
        if proc.returncode != 0:
            detail = ""
            if stderr:
                detail = self._redact(_first_line(stderr.decode("utf-8", "replace")))
            elif interactive:
                detail = "see its messages above"
            detail = f": {detail}" if detail else ""
            raise ConfigError(
                f"the {self._what()} failed with exit code {proc.returncode}{detail}",
                hint="fix the plugin's login (run it by hand to see more)",
            )
        if stderr:
            log.debug(
                "%s wrote to stderr: %s",
                self._what(),
                self._redact(_first_line(stderr.decode("utf-8", "replace"))),
            )
        return self._parse(stdout, self.api_version)

    def _parse(self, stdout: bytes, api_version: str) -> tuple[str, _dt.datetime | None, None]:
        def bad(why: str) -> ConfigError:
            return ConfigError(
                f"the {self._what()} printed {why}",
                hint="check the plugin and its version",
            )

        try:
            data = json.loads(stdout)
        except ValueError:
            raise bad("something that is not an ExecCredential JSON") from None
        if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
            raise bad("something that is not an ExecCredential JSON")
        if data.get("apiVersion") != api_version:
            raise bad(f'apiVersion "{data.get("apiVersion")}" instead of "{api_version}"')
        status = data.get("status")
        if not isinstance(status, dict):
            raise bad("an ExecCredential without status")
        token = status.get("token")
        if not isinstance(token, str) or not token:
            if status.get("clientCertificateData"):
                raise ConfigError(
                    f"the {self._what()} returned a client certificate instead of a token, "
                    "which is not supported yet",
                    hint="use a token-issuing plugin or put the certificate in the kubeconfig",
                )
            raise bad("an ExecCredential without a token")
        self._redact.add(token)
        expires_at = None
        if status.get("expirationTimestamp"):
            try:
                stamp = str(status["expirationTimestamp"])
                expires_at = parse_rfc3339(stamp)  # type: ignore[no-untyped-call]
            except ValueError:
                raise bad("an invalid expirationTimestamp") from None
        return f"Bearer {token}", expires_at, None


def _kill_plugin(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a plugin and, when it has its own session, everything in its process group."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix" and os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
            return
    except OSError:
        pass
    proc.kill()


def _stop_plugin(proc: subprocess.Popen[bytes]) -> None:
    """Kill a plugin that overran and reap it, without waiting on pipes that a process it
    moved out of its group may still hold open."""
    _kill_plugin(proc)
    try:
        proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()


class _ProviderAuth(_RefreshingAuth):
    """An ``auth-provider`` token (oidc, gcp), obtained and renewed by the official loader.

    Renewing means loading the pinned context again (in a worker thread): the loader renews a
    token that expires within :data:`_PROVIDER_REFRESH_MARGIN` while loading. The
    ``refresh_api_key_hook`` it leaves on the ``Configuration`` is run too (by
    ``get_api_key_with_prefix``), but alone it renews only tokens whose expiry the loader
    recorded, never an oidc one. The loader writes renewed tokens into the document it was
    given; they are saved to the user's kubeconfig like kubectl does (refresh tokens may be
    single-use).
    """

    def __init__(self, loaded: _LoadedContext, initial: str, before: dict[str, Any]) -> None:
        super().__init__()
        self.kind = f"auth-provider:{loaded.provider_name}"
        self._loaded = loaded
        loaded.save_provider_config(before)
        self._store(initial, self._expiry(), None)

    def _expiry(self) -> _dt.datetime | None:
        config = self._loaded.provider_config()
        expiry: Any = config.get("expiry")
        if self._loaded.provider_name == "oidc":
            expiry = _jwt_expiry(str(config.get("id-token") or ""))
        if not expiry:
            return None
        try:
            deadline: _dt.datetime = parse_rfc3339(expiry)  # type: ignore[no-untyped-call]
        except ValueError:
            return None
        return deadline - _PROVIDER_REFRESH_MARGIN

    def _fetch(self) -> tuple[str, _dt.datetime | None, float | None]:
        loaded = self._loaded
        before = copy.deepcopy(loaded.provider_config())
        what = f'auth-provider "{loaded.provider_name}" of user "{loaded.user}"'
        try:
            with loaded.load() as cfg:
                header = cfg.get_api_key_with_prefix("BearerToken")
        except Exception as exc:  # noqa: BLE001 - providers raise anything (HTTP, OAuth...)
            raise ConfigError(
                f"{what} could not refresh its token "
                f"({_describe_loader_error(exc, loaded.redact)})",
                hint="log in again with your provider's tool",
            ) from None
        loaded.save_provider_config(before)
        if not header:
            raise ConfigError(
                f"{what} has no usable token", hint="log in again with your provider's tool"
            )
        loaded.redact.add(header.partition(" ")[2])
        return header, self._expiry(), None


def _jwt_expiry(token: str) -> _dt.datetime | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = claims.get("exp")
        return _dt.datetime.fromtimestamp(float(exp), tz=UTC) if exp is not None else None
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None


# --------------------------------------------------------------------------------------------
# The public object
# --------------------------------------------------------------------------------------------

#: Where :meth:`ClusterCredentials.auth_headers` notes a wait for credentials that was
#: cancelled, for :func:`noting_credential_waits`.
_CREDENTIAL_WAITS_CUT: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "podmagic_credential_waits_cut", default=None
)


@contextlib.contextmanager
def noting_credential_waits() -> Iterator[list[str]]:
    """Collect, in the list this yields, what each wait for credentials cancelled in this
    context (tasks it starts included) was waiting for (:meth:`ClusterCredentials.
    credential_source`): a deadline that passes mid-login then names the plugin."""
    cut: list[str] = []
    token = _CREDENTIAL_WAITS_CUT.set(cut)
    try:
        yield cut
    finally:
        _CREDENTIAL_WAITS_CUT.reset(token)


@dataclass(frozen=True, eq=False, repr=False)
class ClusterCredentials:
    """One pinned cluster context: where the API server is and how to authenticate to it.

    Obtain it with :func:`load_credentials`. Secrets live only in private state: the ``repr``
    shows the context, server, namespace, user and the kinds of authentication and TLS.
    Equality is identity, so two loads are never mistaken for one another.
    """

    #: The context name (``"in-cluster"`` for a pod's service account).
    context: str
    #: ``https://host:port`` (plus any path prefix), without a trailing slash.
    server: str
    #: The context's namespace, else ``"default"``.
    namespace: str = "default"
    #: The kubeconfig user entry's name, for messages (``None`` in-cluster or anonymous).
    user: str | None = None
    #: ``tls-server-name``: the name used for SNI and certificate verification, if set
    #: (callers pass it as ``server_hostname``).
    tls_server_name: str | None = None
    #: The cluster's ``proxy-url``, if any (may embed proxy credentials: do not print it).
    proxy_url: str | None = field(default=None, repr=False)
    #: The kubeconfig files the context came from (empty in-cluster).
    kubeconfig_files: tuple[str, ...] = ()
    _auth: _AuthSource = field(default_factory=_AuthSource, repr=False)
    _tls: _TlsState = field(default_factory=_TlsState, repr=False)

    def credential_source(self) -> str:
        """What the credentials come from, for messages: ``exec credential plugin "NAME" of
        user "USER"`` for an exec plugin, else ``credentials of user "USER" (METHOD)``."""
        if isinstance(self._auth, _ExecAuth):
            return self._auth._what()
        owner = f'user "{self.user}"' if self.user else f'context "{self.context}"'
        return f"credentials of {owner} ({self.auth_method})"

    @property
    def auth_method(self) -> str:
        """How requests authenticate: ``token``, ``token-file``, ``basic``, ``exec``,
        ``auth-provider:NAME``, ``in-cluster``, ``client-certificate`` or ``none``."""
        kind = self._auth.kind
        if kind == "none" and self.has_client_certificate:
            return "client-certificate"
        return kind

    @property
    def has_client_certificate(self) -> bool:
        """Whether the TLS context presents a client certificate."""
        return self._tls.get(self._default_tls).client_certificate

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The ``ssl`` argument for aiohttp: a verifying context (the cluster's CA, or the
        system's when none is configured) with the client certificate loaded; ``False`` for
        ``insecure-skip-tls-verify`` without a client certificate, or a plain-http server.
        Built once; every call returns the same object. Pass :attr:`tls_server_name` as
        ``server_hostname`` with each connection: the context does not apply it."""
        return self._tls.get(self._default_tls).context

    def _default_tls(self) -> _TlsSetup:
        return _build_ssl_context(server=self.server, what=f'context "{self.context}"')

    async def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request (``{}`` for certificate-only or anonymous
        access). Refreshes expired exec-plugin, auth-provider and file tokens first; concurrent
        callers share one refresh. Raises :class:`~podmagic.ConfigError` if it fails,
        or if the token holds a character no HTTP header may carry (CR, LF, ESC …)."""
        try:
            headers = await self._auth.headers()
        except anyio.get_cancelled_exc_class():
            # A deadline cut the wait (a running plugin is stopped by the cancellation):
            # whoever set the deadline words it with the source (noting_credential_waits).
            cut = _CREDENTIAL_WAITS_CUT.get()
            if cut is not None:
                cut.append(self.credential_source())
            raise
        for value in headers.values():
            # aiohttp would refuse it with a bare ValueError; the token itself is never shown.
            if any(ord(ch) < 0x20 and ch != "\t" or ord(ch) == 0x7F for ch in value):
                owner = f'user "{self.user}"' if self.user else f'context "{self.context}"'
                raise ConfigError(
                    f"the token of {owner} ({self.auth_method}) contains a control character "
                    "(a line break or escape), which no HTTP header may carry",
                    hint="fix the token in the kubeconfig or the token file",
                )
        return headers

    def invalidate_token(self, used: Mapping[str, str] | None = None) -> None:
        """Forget the current token after the server answered 401, so that the next
        :meth:`auth_headers` obtains a new one. Pass the headers the rejected request carried
        as ``used`` to skip the refresh when another caller already replaced that token."""
        self._auth.invalidate(used)

    def __copy__(self) -> ClusterCredentials:
        return self  # immutable handle; copies share the token cache and the SSL context

    def __deepcopy__(self, memo: dict[int, Any]) -> ClusterCredentials:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(
            "ClusterCredentials cannot be pickled: it holds secrets; "
            "call load_credentials() again in the other process"
        )

    def __repr__(self) -> str:
        parts = urlsplit(self.server)
        server = self.server
        if parts.username is not None or parts.password is not None:
            server = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        setup = self._tls.peek()
        auth = self._auth.kind
        if auth == "none" and setup is not None and setup.client_certificate:
            auth = "client-certificate"
        ctx = setup.context if setup is not None else None
        if ctx is None:
            tls = "default"
        elif ctx is False:
            tls = "off" if urlsplit(self.server).scheme == "http" else "insecure"
        elif isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE:
            tls = "insecure"
        else:
            tls = "verify"
        return (
            f"ClusterCredentials(context={self.context!r}, server={server!r}, "
            f"namespace={self.namespace!r}, user={self.user!r}, auth={auth!r}, "
            f"tls={tls!r})"
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_credentials(
    *,
    context: str | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    plugin_timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
) -> ClusterCredentials:
    """Resolve the cluster credentials kubectl would use and pin them.

    ``plugin_timeout`` is how many seconds an exec credential plugin may run before it is
    stopped and the request fails naming it (``None``: no limit).

    ``kubeconfig`` is one file (kubectl's ``--kubeconfig``); without it, ``KUBECONFIG`` (a
    ``os.pathsep``-separated list whose files are merged: the first file that defines a name
    or sets ``current-context`` wins) or else ``~/.kube/config``. When none of those files
    exists and the process runs in a pod (``KUBERNETES_SERVICE_HOST``/``_PORT`` set and a
    service-account token in ``service_account_dir``), the in-cluster configuration is used;
    ``context="in-cluster"`` asks for it explicitly.

    Raises :class:`~podmagic.ConfigError` with a one-line message saying what to do.
    """
    explicit = kubeconfig is not None
    if explicit:
        path = os.path.expanduser(os.fspath(kubeconfig))  # type: ignore[arg-type]
        if not os.path.exists(path):
            raise ConfigError(
                f"kubeconfig {path} does not exist",
                hint="check the --kubeconfig path",
            )
        candidates = [path]
        looked = path
    else:
        env_value = os.environ.get("KUBECONFIG", "")
        if env_value:
            candidates = []
            for item in env_value.split(os.pathsep):
                item = os.path.expanduser(item) if item else ""
                if item and item not in candidates:
                    candidates.append(item)
            looked = f"{_where(candidates) or '(nothing)'} from KUBECONFIG"
        else:
            candidates = [os.path.expanduser(DEFAULT_KUBECONFIG)]
            looked = candidates[0]
    documents = [
        (p, doc)
        for p in candidates
        if os.path.exists(p)
        for doc in [_read_kubeconfig(p)]
        if doc is not None
    ]
    has_contexts = any(doc.get("contexts") for _, doc in documents)
    sa_dir = os.fspath(service_account_dir)

    if context == IN_CLUSTER_CONTEXT and not _defines_context(documents, context):
        return _load_in_cluster(sa_dir)
    if not has_contexts and not explicit:
        if context is None and _in_cluster_possible(sa_dir):
            return _load_in_cluster(sa_dir)
        found = (
            "no contexts in " + _where(p for p, _ in documents)
            if documents
            else (f"no kubeconfig found (looked at {looked})")
        )
        prefix = f'context "{context}" not found: ' if context else ""
        raise ConfigError(
            f"{prefix}{found} and not running inside a cluster ({_why_not_in_cluster(sa_dir)})",
            hint="set KUBECONFIG or pass --kubeconfig",
        )
    if not documents or not has_contexts:
        raise ConfigError(
            f"kubeconfig {_where(candidates)} defines no contexts",
            hint="pass a kubeconfig that does, or set KUBECONFIG",
        )
    return _load_from_kubeconfig(documents, context, plugin_timeout)


def _defines_context(documents: list[tuple[str, dict[str, Any]]], name: str) -> bool:
    return any(
        entry.get("name") == name for _, doc in documents for entry in (doc.get("contexts") or [])
    )


def _read_kubeconfig(path: str) -> dict[str, Any] | None:
    """Parse and sanity-check one kubeconfig file; ``None`` when it is empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        # str(exc) quotes the offending line, which may hold a secret: use the parts only.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(
            f"kubeconfig {path} is not valid YAML{where} ({_one_line(str(problem), 120)})",
            hint="fix the file or pass another --kubeconfig",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"kubeconfig {path} is not UTF-8 text",
            hint="fix the file or pass another --kubeconfig",
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read kubeconfig {path} ({exc.strerror or type(exc).__name__})",
            hint="check its permissions or pass another --kubeconfig",
        ) from None
    if document is None:
        return None
    if not isinstance(document, dict):
        raise ConfigError(
            f"kubeconfig {path} is not a kubeconfig (expected a mapping with clusters, "
            "contexts and users)",
            hint="fix the file or pass another --kubeconfig",
        )
    for section, inner in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
        entries = document.get(section)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise ConfigError(
                f"kubeconfig {path}: {section} must be a list",
                hint="fix the file",
            )
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ConfigError(
                    f"kubeconfig {path}: every entry in {section} needs a name",
                    hint="fix the file",
                )
            if not isinstance(entry.get(inner) or {}, dict):
                raise ConfigError(
                    f'kubeconfig {path}: {section} entry "{entry["name"]}" must have a '
                    f"{inner} mapping",
                    hint="fix the file",
                )
    return document


_OFFICIAL_LOADER_LOCK = threading.Lock()


@dataclass
class _LoadedContext:
    """The pinned context as handed to the official loader, kept for auth-provider renewals."""

    #: One context with its cluster and user: relative paths made absolute, the server
    #: normalised, the exec and tokenFile sections left out (they are handled here).
    document: dict[str, Any]
    context: str
    user: str
    #: The kubeconfig file that defines the user: renewed auth-provider tokens go there.
    source: str | None
    redact: _Redactor
    provider_name: str = ""

    @contextlib.contextmanager
    def load(self) -> Iterator[Configuration]:
        """The official loader's result for the context, in a private ``Configuration``.

        The loader writes ``-data`` fields (CA, client certificate and key) to files for
        OpenSSL. They go into a folder of our own, made by ``mkdtemp`` (mode 0700; the loader's
        files in it are ``mkstemp``'s 0600) and removed when the block ends, rather than into
        the system temporary folder, where the loader would leave them until the process exits.
        """
        cfg = Configuration()
        folder = tempfile.mkdtemp(prefix="podmagic-kubeconfig-")
        # One load at a time: the loader shares its data files between loads through a
        # process-wide cache (keyed by content), so another thread's load could be handed a
        # file in this folder just before it is removed, or one not yet written.
        _OFFICIAL_LOADER_LOCK.acquire()
        try:
            kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                self.document,
                context=self.context,
                client_configuration=cfg,
                # Renewed tokens are saved by save_provider_config: the package's persister
                # rewrites every merged file from the copy it read, undoing others' edits.
                persist_config=False,
                temp_file_path=os.path.join(folder, "data"),
            )
            yield cfg
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            _OFFICIAL_LOADER_LOCK.release()

    def provider_config(self) -> dict[str, Any]:
        """The user's ``auth-provider.config``, as the loader last left it."""
        users = self.document.get("users") or [{}]
        provider = (users[0].get("user") or {}).get("auth-provider")
        config = provider.get("config") if isinstance(provider, dict) else None
        return config if isinstance(config, dict) else {}

    def save_provider_config(self, before: Mapping[str, Any]) -> None:
        """Write the auth-provider config back to :attr:`source` if the loader renewed it."""
        after = self.provider_config()
        if not self.source or after == before:
            return
        try:
            _persist_auth_provider_config(self.source, self.user, after)
        except (OSError, yaml.YAMLError) as exc:
            log.warning(
                "could not save the refreshed auth-provider token to %s (%s)",
                self.source,
                type(exc).__name__,
            )


def _absolute(entry: dict[str, Any], base: str, *keys: str) -> None:
    """Resolve path fields against the folder of the kubeconfig that defines ``entry``."""
    for key in keys:
        if isinstance(entry.get(key), str) and entry[key]:
            entry[key] = os.path.normpath(os.path.join(base, entry[key]))


def _load_from_kubeconfig(
    documents: list[tuple[str, dict[str, Any]]],
    context: str | None,
    plugin_timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
) -> ClusterCredentials:
    files = tuple(p for p, _ in documents)
    where = _where(files)
    # Merged here, not by the package's KubeConfigMerger: the first definition of a name wins
    # in both, but kubectl takes the first current-context and the merger the last one.
    merged: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
        "clusters": {},
        "contexts": {},
        "users": {},
    }
    for path, doc in documents:
        for section, entries in merged.items():
            for item in doc.get(section) or []:
                entries.setdefault(item["name"], (path, item))

    contexts = list(merged["contexts"])
    available = f"(contexts: {', '.join(contexts)})"
    if context is None:
        current = next(
            (doc.get("current-context") for _, doc in documents if doc.get("current-context")), None
        )
        if not current:
            raise ConfigError(
                f"no current-context is set in {where} {available}",
                hint="use --context with one of them",
            )
        if current not in contexts:
            raise ConfigError(
                f'current-context "{current}" not found in {where} {available}',
                hint="use --context with one of them",
            )
        context = str(current)
    elif context not in contexts:
        raise ConfigError(
            f'context "{context}" not found in {where} {available}',
            hint="use --context with one of them",
        )

    ctx_value = merged["contexts"][context][1].get("context") or {}
    cluster_name = ctx_value.get("cluster")
    user_name = ctx_value.get("user") or None
    namespace = str(ctx_value.get("namespace") or "default")
    if not cluster_name or cluster_name not in merged["clusters"]:
        detail = (
            f'refers to cluster "{cluster_name}", which is not defined'
            if cluster_name
            else "names no cluster"
        )
        raise ConfigError(
            f'context "{context}" {detail} in {where}',
            hint="fix the kubeconfig or use another --context",
        )
    if user_name is not None and user_name not in merged["users"]:
        raise ConfigError(
            f'context "{context}" refers to user "{user_name}", which is not defined in {where}',
            hint="fix the kubeconfig or use another --context",
        )
    cluster_file, cluster_entry = merged["clusters"][cluster_name]
    cluster = cluster_entry.get("cluster") or {}
    user_file, user_entry = merged["users"][user_name] if user_name else (files[0], {})
    user = user_entry.get("user") or {}
    user_base = os.path.dirname(os.path.abspath(user_file))
    what_cluster = f'cluster "{cluster_name}"'
    what_user = f'user "{user_name}"'

    redact = _Redactor()
    redact.add_tree(user, skip_keys=_NON_SECRET_USER_KEYS)
    redact.add_tree({k: v for k, v in cluster.items() if k.endswith("-data")})

    server = cluster.get("server")
    if not isinstance(server, str) or not server.strip():
        raise ConfigError(
            f"{what_cluster} in {where} has no server",
            hint="fix the kubeconfig",
        )
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "https://" + server
    url_basic = None
    parts = urlsplit(server)
    if parts.username is not None or parts.password is not None:
        # Go's HTTP client turns URL user info into basic auth when nothing else is set; keep
        # it out of `server`, which ends up in messages.
        redact.add(parts.password)
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        url_basic = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        redact.add(url_basic.partition(" ")[2])
        server = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    if urlsplit(server).scheme not in ("http", "https"):
        raise ConfigError(
            f"{what_cluster} has server {redact(server)!r}, which is not an http(s) URL",
            hint="fix the kubeconfig",
        )
    insecure = bool(cluster.get("insecure-skip-tls-verify"))
    if insecure and (
        cluster.get("certificate-authority") or cluster.get("certificate-authority-data")
    ):
        raise ConfigError(
            f"{what_cluster} sets both insecure-skip-tls-verify and a certificate-authority, "
            "which kubectl refuses too",
            hint="remove one of them from the kubeconfig",
        )
    for owner, what, key in (
        (cluster, what_cluster, "certificate-authority-data"),
        (user, what_user, "client-certificate-data"),
        (user, what_user, "client-key-data"),
    ):
        data = owner.get(key)
        if data:
            try:
                base64.b64decode(str(data), validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(
                    f"{key} of {what} is not valid base64",
                    hint="fix the kubeconfig",
                ) from None

    provider_name = None
    provider = user.get("auth-provider")
    if isinstance(provider, dict) and provider:
        provider_name = str(provider.get("name") or "")
        if provider_name not in _SUPPORTED_AUTH_PROVIDERS:
            raise ConfigError(
                f'{what_user} uses auth-provider "{provider_name}", which is not supported '
                f"(supported: {', '.join(_SUPPORTED_AUTH_PROVIDERS)})",
                hint="switch the user to an exec credential plugin (e.g. kubelogin)",
            )

    token_auth: _FileTokenAuth | None = None
    if user.get("tokenFile"):
        # kubectl prefers tokenFile (re-read as it rotates) and falls back to token.
        token_auth = _FileTokenAuth(
            os.path.normpath(os.path.join(user_base, str(user["tokenFile"]))),
            "token-file",
            what=what_user,
            fallback=str(user["token"]) if user.get("token") else None,
        )

    # The loader gets a dict holding this one context rather than the files: given the files
    # it would run an exec plugin at once (see _ExecAuth) and pick the last current-context.
    loader_cluster = {**cluster, "server": server}
    _absolute(
        loader_cluster, os.path.dirname(os.path.abspath(cluster_file)), "certificate-authority"
    )
    loader_user = {k: copy.deepcopy(v) for k, v in user.items() if k not in ("exec", "tokenFile")}
    _absolute(loader_user, user_base, "client-certificate", "client-key")
    loader_context: dict[str, Any] = {"cluster": cluster_name}
    users = []
    if user_name is not None:
        loader_context["user"] = user_name
        users = [{"name": user_name, "user": loader_user}]
    loaded = _LoadedContext(
        document={
            "current-context": context,
            "contexts": [{"name": context, "context": loader_context}],
            "clusters": [{"name": cluster_name, "cluster": loader_cluster}],
            "users": users,
        },
        context=context,
        user=user_name or "",
        source=user_file if user_name else None,
        redact=redact,
        provider_name=provider_name or "",
    )
    provider_before = copy.deepcopy(loaded.provider_config())
    # Read from the entry, so as not to depend on which of the package's releases copy them
    # into the Configuration.
    tls_server_name = cluster.get("tls-server-name") or None
    proxy_url = cluster.get("proxy-url") or None
    exec_config = user.get("exec")
    cluster_info = None
    try:
        with loaded.load() as cfg:
            ca_file = cfg.ssl_ca_cert if urlsplit(server).scheme == "https" else None
            if isinstance(exec_config, dict) and exec_config.get("provideClusterInfo"):
                cluster_info = _exec_cluster_info(server, cluster, ca_file, insecure)
            tls = _build_ssl_context(
                server=server,
                verify=bool(cfg.verify_ssl),
                ca_file=ca_file,
                cert_file=cfg.cert_file,
                key_file=cfg.key_file,
                what=f'context "{context}"',
            )
            static_header = cfg.get_api_key_with_prefix("BearerToken")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the loaders raise many kinds of errors
        raise ConfigError(
            f'cannot load context "{context}" from {where} ({_describe_loader_error(exc, redact)})',
            hint="fix the kubeconfig or use another --context",
        ) from None

    auth: _AuthSource
    if provider_name is not None:
        if not static_header:
            raise ConfigError(
                f'auth-provider "{provider_name}" of {what_user} has no usable token',
                hint="log in again with your provider's tool",
            )
        redact.add(static_header.partition(" ")[2])
        auth = _ProviderAuth(loaded, static_header, provider_before)
    elif token_auth is not None:
        auth = token_auth
    elif user.get("token"):
        auth = _StaticAuth(str(static_header), "token")
    elif isinstance(exec_config, dict) and exec_config:
        auth = _ExecAuth(
            exec_config,
            user=user_name or "",
            base_path=user_base,
            cluster_info=cluster_info,
            redact=redact,
            timeout=plugin_timeout,
        )
    elif static_header and static_header.lower().startswith("basic "):
        auth = _StaticAuth(static_header, "basic")
    elif url_basic is not None:
        auth = _StaticAuth(url_basic, "basic")
    else:
        auth = _AuthSource()

    return ClusterCredentials(
        context=context,
        server=server,
        namespace=namespace,
        user=user_name,
        tls_server_name=tls_server_name,
        proxy_url=proxy_url,
        kubeconfig_files=files,
        _auth=auth,
        _tls=_TlsState(tls),
    )


def _exec_cluster_info(
    server: str, cluster: Mapping[str, Any], ca_file: str | None, insecure: bool
) -> dict[str, Any]:
    """``spec.cluster`` of KUBERNETES_EXEC_INFO for plugins with provideClusterInfo."""
    info: dict[str, Any] = {"server": server}
    if cluster.get("tls-server-name"):
        info["tls-server-name"] = cluster["tls-server-name"]
    if insecure:
        info["insecure-skip-tls-verify"] = True
    if ca_file:
        with open(ca_file, "rb") as handle:
            info["certificate-authority-data"] = base64.b64encode(handle.read()).decode("ascii")
    if cluster.get("proxy-url"):
        info["proxy-url"] = cluster["proxy-url"]
    for extension in cluster.get("extensions") or []:
        if (
            isinstance(extension, dict)
            and extension.get("name") == "client.authentication.k8s.io/exec"
        ):
            info["config"] = extension.get("extension")
            break
    return info


def _persist_auth_provider_config(
    path: str, user_name: str, provider_config: Mapping[str, Any]
) -> bool:
    real = os.path.realpath(path)
    with open(real, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict):
        return False
    for entry in document.get("users") or []:
        if isinstance(entry, dict) and entry.get("name") == user_name:
            user = entry.setdefault("user", {}) or {}
            provider = user.setdefault("auth-provider", {}) or {}
            provider["config"] = dict(provider_config)
            break
    else:
        return False
    mode = os.stat(real).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(document, handle, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True


# --------------------------------------------------------------------------------------------
# In-cluster
# --------------------------------------------------------------------------------------------


def _in_cluster_possible(sa_dir: str) -> bool:
    return bool(
        os.environ.get(_incluster.SERVICE_HOST_ENV_NAME)
        and os.environ.get(_incluster.SERVICE_PORT_ENV_NAME)
        and os.path.isfile(os.path.join(sa_dir, "token"))
    )


def _why_not_in_cluster(sa_dir: str) -> str:
    if not (
        os.environ.get(_incluster.SERVICE_HOST_ENV_NAME)
        and os.environ.get(_incluster.SERVICE_PORT_ENV_NAME)
    ):
        return f"{_incluster.SERVICE_HOST_ENV_NAME}/{_incluster.SERVICE_PORT_ENV_NAME} are not set"
    return f"no service-account token at {os.path.join(sa_dir, 'token')}"


def _load_in_cluster(sa_dir: str) -> ClusterCredentials:
    if not _in_cluster_possible(sa_dir):
        raise ConfigError(
            f"not running inside a cluster ({_why_not_in_cluster(sa_dir)})",
            hint="set KUBECONFIG or pass --kubeconfig",
        )
    token_path = os.path.join(sa_dir, "token")
    ca_path = os.path.join(sa_dir, "ca.crt")
    cfg = Configuration()
    loader = _incluster.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=token_path,
        cert_filename=ca_path,
        try_refresh_token=False,
    )
    try:
        loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise ConfigError(
            f"the in-cluster configuration is incomplete ({str(exc).rstrip('.')}; looked in "
            f"{sa_dir})",
            hint="mount the service account token or use a kubeconfig",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the service account in {sa_dir} "
            f"({getattr(exc, 'strerror', None) or type(exc).__name__})",
            hint="check the mount",
        ) from None
    namespace = os.environ.get("POD_NAMESPACE", "").strip()  # as client-go does
    if not namespace:
        try:
            with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as handle:
                namespace = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            namespace = ""
    server = str(cfg.host).rstrip("/")
    auth = _FileTokenAuth(token_path, "in-cluster", what="the service account")
    tls = _build_ssl_context(
        server=server, ca_file=cfg.ssl_ca_cert, what="the in-cluster service account"
    )
    return ClusterCredentials(
        context=IN_CLUSTER_CONTEXT,
        server=server,
        namespace=namespace or "default",
        user=None,
        _auth=auth,
        _tls=_TlsState(tls),
    )
