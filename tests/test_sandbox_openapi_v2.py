"""``/openapi/v2``: the Swagger 2.0 document as JSON, negotiated as kube-openapi does, and
kubectl's protobuf request answered so that kubectl carries on (v3 keeps working)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import KubectlRunner

from podmagic.sandbox import Sandbox

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _get(sandbox: Sandbox, path: str, accept: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    if accept is not None:
        headers["Accept"] = accept
    request = urllib.request.Request(sandbox.url + path, headers=headers)
    context = ssl.create_default_context(cadata=(sandbox.ca_pem or b"").decode())
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


@pytest.mark.parametrize("accept", [None, "application/json", "application/json, */*", "*/*"])
def test_openapi_v2_is_a_swagger_document_whose_references_resolve(
    sandbox: Sandbox, accept: str | None
) -> None:
    code, headers, body = _get(sandbox, "/openapi/v2", accept)
    assert code == 200 and headers["Content-Type"] == "application/json"
    document = json.loads(body)
    assert document["swagger"] == "2.0"
    definitions = document["definitions"]
    for ref in _refs(document):
        assert (
            ref.startswith("#/definitions/") and ref.removeprefix("#/definitions/") in definitions
        )
    pods = document["paths"]["/api/v1/namespaces/{namespace}/pods"]
    assert pods["get"]["x-kubernetes-action"] == "list"
    assert pods["get"]["x-kubernetes-group-version-kind"] == {
        "group": "",
        "version": "v1",
        "kind": "Pod",
    }
    patch = document["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert "fieldValidation" in [parameter["name"] for parameter in patch["parameters"]]
    pod = definitions["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    assert pod["properties"]["spec"] == {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec"}
    assert "containers" in definitions["io.k8s.api.core.v1.PodSpec"]["properties"]


def test_openapi_v2_for_a_protobuf_only_accept_is_406_and_the_etag_is_stable(
    sandbox: Sandbox,
) -> None:
    code, headers, body = _get(sandbox, "/openapi/v2", PROTOBUF_V2)
    assert (code, body) == (406, b"")
    assert headers["Vary"] == "Accept"
    first = _get(sandbox, "/openapi/v2", None)[1]["Etag"]
    assert first == headers["Etag"] and first.startswith('"')


def test_kubectl_applies_an_existing_object_with_v2_refused_and_v3_served(
    sandbox: Sandbox, kubectl_factory: Callable[[str], KubectlRunner], tmp_path: Path
) -> None:
    kubectl = kubectl_factory("1.33")
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: v2-check, namespace: default}\n"
        "data: {a: '1'}\n"
    )
    first = kubectl("apply", "-f", str(manifest))
    assert first.returncode == 0, first.stderr
    manifest.write_text(manifest.read_text().replace("'1'", "'2'"))
    second = kubectl("apply", "-f", str(manifest), "-v=6")
    assert second.returncode == 0
    assert second.stdout.decode() == "configmap/v2-check configured\n"
    log = second.stderr.decode()
    assert "/openapi/v3" in log
    v2 = [line for line in log.splitlines() if "/openapi/v2" in line]
    assert v2 and all("406 Not Acceptable" in line for line in v2)
    assert "warning" not in "\n".join(
        line for line in log.splitlines() if "round_trippers" not in line and "patcher" not in line
    )
    assert kubectl("get", "configmap", "v2-check", "-o", "jsonpath={.data.a}").stdout == b"2"
    assert kubectl("delete", "configmap", "v2-check").returncode == 0
