"""The REST client: reads, pagination, retries, and one-line errors for unreachable servers."""

from __future__ import annotations

import base64
import copy
import errno
import pickle
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, parse_qsl, urlsplit

import anyio
import pytest
import yaml
from aiohttp import web

import podmagic
from podmagic import _kubeapi as kubeapi_module
from podmagic._credentials import load_credentials
from podmagic._errors import ApiError, ConfigError, RequestTimeoutError
from podmagic._kubeapi import Answer, KubeApi, Reach, RetryPolicy, Unreachable, parse_retry_after
from podmagic.sandbox import Sandbox
from podmagic.sandbox._tls import generate_certificates

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[KubeApi]:
    async with KubeApi(load_credentials(kubeconfig=sandbox.kubeconfig)) as client:
        yield client


@pytest.fixture
def unthrottle(sandbox: Sandbox) -> Iterator[None]:
    """Whatever a test throttles is released afterwards, so later tests are not slowed."""
    try:
        yield
    finally:
        sandbox.throttle(0)


def fake_api(credentials: FakeCredentials, retry: RetryPolicy | None = None) -> KubeApi:
    return KubeApi(cast(Any, credentials), retry=retry)


class FakeCredentials:
    """Just what KubeApi uses of ClusterCredentials, with a token that changes on invalidate."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.proxy_url: str | None = None
        self.tls_server_name: str | None = None
        self.token = "first"
        self.invalidated: list[dict[str, str] | None] = []

    def ssl_context(self) -> bool:
        return False

    async def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def invalidate_token(self, used: dict[str, str] | None = None) -> None:
        self.invalidated.append(used)
        self.token = "second"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """A throwaway HTTP server in the test's own loop; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def write_kubeconfig(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- reads ------------------------------------------------------------------------------------


async def test_list_pods_with_selectors(api: KubeApi) -> None:
    web_pods = await api.list_pods("conf", label_selector="app=web")
    assert len(web_pods) == 3
    assert all(p["metadata"]["labels"]["app"] == "web" for p in web_pods)

    tiers = await api.list_pods("conf", label_selector="tier in (frontend,backend)")
    assert {p["metadata"]["labels"]["app"] for p in tiers} == {"web", "db"}
    assert len(tiers) == 5

    solo = await api.list_pods("conf", field_selector="metadata.name=solo")
    assert [p["metadata"]["name"] for p in solo] == ["solo"]

    everywhere = await api.list_pods(None, label_selector="app=solo")
    assert ("conf", "solo") in {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in everywhere
    }


async def test_list_pods_bad_selector_is_an_api_error(api: KubeApi) -> None:
    with pytest.raises(ApiError) as caught:
        await api.list_pods("conf", label_selector="app in (")
    assert caught.value.status == 400
    assert "list pods in namespace conf" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


BIG = """
apiVersion: v1
kind: Namespace
metadata: {name: big}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: many, namespace: big}
spec:
  replicas: 600
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      containers: [{name: c, image: busybox:1.36}]
"""


async def test_list_pods_paginates(tmp_path: Path) -> None:
    with Sandbox(BIG, kubeconfig=tmp_path / "kubeconfig") as big:
        async with KubeApi(load_credentials(kubeconfig=big.kubeconfig)) as client:
            pods = await client.list_pods("big", label_selector="app=many")
            names = {p["metadata"]["name"] for p in pods}
            assert len(pods) == len(names) == 600
            assert len(await client.list_pods(None)) == 600
        lists = [
            urlsplit(r.path_qs)
            for r in big.requests()
            if r.path_qs.startswith("/api/v1/namespaces/big/pods")
        ]
    assert len(lists) == 2
    first, second = (parse_qs(u.query) for u in lists)
    assert first == {"labelSelector": ["app=many"], "limit": ["500"]}
    assert second["limit"] == ["500"] and second["continue"]


