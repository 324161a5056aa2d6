"""Static discovery documents: what the sandbox serves, advertised the legacy way.

kubectl asks for aggregated discovery first and falls back to these plain JSON documents.
Only what the sandbox actually serves is advertised.
"""

from __future__ import annotations

from typing import Any

from .._kinds import WORKLOAD_KINDS
from ._resources import APIREGISTRATION, FULL_VERBS, RBAC, RESOURCES

__all__ = ["API_GROUPS", "API_VERSIONS", "RESOURCE_LISTS", "VERSION_INFO"]

KUBERNETES_VERSION = "v1.33.0"

VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "33",
    "gitVersion": f"{KUBERNETES_VERSION}+podmagic-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

API_VERSIONS: dict[str, Any] = {
    "kind": "APIVersions",
    "versions": ["v1"],
    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
}

_FULL = list(FULL_VERBS)
_OBJECT = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _resource(
    name: str,
    kind: str,
    verbs: list[str],
    *,
    namespaced: bool = True,
    short_names: list[str] | None = None,
    singular: str = "",
    categories: list[str] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "name": name,
        "singularName": singular,
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs,
    }
    if short_names:
        resource["shortNames"] = short_names
    if categories:
        resource["categories"] = categories
    return resource


def _workload_resources(api_version: str) -> list[dict[str, Any]]:
    """The workload kinds of one group/version (podmagic._kinds), as discovery lists them."""
    kinds = sorted(
        (kind for kind in WORKLOAD_KINDS.values() if kind.api_version == api_version),
        key=lambda kind: kind.plural,
    )
    resources = []
    for kind in kinds:
        resources.append(
            _resource(
                kind.plural,
                kind.name,
                _OBJECT,
                # "job/" is podmagic's prefix; the apiserver advertises no short name for jobs.
                short_names=[kind.short] if kind.short != kind.name.lower() else None,
                singular=kind.name.lower(),
                categories=["all"],
            )
        )
        if kind.name in ("Deployment", "StatefulSet", "ReplicaSet"):
            scale = _resource(f"{kind.plural}/scale", "Scale", ["get", "patch", "update"])
            scale.update({"group": "autoscaling", "version": "v1"})
            resources.append(scale)
        resources.append(_resource(f"{kind.plural}/status", kind.name, ["get"]))
    return resources


def _stored_resources(api_version: str) -> list[dict[str, Any]]:
    """The stored resources (:mod:`._resources`) of one group/version."""
    return [
        _resource(
            resource.plural,
            resource.kind,
            _FULL,
            namespaced=resource.namespaced,
            short_names=list(resource.short) or None,
            singular=resource.kind.lower(),
            categories=list(resource.categories) or None,
        )
        for resource in RESOURCES
        if resource.api_version == api_version
    ]


def _group(name: str) -> dict[str, Any]:
    version = {"groupVersion": f"{name}/v1", "version": "v1"}
    return {"name": name, "versions": [version], "preferredVersion": version}


API_GROUPS: dict[str, Any] = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [
        _group("apps"),
        _group("batch"),
        _group("events.k8s.io"),
        _group("authentication.k8s.io"),
        _group("authorization.k8s.io"),
        _group("rbac.authorization.k8s.io"),
        _group("apiregistration.k8s.io"),
    ],
}

RESOURCE_LISTS: dict[str, dict[str, Any]] = {
    "v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": sorted(
            [
                _resource(
                    "namespaces",
                    "Namespace",
                    _OBJECT,
                    namespaced=False,
                    short_names=["ns"],
                    singular="namespace",
                ),
                _resource(
                    "pods", "Pod", _OBJECT, short_names=["po"], singular="pod", categories=["all"]
                ),
                _resource("pods/exec", "PodExecOptions", ["create", "get"]),
                _resource("pods/log", "Pod", ["get"]),
                _resource("pods/portforward", "PodPortForwardOptions", ["create", "get"]),
                *_stored_resources("v1"),
            ],
            key=lambda resource: str(resource["name"]),
        ),
    },
    "apps/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "apps/v1",
        "resources": _workload_resources("apps/v1"),
    },
    "batch/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "batch/v1",
        "resources": _workload_resources("batch/v1"),
    },
    "authentication.k8s.io/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "authentication.k8s.io/v1",
        "resources": [
            _resource("selfsubjectreviews", "SelfSubjectReview", ["create"], namespaced=False),
            _resource("tokenreviews", "TokenReview", ["create"], namespaced=False),
        ],
    },
    "authorization.k8s.io/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "authorization.k8s.io/v1",
        "resources": [
            _resource(
                "selfsubjectaccessreviews", "SelfSubjectAccessReview", ["create"], namespaced=False
            ),
            _resource(
                "selfsubjectrulesreviews", "SelfSubjectRulesReview", ["create"], namespaced=False
            ),
        ],
    },
    "events.k8s.io/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "events.k8s.io/v1",
        "resources": _stored_resources("events.k8s.io/v1"),
    },
    RBAC: {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": RBAC,
        "resources": _stored_resources(RBAC),
    },
    APIREGISTRATION: {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": APIREGISTRATION,
        "resources": _stored_resources(APIREGISTRATION),
    },
}
