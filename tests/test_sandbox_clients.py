"""Other clients against the sandbox's REST API: kr8s, kubernetes_asyncio and kubectl's
wire habits (trailing slashes, protobuf bodies, PATCH flavours, the kinds ops notebooks use).

Each test fails on a sandbox that lacks what it checks; the clients are required under CI.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

import pytest
from _waiting import wait_until
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


@pytest.fixture
async def kr8s_api(sandbox: Sandbox, kr8s: ModuleType) -> AsyncIterator[Any]:
    """kr8s's async API for the sandbox; its HTTP session closed afterwards (kr8s keeps it)."""
    api = await kr8s.asyncio.api(kubeconfig=str(sandbox.kubeconfig))
    yield api
    if api._session is not None:
        await api._session.aclose()


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


async def test_kr8s_reads_version_and_lists_pods(kr8s_api: Any, kr8s: ModuleType) -> None:
    api = kr8s_api
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


# -- PATCH: kubectl label / annotate / scale / patch / apply ------------------------------------

APP = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {level: "LEVEL"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, labels: {app: api}}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers: [{name: main, image: busybox, ports: [{containerPort: 80}]}]
"""


def _pod_names(kubectl: KubectlRunner, namespace: str, selector: str) -> list[str]:
    out = ok(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name"))
    return sorted(out.split())


def test_kubectl_label_and_annotate_a_pod(kubectl: KubectlRunner) -> None:
    try:
        ok(kubectl("label", "pod", "solo", "-n", "conf", "team=ops", "--overwrite"))
        ok(kubectl("annotate", "pod", "solo", "-n", "conf", "note=checked", "--overwrite"))
        pod = _json(ok(kubectl("get", "pod", "solo", "-n", "conf", "-o", "json")))
        assert pod["metadata"]["labels"]["team"] == "ops"
        assert pod["metadata"]["annotations"]["note"] == "checked"
        listed = ok(kubectl("get", "pods", "-n", "conf", "-l", "team=ops", "-o", "name"))
        assert listed.split() == ["pod/solo"]
    finally:
        kubectl("label", "pod", "solo", "-n", "conf", "team-")
        kubectl("annotate", "pod", "solo", "-n", "conf", "note-")
    pod = _json(ok(kubectl("get", "pod", "solo", "-n", "conf", "-o", "json")))
    assert "team" not in pod["metadata"]["labels"]


def test_kubectl_scale_adds_and_removes_replicas(kubectl: KubectlRunner, scratch: str) -> None:
    ok(
        kubectl(
            "apply",
            "-n",
            scratch,
            "-f",
            "-",
            input=APP.replace("REPLICAS", "2").encode(),
        )
    )
    before = _pod_names(kubectl, scratch, "app=api")
    assert len(before) == 2
    ok(kubectl("scale", "deploy/api", "-n", scratch, "--replicas=4"))
    grown = _pod_names(kubectl, scratch, "app=api")
    assert len(grown) == 4 and set(before) <= set(grown)  # the old pods stay
    deploy = _json(ok(kubectl("get", "deploy", "api", "-n", scratch, "-o", "json")))
    assert deploy["spec"]["replicas"] == 4 and deploy["status"]["readyReplicas"] == 4
    ok(kubectl("scale", "deploy/api", "-n", scratch, "--replicas=1"))
    # The removed pods are Terminating until their main processes ended (as in a cluster).
    wait_until(lambda: len(_pod_names(kubectl, scratch, "app=api")) == 1, what="one pod is left")


def test_kubectl_scale_a_statefulset_adds_the_next_ordinal(
    kubectl: KubectlRunner, scratch: str
) -> None:
    sts = APP.split("---\n")[1].replace("Deployment", "StatefulSet").replace("REPLICAS", "1")
    ok(kubectl("apply", "-n", scratch, "-f", "-", input=sts.encode()))
    ok(kubectl("scale", "sts/api", "-n", scratch, "--replicas=3"))
    assert _pod_names(kubectl, scratch, "app=api") == ["pod/api-0", "pod/api-1", "pod/api-2"]


@pytest.mark.parametrize(
    ("kind", "patch"),
    [
        ("strategic", '{"metadata":{"labels":{"patched":"yes"}}}'),
        ("merge", '{"metadata":{"labels":{"patched":"yes"}}}'),
        ("json", '[{"op":"add","path":"/metadata/labels/patched","value":"yes"}]'),
    ],
)
def test_kubectl_patch_each_type(
    kubectl: KubectlRunner, scratch: str, kind: str, patch: str
) -> None:
    ok(
        kubectl(
            "apply",
            "-n",
            scratch,
            "-f",
            "-",
            input=APP.replace("REPLICAS", "1").encode(),
        )
    )
    ok(kubectl("patch", "deploy", "api", "-n", scratch, "--type", kind, "-p", patch))
    deploy = _json(ok(kubectl("get", "deploy", "api", "-n", scratch, "-o", "json")))
    assert deploy["metadata"]["labels"]["patched"] == "yes"


def test_kubectl_patch_merges_containers_by_name(kubectl: KubectlRunner, scratch: str) -> None:
    ok(
        kubectl(
            "apply",
            "-n",
            scratch,
            "-f",
            "-",
            input=APP.replace("REPLICAS", "1").encode(),
        )
    )
    patch = '{"spec":{"template":{"spec":{"containers":[{"name":"main","image":"alpine"}]}}}}'
    ok(kubectl("patch", "deploy", "api", "-n", scratch, "-p", patch))
    deploy = _json(ok(kubectl("get", "deploy", "api", "-n", scratch, "-o", "json")))
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    # Merged by name: the image changed, the ports the patch did not name stayed.
    assert container["image"] == "alpine" and container["ports"] == [{"containerPort": 80}]
    assert deploy["metadata"]["generation"] == 2
    pods = _json(ok(kubectl("get", "pods", "-n", scratch, "-l", "app=api", "-o", "json")))
    assert [p["spec"]["containers"][0]["image"] for p in pods["items"]] == ["alpine"]


def test_kubectl_apply_of_an_existing_object_updates_it(
    kubectl: KubectlRunner, scratch: str
) -> None:
    first = APP.replace("REPLICAS", "1").replace("LEVEL", "one")
    second = APP.replace("REPLICAS", "2").replace("LEVEL", "two")
    ok(kubectl("apply", "-n", scratch, "-f", "-", input=first.encode()))
    out = ok(kubectl("apply", "-n", scratch, "-f", "-", input=second.encode()))
    assert "configmap/settings configured" in out and "deployment.apps/api configured" in out
    settings = _json(ok(kubectl("get", "cm", "settings", "-n", scratch, "-o", "json")))
    assert settings["data"] == {"level": "two"}
    applied = settings["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"
    ]
    assert _json(applied)["data"] == {"level": "two"}
    assert len(_pod_names(kubectl, scratch, "app=api")) == 2


def test_kubectl_server_side_apply_creates_then_updates(
    kubectl: KubectlRunner, scratch: str
) -> None:
    for level in ("one", "two"):
        config = APP.split("---\n")[0].replace("LEVEL", level)
        ok(
            kubectl(
                "apply",
                "--server-side",
                "-n",
                scratch,
                "-f",
                "-",
                input=config.encode(),
            )
        )
    got = kubectl("get", "cm", "settings", "-n", scratch, "-o", "json", "--show-managed-fields")
    settings = _json(ok(got))
    assert settings["data"] == {"level": "two"}
    managers = [m["manager"] for m in settings["metadata"]["managedFields"]]
    assert managers == ["kubectl"]


# -- more kinds ---------------------------------------------------------------------------------


def test_kubectl_api_resources_lists_the_kinds_ops_notebooks_use(kubectl: KubectlRunner) -> None:
    out = ok(kubectl("api-resources", "--no-headers"))
    names = {line.split()[0] for line in out.splitlines()}
    assert {
        "configmaps",
        "secrets",
        "services",
        "endpoints",
        "serviceaccounts",
        "events",
        "nodes",
        "replicationcontrollers",
    } <= names


def test_kubectl_creates_configmaps_and_secrets(kubectl: KubectlRunner, scratch: str) -> None:
    # kubectl 1.33 sends these as protobuf.
    ok(kubectl("create", "configmap", "cfg", "-n", scratch, "--from-literal=a=1"))
    ok(kubectl("create", "secret", "generic", "pw", "-n", scratch, "--from-literal=k=v"))
    cfg = _json(ok(kubectl("get", "cm", "cfg", "-n", scratch, "-o", "json")))
    assert cfg["data"] == {"a": "1"}
    secret = ok(kubectl("get", "secret", "pw", "-n", scratch, "-o", "jsonpath={.data.k}"))
    assert secret == "dg=="  # base64 of "v"
    ok(kubectl("delete", "cm", "cfg", "-n", scratch))
    assert kubectl("get", "cm", "cfg", "-n", scratch).returncode == 1


def test_kubectl_service_gets_a_cluster_ip_and_endpoints(
    kubectl: KubectlRunner, scratch: str
) -> None:
    ok(
        kubectl(
            "apply",
            "-n",
            scratch,
            "-f",
            "-",
            input=APP.replace("REPLICAS", "2").encode(),
        )
    )
    ok(kubectl("expose", "deploy", "api", "-n", scratch, "--port=80", "--target-port=8080"))
    service = _json(ok(kubectl("get", "svc", "api", "-n", scratch, "-o", "json")))
    assert service["spec"]["clusterIP"].startswith("10.96.")
    assert service["spec"]["ports"][0]["protocol"] == "TCP"
    endpoints = _json(ok(kubectl("get", "endpoints", "api", "-n", scratch, "-o", "json")))
    (subset,) = endpoints["subsets"]
    assert len(subset["addresses"]) == 2 and subset["ports"][0]["port"] == 8080


def test_kubectl_get_nodes_lists_the_sandbox_nodes(kubectl: KubectlRunner) -> None:
    out = ok(kubectl("get", "nodes", "-o", "json"))
    nodes = _json(out)["items"]
    assert [n["metadata"]["name"] for n in nodes] == [
        "sandbox-node-1",
        "sandbox-node-2",
        "sandbox-node-3",
    ]
    ready = [c for c in nodes[0]["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"


# The official client leaves its pooled sockets to the garbage collector (its own leak).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_official_client_crud_on_configmaps_and_services(sandbox: Sandbox, scratch: str) -> None:
    kubernetes = _required("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    with api_client:
        core = kubernetes.client.CoreV1Api(api_client)
        body = {"metadata": {"name": "c"}, "data": {"x": "1"}}
        core.create_namespaced_config_map(scratch, body)
        core.patch_namespaced_config_map("c", scratch, {"data": {"y": "2"}})
        assert core.read_namespaced_config_map("c", scratch).data == {"x": "1", "y": "2"}
        listed = core.list_namespaced_config_map(scratch)
        assert [item.metadata.name for item in listed.items] == ["c"]
        core.delete_namespaced_config_map("c", scratch)
        service = {
            "metadata": {"name": "s"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]},
        }
        created = core.create_namespaced_service(scratch, service)
        assert created.spec.cluster_ip and created.spec.ports[0].target_port == 80
        nodes = core.list_node()
        assert len(nodes.items) == 3


async def test_kr8s_labels_annotates_and_patches(kr8s_api: Any, kr8s: ModuleType) -> None:
    api = kr8s_api
    pod = await kr8s.asyncio.objects.Pod.get("solo", namespace="conf", api=api)
    try:
        await pod.label({"kr8s": "yes"})
        await pod.annotate({"kr8s-note": "yes"})
        await pod.patch({"metadata": {"labels": {"kr8s-patch": "yes"}}})
        again = await kr8s.asyncio.objects.Pod.get("solo", namespace="conf", api=api)
        assert again.labels["kr8s"] == "yes" and again.labels["kr8s-patch"] == "yes"
        assert again.annotations["kr8s-note"] == "yes"
    finally:
        await pod.patch(
            [
                {"op": "remove", "path": "/metadata/labels/kr8s"},
                {"op": "remove", "path": "/metadata/labels/kr8s-patch"},
                {"op": "remove", "path": "/metadata/annotations/kr8s-note"},
            ],
            type="json",
        )


# -- wire: watch on workloads, Table for one object and for watch events -------------------------

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


async def _watch_lines(sandbox: Sandbox, path: str, headers: dict[str, str]) -> list[Any]:
    params = {"watch": "true", "timeoutSeconds": "1"}
    async with (
        api_client(sandbox) as session,
        session.get(path, params=params, headers=headers) as response,
    ):
        assert response.status == 200
        content_type = response.headers["Content-Type"]
        lines = [json.loads(line) for line in (await response.read()).splitlines() if line]
    return [content_type, *lines]


async def test_watch_on_statefulsets_streams_events_not_a_list(sandbox: Sandbox) -> None:
    content_type, *events = await _watch_lines(
        sandbox, "/apis/apps/v1/namespaces/conf/statefulsets", {}
    )
    assert content_type == "application/json"
    assert [(e["type"], e["object"]["kind"]) for e in events] == [("ADDED", "StatefulSet")]
    assert events[0]["object"]["metadata"]["name"] == "db"


async def test_watch_events_are_tables_when_the_accept_header_asks(sandbox: Sandbox) -> None:
    content_type, *events = await _watch_lines(
        sandbox,
        "/api/v1/namespaces/conf/pods",
        {"Accept": TABLE},
    )
    assert content_type == TABLE
    first = events[0]["object"]
    assert first["kind"] == "Table"
    assert [c["name"] for c in first["columnDefinitions"]][:3] == ["Name", "Ready", "Status"]
    assert {e["object"]["rows"][0]["cells"][0] for e in events} >= {"solo", "db-0"}


def test_kubectl_get_one_pod_shows_full_columns(kubectl: KubectlRunner) -> None:
    header, row = ok(kubectl("get", "pod", "solo", "-n", "conf")).splitlines()
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert row.split()[:3] == ["solo", "1/1", "Running"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_official_client_watch_yields_deployment_events(sandbox: Sandbox, scratch: str) -> None:
    kubernetes = _required("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    with api_client:
        apps = kubernetes.client.AppsV1Api(api_client)
        body = {
            "metadata": {"name": "w"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "w"}},
                "template": {
                    "metadata": {"labels": {"app": "w"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
        apps.create_namespaced_deployment(scratch, body)
        watch = kubernetes.watch.Watch()
        seen = [
            (event["type"], event["object"].metadata.name)
            for event in watch.stream(apps.list_namespaced_deployment, scratch, timeout_seconds=1)
        ]
        assert seen == [("ADDED", "w")]


# -- defaults the apiserver fills in ------------------------------------------------------------


def test_kubectl_rollout_status_of_a_statefulset_and_a_daemonset(kubectl: KubectlRunner) -> None:
    # Without the default updateStrategy kubectl says rollout status needs RollingUpdate.
    out = ok(kubectl("rollout", "status", "sts/db", "-n", "conf", "--timeout=20s"))
    assert "roll out complete" in out
    ok(kubectl("rollout", "status", "deploy/web", "-n", "conf", "--timeout=20s"))


def test_pods_and_workloads_get_the_api_servers_defaults(kubectl: KubectlRunner) -> None:
    pod = _json(ok(kubectl("get", "pod", "solo", "-n", "conf", "-o", "json")))
    spec = pod["spec"]
    assert spec["securityContext"] == {} and spec["enableServiceLinks"] is True
    assert {(t["key"], t["tolerationSeconds"]) for t in spec["tolerations"]} >= {
        ("node.kubernetes.io/not-ready", 300),
        ("node.kubernetes.io/unreachable", 300),
    }
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["schedulerName"]) == (
        "Always",
        "ClusterFirst",
        "default-scheduler",
    )
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["containers"][0]["terminationMessagePolicy"] == "File"
    sts = _json(ok(kubectl("get", "sts", "db", "-n", "conf", "-o", "json")))
    assert sts["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert sts["spec"]["revisionHistoryLimit"] == 10
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    deploy = _json(ok(kubectl("get", "deploy", "web", "-n", "conf", "-o", "json")))
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deploy["spec"]["progressDeadlineSeconds"] == 600


# -- OpenAPI: default validation of apply/create -f, explain -----------------------------------


def test_kubectl_create_and_apply_with_default_validation(
    kubectl: KubectlRunner, scratch: str
) -> None:
    # Without OpenAPI documents kubectl says "failed to download openapi" and stops.
    config = APP.split("---\n")[0].replace("LEVEL", "one")
    out = ok(kubectl("create", "-n", scratch, "-f", "-", input=config.encode()))
    assert out.strip() == "configmap/settings created"
    out = ok(
        kubectl("apply", "-n", scratch, "-f", "-", input=APP.replace("REPLICAS", "1").encode())
    )
    assert "deployment.apps/api created" in out


def test_kubectl_explain_pod(kubectl: KubectlRunner) -> None:
    out = ok(kubectl("explain", "pod"))
    assert "KIND:       Pod" in out and "Pod is a collection of containers" in out
    out = ok(kubectl("explain", "pod.spec.containers.image"))
    assert "Container image name." in out
    out = ok(kubectl("explain", "deployments.spec.replicas"))
    assert "Number of desired pods." in out


def test_kubectl_133_create_generators_sent_as_protobuf(
    kubectl133: KubectlRunner, scratch: str
) -> None:
    ok(kubectl133("create", "deployment", "gen", "-n", scratch, "--image=busybox:1.36"))
    ok(kubectl133("create", "job", "once", "-n", scratch, "--image=busybox:1.36"))
    ok(kubectl133("create", "service", "clusterip", "gen", "-n", scratch, "--tcp=80:8080"))
    ok(kubectl133("create", "serviceaccount", "robot", "-n", scratch))
    deploy = _json(ok(kubectl133("get", "deploy", "gen", "-n", scratch, "-o", "json")))
    assert deploy["spec"]["template"]["spec"]["containers"] == [
        {"name": "busybox", "image": "busybox:1.36"}
    ]
    service = _json(ok(kubectl133("get", "svc", "gen", "-n", scratch, "-o", "json")))
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    assert len(_pod_names(kubectl133, scratch, "app=gen")) == 1


# -- auth ---------------------------------------------------------------------------------------


def test_kubectl_auth_whoami_and_can_i(kubectl: KubectlRunner) -> None:
    out = ok(kubectl("auth", "whoami"))
    assert "sandbox-user" in out and "system:masters" in out
    assert ok(kubectl("auth", "can-i", "delete", "pods", "-n", "conf")).strip() == "yes"
    assert "*.*" in ok(kubectl("auth", "can-i", "--list"))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_official_client_self_subject_access_review(sandbox: Sandbox) -> None:
    kubernetes = _required("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    with api_client:
        authz = kubernetes.client.AuthorizationV1Api(api_client)
        review = {
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "conf"}}
        }
        answer = authz.create_self_subject_access_review(review)
        assert answer.status.allowed is True


def test_kubectl_get_shows_each_kinds_columns(kubectl: KubectlRunner, scratch: str) -> None:
    ok(kubectl("create", "configmap", "cols", "-n", scratch, "--from-literal=a=1"))
    service = '{"apiVersion":"v1","kind":"Service","metadata":{"name":"cols"},"spec":{"ports":[{"port":80}]}}'
    ok(kubectl("create", "-n", scratch, "-f", "-", input=service.encode()))
    headers = {
        "cm": ["NAME", "DATA", "AGE"],
        "svc": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "sa": ["NAME", "SECRETS", "AGE"],
    }
    for kind, header in headers.items():
        first = ok(kubectl("get", kind, "-n", scratch)).splitlines()[0]
        assert first.split() == header, kind
    header, *rows = ok(kubectl("get", "nodes")).splitlines()
    assert header.split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert rows[0].split()[1] == "Ready"


def test_a_manifest_may_hold_configmaps_secrets_and_services(tmp_path: Any) -> None:
    manifest = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: shop}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""
    with Sandbox(manifest, state_dir=tmp_path / "state") as running:
        assert running.cluster is not None
        objects = running.call(lambda: dict(running.cluster.objects))  # type: ignore[union-attr]
    assert objects["configmaps"][("shop", "settings")]["data"] == {"mode": "fast"}
    assert objects["secrets"][("shop", "creds")]["data"] == {"password": "aHVudGVyMg=="}
    assert objects["services"][("shop", "web")]["spec"]["clusterIP"].startswith("10.96.")


# The steps of the official client's own e2e tests (kubernetes/e2e_test/test_client.py:
# test_service_apis, test_replication_controller_apis, test_configmap_apis, test_node_apis).


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_official_client_e2e_services_rcs_configmaps_nodes(sandbox: Sandbox, scratch: str) -> None:
    kubernetes = _required("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))
    with api_client:
        api = kubernetes.client.CoreV1Api(api_client)
        name = "frontend"
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"labels": {"name": name}, "name": name},
            "spec": {
                "ports": [{"name": "port", "port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"name": name},
            },
        }
        resp = api.create_namespaced_service(body=service, namespace=scratch)
        assert resp.metadata.name == name and resp.status
        assert api.read_namespaced_service(name=name, namespace=scratch).status
        service["spec"]["ports"] = [
            {"name": "new", "port": 8080, "protocol": "TCP", "targetPort": 8080}
        ]
        resp = api.patch_namespaced_service(body=service, name=name, namespace=scratch)
        assert len(resp.spec.ports) == 2 and resp.status
        api.delete_namespaced_service(name=name, body={}, namespace=scratch)

        rc = {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"labels": {"name": name}, "name": name},
            "spec": {
                "replicas": 2,
                "selector": {"name": name},
                "template": {
                    "metadata": {"labels": {"name": name}},
                    "spec": {
                        "containers": [
                            {
                                "image": "nginx",
                                "name": "nginx",
                                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            }
                        ]
                    },
                },
            },
        }
        resp = api.create_namespaced_replication_controller(body=rc, namespace=scratch)
        assert (resp.metadata.name, resp.spec.replicas) == (name, 2)
        resp = api.read_namespaced_replication_controller(name=name, namespace=scratch)
        assert (resp.metadata.name, resp.spec.replicas) == (name, 2)
        api.delete_namespaced_replication_controller(
            name=name, namespace=scratch, propagation_policy="Background"
        )

        configmap = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "test-configmap", "labels": {"e2e-tests": "true"}},
            "data": {"config.json": '{"command":"/usr/bin/mysqld_safe"}', "frontend.cnf": "x"},
        }
        api.create_namespaced_config_map(body=configmap, namespace=scratch)
        replace = [{"op": "replace", "path": "/data", "value": {"new_value": "json"}}]
        resp = api.patch_namespaced_config_map(
            name="test-configmap", namespace=scratch, body=replace
        )
        assert resp.data == {"new_value": "json"}
        resp = api.patch_namespaced_config_map(
            name="test-configmap", namespace=scratch, body={"data": {"new_value": "merge"}}
        )
        assert resp.data == {"new_value": "merge"}
        api.delete_namespaced_config_map(name="test-configmap", body={}, namespace=scratch)
        listed = api.list_namespaced_config_map(scratch, label_selector="e2e-tests=true")
        assert listed.items == []

        for item in api.list_node().items:
            node = api.read_node(name=item.metadata.name)
            assert isinstance(node.metadata.labels, dict) and len(node.metadata.labels) > 0


def test_kubectl_delete_of_a_deployment_takes_its_pods(
    kubectl: KubectlRunner, scratch: str
) -> None:
    ok(kubectl("apply", "-n", scratch, "-f", "-", input=APP.replace("REPLICAS", "2").encode()))
    assert len(_pod_names(kubectl, scratch, "app=api")) == 2
    ok(kubectl("delete", "deploy", "api", "-n", scratch))
    # Its pods go in the background, gracefully (as the garbage collector deletes them).
    wait_until(lambda: _pod_names(kubectl, scratch, "app=api") == [], what="its pods are gone")
    assert ok(kubectl("get", "rs", "-n", scratch, "-o", "name")).strip() == ""


async def test_kubernetes_asyncio_lists_pods_and_patches_a_configmap(
    sandbox: Sandbox, scratch: str
) -> None:
    kubernetes_asyncio = _required("kubernetes_asyncio")
    client = await kubernetes_asyncio.config.new_client_from_config(
        config_file=str(sandbox.kubeconfig)
    )
    async with client:
        core = kubernetes_asyncio.client.CoreV1Api(client)
        pods = await core.list_namespaced_pod("conf", label_selector="app=db")
        assert [pod.metadata.name for pod in pods.items] == ["db-0", "db-1"]
        await core.create_namespaced_config_map(
            scratch, {"metadata": {"name": "c"}, "data": {"a": "1"}}
        )
        patched = await core.patch_namespaced_config_map("c", scratch, {"data": {"b": "2"}})
        assert patched.data == {"a": "1", "b": "2"}


# -- events -------------------------------------------------------------------------------------


def test_kubectl_describe_lists_the_events_of_a_pod_and_a_scale(
    kubectl: KubectlRunner, scratch: str
) -> None:
    ok(kubectl("apply", "-n", scratch, "-f", "-", input=APP.replace("REPLICAS", "1").encode()))
    (pod,) = _pod_names(kubectl, scratch, "app=api")
    described = ok(kubectl("describe", pod, "-n", scratch))
    events = described.split("Events:")[1]
    reasons = [line.split()[1] for line in events.splitlines()[3:] if line.strip()]
    assert reasons == ["Scheduled", "Pulled", "Created", "Started"]
    ok(kubectl("scale", "deploy/api", "-n", scratch, "--replicas=2"))
    described = ok(kubectl("describe", "deploy", "api", "-n", scratch))
    assert "ScalingReplicaSet" in described and "from 1 to 2" in described


async def test_events_are_served_in_both_apis(sandbox: Sandbox) -> None:
    async with api_client(sandbox) as session:
        params = {"fieldSelector": "involvedObject.name=solo,reason=Scheduled"}
        async with session.get("/api/v1/namespaces/conf/events", params=params) as response:
            core = await response.json()
        async with session.get("/apis/events.k8s.io/v1/namespaces/conf/events") as response:
            new = await response.json()
    (event,) = core["items"]
    assert event["involvedObject"]["kind"] == "Pod" and event["source"]["component"] == (
        "default-scheduler"
    )
    same = [e for e in new["items"] if e["metadata"]["name"] == event["metadata"]["name"]]
    assert same[0]["regarding"]["name"] == "solo" and same[0]["note"] == event["message"]
    assert same[0]["apiVersion"] == "events.k8s.io/v1"


# -- dry run ------------------------------------------------------------------------------------


def test_server_side_dry_runs_change_nothing(kubectl: KubectlRunner, scratch: str) -> None:
    first = APP.replace("REPLICAS", "1").replace("LEVEL", "one")
    second = APP.replace("REPLICAS", "3").replace("LEVEL", "two")
    out = ok(kubectl("apply", "--dry-run=server", "-n", scratch, "-f", "-", input=first.encode()))
    assert "configmap/settings created (server dry run)" in out
    assert ok(kubectl("get", "cm,deploy,pods", "-n", scratch, "-o", "name")).strip() == ""
    ok(kubectl("apply", "-n", scratch, "-f", "-", input=first.encode()))
    # kubectl diff asks the server for the result of the change with dryRun=All.
    diff = kubectl("diff", "-n", scratch, "-f", "-", input=second.encode())
    assert diff.returncode == 1, diff.stderr.decode()  # 1: there are differences
    assert "-  level: one" in diff.stdout.decode() and "+  level: two" in diff.stdout.decode()
    ok(kubectl("scale", "deploy/api", "-n", scratch, "--replicas=5", "--dry-run=server"))
    ok(kubectl("delete", "cm", "settings", "-n", scratch, "--dry-run=server"))
    settings = _json(ok(kubectl("get", "cm", "settings", "-n", scratch, "-o", "json")))
    assert settings["data"] == {"level": "one"}
    assert len(_pod_names(kubectl, scratch, "app=api")) == 1


# -- watch from a resourceVersion ---------------------------------------------------------------


async def test_a_watch_from_a_resource_version_replays_the_changes_since(
    sandbox: Sandbox, scratch: str
) -> None:
    async with api_client(sandbox) as session:
        async with session.get(f"/api/v1/namespaces/{scratch}/configmaps") as response:
            version = (await response.json())["metadata"]["resourceVersion"]
        for name in ("one", "two"):
            body = {"metadata": {"name": name}, "data": {"a": "1"}}
            async with session.post(f"/api/v1/namespaces/{scratch}/configmaps", json=body):
                pass
        async with session.delete(f"/api/v1/namespaces/{scratch}/configmaps/one"):
            pass
        params = {"watch": "true", "timeoutSeconds": "1", "resourceVersion": version}
        async with session.get(
            f"/api/v1/namespaces/{scratch}/configmaps", params=params
        ) as response:
            lines = [json.loads(line) for line in (await response.read()).splitlines() if line]
    seen = [(event["type"], event["object"]["metadata"]["name"]) for event in lines]
    assert seen == [("ADDED", "one"), ("ADDED", "two"), ("DELETED", "one")]


async def test_a_watch_from_a_compacted_resource_version_is_410_expired(
    sandbox: Sandbox,
) -> None:
    cluster = sandbox.cluster
    assert cluster is not None

    def fill() -> None:  # more changes than the sandbox keeps, all after resourceVersion 1
        for number in range(5_001):
            cluster.history.append((10**9 + number, "pods", "MODIFIED", {}))

    sandbox.call(fill)
    try:
        params = {"watch": "true", "timeoutSeconds": "1", "resourceVersion": "1"}
        async with (
            api_client(sandbox) as session,
            session.get("/api/v1/namespaces/conf/pods", params=params) as response,
        ):
            (event,) = [json.loads(line) for line in (await response.read()).splitlines()]
    finally:
        sandbox.call(cluster.history.clear)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
