"""The sandbox at scale: 1,000 pods listed whole and in pages, 200 execs at once."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import pytest
from _waiting import await_until

from podmagic.sandbox import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

BIG, PICK = 995, 5
MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: big, namespace: scale}}
spec:
  replicas: {BIG}
  selector: {{matchLabels: {{app: big}}}}
  template:
    metadata: {{labels: {{app: big, tier: web}}}}
    spec: {{containers: [{{name: main, image: "busybox:1.36"}}]}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: pick, namespace: scale}}
spec:
  replicas: {PICK}
  selector: {{matchLabels: {{app: pick}}}}
  template:
    metadata: {{labels: {{app: pick, tier: db}}}}
    spec: {{containers: [{{name: main, image: "busybox:1.36"}}]}}
"""


@pytest.fixture(scope="module")
def big() -> Iterator[Sandbox]:
    started = time.perf_counter()
    with Sandbox(MANIFEST) as running:
        print(
            f"\n[scale] sandbox with {BIG + PICK} pods started in {time.perf_counter() - started:.2f}s"
        )
        yield running


@contextlib.asynccontextmanager
async def api_client(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    assert sandbox.ca_pem is not None
    context = ssl.create_default_context(cadata=sandbox.ca_pem.decode())
    sockets: list[socket.socket] = []

    def socket_factory(address: Any) -> socket.socket:
        family, kind, proto, _, _ = address
        sockets.append(socket.socket(family, kind, proto))
        return sockets[-1]

    connector = aiohttp.TCPConnector(ssl=context, limit=0, socket_factory=socket_factory)
    async with aiohttp.ClientSession(
        base_url=sandbox.url,
        headers={"Authorization": f"Bearer {sandbox.token}"},
        connector=connector,
    ) as session:
        yield session
    await await_until(
        lambda: all(sock.fileno() == -1 for sock in sockets),
        what="every socket of the session closed",
        interval=0.005,
    )


async def list_names(
    session: aiohttp.ClientSession,
    selector: str | None = None,
    limit: int | None = None,
    table: bool = False,
) -> tuple[list[str], int]:
    """Every pod name in namespace ``scale`` (following continue tokens) and the pages it took."""
    seen: list[str] = []
    pages = 0
    token = None
    while True:
        params = {}
        if selector:
            params["labelSelector"] = selector
        if limit:
            params["limit"] = str(limit)
        if token:
            params["continue"] = token
        headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"} if table else {}
        async with session.get(
            "/api/v1/namespaces/scale/pods", params=params, headers=headers
        ) as response:
            assert response.status == 200
            body = await response.json(content_type=None)
        pages += 1
        if table:
            seen += [row["cells"][0] for row in body["rows"]]
        else:
            seen += [item["metadata"]["name"] for item in body["items"]]
        token = body["metadata"].get("continue")
        if not token:
            return seen, pages


async def test_a_thousand_pods_list_whole_and_in_pages(big: Sandbox) -> None:
    expected = sorted(big.pods("scale"))
    assert len(expected) == BIG + PICK == 1000
    async with api_client(big) as session:
        started = time.perf_counter()
        whole, pages = await list_names(session)
        whole_time = time.perf_counter() - started
        assert (whole, pages) == (expected, 1)

        started = time.perf_counter()
        paged, pages = await list_names(session, limit=100)
        paged_time = time.perf_counter() - started
        assert (paged, pages) == (expected, 10)
        assert len(set(paged)) == 1000

        uneven, pages = await list_names(session, limit=333)
        assert (uneven, pages) == (expected, 4)

        started = time.perf_counter()
        table, pages = await list_names(session, limit=500, table=True)  # as kubectl get pods does
        table_time = time.perf_counter() - started
        assert (table, pages) == (expected, 2)

        picks = [f"pick-{index}" for index in range(PICK)]
        assert (await list_names(session, "app=pick"))[0] == picks
        assert (await list_names(session, "tier=db", limit=2)) == (picks, 3)
        assert (await list_names(session, "app!=pick"))[0] == [
            n for n in expected if n.startswith("big-")
        ]
        assert len((await list_names(session, "app=big,tier=web", limit=250))[0]) == BIG
        assert (await list_names(session, "statefulset.kubernetes.io/pod-name in (pick-1,pick-3)"))[
            0
        ] == ["pick-1", "pick-3"]
        assert (await list_names(session, "app=big,tier=db"))[0] == []
        async with session.get("/apis/apps/v1/namespaces/scale/deployments/big") as response:
            status = (await response.json())["status"]
        assert (status["replicas"], status["readyReplicas"]) == (BIG, BIG)
    print(
        f"\n[scale] list 1000 pods: whole {whole_time * 1000:.0f} ms, 10 pages of 100 "
        f"{paged_time * 1000:.0f} ms, Table in 2 pages of 500 {table_time * 1000:.0f} ms"
    )


async def one_exec(session: aiohttp.ClientSession, pod: str) -> tuple[str, bytes, bytes | None]:
    params = [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "sleep 0.5; echo $HOSTNAME"),
        ("stdout", "true"),
        ("stderr", "true"),
    ]
    stdout, status = b"", None
    async with session.ws_connect(
        f"/api/v1/namespaces/scale/pods/{pod}/exec",
        params=params,
        protocols=["v5.channel.k8s.io"],
        autoclose=False,
    ) as ws:
        while (message := await ws.receive(timeout=60)).type is aiohttp.WSMsgType.BINARY:
            if message.data[0] == 1:
                stdout += message.data[1:]
            elif message.data[0] == 3:
                status = message.data[1:]
        assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1000
    return pod, stdout, status


async def test_two_hundred_concurrent_execs(big: Sandbox) -> None:
    pods = sorted(big.pods("scale"))[:200]
    big.reset_exec_stats()
    results: list[tuple[str, bytes, bytes | None]] = []
    async with api_client(big) as session:

        async def run(pod: str) -> None:
            results.append(await one_exec(session, pod))

        started = time.perf_counter()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                for pod in pods:
                    group.start_soon(run, pod)
        elapsed = time.perf_counter() - started
    stats = big.exec_stats()
    assert len(results) == 200
    for pod, stdout, status in results:
        assert stdout == f"{pod}\n".encode(), pod
        assert status is not None and json.loads(status) == {"metadata": {}, "status": "Success"}, (
            pod
        )
    assert stats["total"] == 200
    assert stats["high_water"] >= 150
    print(
        f"\n[scale] 200 concurrent execs (sleep 0.5) in {elapsed:.2f}s; "
        f"exec high-water {stats['high_water']}, total {stats['total']}"
    )
