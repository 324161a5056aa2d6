"""The sandbox's exec endpoint on the wire: handshake, channel frames, status, faults.

Driven by a raw aiohttp WebSocket client so every frame, its type and the Close frame can be
checked exactly as the server sent them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from _waiting import assert_ended_before, await_until
from aiohttp import WSMsgType
from sandbox_client import api_client

from podmagic.sandbox import Sandbox
from podmagic.sandbox._isolation import isolation_problem

pytestmark = pytest.mark.anyio

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255

POD_MANIFEST = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: t}
spec:
  containers: [{name: c, image: busybox:1.36}]
"""

SUCCESS = b'{"metadata":{},"status":"Success"}'
EXIT_42 = (
    b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
    b'error executing command [sh -c exit 42], exit code 42","reason":"NonZeroExitCode",'
    b'"details":{"causes":[{"reason":"ExitCode","message":"42"}]}}'
)


# -- helpers -----------------------------------------------------------------------------------


def exec_params(
    argv: Iterable[str],
    *,
    stdin: bool = False,
    stdout: bool = True,
    stderr: bool = True,
    tty: bool = False,
    container: str | None = None,
) -> list[tuple[str, str]]:
    """The query kubectl sends: one ``command`` per argv element, false flags omitted."""
    params = [("command", arg) for arg in argv]
    if container is not None:
        params.append(("container", container))
    for name, value in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr), ("tty", tty)):
        if value:
            params.append((name, "true"))
    return params


