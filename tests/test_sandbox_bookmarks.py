"""Watch bookmarks: ``allowWatchBookmarks`` (BOOKMARK events carrying only a
``resourceVersion``) and ``sendInitialEvents`` with ``resourceVersionMatch=NotOlderThan``
(the current objects, then the ``k8s.io/initial-events-end`` bookmark, then the changes),
read with the official client's ``Watch``."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from podmagic.sandbox import Sandbox, _bookmarks

NS = "bookmarks"
MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: first, namespace: {NS}}}
spec:
  containers: [{{name: main, image: busybox}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: second, namespace: {NS}}}
spec:
  containers: [{{name: main, image: busybox}}]
"""


@pytest.fixture(scope="module")
def marked(sandbox: Sandbox) -> Iterator[Sandbox]:
    sandbox.apply(MANIFEST)
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NS)


@pytest.fixture
def core(marked: Sandbox) -> Iterator[Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(str(marked.kubeconfig))
    with api_client:
        yield client.CoreV1Api(api_client)


def test_send_initial_events_ends_the_current_objects_with_the_annotated_bookmark(
    marked: Sandbox, core: Any
) -> None:
    from kubernetes import watch

    watcher = watch.Watch()
    seen: list[tuple[str, str]] = []
    stream = watcher.stream(
        core.list_namespaced_pod,
        NS,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        timeout_seconds=60,
    )
    for event in stream:
        raw = event["raw_object"]
        if event["type"] == "BOOKMARK":
            assert raw["kind"] == "Pod" and raw["apiVersion"] == "v1"
            assert raw["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
            assert int(raw["metadata"]["resourceVersion"]) >= max(
                int(core.read_namespaced_pod(name, NS).metadata.resource_version)
                for name in ("first", "second")
            )
            seen.append(("BOOKMARK", ""))
            core.create_namespaced_pod(
                NS,
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "third"},
                    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                },
            )
            continue
        seen.append((event["type"], raw["metadata"]["name"]))
        if raw["metadata"]["name"] == "third":
            break
    watcher.stop()
    assert seen[:4] == [
        ("ADDED", "first"),
        ("ADDED", "second"),
        ("BOOKMARK", ""),
        ("ADDED", "third"),
    ]
    core.delete_namespaced_pod("third", NS, grace_period_seconds=0)


def test_a_quiet_watch_that_allows_bookmarks_gets_one_with_the_current_resource_version(
    marked: Sandbox, core: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes import watch

    monkeypatch.setattr(_bookmarks, "BOOKMARK_INTERVAL", 0.1)
    current = core.list_namespaced_pod(NS).metadata.resource_version
    watcher = watch.Watch()
    stream = watcher.stream(
        core.list_namespaced_pod,
        NS,
        allow_watch_bookmarks=True,
        resource_version=current,
        timeout_seconds=60,
    )
    event = next(iter(stream))
    watcher.stop()
    assert event["type"] == "BOOKMARK"
    raw = event["raw_object"]
    assert set(raw) == {"kind", "apiVersion", "metadata"} and raw["kind"] == "Pod"
    assert int(raw["metadata"]["resourceVersion"]) >= int(current)
    assert "annotations" not in raw["metadata"]


def _get(sandbox: Sandbox, path: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        sandbox.url + path, headers={"Authorization": f"Bearer {sandbox.token}"}
    )
    context = ssl.create_default_context(cadata=(sandbox.ca_pem or b"").decode())
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, json.loads(answer.read().splitlines()[0])
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@pytest.mark.parametrize(
    ("query", "field", "detail"),
    [
        (
            "sendInitialEvents=true&allowWatchBookmarks=true",
            "sendInitialEvents",
            "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ),
        (
            "sendInitialEvents=true&resourceVersionMatch=NotOlderThan",
            "allowWatchBookmarks",
            "sendInitialEvents requires setting allowWatchBookmarks to true",
        ),
        (
            "resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
    ],
)
def test_watch_list_options_the_apiserver_refuses_are_422(
    marked: Sandbox, query: str, field: str, detail: str
) -> None:
    code, body = _get(marked, f"/api/v1/namespaces/{NS}/pods?watch=true&{query}")
    assert code == 422
    assert body["reason"] == "Invalid"
    assert body["message"] == f'ListOptions.meta.k8s.io "" is invalid: {field}: Forbidden: {detail}'
