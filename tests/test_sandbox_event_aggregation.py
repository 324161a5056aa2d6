"""Events are aggregated as client-go's event recorder does it: the same event about the same
object within 10 minutes raises the stored Event's ``count`` and ``lastTimestamp`` (a watch
sees it MODIFIED) instead of adding a new Event."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from podmagic.sandbox._resources import CORE_EVENTS
from podmagic.sandbox._state import Cluster, Watcher

POD = """
apiVersion: v1
kind: Pod
metadata: {name: crashing, namespace: ev}
spec:
  containers:
  - {name: main, image: busybox}
"""


def _cluster(tmp_path: Path) -> Cluster:
    cluster = Cluster(tmp_path / "fs")
    cluster.apply_yaml(POD)
    return cluster


def _events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return [e for e in cluster.objects["events"].values() if e["reason"] == reason]


def _pod(cluster: Cluster) -> dict[str, Any]:
    return cluster.pods[("ev", "crashing")].pod


def test_the_same_event_again_counts_up_instead_of_adding_one(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    watcher = Watcher(namespace=None, matches=lambda obj: obj["reason"] == "BackOff")
    watcher.resource = CORE_EVENTS.key
    cluster.watchers.add(watcher)
    message = "Back-off restarting failed container main in pod crashing_ev(x)"
    first = cluster.record_event(_pod(cluster), "BackOff", message, type="Warning")
    again = cluster.record_event(_pod(cluster), "BackOff", message, type="Warning")
    third = cluster.record_event(_pod(cluster), "BackOff", message, type="Warning")
    [stored] = _events(cluster, "BackOff")
    assert stored["count"] == 3
    assert again["metadata"]["name"] == third["metadata"]["name"] == first["metadata"]["name"]
    assert stored["firstTimestamp"] <= stored["lastTimestamp"]
    assert int(stored["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    seen = [watcher.queue.get_nowait() for _ in range(watcher.queue.qsize())]
    assert [(e["type"], e["object"]["count"]) for e in seen] == [
        ("ADDED", 1),
        ("MODIFIED", 2),
        ("MODIFIED", 3),
    ]


def test_a_different_message_type_or_object_is_an_event_of_its_own(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    pod = _pod(cluster)
    cluster.record_event(pod, "Unhealthy", "Liveness probe failed: a", type="Warning")
    cluster.record_event(pod, "Unhealthy", "Liveness probe failed: b", type="Warning")
    cluster.record_event(pod, "Unhealthy", "Liveness probe failed: a", type="Normal")
    other = {**pod, "metadata": {**pod["metadata"], "name": "other", "uid": "other-uid"}}
    cluster.record_event(other, "Unhealthy", "Liveness probe failed: a", type="Warning")
    events = _events(cluster, "Unhealthy")
    assert len(events) == 4 and all(e["count"] == 1 for e in events)


def test_the_same_event_after_ten_minutes_is_a_new_event(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path)
    message = "Killing container main"
    cluster.record_event(_pod(cluster), "Killing", message)
    [old] = _events(cluster, "Killing")
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=11)
    old["lastTimestamp"] = long_ago.strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.record_event(_pod(cluster), "Killing", message)
    events = _events(cluster, "Killing")
    assert len(events) == 2 and [e["count"] for e in events] == [1, 1]
