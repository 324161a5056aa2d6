"""``Sandbox``: a running sandbox cluster, started in a background thread or in the foreground.

The server has its own event loop in a named daemon thread, so it serves while the caller
(a test, a notebook, the CLI's main thread) blocks or runs its own loop. Every call that
touches cluster state is handed to that loop, which owns the state.

A sandbox the program never stops is stopped when the process ends: at interpreter exit
(``atexit``: a script's end, a kernel's shutdown) and on SIGTERM or SIGHUP (a kernel killed by
its manager, a closed terminal) unless the program handles those signals itself. So no pod
process, temporary folder or kubeconfig outlives the process that started the sandbox. (A
SIGKILL leaves them: nothing runs in a process killed that way.)
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar, Union

from aiohttp import web

from ._api import CONNECTIONS_KEY, build_app
from ._behaviour import MAX_COUNT, MAX_SECONDS
from ._containers import close_containers, container_runtime
from ._exec import ACTIVE_SESSIONS_KEY, ExecSession, handle_exec
from ._isolation import close_pod_sandboxes, isolation_mode, note_started, note_stopped
from ._kubeconfig import (
    CONTEXT_NAME,
    MAX_CONTEXTS,
    WrittenKubeconfig,
    build_kubeconfig,
    check_kubeconfig_path,
    combine_kubeconfigs,
    context_name,
    write_kubeconfig,
)
from ._runner import kill_unreaped
from ._state import Cluster, ManifestError, RecordedRequest
from ._tls import ServingCertificates, generate_certificates, generate_token
from ._volumes import remember_ca

__all__ = ["Sandbox", "demo_manifest"]

T = TypeVar("T")
#: What ``Sandbox(manifest=...)`` loads: a path, YAML text, object dicts, or None (the demo).
Manifest = Union[str, "os.PathLike[str]", Iterable[Mapping[str, Any]], None]
_log = logging.getLogger(__name__)

# Sandboxes started and not stopped yet: the ones to stop when the process ends. Re-entrant:
# a signal handler may run in the main thread while that thread holds it.
_running: set[Sandbox] = set()
_running_lock = threading.RLock()
_atexit_registered = False
_signals_handled = False


def _stop_running_sandboxes() -> None:
    """Stop every sandbox still running (at exit, or on a terminating signal)."""
    with _running_lock:
        sandboxes = list(_running)
    for sandbox in sandboxes:
        with contextlib.suppress(Exception):
            sandbox.stop()


def _stop_then_terminate(signum: int, frame: FrameType | None) -> None:
    # The handler runs in the main thread between two steps of whatever it was doing, maybe
    # holding a lock the sandbox's loop needs, so it does not wait for the loop: the process
    # ends next, so killing the pods and removing the files is all there is to do.
    with _running_lock:
        sandboxes = list(_running)
    for sandbox in sandboxes:
        with contextlib.suppress(Exception):
            sandbox._abandon()
    # Then end as the signal would have ended the process without this handler.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _stop_at_exit(sandbox: Sandbox) -> None:
    """Have ``sandbox`` stopped when the process ends, should nobody stop it before."""
    global _atexit_registered, _signals_handled
    with _running_lock:
        _running.add(sandbox)
        if not _atexit_registered:
            atexit.register(_stop_running_sandboxes)
            _atexit_registered = True
    # Handlers can only be set from the main thread; a signal the program already handles
    # (the CLI's clean stop, a server's own shutdown) is left to the program.
    if not _signals_handled and threading.current_thread() is threading.main_thread():
        _signals_handled = True
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _stop_then_terminate)


def _require_pod(cluster: Cluster, pod: str, namespace: str) -> None:
    """Raise a one-line ``ValueError`` saying which pods there are when ``pod`` is not one."""
    if cluster.get_pod(namespace, pod) is not None:
        return
    elsewhere = sorted(ns for ns, name in cluster.pods if name == pod)
    if elsewhere:
        raise ValueError(
            f"no pod {pod!r} in namespace {namespace!r}; it is in namespace {elsewhere[0]!r}: "
            f"pass namespace={elsewhere[0]!r}"
        )
    names = sorted(name for ns, name in cluster.pods if ns == namespace)
    if not names:
        raise ValueError(
            f"no pod {pod!r}: namespace {namespace!r} has no pods; "
            "sandbox.pods() lists the pods of every namespace"
        )
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    raise ValueError(f"no pod {pod!r} in namespace {namespace!r}; its pods: {shown}")


def demo_manifest() -> str:
    """The built-in demo manifest (YAML text)."""
    return resources.files("podmagic.sandbox").joinpath("demo.yaml").read_text(encoding="utf-8")


class Sandbox:
    """A local Kubernetes API server whose pods run commands as local processes.

    Use as a context manager::

        with Sandbox(manifest="cluster.yaml") as sandbox:
            subprocess.run(["kubectl", "--kubeconfig", sandbox.kubeconfig, "get", "pods"])

    Args:
        manifest: a path to a YAML manifest, YAML text, a list of object dicts, or ``None``
            for the built-in demo cluster (``""`` or ``[]`` for an empty one). It is validated
            like a real API server validates objects (:mod:`podmagic.sandbox._validation`);
            :meth:`start` raises one-line :class:`~podmagic.sandbox.ManifestError` naming the
            file, the object and the field, and creates nothing.
        kubeconfig: where to write the kubeconfig (default: inside the sandbox's state
            folder). Written atomically once the server accepts connections, removed at stop.
            Never over a file the sandbox did not write: ``~/.kube/config``, the files in
            ``$KUBECONFIG`` and any other existing file (but a sandbox's kubeconfig left by a
            process that no longer runs) raise a one-line ``ValueError``
            (:class:`~podmagic.sandbox._kubeconfig.KubeconfigPathError`) here, before anything
            is created; at stop it is removed only if it still holds what was written.
        host, port: where to listen (port 0 picks a free one).
        tls: serve HTTPS with a generated CA (default). kubectl sends tokens only over TLS.
        auth: require the bearer token written into the kubeconfig.
        state_dir: folder for the pods' filesystems (default: a new temporary folder, removed
            at stop).
        user: the user name the sandbox reports in RBAC errors.
        contexts: how many clusters to serve (1 to 16), for runs across clusters. Each is a
            cluster of its own: its own API server and port, store, pods, nodes, CA and server
            certificate, and token; all are in the one kubeconfig, as contexts
            ``podmagic-sandbox`` (the current context, as with one), ``podmagic-sandbox-2``,
            ``podmagic-sandbox-3``… (the glob ``podmagic-sandbox*`` names them all). Each
            loads ``manifest`` (or its own from ``manifests``); the nodes of the first are
            ``sandbox-node-1..3``, those of the others carry their number
            (``sandbox-2-node-1``…) unless the manifest has Node objects, so a pod's
            ``spec.nodeName`` says which cluster answered. A fixed ``port`` is the first's;
            the others take the ports after it. :attr:`contexts` lists the names,
            :meth:`in_context` gives the :class:`Sandbox` serving one (for its faults,
            tokens and pods); the methods of this object act on the first. :meth:`stop`
            stops them all.
        manifests: one manifest per context (each as ``manifest``; ``None`` is the demo
            cluster), instead of ``manifest``: ``Sandbox(manifests=["staging.yaml",
            "prod.yaml"])`` serves two clusters, each with its own objects.

    Sandbox-only behaviour (:meth:`annotate`, :meth:`set_fault`, ``sandbox.podmagic.io/*``
    annotations in a manifest) is described in the table of the README's section "The sandbox
    cluster"; a value the sandbox cannot act on (``set_fault(pod, "bogus")``) raises
    :class:`~podmagic.sandbox.BehaviourError`, a one-line ``ValueError`` naming the annotation,
    and changes nothing.
    """

    def __init__(
        self,
        manifest: Manifest = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = True,
        auth: bool = True,
        state_dir: str | os.PathLike[str] | None = None,
        user: str = "sandbox-user",
        contexts: int = 1,
        manifests: Sequence[Manifest] | None = None,
    ) -> None:
        if manifests is not None:
            if isinstance(manifests, (str, bytes, os.PathLike)) or not isinstance(
                manifests, Sequence
            ):
                raise TypeError(
                    "manifests: expected a list with a manifest per context, "
                    f"got {type(manifests).__name__}"
                )
            if manifest is not None:
                raise ValueError(
                    "pass manifest= (loaded in every context) or manifests= (one per context), "
                    "not both"
                )
            if not manifests:
                raise ValueError("manifests: expected a manifest per context, got none")
            for position, each in enumerate(manifests):
                if isinstance(each, Mapping):
                    # One object, not a manifest: a list of them was meant as manifest=.
                    raise TypeError(
                        f"manifests[{position}]: one object, not a manifest; pass a path, "
                        "YAML text or a list of objects per context (or the list as manifest=)"
                    )
            if contexts not in (1, len(manifests)):
                raise ValueError(
                    f"contexts={contexts!r} but {len(manifests)} manifests: pass one manifest "
                    "per context, or leave contexts out"
                )
            contexts = len(manifests)
        if (
            isinstance(contexts, bool)
            or not isinstance(contexts, int)
            or not 1 <= contexts <= MAX_CONTEXTS
        ):
            raise ValueError(
                f"contexts: expected a whole number from 1 to {MAX_CONTEXTS}, got {contexts!r}"
            )
        if contexts > 1 and isinstance(port, int) and port and port + contexts - 1 > 65535:
            raise ValueError(
                f"port {port}: {contexts} contexts take the ports {port} to "
                f"{port + contexts - 1}, past 65535; pass a lower port, or 0 for free ones"
            )
        per_context = list(manifests) if manifests is not None else [manifest] * contexts
        self._manifest = per_context[0]
        if kubeconfig is not None:
            check_kubeconfig_path(kubeconfig)  # refused before any folder or key is made
        self._kubeconfig_request = kubeconfig
        self._written_kubeconfig: WrittenKubeconfig | None = None
        self.host = host
        self.port = port
        self.tls = tls
        self.token: str | None = generate_token() if auth else None
        self.user = user
        self._own_state_dir = state_dir is None
        self.state_dir = (
            Path(state_dir) if state_dir else Path(tempfile.mkdtemp(prefix="podmagic-sandbox-"))
        )
        self.certificates: ServingCertificates | None = generate_certificates() if tls else None
        self.kubeconfig: Path | None = None
        self.cluster: Cluster | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._app: web.Application | None = None
        self._socket: socket.socket | None = None
        self._context_name = CONTEXT_NAME
        #: The cluster's node names; None: the default ``sandbox-node-1..3``.
        self._nodes: tuple[str, ...] | None = None
        #: Whether this sandbox writes the kubeconfig (the first context's does, for all).
        self._writes_kubeconfig = True
        # The other contexts: sandboxes of their own, started before this one (whose
        # kubeconfig names their servers) and stopped with it.
        self._others: list[Sandbox] = []
        for index in range(2, contexts + 1):
            other = Sandbox(
                per_context[index - 1],
                host=host,
                port=port + index - 1 if port else 0,
                tls=tls,
                auth=auth,
                state_dir=None if state_dir is None else Path(state_dir) / context_name(index),
                user=user,
            )
            other._context_name = context_name(index)
            other._nodes = tuple(f"sandbox-{index}-node-{n}" for n in (1, 2, 3))
            other._writes_kubeconfig = False
            self._others.append(other)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API server's base URL."""
        scheme = "https" if self.tls else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def context(self) -> str:
        """The context name in the kubeconfig the sandbox writes (its first context's)."""
        return self._context_name

    @property
    def contexts(self) -> tuple[str, ...]:
        """The names of every context the sandbox serves, the first (current) one first."""
        return tuple(sandbox._context_name for sandbox in (self, *self._others))

    def in_context(self, context: str) -> Sandbox:
        """The sandbox serving ``context`` (this one for its first): its :meth:`set_fault`,
        :meth:`issue_token`, :meth:`pods`… act on that cluster only.

        An unknown name is a one-line ``ValueError`` naming the contexts there are.
        """
        for sandbox in (self, *self._others):
            if sandbox._context_name == context:
                return sandbox
        raise ValueError(
            f"no context {context!r} in this sandbox; its contexts: {', '.join(self.contexts)}"
        )

    @property
    def ca_pem(self) -> bytes | None:
        return self.certificates.ca_pem if self.certificates else None

    @property
    def running(self) -> bool:
        """Whether the sandbox serves (started and not stopped)."""
        return self._thread is not None

    @property
    def isolation(self) -> str:
        """How pods are isolated: ``"namespaces"`` (the default where bubblewrap works: each
        pod its own namespaces and root) or ``"processes (<why>)"`` (pods are plain processes
        of this host: ``PODMAGIC_SANDBOX_ISOLATION=processes``, or isolation is unavailable)."""
        return isolation_mode()

    def start(self) -> Sandbox:
        """Start serving in a background thread; returns once the kubeconfig is written."""
        if self._thread is not None:
            raise RuntimeError("this sandbox is already running")
        try:
            for other in self._others:
                other._start_one()
            self._start_one()
        except BaseException:
            # Nothing serves then: the contexts started stop, every folder made goes.
            for other in self._others:
                other.stop()
            self._cleanup_files()
            raise
        for other in self._others:
            other.kubeconfig = self.kubeconfig  # one file, a context each
        return self

    def _start_one(self) -> None:
        """Start this context's server (and, for the first, write the kubeconfig)."""
        loop = asyncio.new_event_loop()
        started: concurrent.futures.Future[None] = concurrent.futures.Future()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_async())
            except BaseException as error:  # noqa: BLE001 - handed to the starting thread, which re-raises it
                started.set_exception(error)
                loop.close()
                return
            started.set_result(None)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="podmagic-sandbox", daemon=True)
        self._thread.start()
        try:
            started.result()
        except BaseException:
            self._thread.join()
            self._thread = None
            self._cleanup_files()
            raise
        _stop_at_exit(self)
        warning = note_started(self)
        if warning is not None and self._writes_kubeconfig:
            # Said loudly (once per sandbox, not per context): pods see and can change this
            # host's files and processes.
            _log.warning("%s", warning)

    async def _start_async(self) -> None:
        if self._nodes is None:
            self.cluster = Cluster(self.state_dir / "fs", user=self.user)
        else:
            self.cluster = Cluster(self.state_dir / "fs", user=self.user, nodes=self._nodes)
        container_runtime(self.cluster)  # the main processes of the pods it runs
        remember_ca(self.cluster, self.ca_pem)  # ca.crt of the pods' service account volumes
        manifest = self._manifest
        if manifest is None:
            self.cluster.apply_yaml(demo_manifest())
        elif isinstance(manifest, (str, os.PathLike)):
            text = str(manifest)
            path = Path(text) if isinstance(manifest, os.PathLike) or "\n" not in text else None
            if path is not None and text and path.exists():
                try:
                    content = path.read_text(encoding="utf-8")
                except UnicodeDecodeError as error:
                    raise ManifestError(
                        f"{path}: not UTF-8 text (byte {error.start}); "
                        "a manifest is Kubernetes YAML"
                    ) from None
                self.cluster.apply_yaml(content, source=str(path))
            elif isinstance(manifest, os.PathLike) or (
                text and "\n" not in text and ":" not in text
            ):
                raise FileNotFoundError(f"manifest not found: {text}")
            else:
                self.cluster.apply_yaml(text)
        else:
            self.cluster.apply(manifest)
        self._app = build_app(self.cluster, token=self.token, exec_handler=handle_exec)
        self._app[ACTIVE_SESSIONS_KEY] = set()
        self._runner = web.AppRunner(
            self._app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        ssl_context = self.certificates.server_ssl_context() if self.certificates else None
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except BaseException:
            # The port is taken (or the address is not this host's): serve nothing, keep no
            # socket open.
            sock.close()
            await self._runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        self._socket = sock
        site = web.SockSite(self._runner, sock, ssl_context=ssl_context, backlog=1024)
        await site.start()
        if not self._writes_kubeconfig:
            return  # the first context's sandbox writes the one kubeconfig
        target = self._kubeconfig_request or (self.state_dir / "kubeconfig")
        document = combine_kubeconfigs(
            [
                build_kubeconfig(
                    sandbox.url, token=sandbox.token, ca_pem=sandbox.ca_pem, context=sandbox.context
                )
                for sandbox in (self, *self._others)
            ]
        )
        try:
            self._written_kubeconfig = write_kubeconfig(target, document)
        except BaseException:
            # Refused (a file appeared there since __init__ checked): serve nothing.
            await self._runner.cleanup()
            sock.close()
            raise
        self.kubeconfig = self._written_kubeconfig.path

    def stop(self) -> None:
        """Stop serving, kill every pod process, and remove the kubeconfig and state folder
        (of every context)."""
        try:
            self._stop_one()
        finally:
            for other in self._others:
                other.stop()

    def _stop_one(self) -> None:
        if self._thread is None or self._loop is None:
            self._cleanup_files()
            return
        # Timed out or not, what follows still kills the pods and removes the files.
        with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(self._stop_async(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        # The sandbox owns the process group of every exec it started: any still alive now
        # (one starting as the sessions were interrupted) is killed with what it started.
        kill_unreaped(self._loop)
        self._thread = None
        self._loop = None
        self._cleanup_files()
        with _running_lock:  # only now: a SIGTERM during stop() still finds it
            _running.discard(self)
        note_stopped(self)

    def _abandon(self) -> None:
        """Kill every pod process and remove the files, without waiting for the loop (the
        process is about to end)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed already
                loop.call_soon_threadsafe(loop.stop)  # start nothing more
            kill_unreaped(loop)
        # A process being killed may still add a file while the folder is removed: try again
        # for a moment.
        for _ in range(50):
            self._cleanup_files()
            if not (self._own_state_dir and self.state_dir.exists()):
                break
            time.sleep(0.02)

    async def _stop_async(self) -> None:
        if self._app is not None:
            sessions: set[ExecSession] = self._app[ACTIVE_SESSIONS_KEY]
            for session in list(sessions):
                session.interrupt("sandbox stopping")
        if self.cluster is not None:
            await close_containers(self.cluster)
            for watcher in list(self.cluster.watchers):
                watcher.queue.put_nowait(None)
            close_pod_sandboxes(self.cluster)  # isolated pods: their namespaces' processes
        # Give sessions a moment to send their final frames, then tear everything down.
        for _ in range(50):
            if not self._app or not self._app[ACTIVE_SESSIONS_KEY]:
                break
            await asyncio.sleep(0.02)
        connections: list[asyncio.Transport] = []
        if self._app is not None:
            connections.extend(self._app[CONNECTIONS_KEY].transports)
        if self._runner is not None:
            await self._runner.cleanup()
        for transport in connections:
            transport.abort()
        # abort() closes sockets in callbacks: let them run before the loop stops.
        for _ in range(3):
            await asyncio.sleep(0)
        if self._socket is not None:
            # SockSite serves a socket it did not open, so it leaves closing it to us.
            self._socket.close()

    def _cleanup_files(self) -> None:
        if self._written_kubeconfig is not None:
            # Only if it still holds what was written: a file changed or put there since is
            # someone else's.
            self._written_kubeconfig.remove()
            self._written_kubeconfig = None
        self.kubeconfig = None
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Sandbox:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._thread else "stopped"
        if not self._others:
            return f"<Sandbox {state} {self.url} context={self.context!r}>"
        return f"<Sandbox {state} {self.url} contexts={self.contexts!r}>"

    # -- the Python API for tests ------------------------------------------------------------

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function(*args, **kwargs)`` on the sandbox's loop thread and return its result."""
        if self._loop is None:
            raise RuntimeError("the sandbox is not running; call start() first")

        async def run() -> T:
            return function(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def _cluster(self) -> Cluster:
        if self.cluster is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        return self.cluster

    def apply(self, manifest: str | Iterable[Mapping[str, Any]]) -> None:
        """Add objects from YAML text or a list of object dicts."""
        cluster = self._cluster()
        if isinstance(manifest, str):
            self.call(cluster.apply_yaml, manifest)
        else:
            self.call(cluster.apply, list(manifest))

    def annotate(
        self, pod: str, annotations: Mapping[str, str | None], namespace: str = "default"
    ) -> None:
        """Set (``None``: remove) annotations on a pod, e.g. sandbox faults, at run time.

        An unknown pod is a one-line ``ValueError`` naming the pods there are; a key or value
        that is not a string (``None`` aside) a one-line ``TypeError``, as the API server
        refuses one; a sandbox annotation it cannot act on a one-line
        :class:`~podmagic.sandbox.BehaviourError` (a ``ValueError``). Nothing changes then.
        """
        cluster = self._cluster()
        for key, value in annotations.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"annotation {key!r}: expected a string key, got {type(key).__name__}"
                )
            if value is not None and not isinstance(value, str):
                # str(False) is "False", which the sandbox would read as false: refuse instead.
                raise TypeError(
                    f"annotation {key!r}: expected a string (or None to remove it), got {value!r}"
                )

        def annotate() -> None:
            _require_pod(cluster, pod, namespace)
            cluster.annotate(namespace, pod, dict(annotations))

        self.call(annotate)

    def set_fault(
        self, pod: str, fault: str | None, namespace: str = "default", **options: Any
    ) -> None:
        """Shortcut for the ``exec-fault`` annotation plus its options (``fault_after=0.5``)."""
        annotations: dict[str, str | None] = {"sandbox.podmagic.io/exec-fault": fault}
        for key, value in options.items():
            annotations["sandbox.podmagic.io/" + key.replace("_", "-")] = (
                None if value is None else str(value)
            )
        self.annotate(pod, annotations, namespace)

    def throttle(self, requests: int, retry_after: float = 1.0) -> None:
        """Answer the next ``requests`` API requests (any path) with 429 and Retry-After.

        ``requests`` is a whole number from 0 (throttle no more) to 2**31-1, ``retry_after``
        seconds from 0 to 3600, the bounds of the ``throttle`` and ``retry-after`` annotations;
        anything else is a one-line ``ValueError`` and changes nothing.
        """
        if isinstance(requests, bool) or not isinstance(requests, int):
            requests_ok = False
        else:
            requests_ok = 0 <= requests <= MAX_COUNT
        if not requests_ok:
            raise ValueError(
                f"throttle() requests: expected a whole number from 0 to {MAX_COUNT}, "
                f"got {requests!r}"
            )
        if (
            isinstance(retry_after, bool)
            or not isinstance(retry_after, (int, float))
            or not (math.isfinite(retry_after) and 0 <= retry_after <= MAX_SECONDS)
        ):
            raise ValueError(
                f"throttle() retry_after: expected seconds from 0 to {MAX_SECONDS:.0f}, "
                f"got {retry_after!r}"
            )

        def set_throttle() -> None:
            cluster = self._cluster()
            cluster.throttle_left = requests
            cluster.throttle_retry_after = float(retry_after)

        self.call(set_throttle)

    def issue_token(
        self, ttl: float | None = None, *, user: str | None = None, groups: Iterable[str] = ()
    ) -> str:
        """A new bearer token the API accepts until ``ttl`` seconds pass (``None``: until
        :meth:`expire_tokens`); then it gets 401, like an expired token of a real cluster.

        Without ``user`` the token is the sandbox user's, who may do everything. With one
        (``"alice"``, in ``groups`` besides ``system:authenticated``) it may do what the
        cluster's Role/ClusterRole/RoleBinding/ClusterRoleBinding objects allow that user,
        and is refused the rest with the apiserver's 403 (``kubectl auth can-i`` answers the
        same).

        ``ttl`` must be above 0 and at most 2**32 seconds (``ValueError`` otherwise).
        Exec credential plugins in tests obtain the same from the server itself:
        ``POST {url}/sandbox/tokens`` with the body ``{"ttl": seconds}`` (optional; 400
        BadRequest outside those bounds),
        authenticated with the sandbox's own token (``Authorization: Bearer {token}``),
        answers ``{"token": ..., "expirationTimestamp": RFC 3339 or null}``.
        """
        cluster = self._cluster()
        if user is not None and (not isinstance(user, str) or not user.strip()):
            raise ValueError(f"user must be a non-empty user name, got {user!r}")
        return self.call(cluster.issue_token, ttl, user=user, groups=tuple(groups))[0]

    def expire_tokens(self) -> int:
        """Expire every issued token now (the sandbox's own token stays valid); returns how
        many were still valid."""
        return self.call(self._cluster().expire_tokens)

    @property
    def tokens_url(self) -> str:
        """Where exec credential plugins ask for a token (``POST``; see :meth:`issue_token`)."""
        return f"{self.url}/sandbox/tokens"

    def delete_pod(self, pod: str, namespace: str = "default") -> None:
        """Delete a pod at once (running execs in it are killed).

        An unknown pod is a one-line ``ValueError`` naming the pods there are.
        """
        cluster = self._cluster()

        def delete() -> None:
            _require_pod(cluster, pod, namespace)
            cluster.delete_pod(namespace, pod)

        self.call(delete)

    def pods(self, namespace: str | None = None) -> list[str]:
        """Names of the pods in a namespace (all when None)."""
        return self.call(
            lambda: [p["metadata"]["name"] for p in self._cluster().list_pods(namespace)]
        )

    def exec_stats(self) -> dict[str, int]:
        """Active execs, their high-water mark and the total served."""
        cluster = self._cluster()
        return self.call(
            lambda: {
                "active": cluster.exec_active,
                "high_water": cluster.exec_high_water,
                "total": cluster.exec_total,
            }
        )

    def reset_exec_stats(self) -> None:
        cluster = self._cluster()

        def reset() -> None:
            cluster.exec_high_water = cluster.exec_active
            cluster.exec_total = 0

        self.call(reset)

    def requests(self) -> list[RecordedRequest]:
        """Requests received so far (method, path with query, user agent; never credentials)."""
        return self.call(lambda: list(self._cluster().requests))

    def clear_requests(self) -> None:
        self.call(self._cluster().requests.clear)
