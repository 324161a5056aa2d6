"""One exec over the WebSocket channel protocol, against the sandbox and a scripted server."""

from __future__ import annotations

import base64
import hashlib
import os
import resource
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest
import yaml
from _waiting import assert_ended_before, await_until
from aiohttp import web

from podmagic._credentials import load_credentials
from podmagic._errors import ConfigError, HandshakeError, StreamLostError
from podmagic._kubeapi import KubeApi, RetryPolicy
from podmagic._transport import V4, V5, ExecSpec, interpret_status, partial_outcome, run_exec
from podmagic.sandbox import Sandbox
from podmagic.sandbox._tls import generate_certificates

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
MIB = 1024 * 1024


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[KubeApi]:
    async with KubeApi(load_credentials(kubeconfig=sandbox.kubeconfig)) as client:
        yield client


def solo(script: str, **options: Any) -> ExecSpec:
    """``sh -c script`` in the conf/solo pod."""
    return ExecSpec("conf", "solo", "main", ("sh", "-c", script), **options)


@pytest.fixture
def fault(sandbox: Sandbox) -> Iterator[Callable[..., None]]:
    """Set a fault on conf/solo; it is removed again after the test."""

    def set_fault(kind: str, **options: Any) -> None:
        sandbox.set_fault("solo", kind, namespace="conf", **options)

    try:
        yield set_fault
    finally:
        sandbox.set_fault("solo", None, namespace="conf", fault_after=None, fault_after_bytes=None)


# -- exit status and output -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "code"), [("true", 0), ("exit 1", 1), ("exit 42", 42), ("kill -9 $$", 137)]
)
async def test_exit_codes(api: KubeApi, script: str, code: int) -> None:
    outcome = await run_exec(api, solo(script))
    assert outcome.exit_code == code
    assert outcome.error is None
    assert outcome.protocol == V5
    assert outcome.status["status"] == ("Success" if code == 0 else "Failure")


async def test_stdout_and_stderr_are_separate(api: KubeApi) -> None:
    events: list[Any] = []
    outcome = await run_exec(
        api,
        solo("echo out; echo err >&2; echo more"),
        on_started=lambda: events.append("started"),
        on_output=lambda channel, chunk: events.append((channel, chunk)),
    )
    assert outcome.stdout == b"out\nmore\n"
    assert outcome.stderr == b"err\n"
    assert outcome.stdout_dropped == outcome.stderr_dropped == 0
    assert events[0] == "started"
    assert b"".join(c for ch, c in events[1:] if ch == 1) == outcome.stdout
    assert b"".join(c for ch, c in events[1:] if ch == 2) == outcome.stderr
    assert all(chunk for _, chunk in events[1:])  # the empty greeting frame is not passed on


async def test_command_not_found(api: KubeApi) -> None:
    outcome = await run_exec(api, ExecSpec("conf", "solo", "main", ("no-such-command",)))
    assert outcome.exit_code is None
    assert outcome.error is not None and "executable file not found" in outcome.error
    assert outcome.status["reason"] == "InternalError"


async def test_multibyte_output_split_across_frames(api: KubeApi) -> None:
    chunks: list[bytes] = []
    outcome = await run_exec(
        api,
        solo(r"printf '\342\202'; sleep 0.2; printf '\254\n'"),
        on_output=lambda channel, chunk: chunks.append(chunk),
    )
    assert len(chunks) >= 2  # the euro sign arrived in two pieces
    assert outcome.stdout == "€\n".encode()


# -- stdin and tty ----------------------------------------------------------------------------


async def test_stdin_is_sent_then_closed(api: KubeApi) -> None:
    data = os.urandom(MIB)
    outcome = await run_exec(api, ExecSpec("conf", "solo", "main", ("cat",), stdin=data))
    assert outcome.exit_code == 0
    assert outcome.stdout == data
    empty = await run_exec(api, ExecSpec("conf", "solo", "main", ("wc", "-c"), stdin=b""))
    assert empty.stdout.strip() == b"0"
    # A command that closes its input without reading it: the server drops what arrives.
    ignored = await run_exec(api, solo("exec 0<&-; sleep 0.2; echo done", stdin=bytes(8 * MIB)))
    assert ignored.exit_code == 0 and ignored.stdout == b"done\n"


