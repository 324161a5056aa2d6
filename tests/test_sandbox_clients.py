"""Other clients against the sandbox's REST API: kr8s, kubernetes_asyncio and kubectl's
wire habits (trailing slashes, protobuf bodies, PATCH flavours, the kinds ops notebooks use).

Each test fails on a sandbox that lacks what it checks; the clients are required under CI.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from conftest import KubectlRunner, missing_tool
from sandbox_client import api_client

from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.anyio


def _required(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        missing_tool(f"the {module} package is not installed (pip install '.[test]')")
        raise  # unreachable: missing_tool fails or skips


@pytest.fixture
def kr8s() -> ModuleType:
    return _required("kr8s")


@pytest.fixture(scope="module")
def kubectl133(kubectl_factory: Any) -> KubectlRunner:
    runner: KubectlRunner = kubectl_factory("1.33")
    return runner


@pytest.fixture(params=["1.30", "1.33"], scope="module")
def kubectl(request: pytest.FixtureRequest, kubectl_factory: Any) -> KubectlRunner:
    runner: KubectlRunner = kubectl_factory(request.param)
    return runner


@pytest.fixture
def scratch(sandbox: Sandbox) -> Iterator[str]:
    """A namespace of its own for one test, removed afterwards."""
    assert sandbox.cluster is not None
    name = "clients"
    sandbox.call(sandbox.cluster.add_namespace, name)
    yield name
    sandbox.call(sandbox.cluster.delete_namespace, name)


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return str(result.stdout.decode())


# -- trailing slashes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/version/", None),
        ("/api/", "APIVersions"),
        ("/apis/", "APIGroupList"),
        ("/api/v1/", "APIResourceList"),
        ("/api/v1/namespaces/", "NamespaceList"),
        ("/api/v1/namespaces/conf/pods/", "PodList"),
        ("/api/v1/namespaces/conf/pods/solo/", "Pod"),
        ("/apis/apps/v1/namespaces/conf/statefulsets/", "StatefulSetList"),
    ],
)
async def test_paths_with_a_trailing_slash_are_answered_as_without(
    sandbox: Sandbox, path: str, kind: str | None
) -> None:
    async with api_client(sandbox) as session, session.get(path) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    if kind is None:
        assert body["major"] == "1"
    else:
        assert body["kind"] == kind


async def test_version_with_a_trailing_slash_is_public_like_version(sandbox: Sandbox) -> None:
    async with api_client(sandbox, token=None) as session, session.get("/version/") as response:
        assert response.status == 200


async def test_an_unknown_path_with_a_trailing_slash_is_still_404(sandbox: Sandbox) -> None:
    async with api_client(sandbox) as session:
        for path in ("/api/v1/nothings/", "/nothing/", "/api/v1/namespaces/conf/pods/nope/"):
            async with session.get(path) as response:
                assert response.status == 404, path


async def test_kr8s_reads_version_and_lists_pods(sandbox: Sandbox, kr8s: ModuleType) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(sandbox.kubeconfig))
    assert (await api.version())["minor"] == "33"
    names = [pod.name async for pod in api.get("pods", namespace="conf")]
    assert "solo" in names
    pod = await kr8s.asyncio.objects.Pod.get("solo", namespace="conf", api=api)
    assert pod.status.phase == "Running"


def _json(output: str) -> Any:
    return json.loads(output)


# -- protobuf bodies ----------------------------------------------------------------------------


def test_kubectl_133_creates_a_namespace_sent_as_protobuf(
    sandbox: Sandbox, kubectl133: KubectlRunner
) -> None:
    assert sandbox.cluster is not None
    try:
        created = _json(ok(kubectl133("create", "namespace", "pb-made", "-o", "json")))
        assert created["metadata"]["name"] == "pb-made"
        assert "pb-made" in sandbox.call(lambda: set(sandbox.cluster.namespaces))  # type: ignore[union-attr]
    finally:
        sandbox.call(sandbox.cluster.namespaces.pop, "pb-made", None)


async def test_a_protobuf_body_of_a_kind_not_decoded_is_415_naming_it(sandbox: Sandbox) -> None:
    # The envelope: k8s\0, runtime.Unknown{typeMeta{apiVersion "v1", kind "Binding"}, raw ""}.
    type_meta = b"\x0a\x02v1\x12\x07Binding"
    body = b"k8s\x00" + b"\x0a" + bytes([len(type_meta)]) + type_meta
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    async with (
        api_client(sandbox) as session,
        session.post("/api/v1/namespaces", data=body, headers=headers) as response,
    ):
        assert response.status == 415
        status = await response.json()
    assert status["reason"] == "UnsupportedMediaType"
    assert "does not decode Binding from protobuf" in status["message"]


async def test_a_body_of_an_unknown_media_type_is_415(sandbox: Sandbox) -> None:
    headers = {"Content-Type": "application/cbor"}
    async with (
        api_client(sandbox) as session,
        session.post("/api/v1/namespaces", data=b"\xa0", headers=headers) as response,
    ):
        assert response.status == 415
        assert (await response.json())["reason"] == "UnsupportedMediaType"
