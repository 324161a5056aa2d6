"""The sandbox's kube-controller-manager: the workload controllers and the garbage collector.

Each controller keeps its workload's pods as the real one does (``pkg/controller/...``):

* **ReplicaSet** and **ReplicationController**: as many active pods (not terminating, not
  finished) as ``spec.replicas``; a missing one is created under a new name
  (``NAME-xxxxx``), extra ones are deleted (not-ready, pending and newest first).
* **Deployment**: a ReplicaSet per pod template (``NAME-<pod-template-hash>``, with the
  ``deployment.kubernetes.io/revision`` annotation); the current one is scaled to
  ``spec.replicas`` and the others to 0 — all at once, not surge by surge.
* **StatefulSet**: pods ``NAME-0`` … ``NAME-(n-1)``; with ``OrderedReady`` (the default) one at
  a time, each once the ones before are Running and Ready, and removed from the highest
  ordinal down; a deleted pod comes back under the same name once it is gone; a new template
  replaces pods from the highest ordinal down (``partition`` honoured).
* **DaemonSet**: one pod per node; a deleted or outdated one is replaced.
* **Job**: up to ``parallelism`` pods until ``completions`` pods succeeded (a pod deleted
  before it succeeded counts as failed); more than ``backoffLimit`` failures fail it. No
  back-off delay between retries.

Status follows (replicas, ready/available/updated counts, ``observedGeneration``, the
Deployment's ``Available``/``Progressing`` conditions, the StatefulSet's revisions, the Job's
``Complete``/``Failed`` conditions) so ``kubectl rollout status`` and ``kubectl wait`` finish.
The controllers record ``SuccessfulCreate``/``SuccessfulDelete``/``ScalingReplicaSet`` events.

Deleting an owner deletes what it owns (background cascading): the garbage collector deletes
every pod and ReplicaSet whose ``ownerReferences`` name it, pods gracefully.

Controllers react to the cluster's changes (every ``_notify``): a change marks the owning
workload, and the marked ones are synced in the next turn of the event loop (all of them,
until nothing changes), or at once through :meth:`Controllers.sync_now`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import logging
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._kinds import WORKLOAD_KINDS
from ._objects import (
    _owner_reference,
    _replica,
    _suffix,
    _template_hash,
    expand_workload,
    now_rfc3339,
)
from ._validation import generated_name

if TYPE_CHECKING:
    from ._state import Cluster, PodEntry

__all__ = ["Controllers", "pod_is_active", "pod_is_ready"]

log = logging.getLogger(__name__)

_RC = "ReplicationController"
_RC_KEY = "replicationcontrollers"
# Syncs one flush may run before it stops (a controller bug must not hang the loop).
_MAX_SYNCS = 100_000
_REVISION = "deployment.kubernetes.io/revision"
#: Seconds a StatefulSet waits after a pod is gone before it makes one of the same name again.
#: A real controller, scheduler and kubelet take about as long; done at once, a client that
#: looked the old pod up (kubectl delete, kubectl wait --for=delete) could list the new one
#: in its place and wait for that one's deletion.
STATEFUL_RECREATE_DELAY = 1.0


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's ``Ready`` condition is True."""
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _terminating(pod: Mapping[str, Any]) -> bool:
    return "deletionTimestamp" in pod["metadata"]


def pod_is_active(pod: Mapping[str, Any]) -> bool:
    """A pod a controller counts: neither being deleted nor finished."""
    return not _terminating(pod) and not _finished(pod)


