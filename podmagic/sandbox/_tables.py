"""The ``meta.k8s.io/v1`` ``Table`` form that ``kubectl get`` asks for.

Without it kubectl prints only NAME and AGE; with it, the familiar READY / STATUS / RESTARTS
columns. Column sets follow the apiserver's printers for each kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["TABLE_CONTENT_TYPE", "to_table", "wants_table"]

TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def wants_table(accept: str) -> bool:
    """Whether an ``Accept`` header asks for the Table form first-class."""
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _age(timestamp: str | None) -> str:
    """kubectl's short human duration (``45s``, ``3m``, ``5h``, ``2d``)."""
    if not timestamp:
        return "<unknown>"
    created = dt.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    seconds = int((dt.datetime.now(dt.timezone.utc) - created).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _column(
    name: str, kind: str = "string", priority: int = 0, description: str = ""
) -> dict[str, Any]:
    column: dict[str, Any] = {
        "name": name,
        "type": kind,
        "format": "name" if name == "Name" else "",
        "description": description or name,
        "priority": priority,
    }
    return column


def _pod_cells(pod: dict[str, Any]) -> tuple[int, str, str]:
    """Ready containers, STATUS and RESTARTS as the apiserver's ``printPod`` makes them: the
    last container that is waiting or terminated gives its reason (``CrashLoopBackOff``,
    ``Completed``, ``Error``), restarts say how long ago the latest was (``3 (5s ago)``)."""
    status = pod.get("status") or {}
    phase = str(status.get("phase") or "Unknown")
    reason = str(status.get("reason") or phase)
    ready = restarts = 0
    last_restart: str | None = None
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        restarts += int(container.get("restartCount", 0))
        finished = ((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if finished and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = str(waiting["reason"])
        elif terminated and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif terminated:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and "running" in state:
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        pod_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        reason = "Running" if pod_ready else "NotReady"
    if pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    shown = str(restarts)
    if restarts and last_restart:
        shown = f"{restarts} ({_age(last_restart)} ago)"
    return ready, reason, shown


def _pod_row(pod: dict[str, Any]) -> list[Any]:
    ready, reason, restarts = _pod_cells(pod)
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(pod['spec'].get('containers', []))}",
        reason,
        restarts,  # a "string" column: the apiserver sends "0" (or "2 (5m ago)")
        _age(pod["metadata"].get("creationTimestamp")),
        pod["status"].get("podIP", "<none>"),
        pod["spec"].get("nodeName", "<none>"),
        "<none>",
        "<none>",
    ]


_POD_COLUMNS = [
    _column("Name"),
    _column("Ready"),
    _column("Status"),
    _column("Restarts", "string"),
    _column("Age"),
    _column("IP", priority=1),
    _column("Node", priority=1),
    _column("Nominated Node", priority=1),
    _column("Readiness Gates", priority=1),
]


def _ready_pair(obj: dict[str, Any], ready_key: str, total_key: str) -> str:
    status = obj.get("status") or {}
    return f"{status.get(ready_key, 0)}/{status.get(total_key, obj.get('spec', {}).get('replicas', 0))}"


_PRINTERS: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], list[Any]]]] = {
    "Pod": (_POD_COLUMNS, _pod_row),
    "Namespace": (
        [_column("Name"), _column("Status"), _column("Age")],
        lambda o: [
            o["metadata"]["name"],
            o["status"]["phase"],
            _age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "Deployment": (
        [
            _column("Name"),
            _column("Ready"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _column("Age"),
        ],
        lambda o: [
            o["metadata"]["name"],
            _ready_pair(o, "readyReplicas", "replicas"),
            o["status"].get("updatedReplicas", 0),
            o["status"].get("availableReplicas", 0),
            _age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "StatefulSet": (
        [_column("Name"), _column("Ready"), _column("Age")],
        lambda o: [
            o["metadata"]["name"],
            _ready_pair(o, "readyReplicas", "replicas"),
            _age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "ReplicaSet": (
        [
            _column("Name"),
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            _column("Age"),
        ],
        lambda o: [
            o["metadata"]["name"],
            o["spec"].get("replicas", 0),
            o["status"].get("replicas", 0),
            o["status"].get("readyReplicas", 0),
            _age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "DaemonSet": (
        [
            _column("Name"),
            _column("Desired", "integer"),
            _column("Current", "integer"),
            _column("Ready", "integer"),
            _column("Up-to-date", "integer"),
            _column("Available", "integer"),
            _column("Age"),
        ],
        lambda o: [
            o["metadata"]["name"],
            o["status"].get("desiredNumberScheduled", 0),
            o["status"].get("currentNumberScheduled", 0),
            o["status"].get("numberReady", 0),
            o["status"].get("updatedNumberScheduled", 0),
            o["status"].get("numberAvailable", 0),
            _age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    "Job": (
        [_column("Name"), _column("Status"), _column("Completions"), _column("Age")],
        lambda o: [
            o["metadata"]["name"],
            "Complete"
            if o["status"].get("succeeded", 0) >= o["spec"].get("completions", 1)
            else "Running",
            f"{o['status'].get('succeeded', 0)}/{o['spec'].get('completions', 1)}",
            _age(o["metadata"].get("creationTimestamp")),
        ],
    ),
}


def _service_ports(service: dict[str, Any]) -> str:
    ports = []
    for port in service.get("spec", {}).get("ports") or []:
        text = f"{port.get('port')}"
        if port.get("nodePort"):
            text += f":{port['nodePort']}"
        ports.append(f"{text}/{port.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _endpoint_addresses(endpoints: dict[str, Any]) -> str:
    shown = []
    for subset in endpoints.get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                shown.append(f"{address.get('ip')}:{port.get('port')}" if port else address["ip"])
    if not shown:
        return "<none>"
    more = len(shown) - 3
    return ",".join(shown[:3]) + (f" + {more} more..." if more > 0 else "")


def _node_status(node: dict[str, Any]) -> str:
    ready = next(
        (c for c in node.get("status", {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    status = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(node: dict[str, Any]) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(
        k[len(prefix) :] for k in node["metadata"].get("labels") or {} if k.startswith(prefix)
    )
    return ",".join(roles) or "<none>"


def _event_object(event: dict[str, Any]) -> str:
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


_PRINTERS.update(
    {
        "ConfigMap": (
            [_column("Name"), _column("Data", "integer"), _column("Age")],
            lambda o: [
                o["metadata"]["name"],
                len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                _age(o["metadata"].get("creationTimestamp")),
            ],
        ),
        "Secret": (
            [_column("Name"), _column("Type"), _column("Data", "integer"), _column("Age")],
            lambda o: [
                o["metadata"]["name"],
                o.get("type", "Opaque"),
                len(o.get("data") or {}),
                _age(o["metadata"].get("creationTimestamp")),
            ],
        ),
        "Service": (
            [
                _column("Name"),
                _column("Type"),
                _column("Cluster-IP"),
                _column("External-IP"),
                _column("Port(s)"),
                _column("Age"),
                _column("Selector", priority=1),
            ],
            lambda o: [
                o["metadata"]["name"],
                o["spec"].get("type", "ClusterIP"),
                o["spec"].get("clusterIP", "<none>"),
                o["spec"].get("externalName") or "<none>",
                _service_ports(o),
                _age(o["metadata"].get("creationTimestamp")),
                ",".join(f"{k}={v}" for k, v in (o["spec"].get("selector") or {}).items())
                or "<none>",
            ],
        ),
        "Endpoints": (
            [_column("Name"), _column("Endpoints"), _column("Age")],
            lambda o: [
                o["metadata"]["name"],
                _endpoint_addresses(o),
                _age(o["metadata"].get("creationTimestamp")),
            ],
        ),
        "ServiceAccount": (
            [_column("Name"), _column("Secrets", "integer"), _column("Age")],
            lambda o: [
                o["metadata"]["name"],
                len(o.get("secrets") or []),
                _age(o["metadata"].get("creationTimestamp")),
            ],
        ),
        "Node": (
            [
                _column("Name"),
                _column("Status"),
                _column("Roles"),
                _column("Age"),
                _column("Version"),
                _column("Internal-IP", priority=1),
            ],
            lambda o: [
                o["metadata"]["name"],
                _node_status(o),
                _node_roles(o),
                _age(o["metadata"].get("creationTimestamp")),
                o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
                next(
                    (
                        a.get("address")
                        for a in o.get("status", {}).get("addresses") or []
                        if a.get("type") == "InternalIP"
                    ),
                    "<none>",
                ),
            ],
        ),
        "Event": (
            [
                _column("Last Seen"),
                _column("Type"),
                _column("Reason"),
                _column("Object"),
                _column("Message"),
            ],
            lambda o: [
                _age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp")),
                o.get("type", ""),
                o.get("reason", ""),
                _event_object(o),
                o.get("message") or o.get("note") or "",
            ],
        ),
        "ReplicationController": (
            [
                _column("Name"),
                _column("Desired", "integer"),
                _column("Current", "integer"),
                _column("Ready", "integer"),
                _column("Age"),
            ],
            lambda o: [
                o["metadata"]["name"],
                o.get("spec", {}).get("replicas", 0),
                o.get("status", {}).get("replicas", 0),
                o.get("status", {}).get("readyReplicas", 0),
                _age(o["metadata"].get("creationTimestamp")),
            ],
        ),
    }
)


def _partial_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def to_table(
    kind: str,
    items: Sequence[dict[str, Any]],
    *,
    resource_version: str,
    include_object: str = "Metadata",
    continue_token: str | None = None,
) -> dict[str, Any]:
    """A Table of ``items`` of one ``kind``; ``include_object`` is None / Metadata / Object."""
    columns, row_of = _PRINTERS.get(
        kind,
        (
            [_column("Name"), _column("Age")],
            lambda o: [o["metadata"]["name"], _age(o["metadata"].get("creationTimestamp"))],
        ),
    )
    rows = []
    for item in items:
        row: dict[str, Any] = {"cells": row_of(item)}
        if include_object == "Object":
            row["object"] = {"kind": kind, "apiVersion": item.get("apiVersion", "v1"), **item}
        elif include_object != "None":
            row["object"] = _partial_metadata(item)
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