class Exec:
    """One exec stream: every frame received, and how the stream ended."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.protocol
        self.frames: list[tuple[int, bytes]] = []
        self.message_types: list[WSMsgType] = []
        self.arrival: list[float] = []
        self.close_code: int | None = None  # code of the Close frame the server sent
        self.ended: WSMsgType | None = None  # CLOSE, or CLOSED / ERROR for a cut connection
        self.opened = time.monotonic()

    async def send(self, item: bytes | str) -> None:
        if isinstance(item, str):
            await self.ws.send_str(item)
        else:
            await self.ws.send_bytes(item)

    async def next(self, timeout: float = 10) -> tuple[int, bytes] | None:
        """The next frame, or None once the stream has ended."""
        if self.ended is not None:
            return None
        message = await self.ws.receive(timeout=timeout)
        if message.type in (WSMsgType.BINARY, WSMsgType.TEXT):
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            self.message_types.append(message.type)
            self.arrival.append(time.monotonic() - self.opened)
            frame = (data[0], data[1:]) if data else (-1, b"")
            self.frames.append(frame)
            return frame
        if message.type is WSMsgType.PONG:
            self.message_types.append(message.type)
            self.frames.append((-2, message.data))
            self.arrival.append(time.monotonic() - self.opened)
            return (-2, message.data)
        self.ended = message.type
        if message.type is WSMsgType.CLOSE:
            self.close_code = message.data
            await self.ws.close()  # the client's half of the closing handshake
        return None

    async def until(self, predicate: Callable[[Exec], bool], timeout: float = 10) -> None:
        with anyio.fail_after(timeout):
            while not predicate(self):
                if await self.next() is None:
                    raise AssertionError(
                        f"stream ended ({self.ended}) before the condition held: {self.frames}"
                    )

    async def finish(self, timeout: float = 10) -> Exec:
        with anyio.fail_after(timeout):
            while await self.next() is not None:
                pass
        return self

    def channel(self, channel: int) -> bytes:
        return b"".join(payload for number, payload in self.frames if number == channel)

    @property
    def stdout(self) -> bytes:
        return self.channel(STDOUT)

    @property
    def stderr(self) -> bytes:
        return self.channel(STDERR)

    @property
    def status_frames(self) -> list[bytes]:
        return [payload for number, payload in self.frames if number == STATUS]

    @property
    def status(self) -> dict[str, Any]:
        frames = self.status_frames
        assert len(frames) == 1, f"expected exactly one status frame, got {frames}"
        return json.loads(frames[0])  # type: ignore[no-any-return]


@contextlib.asynccontextmanager
async def open_exec(
    session: aiohttp.ClientSession,
    pod: str,
    argv: Iterable[str],
    *,
    namespace: str = "t",
    protocols: Iterable[str] = (V5,),
    autoping: bool = True,
    **flags: Any,
) -> AsyncIterator[Exec]:
    async with session.ws_connect(
        f"/api/v1/namespaces/{namespace}/pods/{pod}/exec",
        params=exec_params(argv, **flags),
        protocols=list(protocols),
        autoclose=False,
        autoping=autoping,
    ) as ws:
        yield Exec(ws)


async def run_exec(
    session: aiohttp.ClientSession,
    pod: str,
    argv: Iterable[str],
    *,
    send: Iterable[bytes | str] = (),
    timeout: float = 10,
    **options: Any,
) -> Exec:
    """Run one exec to its end: (frames by channel, status JSON, close code) in an :class:`Exec`."""
    async with open_exec(session, pod, argv, **options) as stream:
        for item in send:
            await stream.send(item)
        return await stream.finish(timeout)


async def handshake_failure(
    session: aiohttp.ClientSession,
    path: str,
    params: list[tuple[str, str]],
    *,
    method: str = "GET",
    protocols: str | None = V5,
    upgrade: str | None = "websocket",
) -> tuple[int, dict[str, Any]]:
    """Send an upgrade request by hand and return the (status, Status body) it was refused with."""
    headers = {
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    if upgrade is not None:
        headers.update({"Connection": "Upgrade", "Upgrade": upgrade})
    if protocols is not None:
        headers["Sec-WebSocket-Protocol"] = protocols
    async with session.request(method, path, params=params, headers=headers) as response:
        assert response.status != 101
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status, await response.json(content_type=None)


def bad_request(message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


# Prints a shell's pid as its PID namespace numbers it, and that namespace ("pid:[N]", the
# same on the host): together they name one process, whichever mode pods run in.
PID_AND_NS = "ns=$(readlink /proc/self/ns/pid); echo $$ $ns"


def find_host_pid(printed: bytes) -> int | None:
    """The host's pid of the process that printed ``$$ $ns`` (:data:`PID_AND_NS`) in a pod,
    None once it has ended. An isolated pod's pid is looked for in that pod's PID namespace
    only: on the host, or in another pod, the same number is some other process."""
    pid, namespace = printed.decode().split()[:2]
    if isolation_problem() is not None:  # plain processes: the host's pid already
        return int(pid) if process_running(int(pid)) else None
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") != namespace:
                continue
            status = Path(f"/proc/{name}/status").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        nspids = next(
            (line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), []
        )
        if nspids and nspids[-1] == pid:
            return int(name)
    return None


def host_pid(printed: bytes) -> int:
    """:func:`find_host_pid` of a process that must still run (the test fails if not)."""
    pid = find_host_pid(printed)
    if pid is None:
        pytest.fail(f"no running process printed {printed.decode().strip()!r}: it ended already")
    return pid


async def wait_gone(pid: int, what: str = "the pod's process ended") -> None:
    """Wait until ``pid`` has ended; fail saying ``what`` did not happen."""
    await await_until(lambda: not process_running(pid), what=f"{what} (pid {pid})")


async def get_json(session: aiohttp.ClientSession, path: str) -> tuple[int, dict[str, Any]]:
    async with session.get(path) as response:
        return response.status, await response.json(content_type=None)


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A sandbox of its own with one pod ``t/p``, for tests that set faults or stop it."""
    with Sandbox(POD_MANIFEST) as running:
        yield running