async def test_get_pod_and_namespace(api: KubeApi) -> None:
    pod = await api.get_pod("conf", "solo")
    assert pod is not None and pod["metadata"]["name"] == "solo"
    assert await api.get_pod("conf", "no-such-pod") is None
    assert await api.get_pod("no-such-namespace", "solo") is None

    namespace = await api.get_namespace("conf")
    assert namespace is not None and namespace["metadata"]["name"] == "conf"
    assert await api.get_namespace("no-such-namespace") is None
    assert "conf" in {n["metadata"]["name"] for n in await api.list_namespaces()}


async def test_get_workload(api: KubeApi) -> None:
    deployment = await api.get_workload("Deployment", "conf", "web")
    assert deployment is not None
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    statefulset = await api.get_workload("sts", "conf", "db")
    assert statefulset is not None and statefulset["kind"] == "StatefulSet"
    assert await api.get_workload("Deployment", "conf", "nope") is None
    assert await api.get_workload("job", "conf", "nope") is None
    with pytest.raises(ValueError, match="unsupported workload kind"):
        await api.get_workload("CronJob", "conf", "web")


async def test_workload_paths(sandbox: Sandbox, api: KubeApi) -> None:
    await api.get_workload("ReplicaSet", "conf", "x")
    await api.get_workload("DaemonSet", "conf", "x")
    await api.get_workload("Job", "conf", "x")
    paths = [r.path_qs for r in sandbox.requests()[-3:]]
    assert paths == [
        "/apis/apps/v1/namespaces/conf/replicasets/x",
        "/apis/apps/v1/namespaces/conf/daemonsets/x",
        "/apis/batch/v1/namespaces/conf/jobs/x",
    ]


# -- retries ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("unthrottle")
async def test_429_is_retried_after_retry_after(sandbox: Sandbox, api: KubeApi) -> None:
    sandbox.throttle(1, retry_after=1)
    started = anyio.current_time()
    pod = await api.get_pod("conf", "solo")
    assert pod is not None
    assert anyio.current_time() - started >= 0.95


@pytest.mark.usefixtures("unthrottle")
async def test_retries_stop_at_the_deadline(sandbox: Sandbox, api: KubeApi) -> None:
    sandbox.throttle(5, retry_after=1)
    started = anyio.current_time()
    policy = RetryPolicy(deadline=started + 0.5)
    with pytest.raises(ApiError) as caught:
        await api.get_json(
            "/api/v1/namespaces/conf/pods/solo", what="get pod conf/solo", retry=policy
        )
    # The server asked for 1 s: waiting would pass the deadline, so no wait at all.
    assert anyio.current_time() - started < 0.4
    assert caught.value.status == 429
    assert "try again later" in str(caught.value)


async def test_500_is_retried_only_up_to_attempts() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(status_body(500, "InternalError", "etcd is sad"), status=500)

    async with serve(handler) as url, fake_api(FakeCredentials(url), FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_json("/api/v1/namespaces", what="list namespaces")
    assert calls == 3
    assert caught.value.status == 500
    assert str(caught.value).startswith(
        "list namespaces failed: etcd is sad (HTTP 500 InternalError)"
    )


async def test_503_then_success() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls < 3:
            return web.Response(status=503, text="<html>bad gateway</html>")
        return web.json_response({"kind": "NamespaceList", "items": [], "metadata": {}})

    async with serve(handler) as url, fake_api(FakeCredentials(url), FAST) as client:
        assert await client.list_namespaces() == []
    assert calls == 3


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        message = 'pods is forbidden: User "x" cannot list resource "pods"'
        return web.json_response(status_body(403, "Forbidden", message), status=403)

    async with serve(handler) as url, fake_api(FakeCredentials(url), FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.list_pods("demo")
    assert calls == 1
    assert caught.value.status == 403 and caught.value.reason == "Forbidden"
    assert 'cannot list resource "pods"' in str(caught.value)


async def test_401_refreshes_the_token_once() -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer second":
            return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)
        return web.json_response({"metadata": {"name": "conf"}})

    credentials = FakeCredentials("")
    async with serve(handler) as url:
        credentials.server = url
        async with fake_api(credentials, FAST) as client:
            assert await client.get_namespace("conf") == {"metadata": {"name": "conf"}}
    assert seen == ["Bearer first", "Bearer second"]
    assert credentials.invalidated == [{"Authorization": "Bearer first"}]


async def test_401_twice_is_an_error() -> None:
    calls = 0

    async def handler(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response(status_body(401, "Unauthorized", "Unauthorized"), status=401)

    async with serve(handler) as url, fake_api(FakeCredentials(url), FAST) as client:
        with pytest.raises(ApiError) as caught:
            await client.get_pod("conf", "solo")
    assert calls == 2
    assert caught.value.status == 401
    assert "Bearer" not in str(caught.value)


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
    for retry, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)):
        for _ in range(20):
            assert ceiling / 2 <= policy.delay(retry) <= ceiling
    assert 2.0 <= policy.delay(1, retry_after=2) <= 2.2
    assert policy.delay(1, retry_after=1000) <= policy.max_retry_after * 1.1
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# -- unreachable or untrusted servers ---------------------------------------------------------


