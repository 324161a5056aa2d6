"""The resources the sandbox serves beyond pods and workloads, and the defaults it fills in.

ConfigMaps, Secrets, Services, Endpoints, ServiceAccounts, Events (core/v1 and
events.k8s.io/v1), Nodes, ReplicationControllers, the RBAC kinds and APIServices
(apiregistration.k8s.io: stored, not aggregated) are stored as the client sends them,
with what the apiserver adds: metadata (uid, resourceVersion, creationTimestamp), the
defaults of each kind (a Service's clusterIP and port protocol, a Secret's type and its
``stringData`` folded into ``data``, ...). One table describes them for routing, discovery
and ``kubectl api-resources``.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "APIREGISTRATION",
    "CORE_EVENTS",
    "ENDPOINTS",
    "ENDPOINTS_LABEL",
    "EVENTS_V1",
    "NODES",
    "RBAC",
    "RESOURCES",
    "SERVICES",
    "SERVICE_ACCOUNTS",
    "Resource",
    "convert_event",
    "default_object",
    "kubernetes_service",
    "node_object",
    "resource_for",
    "service_endpoints",
]

FULL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass(frozen=True)
class Resource:
    """One stored resource: ``Resource("configmaps", "ConfigMap", "v1", short=("cm",))``."""

    plural: str
    kind: str
    api_version: str
    namespaced: bool = True
    short: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def key(self) -> str:
        """Where its objects are stored: the plural (``configmaps``). Events of both APIs are
        the same objects, as in the apiserver, stored and watched as core ``events``."""
        return self.plural


RBAC = "rbac.authorization.k8s.io/v1"
APIREGISTRATION = "apiregistration.k8s.io/v1"
EVENTS_V1 = Resource("events", "Event", "events.k8s.io/v1", short=("ev",))
CORE_EVENTS = Resource("events", "Event", "v1", short=("ev",))
NODES = Resource("nodes", "Node", "v1", namespaced=False, short=("no",))
SERVICE_ACCOUNTS = Resource("serviceaccounts", "ServiceAccount", "v1", short=("sa",))
SERVICES = Resource("services", "Service", "v1", short=("svc",), categories=("all",))
ENDPOINTS = Resource("endpoints", "Endpoints", "v1", short=("ep",))

#: The stored resources, in discovery order.
RESOURCES: tuple[Resource, ...] = (
    Resource("configmaps", "ConfigMap", "v1", short=("cm",)),
    ENDPOINTS,
    CORE_EVENTS,
    NODES,
    Resource(
        "replicationcontrollers", "ReplicationController", "v1", short=("rc",), categories=("all",)
    ),
    Resource("secrets", "Secret", "v1"),
    SERVICE_ACCOUNTS,
    SERVICES,
    EVENTS_V1,
    # RBAC objects are stored and served (kubectl apply, the clients' create_from_yaml) and
    # enforced for named users' and service accounts' tokens (_rbac.py); the sandbox's own
    # user may do everything.
    Resource("clusterrolebindings", "ClusterRoleBinding", RBAC, namespaced=False),
    Resource("clusterroles", "ClusterRole", RBAC, namespaced=False),
    Resource("rolebindings", "RoleBinding", RBAC),
    Resource("roles", "Role", RBAC),
    # Registered API servers: stored and served (create_from_yaml, kubectl apply); the
    # sandbox aggregates nothing, so their groups never appear in discovery.
    Resource(
        "apiservices",
        "APIService",
        APIREGISTRATION,
        namespaced=False,
        categories=("api-extensions",),
    ),
)
_BY_PATH = {(r.api_version, r.plural): r for r in RESOURCES}


def resource_for(api_version: str, plural: str) -> Resource | None:
    """The stored resource served at ``api_version``/``plural``, if any."""
    return _BY_PATH.get((api_version, plural))


_SERVICE_NETWORK = ipaddress.ip_network("10.96.0.0/16")


def _service_defaults(obj: dict[str, Any], taken: Iterable[str]) -> None:
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    if kind != "ExternalName":
        if not spec.get("clusterIP"):
            used = set(taken)
            # 10.96.0.1 is the kubernetes Service's in a real cluster.
            hosts = (str(ip) for ip in _SERVICE_NETWORK.hosts())
            next(hosts)
            spec["clusterIP"] = next(ip for ip in hosts if ip not in used)
        spec.setdefault(
            "clusterIPs", [spec["clusterIP"]] if spec["clusterIP"] != "None" else ["None"]
        )
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port:
                port.setdefault("targetPort", port["port"])
    obj.setdefault("status", {"loadBalancer": {}})


def _secret_defaults(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, Mapping):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _event_defaults(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Normal")
    obj.setdefault("count", 1)
    obj.setdefault("source", {})
    stamp = obj["metadata"]["creationTimestamp"]
    obj.setdefault("firstTimestamp", stamp)
    obj.setdefault("lastTimestamp", obj["firstTimestamp"])
    obj.setdefault("eventTime", None)
    obj.setdefault("reportingComponent", obj["source"].get("component", ""))
    obj.setdefault("reportingInstance", obj["source"].get("host", ""))


def _replication_controller_defaults(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    spec.setdefault("selector", dict(labels))
    if not obj["metadata"].get("labels"):  # the template's, as the apiserver defaults them
        obj["metadata"]["labels"] = dict(labels)
    obj.setdefault("status", {"replicas": 0})


def default_object(resource: Resource, obj: dict[str, Any], *, cluster_ips: Iterable[str]) -> None:
    """Fill in the defaults the apiserver sets on a new or replaced object of ``resource``."""
    obj["kind"] = resource.kind
    obj["apiVersion"] = resource.api_version
    if resource.kind == "Service":
        _service_defaults(obj, cluster_ips)
    elif resource.kind == "Secret":
        _secret_defaults(obj)
    elif resource.kind == "Event" and resource.group == "":
        _event_defaults(obj)
    elif resource.kind == "ReplicationController":
        _replication_controller_defaults(obj)


def kubernetes_service() -> dict[str, Any]:
    """The API server's own Service, ``default/kubernetes`` at 10.96.0.1:443, which every
    cluster has (clients look it up; it selects no pods)."""
    return {
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": "10.96.0.1",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
        },
    }


def node_object(name: str, given: Mapping[str, Any] | None, created: str) -> dict[str, Any]:
    """A Node as the kubelet registers it: the manifest's object (labels, taints) with the
    status a ready node reports."""
    node: dict[str, Any] = {"kind": "Node", "apiVersion": "v1", **dict(given or {})}
    metadata = node.setdefault("metadata", {})
    metadata["name"] = name
    metadata.setdefault("creationTimestamp", created)
    metadata["labels"] = {
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        **(metadata.get("labels") or {}),
    }
    node.setdefault("spec", {})
    condition = {
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": created,
        "lastTransitionTime": created,
    }
    capacity = {"cpu": "2", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    node["status"] = {
        "conditions": [condition],
        "addresses": [
            {"type": "InternalIP", "address": "172.18.0.2"},
            {"type": "Hostname", "address": name},
        ],
        "capacity": capacity,
        "allocatable": dict(capacity),
        "nodeInfo": {
            "architecture": "amd64",
            "operatingSystem": "linux",
            "kubeletVersion": "v1.33.0",
            "kubeProxyVersion": "v1.33.0",
            "containerRuntimeVersion": "podmagic-sandbox://1",
            "osImage": "podmagic sandbox",
            "kernelVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }
    return node


#: The label the endpoints controller sets on the Endpoints it manages.
ENDPOINTS_LABEL = "endpoints.kubernetes.io/managed-by"


def service_endpoints(
    service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """The Endpoints of a Service with a selector: ready pods as addresses, the others as
    notReadyAddresses, and the Service's ports with their target port numbers."""
    metadata = service["metadata"]
    ready: list[dict[str, Any]] = []
    not_ready: list[dict[str, Any]] = []
    for pod in pods:
        conditions = (pod.get("status") or {}).get("conditions") or []
        is_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        address = {
            "ip": (pod.get("status") or {}).get("podIP", ""),
            "nodeName": (pod.get("spec") or {}).get("nodeName", ""),
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"]["namespace"],
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"].get("uid", ""),
            },
        }
        (ready if is_ready else not_ready).append(address)
    ports = []
    for port in (service.get("spec") or {}).get("ports") or []:
        target = port.get("targetPort", port.get("port"))
        entry = {
            "port": target if isinstance(target, int) else port.get("port"),
            "protocol": port.get("protocol", "TCP"),
        }
        if port.get("name"):
            entry["name"] = port["name"]
        ports.append(entry)
    subsets: list[dict[str, Any]] = []
    if ready or not_ready:
        subset: dict[str, Any] = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        subsets.append(subset)
    return {
        "metadata": {
            "name": metadata["name"],
            "namespace": metadata["namespace"],
            "labels": {**(metadata.get("labels") or {}), ENDPOINTS_LABEL: "endpoint-controller"},
        },
        "subsets": subsets,
    }


# events.k8s.io/v1 field ← core/v1 field (the apiserver converts between the two).
_EVENT_FIELDS = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("related", "related"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("eventTime", "eventTime"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
)


def convert_event(event: Mapping[str, Any], *, to_v1: bool) -> dict[str, Any]:
    """An Event in the other API: core/v1 → events.k8s.io/v1 (``to_v1``) or back."""
    pairs = _EVENT_FIELDS if to_v1 else tuple((core, new) for new, core in _EVENT_FIELDS)
    converted: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "events.k8s.io/v1" if to_v1 else "v1",
        "metadata": event.get("metadata", {}),
    }
    for target, source in pairs:
        if source in event and event[source] is not None:
            converted[target] = event[source]
    return converted