@pytest.fixture
async def conf(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of the session's sandbox (namespace ``conf``)."""
    async with api_client(sandbox) as session:
        yield session


# -- the handshake -----------------------------------------------------------------------------


@pytest.mark.parametrize("offered", [[V5], [V5, V4], [V4, V5], ["channel.k8s.io", V4, V5]])
async def test_v5_is_chosen_whenever_offered(
    conf: aiohttp.ClientSession, offered: list[str]
) -> None:
    stream = await run_exec(
        conf, "solo", ["sh", "-c", "echo v5"], namespace="conf", protocols=offered
    )
    assert stream.protocol == V5
    assert stream.stdout == b"v5\n"
    assert stream.status_frames == [SUCCESS]
    assert stream.close_code == 1000


@pytest.mark.parametrize("offered", [[V4], ["base64.channel.k8s.io", V4]])
async def test_v4_when_only_v4_is_offered(conf: aiohttp.ClientSession, offered: list[str]) -> None:
    stream = await run_exec(
        conf, "solo", ["sh", "-c", "echo v4"], namespace="conf", protocols=offered
    )
    assert stream.protocol == V4
    assert stream.stdout == b"v4\n"
    assert stream.status_frames == [SUCCESS]
    assert stream.close_code == 1000


async def test_handshake_echoes_exactly_the_chosen_protocol(conf: aiohttp.ClientSession) -> None:
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Protocol": f"{V4}, {V5}",
    }
    response = await conf.get(
        "/api/v1/namespaces/conf/pods/solo/exec", params=exec_params(["true"]), headers=headers
    )
    try:
        assert response.status == 101
        assert response.headers["Sec-WebSocket-Protocol"] == V5
        assert response.headers["Upgrade"].lower() == "websocket"
    finally:
        response.close()


@pytest.mark.parametrize(
    "offered", ["base64.channel.k8s.io", "channel.k8s.io,v3.channel.k8s.io", None]
)
async def test_no_supported_protocol_is_400(
    conf: aiohttp.ClientSession, offered: str | None
) -> None:
    code, body = await handshake_failure(
        conf, "/api/v1/namespaces/conf/pods/solo/exec", exec_params(["true"]), protocols=offered
    )
    assert (code, body) == (
        400,
        bad_request(
            "unsupported exec subprotocol: offer v5.channel.k8s.io or v4.channel.k8s.io in Sec-WebSocket-Protocol"
        ),
    )


async def test_plain_get_is_upgrade_required(conf: aiohttp.ClientSession) -> None:
    async with conf.get(
        "/api/v1/namespaces/conf/pods/solo/exec", params=exec_params(["true"])
    ) as response:
        assert response.status == 400
        assert await response.json() == bad_request("Upgrade request required")


async def test_spdy_is_refused_with_a_message_naming_websocket(conf: aiohttp.ClientSession) -> None:
    code, body = await handshake_failure(
        conf,
        "/api/v1/namespaces/conf/pods/solo/exec",
        exec_params(["true"], stdin=True),
        method="POST",
        protocols=None,
        upgrade="SPDY/3.1",
    )
    assert code == 400
    assert body == bad_request(
        "this server speaks the exec protocol over WebSocket only (v5.channel.k8s.io or "
        "v4.channel.k8s.io), not SPDY; use kubectl 1.30 or newer without "
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false (1.29: set it to true)"
    )


async def test_one_of_stdin_stdout_stderr_is_required(conf: aiohttp.ClientSession) -> None:
    for flags in (
        [("command", "true")],
        [("command", "true"), ("stdout", "false"), ("stderr", "0"), ("stdin", "F")],
    ):
        code, body = await handshake_failure(conf, "/api/v1/namespaces/conf/pods/solo/exec", flags)
        assert (code, body) == (
            400,
            bad_request("you must specify at least 1 of stdin, stdout, stderr"),
        )


@pytest.mark.parametrize("true_value", ["True", "1", "t", "T", "TRUE", "true"])
async def test_query_booleans_are_parsed_like_go(
    conf: aiohttp.ClientSession, true_value: str
) -> None:
    params = [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "echo out; echo err >&2"),
        ("stdout", true_value),
        ("stderr", "False"),
    ]
    async with conf.ws_connect(
        "/api/v1/namespaces/conf/pods/solo/exec", params=params, protocols=[V5], autoclose=False
    ) as ws:
        stream = await Exec(ws).finish()
    assert stream.stdout == b"out\n"
    assert stream.stderr == b""  # stderr=False: not streamed at all
    assert stream.status_frames == [SUCCESS]