async def test_wrong_certificate_authority(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sandbox.kubeconfig is not None
    document = yaml.safe_load(sandbox.kubeconfig.read_text(encoding="utf-8"))
    other_ca = generate_certificates().ca_pem
    document["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        other_ca
    ).decode()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", document)
    connections: list[Any] = []
    make_socket = kubeapi_module._socket_factory

    def counting_socket_factory(addr_info: Any) -> socket.socket:
        connections.append(addr_info)
        return make_socket(addr_info)

    monkeypatch.setattr(kubeapi_module, "_socket_factory", counting_socket_factory)
    async with KubeApi(load_credentials(kubeconfig=kubeconfig)) as client:
        with pytest.raises(ConfigError) as caught:
            await client.get_pod("conf", "solo")
    assert len(connections) == 1  # a certificate problem is not retried
    message = str(caught.value)
    assert f"certificate verify failed for {sandbox.url}" in message
    assert "check certificate-authority in your kubeconfig" in message
    assert "\n" not in message
    assert sandbox.token is not None and sandbox.token not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_connection_refused(tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{free_port()}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": server}}],
        "users": [{"name": "gone", "user": {}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "gone"}}],
    }
    credentials = load_credentials(kubeconfig=write_kubeconfig(tmp_path / "kc", document))
    async with KubeApi(credentials, retry=FAST) as client:
        with pytest.raises(ConfigError) as caught:
            await client.list_pods("default")
    message = str(caught.value)
    assert message.startswith(f"list pods in namespace default: connection refused by {server}")
    assert "server address in your kubeconfig" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_unknown_host() -> None:
    credentials = FakeCredentials("http://no-such-host.invalid:6443")
    async with fake_api(credentials, RetryPolicy(attempts=1)) as client:
        with pytest.raises(ConfigError) as caught:
            await client.list_namespaces()
    assert (
        "cannot resolve the host no-such-host.invalid of http://no-such-host.invalid:6443"
        in str(caught.value)
    )


# -- exec URLs --------------------------------------------------------------------------------


def test_exec_url(sandbox: Sandbox) -> None:
    client = KubeApi(load_credentials(kubeconfig=sandbox.kubeconfig))
    url = client.exec_url(
        "conf",
        "web-0",
        container="app",
        command=["sh", "-c", "echo a&b=c ü +"],
        stdin=False,
        stdout=True,
        stderr=True,
        tty=False,
    )
    parts = urlsplit(url)
    assert parts.scheme == "wss" and parts.netloc == urlsplit(sandbox.url).netloc
    assert parts.path == "/api/v1/namespaces/conf/pods/web-0/exec"
    assert parse_qsl(parts.query) == [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "echo a&b=c ü +"),
        ("container", "app"),
        ("stderr", "true"),
        ("stdout", "true"),
    ]
    assert " " not in url and "ü" not in url

    tty = client.exec_url(
        "conf",
        "web-0",
        container="app",
        command=["bash"],
        stdin=True,
        stdout=True,
        stderr=True,
        tty=True,
    )
    assert parse_qsl(urlsplit(tty).query) == [
        ("command", "bash"),
        ("container", "app"),
        ("stdin", "true"),
        ("stdout", "true"),
        ("tty", "true"),
    ]
    with pytest.raises(ValueError):
        client.exec_url(
            "conf",
            "p",
            container="c",
            command=[],
            stdin=False,
            stdout=True,
            stderr=False,
            tty=False,
        )


