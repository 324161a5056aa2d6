"""The sandbox cluster's state: namespaces, nodes, workloads, pods, watches and faults.

Everything here runs on the sandbox's event-loop thread (the HTTP handlers and the
``Sandbox`` Python API both go through that loop), so no locks are needed. The listener
(:mod:`.api`) and the process runner (:mod:`.runner`) are kept apart from this module.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import copy
import ipaddress
import itertools
import math
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from .._kinds import WORKLOAD_KINDS
from ._behaviour import PREFIX, BehaviourError, PodBehaviour, parse_files
from ._controllers import Controllers
from ._lifecycle import Lifecycle, PodLife
from ._objects import (
    expand_workload,
    make_pod,
    name_suffix,
    now_rfc3339,
    refresh_pod_status,
    restart_containers,
)
from ._resources import (
    CORE_EVENTS,
    ENDPOINTS,
    ENDPOINTS_LABEL,
    EVENTS_V1,
    NODES,
    RESOURCES,
    SERVICE_ACCOUNTS,
    SERVICES,
    Resource,
    convert_event,
    default_object,
    kubernetes_service,
    node_object,
    service_endpoints,
)
from ._validation import (
    ObjectInvalid,
    generated_name,
    normalised_working_dir,
    replica_count,
    text_value,
    validate_object,
)

__all__ = [
    "MAX_PODS",
    "MAX_TOKEN_TTL",
    "Cluster",
    "ExecSession",
    "ManifestError",
    "PodCapacityError",
    "PodEntry",
    "PodProcess",
    "RecordedRequest",
    "Watcher",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Stored kinds a manifest may hold (Nodes are read above; Events are made, not declared),
# with the RBAC kinds (enforced for named users' tokens, see _rbac.py).
_MANIFEST_STORED = {
    resource.kind: resource
    for resource in RESOURCES
    if (resource.api_version == "v1" and resource.kind not in ("Node", "Event"))
    or resource.group == "rbac.authorization.k8s.io"
}
SUPPORTED_KINDS = ("Namespace", "Node", "Pod", *WORKLOAD_KINDS, *_MANIFEST_STORED)
POD_NETWORK = ipaddress.ip_network("10.244.0.0/16")
#: Pods a sandbox can hold over its life: one address each from :data:`POD_NETWORK`.
MAX_PODS = POD_NETWORK.num_addresses - 2
#: Changes kept for watches from an earlier resourceVersion.
HISTORY = 5_000
#: Events kept at most (the oldest go first), as the apiserver's event TTL bounds them.
MAX_EVENTS = 20_000
#: How long after an event's last occurrence the same event counts up instead of adding one
#: (client-go's event correlator: 10 minutes).
EVENT_AGGREGATION_SECONDS = 600
#: The longest ``ttl`` an issued token may have, in seconds (a TokenRequest's maximum: 2**32).
MAX_TOKEN_TTL = float(2**32)


class ManifestError(ValueError):
    """A manifest document the sandbox cannot load (one line: the file, object and field)."""


class PodCapacityError(ManifestError):
    """Every pod address of the sandbox is taken: no more pods can be created."""


class ExecSession(Protocol):
    """What the state needs from a running exec: a way to end it."""

    def interrupt(self, reason: str) -> None:
        """Kill the command (pod deleted, container restarted, sandbox stopping)."""


class PodProcess(Protocol):
    """A process the kubelet stops when its pod is deleted (a container's main process)."""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process (and what it started)."""

    async def wait(self) -> int:
        """Wait for the process to end; its exit code."""


@dataclass
class PodEntry:
    """One pod: its API object plus sandbox-side bookkeeping."""

    pod: dict[str, Any]
    behaviour: PodBehaviour
    throttle_left: int
    sessions: set[ExecSession] = field(default_factory=set)
    #: The containers' main processes: graceful deletion sends them SIGTERM, then SIGKILL.
    processes: set[PodProcess] = field(default_factory=set)
    #: Where the pod is in its life (:mod:`._lifecycle`).
    life: PodLife = field(default_factory=PodLife)

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"]["namespace"])


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the sandbox received it (the Authorization header is never kept)."""

    method: str
    path_qs: str
    user_agent: str


@dataclass(eq=False)  # kept in a set: hashed by identity
class Watcher:
    """A ``?watch=true`` stream: a queue of events and the filter it applies."""

    namespace: str | None
    matches: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    #: What it watches: ``pods``, a workload kind (``Deployment``) or a stored resource's key.
    resource: str = "pods"


def _recent(stamp: Any, seconds: float) -> bool:
    """Whether an RFC 3339 time (``2026-11-30T10:00:00Z``) is at most ``seconds`` ago."""
    try:
        moment = calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return False
    return time.time() - moment <= seconds


class Cluster:
    """The objects of one sandbox cluster and the faults set on them."""

    def __init__(
        self,
        state_dir: Path,
        *,
        user: str = "sandbox-user",
        nodes: Iterable[str] = ("sandbox-node-1", "sandbox-node-2", "sandbox-node-3"),
    ) -> None:
        self.state_dir = state_dir
        self.user = user
        self.nodes: list[str] = list(nodes)
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], PodEntry] = {}
        self.workloads: dict[tuple[str, str, str], dict[str, Any]] = {}
        #: Stored resources (:mod:`._resources`) by key, then (namespace or "", name).
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            resource.key: {} for resource in RESOURCES
        }
        self.watchers: set[Watcher] = set()
        self.requests: collections.deque[RecordedRequest] = collections.deque(maxlen=20_000)
        self.exec_active = 0
        self.exec_high_water = 0
        self.exec_total = 0
        self.throttle_left = 0
        self.throttle_retry_after = 1.0
        #: Bearer tokens handed out by :meth:`issue_token` → when they expire (monotonic
        #: clock; ``None``: not before :meth:`expire_tokens`). Expired ones stay, refused.
        self.issued_tokens: dict[str, float | None] = {}
        #: Whose an issued token is, when not the sandbox's user (a named user's or a service
        #: account's: such tokens are held to the RBAC objects, see _rbac.py).
        self.token_users: dict[str, str] = {}
        #: The groups a named user's token was issued with (besides system:authenticated).
        self.token_groups: dict[str, tuple[str, ...]] = {}
        self._resource_version = itertools.count(1000)
        self._event_clock = 0
        # Recorded events' names by what makes events the same (see record_event).
        self._event_names: dict[tuple[str, ...], tuple[str, str]] = {}
        #: The latest changes, (resourceVersion, resource, event type, object): what a watch
        #: from an earlier resourceVersion replays (older: 410 Expired, as etcd compacts).
        self.history: collections.deque[tuple[int, str, str, dict[str, Any]]] = collections.deque(
            maxlen=HISTORY
        )
        self._ips = (str(ip) for ip in POD_NETWORK.hosts())
        self.ips_left = MAX_PODS
        #: The scheduler and kubelet: pods' start, graceful deletion.
        self.lifecycle = Lifecycle(self)
        #: The workload controllers and the garbage collector.
        self.controllers = Controllers(self)
        for name in ("default", "kube-system", "kube-public"):
            self.add_namespace(name)
        self._set_nodes({name: None for name in self.nodes})
        self.put_object(SERVICES, kubernetes_service())

    # -- bookkeeping -------------------------------------------------------------------------

    def next_resource_version(self) -> str:
        return str(next(self._resource_version))

    @property
    def resource_version(self) -> str:
        """The current resource version (that of the last change)."""
        return str(next(copy.copy(self._resource_version)) - 1)

    def next_ip(self) -> str:
        """The next free pod address; :class:`PodCapacityError` when none is left."""
        if self.ips_left <= 0:
            raise PodCapacityError(
                f"the sandbox has given out all {MAX_PODS} pod addresses of {POD_NETWORK}; "
                "start a new sandbox for more pods"
            )
        self.ips_left -= 1
        return next(self._ips)

    def _notify(self, event_type: str, pod: dict[str, Any], resource: str = "pods") -> None:
        version = pod["metadata"].get("resourceVersion", "")
        if version.isdigit():
            # Kept for watches that start from an earlier resourceVersion.
            self.history.append((int(version), resource, event_type, copy.deepcopy(pod)))
        for watcher in list(self.watchers):
            if watcher.resource != resource:
                continue
            if watcher.namespace not in (None, pod["metadata"].get("namespace")):
                continue
            if watcher.matches(pod):
                watcher.queue.put_nowait({"type": event_type, "object": copy.deepcopy(pod)})
        self.controllers.observe(event_type, pod, resource)

    # -- stored resources --------------------------------------------------------------------

    def changes_since(self, version: int, resource: str) -> list[tuple[str, dict[str, Any]]] | None:
        """The (event type, object) changes of ``resource`` after ``version``, oldest first;
        None when changes after it are no longer kept."""
        if len(self.history) == self.history.maxlen and version < self.history[0][0] - 1:
            return None
        return [
            (kind, copy.deepcopy(obj))
            for number, name, kind, obj in self.history
            if number > version and name == resource
        ]

    def store(self, resource: Resource) -> dict[tuple[str, str], dict[str, Any]]:
        """The objects of a stored resource (events.k8s.io/v1 Events are the core ones)."""
        return self.objects[resource.key]

    def put_object(
        self, resource: Resource, obj: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Store a new or replaced object: metadata and defaults filled, watchers told
        (``dry_run``: only filled in, as ``?dryRun=All`` asks)."""
        metadata = obj.setdefault("metadata", {})
        namespace = metadata.get("namespace", "") if resource.namespaced else ""
        key = (namespace, metadata["name"])
        store = self.store(resource)
        old = store.get(key)
        now = now_rfc3339()
        if old is None:
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now
        else:
            metadata["uid"] = old["metadata"]["uid"]
            metadata["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        if "spec" in obj:
            generation = (old or {}).get("metadata", {}).get("generation", 0)
            changed = old is None or old.get("spec") != obj.get("spec")
            metadata["generation"] = generation + 1 if changed else generation
        cluster_ips = [
            ip
            for service in self.objects["services"].values()
            if service is not old
            for ip in service.get("spec", {}).get("clusterIPs") or []
        ]
        default_object(resource, obj, cluster_ips=cluster_ips)
        if resource is EVENTS_V1:
            obj = convert_event(obj, to_v1=False)
            default_object(CORE_EVENTS, obj, cluster_ips=())
        if dry_run:
            metadata["resourceVersion"] = (old or {}).get("metadata", {}).get("resourceVersion", "")
            return obj
        metadata["resourceVersion"] = self.next_resource_version()
        store[key] = obj
        self._notify("ADDED" if old is None else "MODIFIED", obj, resource.key)
        return obj

    def remove_object(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        """Delete a stored object (``KeyError`` when there is none); watchers told."""
        obj = self.store(resource).pop((namespace if resource.namespaced else "", name))
        obj["metadata"]["resourceVersion"] = self.next_resource_version()
        self._notify("DELETED", obj, resource.key)
        return obj

    def _add_stored(self, resource: Resource, doc: dict[str, Any], where: str) -> None:
        """Store a manifest's ConfigMap, Secret, Service, ... (its namespace made if new)."""
        if resource.namespaced:
            namespace = doc["metadata"].setdefault("namespace", "default")
            if namespace not in self.namespaces:
                self.add_namespace(namespace)
        else:  # ClusterRoles, ClusterRoleBindings
            doc["metadata"].pop("namespace", None)
            namespace = ""
        key = (namespace, doc["metadata"]["name"])
        # The namespace's default ServiceAccount may be declared again; anything else twice
        # is a mistake in the manifest.
        if key in self.store(resource) and (resource.kind, key[1]) != ("ServiceAccount", "default"):
            raise ManifestError(
                f'{where}{resource.kind} "{key[1]}" in namespace {namespace} is defined twice'
            )
        self.put_object(resource, doc)

    def record_event(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "kubelet",
    ) -> dict[str, Any]:
        """Record an Event about ``involved`` (what ``kubectl describe`` lists), as the
        component that reports it. The oldest go once :data:`MAX_EVENTS` are kept.

        As client-go's event recorder does, the same event (component, object, type, reason
        and message) within :data:`EVENT_AGGREGATION_SECONDS` of its last occurrence raises
        the stored Event's ``count`` and ``lastTimestamp`` (watchers see it MODIFIED) rather
        than adding another: a crash loop's BackOff is one Event, ``(x12 over 3m)``."""
        metadata = involved["metadata"]
        namespace = metadata.get("namespace") or "default"
        store = self.objects["events"]
        node = (involved.get("spec") or {}).get("nodeName", "")
        same: tuple[str, ...] = (component, node, involved.get("kind", ""), namespace)
        same += (metadata["name"], str(metadata.get("uid", "")), involved.get("apiVersion", ""))
        same += (type, reason, message)
        known = store.get(self._event_names.get(same, ("", "")))
        if known is not None and _recent(known.get("lastTimestamp"), EVENT_AGGREGATION_SECONDS):
            again = copy.deepcopy(known)
            again["count"] = int(known.get("count") or 1) + 1
            again["lastTimestamp"] = now_rfc3339()
            again["involvedObject"]["resourceVersion"] = metadata.get("resourceVersion", "")
            return self.put_object(CORE_EVENTS, again)
        while len(store) >= MAX_EVENTS:
            del store[next(iter(store))]
        if len(self._event_names) >= 2 * MAX_EVENTS:  # forget evicted events' names
            self._event_names = {k: v for k, v in self._event_names.items() if v in store}
        # Named as the event recorder names them (the time in nanoseconds, in hex), so names
        # sort in the order events happened; kept increasing for events in the same tick.
        self._event_clock = max(self._event_clock + 1, time.time_ns())
        name = f"{metadata['name']}.{self._event_clock:x}"
        self._event_names[same] = (namespace, name)
        event = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {
                "kind": involved.get("kind", ""),
                "namespace": namespace,
                "name": metadata["name"],
                "uid": metadata.get("uid", ""),
                "apiVersion": involved.get("apiVersion", ""),
                "resourceVersion": metadata.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": component, **({"host": node} if node else {})},
        }
        return self.put_object(CORE_EVENTS, event)

    def _set_nodes(self, nodes: Mapping[str, Mapping[str, Any] | None]) -> None:
        """Serve these nodes (name → the manifest's Node, or None) in place of the others."""
        store = self.objects["nodes"]
        for key in list(store):
            if key[1] not in nodes:
                self.remove_object(NODES, *key)
        for name, given in nodes.items():
            if ("", name) not in store or given is not None:
                self.put_object(NODES, node_object(name, given, now_rfc3339()))

    # -- namespaces --------------------------------------------------------------------------

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        namespace = {
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "uid": f"ns-{name}",
                "resourceVersion": self.next_resource_version(),
                "creationTimestamp": now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name, **(labels or {})},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }
        self.namespaces[name] = namespace
        if ("serviceaccounts" in self.objects) and (name, "default") not in self.objects[
            "serviceaccounts"
        ]:
            self.put_object(SERVICE_ACCOUNTS, {"metadata": {"name": "default", "namespace": name}})
        return namespace

    def delete_namespace(self, name: str) -> dict[str, Any]:
        namespace = self.namespaces.pop(name)
        for key in [key for key in self.pods if key[0] == name]:
            self.delete_pod(*key)
        for workload_key in [key for key in self.workloads if key[1] == name]:
            del self.workloads[workload_key]
        for store in self.objects.values():
            for key in [key for key in store if key[0] == name]:
                del store[key]
        return namespace

    # -- pods --------------------------------------------------------------------------------

    def container_root(self, namespace: str, pod: str, container: str) -> Path:
        """The folder that stands for a container's filesystem root."""
        return self.state_dir / "pods" / namespace / pod / container

    def working_dir(self, entry: PodEntry, container: Mapping[str, Any]) -> Path:
        """A container's ``workingDir`` inside its root, created if missing.

        Names and ``workingDir`` are validated on the way in, so the path stays inside the
        root; a symlink a pod's command made could still lead out, and the sandbox never
        creates folders or starts commands there (:class:`ManifestError`).
        """
        root = self.container_root(entry.namespace, entry.name, container["name"])
        relative = normalised_working_dir(container.get("workingDir")).lstrip("/")
        workdir = root / relative
        root.mkdir(parents=True, exist_ok=True)
        real_root, real_workdir = root.resolve(), workdir.resolve()
        if real_workdir != real_root and real_root not in real_workdir.parents:
            raise ManifestError(
                f"workingDir {container.get('workingDir')!r} of container "
                f"{container['name']!r} leads out of the container's root"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir

    def add_pod(self, pod: dict[str, Any]) -> PodEntry:
        """Store a new pod (already built) and create its containers' folders."""
        metadata = pod["metadata"]
        namespace = metadata.setdefault("namespace", "default")
        if namespace not in self.namespaces:
            self.add_namespace(namespace)
        behaviour = refresh_pod_status(pod)
        metadata["resourceVersion"] = self.next_resource_version()
        entry = PodEntry(pod=pod, behaviour=behaviour, throttle_left=behaviour.throttle)
        # The folders first, the pod second: a pod whose files cannot be made is never stored
        # (nor seen by a watch), and what was made of its folder is removed again.
        try:
            self._prepare_filesystem(entry)
        except Exception as error:
            shutil.rmtree(
                self.state_dir / "pods" / namespace / metadata["name"], ignore_errors=True
            )
            if isinstance(error, OSError):
                raise ManifestError(
                    f"pod {metadata['name']}: its files could not be made "
                    f"({error.strerror or error})"
                ) from None
            raise
        self.pods[(namespace, metadata["name"])] = entry
        self.lifecycle.admit(entry)
        return entry

    def _prepare_filesystem(self, entry: PodEntry) -> None:
        annotations = entry.pod["metadata"].get("annotations") or {}
        files_spec = annotations.get(PREFIX + "files")
        # Validated when the pod was created; parsed again here as the sandbox's own check.
        files = parse_files(files_spec) if files_spec else {}
        for container in entry.pod["spec"].get("containers", []):
            root = self.container_root(entry.namespace, entry.name, container["name"])
            self.working_dir(entry, container)
            real_root = root.resolve()
            for relative, content in files.items():
                target = (root / relative).resolve()
                if real_root not in target.parents:  # a symlink in the root could lead out
                    raise ManifestError(
                        f"{PREFIX}files of pod {entry.name}: {relative!r} leaves the pod"
                    )
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)

    def create_pod(self, body: dict[str, Any], namespace: str) -> PodEntry:
        """Create a pod from a client's POST body (``generateName`` honoured)."""
        metadata = body.setdefault("metadata", {})
        name = metadata.get("name")
        generate_name = metadata.get("generateName")
        if not name and generate_name:
            seed = f"{namespace}/{generate_name}/{len(self.pods)}/{now_rfc3339()}"
            name = generated_name(generate_name, name_suffix(seed))
            attempt = 0
            while (namespace, name) in self.pods:  # never take a live pod's name
                attempt += 1
                name = generated_name(generate_name, name_suffix(f"{seed}/{attempt}"))
        if not name:
            raise ManifestError("name or generateName is required")
        template = {
            "metadata": {
                "labels": metadata.get("labels") or {},
                "annotations": metadata.get("annotations") or {},
            },
            "spec": body.get("spec") or {},
        }
        node = (body.get("spec") or {}).get("nodeName") or self.nodes[
            len(self.pods) % len(self.nodes)
        ]
        pod = make_pod(
            namespace=namespace,
            name=name,
            template=template,
            node=node,
            pod_ip=self.next_ip(),
            owner=(metadata.get("ownerReferences") or [None])[0],
            generate_name=generate_name,
        )
        return self.add_pod(pod)

    def get_pod(self, namespace: str, name: str) -> PodEntry | None:
        return self.pods.get((namespace, name))

    def delete_pod(self, namespace: str, name: str) -> PodEntry | None:
        """Remove a pod at once (a grace period of 0), killing its processes and ending every
        exec running in it."""
        entry = self.pods.get((namespace, name))
        if entry is None:
            return None
        self.lifecycle.remove(entry)
        return entry

    def delete_pod_gracefully(
        self, namespace: str, name: str, grace: int | None = None
    ) -> dict[str, Any] | None:
        """The API's DELETE of a pod: Terminating for its grace period (``None``: its
        ``terminationGracePeriodSeconds``), then gone; returns the object as it answers."""
        entry = self.pods.get((namespace, name))
        if entry is None:
            return None
        return self.lifecycle.delete(entry, grace)

    def remove_pod_files(self, entry: PodEntry) -> None:
        """Remove a deleted pod's folder."""
        shutil.rmtree(self.state_dir / "pods" / entry.namespace / entry.name, ignore_errors=True)

    def recreate_pod(self, namespace: str, name: str) -> PodEntry | None:
        """Delete a pod and create it again under the same name with a new uid."""
        entry = self.delete_pod(namespace, name)
        if entry is None:
            return None
        pod = copy.deepcopy(entry.pod)
        metadata = pod["metadata"]
        import uuid

        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        metadata.pop("deletionTimestamp", None)
        pod["status"] = {
            k: v for k, v in pod["status"].items() if k in ("podIP", "podIPs", "hostIP", "qosClass")
        }
        annotations = metadata.get("annotations") or {}
        annotations.pop(PREFIX + "exec-fault", None)  # the new pod is healthy
        return self.add_pod(pod)

    def restart_pod(self, namespace: str, name: str) -> None:
        """Restart every container of a pod: running execs die, restart counts go up."""
        entry = self.pods.get((namespace, name))
        if entry is None:
            return
        for session in list(entry.sessions):
            session.interrupt("container restarted")
        restart_containers(entry.pod)
        entry.pod["metadata"]["resourceVersion"] = self.next_resource_version()
        self._notify("MODIFIED", entry.pod)

    def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> PodEntry:
        """Set (or, with ``None``, remove) annotations on a pod and apply their effect."""
        entry = self.pods[(namespace, name)]
        current = entry.pod["metadata"].setdefault("annotations", {})
        previous = {key: current.get(key) for key in annotations}
        for key, value in annotations.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = str(value)
        try:
            entry.behaviour = self.lifecycle.refresh(entry)
        except BehaviourError:
            for key, value in previous.items():  # put back what was there
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            raise
        if PREFIX + "throttle" in annotations:
            entry.throttle_left = entry.behaviour.throttle
        entry.pod["metadata"]["resourceVersion"] = self.next_resource_version()
        self._notify("MODIFIED", entry.pod)
        self._refresh_owner_status(entry.pod)
        return entry

    def update_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: Mapping[str, str],
        annotations: Mapping[str, str],
        images: Mapping[str, str],
        tolerations: list[Any] | None = None,
        owner_references: list[Any] | None = None,
    ) -> PodEntry:
        """Replace a pod's labels, annotations and ownerReferences (their sandbox effects
        applied), set new container images and the tolerations (when given: the caller checked
        that they only add to the pod's)."""
        entry = self.pods[(namespace, name)]
        metadata = entry.pod["metadata"]
        metadata["labels"] = dict(labels)
        if owner_references:
            metadata["ownerReferences"] = list(owner_references)
        else:
            metadata.pop("ownerReferences", None)
        if tolerations is not None:
            entry.pod["spec"]["tolerations"] = list(tolerations)
        for container in entry.pod["spec"].get("containers", []):
            if container["name"] in images:
                container["image"] = images[container["name"]]
        current = metadata.get("annotations") or {}
        changes: dict[str, str | None] = {k: None for k in current if k not in annotations}
        changes.update({k: v for k, v in annotations.items() if current.get(k) != v})
        return self.annotate(namespace, name, changes)

    def update_namespace(
        self, name: str, *, labels: Mapping[str, str], annotations: Mapping[str, str]
    ) -> dict[str, Any]:
        """Replace a namespace's labels (its name label kept, as the apiserver keeps it) and
        annotations."""
        namespace = self.namespaces[name]
        metadata = namespace["metadata"]
        metadata["labels"] = {**labels, "kubernetes.io/metadata.name": name}
        if annotations:
            metadata["annotations"] = dict(annotations)
        else:
            metadata.pop("annotations", None)
        metadata["resourceVersion"] = self.next_resource_version()
        return namespace

    def refresh_endpoints(self) -> None:
        """Endpoints of every Service with a selector: its ready pods' addresses, as the
        endpoints controller keeps them."""
        store = self.objects["endpoints"]
        for (namespace, name), service in list(self.objects["services"].items()):
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue
            pods = [
                pod
                for pod in self.list_pods(namespace)
                if all(
                    (pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items()
                )
            ]
            endpoints = service_endpoints(service, pods)
            live = store.get((namespace, name))
            if live is None or live.get("subsets") != endpoints["subsets"]:
                self.put_object(ENDPOINTS, endpoints)
        services = self.objects["services"]
        for (namespace, name), endpoints in list(store.items()):
            managed = (endpoints["metadata"].get("labels") or {}).get(ENDPOINTS_LABEL)
            if managed and (namespace, name) not in services:
                self.remove_object(ENDPOINTS, namespace, name)

    def list_pods(
        self, namespace: str | None, matches: Callable[[dict[str, Any]], bool] | None = None
    ) -> list[dict[str, Any]]:
        """Pods in ``namespace`` (all when None) that pass ``matches``, in name order."""
        pods = [
            entry.pod
            for (ns, _), entry in self.pods.items()
            if namespace is None or ns == namespace
        ]
        if matches is not None:
            pods = [pod for pod in pods if matches(pod)]
        pods.sort(key=lambda pod: (pod["metadata"]["namespace"], pod["metadata"]["name"]))
        return pods

    def exec_environment(
        self, entry: PodEntry, container: Mapping[str, Any], *, tty: bool
    ) -> dict[str, str]:
        """The environment a command sees in a container, like the kubelet sets it up."""
        pod = entry.pod
        env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOSTNAME": entry.name[:63]}
        root = self.container_root(entry.namespace, entry.name, container["name"])
        env["HOME"] = str(root)
        if tty:
            env["TERM"] = "xterm"
        for variable in container.get("env") or []:
            name = variable.get("name")
            if not name:
                continue
            if "value" in variable:
                env[name] = _expand(
                    text_value(variable["value"]) or "", env
                )  # null: "", as Go decodes it
            elif "valueFrom" in variable:
                env[name] = _field_ref(pod, (variable["valueFrom"] or {}).get("fieldRef") or {})
        return env

    # -- workloads ---------------------------------------------------------------------------

    def add_workload(self, workload: dict[str, Any]) -> None:
        """Store a workload (its defaults filled in, a Deployment's ReplicaSet made) and let
        its controller make its pods now. All or nothing: a pod that cannot be made takes
        the workload and its other pods with it."""
        namespace = workload.setdefault("metadata", {}).setdefault("namespace", "default")
        if namespace not in self.namespaces:
            self.add_namespace(namespace)
        extra, _ = expand_workload(workload, nodes=self.nodes, next_ip=str, with_pods=False)
        for rs in extra:  # a Deployment's first ReplicaSet: its controller scales it up
            rs["spec"]["replicas"] = 0
        owners = [workload, *extra]
        for owner in owners:
            owner["metadata"]["resourceVersion"] = self.next_resource_version()
            self.workloads[(owner["kind"], namespace, owner["metadata"]["name"])] = owner
        try:
            self.controllers.sync_now(workload)
        except Exception:
            for pod in self.controllers.owned_pods(workload):
                self.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
            for owner in [*owners, *self.controllers.owned_workloads(workload)]:
                self.workloads.pop((owner["kind"], namespace, owner["metadata"]["name"]), None)
            raise
        for owner in [*owners, *self.controllers.owned_workloads(workload)]:
            self._refresh_workload(owner)

    def _owned_pods(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        return self.controllers.owned_pods(workload)

    def _refresh_workload(self, workload: dict[str, Any]) -> None:
        before = copy.deepcopy(workload.get("status"))
        self.controllers.refresh_status(workload)
        if before is not None and workload["status"] != before:
            # A status change is a change: a new resourceVersion, and watchers told (what
            # kubectl rollout status waits for).
            workload["metadata"]["resourceVersion"] = self.next_resource_version()
            self._notify("MODIFIED", workload, workload["kind"])

    def create_workload(self, workload: dict[str, Any]) -> dict[str, Any]:
        """Create a workload from a client's body: its pods (and ReplicaSet) made at once."""
        self.add_workload(workload)
        namespace = workload["metadata"]["namespace"]
        for owner in [workload, *self._owned_replicasets(workload)]:
            if owner["metadata"]["namespace"] == namespace:
                self._notify("ADDED", owner, owner["kind"])
        return workload

    def _owned_replicasets(self, workload: dict[str, Any]) -> list[dict[str, Any]]:
        return [w for w in self.controllers.owned_workloads(workload) if w["kind"] == "ReplicaSet"]

    def delete_workload(self, workload: dict[str, Any], propagation: str | None = None) -> None:
        """Delete a workload. What it owns (ReplicaSets, pods) the garbage collector deletes
        after it, in the background (pods gracefully); ``propagation="Orphan"`` leaves them,
        their ownerReferences to it removed."""
        metadata = workload["metadata"]
        key = (workload["kind"], metadata["namespace"], metadata["name"])
        if self.workloads.get(key) is not workload:
            return
        if propagation == "Orphan":
            uid = metadata["uid"]
            for owned in [
                *self.controllers.owned_pods(workload),
                *self._owned_replicasets(workload),
            ]:
                refs = owned["metadata"].get("ownerReferences") or []
                kept = [ref for ref in refs if ref.get("uid") != uid]
                if kept:
                    owned["metadata"]["ownerReferences"] = kept
                else:
                    owned["metadata"].pop("ownerReferences", None)
                owned["metadata"]["resourceVersion"] = self.next_resource_version()
                resource = "pods" if owned.get("kind", "Pod") == "Pod" else owned["kind"]
                self._notify("MODIFIED", owned, resource)
        del self.workloads[key]
        metadata["resourceVersion"] = self.next_resource_version()
        self._notify("DELETED", workload, workload["kind"])
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop to run the garbage collector later: now
            self.controllers.flush()

    def replace_workload(self, new: dict[str, Any]) -> dict[str, Any]:
        """Replace a workload's object; its controller brings its pods in line at once (a new
        ``replicas`` adds or removes pods, a new pod template replaces them)."""
        metadata = new["metadata"]
        key = (new["kind"], metadata["namespace"], metadata["name"])
        old = self.workloads[key]
        for field_name in ("uid", "creationTimestamp"):
            metadata[field_name] = old["metadata"][field_name]
        generation = old["metadata"].get("generation", 1)
        spec_changed = old.get("spec") != new.get("spec")
        metadata["generation"] = generation + 1 if spec_changed else generation
        new["status"] = old.get("status", {})
        expand_workload(new, nodes=self.nodes, next_ip=str, with_pods=False)
        metadata["resourceVersion"] = self.next_resource_version()
        self.workloads[key] = new
        self.controllers.sync_now(new)
        self._refresh_workload(new)
        for rs in self._owned_replicasets(new):
            self._refresh_workload(rs)
        self._notify("MODIFIED", new, new["kind"])
        return new

    def _refresh_owner_status(self, pod: dict[str, Any]) -> None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            for workload in self.workloads.values():
                if workload["metadata"]["uid"] == ref.get("uid"):
                    self._refresh_workload(workload)
                    for parent in workload["metadata"].get("ownerReferences") or []:
                        for owner in self.workloads.values():
                            if owner["metadata"]["uid"] == parent.get("uid"):
                                self._refresh_workload(owner)

    def list_workloads(self, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        items = [
            w
            for (k, ns, _), w in self.workloads.items()
            if k == kind and (namespace is None or ns == namespace)
        ]
        for item in items:
            self._refresh_workload(item)
        items.sort(key=lambda w: (w["metadata"]["namespace"], w["metadata"]["name"]))
        return items

    def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        workload = self.workloads.get((kind, namespace, name))
        if workload is not None:
            self._refresh_workload(workload)
        return workload

    # -- manifests ---------------------------------------------------------------------------

    def apply(
        self, documents: Iterable[Mapping[str, Any] | None], *, source: str | None = None
    ) -> None:
        """Load manifest documents: Namespaces and Nodes first, then Pods and workloads.

        Every document is checked before any is loaded, so a bad manifest changes nothing;
        the :class:`ManifestError` names ``source`` (a file), the object and the field.
        """
        where = f"{source}: " if source else ""
        given = [doc for doc in documents if doc]
        for index, doc in enumerate(given):
            if not isinstance(doc, Mapping):
                raise ManifestError(
                    f"{where}document {index + 1} is a {type(doc).__name__}, "
                    "not a mapping (a Kubernetes object)"
                )
        docs = [copy.deepcopy(dict(doc)) for doc in given]
        for index, doc in enumerate(docs):
            kind = doc.get("kind")
            if kind == "List":
                raise ManifestError(
                    f"{where}kind List is not supported; use one document per object"
                )
            if kind not in SUPPORTED_KINDS:
                raise ManifestError(
                    f"{where}document {index + 1}: kind {kind!r} is not supported "
                    f"(supported: {', '.join(SUPPORTED_KINDS)})"
                )
            metadata = doc.get("metadata")
            if metadata is None or (isinstance(metadata, Mapping) and not metadata.get("name")):
                raise ManifestError(
                    f"{where}document {index + 1} ({kind}): metadata.name is required"
                )
            errors = validate_object(doc)
            if errors:
                name = metadata.get("name") if isinstance(metadata, Mapping) else None
                label = f"document {index + 1}: " if not isinstance(name, str) else ""
                invalid = ObjectInvalid(kind, name if isinstance(name, str) else "", errors)
                raise ManifestError(f"{where}{label}{invalid.invalid_message}")
        nodes = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Node"]
        wanted = sum(replica_count(doc, len(nodes or self.nodes)) for doc in docs)
        if wanted > self.ips_left:
            raise PodCapacityError(
                f"{where}the manifest asks for {wanted} pods; the sandbox has room for "
                f"{self.ips_left} more (at most {MAX_PODS}, one per address of {POD_NETWORK})"
            )
        if nodes:
            self.nodes = nodes
            self._set_nodes({doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == "Node"})
        for doc in docs:
            if doc["kind"] == "Namespace" and doc["metadata"]["name"] not in self.namespaces:
                self.add_namespace(doc["metadata"]["name"], doc["metadata"].get("labels"))
        for doc in docs:
            try:
                if doc["kind"] == "Pod":
                    namespace = doc["metadata"].get("namespace") or "default"
                    if (namespace, doc["metadata"]["name"]) in self.pods:
                        raise ManifestError(
                            f'{where}pod "{doc["metadata"]["name"]}" is defined twice'
                        )
                    self.create_pod(doc, namespace)
                elif doc["kind"] in WORKLOAD_KINDS:
                    self.add_workload(doc)
                elif doc["kind"] in _MANIFEST_STORED:
                    self._add_stored(_MANIFEST_STORED[doc["kind"]], doc, where)
            except BehaviourError as error:
                raise ManifestError(
                    f"{where}{doc['kind']} {doc['metadata']['name']}: {error}"
                ) from None

    def apply_yaml(self, text: str, *, source: str | None = None) -> None:
        """Load a multi-document YAML manifest (``source``: the file it came from, for errors)."""
        where = f"{source}: " if source else ""
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as error:
            detail = " ".join(str(error).split())  # one line: PyYAML's message spans several
            raise ManifestError(f"{where}invalid YAML: {detail}") from None
        for doc in documents:
            if doc is not None and not isinstance(doc, Mapping):
                raise ManifestError(
                    f"{where}every YAML document must be a mapping (a Kubernetes object)"
                )
        self.apply(documents, source=source)

    # -- issued tokens -----------------------------------------------------------------------

    def issue_token(
        self,
        ttl: float | None = None,
        *,
        user: str | None = None,
        groups: tuple[str, ...] = (),
    ) -> tuple[str, float | None]:
        """A new bearer token, accepted like the admin token until ``ttl`` seconds pass (``None``:
        until :meth:`expire_tokens`). Returns it with its expiry as a Unix time (or ``None``).
        ``user`` (with ``groups``) names whose it is: such a token may do what the cluster's
        RBAC objects allow it; without one it is the sandbox user's, who may do everything."""
        if ttl is not None and (
            isinstance(ttl, bool)
            or not isinstance(ttl, (int, float))
            # range first: math.isfinite() overflows on a huge int
            or not 0 < ttl <= MAX_TOKEN_TTL
            or not math.isfinite(ttl)
        ):
            raise ValueError(
                f"ttl must be a number of seconds above 0 and at most {MAX_TOKEN_TTL:.0f}, "
                f"got {ttl!r}"
            )
        token = "sandbox-issued-" + secrets.token_urlsafe(32)
        self.issued_tokens[token] = None if ttl is None else time.monotonic() + ttl
        if user is not None:
            self.token_users[token] = user
            self.token_groups[token] = tuple(groups)
        return token, None if ttl is None else time.time() + ttl

    def token_user(self, token: str) -> str:
        """Whose ``token`` is: a service account's for one issued for it, else the sandbox's
        user."""
        return self.token_users.get(token, self.user)

    def expire_tokens(self) -> int:
        """Expire every issued token now; returns how many were still valid."""
        now = time.monotonic()
        valid = [token for token in self.issued_tokens if self.token_is_valid(token)]
        for token in valid:
            self.issued_tokens[token] = now
        return len(valid)

    def token_is_valid(self, token: str) -> bool:
        """Whether ``token`` was issued by :meth:`issue_token` and has not expired."""
        if token not in self.issued_tokens:
            return False
        expires = self.issued_tokens[token]
        return expires is None or time.monotonic() < expires

    # -- throttling --------------------------------------------------------------------------

    def take_throttle(self, entry: PodEntry | None) -> float | None:
        """Consume one throttled request, returning its Retry-After, or None to serve it."""
        if self.throttle_left > 0:
            self.throttle_left -= 1
            return self.throttle_retry_after
        if entry is not None and entry.throttle_left > 0:
            entry.throttle_left -= 1
            return entry.behaviour.retry_after
        return None


_REFERENCE = re.compile(r"\$(?:\$|\(([^)]*)\))")


def _expand(value: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` references to earlier variables, as the kubelet expands them: in one pass
    (a value is never expanded again), ``$$`` is a literal ``$``, and a reference to a name
    not defined stays as written."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


def _field_ref(pod: Mapping[str, Any], ref: Mapping[str, Any]) -> str:
    """The downward API: ``valueFrom.fieldRef``."""
    path = str(ref.get("fieldPath", ""))
    metadata = pod["metadata"]
    simple = {
        "metadata.name": metadata["name"],
        "metadata.namespace": metadata["namespace"],
        "metadata.uid": metadata["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod["status"].get("podIP", ""),
        "status.hostIP": pod["status"].get("hostIP", ""),
        # The kubelet joins the lists with commas.
        "status.podIPs": ",".join(ip.get("ip", "") for ip in pod["status"].get("podIPs") or []),
        "status.hostIPs": ",".join(ip.get("ip", "") for ip in pod["status"].get("hostIPs") or []),
    }
    if path in simple:
        return str(simple[path])
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((metadata.get(source) or {}).get(path[len(prefix) + 2 : -2], ""))
    return ""