async def test_invalid_boolean_is_400(conf: aiohttp.ClientSession) -> None:
    code, body = await handshake_failure(
        conf, "/api/v1/namespaces/conf/pods/solo/exec", [("command", "true"), ("stdout", "yes")]
    )
    assert code == 400
    assert body["reason"] == "BadRequest"
    assert 'strconv.ParseBool: parsing "yes": invalid syntax' in body["message"]


async def test_errors_before_the_upgrade(conf: aiohttp.ClientSession) -> None:
    base = "/api/v1/namespaces/conf/pods"
    code, body = await handshake_failure(conf, f"{base}/nope/exec", exec_params(["true"]))
    assert (code, body) == (
        404,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": 'pods "nope" not found',
            "reason": "NotFound",
            "details": {"name": "nope", "kind": "pods"},
            "code": 404,
        },
    )
    assert await handshake_failure(conf, f"{base}/multi/exec", exec_params(["true"])) == (
        400,
        bad_request(
            "a container name must be specified for pod multi, choose one of: [first second]"
        ),
    )
    assert await handshake_failure(
        conf, f"{base}/multi/exec", exec_params(["true"], container="third")
    ) == (400, bad_request("container third is not valid for pod multi"))
    assert await handshake_failure(conf, f"{base}/done/exec", exec_params(["true"])) == (
        400,
        bad_request("cannot exec into a container in a completed pod; current phase is Succeeded"),
    )
    assert await handshake_failure(conf, f"{base}/pending/exec", exec_params(["true"])) == (
        400,
        bad_request('container "main" in pod "pending" is waiting to start: ContainerCreating'),
    )


async def test_named_container_of_a_multi_container_pod(conf: aiohttp.ClientSession) -> None:
    # Each container has a filesystem of its own: what one writes, the other does not see.
    for container in ("first", "second"):
        stream = await run_exec(
            conf,
            "multi",
            ["sh", "-c", f"cat who 2>/dev/null; echo {container} > who"],
            namespace="conf",
            container=container,
        )
        assert stream.stdout == b""
        assert stream.status_frames == [SUCCESS]
    for container in ("first", "second"):
        stream = await run_exec(
            conf, "multi", ["cat", "who"], namespace="conf", container=container
        )
        assert stream.stdout == f"{container}\n".encode()


# -- frames ------------------------------------------------------------------------------------


async def test_first_frame_is_an_empty_stdout_frame(conf: aiohttp.ClientSession) -> None:
    stream = await run_exec(conf, "solo", ["sh", "-c", "echo hi"], namespace="conf")
    assert stream.frames[0] == (STDOUT, b"")
    only_stderr = await run_exec(
        conf, "solo", ["sh", "-c", "echo err >&2"], namespace="conf", stdout=False
    )
    assert only_stderr.frames[0] == (STDERR, b"")
    assert only_stderr.stdout == b""
    assert only_stderr.stderr == b"err\n"


async def test_stdout_and_stderr_are_separate(conf: aiohttp.ClientSession) -> None:
    stream = await run_exec(
        conf,
        "solo",
        ["sh", "-c", "echo out1; echo err1 >&2; echo out2; echo err2 >&2"],
        namespace="conf",
    )
    assert stream.stdout == b"out1\nout2\n"
    assert stream.stderr == b"err1\nerr2\n"


