"""What other clients' own test suites (scripts/client-suites) need of the sandbox's REST API,
checked with those clients' APIs directly: the official client's quoting of a Status body,
kr8s's ``whoami`` (a TokenReview of its own token) and ``tolerate`` (a pod update that adds
tolerations).

Each test fails on a sandbox that lacks what it checks; the clients are required under CI.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from _waiting import await_until
from conftest import KubectlRunner
from sandbox_client import api_client

# The fixtures the client tests share (kr8s's API for the sandbox, kubectl 1.33, a namespace
# per test), imported rather than copied.
from test_sandbox_clients import (  # noqa: F401
    _required,
    kr8s,
    kr8s_api,
    kubectl,
    kubectl133,
    ok,
    scratch,
)

from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.anyio


def _official(sandbox: Sandbox) -> tuple[ModuleType, Any]:
    kubernetes = _required("kubernetes")
    return kubernetes, kubernetes.config.new_client_from_config(config_file=str(sandbox.kubeconfig))


# -- Status bodies --------------------------------------------------------------------------------


def test_a_conflict_is_the_apiservers_compact_status_naming_the_group(
    sandbox: Sandbox,
    scratch: str,  # noqa: F811
) -> None:
    # kubernetes/e2e_test/test_utils.py compares FailToCreateError's text, which quotes the
    # body as sent: Go's encoder writes it compact, newline-ended, the group in the name.
    kubernetes, client = _official(sandbox)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "twice"},
        "spec": {
            "selector": {"matchLabels": {"app": "twice"}},
            "template": {
                "metadata": {"labels": {"app": "twice"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    with client:
        kubernetes.utils.create_from_dict(client, deployment, namespace=scratch)
        with pytest.raises(kubernetes.utils.FailToCreateError) as failure:
            kubernetes.utils.create_from_dict(client, deployment, namespace=scratch)
    assert str(failure.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"deployments.apps \\"twice\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"twice","group":"apps",'
        '"kind":"deployments"},"code":409}\n'
    )


def test_a_conflict_on_a_core_kind_names_no_group(
    sandbox: Sandbox,
    scratch: str,  # noqa: F811
) -> None:
    kubernetes, client = _official(sandbox)
    with client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map(scratch, {"metadata": {"name": "c"}})
        with pytest.raises(kubernetes.client.ApiException) as failure:
            core.create_namespaced_config_map(scratch, {"metadata": {"name": "c"}})
    assert failure.value.status == 409
    assert failure.value.body.endswith("}\n") and ", " not in failure.value.body
    assert json.loads(failure.value.body)["details"] == {"name": "c", "kind": "configmaps"}


def test_official_client_creates_reads_and_deletes_an_apiservice_from_yaml(
    sandbox: Sandbox, tmp_path: Any
) -> None:
    # kubernetes/e2e_test/test_utils.py's test_create_apiservice_from_yaml_with_conflict:
    # stored and served (not aggregated), and a second create is the apiserver's 409.
    kubernetes, client = _official(sandbox)
    manifest = tmp_path / "api-service.yaml"
    manifest.write_text(
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\n"
        "metadata: {name: v1alpha1.wardle.k8s.io}\n"
        "spec: {insecureSkipTLSVerify: true, group: wardle.k8s.io, groupPriorityMinimum: 1000,"
        " versionPriority: 15, service: {name: api, namespace: wardle}, version: v1alpha1}\n"
    )
    with client:
        kubernetes.utils.create_from_yaml(client, str(manifest))
        registration = kubernetes.client.ApiregistrationV1Api(client)
        try:
            read = registration.read_api_service("v1alpha1.wardle.k8s.io")
            listed = [s.metadata.name for s in registration.list_api_service().items]
            with pytest.raises(kubernetes.utils.FailToCreateError) as again:
                kubernetes.utils.create_from_yaml(client, str(manifest))
            groups = [g.name for g in kubernetes.client.ApisApi(client).get_api_versions().groups]
        finally:
            registration.delete_api_service("v1alpha1.wardle.k8s.io")
        with pytest.raises(kubernetes.client.ApiException) as gone:
            registration.read_api_service("v1alpha1.wardle.k8s.io")
    assert (read.spec.group, read.spec.version, read.metadata.namespace) == (
        "wardle.k8s.io",
        "v1alpha1",
        None,
    )
    assert "v1alpha1.wardle.k8s.io" in listed
    assert str(again.value) == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"apiservices.apiregistration.k8s.io '
        '\\"v1alpha1.wardle.k8s.io\\" already exists","reason":"AlreadyExists",'
        '"details":{"name":"v1alpha1.wardle.k8s.io","group":"apiregistration.k8s.io",'
        '"kind":"apiservices"},"code":409}\n'
    )
    assert "apiregistration.k8s.io" in groups and "wardle.k8s.io" not in groups
    assert gone.value.status == 404


def test_kubectl_top_and_debug_answer_as_a_cluster_without_metrics_or_ephemeral_containers(
    sandbox: Sandbox,
    kubectl: KubectlRunner,  # noqa: F811
    scratch: str,  # noqa: F811
) -> None:
    # The issue: `top` says the Metrics API is not available and `debug` refuses clearly, as a
    # cluster without metrics-server and ephemeral containers does.
    sandbox.apply(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: box, namespace: {scratch}}}\n"
        "spec: {containers: [{name: main, image: busybox}]}\n"
    )
    ok(kubectl("wait", "--for=condition=Ready", "pod/box", "-n", scratch, "--timeout=60s"))
    for command in (["top", "pod"], ["top", "node"]):
        answer = kubectl(*command, "-n", scratch)
        assert answer.returncode == 1
        assert answer.stderr.decode().strip() == "error: Metrics API not available"
    debug = kubectl("debug", "box", "-n", scratch, "--image=busybox", "--", "true")
    assert debug.returncode == 1
    assert "error: ephemeral containers are disabled for this cluster" in debug.stderr.decode()


# -- TokenReview ----------------------------------------------------------------------------------


async def test_kr8s_whoami_reviews_its_token(kr8s_api: Any) -> None:  # noqa: F811
    assert await kr8s_api.whoami() == "sandbox-user"


def test_a_token_review_authenticates_only_the_sandboxs_tokens(sandbox: Sandbox) -> None:
    kubernetes, client = _official(sandbox)
    issued = sandbox.issue_token()
    with client:
        auth = kubernetes.client.AuthenticationV1Api(client)
        answers = {
            token: auth.create_token_review({"spec": {"token": token}}).status
            for token in (sandbox.token, issued, "not-a-sandbox-token")
        }
    assert answers[sandbox.token].authenticated is True
    assert answers[sandbox.token].user.username == "sandbox-user"
    assert answers[issued].authenticated is True
    assert answers["not-a-sandbox-token"].authenticated is False
    assert answers["not-a-sandbox-token"].user is None


def test_discovery_lists_tokenreviews(sandbox: Sandbox) -> None:
    kubernetes, client = _official(sandbox)
    with client:
        listed = kubernetes.client.AuthenticationV1Api(client).get_api_resources()
    assert "tokenreviews" in [resource.name for resource in listed.resources]


# -- pod tolerations ------------------------------------------------------------------------------


async def test_kr8s_tolerate_adds_tolerations_to_a_pod(
    kr8s_api: Any,  # noqa: F811
    kr8s: ModuleType,  # noqa: F811
    scratch: str,  # noqa: F811
) -> None:
    spec = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tolerant", "namespace": scratch},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    pod = await kr8s.asyncio.objects.Pod(spec, api=kr8s_api)
    await pod.create()
    await pod.tolerate("key1", operator="Exists", effect="NoSchedule")
    await pod.tolerate("key2", operator="Equal", value="v", effect="NoExecute")
    again = await kr8s.asyncio.objects.Pod.get("tolerant", namespace=scratch, api=kr8s_api)
    added = [t for t in again.spec["tolerations"] if t["key"] in ("key1", "key2")]
    assert [t["key"] for t in added] == ["key1", "key2"]
    assert added[1] == {"key": "key2", "operator": "Equal", "value": "v", "effect": "NoExecute"}


def test_a_pod_update_may_not_remove_a_toleration(
    sandbox: Sandbox,
    scratch: str,  # noqa: F811
) -> None:
    kubernetes, client = _official(sandbox)
    with client:
        core = kubernetes.client.CoreV1Api(client)
        pod = {
            "metadata": {"name": "held"},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
            },
        }
        core.create_namespaced_pod(scratch, pod)
        fewer = [{"op": "replace", "path": "/spec/tolerations", "value": []}]
        with pytest.raises(kubernetes.client.ApiException) as failure:
            core.patch_namespaced_pod("held", scratch, fewer)
        kept = core.read_namespaced_pod("held", scratch).spec.tolerations
    assert failure.value.status == 422
    assert "only additions to existing tolerations" in json.loads(failure.value.body)["message"]
    assert [t.key for t in kept if t.key == "k"] == ["k"]


async def test_kr8s_adopt_sets_a_pods_owner_and_deleting_the_owner_collects_the_pod(
    kr8s_api: Any,  # noqa: F811
    kr8s: ModuleType,  # noqa: F811
    scratch: str,  # noqa: F811
) -> None:
    # kr8s's test_adoption: Service.adopt(pod) PATCHes the pod's ownerReferences; deleting the
    # Service then deletes the pod (background cascading applies to any owner).
    objects = kr8s.asyncio.objects
    pod = await objects.Pod(
        {
            "metadata": {"name": "adopted", "namespace": scratch},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
        api=kr8s_api,
    )
    await pod.create()
    service = await objects.Service(
        {"metadata": {"name": "parent", "namespace": scratch}, "spec": {"ports": [{"port": 80}]}},
        api=kr8s_api,
    )
    await service.create()
    await service.adopt(pod)
    again = await objects.Pod.get("adopted", namespace=scratch, api=kr8s_api)
    for seen in (pod, again):
        [owner] = seen.metadata["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "Service",
            "parent",
            service.metadata.uid,
        )
    await service.delete()
    await await_until(lambda: _gone(pod), what="the adopted pod deleted with its owner")


async def _gone(pod: Any) -> bool:
    return not await pod.exists()


# -- the API server's Service -----------------------------------------------------------------------


async def test_kr8s_finds_the_kubernetes_service_in_default(
    kr8s_api: Any,  # noqa: F811
    kr8s: ModuleType,  # noqa: F811
) -> None:
    # kr8s's test_service_proxy looks it up, as every cluster has it.
    service = await anext(kr8s_api.get("services", "kubernetes", namespace="default"))
    assert isinstance(service, kr8s.asyncio.objects.Service)
    assert service.spec["clusterIP"] == "10.96.0.1"
    assert service.spec["ports"][0]["port"] == 443
    assert "selector" not in service.spec


# -- RBAC objects -----------------------------------------------------------------------------------


def test_official_client_stores_roles_and_cluster_roles_with_their_bindings(
    sandbox: Sandbox,
    scratch: str,  # noqa: F811
) -> None:
    # kubernetes/e2e_test/test_utils.py creates a Role from YAML; kr8s's fixtures apply a
    # ClusterRole and ClusterRoleBindings. Stored and served, not enforced.
    kubernetes, client = _official(sandbox)
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    subject = {"kind": "ServiceAccount", "name": "default", "namespace": scratch}
    with client:
        rbac = kubernetes.client.RbacAuthorizationV1Api(client)
        rbac.create_namespaced_role(scratch, {"metadata": {"name": "reader"}, "rules": [rule]})
        rbac.create_namespaced_role_binding(
            scratch,
            {
                "metadata": {"name": "reads"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                "subjects": [subject],
            },
        )
        rbac.create_cluster_role({"metadata": {"name": "suite-reader"}, "rules": [rule]})
        try:
            role = rbac.read_namespaced_role("reader", scratch)
            cluster_role = rbac.read_cluster_role("suite-reader")
            bindings = rbac.list_namespaced_role_binding(scratch).items
            listed = [r.metadata.name for r in rbac.list_cluster_role().items]
        finally:
            rbac.delete_cluster_role("suite-reader")
        with pytest.raises(kubernetes.client.ApiException) as gone:
            rbac.read_cluster_role("suite-reader")
    assert role.rules[0].verbs == ["get", "list"] and role.metadata.namespace == scratch
    assert cluster_role.rules[0].resources == ["pods"] and cluster_role.metadata.namespace is None
    assert [b.subjects[0].name for b in bindings] == ["default"]
    assert "suite-reader" in listed
    assert gone.value.status == 404


async def test_kr8s_finds_roles_by_each_of_their_names(
    kr8s_api: Any,  # noqa: F811
    scratch: str,  # noqa: F811
) -> None:
    # kr8s's test_api_names: the plural, with its group, and with group and version.
    for name in ("roles", "roles.rbac.authorization.k8s.io", "roles.v1.rbac.authorization.k8s.io"):
        assert [role async for role in kr8s_api.get(name, namespace=scratch)] == []


async def test_cluster_scoped_routes_answer_404_for_kinds_without_them(sandbox: Sandbox) -> None:
    # The routes for ClusterRoles and the like take any plural: a namespaced kind or an
    # unknown one is still 404 there, as before they existed.
    async with api_client(sandbox) as session:
        for method, path in [
            ("GET", "/apis/apps/v1/deployments/web"),
            ("PUT", "/apis/apps/v1/deployments/web"),
            ("DELETE", "/apis/rbac.authorization.k8s.io/v1/roles/r"),
            ("POST", "/apis/rbac.authorization.k8s.io/v1/roles"),
            ("POST", "/apis/apps/v1/nothings"),
        ]:
            async with session.request(method, path, json={"metadata": {"name": "r"}}) as answer:
                assert (method, path, answer.status) == (method, path, 404)


# -- service-account tokens -------------------------------------------------------------------------


def test_kubectl_133_creates_a_token_whose_review_names_the_service_account(
    sandbox: Sandbox,
    kubectl133: KubectlRunner,  # noqa: F811
    scratch: str,  # noqa: F811
) -> None:
    # kr8s's fixtures run `kubectl create token` (1.33 sends the TokenRequest as protobuf)
    # and log in with the token, in a kubeconfig or as in-cluster credentials.
    ok(kubectl133("create", "serviceaccount", "robot", "-n", scratch))
    token = ok(kubectl133("create", "token", "robot", "-n", scratch, "--duration=20m")).strip()
    whoami = ok(kubectl133("auth", "whoami", "--token", token))
    assert f"system:serviceaccount:{scratch}:robot" in whoami
    assert f"system:serviceaccounts:{scratch}" in whoami
    kubernetes, client = _official(sandbox)
    with client:
        auth = kubernetes.client.AuthenticationV1Api(client)
        review = auth.create_token_review({"spec": {"token": token}}).status
    assert review.authenticated is True
    assert review.user.username == f"system:serviceaccount:{scratch}:robot"


def test_a_token_request_is_refused_as_the_apiserver_refuses_it(
    sandbox: Sandbox,
    scratch: str,  # noqa: F811
) -> None:
    kubernetes, client = _official(sandbox)
    with client:
        core = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_service_account(scratch, {"metadata": {"name": "robot"}})
        issued = core.create_namespaced_service_account_token("robot", scratch, {"spec": {}})
        failures = {}
        for name, seconds in [("robot", 60), ("nobody", 3600)]:
            body = {"spec": {"expirationSeconds": seconds}}
            with pytest.raises(kubernetes.client.ApiException) as failure:
                core.create_namespaced_service_account_token(name, scratch, body)
            failures[name] = failure.value
    assert issued.status.token and issued.spec.expiration_seconds == 3600
    assert failures["robot"].status == 422
    assert json.loads(failures["robot"].body)["message"] == (
        'TokenRequest "robot" is invalid: spec.expirationSeconds: Invalid value: 60: '
        "may not specify a duration less than 10 minutes"
    )
    assert failures["nobody"].status == 404


def test_kubectl_133_creates_roles_and_bindings_sent_as_protobuf(
    kubectl133: KubectlRunner,  # noqa: F811
    scratch: str,  # noqa: F811
) -> None:
    ok(kubectl133("create", "role", "r", "-n", scratch, "--verb=get,list", "--resource=pods"))
    ok(kubectl133("create", "rolebinding", "rb", "-n", scratch, "--role=r", "--user=bob"))
    role = json.loads(ok(kubectl133("get", "role", "r", "-n", scratch, "-o", "json")))
    binding = json.loads(ok(kubectl133("get", "rolebinding", "rb", "-n", scratch, "-o", "json")))
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "r",
    }
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}
    ]


async def test_a_wrong_token_is_401_even_where_no_token_is_needed(sandbox: Sandbox) -> None:
    # kr8s's test_bad_auth: a service account whose token file holds junk gets Unauthorized
    # from GET /version, as the apiserver authenticates whatever token it is sent.
    answers = {}
    for token in (None, "sandbox", "abc123"):
        async with api_client(sandbox, token=token) as session:
            for path in ("/version", "/healthz"):
                async with session.get(path) as answer:
                    answers[token, path] = answer.status
    assert answers == {
        (None, "/version"): 200,
        (None, "/healthz"): 200,
        ("sandbox", "/version"): 200,
        ("sandbox", "/healthz"): 200,
        ("abc123", "/version"): 401,
        ("abc123", "/healthz"): 401,
    }
