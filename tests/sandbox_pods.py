"""Reading a sandbox pod and its events in tests, as plain JSON (a copy of the live object)."""

from __future__ import annotations

import json
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
