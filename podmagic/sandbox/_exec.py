"""The exec endpoint: Kubernetes' channel protocol over WebSocket, backed by local processes.

One request is one :class:`ExecSession`. Before the upgrade, problems are ordinary HTTP
responses with a Status body; after it, every message is a binary frame
``[channel][payload]`` (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 v5 close), the
status frame is sent exactly once and last, then a Close 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import WSMessage, WSMsgType, web

from .._channels import CLOSE, RESIZE, STATUS, STDERR, STDIN, STDOUT
from . import _status as status
from ._api import cluster_of
from ._isolation import acontainer_placement, container_ended
from ._runner import ExecutableNotFound, ProcessSpec, RunningProcess, start_process
from ._state import Cluster, ManifestError, PodEntry

__all__ = ["ACTIVE_SESSIONS_KEY", "ExecSession", "handle_exec", "parse_bool"]

log = logging.getLogger(__name__)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"

ACTIVE_SESSIONS_KEY = web.AppKey("exec_sessions", set)

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


def parse_bool(value: str | None, name: str) -> bool:
    """Booleans the way Go's ``strconv.ParseBool`` reads them (the Python client sends ``True``)."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise status.bad_request(
        f'strconv.ParseBool: parsing "{value}": invalid syntax (query parameter {name})'
    )


def choose_subprotocol(offered: str) -> str | None:
    """v5 when offered, else v4: the rule real API servers follow."""
    protocols = [p.strip() for p in offered.split(",") if p.strip()]
    for candidate in (V5, V4):
        if candidate in protocols:
            return candidate
    return None


def resolve_container(entry: PodEntry, requested: str | None) -> Mapping[str, Any]:
    """The container an exec runs in; errors worded like the API server's."""
    containers = entry.pod["spec"].get("containers", [])
    if requested:
        for container in containers:
            if container["name"] == requested:
                return container  # type: ignore[no-any-return]
        raise status.bad_request(f"container {requested} is not valid for pod {entry.name}")
    if len(containers) == 1:
        return containers[0]  # type: ignore[no-any-return]
    names = " ".join(c["name"] for c in containers)
    raise status.bad_request(
        f"a container name must be specified for pod {entry.name}, choose one of: [{names}]"
    )