async def test_status_frames_and_close_exactly_as_the_protocol_says(
    conf: aiohttp.ClientSession,
) -> None:
    for argv, expected in ((["sh", "-c", "exit 0"], SUCCESS), (["sh", "-c", "exit 42"], EXIT_42)):
        stream = await run_exec(conf, "solo", argv, namespace="conf")
        assert stream.status_frames == [expected]
        assert stream.frames[-1] == (STATUS, expected)  # the status frame is the last frame ...
        assert (stream.ended, stream.close_code) == (WSMsgType.CLOSE, 1000)  # ... then Close 1000
        assert set(stream.message_types) == {WSMsgType.BINARY}  # kubectl aborts on text frames
    failure = json.loads(EXIT_42)
    assert failure["details"]["causes"][0] == {"reason": "ExitCode", "message": "42"}


async def test_close_frame_follows_status_even_for_a_plain_client(
    conf: aiohttp.ClientSession,
) -> None:
    # Like the real API server (golang.org/x/net/websocket), the sandbox closes the TCP connection
    # right after its Close frame; a client's own close_code may then read 1006. What the server
    # sent is what counts: the status frame, then a Close frame with code 1000.
    for _ in range(10):
        async with conf.ws_connect(
            "/api/v1/namespaces/conf/pods/solo/exec",
            params=exec_params(["true"], stdin=True),
            protocols=[V5],
            autoclose=False,
        ) as ws:
            messages = []
            while (message := await ws.receive(timeout=10)).type is not WSMsgType.CLOSE:
                messages.append(message)
            assert [(m.type, m.data) for m in messages] == [
                (WSMsgType.BINARY, bytes([STDOUT])),
                (WSMsgType.BINARY, bytes([STATUS]) + SUCCESS),
            ]
            assert message.data == 1000


async def test_text_frame_reaches_stdin(conf: aiohttp.ClientSession) -> None:
    # The official client's write_stdin(str) sends "\x00" + data as a text frame.
    stream = await run_exec(
        conf, "solo", ["head", "-c", "5"], namespace="conf", stdin=True, send=["\x00hello"]
    )
    assert stream.stdout == b"hello"
    assert stream.status_frames == [SUCCESS]


async def test_v5_close_frame_ends_stdin(conf: aiohttp.ClientSession) -> None:
    stream = await run_exec(
        conf,
        "solo",
        ["cat"],
        namespace="conf",
        stdin=True,
        send=[b"\x00abc", "\x00def", bytes([CLOSE, STDIN])],
    )
    assert stream.protocol == V5
    assert stream.stdout == b"abcdef"
    assert stream.status_frames == [SUCCESS]
    assert stream.close_code == 1000


async def test_v4_stdin_works_and_closing_the_socket_kills_the_process(
    conf: aiohttp.ClientSession,
) -> None:
    stream = await run_exec(
        conf,
        "solo",
        ["head", "-c", "6"],
        namespace="conf",
        stdin=True,
        protocols=[V4],
        send=[b"\x00abc", b"\x00def"],
    )
    assert (stream.protocol, stream.stdout, stream.status_frames) == (V4, b"abcdef", [SUCCESS])

    async with open_exec(
        conf,
        "solo",
        ["sh", "-c", f"{PID_AND_NS}; exec cat"],
        namespace="conf",
        protocols=[V4],
        stdin=True,
    ) as stream:
        await stream.until(lambda s: s.stdout.endswith(b"\n"))
        pid = host_pid(stream.stdout)
        # v4 has no half-close: the CLOSE channel means nothing there, cat keeps running.
        await stream.send(bytes([CLOSE, STDIN]))
        await stream.send(b"\x00still here\n")
        await stream.until(lambda s: b"still here" in s.stdout)
        assert process_running(pid)
        await stream.ws.close()
    await wait_gone(pid, "the process ended with its v4 exec socket")


async def test_tty_folds_stderr_into_stdout(conf: aiohttp.ClientSession) -> None:
    stream = await run_exec(
        conf,
        "solo",
        ["sh", "-c", "echo out; echo err >&2; test -t 1 && echo tty"],
        namespace="conf",
        tty=True,
        stderr=True,
    )
    assert stream.stdout == b"out\r\nerr\r\ntty\r\n"
    assert all(channel != STDERR for channel, _ in stream.frames)
    assert stream.frames[0] == (STDOUT, b"")
    assert stream.status_frames == [SUCCESS]