async def test_stdin_on_v4(api: KubeApi) -> None:
    # v4 cannot half-close stdin, so the command must stop by itself.
    data = os.urandom(300_000)
    outcome = await run_exec(api, solo(f"head -c {len(data)}", stdin=data), subprotocols=[V4])
    assert outcome.protocol == V4
    assert outcome.exit_code == 0
    assert outcome.stdout == data


async def test_tty(api: KubeApi) -> None:
    outcome = await run_exec(
        api, solo("tty; stty size; echo err >&2", tty=True, width=123, height=45)
    )
    assert outcome.exit_code == 0
    lines = outcome.stdout.decode().split("\r\n")
    assert lines[0].startswith("/dev/pts/")
    assert lines[1] == "45 123"
    assert "err" in lines[2]  # a terminal has one output stream
    assert outcome.stderr == b""


# -- large outputs ----------------------------------------------------------------------------


def _rss() -> int:
    """Current resident set size in bytes (Linux), else the high-water mark."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


async def test_capture_limit_keeps_memory_bounded(api: KubeApi) -> None:
    size = 64 * MIB
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_before = _rss()
    peak = rss_before
    seen = 0

    def on_output(channel: int, chunk: bytes) -> None:
        nonlocal seen, peak
        seen += len(chunk)
        if seen % (4 * MIB) < len(chunk):
            peak = max(peak, _rss())

    outcome = await run_exec(
        api, solo(f"head -c {size} /dev/zero", capture_limit=MIB), on_output=on_output
    )
    assert outcome.exit_code == 0
    assert outcome.stdout == bytes(MIB)
    assert outcome.stdout_dropped == size - MIB
    assert seen == size  # every chunk reached the callback, the dropped ones too
    assert peak - rss_before < 32 * MIB
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert growth_kib * 1024 < 32 * MIB or sys.platform == "darwin"


async def test_unbounded_capture_is_exact(api: KubeApi) -> None:
    size = 64 * MIB
    script = (
        f"head -c {size} /dev/urandom > blob && sha256sum blob >&2 && cat blob; "
        "status=$?; rm -f blob; exit $status"
    )
    outcome = await run_exec(api, solo(script, capture_limit=None))
    assert outcome.exit_code == 0
    assert len(outcome.stdout) == size and outcome.stdout_dropped == 0
    assert hashlib.sha256(outcome.stdout).hexdigest() == outcome.stderr.split()[0].decode()


# -- failures ---------------------------------------------------------------------------------


async def test_dropped_connection_is_never_success(
    api: KubeApi, fault: Callable[..., None]
) -> None:
    fault("drop", fault_after=0.3)
    with pytest.raises(StreamLostError) as caught:
        await run_exec(api, solo("echo started; echo warn >&2; sleep 5"))
    error = caught.value
    assert "connection lost; the remote command may still be running" in str(error)
    assert error.pod == "solo" and error.namespace == "conf"
    partial = partial_outcome(error)
    assert partial is not None
    assert partial.stdout == b"started\n" and partial.stderr == b"warn\n"
    assert partial.exit_code is None and partial.status == {}


async def test_forbidden(api: KubeApi, fault: Callable[..., None], sandbox: Sandbox) -> None:
    fault("forbidden")
    with pytest.raises(HandshakeError) as caught:
        await run_exec(api, solo("true"), retry=FAST)
    error = caught.value
    assert error.http_status == 403
    assert error.server_message is not None
    assert 'cannot get resource "pods/exec"' in error.server_message
    assert 'User "sandbox-user"' in str(error)
    assert sandbox.token is not None and sandbox.token not in str(error)


async def test_server_error_is_retried_then_reported(
    api: KubeApi, fault: Callable[..., None], sandbox: Sandbox
) -> None:
    fault("error-500")
    before = len(sandbox.requests())
    with pytest.raises(HandshakeError) as caught:
        await run_exec(api, solo("true"), retry=FAST)
    assert caught.value.http_status == 500
    assert "error dialing backend" in str(caught.value)
    execs = [r for r in sandbox.requests()[before:] if "/pods/solo/exec" in r.path_qs]
    assert len(execs) == FAST.attempts


async def test_missing_pod(api: KubeApi) -> None:
    with pytest.raises(HandshakeError) as caught:
        await run_exec(api, ExecSpec("conf", "x", "main", ("true",)), retry=FAST)
    assert caught.value.http_status == 404
    assert caught.value.server_message == 'pods "x" not found'
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_throttled_handshake_is_retried(api: KubeApi, sandbox: Sandbox) -> None:
    sandbox.throttle(1, retry_after=1)
    try:
        started = anyio.current_time()
        outcome = await run_exec(api, solo("echo ok"))
    finally:
        sandbox.throttle(0)
    assert outcome.stdout == b"ok\n"
    assert anyio.current_time() - started >= 0.95


async def test_rejected_token(sandbox: Sandbox, tmp_path: Path) -> None:
    assert sandbox.kubeconfig is not None
    document = yaml.safe_load(sandbox.kubeconfig.read_text(encoding="utf-8"))
    document["users"][0]["user"]["token"] = "not-the-token"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(document), encoding="utf-8")
    before = len(sandbox.requests())
    async with KubeApi(load_credentials(kubeconfig=kubeconfig)) as client:
        with pytest.raises(HandshakeError) as caught:
            await run_exec(client, solo("true"))
    assert caught.value.http_status == 401
    assert "not-the-token" not in str(caught.value)
    # Once with the token, once more after invalidating it (a plugin might have a new one).
    assert len([r for r in sandbox.requests()[before:] if "/exec" in r.path_qs]) == 2


async def test_cancellation_closes_the_exec(api: KubeApi, sandbox: Sandbox) -> None:
    pids: list[int] = []
    cancelled: list[float] = []
    # Cancelled once the command runs (it printed its pid); the deadline only ends a hang.
    with anyio.CancelScope(deadline=anyio.current_time() + 30) as scope:

        def on_output(channel: int, chunk: bytes) -> None:
            pids.append(_host_pid(int(chunk)))
            cancelled.append(time.monotonic())
            scope.cancel()

        await run_exec(api, solo("echo $$; exec sleep 1000"), on_output=on_output)
    assert scope.cancelled_caught
    assert len(pids) == 1
    # The command sleeps 1000 s: run_exec returned on the cancellation, not with it.
    assert_ended_before(cancelled[0], 20, "run_exec after its cancellation")

    async def closed_on_the_server() -> bool:
        active = (await anyio.to_thread.run_sync(sandbox.exec_stats))["active"]
        return active == 0 and not _process_alive(pids[0])

    await await_until(closed_on_the_server, what="the sandbox ended the cancelled exec's process")


def _host_pid(inner: int) -> int:
    """The host's pid of the exec that printed ``inner`` as its ``$$``: the same in a pod of
    plain processes, its pid in the container's PID namespace in an isolated pod."""
    for proc in Path("/proc").iterdir():
        try:
            status = (proc / "status").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        nspid = next(
            (line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), []
        )
        if nspid and int(nspid[-1]) == inner and b"sleep 1000" in cmdline.replace(b"\0", b" "):
            return int(nspid[0])
    return inner


