"""The sandbox's REST API on the wire: auth, discovery, lists, objects, watch, throttling.

A raw aiohttp client checks status codes, headers and bodies exactly; real kubectl and the
official client are covered elsewhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import pytest
from _waiting import await_until
from sandbox_client import api_client

from podmagic._selectors import LabelSelector, SelectorError
from podmagic.sandbox import ManifestError, Sandbox
from podmagic.sandbox._behaviour import BehaviourError

pytestmark = pytest.mark.anyio

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
KUBECTL_ACCEPT = f"{TABLE},application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
SUFFIX = "[bcdfghjklmnpqrstvwxz2456789]"
CONF_PODS = ["db-0", "db-1", "done", "multi", "multi-default", "pending", "solo", "unready"]


# -- helpers -----------------------------------------------------------------------------------


async def get(session: aiohttp.ClientSession, path: str, **kwargs: Any) -> tuple[int, Any]:
    async with session.get(path, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def send(
    session: aiohttp.ClientSession, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, path, json=body) as response:
        return response.status, await response.json(content_type=None)


def names(body: dict[str, Any]) -> list[str]:
    return [item["metadata"]["name"] for item in body["items"]]


def failure(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


async def exec_output(
    session: aiohttp.ClientSession,
    namespace: str,
    pod: str,
    argv: list[str],
    container: str | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """Run a command; its stdout and the status frame."""
    params = [("command", arg) for arg in argv] + [("stdout", "true"), ("stderr", "true")]
    if container:
        params.append(("container", container))
    stdout, status = b"", None
    async with session.ws_connect(
        f"/api/v1/namespaces/{namespace}/pods/{pod}/exec",
        params=params,
        protocols=["v5.channel.k8s.io"],
    ) as ws:
        async for message in ws:
            channel, payload = message.data[0], message.data[1:]
            if channel == 1:
                stdout += payload
            elif channel == 3:
                status = json.loads(payload)
    assert status is not None, "no status frame"
    return stdout, status


@pytest.fixture
async def conf(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with api_client(sandbox) as session:
        yield session


SMALL = """
apiVersion: v1
kind: Namespace
metadata: {name: t}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: t, labels: {app: a}}
spec:
  containers: [{name: main, image: busybox:1.36}]
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: t, labels: {app: b}}
spec:
  containers: [{name: main, image: busybox:1.36}]
