"""Every exception podmagic raises, in one tree.

    PodmagicError ............ base class; catch this to catch everything below
    ├── ConfigError .......... kubeconfig, context or credentials cannot be used
    ├── SelectionError ....... a target or selector is malformed, matches nothing, or names an
    │                          unknown namespace, pod or container
    ├── ApiError ............. a Kubernetes API request was answered with an error status
    ├── RequestTimeoutError .. a Kubernetes API request did not finish within the ``timeout``
    │                          the caller asked for
    ├── ExecError ............ one exec in one pod could not be run or completed (internal:
    │   │                      the engine makes it that pod's result, never raises it to you)
    │   ├── HandshakeError ... the WebSocket upgrade for the exec was refused
    │   └── StreamLostError .. the connection ended before the exit status arrived
    ├── PodExecError ......... ``PodResult.check_returncode()``: that pod did not succeed
    ├── PodsFailedError ...... ``PodResults.check()``: one or more pods did not succeed
    ├── ParseError ........... a pod's output could not be parsed in the requested format
    └── RefusedError ......... the run needs ``--yes``: protected context, or too many pods

Messages are one line that says what happened, names the pod when there is one, and says
what to try (the ``hint``). They never contain tokens, kubeconfig secrets or ``--env``
values: callers pass only names and server messages in.

Every exception pickles and copies (notebook users send results to other processes), even
though most constructors take keyword arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._safe_text import visible_controls

if TYPE_CHECKING:
    from ._results import PodResult, PodResults

__all__ = [
    "ApiError",
    "ConfigError",
    "ExecError",
    "HandshakeError",
    "ParseError",
    "PodExecError",
    "PodmagicError",
    "PodsFailedError",
    "RefusedError",
    "RequestTimeoutError",
    "SelectionError",
    "StreamLostError",
]

#: How many failed pods a ``PodsFailedError`` message lists before "and N more".
FAILED_LIST_LIMIT = 10


def _restore(cls: type[PodmagicError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    # BaseException.__new__ stores args without running our keyword-only __init__.
    exc = cls.__new__(cls, *args)
    exc.__dict__.update(state)
    return exc


def _pod_phrase(pod: str, namespace: str | None, container: str | None) -> str:
    where = f"pod {namespace}/{pod}" if namespace else f"pod {pod}"
    if container:
        where += f" (container {container})"
    return where


class PodmagicError(Exception):
    """Base class of every podmagic exception.

    ``str(exc)`` is the message followed by the hint (what to try), when there is one.
    """

    hint: str | None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.hint = hint
        # Messages quote pods and servers (a pod's last stderr line, an API server's Status):
        # printed in a terminal, their control characters must show (^[), never act.
        text = f"{message}; {hint}" if hint else message
        super().__init__(visible_controls(text))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, self.__dict__))

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the message already says what
        # happened and what to try; the stack of the magic's internals would only hide it.
        return [f"{type(self).__name__}: {self}"]


class ConfigError(PodmagicError):
    """The kubeconfig, context or credentials cannot be used.

    Raised for a missing or malformed kubeconfig, an unknown ``--context``, a context without
    a cluster or user, and credentials that cannot be loaded or refreshed.
    """


class SelectionError(PodmagicError):
    """The target does not select anything usable.

    Raised for a malformed target or label/field selector, a selector that matches no pod, an
    unknown namespace, pod, workload or container.
    """


class RequestTimeoutError(PodmagicError):
    """A Kubernetes API request did not finish within the per-pod ``timeout`` the caller
    asked for (``Cluster.run(timeout=...)``, ``%pod --timeout``) — while finding the pods,
    before any command ran.

    The configuration is fine: the time was too short for the server, or the server is
    stuck. ``timeout`` is that limit, in seconds. A default limit that runs out (no
    ``timeout`` asked for) is a :class:`ConfigError` naming the step that stalled.
    """

    timeout: float

    def __init__(self, message: str, *, timeout: float, hint: str | None = None) -> None:
        self.timeout = timeout
        super().__init__(message, hint=hint)


_API_HINTS: dict[int, str] = {
    400: "check the request: names, selectors and options",
    401: "the credentials were rejected; check the kubeconfig user, or log in again to "
    "refresh the token",
    403: "RBAC denies this; check with `kubectl auth can-i` or ask for access",
    404: "check the name and the namespace (-n), or try -A",
    409: "the object changed meanwhile; try again",
    429: "the API server is throttling requests; try again later or lower -P/--max-concurrency",
}


def _status_fields(body: bytes | str | Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    """(reason, message) from a Kubernetes ``Status`` body, or from whatever text came back."""
    import json

    if body is None:
        return None, None
    data: Any = body
    if isinstance(body, (bytes, str)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        try:
            data = json.loads(text)
        except ValueError:
            # A proxy or load balancer answered with HTML or plain text.
            text = " ".join(text.split())
            return None, (text[:300] + "…" if len(text) > 300 else text) or None
    if isinstance(data, Mapping):
        reason = data.get("reason")
        message = data.get("message")
        return (
            reason if isinstance(reason, str) and reason else None,
            message if isinstance(message, str) and message else None,
        )
    return None, None


def _http_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


class ApiError(PodmagicError):
    """A Kubernetes API request was answered with an error status.

    ``status`` is the HTTP status, ``reason`` the Status ``reason`` (``Forbidden``,
    ``NotFound``, ...), ``message`` the server's message, ``what`` the request in words.
    Build one from a response with :meth:`from_status`.
    """

    status: int
    reason: str | None
    message: str
    what: str

    def __init__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        what: str = "API request",
        hint: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.what = what
        if hint is None:
            hint = _API_HINTS.get(status)
            if hint is None and status >= 500:
                hint = "the API server had a problem; try again in a moment"
        label = f"HTTP {status} {reason}" if reason else f"HTTP {status}"
        super().__init__(f"{what} failed: {message} ({label})", hint=hint)

    @classmethod
    def from_status(
        cls,
        http_status: int,
        body: bytes | str | Mapping[str, Any] | None,
        *,
        what: str,
    ) -> ApiError:
        """An ``ApiError`` from an HTTP status and the response body (a ``Status`` or not)."""
        reason, message = _status_fields(body)
        return cls(
            http_status,
            message or _http_phrase(http_status),
            reason=reason,
            what=what,
        )


class ExecError(PodmagicError):
    """One exec in one pod could not be run or completed.

    ``pod``, ``namespace`` and ``container`` say where. The transport raises these and the
    engine records them in the pod's ``PodResult`` (status ``error``, the message as its
    ``error``) rather than letting one pod stop the rest; a per-pod timeout is status
    ``timeout``. So they are not part of the public API (``podmagic.__all__``).
    """

    pod: str
    namespace: str
    container: str | None

    def __init__(
        self,
        message: str,
        *,
        pod: str,
        namespace: str,
        container: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.pod = pod
        self.namespace = namespace
        self.container = container
        super().__init__(f"{_pod_phrase(pod, namespace, container)}: {message}", hint=hint)


_HANDSHAKE_HINTS: dict[int, str] = {
    400: "check the container name (-c) and that the pod is running",
    401: "the credentials were rejected; check the kubeconfig user, or log in again",
    403: "RBAC must allow `create` on `pods/exec` in this namespace; check with "
    "`kubectl auth can-i create pods/exec`",
    404: "the pod may be gone; run again to target the current pods",
    429: "the API server is throttling requests; lower -P/--max-concurrency or try again later",
    500: "the API server or the node's kubelet had a problem; try again in a moment",
    502: "a proxy in front of the API server had a problem; try again in a moment",
    503: "the API server is unavailable; try again in a moment",
    504: "a proxy in front of the API server timed out; try again in a moment",
}


class HandshakeError(ExecError):
    """The API server refused to upgrade the exec request to a WebSocket.

    ``http_status`` is the status it answered with, ``server_message`` its message (for
    example ``container "app" not found`` or an RBAC denial).
    """

    http_status: int
    server_message: str | None

    def __init__(
        self,
        *,
        pod: str,
        namespace: str,
        container: str | None = None,
        http_status: int,
        server_message: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.http_status = http_status
        self.server_message = server_message
        detail = server_message or _http_phrase(http_status)
        super().__init__(
            f"exec could not start (HTTP {http_status}): {detail}",
            pod=pod,
            namespace=namespace,
            container=container,
            hint=hint if hint is not None else _HANDSHAKE_HINTS.get(http_status),
        )

    @classmethod
    def from_status(
        cls,
        http_status: int,
        body: bytes | str | Mapping[str, Any] | None,
        *,
        pod: str,
        namespace: str,
        container: str | None = None,
    ) -> HandshakeError:
        """A ``HandshakeError`` from the refused upgrade's status and body."""
        _, message = _status_fields(body)
        return cls(
            pod=pod,
            namespace=namespace,
            container=container,
            http_status=http_status,
            server_message=message,
        )


