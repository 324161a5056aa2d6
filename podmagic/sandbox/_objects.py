"""Building API objects: pods from templates, workload expansion, status and conditions.

Names follow the controllers' conventions (``web-7c9d5b6f4-x2k8q`` for a Deployment's pod,
``db-0`` for a StatefulSet's, ``agent-x2k8q`` for a DaemonSet's or Job's). They are derived
from a seed (namespace, workload, index) so a given manifest yields the same names every run,
which keeps notebooks and documentation stable.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .._kinds import WORKLOAD_KINDS
from ._behaviour import PREFIX, PodBehaviour, parse_only_replicas
from ._validation import desired_replicas, generated_name, text_value

__all__ = [
    "RESTARTERS",
    "STATUS_OVERLAYS",
    "expand_workload",
    "make_pod",
    "name_suffix",
    "now_rfc3339",
    "refresh_pod_status",
    "workload_status",
]

#: Called with a pod (and its behaviour) each time :func:`refresh_pod_status` recomputed its
#: status from the annotations: the container runtime (:mod:`._containers`) puts back what its
#: processes and probes say, so no status goes out that they contradict.
STATUS_OVERLAYS: list[Callable[[dict[str, Any], PodBehaviour], None]] = []
#: Asked first by :func:`restart_containers` to restart a pod's containers for real (True:
#: done, their statuses follow; False: not a pod they run).
RESTARTERS: list[Callable[[dict[str, Any]], bool]] = []

# The alphabet Kubernetes uses for generated name suffixes (no vowels, no look-alikes).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    """The current time as the API server formats it (seconds, UTC, ``Z``)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _suffix(seed: str, length: int) -> str:
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    return "".join(rng.choice(_SAFE_ALPHABET) for _ in range(length))


def name_suffix(seed: str) -> str:
    """The 5 characters the apiserver appends to a ``generateName`` (derived from ``seed``)."""
    return _suffix(seed, 5)


def _uid(seed: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(seed.encode()).digest()[:16], version=4))


def _template_hash(template: Mapping[str, Any]) -> str:
    return _suffix(repr(sorted(_flatten(template))), 10)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        items: list[tuple[str, str]] = []
        for key, inner in value.items():
            items.extend(_flatten(inner, f"{prefix}.{key}"))
        return items
    if isinstance(value, list):
        items = []
        for index, inner in enumerate(value):
            items.extend(_flatten(inner, f"{prefix}[{index}]"))
        return items
    return [(prefix, repr(value))]


def _owner_reference(workload: Mapping[str, Any], kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": WORKLOAD_KINDS[kind].api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _replica_annotations(
    workload: Mapping[str, Any], template_meta: Mapping[str, Any], index: int
) -> dict[str, str]:
    """Annotations a replica gets: the template's, plus the workload's sandbox ones if chosen."""
    annotations = dict(template_meta.get("annotations") or {})
    workload_annotations = {
        key: value
        for key, value in (workload.get("metadata", {}).get("annotations") or {}).items()
        if key.startswith(PREFIX)
    }
    merged = {**workload_annotations, **annotations}
    only = merged.pop(PREFIX + "only-replicas", None)
    if only is not None:
        chosen = parse_only_replicas(str(only))
        if index not in chosen:
            merged = {
                k: v for k, v in merged.items() if not k.startswith(PREFIX) or k == PREFIX + "files"
            }
    return {key: text_value(value) or "" for key, value in merged.items()}


def pod_spec_defaults(spec: dict[str, Any]) -> None:
    """The defaults the apiserver sets in a pod spec (a pod's or a template's)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            image = str(container.get("image", ""))
            latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
            container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")
            for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
                probe = container.get(kind)
                if isinstance(probe, dict):
                    _probe_defaults(probe)


def _probe_defaults(probe: dict[str, Any]) -> None:
    """A probe's defaults (``SetDefaults_Probe``, ``SetDefaults_HTTPGetAction``)."""
    for key, value in (
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ):
        probe.setdefault(key, value)
    action = probe.get("httpGet")
    if isinstance(action, dict):
        action.setdefault("path", "/")
        action.setdefault("scheme", "HTTP")