async def test_tty_resize_sets_the_terminal_size(conf: aiohttp.ClientSession) -> None:
    # kubectl sends the size right after connecting: the command starts at that size.
    stream = await run_exec(
        conf,
        "solo",
        ["stty", "size"],
        namespace="conf",
        tty=True,
        stdin=True,
        send=[bytes([RESIZE]) + b'{"Width":100,"Height":30}'],
    )
    assert stream.stdout == b"30 100\r\n"

    # A resize while the command runs reaches its terminal (several objects: the last wins).
    async with open_exec(
        conf,
        "solo",
        ["sh", "-c", "stty size; read line; stty size"],
        namespace="conf",
        tty=True,
        stdin=True,
    ) as stream:
        await stream.until(lambda s: b"24 80\r\n" in s.stdout)
        await stream.send(bytes([RESIZE]) + b'{"Width":100,"Height":30}{"Width":132,"Height":43}')
        await stream.send(b"\x00\n")
        await stream.finish()
    assert stream.stdout.splitlines()[-1] == b"43 132"
    assert stream.status_frames == [SUCCESS]


async def test_pings_are_answered(conf: aiohttp.ClientSession) -> None:
    async with open_exec(
        conf,
        "solo",
        ["sh", "-c", "read line; echo $line"],
        namespace="conf",
        stdin=True,
        autoping=False,
    ) as stream:
        await stream.ws.ping(b"are you there")
        await stream.until(lambda s: (-2, b"are you there") in s.frames, timeout=5)
        await stream.send(b"\x00done\n")
        await stream.finish()
    assert stream.stdout == b"done\n"
    assert stream.status_frames == [SUCCESS]


async def test_command_not_found_is_an_internal_error_status(conf: aiohttp.ClientSession) -> None:
    stream = await run_exec(conf, "solo", ["no-such-command", "x"], namespace="conf")
    detail = (
        "error executing command in container: failed to exec in container: failed to start exec: "
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "no-such-command": executable file not found in $PATH: unknown'
    )
    assert stream.status == {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {detail}",
        "reason": "InternalError",
        "details": {"causes": [{"message": detail}]},
        "code": 500,
    }
    assert stream.frames[-1][0] == STATUS
    assert stream.close_code == 1000


async def test_exec_delay_postpones_the_command(fresh: Sandbox) -> None:
    fresh.annotate("p", {"sandbox.podmagic.io/exec-delay": "0.6"}, namespace="t")
    async with api_client(fresh) as session:
        stream = await run_exec(session, "p", ["echo", "late"])
    assert stream.frames[0] == (STDOUT, b"")
    assert stream.arrival[0] < 0.4  # the empty frame comes at once ...
    first_output = next(t for t, (channel, data) in zip(stream.arrival, stream.frames) if data)
    assert first_output >= 0.55  # ... the command's output only after the delay
    assert stream.stdout == b"late\n"
    assert stream.status_frames == [SUCCESS]


# -- faults ------------------------------------------------------------------------------------


async def test_drop_cuts_the_stream_without_status_or_close(fresh: Sandbox) -> None:
    fresh.set_fault("p", "drop", namespace="t", fault_after=0.3)
    async with api_client(fresh) as session:
        started = time.monotonic()  # only to show it was the drop that ended the `sleep 30`
        async with open_exec(
            session, "p", ["sh", "-c", f"{PID_AND_NS}; echo start; sleep 30"]
        ) as stream:
            await stream.until(lambda s: b"\n" in s.stdout)
            pid = host_pid(stream.stdout.split(b"\n")[0])
            await stream.finish()
    assert_ended_before(started, 20, "an exec of `sleep 30` dropped after 0.3 s")
    assert stream.stdout.endswith(b"start\n")  # the partial output arrived ...
    assert stream.status_frames == []  # ... and no status frame ...
    assert stream.close_code is None and stream.ended in (
        WSMsgType.CLOSED,
        WSMsgType.ERROR,
    )  # ... nor Close
    await wait_gone(pid)