"""


@pytest.fixture
def fresh() -> Iterator[Sandbox]:
    """A sandbox of its own (namespace ``t``, pods ``a`` and ``b``) for tests that change it."""
    with Sandbox(SMALL) as running:
        yield running


# -- authentication ----------------------------------------------------------------------------


async def test_missing_or_wrong_token_is_401(sandbox: Sandbox) -> None:
    unauthorized = failure(401, "Unauthorized", "Unauthorized")
    assert sandbox.token
    for token in (None, "wrong", sandbox.token[:-1], sandbox.token + "x"):
        async with api_client(sandbox, token=token) as session:
            for path in (
                "/api/v1/namespaces/conf/pods",
                "/api",
                "/apis/apps/v1",
                "/api/v1/namespaces/conf/pods/solo/exec?command=true&stdout=true",
            ):
                async with session.get(path) as response:
                    assert response.status == 401
                    assert response.headers["Content-Type"].startswith("application/json")
                    assert await response.json() == unauthorized
    # Other schemes are not bearer tokens.
    async with (
        api_client(sandbox, token=None) as session,
        session.get("/api", headers={"Authorization": f"Basic {sandbox.token}"}) as response,
    ):
        assert response.status == 401


async def test_version_and_health_are_anonymous(sandbox: Sandbox) -> None:
    async with api_client(sandbox, token=None) as session:
        code, body = await get(session, "/version")
        assert code == 200
        assert body["gitVersion"] == "v1.33.0+podmagic-sandbox"
        assert (body["major"], body["minor"], body["platform"]) == ("1", "33", "linux/amd64")
        for path in ("/healthz", "/livez", "/readyz"):
            async with session.get(path) as response:
                assert (response.status, await response.text()) == (200, "ok")


# -- discovery ---------------------------------------------------------------------------------


async def test_discovery_documents(conf: aiohttp.ClientSession) -> None:
    code, body = await get(conf, "/api")
    assert (code, body) == (
        200,
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            ],
        },
    )

    code, body = await get(conf, "/apis")
    assert code == 200 and body["kind"] == "APIGroupList"
    groups = {group["name"]: group for group in body["groups"]}
    assert sorted(groups) == [
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "batch",
        "events.k8s.io",
        "rbac.authorization.k8s.io",
    ]
    for name, group in groups.items():
        version = {"groupVersion": f"{name}/v1", "version": "v1"}
        assert group["versions"] == [version] and group["preferredVersion"] == version

    code, core = await get(conf, "/api/v1")
    assert code == 200 and (core["kind"], core["groupVersion"]) == ("APIResourceList", "v1")
    resources = {r["name"]: r for r in core["resources"]}
    assert sorted(resources) == [
        "configmaps",
        "endpoints",
        "events",
        "namespaces",
        "nodes",
        "pods",
        "pods/exec",
        "pods/log",
        "pods/portforward",
        "replicationcontrollers",
        "secrets",
        "serviceaccounts",
        "services",
    ]
    assert resources["pods"]["shortNames"] == ["po"] and resources["pods"]["kind"] == "Pod"
    assert resources["pods"]["namespaced"] is True
    assert resources["pods/exec"]["kind"] == "PodExecOptions"
    assert sorted(resources["pods/exec"]["verbs"]) == ["create", "get"]
    assert (resources["pods/log"]["kind"], resources["pods/log"]["verbs"]) == ("Pod", ["get"])
    assert resources["namespaces"]["namespaced"] is False and resources["namespaces"][
        "shortNames"
    ] == ["ns"]

    code, apps = await get(conf, "/apis/apps/v1")
    assert code == 200 and apps["groupVersion"] == "apps/v1"
    short = {r["name"]: r.get("shortNames") for r in apps["resources"] if "/" not in r["name"]}
    assert short == {
        "daemonsets": ["ds"],
        "deployments": ["deploy"],
        "replicasets": ["rs"],
        "statefulsets": ["sts"],
    }
    code, batch = await get(conf, "/apis/batch/v1")
    assert code == 200 and [(r["name"], r["kind"]) for r in batch["resources"]] == [
        ("jobs", "Job"),
        ("jobs/status", "Job"),
    ]

    not_found = failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )
    assert await get(conf, "/apis/apps/v2") == (404, not_found)
    assert await get(conf, "/apis/networking.k8s.io/v1") == (404, not_found)


async def test_everything_advertised_is_served(conf: aiohttp.ClientSession) -> None:
    for prefix in ("/api/v1", "/apis/apps/v1", "/apis/batch/v1"):
        _, listing = await get(conf, prefix)
        for resource in listing["resources"]:
            if "/" in resource["name"]:
                continue
            assert "list" in resource["verbs"]
            path = (
                f"{prefix}/namespaces/conf/{resource['name']}"
                if resource["namespaced"]
                else f"{prefix}/{resource['name']}"
            )
            code, body = await get(conf, path)
            assert code == 200, path
            assert body["kind"] == resource["kind"] + "List"
            assert body["apiVersion"] == listing["groupVersion"]
            assert all(item["kind"] == resource["kind"] for item in body["items"])


# -- listing pods ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", "web"),
        ("tier=backend", ["db-0", "db-1"]),
        ("app in (multi,solo)", ["multi", "multi-default", "solo"]),
        ("app=batch,!tier", ["done", "pending"]),
        ("statefulset.kubernetes.io/pod-name=db-1", ["db-1"]),
        ("app=nothing", []),
    ],
)
async def test_label_selectors(conf: aiohttp.ClientSession, selector: str, expected: Any) -> None:
    code, body = await get(conf, "/api/v1/namespaces/conf/pods", params={"labelSelector": selector})
    assert code == 200 and body["kind"] == "PodList" and body["apiVersion"] == "v1"
    if expected == "web":
        assert len(body["items"]) == 3
        assert all(re.fullmatch(f"web-{SUFFIX}{{10}}-{SUFFIX}{{5}}", name) for name in names(body))
    else:
        assert names(body) == expected


@pytest.mark.parametrize(
    ("path", "selector", "expected"),
    [
        ("/api/v1/namespaces/conf/pods", "status.phase=Pending", ["pending"]),
        ("/api/v1/namespaces/conf/pods", "status.phase!=Running", ["done", "pending"]),
        ("/api/v1/namespaces/conf/pods", "metadata.name=solo", ["solo"]),
        ("/api/v1/pods", "metadata.namespace=conf,metadata.name==db-0", ["db-0"]),
        ("/api/v1/pods", "metadata.namespace!=conf", []),
    ],
)
async def test_field_selectors(
    conf: aiohttp.ClientSession, path: str, selector: str, expected: list[str]
) -> None:
    code, body = await get(conf, path, params={"fieldSelector": selector})
    assert (code, names(body)) == (200, expected)


async def test_field_selector_on_node_name(conf: aiohttp.ClientSession) -> None:
    _, solo = await get(conf, "/api/v1/namespaces/conf/pods/solo")
    node = solo["spec"]["nodeName"]
    _, body = await get(
        conf, "/api/v1/namespaces/conf/pods", params={"fieldSelector": f"spec.nodeName={node}"}
    )
    assert "solo" in names(body)
    assert {item["spec"]["nodeName"] for item in body["items"]} == {node}


async def test_bad_label_selector_is_400_with_the_parser_message(
    conf: aiohttp.ClientSession,
) -> None:
    for selector in ("a b", "app in web", "app=(x"):
        with pytest.raises(SelectorError) as parsed:
            LabelSelector.parse(selector)
        code, body = await get(
            conf, "/api/v1/namespaces/conf/pods", params={"labelSelector": selector}
        )
        assert (code, body) == (400, failure(400, "BadRequest", str(parsed.value)))
    _, body = await get(conf, "/api/v1/pods", params={"labelSelector": "a b"})
    assert (
        body["message"]
        == "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
    )


async def test_unsupported_field_is_400(conf: aiohttp.ClientSession) -> None:
    code, body = await get(
        conf, "/api/v1/namespaces/conf/pods", params={"fieldSelector": "spec.foo=x"}
    )
    assert (code, body) == (400, failure(400, "BadRequest", "field label not supported: spec.foo"))
    code, body = await get(
        conf,
        "/apis/apps/v1/namespaces/conf/deployments",
        params={"fieldSelector": "spec.replicas=3"},
    )
    assert (code, body) == (
        400,
        failure(400, "BadRequest", "field label not supported: spec.replicas"),
    )


async def test_pagination_covers_every_pod_once(conf: aiohttp.ClientSession) -> None:
    _, everything = await get(conf, "/api/v1/pods")
    expected = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in everything["items"]]
    assert len(expected) >= 11
    for limit in (1, 4, 5, len(expected), len(expected) + 1):
        seen: list[tuple[str, str]] = []
        token: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": str(limit)}
            if token:
                params["continue"] = token
            code, page = await get(conf, "/api/v1/pods", params=params)
            assert code == 200
            assert len(page["items"]) <= limit
            seen += [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in page["items"]]
            pages += 1
            token = page["metadata"].get("continue")
            if not token:
                assert "remainingItemCount" not in page["metadata"]
                break
            assert page["metadata"]["remainingItemCount"] == len(expected) - len(seen)
        assert seen == expected  # same order, no duplicates, nothing missed
        assert pages == -(-len(expected) // limit)


async def test_pagination_survives_changes_between_pages(fresh: Sandbox) -> None:
    def pod(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
        }

    fresh.apply([pod(f"p{index}") for index in range(6)])
    async with api_client(fresh) as session:
        pages = []
        _, page = await get(session, "/api/v1/namespaces/t/pods", params={"limit": "3"})
        pages.append(names(page))
        fresh.delete_pod("a", namespace="t")  # a pod already listed goes away
        _, page = await get(
            session,
            "/api/v1/namespaces/t/pods",
            params={"limit": "3", "continue": page["metadata"]["continue"]},
        )
        pages.append(names(page))
        assert page["metadata"]["remainingItemCount"] == 2
        fresh.apply([pod("b0")])  # a new pod sorts before the cursor
        _, page = await get(
            session,
            "/api/v1/namespaces/t/pods",
            params={"limit": "3", "continue": page["metadata"]["continue"]},
        )
        pages.append(names(page))
        assert "continue" not in page["metadata"]
    # Every pod that existed throughout is listed exactly once, in order.
    assert pages == [["a", "b", "p0"], ["p1", "p2", "p3"], ["p4", "p5"]]


async def test_invalid_continue_token_is_400(conf: aiohttp.ClientSession) -> None:
    code, body = await get(conf, "/api/v1/pods", params={"limit": "2", "continue": "!!not-a-token"})
    assert code == 400 and body["reason"] == "BadRequest"
    assert body["message"].startswith("continue key is not valid")


# -- the Table form ----------------------------------------------------------------------------


def check_cell_types(table: dict[str, Any]) -> None:
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "date": str}
    for row in table["rows"]:
        assert len(row["cells"]) == len(table["columnDefinitions"])
        for column, cell in zip(table["columnDefinitions"], row["cells"]):
            assert isinstance(cell, types[column["type"]]), (column, cell)


async def test_table_form_for_pods(conf: aiohttp.ClientSession) -> None:
    for accept in (TABLE, KUBECTL_ACCEPT):
        async with conf.get(
            "/api/v1/namespaces/conf/pods",
            params={"labelSelector": "app in (batch,flaky)"},
            headers={"Accept": accept},
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == TABLE
            table = await response.json(content_type=None)
        assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
        assert [(c["name"], c["priority"]) for c in table["columnDefinitions"]] == [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1),
        ]
        check_cell_types(table)
        cells = {row["cells"][0]: row["cells"] for row in table["rows"]}
        assert sorted(cells) == ["done", "pending", "unready"]
        assert cells["done"][1:4] == ["0/1", "Completed", "0"]
        assert cells["pending"][1:4] == ["0/1", "ContainerCreating", "0"]
        assert cells["unready"][1:4] == ["0/1", "Running", "0"]
        assert re.fullmatch(r"\d+(s|m|m\d+s|h|d)", cells["done"][4])
        assert re.fullmatch(r"10\.244\.\d+\.\d+", cells["done"][5])
        assert cells["done"][6].startswith("sandbox-node-") and cells["done"][7:] == [
            "<none>",
            "<none>",
        ]
        row_object = table["rows"][0]["object"]
        assert (row_object["kind"], row_object["apiVersion"]) == (
            "PartialObjectMetadata",
            "meta.k8s.io/v1",
        )
        assert row_object["metadata"]["name"] == table["rows"][0]["cells"][0]
        assert "spec" not in row_object

    _, full = await get(
        conf,
        "/api/v1/namespaces/conf/pods/solo",
        params={"includeObject": "Object"},
        headers={"Accept": TABLE},
    )
    # A single object is a one-row Table too (kubectl get pod NAME asks for it).
    assert full["kind"] == "Table" and [row["cells"][0] for row in full["rows"]] == ["solo"]
    assert full["rows"][0]["object"]["kind"] == "Pod"
    _, table = await get(
        conf,
        "/api/v1/namespaces/conf/pods",
        params={"includeObject": "Object", "fieldSelector": "metadata.name=solo"},
        headers={"Accept": TABLE},
    )
    assert table["rows"][0]["object"]["kind"] == "Pod" and "spec" in table["rows"][0]["object"]
    _, plain = await get(
        conf, "/api/v1/namespaces/conf/pods", headers={"Accept": "application/json"}
    )
    assert plain["kind"] == "PodList"


async def test_table_form_for_workloads_and_pages(conf: aiohttp.ClientSession) -> None:
    _, table = await get(
        conf, "/apis/apps/v1/namespaces/conf/deployments", headers={"Accept": KUBECTL_ACCEPT}
    )
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    check_cell_types(table)
    assert [row["cells"][:4] for row in table["rows"]] == [["web", "3/3", 3, 3]]
    _, table = await get(
        conf, "/apis/apps/v1/namespaces/conf/statefulsets", headers={"Accept": TABLE}
    )
    assert [row["cells"][:2] for row in table["rows"]] == [["db", "2/2"]]

    _, first = await get(
        conf, "/api/v1/namespaces/conf/pods", params={"limit": "5"}, headers={"Accept": TABLE}
    )
    assert len(first["rows"]) == 5 and first["metadata"]["continue"]
    _, rest = await get(
        conf,
        "/api/v1/namespaces/conf/pods",
        params={"limit": "500", "continue": first["metadata"]["continue"]},
        headers={"Accept": TABLE},
    )
    assert "continue" not in rest["metadata"]
    _, plain = await get(conf, "/api/v1/namespaces/conf/pods")
    assert [row["cells"][0] for row in first["rows"] + rest["rows"]] == names(plain)


# -- namespaces and pods -----------------------------------------------------------------------


async def test_namespace_lifecycle(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, created = await send(
            session,
            "POST",
            "/api/v1/namespaces",
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "scratch", "labels": {"team": "a"}},
            },
        )
        assert code == 201
        assert (created["kind"], created["metadata"]["name"], created["status"]["phase"]) == (
            "Namespace",
            "scratch",
            "Active",
        )
        assert created["metadata"]["labels"] == {
            "kubernetes.io/metadata.name": "scratch",
            "team": "a",
        }
        assert await send(
            session, "POST", "/api/v1/namespaces", {"metadata": {"name": "scratch"}}
        ) == (
            409,
            failure(
                409,
                "AlreadyExists",
                'namespaces "scratch" already exists',
                {"name": "scratch", "kind": "namespaces"},
            ),
        )
        code, got = await get(session, "/api/v1/namespaces/scratch")
        assert (code, got["metadata"]["uid"]) == (200, created["metadata"]["uid"])
        _, listed = await get(session, "/api/v1/namespaces")
        assert listed["kind"] == "NamespaceList"
        assert names(listed) == ["default", "kube-public", "kube-system", "scratch", "t"]
        _, labelled = await get(session, "/api/v1/namespaces", params={"labelSelector": "team=a"})
        assert names(labelled) == ["scratch"]

        code, _ = await send(
            session,
            "POST",
            "/api/v1/namespaces/scratch/pods",
            {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        )
        assert code == 201
        code, deleted = await send(session, "DELETE", "/api/v1/namespaces/scratch")
        assert (code, deleted["metadata"]["name"], deleted["status"]["phase"]) == (
            200,
            "scratch",
            "Terminating",
        )
        assert await get(session, "/api/v1/namespaces/scratch") == (
            404,
            failure(
                404,
                "NotFound",
                'namespaces "scratch" not found',
                {"name": "scratch", "kind": "namespaces"},
            ),
        )
        assert (await get(session, "/api/v1/namespaces/scratch/pods/x"))[0] == 404
        _, pods = await get(session, "/api/v1/namespaces/scratch/pods")
        assert pods["items"] == []
        _, everywhere = await get(session, "/api/v1/pods")
        assert names(everywhere) == ["a", "b"]
        assert (await send(session, "DELETE", "/api/v1/namespaces/scratch"))[0] == 404
        # The apiserver's answer: 422 Invalid with the cause, as for any other invalid field.
        assert await send(session, "POST", "/api/v1/namespaces", {"metadata": {}}) == (
            422,
            failure(
                422,
                "Invalid",
                'Namespace "" is invalid: metadata.name: Required value: name or '
                "generateName is required",
                {
                    "name": "",
                    "kind": "Namespace",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                },
            ),
        )


POD_BODY = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "made", "labels": {"role": "probe"}},
    "spec": {
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "inf"]}]
    },
}


async def test_pod_lifecycle(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        code, created = await send(session, "POST", "/api/v1/namespaces/t/pods", POD_BODY)
        assert code == 201
        metadata = created["metadata"]
        assert (
            created["kind"],
            created["apiVersion"],
            metadata["name"],
            metadata["namespace"],
        ) == ("Pod", "v1", "made", "t")
        assert metadata["labels"] == {"role": "probe"}
        # The create answers the pod as stored: Pending and not yet scheduled, as the apiserver
        # answers; the scheduler and the kubelet take it from there.
        assert created["status"]["phase"] == "Pending"
        assert "nodeName" not in created["spec"]
        code, got = await get(session, "/api/v1/namespaces/t/pods/made")
        assert (code, got["metadata"]["uid"]) == (200, metadata["uid"])
        assert got["status"]["phase"] == "Running"
        assert got["spec"]["nodeName"].startswith("sandbox-node-")
        assert (await exec_output(session, "t", "made", ["echo", "$HOSTNAME"]))[0] == b"$HOSTNAME\n"
        assert (await exec_output(session, "t", "made", ["sh", "-c", "echo $HOSTNAME"]))[
            0
        ] == b"made\n"

        assert await send(session, "POST", "/api/v1/namespaces/t/pods", POD_BODY) == (
            409,
            failure(
                409, "AlreadyExists", 'pods "made" already exists', {"name": "made", "kind": "pods"}
            ),
        )
        assert await send(session, "POST", "/api/v1/namespaces/nowhere/pods", POD_BODY) == (
            404,
            failure(
                404,
                "NotFound",
                'namespaces "nowhere" not found',
                {"name": "nowhere", "kind": "namespaces"},
            ),
        )
        code, invalid = await send(
            session,
            "POST",
            "/api/v1/namespaces/t/pods",
            {"metadata": {"name": "empty"}, "spec": {"containers": []}},
        )
        assert (code, invalid["reason"]) == (422, "Invalid")
        async with session.post(
            "/api/v1/namespaces/t/pods",
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        ) as response:
            assert response.status == 400

        code, deleted = await send(session, "DELETE", "/api/v1/namespaces/t/pods/made")
        assert (code, deleted["metadata"]["name"]) == (200, "made")
        assert deleted["metadata"]["deletionTimestamp"]
        not_found = failure(
            404, "NotFound", 'pods "made" not found', {"name": "made", "kind": "pods"}
        )

        # Deletion is graceful: the pod is Terminating until its main process ended.
        async def gone() -> bool:
            return (await get(session, "/api/v1/namespaces/t/pods/made"))[0] == 404

        await await_until(gone, what="the deleted pod is gone")
        assert await get(session, "/api/v1/namespaces/t/pods/made") == (404, not_found)
        assert await send(session, "DELETE", "/api/v1/namespaces/t/pods/made") == (404, not_found)
        assert fresh.pods("t") == ["a", "b"]


GENERATED = {
    "metadata": {"generateName": "gen-"},
    "spec": {"containers": [{"name": "c", "image": "i"}]},
}


async def test_generate_name(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        made = []
        for _ in range(3):
            code, created = await send(session, "POST", "/api/v1/namespaces/t/pods", GENERATED)
            assert code == 201
            assert re.fullmatch(f"gen-{SUFFIX}{{5}}", created["metadata"]["name"])
            assert created["metadata"]["generateName"] == "gen-"
            made.append(created["metadata"]["name"])
        assert len(set(made)) == 3
        _, listed = await get(session, "/api/v1/namespaces/t/pods")
        assert names(listed) == sorted(["a", "b", *made])


async def test_generated_names_never_replace_a_live_pod(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        for other in ("a", "b"):
            _, first = await send(session, "POST", "/api/v1/namespaces/t/pods", GENERATED)
            fresh.delete_pod(other, namespace="t")  # the pod count is back where it was
            code, second = await send(session, "POST", "/api/v1/namespaces/t/pods", GENERATED)
            assert code == 201
            assert second["metadata"]["name"] != first["metadata"]["name"]
            code, still = await get(
                session, f"/api/v1/namespaces/t/pods/{first['metadata']['name']}"
            )
            assert (code, still["metadata"]["uid"]) == (200, first["metadata"]["uid"])
        assert len(fresh.pods("t")) == 4


async def test_not_found_bodies(conf: aiohttp.ClientSession) -> None:
    async with conf.get("/api/v1/namespaces/conf/pods/nope") as response:
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("application/json")
        body = json.loads(await response.read())
        expected = json.loads(
            '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"pods \\"nope\\" '
            'not found","reason":"NotFound","details":{"name":"nope","kind":"pods"},"code":404}'
        )
        assert body == expected
        assert list(body) == list(expected)  # the apiserver's field order too
        assert list(body["details"]) == ["name", "kind"]
    assert await get(conf, "/apis/apps/v1/namespaces/conf/deployments/nope") == (
        404,
        failure(
            404,
            "NotFound",
            'deployments.apps "nope" not found',
            {"name": "nope", "group": "apps", "kind": "deployments"},
        ),
    )
    assert await get(conf, "/apis/batch/v1/namespaces/conf/jobs/nope") == (
        404,
        failure(
            404,
            "NotFound",
            'jobs.batch "nope" not found',
            {"name": "nope", "group": "batch", "kind": "jobs"},
        ),
    )
    for path in (
        "/api/v1/namespaces/conf/persistentvolumeclaims",
        "/apis/batch/v1/namespaces/conf/deployments",
        "/apis/apps/v1/namespaces/conf/cronjobs",
        "/no/such/path",
    ):
        code, body = await get(conf, path)
        assert (code, body["reason"]) == (404, "NotFound"), path


# -- workloads ---------------------------------------------------------------------------------


WORKLOADS = """
apiVersion: v1
kind: Node
metadata: {name: node-a}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: w}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: "nginx:1.27"}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: w}
spec:
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: postgres, image: "postgres:16"}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: w}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: agent, image: "busybox:1.36"}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache, namespace: w}
spec:
  replicas: 2
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: redis, image: "redis:7"}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: w}
spec:
  parallelism: 2
  template:
    metadata:
      labels: {app: migrate}
      annotations: {sandbox.podmagic.io/phase: Succeeded}
    spec: {containers: [{name: migrate, image: "busybox:1.36"}]}
