"""Client CPU per exec for WebSocket stacks, on the sandbox's fan-out of ``hostname``.

An evaluation, not part of ``benchmarks.run``: is a faster WebSocket client worth adopting
for the exec transport? Each stack runs the same fan-out (``PODS`` pods, ``hostname``, 50 at
once) against one sandbox in a process of its own; every measurement is a fresh process
(``--worker STACK``) that warms up with one exec, then times the fan-out and reads its own
CPU time (user+system, ``getrusage``). Repetitions are interleaved and the median is shown.

Stacks:

``podmagic``           ``podmagic._transport.run_exec`` as shipped (its TLS context resumes
                       sessions), under a semaphore: what the engine does per exec
``websockets``         bare ``websockets`` connections (the benchmark's floor), plain TLS context
``aiohttp``            ``ClientSession.ws_connect`` (its C frame reader), one pooled session
``picows``             ``picows.ws_connect`` with a listener (Cython frame parser and transport)

All but ``podmagic`` use the credentials' plain ``ssl.SSLContext``, so that they differ
only in the WebSocket layer; ``websockets-resume`` and ``picows-resume`` use podmagic's
session-resuming context as ``podmagic`` does (aiohttp and aiofastnet accept only a real
``SSLContext``, so ``picows-resume`` runs on asyncio's TLS transport), and ``picows-asyncio``
runs picows on asyncio's own TLS transport instead of its default, aiofastnet. ``picows`` is not a dependency: run with it importable
(``pip install --target DIR picows`` and ``PICOWS_PATH=DIR``), else it is skipped.

    .venv/bin/python -m benchmarks.ws_stacks [--pods 100] [--repeat 5] [--insecure-http]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

from .cluster import NAMESPACE, SandboxProcess, pod_names

SUBPROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CONCURRENCY = 50
STACKS = (
    "podmagic",
    "websockets",
    "websockets-resume",
    "aiohttp",
    "picows",
    "picows-resume",
    "picows-asyncio",
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _urls(api: Any, names: list[str], argv: list[str]) -> list[str]:
    return [
        api.exec_url(
            NAMESPACE,
            pod,
            container="main",
            command=argv,
            stdin=False,
            stdout=True,
            stderr=True,
            tty=False,
        )
        for pod in names
    ]


async def _podmagic(api: Any, names: list[str], argv: list[str]) -> int:
    from podmagic._transport import ExecSpec, run_exec

    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(pod: str) -> int:
        async with limit:
            outcome = await run_exec(api, ExecSpec(NAMESPACE, pod, "main", tuple(argv)))
            return 1 if outcome.exit_code == 0 and outcome.stdout else 0

    return sum(await asyncio.gather(*(one(pod) for pod in names)))


def _context(api: Any, resume: bool) -> Any:
    """The TLS context (``None`` for a plain-http sandbox, ``serve --insecure-http``)."""
    return api.websocket_ssl() if resume else (api.credentials.ssl_context() or None)


async def _websockets(api: Any, names: list[str], argv: list[str], resume: bool = False) -> int:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    context = _context(api, resume)
    headers = await api.credentials.auth_headers()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(url: str) -> int:
        status, out = b"", b""
        async with (
            limit,
            connect(
                url,
                ssl=context,
                additional_headers=headers,
                subprotocols=[Subprotocol(p) for p in SUBPROTOCOLS],
                compression=None,
                max_size=None,
                ping_interval=20,
                ping_timeout=20,
            ) as ws,
        ):
            try:
                while True:
                    frame = await ws.recv(decode=False)
                    if frame[:1] == b"\x01":
                        out += frame[1:]
                    elif frame[:1] == b"\x03":
                        status += frame[1:]
            except ConnectionClosed:
                pass
        return 1 if b'"Success"' in status and out else 0

    return sum(await asyncio.gather(*(one(url) for url in _urls(api, names, argv))))


async def _aiohttp(api: Any, names: list[str], argv: list[str]) -> int:
    import aiohttp

    context = _context(api, False)
    headers = await api.credentials.auth_headers()
    limit = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(ssl=context or False, limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> int:
            status, out = b"", b""
            async with (
                limit,
                session.ws_connect(
                    url.replace("wss://", "https://", 1).replace("ws://", "http://", 1),
                    protocols=SUBPROTOCOLS,
                    headers=headers,
                    heartbeat=20,
                    compress=0,
                    max_msg_size=0,
                ) as ws,
            ):
                while True:
                    message = await ws.receive()
                    if message.type is not aiohttp.WSMsgType.BINARY:
                        break
                    frame = message.data
                    if frame[:1] == b"\x01":
                        out += frame[1:]
                    elif frame[:1] == b"\x03":
                        status += frame[1:]
            return 1 if b'"Success"' in status and out else 0

        return sum(await asyncio.gather(*(one(url) for url in _urls(api, names, argv))))


async def _picows(
    api: Any, names: list[str], argv: list[str], resume: bool = False, fastnet: bool = True
) -> int:
    import picows

    context = _context(api, resume)
    headers = dict(await api.credentials.auth_headers())
    headers["Sec-WebSocket-Protocol"] = ", ".join(SUBPROTOCOLS)
    limit = asyncio.Semaphore(CONCURRENCY)

    class Listener(picows.WSListener):  # type: ignore[misc]
        def __init__(self) -> None:
            self.out = bytearray()
            self.status = bytearray()

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == picows.WSMsgType.BINARY:
                payload = frame.get_payload_as_memoryview()
                if payload[:1] == b"\x01":
                    self.out += payload[1:]
                elif payload[:1] == b"\x03":
                    self.status += payload[1:]
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

    async def one(url: str) -> int:
        async with limit:
            transport, listener = await picows.ws_connect(
                Listener,
                url,
                ssl_context=context,
                extra_headers=headers,
                enable_auto_ping=True,
                auto_ping_idle_timeout=20,
                auto_ping_reply_timeout=20,
                max_frame_size=1 << 30,
                use_aiofastnet=fastnet,
            )
            await transport.wait_disconnected()
        return 1 if b'"Success"' in listener.status and listener.out else 0

    return sum(await asyncio.gather(*(one(url) for url in _urls(api, names, argv))))


RUNNERS = {
    "podmagic": _podmagic,
    "websockets": _websockets,
    "aiohttp": _aiohttp,
    "picows": _picows,
    "websockets-resume": functools.partial(_websockets, resume=True),
    # aiofastnet's TLS takes only a real SSLContext: resuming runs on asyncio's.
    "picows-resume": functools.partial(_picows, resume=True, fastnet=False),
    "picows-asyncio": functools.partial(_picows, fastnet=False),
}


def worker(stack: str, kubeconfig: str, pods: int) -> dict[str, float]:
    from podmagic._credentials import load_credentials
    from podmagic._kubeapi import KubeApi

    runner = RUNNERS[stack]
    names = pod_names(pods)

    async def main(names: list[str]) -> tuple[int, float, float]:
        async with KubeApi(load_credentials(kubeconfig=kubeconfig)) as api:
            await runner(api, names[:1], ["hostname"])  # imports and first use, untimed
            began, cpu = time.perf_counter(), _cpu()
            ok = await runner(api, names, ["hostname"])
            return ok, time.perf_counter() - began, _cpu() - cpu

    ok, wall, cpu = asyncio.run(main(names))
    return {"ok": ok, "wall_s": wall, "cpu_ms_per_exec": cpu * 1000 / pods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stacks", nargs="*", default=list(STACKS))
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP, to see what the WebSocket layers cost without TLS",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.kubeconfig, args.pods)))
        return
    figures: dict[str, list[dict[str, float]]] = {stack: [] for stack in args.stacks}
    options = ("--insecure-http",) if args.insecure_http else ()
    with SandboxProcess(args.pods, options=options) as sandbox:
        for _ in range(args.repeat):
            for stack in args.stacks:
                env = dict(os.environ)
                if stack.startswith("picows"):
                    if not os.environ.get("PICOWS_PATH"):
                        continue
                    env["PYTHONPATH"] = os.environ["PICOWS_PATH"]
                done = subprocess.run(
                    [sys.executable, "-m", "benchmarks.ws_stacks", "--worker", stack]
                    + ["--kubeconfig", str(sandbox.kubeconfig), "--pods", str(args.pods)],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
                if done.returncode != 0:
                    print(f"{stack}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                figures[stack].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"| stack | ok / {args.pods} | client CPU per exec, ms (median; min–max) | wall, s |")
    print("|---|---|---|---|")
    for stack, runs in figures.items():
        if not runs:
            continue
        cpu = [run["cpu_ms_per_exec"] for run in runs]
        print(
            f"| {stack} | {min(int(run['ok']) for run in runs)} "
            f"| {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) "
            f"| {statistics.median(run['wall_s'] for run in runs):.3f} |"
        )


if __name__ == "__main__":
    main()