def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


async def test_exec_url_as_received(api: KubeApi, sandbox: Sandbox) -> None:
    before = len(sandbox.requests())
    await run_exec(api, solo("echo 'a b&c'"))
    recorded = [r for r in sandbox.requests()[before:] if "/exec" in r.path_qs]
    assert len(recorded) == 1
    parts = urlsplit(recorded[0].path_qs)
    assert parts.path == "/api/v1/namespaces/conf/pods/solo/exec"
    assert parse_qs(parts.query) == {
        "command": ["sh", "-c", "echo 'a b&c'"],
        "container": ["main"],
        "stdout": ["true"],
        "stderr": ["true"],
    }
    assert sandbox.token is not None and sandbox.token not in recorded[0].path_qs
    assert recorded[0].user_agent.startswith("podmagic/")


# -- a scripted server: what the sandbox never does -------------------------------------------


Script = Callable[[web.WebSocketResponse, web.Request], Awaitable[None]]


@asynccontextmanager
async def scripted(script: Script, protocol: str = V5) -> AsyncIterator[KubeApi]:
    """A plain-http API server whose exec endpoint plays ``script``; yields a KubeApi for it."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=(protocol,))
        await ws.prepare(request)
        await script(ws, request)
        return ws

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/exec", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    credentials = load_credentials_for(f"http://{host}:{port}")
    try:
        async with KubeApi(credentials, retry=FAST) as client:
            yield client
    finally:
        await runner.cleanup()


def load_credentials_for(server: str) -> Any:
    class Credentials:
        proxy_url = None

        def __init__(self) -> None:
            self.server = server

        def ssl_context(self) -> bool:
            return False

        async def auth_headers(self) -> dict[str, str]:
            return {}

        def invalidate_token(self, used: Any = None) -> None:
            pass

    return Credentials()


def frame(channel: int, payload: bytes | str = b"") -> bytes:
    return bytes([channel]) + (payload.encode() if isinstance(payload, str) else payload)


SPEC = ExecSpec("ns", "pod", "c", ("x",))


async def test_status_in_pieces_and_twice() -> None:
    async def script(ws: web.WebSocketResponse, request: web.Request) -> None:
        await ws.send_bytes(frame(1))
        await ws.send_bytes(frame(7, "unknown channel"))
        await ws.send_bytes(frame(1, "hello\n"))
        await ws.send_bytes(frame(3, '{"metadata":{},"status":"Fail'))
        await ws.send_bytes(
            frame(
                3,
                'ure","reason":"NonZeroExitCode","details":{"causes":'
                '[{"reason":"Other","message":"x"},'
                '{"reason":"ExitCode","message":"7"}]}}',
            )
        )
        await ws.send_bytes(frame(3, '{"metadata":{},"status":"Success"}'))
        await ws.close()

    async with scripted(script) as client:
        outcome = await run_exec(client, SPEC)
    assert outcome.exit_code == 7
    assert outcome.stdout == b"hello\n"


@pytest.mark.parametrize("ending", ["clean", "1011", "abort"])
async def test_no_status_is_stream_lost(ending: str) -> None:
    async def script(ws: web.WebSocketResponse, request: web.Request) -> None:
        await ws.send_bytes(frame(1, "partial"))
        await ws.send_bytes(frame(3))  # an empty status is no status (kubectl says success)
        if ending == "clean":
            await ws.close()
        elif ending == "1011":
            await ws.close(code=1011, message=b"backend went away")
        else:
            assert request.transport is not None
            request.transport.abort()

    async with scripted(script) as client:
        with pytest.raises(StreamLostError) as caught:
            await run_exec(client, SPEC)
    detail = {
        "clean": "without an exit status",
        "1011": "close code 1011: backend went away",
        "abort": "(1006)",
    }[ending]
    assert detail in str(caught.value)
    partial = partial_outcome(caught.value)
    assert partial is not None and partial.stdout == b"partial"


async def test_unreachable_exec_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = f"http://127.0.0.1:{port}"
    async with KubeApi(load_credentials_for(server), retry=FAST) as client:
        with pytest.raises(HandshakeError) as caught:
            await run_exec(client, SPEC)
    assert caught.value.http_status == 0  # no HTTP answer at all
    assert f"connection refused by {server}" in str(caught.value)


def test_interpret_status() -> None:
    assert interpret_status({"metadata": {}, "status": "Success"}) == (0, None)
    failure = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "message": "m",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    assert interpret_status(failure) == (3, None)
    internal = {"status": "Failure", "reason": "InternalError", "message": "boom"}
    assert interpret_status(internal) == (None, "boom")
    no_cause = {"status": "Failure", "reason": "NonZeroExitCode", "message": "odd"}
    assert interpret_status(no_cause) == (None, "odd")


async def test_callback_errors_propagate_unwrapped(api: KubeApi, sandbox: Sandbox) -> None:
    def on_output(channel: int, chunk: bytes) -> None:
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        await run_exec(api, solo("echo x; exec sleep 1000", stdin=b""), on_output=on_output)

    async def no_exec_active() -> bool:
        return (await anyio.to_thread.run_sync(sandbox.exec_stats))["active"] == 0

    await await_until(no_exec_active, what="the exec ended after its callback raised")


def _kubeconfig_variant(sandbox: Sandbox, tmp_path: Path, cluster: dict[str, Any]) -> Path:
    assert sandbox.kubeconfig is not None
    document = yaml.safe_load(sandbox.kubeconfig.read_text(encoding="utf-8"))
    document["clusters"][0]["cluster"] = {"server": sandbox.url, **cluster}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


async def test_insecure_skip_tls_verify(sandbox: Sandbox, tmp_path: Path) -> None:
    kubeconfig = _kubeconfig_variant(sandbox, tmp_path, {"insecure-skip-tls-verify": True})
    async with KubeApi(load_credentials(kubeconfig=kubeconfig)) as client:
        outcome = await run_exec(client, solo("echo insecure"))
    assert outcome.stdout == b"insecure\n"


async def test_untrusted_certificate(sandbox: Sandbox, tmp_path: Path) -> None:
    other_ca = generate_certificates().ca_pem
    kubeconfig = _kubeconfig_variant(
        sandbox, tmp_path, {"certificate-authority-data": base64.b64encode(other_ca).decode()}
    )
    async with KubeApi(load_credentials(kubeconfig=kubeconfig)) as client:
        started = anyio.current_time()
        with pytest.raises(HandshakeError) as caught:
            await run_exec(client, solo("true"))
    assert anyio.current_time() - started < 1.0  # not retried
    assert caught.value.http_status == 0
    assert f"certificate verify failed for {sandbox.url}" in str(caught.value)
    assert "check certificate-authority in your kubeconfig" in str(caught.value)


class _PlainContextCredentials:
    """Credentials whose SSL context is a plain ``ssl.SSLContext`` trusting ``ca_pem``: it
    does nothing about ``tls-server-name`` itself, so only the client can present that name."""

    def __init__(self, credentials: Any, ca_pem: bytes) -> None:
        self._credentials = credentials
        self._context = ssl.create_default_context(cadata=ca_pem.decode())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._credentials, name)

    def ssl_context(self) -> ssl.SSLContext:
        return self._context


@pytest.fixture
def named_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox reached at 127.0.0.1 whose certificate is valid for ``api.internal`` only."""
    own = Sandbox(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: named}\n"
        "spec: {containers: [{name: main, image: busybox}]}\n",
        kubeconfig=tmp_path / "kc",
    )
    own.certificates = generate_certificates(("api.internal",))
    with own:
        yield own