"""


@pytest.fixture(scope="module")
def workloads() -> Iterator[Sandbox]:
    with Sandbox(WORKLOADS) as running:
        yield running


def owner(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    group = "batch/v1" if kind == "Job" else "apps/v1"
    return {
        "apiVersion": group,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


async def test_workloads_and_their_pods(workloads: Sandbox) -> None:
    async with api_client(workloads) as session:
        _, pods_body = await get(session, "/api/v1/namespaces/w/pods")
        pods = {pod["metadata"]["name"]: pod for pod in pods_body["items"]}

        code, deploy = await get(session, "/apis/apps/v1/namespaces/w/deployments/web")
        assert (code, deploy["kind"], deploy["apiVersion"]) == (200, "Deployment", "apps/v1")
        assert deploy["status"]["replicas"] == deploy["status"]["readyReplicas"] == 3
        _, replicasets = await get(session, "/apis/apps/v1/namespaces/w/replicasets")
        assert replicasets["kind"] == "ReplicaSetList"
        rs_by_name = {rs["metadata"]["name"]: rs for rs in replicasets["items"]}
        web_rs = next(rs for name, rs in rs_by_name.items() if name.startswith("web-"))
        template_hash = web_rs["metadata"]["name"][len("web-") :]
        assert re.fullmatch(f"{SUFFIX}{{10}}", template_hash)
        assert web_rs["metadata"]["ownerReferences"] == [owner("Deployment", deploy)]
        assert web_rs["metadata"]["labels"]["pod-template-hash"] == template_hash
        web_pods = sorted(n for n in pods if n.startswith("web-"))
        assert len(web_pods) == 3
        for name in web_pods:
            assert re.fullmatch(f"web-{template_hash}-{SUFFIX}{{5}}", name)
            assert pods[name]["metadata"]["labels"] == {
                "app": "web",
                "pod-template-hash": template_hash,
            }
            assert pods[name]["metadata"]["ownerReferences"] == [owner("ReplicaSet", web_rs)]
        # The Deployment's selector finds exactly its pods.
        selector = ",".join(
            f"{k}={v}" for k, v in deploy["spec"]["selector"]["matchLabels"].items()
        )
        _, selected = await get(
            session, "/api/v1/namespaces/w/pods", params={"labelSelector": selector}
        )
        assert names(selected) == web_pods

        cache = rs_by_name["cache"]
        cache_pods = sorted(n for n in pods if n.startswith("cache-"))
        assert len(cache_pods) == 2 and all(
            re.fullmatch(f"cache-{SUFFIX}{{5}}", n) for n in cache_pods
        )
        assert all(
            pods[n]["metadata"]["ownerReferences"] == [owner("ReplicaSet", cache)]
            for n in cache_pods
        )

        _, sts = await get(session, "/apis/apps/v1/namespaces/w/statefulsets/db")
        for index in (0, 1):
            pod = pods[f"db-{index}"]
            labels = pod["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == f"db-{index}"
            assert labels["apps.kubernetes.io/pod-index"] == str(index)
            assert labels["controller-revision-hash"].startswith("db-")
            assert pod["metadata"]["ownerReferences"] == [owner("StatefulSet", sts)]
        assert sorted(n for n in pods if n.startswith("db-")) == ["db-0", "db-1"]

        _, ds = await get(session, "/apis/apps/v1/namespaces/w/daemonsets/agent")
        agents = [pods[n] for n in sorted(pods) if n.startswith("agent-")]
        assert sorted(pod["spec"]["nodeName"] for pod in agents) == [
            "node-a",
            "node-b",
        ]  # one per node
        assert all(re.fullmatch(f"agent-{SUFFIX}{{5}}", pod["metadata"]["name"]) for pod in agents)
        assert all(pod["metadata"]["ownerReferences"] == [owner("DaemonSet", ds)] for pod in agents)
        assert (ds["status"]["desiredNumberScheduled"], ds["status"]["numberReady"]) == (2, 2)

        code, job = await get(session, "/apis/batch/v1/namespaces/w/jobs/migrate")
        assert (code, job["kind"], job["apiVersion"]) == (200, "Job", "batch/v1")
        uid = job["metadata"]["uid"]
        assert job["spec"]["selector"] == {
            "matchLabels": {"batch.kubernetes.io/controller-uid": uid}
        }
        job_pods = [pods[n] for n in sorted(pods) if n.startswith("migrate-")]
        assert len(job_pods) == 2
        for pod in job_pods:
            assert re.fullmatch(f"migrate-{SUFFIX}{{5}}", pod["metadata"]["name"])
            assert pod["metadata"]["labels"] == {
                "app": "migrate",
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": "migrate",
                "controller-uid": uid,
                "job-name": "migrate",
            }
            assert pod["metadata"]["ownerReferences"] == [owner("Job", job)]
            assert (pod["status"]["phase"], pod["spec"]["restartPolicy"]) == ("Succeeded", "Never")
        # A zero count is left out, as the apiserver leaves out the Job's omitempty fields.
        assert (job["status"]["succeeded"], job["status"].get("active")) == (2, None)
        assert len(pods) == 3 + 2 + 2 + 2 + 2

        for path, kind, expected in (
            ("/apis/apps/v1/deployments", "DeploymentList", ["web"]),
            ("/apis/apps/v1/statefulsets", "StatefulSetList", ["db"]),
            ("/apis/apps/v1/namespaces/w/daemonsets", "DaemonSetList", ["agent"]),
            (
                "/apis/apps/v1/replicasets",
                "ReplicaSetList",
                sorted(["cache", web_rs["metadata"]["name"]]),
            ),
            ("/apis/batch/v1/jobs", "JobList", ["migrate"]),
            ("/apis/batch/v1/namespaces/other/jobs", "JobList", []),
        ):
            code, body = await get(session, path)
            assert (code, body["kind"], names(body)) == (200, kind, expected), path
        _, by_label = await get(
            session,
            "/apis/apps/v1/namespaces/w/replicasets",
            params={"labelSelector": f"app=web,pod-template-hash={template_hash}"},
        )
        assert names(by_label) == [web_rs["metadata"]["name"]]  # cache has no labels of its own
        _, by_name = await get(
            session,
            "/apis/apps/v1/namespaces/w/statefulsets",
            params={"fieldSelector": "metadata.name=db"},
        )
        assert names(by_name) == ["db"]


# -- watch -------------------------------------------------------------------------------------


async def next_event(response: aiohttp.ClientResponse, timeout: float = 5) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        line = await response.content.readline()
    assert line.endswith(b"\n"), line
    return json.loads(line)  # type: ignore[no-any-return]


async def test_watch_streams_changes_after_a_resource_version(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        _, listed = await get(session, "/api/v1/namespaces/t/pods")
        version = int(listed["metadata"]["resourceVersion"])
        async with session.get(
            "/api/v1/namespaces/t/pods", params={"watch": "true", "resourceVersion": str(version)}
        ) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/json"
            fresh.annotate("b", {"example.com/note": "hello"}, namespace="t")
            modified = await next_event(response)
            assert (modified["type"], modified["object"]["metadata"]["name"]) == ("MODIFIED", "b")
            assert (modified["object"]["kind"], modified["object"]["apiVersion"]) == ("Pod", "v1")
            assert modified["object"]["metadata"]["annotations"] == {"example.com/note": "hello"}
            assert int(modified["object"]["metadata"]["resourceVersion"]) > version
            fresh.delete_pod("a", namespace="t")
            deleted = await next_event(response)
            assert (deleted["type"], deleted["object"]["metadata"]["name"]) == ("DELETED", "a")
            assert deleted["object"]["metadata"]["deletionTimestamp"]
            assert int(deleted["object"]["metadata"]["resourceVersion"]) > int(
                modified["object"]["metadata"]["resourceVersion"]
            )
            code, _ = await send(
                session,
                "POST",
                "/api/v1/namespaces/t/pods",
                {"metadata": {"name": "c"}, "spec": {"containers": [{"name": "m", "image": "i"}]}},
            )
            assert code == 201
            added = await next_event(response)
            assert (added["type"], added["object"]["metadata"]["name"]) == ("ADDED", "c")


async def test_watch_without_version_starts_with_the_current_pods(fresh: Sandbox) -> None:
    async with (
        api_client(fresh) as session,
        session.get("/api/v1/namespaces/t/pods", params={"watch": "1"}) as response,
    ):
        first, second = await next_event(response), await next_event(response)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in (first, second)] == [
            ("ADDED", "a"),
            ("ADDED", "b"),
        ]
        fresh.delete_pod("b", namespace="t")
        assert (await next_event(response))["type"] == "DELETED"


async def test_watch_honours_selectors_and_timeout(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        _, listed = await get(session, "/api/v1/pods")
        async with session.get(
            "/api/v1/pods",
            params={
                "watch": "true",
                "labelSelector": "app=b",
                "timeoutSeconds": "2",
                "resourceVersion": listed["metadata"]["resourceVersion"],
            },
        ) as response:
            fresh.annotate("a", {"example.com/note": "not for this watch"}, namespace="t")
            fresh.annotate("b", {"example.com/note": "for this watch"}, namespace="t")
            event = await next_event(response)
            assert (event["type"], event["object"]["metadata"]["name"]) == ("MODIFIED", "b")
            # An event does not end the watch: the next change arrives on the same stream ...
            fresh.annotate("b", {"example.com/note": "and this one"}, namespace="t")
            event = await next_event(response)
            assert event["object"]["metadata"]["annotations"]["example.com/note"] == "and this one"
            # ... which then ends by itself, timeoutSeconds after it began (the limit here
            # only catches a watch that never ends).
            with anyio.fail_after(30):
                rest = await response.content.read()
    assert rest == b""  # nothing about pod a


# -- throttling --------------------------------------------------------------------------------


def throttled(seconds: int) -> dict[str, Any]:
    return failure(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": seconds},
    )


async def test_sandbox_throttle(fresh: Sandbox) -> None:
    fresh.throttle(3, retry_after=2)
    async with api_client(fresh) as session:
        for path in ("/api/v1/namespaces/t/pods", "/api", "/api/v1/namespaces/t/pods/a"):
            async with session.get(path) as response:
                assert response.status == 429
                assert response.headers["Retry-After"] == "2"
                assert await response.json() == throttled(2)
        assert (await get(session, "/version"))[0] == 200  # anonymous paths are never throttled
        for path in ("/api/v1/namespaces/t/pods", "/api", "/api/v1/namespaces/t/pods/a"):
            async with session.get(path) as response:
                assert response.status == 200
                assert "Retry-After" not in response.headers


async def test_pod_throttle_annotation(fresh: Sandbox) -> None:
    fresh.annotate(
        "a",
        {"sandbox.podmagic.io/throttle": "2", "sandbox.podmagic.io/retry-after": "3"},
        namespace="t",
    )
    async with api_client(fresh) as session:
        assert (await get(session, "/api/v1/namespaces/t/pods/b"))[0] == 200
        async with session.get("/api/v1/namespaces/t/pods/a") as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "3")
            assert await response.json() == throttled(3)
        assert (await get(session, "/api/v1/namespaces/t/pods"))[
            0
        ] == 200  # lists are not this pod's
        async with session.get(
            "/api/v1/namespaces/t/pods/a/exec", params={"command": "true"}
        ) as response:
            assert (response.status, response.headers["Retry-After"]) == (429, "3")
        assert (await get(session, "/api/v1/namespaces/t/pods/a"))[0] == 200
        assert (await get(session, "/api/v1/namespaces/t/pods/a"))[0] == 200


# -- pod details -------------------------------------------------------------------------------


async def test_default_service_account(conf: aiohttp.ClientSession) -> None:
    code, account = await get(conf, "/api/v1/namespaces/conf/serviceaccounts/default")
    assert code == 200
    assert (account["kind"], account["apiVersion"]) == ("ServiceAccount", "v1")
    assert (account["metadata"]["name"], account["metadata"]["namespace"]) == ("default", "conf")
    _, listed = await get(conf, "/api/v1/namespaces/conf/serviceaccounts")
    assert (listed["kind"], names(listed)) == ("ServiceAccountList", ["default"])
    assert await get(conf, "/api/v1/namespaces/conf/serviceaccounts/robot") == (
        404,
        failure(
            404,
            "NotFound",
            'serviceaccounts "robot" not found',
            {"name": "robot", "kind": "serviceaccounts"},
        ),
    )
    assert (await get(conf, "/api/v1/namespaces/nowhere/serviceaccounts/default"))[0] == 404


async def test_multi_container_pods(conf: aiohttp.ClientSession) -> None:
    _, plain = await get(conf, "/api/v1/namespaces/conf/pods/multi")
    _, annotated = await get(conf, "/api/v1/namespaces/conf/pods/multi-default")
    for pod in (plain, annotated):
        assert [c["name"] for c in pod["spec"]["containers"]] == ["first", "second"]
        assert [s["name"] for s in pod["status"]["containerStatuses"]] == ["first", "second"]
        assert all(
            s["ready"] and "running" in s["state"] for s in pod["status"]["containerStatuses"]
        )
    assert "kubectl.kubernetes.io/default-container" not in (
        plain["metadata"].get("annotations") or {}
    )
    assert annotated["metadata"]["annotations"] == {
        "kubectl.kubernetes.io/default-container": "second"
    }
    _, table = await get(
        conf,
        "/api/v1/namespaces/conf/pods",
        params={"fieldSelector": "metadata.name=multi"},
        headers={"Accept": TABLE},
    )
    assert table["rows"][0]["cells"][1:3] == ["2/2", "Running"]


STATUSES = """
apiVersion: v1
kind: Pod
metadata: {name: run, namespace: s}
spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: done, namespace: s, annotations: {sandbox.podmagic.io/phase: Succeeded}}
spec: {restartPolicy: Never, containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: failed, namespace: s, annotations: {sandbox.podmagic.io/phase: Failed}}
spec: {restartPolicy: Never, containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: pend, namespace: s, annotations: {sandbox.podmagic.io/phase: Pending}}
spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: unready, namespace: s, annotations: {sandbox.podmagic.io/ready: "false"}}
spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: term, namespace: s, annotations: {sandbox.podmagic.io/terminating: "true"}}
spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: v1
kind: Pod
metadata: {name: restarted, namespace: s, annotations: {sandbox.podmagic.io/restarts: "4"}}
spec: {containers: [{name: main, image: busybox}, {name: side, image: busybox}]}
"""


@pytest.fixture(scope="module")
def statuses() -> Iterator[Sandbox]:
    with Sandbox(STATUSES) as running:
        yield running


def conditions(pod: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["type"]: (c["status"], c.get("reason")) for c in pod["status"]["conditions"]}


async def test_pod_status_follows_the_annotations(statuses: Sandbox) -> None:
    async with api_client(statuses) as session:
        _, body = await get(session, "/api/v1/namespaces/s/pods")
        pods = {pod["metadata"]["name"]: pod for pod in body["items"]}
        _, table = await get(session, "/api/v1/namespaces/s/pods", headers={"Accept": TABLE})
    rows = {row["cells"][0]: row["cells"][1:4] for row in table["rows"]}

    run = pods["run"]
    assert run["status"]["phase"] == "Running"
    assert conditions(run) == {
        "PodReadyToStartContainers": ("True", None),
        "Initialized": ("True", None),
        "Ready": ("True", None),
        "ContainersReady": ("True", None),
        "PodScheduled": ("True", None),
    }
    (container,) = run["status"]["containerStatuses"]
    assert (container["ready"], container["started"], container["restartCount"]) == (True, True, 0)
    assert list(container["state"]) == ["running"]
    assert container["containerID"].startswith("containerd://")
    assert "deletionTimestamp" not in run["metadata"]

    done = pods["done"]
    assert done["status"]["phase"] == "Succeeded"
    assert conditions(done)["Ready"] == ("False", "PodCompleted")
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    failed_state = pods["failed"]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (
        pods["failed"]["status"]["phase"],
        failed_state["exitCode"],
        failed_state["reason"],
    ) == ("Failed", 1, "Error")

    pend = pods["pend"]
    assert pend["status"]["phase"] == "Pending"
    assert pend["status"]["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}
    }
    assert conditions(pend)["Ready"] == ("False", "ContainersNotReady")
    assert conditions(pend)["PodReadyToStartContainers"] == ("False", None)

    unready = pods["unready"]
    assert unready["status"]["phase"] == "Running"
    assert conditions(unready)["Ready"] == ("False", "ContainersNotReady")
    assert conditions(unready)["ContainersReady"] == ("False", "ContainersNotReady")
    assert unready["status"]["containerStatuses"][0]["ready"] is False

    term = pods["term"]
    assert term["metadata"]["deletionTimestamp"]
    assert term["metadata"]["deletionGracePeriodSeconds"] == 30
    assert conditions(term)["Ready"][0] == "False"

    assert [s["restartCount"] for s in pods["restarted"]["status"]["containerStatuses"]] == [4, 4]

    assert rows == {
        "run": ["1/1", "Running", "0"],
        "done": ["0/1", "Completed", "0"],
        "failed": ["0/1", "Error", "0"],
        "pend": ["0/1", "ContainerCreating", "0"],
        "unready": ["0/1", "Running", "0"],
        "term": ["0/1", "Terminating", "0"],
        "restarted": ["2/2", "Running", "8"],
    }


async def test_phase_can_change_at_run_time(fresh: Sandbox) -> None:
    async with api_client(fresh) as session:
        fresh.annotate("a", {"sandbox.podmagic.io/phase": "Failed"}, namespace="t")
        _, pod = await get(session, "/api/v1/namespaces/t/pods/a")
        assert pod["status"]["phase"] == "Failed"
        fresh.annotate("a", {"sandbox.podmagic.io/phase": None}, namespace="t")
        _, pod = await get(session, "/api/v1/namespaces/t/pods/a")
        assert pod["status"]["phase"] == "Running"
        assert "sandbox.podmagic.io/phase" not in pod["metadata"]["annotations"]


FILES = """
apiVersion: v1
kind: Pod
metadata:
  name: files
  namespace: f
  annotations:
    sandbox.podmagic.io/files: |
      etc/app.conf: "level=debug\\n"
      /var/data/readme.txt: hello