def workload_defaults(workload: dict[str, Any]) -> None:
    """The defaults the apiserver sets in a workload's spec."""
    kind = workload["kind"]
    spec = workload.setdefault("spec", {})
    # The pod template is left as given: its hash names the pods (and is kept stable across
    # sandbox versions); its pods get the pod defaults when they are made.
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        spec.setdefault("replicas", 1)
    if kind in ("Deployment", "StatefulSet", "DaemonSet"):
        spec.setdefault("revisionHistoryLimit", 10)
    if kind == "Deployment":
        spec.setdefault(
            "strategy",
            {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
        )
        spec.setdefault("progressDeadlineSeconds", 600)
    elif kind == "StatefulSet":
        spec.setdefault(
            "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        )
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault(
            "persistentVolumeClaimRetentionPolicy",
            {"whenDeleted": "Retain", "whenScaled": "Retain"},
        )
    elif kind == "DaemonSet":
        spec.setdefault(
            "updateStrategy",
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        )
    elif kind == "Job":
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")


def make_pod(
    *,
    namespace: str,
    name: str,
    template: Mapping[str, Any],
    node: str,
    pod_ip: str,
    uid: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owner: dict[str, Any] | None = None,
    generate_name: str | None = None,
) -> dict[str, Any]:
    """A full Pod object (metadata, spec, status) from a pod template."""
    template_meta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec.setdefault("containers", [])
    spec["nodeName"] = spec.get("nodeName") or node
    pod_spec_defaults(spec)
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    # Added by the DefaultTolerationSeconds admission plugin to every pod.
    tolerations = spec.setdefault("tolerations", [])
    for taint in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(isinstance(t, dict) and t.get("key") == taint for t in tolerations):
            tolerations.append(
                {
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            )
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or str(uuid.uuid4()),
        "resourceVersion": "0",
        "creationTimestamp": now_rfc3339(),
        # Validated on the way in: values are strings, or YAML numbers/booleans kept as text.
        "labels": {
            key: text_value(value) or ""
            for key, value in {**(template_meta.get("labels") or {}), **(labels or {})}.items()
        },
    }
    if generate_name:
        metadata["generateName"] = generate_name
    merged_annotations = {**(template_meta.get("annotations") or {}), **(annotations or {})}
    if merged_annotations:
        metadata["annotations"] = {k: text_value(v) or "" for k, v in merged_annotations.items()}
    if owner:
        metadata["ownerReferences"] = [owner]
    pod: dict[str, Any] = {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "hostIP": "172.18.0.2",
            "qosClass": "BestEffort",
        },
    }
    refresh_pod_status(pod, started_at=metadata["creationTimestamp"])
    return pod


def refresh_pod_status(pod: dict[str, Any], *, started_at: str | None = None) -> PodBehaviour:
    """Recompute phase, conditions and container statuses from the sandbox annotations."""
    behaviour = PodBehaviour.from_annotations(pod["metadata"].get("annotations"))
    status = pod.setdefault("status", {})
    metadata = pod["metadata"]
    started_at = started_at or status.get("startTime") or metadata["creationTimestamp"]
    status["startTime"] = started_at
    phase = behaviour.phase
    status["phase"] = phase
    running = phase == "Running"
    ready = running and behaviour.ready and not behaviour.terminating
    if behaviour.terminating:
        metadata.setdefault("deletionTimestamp", now_rfc3339())
        metadata.setdefault("deletionGracePeriodSeconds", 30)
    else:
        metadata.pop("deletionTimestamp", None)
        metadata.pop("deletionGracePeriodSeconds", None)

    # A condition keeps its transition time while its status stays; a change is now.
    before = {c.get("type"): c for c in status.get("conditions") or []}
    now = now_rfc3339()

    def condition(kind: str, value: bool, reason: str | None = None) -> dict[str, Any]:
        old = before.get(kind)
        since = started_at if old is None else now
        if old is not None and old.get("status") == ("True" if value else "False"):
            since = old.get("lastTransitionTime") or since
        entry: dict[str, Any] = {
            "type": kind,
            "status": "True" if value else "False",
            "lastProbeTime": None,
            "lastTransitionTime": since,
        }
        if reason and not value:
            entry["reason"] = reason
        return entry

    completed = phase in ("Succeeded", "Failed")
    not_ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    status["conditions"] = [
        condition("PodReadyToStartContainers", phase != "Pending"),
        condition("Initialized", True),
        condition("Ready", ready, not_ready_reason),
        condition("ContainersReady", ready, not_ready_reason),
        condition("PodScheduled", True),
    ]
    previous = {c["name"]: c for c in status.get("containerStatuses") or []}
    statuses = []
    for container in pod["spec"].get("containers", []):
        name = container["name"]
        old = previous.get(name, {})
        restarts = max(old.get("restartCount", 0), behaviour.restarts)
        container_id = (
            old.get("containerID")
            or "containerd://"
            + hashlib.sha256(f"{metadata['uid']}/{name}/{restarts}".encode()).hexdigest()
        )
        if running:
            # A container that was waiting (ContainerCreating) starts now.
            since = started_at if not old or "running" in old.get("state", {}) else now
            state: dict[str, Any] = {
                "running": {
                    "startedAt": old.get("state", {}).get("running", {}).get("startedAt", since)
                }
            }
        elif phase == "Pending":
            state = {"waiting": {"reason": "ContainerCreating"}}
        else:
            exit_code = 0 if phase == "Succeeded" else 1
            state = {
                "terminated": {
                    "exitCode": exit_code,
                    "reason": "Completed" if exit_code == 0 else "Error",
                    "startedAt": started_at,
                    "finishedAt": started_at,
                    "containerID": container_id,
                }
            }
        statuses.append(
            {
                "name": name,
                "state": state,
                "lastState": old.get("lastState", {}),
                "ready": ready,
                "restartCount": restarts,
                "image": container.get("image", "busybox:latest"),
                "imageID": "docker.io/library/"
                + str(container.get("image", "busybox")).split(":")[0]
                + "@sha256:"
                + hashlib.sha256(str(container.get("image")).encode()).hexdigest(),
                "containerID": container_id,
                "started": running,
            }
        )
    status["containerStatuses"] = statuses
    for overlay in STATUS_OVERLAYS:
        overlay(pod, behaviour)
    return behaviour


def restart_containers(pod: dict[str, Any]) -> None:
    """Record one restart of every container (new container id, new start time); a pod
    whose main processes run (:data:`RESTARTERS`) restarts them instead."""
    if any(restart(pod) for restart in RESTARTERS):
        return
    now = now_rfc3339()
    for entry in pod["status"].get("containerStatuses", []):
        entry["lastState"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "Error",
                "startedAt": entry.get("state", {}).get("running", {}).get("startedAt", now),
                "finishedAt": now,
                "containerID": entry.get("containerID"),
            }
        }
        entry["restartCount"] = entry.get("restartCount", 0) + 1
        entry["containerID"] = (
            "containerd://"
            + hashlib.sha256(
                f"{pod['metadata']['uid']}/{entry['name']}/{entry['restartCount']}".encode()
            ).hexdigest()
        )
        entry["state"] = {"running": {"startedAt": now}}