class StreamLostError(ExecError):
    """The exec connection ended before the server sent the command's exit status.

    The command's outcome is unknown, so it is never reported as success.
    """

    detail: str | None

    def __init__(
        self,
        *,
        pod: str,
        namespace: str,
        container: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.detail = detail
        message = "connection lost; the remote command may still be running"
        if detail:
            message += f" ({detail})"
        super().__init__(
            message,
            pod=pod,
            namespace=namespace,
            container=container,
            hint=hint
            if hint is not None
            else "check the pod before running again a command that is not safe to repeat",
        )


def _last_line(data: bytes, limit: int = 200) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    if not lines:
        return ""
    line = lines[-1].strip()
    return line[:limit] + "…" if len(line) > limit else line


class PodExecError(PodmagicError):
    """Raised by ``PodResult.check_returncode()`` when that pod's command did not succeed.

    ``result`` is the ``PodResult``; ``returncode``, ``stdout`` and ``stderr`` mirror
    ``subprocess.CalledProcessError``.
    """

    result: PodResult

    def __init__(self, result: PodResult) -> None:
        self.result = result
        where = _pod_phrase(result.pod, result.namespace, result.container)
        if result.exit_code is not None and result.status.value in ("ok", "failed"):
            message = f"{where}: command exited with code {result.exit_code}"
        else:
            message = f"{where}: {result.status.value}"
        detail = result.error or _last_line(result.stderr)
        if detail:
            message += f": {detail}"
        super().__init__(message, hint="see .result.stderr_text and .result.stdout_text")

    @property
    def returncode(self) -> int | None:
        return self.result.exit_code

    @property
    def stdout(self) -> bytes:
        return self.result.stdout

    @property
    def stderr(self) -> bytes:
        return self.result.stderr


class PodsFailedError(PodmagicError):
    """Raised by ``PodResults.check()`` when any pod did not succeed, or none ran.

    ``results`` holds every result, the successful ones too; ``failed`` the ones that did not
    succeed. The message lists the first few failures, like
    ``2 of 40 pods failed: web-3 (exit 1), web-7 (timeout)``.
    """

    results: PodResults

    def __init__(self, results: PodResults, *, limit: int = FAILED_LIST_LIMIT) -> None:
        # How pods are named and listed is the summary's (podmagic._render); the message only
        # counts and composes. Imported here: both modules import this one.
        from ._render._summary import count_unit, outcome_listing

        self.results = results
        unit = count_unit(results)
        failed, skipped = results.failed, results.skipped
        ran = len(results) - len(skipped)

        if failed:
            listing = outcome_listing(results, failed, limit)
            message = f"{len(failed)} of {ran} {unit} failed: {listing}"
            if skipped:
                message += f"; {len(skipped)} skipped"
            hint = "see .results.failed, or .results.to_dataframe()"
        elif skipped:
            listing = outcome_listing(results, skipped, limit)
            message = f"none of {len(skipped)} {unit} ran, all were skipped: {listing}"
            hint = "see each result's .error for the reason; --include-unready runs unready pods"
        else:
            message = "no pod ran: there are no results"
            hint = "check the target with --dry-run"
        super().__init__(message, hint=hint)

    @property
    def failed(self) -> PodResults:
        return self.results.failed


class ParseError(PodmagicError):
    """A pod's output could not be parsed in the requested format.

    ``detail`` says what is wrong with the output; ``fmt`` is the format; ``pod``,
    ``namespace`` and ``container`` are set when the output came from a known pod.
    ``PodResults.parse()`` records these per pod instead of raising, unless ``strict=True``.
    """

    detail: str
    fmt: str | None
    pod: str | None
    namespace: str | None
    container: str | None

    def __init__(
        self,
        detail: str,
        *,
        fmt: str | None = None,
        pod: str | None = None,
        namespace: str | None = None,
        container: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.detail = detail
        self.fmt = fmt
        self.pod = pod
        self.namespace = namespace
        self.container = container
        what = f" as {fmt}" if fmt else ""
        if pod is not None:
            message = f"could not parse the output of {_pod_phrase(pod, namespace, container)}"
        else:
            message = "could not parse the output"
        super().__init__(f"{message}{what}: {detail}", hint=hint)


class RefusedError(PodmagicError):
    """The run was refused because it needs confirmation with ``--yes``.

    Raised before anything runs when the context matches a protected pattern, or when the
    target matched more pods than the configured limit.
    """

    @classmethod
    def protected_context(cls, context: str, pattern: str) -> RefusedError:
        return cls(
            f"refusing to run in context {context!r}: it matches the protected pattern {pattern!r}",
            hint="add --yes to run anyway",
        )

    @classmethod
    def too_many_pods(cls, count: int, limit: int) -> RefusedError:
        return cls(
            f"refusing to run in {count} pods: more than the limit of {limit}",
            hint="add --yes to run anyway, or narrow the target (-l, --pick N, --one)",
        )
