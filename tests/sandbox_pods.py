"""Sandbox pods in tests: their manifests, and reading a pod and its events as plain JSON (a
copy of the live object)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from podmagic.sandbox import Sandbox


def pod_object(sandbox: Sandbox, namespace: str, name: str) -> Any:
    """The pod as the API would answer it (a copy, safe to keep and compare)."""
    assert sandbox.cluster is not None
    entry = sandbox.call(sandbox.cluster.get_pod, namespace, name)
    assert entry is not None, f"no pod {namespace}/{name}"
    return json.loads(json.dumps(entry.pod))


def pod_events(sandbox: Sandbox, namespace: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of every event recorded about the pod, oldest first."""
    cluster = sandbox.cluster
    assert cluster is not None
    store = sandbox.call(lambda: list(cluster.objects["events"].values()))
    return [
        (event["type"], event["reason"], event["message"])
        for event in store
        if event["involvedObject"]["name"] == name
        and event["involvedObject"]["namespace"] == namespace
    ]


def pod_manifest(
    name: str,
    namespace: str,
    script: str | Mapping[str, str],
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    restart_policy: str | None = None,
) -> str:
    """A manifest (one YAML document) for a busybox pod whose container ``main`` runs
    ``script`` with ``sh -c``; a mapping of container name to script gives one container
    each, in that order."""
    scripts = {"main": script} if isinstance(script, str) else dict(script)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    spec: dict[str, Any] = {
        "containers": [
            {"name": container, "image": "busybox", "command": ["sh", "-c", text]}
            for container, text in scripts.items()
        ]
    }
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    # JSON is YAML: no quoting of the scripts to get wrong.
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