spec:
  containers:
    - {name: one, image: busybox}
    - {name: two, image: busybox, workingDir: /srv/app}
"""


async def test_files_annotation_fills_every_container_root() -> None:
    with Sandbox(FILES) as sandbox:
        async with api_client(sandbox) as session:
            for container, prefix in (("one", ""), ("two", "../../")):
                out, status = await exec_output(
                    session,
                    "f",
                    "files",
                    ["sh", "-c", f"cat {prefix}etc/app.conf {prefix}var/data/readme.txt; pwd"],
                    container=container,
                )
                assert status == {"metadata": {}, "status": "Success"}
                text = out.decode()
                assert text.startswith("level=debug\nhello")
                expected_cwd = (
                    "/pods/f/files/one" if container == "one" else "/pods/f/files/two/srv/app"
                )
                if sandbox.isolation == "namespaces":  # the container's folder is its /
                    expected_cwd = "/" if container == "one" else "/srv/app"
                assert text.rstrip("\n").endswith(expected_cwd)
                root = sandbox.state_dir / "fs" / "pods" / "f" / "files" / container
                assert (root / "etc" / "app.conf").read_text() == "level=debug\n"
                assert (root / "var" / "data" / "readme.txt").read_text() == "hello"


ENV = """
apiVersion: v1
kind: Pod
metadata:
  name: env
  namespace: e
  labels: {app: shop}
  annotations: {note: remember}
