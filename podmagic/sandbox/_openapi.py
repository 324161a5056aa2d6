"""OpenAPI v3 documents: enough for ``kubectl apply -f`` / ``create -f`` with their default
validation, and for ``kubectl explain``.

kubectl validates with ``--validate=strict`` by default: it reads ``/openapi/v3`` to learn
whether the server checks fields itself (the ``fieldValidation`` query parameter of each
kind's PATCH operation); if so it sends the object and leaves the check to the server,
otherwise it needs the whole OpenAPI v2 schema and fails without it ("failed to download
openapi"). ``kubectl explain`` reads the schema of the kind from the same documents.

The documents list every path the sandbox serves, with the kind each operates on
(``x-kubernetes-group-version-kind``), and schemas of the kinds with the fields notebooks
use. The sandbox checks ``fieldValidation`` itself (:mod:`._field_validation`); the
Swagger 2.0 form of the same is :mod:`._openapi_v2`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._discovery import RESOURCE_LISTS

__all__ = ["openapi_group_version", "openapi_root"]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"


def _ref(name: str) -> dict[str, Any]:
    return {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "default": {}}


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "default": "", "description": description}


def _map(description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {"type": "string", "default": ""},
        "description": description,
    }


def _array(items: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "array", "items": items, "description": description}


_OBJECT_META: dict[str, Any] = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which "
    "includes all objects users must create.",
    "type": "object",
    "properties": {
        "name": _string("Name must be unique within a namespace."),
        "generateName": _string(
            "GenerateName is an optional prefix, used by the server, to generate a unique "
            "name ONLY IF the Name field has not been provided."
        ),
        "namespace": _string("Namespace defines the space within which each name must be unique."),
        "labels": _map(
            "Map of string keys and values that can be used to organize and categorize "
            "(scope and select) objects."
        ),
        "annotations": _map(
            "Annotations is an unstructured key value map stored with a resource that may be "
            "set by external tools to store and retrieve arbitrary metadata."
        ),
        "uid": _string("UID is the unique in time and space value for this object."),
        "resourceVersion": _string(
            "An opaque value that represents the internal version of this object."
        ),
        "creationTimestamp": _string(
            "CreationTimestamp is a timestamp representing the server time when this object "
            "was created."
        ),
    },
}

_CONTAINER: dict[str, Any] = {
    "description": "A single application container that you want to run within a pod.",
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _string("Name of the container specified as a DNS_LABEL."),
        "image": _string("Container image name."),
        "command": _array(
            {"type": "string", "default": ""}, "Entrypoint array. Not executed within a shell."
        ),
        "args": _array({"type": "string", "default": ""}, "Arguments to the entrypoint."),
        "workingDir": _string("Container's working directory."),
        "env": _array({"type": "object"}, "List of environment variables to set in the container."),
        "ports": _array({"type": "object"}, "List of ports to expose from the container."),
        "resources": {
            "type": "object",
            "description": "Compute Resources required by this container.",
        },
        "volumeMounts": _array(
            {"type": "object"}, "Pod volumes to mount into the container's filesystem."
        ),
        "imagePullPolicy": _string("Image pull policy. One of Always, Never, IfNotPresent."),
    },
}

_POD_SPEC: dict[str, Any] = {
    "description": "PodSpec is a description of a pod.",
    "type": "object",
    "required": ["containers"],
    "properties": {
        "containers": _array(
            _ref("io.k8s.api.core.v1.Container"),
            "List of containers belonging to the pod.",
        ),
        "initContainers": _array(
            _ref("io.k8s.api.core.v1.Container"),
            "List of initialization containers belonging to the pod.",
        ),
        "restartPolicy": _string(
            "Restart policy for all containers within the pod. One of Always, OnFailure, Never."
        ),
        "nodeName": _string("NodeName indicates in which node this pod is scheduled."),
        "serviceAccountName": _string(
            "ServiceAccountName is the name of the ServiceAccount to use to run this pod."
        ),
        "volumes": _array(
            {"type": "object"},
            "List of volumes that can be mounted by containers belonging to the pod.",
        ),
        "tolerations": _array({"type": "object"}, "If specified, the pod's tolerations."),
        "terminationGracePeriodSeconds": {
            "type": "integer",
            "format": "int64",
            "description": "Optional duration in seconds the pod needs to terminate gracefully.",
        },
    },
}

_TEMPLATE: dict[str, Any] = {
    "description": "PodTemplateSpec describes the data a pod should have when created from "
    "a template",
    "type": "object",
    "properties": {
        "metadata": _ref(f"{_META}.ObjectMeta"),
        "spec": _ref("io.k8s.api.core.v1.PodSpec"),
    },
}

# What each kind's schema says of itself and of its spec (one line each, as explain shows).
_DESCRIPTIONS = {
    "Pod": "Pod is a collection of containers that can run on a host. This resource is "
    "created by clients and scheduled onto hosts.",
    "Namespace": "Namespace provides a scope for Names.",
    "ConfigMap": "ConfigMap holds configuration data for pods to consume.",
    "Secret": "Secret holds secret data of a certain type.",
    "Service": "Service is a named abstraction of software service (for example, mysql) "
    "consisting of local port (for example 3306) that the proxy listens on, and the selector "
    "that determines which pods will answer requests sent through the proxy.",
    "Endpoints": "Endpoints is a collection of endpoints that implement the actual service.",
    "ServiceAccount": "ServiceAccount binds together: a name, understood by users, and perhaps "
    "by peripheral systems, for an identity; a principal that can be authenticated and "
    "authorized; a set of secrets.",
    "Event": "Event is a report of an event somewhere in the cluster.",
    "Node": "Node is a worker node in Kubernetes.",
    "ReplicationController": "ReplicationController represents the configuration of a "
    "replication controller.",
    "Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "StatefulSet": "StatefulSet represents a set of pods with consistent identities.",
    "DaemonSet": "DaemonSet represents the configuration of a daemon set.",
    "ReplicaSet": "ReplicaSet ensures that a specified number of pod replicas are running at "
    "any given time.",
    "Job": "Job represents the configuration of a single job.",
    "Role": "Role is a namespaced, logical grouping of PolicyRules.",
    "ClusterRole": "ClusterRole is a cluster level, logical grouping of PolicyRules.",
    "RoleBinding": "RoleBinding references a role, but does not contain it.",
    "ClusterRoleBinding": "ClusterRoleBinding references a ClusterRole, but not contain it.",
}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def _schema_name(group_version: str, kind: str) -> str:
    group, _, version = group_version.rpartition("/")
    package = {
        "": "core",
        "apps": "apps",
        "batch": "batch",
        "events.k8s.io": "events",
        "rbac.authorization.k8s.io": "rbac",
    }.get(group, group)
    return f"io.k8s.api.{package}.{version}.{kind}"


def _kind_schema(group_version: str, kind: str) -> dict[str, Any]:
    group, _, version = group_version.rpartition("/")
    properties: dict[str, Any] = {
        "apiVersion": _string(
            "APIVersion defines the versioned schema of this representation of an object."
        ),
        "kind": _string(
            "Kind is a string value representing the REST resource this object represents."
        ),
        "metadata": _ref(f"{_META}.ObjectMeta"),
    }
    if kind == "Pod":
        properties["spec"] = _ref("io.k8s.api.core.v1.PodSpec")
        properties["status"] = {"type": "object", "description": "Most recently observed status."}
    elif kind in _WORKLOADS:
        properties["spec"] = {
            "type": "object",
            "description": f"Specification of the desired behavior of the {kind}.",
            "properties": {
                "replicas": {
                    "type": "integer",
                    "format": "int32",
                    "description": "Number of desired pods.",
                },
                "selector": {"type": "object", "description": "Label selector for pods."},
                "template": _ref("io.k8s.api.core.v1.PodTemplateSpec"),
            },
        }
        properties["status"] = {"type": "object", "description": "Most recently observed status."}
    elif kind in ("ConfigMap", "Secret"):
        properties["data"] = _map("Data contains the configuration data.")
        if kind == "Secret":
            properties["stringData"] = _map(
                "stringData allows specifying non-binary secret data in string form."
            )
            properties["type"] = _string("Used to facilitate programmatic handling of secret data.")
    elif kind in ("Role", "ClusterRole"):
        properties["rules"] = {
            "type": "array",
            "description": "Rules holds all the PolicyRules for this role.",
            "items": {"type": "object"},
        }
        if kind == "ClusterRole":
            properties["aggregationRule"] = {"type": "object", "description": "AggregationRule."}
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        properties["roleRef"] = {"type": "object", "description": "The role bound."}
        properties["subjects"] = {
            "type": "array",
            "description": "Subjects holds references to the objects the role applies to.",
            "items": {"type": "object"},
        }
    else:
        properties["spec"] = {"type": "object", "description": "Spec of the object."}
    return {
        "description": _DESCRIPTIONS.get(kind, kind),
        "type": "object",
        "properties": properties,
        "x-kubernetes-group-version-kind": [{"group": group, "kind": kind, "version": version}],
    }


_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": "fieldValidation instructs the server on how to handle objects in the "
    "request (POST/PUT/PATCH) containing unknown or duplicate fields.",
    "schema": {"type": "string", "uniqueItems": True},
}


def _operations(gvk: dict[str, str], *, item: bool) -> dict[str, Any]:
    extension = {"x-kubernetes-group-version-kind": gvk}
    verbs: tuple[str, ...] = ("get", "put", "patch", "delete") if item else ("get", "post")
    operations: dict[str, Any] = {}
    for verb in verbs:
        operation: dict[str, Any] = {
            "responses": {"200": {"description": "OK"}},
            **extension,
        }
        if verb in ("post", "put", "patch"):
            operation["parameters"] = [_FIELD_VALIDATION]
        operations[verb] = operation
    return operations


def openapi_group_version(group_version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group/version (``v1``, ``apps/v1``), or None."""
    resources = RESOURCE_LISTS.get(group_version)
    if resources is None:
        return None
    group, _, version = group_version.rpartition("/")
    root = f"/apis/{group_version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {
        f"{_META}.ObjectMeta": _OBJECT_META,
        "io.k8s.api.core.v1.Container": _CONTAINER,
        "io.k8s.api.core.v1.PodSpec": _POD_SPEC,
        "io.k8s.api.core.v1.PodTemplateSpec": _TEMPLATE,
    }
    for resource in resources["resources"]:
        name, kind = resource["name"], resource["kind"]
        if "/" in name:
            continue
        gvk = {"group": group, "version": version, "kind": kind}
        collection = (
            f"{root}/namespaces/{{namespace}}/{name}"
            if resource["namespaced"]
            else f"{root}/{name}"
        )
        paths[collection] = _operations(gvk, item=False)
        paths[collection + "/{name}"] = _operations(gvk, item=True)
        schemas[_schema_name(group_version, kind)] = _kind_schema(group_version, kind)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _hash(group_version: str) -> str:
    document = json.dumps(openapi_group_version(group_version), sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()[:32].upper()


def openapi_root() -> dict[str, Any]:
    """``GET /openapi/v3``: where each group/version's document is."""
    paths = {}
    for group_version in RESOURCE_LISTS:
        group = group_version.rpartition("/")[0]
        path = f"apis/{group_version}" if group else f"api/{group_version}"
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={_hash(group_version)}"}
    return {"paths": paths}
