"""Typed views over pod JSON: what podmagic reads, and that broken objects read as unknown."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from podmagic._podview import ObjectView, PodView, parse_time

POD: dict[str, Any] = {
    "metadata": {
        "name": "web-1",
        "namespace": "demo",
        "uid": "u-1",
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/default-container": "app"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f7", "uid": "rs-1"}],
        "creationTimestamp": "2024-05-01T10:00:00Z",
    },
    "spec": {
        "nodeName": "node-1",
        "containers": [{"name": "proxy"}, {"name": "app"}],
        "initContainers": [{"name": "sidecar"}],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:01:00+02:00"}
        ],
        "containerStatuses": [
            {"name": "proxy", "restartCount": 1},
            {"name": "app", "restartCount": 4},
        ],
        "initContainerStatuses": [{"name": "sidecar", "restartCount": 9}],
    },
}


def test_reads_what_resolution_and_the_engine_use() -> None:
    pod = PodView(POD)
    assert (pod.name, pod.namespace, pod.uid, pod.node, pod.phase) == (
        "web-1",
        "demo",
        "u-1",
        "node-1",
        "Running",
    )
    assert pod.ready and not pod.deleting
    assert pod.ready_since == datetime(2024, 5, 1, 8, 1, tzinfo=timezone.utc)
    assert pod.created == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
    assert pod.container_names() == ("proxy", "app")
    assert pod.has_container("sidecar") and not pod.has_container("db")
    assert pod.default_container == "app"  # named by the annotation
    assert (pod.restart_count("app"), pod.restart_count("sidecar")) == (4, 9)
    assert pod.max_restarts == 4  # regular containers only, as kubectl ranks pods
    assert pod.labels == {"app": "web"}
    assert [ref["name"] for ref in pod.owner_references] == ["web-5d8f7"]


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"metadata": None, "spec": "x", "status": []},
        {"metadata": {"name": 3, "labels": None}, "spec": {"containers": [None, {"name": 1}]}},
        {"status": {"conditions": "Ready", "containerStatuses": [{"restartCount": True}]}},
    ],
)
def test_missing_or_mistyped_fields_read_as_unknown(broken: dict[str, Any]) -> None:
    pod = PodView(broken)
    assert (pod.name, pod.namespace, pod.uid, pod.phase) == ("", "", "", "")
    assert pod.node is None and pod.default_container is None
    assert not pod.ready and pod.ready_since is None and pod.created is None
    assert pod.container_names() == () and pod.owner_references == ()
    assert pod.restart_count("app") == 0 and pod.max_restarts == 0
    assert dict(pod.labels) == {} and dict(ObjectView(broken).selector) == {}


def test_the_only_container_is_the_default_without_an_annotation() -> None:
    assert PodView({"spec": {"containers": [{"name": "one"}]}}).default_container == "one"
    two = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
    assert PodView(two).default_container == "a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-05-01T10:00:00.5Z", datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=timezone.utc)),
        ("2024-05-01T12:00:00+0200", datetime(2024, 5, 1, 10, tzinfo=timezone.utc)),
        ("2024-13-01T10:00:00Z", None),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_time(text: object, expected: datetime | None) -> None:
    assert parse_time(text) == expected
