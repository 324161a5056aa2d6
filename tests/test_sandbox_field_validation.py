"""``fieldValidation`` (Strict / Warn / Ignore) on create, update and patch: fields a kind does
not declare are refused in the apiserver's words, or dropped with a ``Warning`` header that
kubectl prints, or dropped silently."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import KubectlRunner

from podmagic.sandbox import Sandbox

NS = "fieldcheck"
TYPO_POD = f"""
apiVersion: v1
kind: Pod
metadata: {{name: NAME, namespace: {NS}}}
spec:
  containers:
  - name: main
    image: busybox
    imagee: busybox:latest
"""


@pytest.fixture(scope="module")
def checked(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.apply(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}}}\n")
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NS)


def _call(
    sandbox: Sandbox, method: str, path: str, body: Any = None, content_type: str = ""
) -> tuple[int, list[str], dict[str, Any]]:
    request = urllib.request.Request(
        sandbox.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={
            "Authorization": f"Bearer {sandbox.token}",
            "Content-Type": content_type or "application/json",
        },
    )
    context = ssl.create_default_context(cadata=(sandbox.ca_pem or b"").decode())
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, answer.headers.get_all("Warning") or [], json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get_all("Warning") or [], json.loads(error.read())


def _pod(name: str, **extra: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox", **extra}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def test_strict_refuses_an_unknown_field_in_the_apiservers_words(checked: Sandbox) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    code, _, body = _call(checked, "POST", pods + "?fieldValidation=Strict", _pod("s", imagee="x"))
    assert code == 400 and body["reason"] == "BadRequest"
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].imagee"'
    )
    assert _call(checked, "GET", pods + "/s")[0] == 404  # nothing was created
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"replicas": 0, "selectr": {}, "template": {"metadata": {"labels": {"a": "b"}}}},
        "extra": True,
    }
    path = f"/apis/apps/v1/namespaces/{NS}/deployments?fieldValidation=Strict"
    code, _, body = _call(checked, "POST", path, deployment)
    assert code == 400
    assert body["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.selectr", unknown field "extra"'  # in the body's order
    )


def test_warn_is_the_default_and_drops_the_field_with_a_warning_header(checked: Sandbox) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    code, warnings, created = _call(checked, "POST", pods, _pod("w", imagee="x"))
    assert code == 201
    assert warnings == ['299 - "unknown field \\"spec.containers[0].imagee\\""']
    assert "imagee" not in created["spec"]["containers"][0]
    stored = _call(checked, "GET", pods + "/w")[2]
    assert "imagee" not in stored["spec"]["containers"][0]
    code, warnings, _ = _call(checked, "POST", pods + "?fieldValidation=Ignore", _pod("i", x=1))
    assert (code, warnings) == (201, [])
    code, warnings, _ = _call(checked, "POST", pods, _pod("clean"))
    assert (code, warnings) == (201, [])


def test_patches_are_checked_for_the_fields_they_bring(checked: Sandbox) -> None:
    maps = f"/api/v1/namespaces/{NS}/configmaps"
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}}
    assert _call(checked, "POST", maps, config)[0] == 201
    patch = {"data": {"k": "v"}, "dta": {"k": "v"}}
    merge = "application/merge-patch+json"
    code, _, body = _call(
        checked, "PATCH", maps + "/c?fieldValidation=Strict", patch, content_type=merge
    )
    assert (code, body["message"]) == (400, 'strict decoding error: unknown field "dta"')
    code, warnings, patched = _call(checked, "PATCH", maps + "/c", patch, content_type=merge)
    assert code == 200 and warnings == ['299 - "unknown field \\"dta\\""']
    assert patched["data"] == {"k": "v"} and "dta" not in patched
    code, warnings, _ = _call(
        checked, "PATCH", maps + "/c", {"metadata": {"labels": {"a": "b"}}}, content_type=merge
    )
    assert (code, warnings) == (200, [])


def test_an_unknown_directive_is_a_400(checked: Sandbox) -> None:
    path = f"/api/v1/namespaces/{NS}/pods?fieldValidation=Loose"
    code, _, body = _call(checked, "POST", path, _pod("bad"))
    assert code == 400
    assert body["message"] == (
        'fieldValidation: Unsupported value: "Loose": supported values: "Ignore", "Strict", "Warn"'
    )


@pytest.mark.parametrize("version", ["1.30", "1.33"])
def test_kubectl_prints_the_servers_verdict_for_each_validate_mode(
    version: str,
    checked: Sandbox,
    kubectl_factory: Callable[[str], KubectlRunner],
    tmp_path: Path,
) -> None:
    kubectl = kubectl_factory(version)
    name = "kubectl-" + version.replace(".", "-")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(TYPO_POD.replace("NAME", name))
    refused = kubectl("create", "-f", str(manifest))  # --validate=strict by default
    assert refused.returncode == 1
    assert (
        'Pod in version "v1" cannot be handled as a Pod: strict decoding error: '
        'unknown field "spec.containers[0].imagee"'
    ) in refused.stderr.decode()
    warned = kubectl("create", "--validate=warn", "-f", str(manifest))
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr.decode() == 'Warning: unknown field "spec.containers[0].imagee"\n'
    assert kubectl("delete", "pod", "-n", NS, name, "--wait=false").returncode == 0
    ignored = kubectl("create", "--validate=false", "-f", str(manifest))
    assert (ignored.returncode, ignored.stderr) == (0, b"")