async def test_tls_server_name_is_presented_for_rest_and_exec(
    named_sandbox: Sandbox, tmp_path: Path
) -> None:
    assert named_sandbox.ca_pem is not None
    kubeconfig = _kubeconfig_variant(
        named_sandbox,
        tmp_path,
        {
            "certificate-authority-data": base64.b64encode(named_sandbox.ca_pem).decode(),
            "tls-server-name": "api.internal",
        },
    )
    credentials = _PlainContextCredentials(
        load_credentials(kubeconfig=kubeconfig), named_sandbox.ca_pem
    )
    async with KubeApi(credentials) as client:  # type: ignore[arg-type]
        pod = await client.get_pod("default", "named")
        outcome = await run_exec(
            client, ExecSpec("default", "named", "main", ("sh", "-c", "echo named"))
        )
    assert pod is not None and pod["metadata"]["name"] == "named"
    assert outcome.stdout == b"named\n"


class _StuckLogin:
    """Credentials whose token never comes (a login plugin waiting for a person)."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials

    def __getattr__(self, name: str) -> Any:
        return getattr(self._credentials, name)

    async def auth_headers(self) -> dict[str, str]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    def credential_source(self) -> str:
        return 'exec credential plugin "stuck-login" of user "u"'


async def test_exec_upgrade_waits_for_credentials_within_the_request_policy_limit(
    sandbox: Sandbox,
) -> None:
    credentials = _StuckLogin(load_credentials(kubeconfig=sandbox.kubeconfig))
    async with KubeApi(credentials, credentials_timeout=0.2) as client:  # type: ignore[arg-type]
        with anyio.fail_after(20), pytest.raises(ConfigError) as caught:
            await run_exec(client, solo("true"))
    assert str(caught.value).startswith(
        "exec in pod conf/solo: the timeout of 0.2s passed while waiting for the exec "
        'credential plugin "stuck-login" of user "u", which was stopped;'
    )