def test_exec_url_plain_http_and_prefix() -> None:
    client = fake_api(FakeCredentials("http://proxy.example:8001/k8s/clusters/c-1"))
    url = client.exec_url(
        "ns",
        "p",
        container="c",
        command=["true"],
        stdin=False,
        stdout=True,
        stderr=False,
        tty=False,
    )
    assert url == (
        "ws://proxy.example:8001/k8s/clusters/c-1/api/v1/namespaces/ns/pods/p/exec"
        "?command=true&container=c&stdout=true"
    )
    assert client.websocket_ssl() is None


# -- the request policy, for any kind of attempt (REST reads and exec upgrades share it) ------


class Refused(Exception):
    """What the tests' ``fail`` builds: the words request() chose, kept apart."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


async def test_request_applies_one_policy_to_any_attempt() -> None:
    credentials = FakeCredentials("http://127.0.0.1:1")
    answers = [
        Answer[str](401),
        Answer[str](503),
        Answer[str](429, retry_after=0.01),
        Answer(101, value="upgraded"),
    ]
    seen: list[str] = []

    async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[str]:
        seen.append(headers["Authorization"])
        return answers[len(seen) - 1]

    async with fake_api(credentials, RetryPolicy(attempts=5, base_delay=0.01)) as client:
        answer = await client.request("exec in pod conf/solo", attempt, noun="exec upgrade")
    assert answer.value == "upgraded"
    # One fresh token after the 401, then backoff for the 503 and the 429.
    assert seen == ["Bearer first", "Bearer second", "Bearer second", "Bearer second"]
    assert credentials.invalidated == [{"Authorization": "Bearer first"}]


async def test_request_retries_an_unreachable_attempt_then_words_it_with_fail() -> None:
    calls = 0

    async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[None]:
        nonlocal calls
        calls += 1
        raise Unreachable(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))

    async with fake_api(FakeCredentials("http://127.0.0.1:1"), FAST) as client:
        with pytest.raises(Refused) as caught:
            await client.request("exec in pod conf/solo", attempt, fail=Refused)
    assert calls == FAST.attempts
    assert caught.value.message == "connection refused by http://127.0.0.1:1"
    assert "check that the cluster is running" in caught.value.hint


async def test_request_timeout_names_the_step_and_is_not_retried() -> None:
    calls = 0

    async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[None]:
        nonlocal calls
        calls += 1
        reach.advance("answer")  # sent: the server says nothing back
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    credentials = cast(Any, FakeCredentials("http://127.0.0.1:1"))
    async with KubeApi(credentials, retry=FAST, read_timeout=0.05) as client:
        with pytest.raises(Refused) as caught:
            await client.request(
                "exec in pod conf/solo", attempt, noun="exec upgrade", fail=Refused
            )
    assert calls == 1
    assert caught.value.message == (
        "http://127.0.0.1:1 accepted the exec upgrade but sent no answer within 0.05s"
    )


def test_request_timeout_error_is_public_and_pickles_with_its_timeout() -> None:
    assert podmagic.RequestTimeoutError is RequestTimeoutError
    assert "RequestTimeoutError" in podmagic.__all__
    error = RequestTimeoutError(
        "get pod ns/p: the timeout of 2s passed before https://k answered the request",
        timeout=2,
        hint="allow more time with --timeout (timeout=...)",
    )
    assert isinstance(error, podmagic.PodmagicError)
    assert not isinstance(error, ConfigError)
    for clone in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(clone) is RequestTimeoutError
        assert str(clone) == str(error) and clone.timeout == 2 and clone.hint == error.hint