def _status_frame(exit_code: int, argv: list[str]) -> bytes:
    if exit_code == 0:
        body: dict[str, Any] = {"metadata": {}, "status": "Success"}
    else:
        body = {
            "metadata": {},
            "status": "Failure",
            "message": (
                "command terminated with non-zero exit code: error executing command "
                f"[{' '.join(argv)}], exit code {exit_code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(exit_code)}]},
        }
    return bytes([STATUS]) + json.dumps(body, separators=(",", ":")).encode()


def _exec_failure_frame(message: str) -> bytes:
    text = f"error executing command in container: {message}"
    body = {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {text}",
        "reason": "InternalError",
        "details": {"causes": [{"message": text}]},
        "code": 500,
    }
    return bytes([STATUS]) + json.dumps(body, separators=(",", ":")).encode()


def _frame_bytes(message: WSMessage) -> bytes | None:
    """A client frame's bytes, or None when the client closed or failed."""
    if message.type == WSMsgType.BINARY:
        return message.data  # type: ignore[no-any-return]
    if message.type == WSMsgType.TEXT:
        # The Python client's write_stdin(str) sends "\x00" + text as a text frame.
        return message.data.encode()  # type: ignore[no-any-return]
    return None


def _parse_sizes(payload: bytes) -> list[tuple[int, int]]:
    """Terminal sizes from a resize frame: a stream of ``{"Width":W,"Height":H}`` objects."""
    decoder = json.JSONDecoder()
    text = payload.decode(errors="replace").strip()
    sizes = []
    while text:
        try:
            size, end = decoder.raw_decode(text)
        except ValueError:
            break
        if isinstance(size, dict) and "Width" in size and "Height" in size:
            sizes.append((int(size["Width"]), int(size["Height"])))
        text = text[end:].strip()
    return sizes


class ExecSession:
    """One exec: the WebSocket, the process and the faults that may strike them."""

    def __init__(
        self,
        request: web.Request,
        cluster: Cluster,
        entry: PodEntry,
        container: Mapping[str, Any],
        argv: list[str],
        *,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
        protocol: str,
    ) -> None:
        self.request = request
        self.cluster = cluster
        self.entry = entry
        self.container = container
        self.argv = argv
        self.stdin, self.stdout, self.stderr, self.tty = stdin, stdout, stderr and not tty, tty
        self.protocol = protocol
        self.ws = web.WebSocketResponse(
            protocols=(protocol,), autoping=True, compress=False, max_msg_size=64 * 1024 * 1024
        )
        self.process: RunningProcess | None = None
        self.interrupted: str | None = None
        self.dropped = False
        self.sent_bytes = 0
        self._early_messages: list[WSMessage] = []

    def interrupt(self, reason: str) -> None:
        """Kill the command: the pod was deleted, the container restarted, or the sandbox stops."""
        self.interrupted = reason
        if self.process is not None:
            self.process.kill()

    def _drop_connection(self) -> None:
        """Cut the TCP connection with no status frame and no Close frame."""
        self.dropped = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        if self.process is not None:
            self.process.kill()

    async def run(self) -> web.WebSocketResponse:
        await self.ws.prepare(self.request)
        # Real servers announce the stream with one empty frame on the lowest output channel.
        if self.stdout or self.stderr:
            await self.ws.send_bytes(bytes([STDOUT if self.stdout else STDERR]))
        behaviour = self.entry.behaviour
        if behaviour.exec_delay:
            await asyncio.sleep(behaviour.exec_delay)
        try:
            width, height = await self._initial_size() if self.tty else (80, 24)
            env = self.cluster.exec_environment(self.entry, self.container, tty=self.tty)
            isolation, workdir = await acontainer_placement(
                self.cluster, self.entry, self.container, env
            )
            spec = ProcessSpec(
                argv=self.argv,
                env=env,
                cwd=workdir,
                hostname=self.entry.name[:63],
                tty=self.tty,
                width=width,
                height=height,
                isolation=isolation,
            )
            self.process = await start_process(spec)
        except ManifestError as error:
            await self._finish(_exec_failure_frame(f"failed to exec in container: {error}"))
            return self.ws
        except ExecutableNotFound as error:
            await self._finish(
                _exec_failure_frame(
                    f"failed to exec in container: failed to start exec: OCI runtime exec failed: "
                    f"exec failed: unable to start container process: {error}: unknown"
                )
            )
            return self.ws
        except Exception as error:
            # Whatever stops the process from starting, the client gets a Failure status and a
            # clean close, never a WebSocket left open until its ping timeout. The details
            # (which could name the state folder) go to the log only.
            log.exception(
                "exec in pod %s/%s could not start", self.entry.namespace, self.entry.name
            )
            if container_ended(
                self.cluster, self.entry.namespace, self.entry.name, str(self.container["name"])
            ):
                await self._finish(
                    _exec_failure_frame(
                        "failed to exec in container: failed to start exec: the container's "
                        "processes ended as the exec started (its namespaces are gone); it "
                        "starts again: run the exec again"
                    )
                )
                return self.ws
            await self._finish(
                _exec_failure_frame(
                    "failed to exec in container: failed to start exec: the sandbox could not start the "
                    f"process ({type(error).__name__}); its log (logger podmagic.sandbox) has the details"
                )
            )
            return self.ws
        if self.interrupted:
            self.process.kill()
        tasks = [asyncio.create_task(self._read_client())]
        if behaviour.exec_fault in ("drop", "delete", "recreate", "restart") and not (
            behaviour.exec_fault == "drop" and behaviour.fault_after_bytes is not None
        ):
            tasks.append(
                asyncio.create_task(self._strike_later(behaviour.exec_fault, behaviour.fault_after))
            )
        try:
            if not self.stdin:
                await self.process.close_stdin()
            await self._pump_output()
            exit_code = await self.process.wait()
            if not self.dropped:
                await self._finish(_status_frame(exit_code, self.argv))
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.process.aclose()
        return self.ws

    async def _finish(self, status_frame: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_bytes(status_frame)
            await self.ws.close(code=1000)

    async def _pump_output(self) -> None:
        assert self.process is not None
        behaviour = self.entry.behaviour
        drop_after = behaviour.fault_after_bytes if behaviour.exec_fault == "drop" else None
        async for channel, chunk in self.process.read_output():
            if self.dropped or self.ws.closed:
                self.process.kill()
                continue
            if (channel == STDOUT and not self.stdout) or (channel == STDERR and not self.stderr):
                continue
            if drop_after is not None and self.sent_bytes + len(chunk) >= drop_after:
                chunk = chunk[: max(0, drop_after - self.sent_bytes)]
                if chunk:
                    await self.ws.send_bytes(bytes([channel]) + chunk)
                self._drop_connection()
                continue
            try:
                await self.ws.send_bytes(bytes([channel]) + chunk)
            except (ConnectionError, RuntimeError):
                self.process.kill()
                continue
            self.sent_bytes += len(chunk)

    async def _initial_size(self) -> tuple[int, int]:
        """Wait briefly for the client's first resize so the command starts at its size.

        kubectl sends the terminal size right after connecting; starting the process first
        would let a quick ``stty size`` see 80x24. Frames that arrive meanwhile are kept.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 0.25
        while (remaining := deadline - loop.time()) > 0:
            try:
                message = await self.ws.receive(timeout=remaining)
            except asyncio.TimeoutError:
                break
            self._early_messages.append(message)
            data = _frame_bytes(message)
            if data is None:
                break
            if data[:1] == bytes([RESIZE]):
                sizes = _parse_sizes(data[1:])
                if sizes:
                    return sizes[-1]
        return 80, 24

    async def _client_messages(self) -> AsyncIterator[WSMessage]:
        while self._early_messages:
            yield self._early_messages.pop(0)
        async for message in self.ws:
            yield message

    async def _read_client(self) -> None:
        assert self.process is not None
        async for message in self._client_messages():
            data = _frame_bytes(message)
            if data is None:
                break
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and self.stdin:
                try:
                    await self.process.write_stdin(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            elif channel == RESIZE and self.tty:
                self._resize(payload)
            elif channel == CLOSE and self.protocol == V5 and payload[:1] == bytes([STDIN]):
                await self.process.close_stdin()
        # The client went away (or closed the socket): nothing will read the output any more.
        if not self.ws.closed or self.ws.close_code is not None:
            self.process.kill()

    def _resize(self, payload: bytes) -> None:
        assert self.process is not None
        for width, height in _parse_sizes(payload):
            self.process.resize(width, height)

    async def _strike_later(self, fault: str, delay: float) -> None:
        await asyncio.sleep(delay)
        namespace, name = self.entry.namespace, self.entry.name
        if fault == "drop":
            self._drop_connection()
        elif fault == "delete":
            self.cluster.delete_pod(namespace, name)
        elif fault == "recreate":
            self.cluster.recreate_pod(namespace, name)
        elif fault == "restart":
            self.cluster.restart_pod(namespace, name)


async def handle_exec(request: web.Request) -> web.StreamResponse:
    """``GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec``."""
    cluster = cluster_of(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    upgrade = request.headers.get("Upgrade", "").lower()
    entry = cluster.get_pod(namespace, name)
    if entry is None:
        raise status.not_found("pods", name)
    query = request.query
    argv = query.getall("command", [])
    stdin = parse_bool(query.get("stdin"), "stdin")
    stdout = parse_bool(query.get("stdout"), "stdout")
    stderr = parse_bool(query.get("stderr"), "stderr")
    tty = parse_bool(query.get("tty"), "tty")
    behaviour = entry.behaviour
    if behaviour.exec_fault == "forbidden":
        verb = "create" if request.method == "POST" else "get"
        raise status.forbidden(cluster.user, verb, "pods/exec", namespace, name)
    if behaviour.exec_fault == "error-500":
        raise status.internal_error(
            "error dialing backend: the sandbox was asked to fail this upgrade"
        )
    if not (stdin or stdout or stderr):
        raise status.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    if not argv:
        raise status.bad_request("you must specify at least one command for the container")
    container = resolve_container(entry, query.get("container"))
    phase = entry.pod["status"].get("phase")
    if phase in ("Succeeded", "Failed"):
        raise status.bad_request(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    if phase == "Pending":
        raise status.bad_request(
            f'container "{container["name"]}" in pod "{name}" is waiting to start: ContainerCreating'
        )
    # Checked after the pod and container: kubectl falls back from a failed WebSocket upgrade
    # to SPDY, and the answer to that second request is the one it prints.
    if "spdy" in upgrade:
        raise status.bad_request(
            "this server speaks the exec protocol over WebSocket only (v5.channel.k8s.io or "
            "v4.channel.k8s.io), not SPDY; use kubectl 1.30 or newer without "
            "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false (1.29: set it to true)"
        )
    if "websocket" not in upgrade:
        raise status.bad_request("Upgrade request required")
    protocol = choose_subprotocol(request.headers.get("Sec-WebSocket-Protocol", ""))
    if protocol is None:
        raise status.bad_request(
            "unsupported exec subprotocol: offer v5.channel.k8s.io or v4.channel.k8s.io "
            "in Sec-WebSocket-Protocol"
        )
    session = ExecSession(
        request,
        cluster,
        entry,
        container,
        argv,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        tty=tty,
        protocol=protocol,
    )
    sessions: set[ExecSession] = request.app[ACTIVE_SESSIONS_KEY]
    sessions.add(session)
    entry.sessions.add(session)
    cluster.exec_active += 1
    cluster.exec_total += 1
    cluster.exec_high_water = max(cluster.exec_high_water, cluster.exec_active)
    try:
        return await session.run()
    finally:
        cluster.exec_active -= 1
        sessions.discard(session)
        entry.sessions.discard(session)