spec:
  serviceAccountName: robot
  containers:
    - name: main
      image: busybox
      env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: POD_NAMESPACE, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        - {name: NODE_NAME, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
        - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
        - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
        - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
        - {name: NOTE, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['note']"}}}
        - {name: GREETING, value: "hello from $(POD_NAME)"}
"""


async def test_downward_api_env_is_seen_by_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_HOST_ONLY", "must not leak")
    with Sandbox(ENV) as sandbox:
        async with api_client(sandbox) as session:
            _, pod = await get(session, "/api/v1/namespaces/e/pods/env")
            out, status = await exec_output(session, "e", "env", ["env"])
    assert status["status"] == "Success"
    env = dict(line.split("=", 1) for line in out.decode().splitlines())
    root = str(sandbox.state_dir / "fs" / "pods" / "e" / "env" / "main")
    if sandbox.isolation == "namespaces":  # its folder is its /: root's home, as in an image
        root = "/root"
    assert env == {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME": "env",
        "HOME": root,
        "POD_NAME": "env",
        "POD_NAMESPACE": "e",
        "POD_UID": pod["metadata"]["uid"],
        "NODE_NAME": pod["spec"]["nodeName"],
        "POD_IP": pod["status"]["podIP"],
        "HOST_IP": pod["status"]["hostIP"],
        "SA": "robot",
        "APP": "shop",
        "NOTE": "remember",
        "GREETING": "hello from env",
    }


# -- manifests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: s}\n",
            (
                "document 1: kind 'PersistentVolumeClaim' is not supported (supported: Namespace, "
                "Node, Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, ConfigMap, "
                "Endpoints, ReplicationController, Secret, ServiceAccount, Service, "
                "ClusterRoleBinding, ClusterRole, RoleBinding, Role)"
            ),
        ),
        (
            (
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {sandbox.podmagic.io/phase: Sleeping}\n"
                "spec: {containers: [{name: c, image: i}]}\n"
            ),
            (
                'Pod "p" is invalid: metadata.annotations[sandbox.podmagic.io/phase]: Invalid value: "Sleeping": '
                "expected one of Failed, Pending, Running, Succeeded"
            ),
        ),
        (
            (
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {sandbox.podmagic.io/exec-delay: soon}\n"
                "spec: {containers: [{name: c, image: i}]}\n"
            ),
            (
                'Pod "p" is invalid: metadata.annotations[sandbox.podmagic.io/exec-delay]: Invalid value: "soon": '
                "expected seconds"
            ),
        ),
        (
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    metadata:\n"
                "      annotations: {sandbox.podmagic.io/exec-fault: explode}\n"
                "    spec: {containers: [{name: c, image: i}]}\n"
            ),
            (
                'Deployment "d" is invalid: spec.template.metadata.annotations[sandbox.podmagic.io/exec-fault]: '
                'Invalid value: "explode": expected one of delete, drop, error-500, forbidden, recreate, restart'
            ),
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {namespace: x}\nspec: {containers: [{name: c, image: i}]}\n",
            "document 1 (Pod): metadata.name is required",
        ),
        ("- just\n- a list\n", "every YAML document must be a mapping (a Kubernetes object)"),
    ],
)
def test_manifest_errors_are_clear(manifest: str, message: str) -> None:
    sandbox = Sandbox(manifest)
    with pytest.raises(ManifestError) as raised:
        sandbox.start()
    assert str(raised.value) == message
    assert not sandbox.state_dir.exists()  # nothing is left behind
    sandbox.stop()


def test_invalid_yaml_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match=r"^invalid YAML: "):
        Sandbox("kind: Pod\nmetadata: {name: [unclosed\n").start()


def test_bad_annotation_at_run_time_is_refused_and_changes_nothing(fresh: Sandbox) -> None:
    def pod_state() -> tuple[dict[str, str], float]:
        assert fresh.cluster is not None
        entry = fresh.cluster.pods[("t", "a")]
        return dict(entry.pod["metadata"]["annotations"]), entry.behaviour.exec_delay

    fresh.annotate("a", {"sandbox.podmagic.io/exec-delay": "0.5"}, namespace="t")
    with pytest.raises(BehaviourError, match="exec-delay: expected seconds, got 'later'"):
        fresh.annotate(
            "a", {"sandbox.podmagic.io/exec-delay": "later", "example.com/x": "y"}, namespace="t"
        )
    assert fresh.call(pod_state) == ({"sandbox.podmagic.io/exec-delay": "0.5"}, 0.5)
