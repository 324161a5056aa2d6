"""RBAC enforced for tokens the sandbox issues to named users and service accounts: the
Role/ClusterRole/RoleBinding/ClusterRoleBinding objects of the manifest or the API decide, in
the apiserver's words, and the access reviews (``kubectl auth can-i``, ``auth whoami``)
answer from the same rules. The sandbox's own user stays all-powerful.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import KubectlRunner

from podmagic import Cluster
from podmagic.sandbox import Sandbox
from podmagic.sandbox._rbac import Attributes, request_attributes, rule_allows

NS = "rbac"

MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: {NS}, labels: {{app: web}}}}
spec:
  containers: [{{name: main, image: busybox}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: db, namespace: {NS}, labels: {{app: db}}}}
spec:
  containers: [{{name: main, image: busybox}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: robot, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader, namespace: {NS}}}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/exec]
  resourceNames: [web]
  verbs: [create, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: alice-reads, namespace: {NS}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}}
- {{kind: ServiceAccount, name: robot, namespace: {NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: namespace-lister}}
rules:
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: auditors-list-namespaces}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: namespace-lister}}
subjects:
- {{apiGroup: rbac.authorization.k8s.io, kind: Group, name: auditors}}
"""


@pytest.fixture(scope="module")
def rbac(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.apply(MANIFEST)
    yield sandbox
    assert sandbox.cluster is not None
    for kind, name in (
        ("clusterrolebindings", "auditors-list-namespaces"),
        ("clusterroles", "namespace-lister"),
    ):
        _call(sandbox, "DELETE", f"/apis/rbac.authorization.k8s.io/v1/{kind}/{name}")
    sandbox.call(sandbox.cluster.delete_namespace, NS)


@pytest.fixture(scope="module")
def alice(rbac: Sandbox) -> str:
    return rbac.issue_token(user="alice", groups=["auditors"])


def _call(
    sandbox: Sandbox, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        sandbox.url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {token or sandbox.token}",
            "Content-Type": "application/json",
        },
    )
    context = ssl.create_default_context(cadata=(sandbox.ca_pem or b"").decode())
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def _kubectl_as(
    kubectl_factory: Callable[[str], KubectlRunner], version: str, token: str
) -> Callable[..., tuple[int, str, str]]:
    kubectl = kubectl_factory(version)

    def run(*args: str) -> tuple[int, str, str]:
        done = kubectl("--token", token, *args)
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    return run


def test_a_named_user_may_do_what_its_role_binding_allows(rbac: Sandbox, alice: str) -> None:
    code, listed = _call(rbac, "GET", f"/api/v1/namespaces/{NS}/pods", alice)
    assert code == 200
    assert sorted(item["metadata"]["name"] for item in listed["items"]) == ["db", "web"]
    code, _ = _call(rbac, "GET", f"/api/v1/namespaces/{NS}/pods/web", alice)
    assert code == 200
    code, _ = _call(rbac, "GET", "/api/v1/namespaces", alice)  # through its group, cluster-wide
    assert code == 200


def test_a_named_user_is_refused_the_rest_in_the_apiservers_words(
    rbac: Sandbox, alice: str
) -> None:
    code, body = _call(rbac, "GET", "/api/v1/namespaces/default/pods", alice)
    assert code == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
        'in the namespace "default"'
    )
    code, body = _call(rbac, "DELETE", f"/api/v1/namespaces/{NS}/pods/web", alice)
    assert code == 403
    assert body["message"] == (
        'pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" '
        f'in the namespace "{NS}"'
    )
    assert body["details"] == {"name": "web", "kind": "pods"}
    code, body = _call(rbac, "GET", "/apis/apps/v1/deployments", alice)
    assert code == 403
    assert body["message"] == (
        'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in '
        'API group "apps" at the cluster scope'
    )
    code, body = _call(rbac, "GET", "/api/v1/nodes/sandbox-node-1", alice)
    assert code == 403 and body["details"] == {"name": "sandbox-node-1", "kind": "nodes"}
    code, _ = _call(rbac, "GET", f"/api/v1/namespaces/{NS}/pods", rbac.token)
    assert code == 200  # the sandbox's own user stays all-powerful


def test_bindings_created_through_the_api_take_effect_at_once(rbac: Sandbox) -> None:
    bob = rbac.issue_token(user="bob")
    path = f"/api/v1/namespaces/{NS}/configmaps"
    assert _call(rbac, "GET", path, bob)[0] == 403
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bob-views", "namespace": NS},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
    }
    bindings = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/rolebindings"
    assert _call(rbac, "POST", bindings, body=binding)[0] == 201
    assert _call(rbac, "GET", path, bob)[0] == 200  # the built-in `view` ClusterRole
    secrets = f"/api/v1/namespaces/{NS}/secrets"
    assert _call(rbac, "GET", secrets, bob)[0] == 403, "view does not read secrets"
    assert _call(rbac, "DELETE", f"{bindings}/bob-views")[0] == 200
    assert _call(rbac, "GET", path, bob)[0] == 403