def expand_workload(
    workload: dict[str, Any],
    *,
    nodes: list[str],
    next_ip: Any,
    with_pods: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Expand a workload into (extra owner objects such as ReplicaSets, pods).

    ``next_ip`` is a callable returning the next free pod IP. ``with_pods=False`` fills in the
    workload's defaults and makes its ReplicaSet without building pods (its controller makes
    them: :mod:`._controllers`).
    """
    kind = workload["kind"]
    meta = workload.setdefault("metadata", {})
    namespace = meta.setdefault("namespace", "default")
    name = meta["name"]
    meta.setdefault("uid", _uid(f"{kind}/{namespace}/{name}"))
    meta.setdefault("creationTimestamp", now_rfc3339())
    meta.setdefault("generation", 1)
    workload.setdefault("apiVersion", WORKLOAD_KINDS[kind].api_version)
    workload_defaults(workload)
    spec = workload.setdefault("spec", {})
    template = spec.get("template") or {}
    template_meta = template.setdefault("metadata", {})
    template_labels = template_meta.setdefault("labels", {})
    if "selector" not in spec:
        if not template_labels:
            template_labels["app"] = name
        spec["selector"] = {"matchLabels": dict(template_labels)}

    extra: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] = []
    seed = f"{namespace}/{kind}/{name}"

    def node_for(index: int) -> str:
        return nodes[(index + int(hashlib.sha256(seed.encode()).hexdigest(), 16)) % len(nodes)]

    taken: set[str] = set()

    def replica_name(prefix: str, name_seed: str) -> str:
        """``prefix`` plus a 5-character suffix no other replica of this workload has."""
        # As the controllers do: generateName, whose prefix the apiserver cuts to 58 characters.
        candidate, attempt = generated_name(prefix, _suffix(name_seed, 5)), 0
        while candidate in taken:  # two seeds can hash alike: 27**5 names only
            attempt += 1
            candidate = generated_name(prefix, _suffix(f"{name_seed}/{attempt}", 5))
        taken.add(candidate)
        return candidate

    if kind in ("Deployment", "ReplicaSet"):
        owner_kind, owner_name, owner_uid = kind, name, meta["uid"]
        labels: dict[str, str] = {}
        if kind == "Deployment":
            template_hash = _template_hash(template)
            rs_name = f"{name}-{template_hash}"
            labels["pod-template-hash"] = template_hash
            rs_uid = _uid(f"ReplicaSet/{namespace}/{rs_name}")
            replicaset: dict[str, Any] = {
                "kind": "ReplicaSet",
                "apiVersion": "apps/v1",
                "metadata": {
                    "name": rs_name,
                    "namespace": namespace,
                    "uid": rs_uid,
                    "creationTimestamp": meta["creationTimestamp"],
                    "labels": {**template_labels, **labels},
                    "ownerReferences": [_owner_reference(workload, kind, name, meta["uid"])],
                    "generation": 1,
                },
                "spec": {
                    "replicas": desired_replicas(workload),
                    "selector": {
                        "matchLabels": {**spec["selector"].get("matchLabels", {}), **labels}
                    },
                    "template": copy.deepcopy(template),
                },
            }
            replicaset["spec"]["template"]["metadata"]["labels"] = {**template_labels, **labels}
            extra.append(replicaset)
            owner_kind, owner_name, owner_uid = "ReplicaSet", rs_name, rs_uid
        prefix = f"{owner_name}-"
        for index in range(desired_replicas(workload) if with_pods else 0):
            pods.append(
                _replica(
                    workload,
                    template,
                    namespace,
                    replica_name(prefix, f"{seed}/{index}"),
                    index,
                    node_for(index),
                    next_ip(),
                    labels,
                    _owner_reference(workload, owner_kind, owner_name, owner_uid),
                    generate_name=prefix,
                )
            )
    elif kind == "StatefulSet":
        revision = f"{name}-{_template_hash(template)}"
        for index in range(desired_replicas(workload) if with_pods else 0):
            pod_name = f"{name}-{index}"
            labels = {
                "controller-revision-hash": revision,
                "statefulset.kubernetes.io/pod-name": pod_name,
                "apps.kubernetes.io/pod-index": str(index),
            }
            pods.append(
                _replica(
                    workload,
                    template,
                    namespace,
                    pod_name,
                    index,
                    node_for(index),
                    next_ip(),
                    labels,
                    _owner_reference(workload, kind, name, meta["uid"]),
                )
            )
    elif kind == "DaemonSet":
        revision = _suffix(f"{seed}/revision", 10)
        for index, node in enumerate(nodes if with_pods else []):
            labels = {"controller-revision-hash": revision, "pod-template-generation": "1"}
            pods.append(
                _replica(
                    workload,
                    template,
                    namespace,
                    replica_name(f"{name}-", f"{seed}/{node}"),
                    index,
                    node,
                    next_ip(),
                    labels,
                    _owner_reference(workload, kind, name, meta["uid"]),
                    generate_name=f"{name}-",
                )
            )
    elif kind == "Job":
        count = desired_replicas(workload)
        spec.setdefault("completions", count)
        template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
        labels = {
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": name,
            "controller-uid": meta["uid"],
            "job-name": name,
        }
        # A Job's selector is the controller-uid label, as the Job controller generates it.
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": meta["uid"]}}
        for index in range(count if with_pods else 0):
            pods.append(
                _replica(
                    workload,
                    template,
                    namespace,
                    replica_name(f"{name}-", f"{seed}/{index}"),
                    index,
                    node_for(index),
                    next_ip(),
                    labels,
                    _owner_reference(workload, kind, name, meta["uid"]),
                    generate_name=f"{name}-",
                )
            )
    else:  # pragma: no cover - callers check the kind
        raise ValueError(f"not a workload kind: {kind}")
    return extra, pods


def _replica(
    workload: Mapping[str, Any],
    template: Mapping[str, Any],
    namespace: str,
    name: str,
    index: int,
    node: str,
    pod_ip: str,
    labels: Mapping[str, str],
    owner: dict[str, Any],
    generate_name: str | None = None,
) -> dict[str, Any]:
    template_meta = template.get("metadata") or {}
    # The replica's annotations replace the template's: only-replicas may have removed some.
    replica_template = {**template, "metadata": {**template_meta, "annotations": {}}}
    return make_pod(
        namespace=namespace,
        name=name,
        template=replica_template,
        node=node,
        pod_ip=pod_ip,
        uid=_uid(f"Pod/{namespace}/{name}"),
        labels=labels,
        annotations=_replica_annotations(workload, template_meta, index),
        owner=owner,
        generate_name=generate_name,
    )


def workload_status(workload: dict[str, Any], pods: list[dict[str, Any]]) -> None:
    """Fill in a workload's ``status`` from its pods (replica counts)."""
    kind = workload["kind"]
    total = len(pods)
    ready = sum(
        1
        for pod in pods
        if any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    )
    status: dict[str, Any] = {"observedGeneration": workload["metadata"].get("generation", 1)}
    if kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        status.update(
            {
                "replicas": total,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "updatedReplicas": total,
            }
        )
        if kind == "StatefulSet":
            status["currentReplicas"] = total
            revision = f"{workload['metadata']['name']}-{_template_hash(workload['spec'].get('template') or {})}"
            status["currentRevision"] = status["updateRevision"] = revision
            status["collisionCount"] = 0
    elif kind == "DaemonSet":
        status.update(
            {
                "currentNumberScheduled": total,
                "desiredNumberScheduled": total,
                "numberReady": ready,
                "numberAvailable": ready,
                "updatedNumberScheduled": total,
                "numberMisscheduled": 0,
            }
        )
    elif kind == "Job":
        succeeded = sum(1 for pod in pods if pod["status"]["phase"] == "Succeeded")
        failed = sum(1 for pod in pods if pod["status"]["phase"] == "Failed")
        status.update(
            {
                "active": total - succeeded - failed,
                "succeeded": succeeded,
                "failed": failed,
                "ready": ready,
            }
        )
    workload["status"] = status