def _running_and_ready(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_is_ready(pod)


def _controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def _node_for(seed: str, index: int, nodes: list[str]) -> str:
    """The node a workload's replica goes to (spread from the workload's name)."""
    return nodes[(index + int(hashlib.sha256(seed.encode()).hexdigest(), 16)) % len(nodes)]


def _rank(pod: Mapping[str, Any]) -> tuple[int, int, int, str]:
    """The ReplicaSet controller's order for deleting pods: unscheduled, pending, not ready,
    then the newest first (a smaller key goes first)."""
    phase = (pod.get("status") or {}).get("phase")
    scheduled = 1 if pod["spec"].get("nodeName") else 0
    running = {"Pending": 0, "Unknown": 1}.get(str(phase), 2)
    ready = 1 if pod_is_ready(pod) else 0
    # Newest first: invert the creation time's characters so a later stamp sorts earlier.
    created = "".join(chr(0x10FFFF - ord(c)) for c in pod["metadata"]["creationTimestamp"])
    return scheduled, running, ready, created


def _set_condition(
    status: dict[str, Any],
    kind: str,
    value: bool,
    reason: str,
    message: str,
    *,
    update_time: bool = False,
) -> None:
    """Set a workload condition, its times kept while its status and reason stay."""
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    state = "True" if value else "False"
    old = next((c for c in conditions if c.get("type") == kind), None)
    now = now_rfc3339()
    if old is not None and old.get("status") == state and old.get("reason") == reason:
        old["message"] = message
        return
    condition: dict[str, Any] = {"type": kind, "status": state}
    if update_time:
        condition["lastUpdateTime"] = now
    condition["lastTransitionTime"] = (
        old["lastTransitionTime"] if old is not None and old.get("status") == state else now
    )
    condition.update({"reason": reason, "message": message})
    if old is None:
        conditions.append(condition)
    else:
        conditions[conditions.index(old)] = condition


def _revision(rs: Mapping[str, Any]) -> int:
    value = str((rs["metadata"].get("annotations") or {}).get(_REVISION) or "0")
    return int(value) if value.isdigit() else 0


def _nonzero(status: dict[str, Any], **counts: int) -> None:
    """Set counts the API server omits when 0 (``omitempty``)."""
    for key, value in counts.items():
        if value:
            status[key] = value
        else:
            status.pop(key, None)


class Controllers:
    """The workload controllers and garbage collector of one sandbox cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._dirty: dict[tuple[str, str, str], None] = {}  # an ordered set
        self._gone: list[tuple[str, str]] = []  # (namespace, uid) of deleted owners
        self._flush_handle: asyncio.Handle | None = None
        self._flushing = False
        #: Pods made so far per owner (the seed of the next name).
        self._made: dict[str, int] = {}
        #: Per Job uid: pod uid → "Succeeded" or "Failed", counted once each.
        self._job_pods: dict[str, dict[str, str]] = {}
        #: When (loop time) a StatefulSet's pod was last gone, by (namespace, pod name).
        self._stateful_gone: dict[tuple[str, str], float] = {}

    # -- hearing about changes ---------------------------------------------------------------

    def observe(self, event_type: str, obj: Mapping[str, Any], resource: str) -> None:
        """A change the cluster announced: mark the controllers it concerns."""
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        if resource == "pods":
            ref = _controller_ref(obj)
            if ref is not None:
                kind = str(ref.get("kind"))
                if kind == "Job":
                    self._count_job_pod(str(ref.get("uid")), obj, event_type)
                if kind == "StatefulSet" and event_type == "DELETED":
                    with contextlib.suppress(RuntimeError):
                        now = asyncio.get_running_loop().time()
                        self._stateful_gone[(namespace, str(metadata.get("name")))] = now
                self._mark(kind, namespace, str(ref.get("name")))
        elif resource in WORKLOAD_KINDS or resource == _RC_KEY:
            kind = _RC if resource == _RC_KEY else resource
            if event_type == "DELETED":
                self._gone.append((namespace, str(metadata.get("uid"))))
                self._schedule()
            else:
                self._mark(kind, namespace, str(metadata.get("name")))
            ref = _controller_ref(obj)
            if ref is not None:
                self._mark(str(ref.get("kind")), namespace, str(ref.get("name")))
        elif event_type == "DELETED" and namespace:
            # Any namespaced object may own others (kr8s's Service.adopt(pod)): the garbage
            # collector follows every owner's deletion, not only the workloads'.
            self._gone.append((namespace, str(metadata.get("uid"))))
            self._schedule()

    def _count_job_pod(self, job_uid: str, pod: Mapping[str, Any], event_type: str) -> None:
        counted = self._job_pods.setdefault(job_uid, {})
        uid = str(pod["metadata"].get("uid"))
        if uid in counted:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            counted[uid] = str(phase)
        elif _terminating(pod) or event_type == "DELETED":
            counted[uid] = "Failed"  # deleted before it succeeded

    def _mark(self, kind: str, namespace: str, name: str) -> None:
        if kind in WORKLOAD_KINDS or kind == _RC:
            self._dirty[(kind, namespace, name)] = None
            self._schedule()

    def _schedule(self) -> None:
        if self._flush_handle is not None or self._flushing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: whoever changed something calls flush()
        self._flush_handle = loop.call_soon(self.flush)

    # -- syncing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Sync every marked workload and collect the garbage, until nothing is left."""
        self._flush_handle = None
        if self._flushing:
            return
        self._flushing = True
        try:
            for _ in range(_MAX_SYNCS):
                if self._gone:
                    namespace, uid = self._gone.pop(0)
                    self._collect(namespace, uid)
                elif self._dirty:
                    key = next(iter(self._dirty))
                    del self._dirty[key]
                    try:
                        self._sync(*key, strict=False)
                    except Exception:  # a controller never takes the loop down
                        log.exception("syncing %s %s/%s failed", *key)
                else:
                    break
        finally:
            self._flushing = False

    def sync_now(self, workload: dict[str, Any]) -> None:
        """Sync a workload (and the ReplicaSets it owns) now; errors making its pods (files,
        addresses) are raised."""
        metadata = workload["metadata"]
        self._sync(workload["kind"], metadata["namespace"], metadata["name"], strict=True)
        for rs in self.owned_workloads(workload):
            rs_meta = rs["metadata"]
            self._sync(rs["kind"], rs_meta["namespace"], rs_meta["name"], strict=True)
        self._sync(workload["kind"], metadata["namespace"], metadata["name"], strict=True)

    def _sync(self, kind: str, namespace: str, name: str, *, strict: bool) -> None:
        if kind == _RC:
            rc = self.cluster.objects[_RC_KEY].get((namespace, name))
            if rc is not None:
                self._sync_replicas(rc, strict=strict)
            return
        workload = self.cluster.workloads.get((kind, namespace, name))
        if workload is None:
            return
        if kind == "Deployment":
            self._sync_deployment(workload)
        elif kind == "ReplicaSet":
            self._sync_replicas(workload, strict=strict)
        elif kind == "StatefulSet":
            self._sync_statefulset(workload, strict=strict)
        elif kind == "DaemonSet":
            self._sync_daemonset(workload, strict=strict)
        elif kind == "Job":
            self._sync_job(workload, strict=strict)
        self.cluster._refresh_workload(workload)

    # -- ownership ---------------------------------------------------------------------------

    def owned_pods(self, owner: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The pods ``owner`` controls (a Deployment: those of its ReplicaSets)."""
        uids = {owner["metadata"]["uid"]}
        if owner.get("kind") == "Deployment":
            uids |= {rs["metadata"]["uid"] for rs in self.owned_workloads(owner)}
        namespace = owner["metadata"].get("namespace")
        return [
            entry.pod
            for (ns, _), entry in self.cluster.pods.items()
            if ns == namespace
            and (ref := _controller_ref(entry.pod)) is not None
            and ref.get("uid") in uids
        ]

    def owned_workloads(self, owner: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The workloads (ReplicaSets) ``owner`` controls."""
        uid = owner["metadata"]["uid"]
        return [
            w
            for w in self.cluster.workloads.values()
            if (ref := _controller_ref(w)) is not None and ref.get("uid") == uid
        ]

    def _collect(self, namespace: str, uid: str) -> None:
        """The garbage collector: delete what a deleted owner owned (background)."""
        for workload in list(self.cluster.workloads.values()):
            if workload["metadata"].get("namespace") != namespace:
                continue
            if any(r.get("uid") == uid for r in workload["metadata"].get("ownerReferences") or []):
                self.cluster.delete_workload(workload)
        for (ns, name), entry in list(self.cluster.pods.items()):
            refs = entry.pod["metadata"].get("ownerReferences") or []
            owned = ns == namespace and any(r.get("uid") == uid for r in refs)
            if owned and not entry.life.deleting:
                self.cluster.delete_pod_gracefully(ns, name)
        self._job_pods.pop(uid, None)
        self._made.pop(uid, None)

    # -- making and deleting pods ------------------------------------------------------------

    def _next_name(self, prefix: str, seed: str, count_key: str) -> tuple[str, int]:
        """A pod name ``prefix`` + 5 characters, derived from ``seed`` and how many pods the
        owner made before (so a manifest's pods are named alike every run); never a live
        pod's name."""
        made = self._made.get(count_key, 0)
        self._made[count_key] = made + 1
        namespace = seed.split("/", 1)[0]
        name, attempt = generated_name(prefix, _suffix(f"{seed}/{made}", 5)), 0
        while (namespace, name) in self.cluster.pods:
            attempt += 1
            name = generated_name(prefix, _suffix(f"{seed}/{made}/{attempt}", 5))
        return name, made

    def _add(
        self,
        owner: dict[str, Any],
        pod: dict[str, Any],
        *,
        fresh_uid: bool,
        strict: bool,
    ) -> PodEntry | None:
        """Create a pod for ``owner`` (a FailedCreate event when it cannot be made)."""
        if fresh_uid:
            pod["metadata"]["uid"] = str(uuid.uuid4())
        try:
            entry = self.cluster.add_pod(pod)
        except Exception as error:
            if strict:
                raise
            self.cluster.record_event(
                owner,
                "FailedCreate",
                f"Error creating: {error}",
                type="Warning",
                component=self._component(owner),
            )
            return None
        entry.life.created = None  # no create request to answer with it
        return entry

    @staticmethod
    def _component(owner: Mapping[str, Any]) -> str:
        kind = str(owner.get("kind"))
        return {
            "ReplicaSet": "replicaset-controller",
            _RC: "replication-controller",
            "StatefulSet": "statefulset-controller",
            "DaemonSet": "daemonset-controller",
            "Job": "job-controller",
        }.get(kind, "controller-manager")

    def _delete(self, owner: Mapping[str, Any], pod: Mapping[str, Any], message: str) -> None:
        metadata = pod["metadata"]
        self.cluster.delete_pod_gracefully(metadata["namespace"], metadata["name"])
        self.cluster.record_event(
            owner, "SuccessfulDelete", message, component=self._component(owner)
        )

    # -- ReplicaSet, ReplicationController ---------------------------------------------------

    def _sync_replicas(self, rs: dict[str, Any], *, strict: bool) -> None:
        spec = rs.get("spec") or {}
        wanted = spec.get("replicas", 1)
        pods = self.owned_pods(rs)
        active = [pod for pod in pods if pod_is_active(pod)]
        if len(active) < wanted:
            for _ in range(wanted - len(active)):
                entry = self._make_replica(rs, strict=strict)
                if entry is None:
                    break
                self.cluster.record_event(
                    rs,
                    "SuccessfulCreate",
                    f"Created pod: {entry.name}",
                    component=self._component(rs),
                )
        elif len(active) > wanted:
            for pod in sorted(active, key=_rank)[: len(active) - wanted]:
                self._delete(rs, pod, f"Deleted pod: {pod['metadata']['name']}")
        self._replicas_status(rs)

    def _make_replica(self, rs: dict[str, Any], *, strict: bool) -> PodEntry | None:
        metadata = rs["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        kind = rs["kind"]
        # A Deployment's ReplicaSet names its pods from the Deployment (as the manifest's
        # expansion does); the index counts the Deployment's pods across its ReplicaSets.
        top = rs
        deployment = self._owner_deployment(rs)
        if deployment is not None:
            top = deployment
        seed = f"{namespace}/{top['kind']}/{top['metadata']['name']}"
        prefix = f"{name}-"
        new_name, index = self._next_name(prefix, seed, top["metadata"]["uid"])
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        if kind == _RC:
            owner = {
                "apiVersion": "v1",
                "kind": _RC,
                "name": name,
                "uid": metadata["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        else:
            owner = _owner_reference(rs, kind, name, metadata["uid"])
        pod = _replica(
            top,
            template,
            namespace,
            new_name,
            index,
            _node_for(seed, index, self.cluster.nodes),
            self.cluster.next_ip(),
            {},
            owner,
            generate_name=prefix,
        )
        return self._add(rs, pod, fresh_uid=index >= self._initial(top), strict=strict)

    @staticmethod
    def _initial(workload: Mapping[str, Any]) -> int:
        """How many replicas a manifest's workload starts with (their uids are derived from
        their names, as before controllers made them; later pods get random ones)."""
        value = (workload.get("spec") or {}).get(
            "parallelism" if workload.get("kind") == "Job" else "replicas"
        )
        return 1 if value is None else int(value)

    def _owner_deployment(self, rs: Mapping[str, Any]) -> dict[str, Any] | None:
        ref = _controller_ref(rs)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        deployment = self.cluster.workloads.get(
            ("Deployment", rs["metadata"]["namespace"], str(ref.get("name")))
        )
        if deployment is None or deployment["metadata"]["uid"] != ref.get("uid"):
            return None
        return deployment

    def _replicas_status(self, rs: dict[str, Any]) -> None:
        if rs["kind"] != _RC:
            return  # ReplicaSets: refresh_status, through the cluster's _refresh_workload
        before = copy.deepcopy(rs.get("status"))
        self.refresh_status(rs)
        if rs.get("status") != before:
            rs["metadata"]["resourceVersion"] = self.cluster.next_resource_version()
            self.cluster._notify("MODIFIED", rs, _RC_KEY)

    # -- Deployment --------------------------------------------------------------------------

    def _sync_deployment(self, deployment: dict[str, Any]) -> None:
        metadata = deployment["metadata"]
        namespace = metadata["namespace"]
        planned = copy.deepcopy(deployment)
        planned["spec"]["replicas"] = 0
        extra, _ = expand_workload(planned, nodes=self.cluster.nodes, next_ip=str, with_pods=False)
        plan = extra[0]
        owned = self.owned_workloads(deployment)
        current = next(
            (rs for rs in owned if rs["metadata"]["name"] == plan["metadata"]["name"]), None
        )
        if current is None:
            current = plan
            current["metadata"]["uid"] = plan["metadata"]["uid"] if not owned else str(uuid.uuid4())
            current["spec"]["replicas"] = 0
            current["metadata"]["resourceVersion"] = self.cluster.next_resource_version()
            self.cluster.workloads[("ReplicaSet", namespace, current["metadata"]["name"])] = current
            self.cluster._notify("ADDED", current, "ReplicaSet")
            owned.append(current)
        # The current ReplicaSet's revision is the highest: a new one's, or one rolled back to.
        own_revision = _revision(current)
        others = max((_revision(rs) for rs in owned if rs is not current), default=0)
        if own_revision <= others:
            own_revision = others + 1
            current["metadata"].setdefault("annotations", {})[_REVISION] = str(own_revision)
        metadata.setdefault("annotations", {})[_REVISION] = str(own_revision)
        wanted = deployment["spec"].get("replicas", 1)
        for rs in owned:
            target = wanted if rs is current else 0
            annotations = rs["metadata"].setdefault("annotations", {})
            annotations["deployment.kubernetes.io/desired-replicas"] = str(wanted)
            annotations["deployment.kubernetes.io/max-replicas"] = str(
                wanted + max(1, (wanted * 25 + 99) // 100) if wanted else 1
            )
            before = rs["spec"].get("replicas", 0)
            if before != target:
                rs["spec"]["replicas"] = target
                rs["metadata"]["generation"] = rs["metadata"].get("generation", 1) + 1
                rs["metadata"]["resourceVersion"] = self.cluster.next_resource_version()
                self.cluster._notify("MODIFIED", rs, "ReplicaSet")
                direction = "up" if target > before else "down"
                self.cluster.record_event(
                    deployment,
                    "ScalingReplicaSet",
                    f"Scaled {direction} replica set {rs['metadata']['name']} "
                    f"from {before} to {target}",
                    component="deployment-controller",
                )
                self._mark("ReplicaSet", namespace, rs["metadata"]["name"])

    def _deployment_status(self, deployment: dict[str, Any]) -> None:
        owned = self.owned_workloads(deployment)
        template_hash = _template_hash((deployment.get("spec") or {}).get("template") or {})
        new_name = f"{deployment['metadata']['name']}-{template_hash}"
        wanted = deployment["spec"].get("replicas", 1)
        replicas = updated = ready = 0
        for rs in owned:
            active = [pod for pod in self.owned_pods(rs) if pod_is_active(pod)]
            replicas += len(active)
            ready += sum(1 for pod in active if pod_is_ready(pod))
            if rs["metadata"]["name"] == new_name:
                updated = len(active)
        status = deployment.setdefault("status", {})
        status["observedGeneration"] = deployment["metadata"].get("generation", 1)
        _nonzero(
            status,
            replicas=replicas,
            updatedReplicas=updated,
            readyReplicas=ready,
            availableReplicas=ready,
            unavailableReplicas=max(0, wanted - ready),
        )
        max_unavailable = wanted * 25 // 100
        available = ready >= wanted - max_unavailable
        _set_condition(
            status,
            "Available",
            available,
            "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
            "Deployment has minimum availability."
            if available
            else "Deployment does not have minimum availability.",
            update_time=True,
        )
        complete = updated == wanted and replicas == wanted and ready == wanted
        _set_condition(
            status,
            "Progressing",
            True,
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{new_name}" has successfully progressed.'
            if complete
            else f'ReplicaSet "{new_name}" is progressing.',
            update_time=True,
        )

    # -- StatefulSet -------------------------------------------------------------------------

    def _sync_statefulset(self, sts: dict[str, Any], *, strict: bool) -> None:
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        wanted = spec.get("replicas", 1)
        ordered = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
        revision = f"{name}-{_template_hash(spec.get('template') or {})}"
        pods: dict[int, dict[str, Any]] = {}
        for pod in self.owned_pods(sts):
            ordinal = pod["metadata"]["name"][len(name) + 1 :]
            if pod["metadata"]["name"].startswith(f"{name}-") and ordinal.isdigit():
                pods[int(ordinal)] = pod
        # Create missing pods; replace finished ones.
        for ordinal in range(wanted):
            if ordinal not in pods and self._recreate_later(sts, f"{name}-{ordinal}"):
                if ordered:
                    return
                continue
            if ordinal not in pods:
                entry = self._make_stateful(sts, ordinal, revision, strict=strict)
                if entry is None:
                    return
                pods[ordinal] = entry.pod
            pod = pods[ordinal]
            if _terminating(pod):
                if ordered:
                    return
                continue
            if _finished(pod):
                self._delete(
                    sts,
                    pod,
                    f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful",
                )
                if ordered:
                    return
                continue
            if ordered and not _running_and_ready(pod):
                return
        # Remove pods beyond the replicas, the highest ordinal first.
        condemned = sorted((o for o in pods if o >= wanted), reverse=True)
        for ordinal in condemned:
            pod = pods[ordinal]
            if _terminating(pod):
                if ordered:
                    return
                continue
            self._delete(
                sts, pod, f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful"
            )
            if ordered:
                return
        # Rolling update: one pod at a time, from the highest ordinal down to the partition.
        strategy = spec.get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        live = [pods[o] for o in range(wanted) if o in pods]
        if any(_terminating(p) or not _running_and_ready(p) for p in live):
            return
        for ordinal in range(wanted - 1, partition - 1, -1):
            if ordinal not in pods:
                continue
            pod = pods[ordinal]
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                self._delete(
                    sts,
                    pod,
                    f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful",
                )
                return

    def _recreate_later(self, sts: Mapping[str, Any], pod_name: str) -> bool:
        """Whether a pod of this name went too recently to be made again now (then the
        StatefulSet is synced again when it may)."""
        namespace = sts["metadata"]["namespace"]
        gone = self._stateful_gone.get((namespace, pod_name))
        if gone is None:
            return False
        loop = asyncio.get_running_loop()
        wait = gone + STATEFUL_RECREATE_DELAY - loop.time()
        if wait <= 0:
            del self._stateful_gone[(namespace, pod_name)]
            return False
        loop.call_later(wait, self._mark, "StatefulSet", namespace, sts["metadata"]["name"])
        return True

    def _make_stateful(
        self, sts: dict[str, Any], ordinal: int, revision: str, *, strict: bool
    ) -> PodEntry | None:
        metadata = sts["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        pod_name = f"{name}-{ordinal}"
        seed = f"{namespace}/StatefulSet/{name}"
        made = self._made.get(metadata["uid"] + "/made", 0)
        self._made[metadata["uid"] + "/made"] = made + 1
        labels = {
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod = _replica(
            sts,
            copy.deepcopy(sts["spec"].get("template") or {}),
            namespace,
            pod_name,
            ordinal,
            _node_for(seed, ordinal, self.cluster.nodes),
            self.cluster.next_ip(),
            labels,
            _owner_reference(sts, "StatefulSet", name, metadata["uid"]),
        )
        entry = self._add(sts, pod, fresh_uid=made >= self._initial(sts), strict=strict)
        if entry is not None:
            self.cluster.record_event(
                sts,
                "SuccessfulCreate",
                f"create Pod {pod_name} in StatefulSet {name} successful",
                component="statefulset-controller",
            )
        return entry

    def _statefulset_status(self, sts: dict[str, Any]) -> None:
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        wanted = spec.get("replicas", 1)
        revision = f"{name}-{_template_hash(spec.get('template') or {})}"
        status = sts.setdefault("status", {})
        current_revision = status.get("currentRevision") or revision
        pods = self.owned_pods(sts)
        replicas = len(pods)
        ready = sum(1 for pod in pods if _running_and_ready(pod) and not _terminating(pod))

        def at(rev: str) -> int:
            return sum(
                1
                for pod in pods
                if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == rev
                and not _terminating(pod)
            )

        updated = at(revision)
        if updated == wanted == replicas and ready == wanted:
            current_revision = revision  # the rolling update is complete
        status.update(
            {
                "observedGeneration": sts["metadata"].get("generation", 1),
                "replicas": replicas,
                "availableReplicas": ready,
                "currentRevision": current_revision,
                "updateRevision": revision,
                "collisionCount": 0,
            }
        )
        _nonzero(
            status,
            readyReplicas=ready,
            currentReplicas=at(current_revision),
            updatedReplicas=updated,
        )

    # -- DaemonSet ---------------------------------------------------------------------------

    def _sync_daemonset(self, ds: dict[str, Any], *, strict: bool) -> None:
        revision = _template_hash((ds.get("spec") or {}).get("template") or {})
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in self.owned_pods(ds):
            if _finished(pod) and not _terminating(pod):
                self._delete(ds, pod, f"Deleted pod: {pod['metadata']['name']}")
                continue
            by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
        nodes = self.cluster.nodes
        for node, pods in by_node.items():
            active = [pod for pod in pods if not _terminating(pod)]
            extra = active if node not in nodes else active[1:]
            for pod in extra:
                self._delete(ds, pod, f"Deleted pod: {pod['metadata']['name']}")
        for node in nodes:
            pods = by_node.get(node, [])
            if not any(not _terminating(pod) for pod in pods):
                self._make_daemon(ds, node, revision, strict=strict)
        # Rolling update, one node at a time (maxUnavailable 1).
        if ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type") == "OnDelete":
            return
        live = [p for node in nodes for p in by_node.get(node, []) if not _terminating(p)]
        if any(_terminating(p) for pods in by_node.values() for p in pods):
            return
        for pod in live:
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") != revision:
                self._delete(ds, pod, f"Deleted pod: {pod['metadata']['name']}")
                return

    def _make_daemon(self, ds: dict[str, Any], node: str, revision: str, *, strict: bool) -> None:
        metadata = ds["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        seed = f"{namespace}/DaemonSet/{name}"
        key = f"{metadata['uid']}/{node}"
        made = self._made.get(key, 0)
        self._made[key] = made + 1
        node_seed = f"{seed}/{node}" if made == 0 else f"{seed}/{node}/{made}"
        pod_name, attempt = generated_name(f"{name}-", _suffix(node_seed, 5)), 0
        while (namespace, pod_name) in self.cluster.pods:
            attempt += 1
            pod_name = generated_name(f"{name}-", _suffix(f"{node_seed}/{attempt}", 5))
        labels = {
            "controller-revision-hash": revision,
            "pod-template-generation": str(metadata.get("generation", 1)),
        }
        index = self.cluster.nodes.index(node)
        pod = _replica(
            ds,
            copy.deepcopy(ds["spec"].get("template") or {}),
            namespace,
            pod_name,
            index,
            node,
            self.cluster.next_ip(),
            labels,
            _owner_reference(ds, "DaemonSet", name, metadata["uid"]),
            generate_name=f"{name}-",
        )
        pod["spec"]["nodeName"] = node
        entry = self._add(ds, pod, fresh_uid=made > 0, strict=strict)
        if entry is not None:
            self.cluster.record_event(
                ds,
                "SuccessfulCreate",
                f"Created pod: {pod_name}",
                component="daemonset-controller",
            )

    def _daemonset_status(self, ds: dict[str, Any]) -> None:
        revision = _template_hash((ds.get("spec") or {}).get("template") or {})
        nodes = self.cluster.nodes
        active = [
            pod
            for pod in self.owned_pods(ds)
            if not _terminating(pod) and pod["spec"].get("nodeName") in nodes
        ]
        scheduled = {pod["spec"].get("nodeName") for pod in active}
        ready_nodes = {pod["spec"].get("nodeName") for pod in active if pod_is_ready(pod)}
        updated = {
            pod["spec"].get("nodeName")
            for pod in active
            if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == revision
        }
        status = ds.setdefault("status", {})
        status.update(
            {
                "observedGeneration": ds["metadata"].get("generation", 1),
                "currentNumberScheduled": len(scheduled),
                "desiredNumberScheduled": len(nodes),
                "numberMisscheduled": 0,
                "numberReady": len(ready_nodes),
            }
        )
        _nonzero(
            status,
            updatedNumberScheduled=len(updated),
            numberAvailable=len(ready_nodes),
            numberUnavailable=len(nodes) - len(ready_nodes),
        )

    # -- Job ---------------------------------------------------------------------------------

    def _sync_job(self, job: dict[str, Any], *, strict: bool) -> None:
        metadata, spec = job["metadata"], job.get("spec") or {}
        status = job.setdefault("status", {})
        pods = self.owned_pods(job)
        for pod in pods:
            self._count_job_pod(metadata["uid"], pod, "MODIFIED")
        active = [pod for pod in pods if pod_is_active(pod)]
        conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        if conditions.get("Complete") == "True" or conditions.get("Failed") == "True":
            return
        if spec.get("suspend"):
            for pod in active:
                self._delete(job, pod, f"Deleted pod: {pod['metadata']['name']}")
            return
        status.setdefault("startTime", now_rfc3339())
        succeeded, failed = self._job_counts(job)
        completions = spec.get("completions")
        backoff_limit = spec.get("backoffLimit", 6)
        if failed > backoff_limit:
            message = "Job has reached the specified backoff limit"
            for pod in active:
                self._delete(job, pod, f"Deleted pod: {pod['metadata']['name']}")
            _set_condition(status, "FailureTarget", True, "BackoffLimitExceeded", message)
            _set_condition(status, "Failed", True, "BackoffLimitExceeded", message)
            for condition in status["conditions"]:
                condition.setdefault("lastProbeTime", condition["lastTransitionTime"])
            self.cluster.record_event(
                job, "BackoffLimitExceeded", message, type="Warning", component="job-controller"
            )
            return
        done = succeeded >= completions if completions is not None else succeeded > 0 and not active
        if done:
            for pod in active:
                self._delete(job, pod, f"Deleted pod: {pod['metadata']['name']}")
            message = "Reached expected number of succeeded pods"
            _set_condition(status, "SuccessCriteriaMet", True, "CompletionsReached", message)
            _set_condition(status, "Complete", True, "CompletionsReached", message)
            for condition in status["conditions"]:
                condition.setdefault("lastProbeTime", condition["lastTransitionTime"])
            status["completionTime"] = now_rfc3339()
            self.cluster.record_event(job, "Completed", "Job completed", component="job-controller")
            return
        parallelism = spec.get("parallelism", 1)
        remaining = parallelism if completions is None else completions - succeeded
        wanted = max(0, min(parallelism, remaining))
        if len(active) > wanted:
            for pod in sorted(active, key=_rank)[: len(active) - wanted]:
                self._delete(job, pod, f"Deleted pod: {pod['metadata']['name']}")
        for _ in range(wanted - len(active)):
            if not self._make_job_pod(job, strict=strict):
                break

    def _job_counts(self, job: Mapping[str, Any]) -> tuple[int, int]:
        counted = self._job_pods.get(job["metadata"]["uid"], {}).values()
        return (
            sum(1 for phase in counted if phase == "Succeeded"),
            sum(1 for phase in counted if phase == "Failed"),
        )

    def _make_job_pod(self, job: dict[str, Any], *, strict: bool) -> bool:
        metadata = job["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        seed = f"{namespace}/Job/{name}"
        pod_name, index = self._next_name(f"{name}-", seed, metadata["uid"])
        uid = metadata["uid"]
        labels = {
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": uid,
            "job-name": name,
        }
        template = copy.deepcopy(job["spec"].get("template") or {})
        template.setdefault("spec", {}).setdefault("restartPolicy", "Never")
        pod = _replica(
            job,
            template,
            namespace,
            pod_name,
            index,
            _node_for(seed, index, self.cluster.nodes),
            self.cluster.next_ip(),
            labels,
            _owner_reference(job, "Job", name, uid),
            generate_name=f"{name}-",
        )
        entry = self._add(job, pod, fresh_uid=index >= self._initial(job), strict=strict)
        if entry is None:
            return False
        self.cluster.record_event(
            job, "SuccessfulCreate", f"Created pod: {pod_name}", component="job-controller"
        )
        return True

    def _job_status(self, job: dict[str, Any]) -> None:
        status = job.setdefault("status", {})
        pods = self.owned_pods(job)
        active = [pod for pod in pods if pod_is_active(pod)]
        succeeded, failed = self._job_counts(job)
        status["observedGeneration"] = job["metadata"].get("generation", 1)
        _nonzero(status, active=len(active), succeeded=succeeded, failed=failed)
        status["ready"] = sum(1 for pod in active if pod_is_ready(pod))
        status["terminating"] = sum(1 for pod in pods if _terminating(pod) and not _finished(pod))
        status["uncountedTerminatedPods"] = {}

    # -- status ------------------------------------------------------------------------------

    def refresh_status(self, workload: dict[str, Any]) -> None:
        """Recompute a workload's ``status`` from its pods (no pods made or deleted)."""
        kind = workload["kind"]
        if kind == "Deployment":
            self._deployment_status(workload)
        elif kind == "StatefulSet":
            self._statefulset_status(workload)
        elif kind == "DaemonSet":
            self._daemonset_status(workload)
        elif kind == "Job":
            self._job_status(workload)
        else:  # ReplicaSet, ReplicationController
            pods = [pod for pod in self.owned_pods(workload) if pod_is_active(pod)]
            ready = sum(1 for pod in pods if pod_is_ready(pod))
            status = workload.setdefault("status", {})
            status["replicas"] = len(pods)
            status["observedGeneration"] = workload["metadata"].get("generation", 1)
            _nonzero(
                status,
                fullyLabeledReplicas=len(pods),
                readyReplicas=ready,
                availableReplicas=ready,
            )