def test_kubectl_auth_can_i_and_whoami_answer_from_the_same_rules(
    rbac: Sandbox, alice: str, kubectl_factory: Callable[[str], KubectlRunner]
) -> None:
    kubectl = _kubectl_as(kubectl_factory, "1.33", alice)
    assert kubectl("auth", "can-i", "list", "pods", "-n", NS)[:2] == (0, "yes\n")
    assert kubectl("auth", "can-i", "list", "pods", "-n", "default")[:2] == (1, "no\n")
    exec_in = ("auth", "can-i", "create", "--subresource=exec", "-n", NS)
    assert kubectl(*exec_in, "pods/db")[:2] == (1, "no\n")
    assert kubectl(*exec_in, "pods/web")[:2] == (0, "yes\n")
    assert kubectl("auth", "can-i", "list", "namespaces")[:2] == (0, "yes\n")
    code, listed, _ = kubectl("auth", "can-i", "--list", "-n", NS)
    assert code == 0
    assert "pods/exec" in listed and "[web]" in listed
    code, whoami, _ = kubectl("auth", "whoami", "-o", "json")
    assert code == 0
    info = json.loads(whoami)["status"]["userInfo"]
    assert info == {"username": "alice", "groups": ["auditors", "system:authenticated"]}


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_kubectl_exec_is_allowed_by_resource_name_and_refused_elsewhere(
    version: str, rbac: Sandbox, alice: str, kubectl_factory: Callable[[str], KubectlRunner]
) -> None:
    kubectl = _kubectl_as(kubectl_factory, version, alice)
    assert kubectl("exec", "-n", NS, "web", "--", "echo", "in web")[:2] == (0, "in web\n")
    code, _, stderr = kubectl("exec", "-n", NS, "db", "--", "echo", "in db")
    assert code == 1
    assert (
        'pods "db" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" '
        f'in the namespace "{NS}"'
    ) in stderr


def test_a_service_account_token_is_held_to_its_bindings(
    rbac: Sandbox, kubectl_factory: Callable[[str], KubectlRunner]
) -> None:
    admin = kubectl_factory("1.33")
    created = admin("create", "token", "robot", "-n", NS)
    assert created.returncode == 0, created.stderr
    robot = _kubectl_as(kubectl_factory, "1.33", created.stdout.decode().strip())
    code, names, _ = robot("get", "pods", "-n", NS, "-o", "name")
    assert (code, names) == (0, "pod/db\npod/web\n")
    code, _, stderr = robot("get", "configmaps", "-n", NS)
    assert code == 1
    assert (
        f'User "system:serviceaccount:{NS}:robot" cannot list resource "configmaps" '
        f'in API group "" in the namespace "{NS}"'
    ) in stderr


def test_podmagic_shows_its_hint_on_a_forbidden_exec(
    rbac: Sandbox, alice: str, tmp_path: Path
) -> None:
    assert rbac.kubeconfig is not None
    config = yaml.safe_load(Path(rbac.kubeconfig).read_text())
    for user in config["users"]:
        user["user"] = {"token": alice}
    kubeconfig = tmp_path / "alice.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    results = Cluster(kubeconfig=kubeconfig, namespace=NS).run("echo ran", ["web", "db"])
    outcome = {result.pod: result for result in results}
    assert outcome["web"].ok and outcome["web"].stdout == b"ran\n"
    error = outcome["db"].error or ""
    assert "exec could not start (HTTP 403)" in error
    assert 'pods "db" is forbidden: User "alice" cannot get resource "pods/exec"' in error
    assert "kubectl auth can-i create pods/exec" in error


# -- the authorizer's pieces --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/n/pods", {}, ("list", "", "pods", "", "n", "")),
        ("GET", "/api/v1/namespaces/n/pods", {"watch": "true"}, ("watch", "", "pods", "", "n", "")),
        ("GET", "/api/v1/watch/namespaces/n/pods/p", {}, ("watch", "", "pods", "", "n", "p")),
        ("POST", "/api/v1/namespaces/n/pods/p/exec", {}, ("create", "", "pods", "exec", "n", "p")),
        ("GET", "/api/v1/namespaces/n/pods/p/log", {}, ("get", "", "pods", "log", "n", "p")),
        ("DELETE", "/api/v1/namespaces/n/pods", {}, ("deletecollection", "", "pods", "", "n", "")),
        ("GET", "/api/v1/namespaces/n", {}, ("get", "", "namespaces", "", "n", "n")),
        (
            "PUT",
            "/api/v1/namespaces/n/status",
            {},
            ("update", "", "namespaces", "status", "n", "n"),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/n/deployments/d/scale",
            {},
            ("patch", "apps", "deployments", "scale", "n", "d"),
        ),
        ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", "")),
    ],
)
def test_request_attributes_read_the_path_as_the_apiserver_does(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    asked = request_attributes(method, path, query)
    assert (
        asked.verb,
        asked.group,
        asked.resource,
        asked.subresource,
        asked.namespace,
        asked.name,
    ) == expected


def test_rules_match_subresources_resource_names_and_paths_as_the_rbac_authorizer() -> None:
    exec_web = Attributes("create", "", "pods", "exec", "", "n", "web")
    assert not rule_allows({"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}, exec_web)
    assert rule_allows({"verbs": ["create"], "apiGroups": [""], "resources": ["*/exec"]}, exec_web)
    assert rule_allows({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, exec_web)
    named = {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/exec"]}
    assert rule_allows({**named, "resourceNames": ["web"]}, exec_web)
    assert not rule_allows({**named, "resourceNames": ["db"]}, exec_web)
    assert not rule_allows({**named, "apiGroups": ["apps"]}, exec_web)
    version = Attributes("get", "/version")
    assert rule_allows({"verbs": ["get"], "nonResourceURLs": ["/version"]}, version)
    assert rule_allows({"verbs": ["get"], "nonResourceURLs": ["/ver*"]}, version)
    assert not rule_allows({"verbs": ["get"], "nonResourceURLs": ["/api/*"]}, version)