async def test_drop_after_bytes_sends_exactly_that_many(fresh: Sandbox) -> None:
    fresh.set_fault("p", "drop", namespace="t", fault_after_bytes=10)
    async with api_client(fresh) as session:
        stream = await run_exec(
            session, "p", ["sh", "-c", "printf 0123456; printf 789abcdef; sleep 30"]
        )
    assert stream.stdout == b"0123456789"
    assert stream.status_frames == []
    assert stream.close_code is None


async def test_forbidden_fault_is_403_in_rbac_wording() -> None:
    with Sandbox(POD_MANIFEST, user="alice") as sandbox:
        sandbox.set_fault("p", "forbidden", namespace="t")
        async with api_client(sandbox) as session:
            path = "/api/v1/namespaces/t/pods/p/exec"
            for method, verb in (("GET", "get"), ("POST", "create")):
                code, body = await handshake_failure(
                    session, path, exec_params(["true"]), method=method
                )
                assert (code, body) == (
                    403,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": f'pods "p" is forbidden: User "alice" cannot {verb} resource "pods/exec" '
                        'in API group "" in the namespace "t"',
                        "reason": "Forbidden",
                        "details": {"name": "p", "kind": "pods"},
                        "code": 403,
                    },
                )
            sandbox.set_fault("p", None, namespace="t")
            assert (await run_exec(session, "p", ["true"])).status_frames == [SUCCESS]


async def test_error_500_fault(fresh: Sandbox) -> None:
    fresh.set_fault("p", "error-500", namespace="t")
    async with api_client(fresh) as session:
        code, body = await handshake_failure(
            session, "/api/v1/namespaces/t/pods/p/exec", exec_params(["true"])
        )
    message = "error dialing backend: the sandbox was asked to fail this upgrade"
    assert (code, body) == (
        500,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {message}",
            "reason": "InternalError",
            "details": {"causes": [{"message": message}]},
            "code": 500,
        },
    )


def killed_status(argv: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command [{argv}], exit code 137",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "137"}]},
    }


async def test_delete_fault_removes_the_pod_and_ends_the_exec(fresh: Sandbox) -> None:
    # The fault comes 3 s in: the command must have printed its pid by then, even on a
    # loaded machine where starting an isolated process takes a second or more.
    fresh.set_fault("p", "delete", namespace="t", fault_after=3)
    async with api_client(fresh) as session:
        async with open_exec(session, "p", ["sh", "-c", f"{PID_AND_NS}; sleep 30"]) as stream:
            await stream.until(lambda s: b"\n" in s.stdout)
            await stream.finish()
        code, body = await get_json(session, "/api/v1/namespaces/t/pods/p")
    assert (code, body["reason"], body["message"]) == (404, "NotFound", 'pods "p" not found')
    # The killed command's exit (SIGKILL: 137) is reported, then the stream closes normally.
    assert stream.status == killed_status(f"sh -c {PID_AND_NS}; sleep 30")
    assert stream.close_code == 1000
    # Gone, if it was not already when the pod was (then it is not found at all).
    await await_until(lambda: find_host_pid(stream.stdout) is None, what="the pod's process ended")
    assert fresh.pods("t") == []


async def test_recreate_fault_keeps_the_name_with_a_new_uid(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        _, before = await get_json(session, "/api/v1/namespaces/t/pods/p")
        fresh.set_fault("p", "recreate", namespace="t", fault_after=0.2)
        stream = await run_exec(session, "p", ["sh", "-c", "sleep 30"])
        code, after = await get_json(session, "/api/v1/namespaces/t/pods/p")
    assert stream.status == killed_status("sh -c sleep 30")
    assert code == 200
    assert after["metadata"]["name"] == "p"
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert "sandbox.podmagic.io/exec-fault" not in after["metadata"].get("annotations", {})
    assert after["status"]["phase"] == "Running"


async def test_restart_fault_counts_a_restart_with_a_new_container_id(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        _, before = await get_json(session, "/api/v1/namespaces/t/pods/p")
        fresh.set_fault("p", "restart", namespace="t", fault_after=0.2)
        stream = await run_exec(session, "p", ["sh", "-c", "sleep 30"])
        _, after = await get_json(session, "/api/v1/namespaces/t/pods/p")
    assert stream.status == killed_status("sh -c sleep 30")
    old, new = before["status"]["containerStatuses"][0], after["status"]["containerStatuses"][0]
    assert (old["restartCount"], new["restartCount"]) == (0, 1)
    assert new["containerID"] != old["containerID"]
    assert new["lastState"]["terminated"]["exitCode"] == 137
    assert new["lastState"]["terminated"]["containerID"] == old["containerID"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]


# -- bookkeeping and shutdown ------------------------------------------------------------------


async def test_requests_are_recorded_without_credentials(fresh: Sandbox) -> None:
    fresh.clear_requests()
    async with api_client(fresh) as session:
        session.headers["User-Agent"] = "wire-test/1.0"
        await run_exec(session, "p", ["echo", "a b"], stdin=True)
        await get_json(session, "/api/v1/namespaces/t/pods/p")
    recorded = fresh.requests()
    assert [(r.method, r.path_qs, r.user_agent) for r in recorded] == [
        (
            "GET",
            "/api/v1/namespaces/t/pods/p/exec?command=echo&command=a+b&stdin=true&stdout=true&stderr=true",
            "wire-test/1.0",
        ),
        ("GET", "/api/v1/namespaces/t/pods/p", "wire-test/1.0"),
    ]
    assert fresh.token
    assert all(fresh.token not in repr(r) and "Bearer" not in repr(r) for r in recorded)


async def test_exec_stats_count_active_and_high_water(fresh: Sandbox) -> None:
    fresh.reset_exec_stats()
    assert fresh.exec_stats() == {"active": 0, "high_water": 0, "total": 0}
    async with api_client(fresh) as session, contextlib.AsyncExitStack() as stack:
        streams = [
            await stack.enter_async_context(open_exec(session, "p", ["cat"], stdin=True))
            for _ in range(3)
        ]
        for stream in streams:
            await stream.until(lambda s: len(s.frames) >= 1)
        assert fresh.exec_stats() == {"active": 3, "high_water": 3, "total": 3}
        for stream in streams:
            await stream.send(bytes([CLOSE, STDIN]))
            await stream.finish()
    await await_until(lambda: fresh.exec_stats()["active"] == 0, what="the three execs ended")
    assert fresh.exec_stats() == {"active": 0, "high_water": 3, "total": 3}
    fresh.reset_exec_stats()
    assert fresh.exec_stats() == {"active": 0, "high_water": 0, "total": 0}


BACKGROUND_JOB = f"{PID_AND_NS}; sleep 1000 & echo $! $ns; wait"


async def test_stop_leaves_no_pod_process() -> None:
    sandbox = Sandbox(POD_MANIFEST).start()
    try:
        async with (
            api_client(sandbox) as session,
            open_exec(session, "p", ["sh", "-c", BACKGROUND_JOB]) as stream,
        ):
            await stream.until(lambda s: s.stdout.count(b"\n") == 2)
            shell, child = (host_pid(line) for line in stream.stdout.splitlines())
            assert process_running(shell) and process_running(child)
            await anyio.to_thread.run_sync(sandbox.stop)
            assert not process_running(shell)
            assert not process_running(child)  # the background job went with it
            await stream.finish()
    finally:
        sandbox.stop()
    # The interrupted command is reported as killed, then the stream closes normally.
    assert stream.status == killed_status(f"sh -c {BACKGROUND_JOB}")
    assert stream.close_code == 1000
