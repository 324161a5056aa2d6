"""RBAC as the apiserver's authorizer applies it, for callers that are not the sandbox's admin.

The sandbox's own token (and tokens issued without a user) belong to its user in the
``system:masters`` group, which may do everything, as a kind cluster's admin. Tokens issued
to a named user (``Sandbox.issue_token(user="alice")``, ``POST /sandbox/tokens`` with a
``user``) or to a service account (``kubectl create token``, projected volumes) are held to
the Role, ClusterRole, RoleBinding and ClusterRoleBinding objects the cluster stores, from a
manifest or created through the API:

- a request's attributes are read from its path and method as the apiserver's RequestInfo
  does (:func:`request_attributes`): verb, API group, resource, subresource, namespace, name,
  or a non-resource path;
- a rule allows it when its verbs, apiGroups, resources (``pods/exec``, ``*/scale``, ``*``),
  resourceNames and nonResourceURLs match (:func:`rule_allows`);
- ClusterRoleBindings grant everywhere, RoleBindings in their namespace; subjects are
  users, groups and service accounts (``system:serviceaccount:NS:NAME``).

The bootstrap ClusterRoles the apiserver makes are known without being stored
(``cluster-admin``, ``admin``, ``edit``, ``view`` -- close approximations of the aggregated
ones --, ``system:auth-delegator``, ``system:basic-user``, ``system:discovery``,
``system:public-info-viewer``), with the bindings that give every authenticated user the
last three. Aggregation rules are not evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _status as status
from ._resources import resource_for

__all__ = [
    "ADMIN_GROUPS",
    "AUTHENTICATED",
    "BOOTSTRAP_CLUSTER_ROLES",
    "Attributes",
    "Identity",
    "authorize",
    "forbidden",
    "request_attributes",
    "rule_allows",
    "rules_for",
]

RBAC_API = "rbac.authorization.k8s.io/v1"
#: The groups of the sandbox's admin: allowed everything, never evaluated.
ADMIN_GROUPS = ("system:masters", "system:authenticated")
AUTHENTICATED = "system:authenticated"

_READ = ["get", "list", "watch"]
_ALL = ["*"]
_WORKLOAD_GROUPS = ["", "apps", "batch", "autoscaling", "policy", "networking.k8s.io"]
# What `view` reads: not secrets, nor the subresources that act inside a pod.
_VIEWED = [
    "configmaps",
    "endpoints",
    "events",
    "persistentvolumeclaims",
    "pods",
    "pods/log",
    "pods/status",
    "replicationcontrollers",
    "replicationcontrollers/scale",
    "serviceaccounts",
    "services",
    "namespaces",
    "deployments",
    "deployments/scale",
    "replicasets",
    "replicasets/scale",
    "statefulsets",
    "statefulsets/scale",
    "daemonsets",
    "jobs",
    "cronjobs",
    "horizontalpodautoscalers",
    "poddisruptionbudgets",
    "ingresses",
    "networkpolicies",
]

#: The bootstrap ClusterRoles, by name, as rule lists.
BOOTSTRAP_CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
    "admin": [
        {"apiGroups": _WORKLOAD_GROUPS, "resources": ["*"], "verbs": _ALL},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles", "rolebindings"],
            "verbs": _ALL,
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["localsubjectaccessreviews"],
            "verbs": ["create"],
        },
    ],
    "edit": [
        {"apiGroups": _WORKLOAD_GROUPS, "resources": ["*"], "verbs": _ALL},
    ],
    "view": [
        {"apiGroups": _WORKLOAD_GROUPS, "resources": _VIEWED, "verbs": _READ},
    ],
    "system:auth-delegator": [
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["tokenreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
    ],
    "system:basic-user": [
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
            "verbs": ["create"],
        },
        {
            "apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"],
            "verbs": ["create"],
        },
    ],
    "system:discovery": [
        {
            "nonResourceURLs": [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ],
            "verbs": ["get"],
        }
    ],
    "system:public-info-viewer": [
        {
            "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
            "verbs": ["get"],
        }
    ],
}
# The bootstrap ClusterRoleBindings that concern every authenticated caller.
_BOOTSTRAP_BINDINGS = ("system:basic-user", "system:discovery", "system:public-info-viewer")


@dataclass(frozen=True)
class Identity:
    """Who a request comes from."""

    user: str
    groups: tuple[str, ...]

    @property
    def admin(self) -> bool:
        """The sandbox's own identity: allowed everything, as ``system:masters`` is."""
        return "system:masters" in self.groups


@dataclass(frozen=True)
class Attributes:
    """What a request asks, in the authorizer's terms."""

    verb: str
    path: str
    resource: str = ""
    subresource: str = ""
    group: str = ""
    namespace: str = ""
    name: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The apiserver's RequestInfo of a request: its verb and what it names."""
    parts = [part for part in path.strip("/").split("/") if part]
    read_verb = {"GET": "get", "HEAD": "get"}.get(method, method.lower())
    if len(parts) >= 2 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(verb=_METHOD_VERBS.get(method, read_verb), path=path)
    if not rest:
        return Attributes(verb=read_verb, path=path)
    watch = query.get("watch", "").lower() in ("1", "t", "true")
    if rest[0] == "watch":  # the deprecated /watch/ paths
        watch, rest = True, rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        # /namespaces/NAME is the namespace itself; /namespaces/NAME/finalize a subresource.
        rest = rest[2:] if len(rest) > 2 else ["namespaces", rest[1]]
        if rest[:1] in (["finalize"], ["status"]):
            rest = ["namespaces", namespace, *rest]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method in ("GET", "HEAD"):
        verb = "watch" if watch else ("get" if name else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    return Attributes(
        verb=verb,
        path=path,
        resource=resource,
        subresource=subresource,
        group=group,
        namespace=namespace,
        name=name,
    )


def _matches(values: Sequence[str], wanted: str) -> bool:
    return "*" in values or wanted in values


def rule_allows(rule: Mapping[str, Any], attributes: Attributes) -> bool:
    """Whether one PolicyRule allows the request (the RBAC authorizer's RuleAllows)."""
    verbs = list(rule.get("verbs") or [])
    if not _matches(verbs, attributes.verb):
        return False
    if not attributes.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url == "*" or url == attributes.path:
                return True
            if url.endswith("*") and attributes.path.startswith(url[:-1]):
                return True
        return False
    if not _matches(list(rule.get("apiGroups") or []), attributes.group):
        return False
    combined = attributes.resource
    if attributes.subresource:
        combined += "/" + attributes.subresource
    resources = list(rule.get("resources") or [])
    if not (
        "*" in resources
        or combined in resources
        or (attributes.subresource and f"*/{attributes.subresource}" in resources)
    ):
        return False
    names = list(rule.get("resourceNames") or [])
    return not names or attributes.name in names


def _store(cluster: Any, plural: str) -> dict[tuple[str, str], dict[str, Any]]:
    resource = resource_for(RBAC_API, plural)
    assert resource is not None
    stored: dict[tuple[str, str], dict[str, Any]] = cluster.store(resource)
    return stored


def _describe(subject: Mapping[str, Any]) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'ServiceAccount "{subject.get("namespace", "")}/{name}"'
    return f'{kind} "{name}"'


def _subject_matches(subject: Mapping[str, Any], identity: Identity, namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == identity.user
    if kind == "Group":
        return name in identity.groups
    if kind == "ServiceAccount":
        account_namespace = subject.get("namespace") or namespace
        return identity.user == f"system:serviceaccount:{account_namespace}:{name}"
    return False


def _role_rules(cluster: Any, ref: Mapping[str, Any], namespace: str) -> list[dict[str, Any]]:
    kind, name = ref.get("kind"), str(ref.get("name", ""))
    if kind == "ClusterRole":
        stored = _store(cluster, "clusterroles").get(("", name))
        if stored is not None:
            return list(stored.get("rules") or [])
        return BOOTSTRAP_CLUSTER_ROLES.get(name, [])
    if kind == "Role":
        role = _store(cluster, "roles").get((namespace, name))
        return list((role or {}).get("rules") or [])
    return []


def _grants(
    cluster: Any, identity: Identity, namespace: str
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(source, rules) of every binding that applies to ``identity`` in ``namespace`` (""
    for cluster scope), the cluster-wide ones first, as the authorizer visits them."""
    if AUTHENTICATED in identity.groups:
        for name in _BOOTSTRAP_BINDINGS:
            source = (
                f'ClusterRoleBinding "{name}" of ClusterRole "{name}" to Group "{AUTHENTICATED}"'
            )
            yield source, BOOTSTRAP_CLUSTER_ROLES[name]
    for (_, name), binding in sorted(_store(cluster, "clusterrolebindings").items()):
        ref = binding.get("roleRef") or {}
        for subject in binding.get("subjects") or []:
            if _subject_matches(subject, identity, ""):
                source = (
                    f'ClusterRoleBinding "{name}" of {ref.get("kind")} "{ref.get("name")}" '
                    f"to {_describe(subject)}"
                )
                yield source, _role_rules(cluster, ref, "")
                break
    if not namespace:
        return
    for (bound_namespace, name), binding in sorted(_store(cluster, "rolebindings").items()):
        if bound_namespace != namespace:
            continue
        ref = binding.get("roleRef") or {}
        for subject in binding.get("subjects") or []:
            if _subject_matches(subject, identity, namespace):
                source = (
                    f'RoleBinding "{name}/{namespace}" of {ref.get("kind")} '
                    f'"{ref.get("name")}" to {_describe(subject)}'
                )
                yield source, _role_rules(cluster, ref, namespace)
                break


def authorize(cluster: Any, identity: Identity, attributes: Attributes) -> tuple[bool, str]:
    """Whether ``identity`` may do what ``attributes`` say, and the authorizer's reason."""
    if identity.admin:
        return True, ""
    for source, rules in _grants(cluster, identity, attributes.namespace):
        if any(rule_allows(rule, attributes) for rule in rules):
            return True, f"RBAC: allowed by {source}"
    return False, ""


def rules_for(cluster: Any, identity: Identity, namespace: str) -> list[dict[str, Any]]:
    """Every rule that applies to ``identity`` in ``namespace`` (a SelfSubjectRulesReview)."""
    if identity.admin:
        return BOOTSTRAP_CLUSTER_ROLES["cluster-admin"]
    rules: list[dict[str, Any]] = []
    for _, granted in _grants(cluster, identity, namespace):
        rules.extend(granted)
    return rules


def forbidden(identity: Identity, attributes: Attributes) -> status.ApiFailure:
    """403 in the apiserver's words:
    ``pods "x" is forbidden: User "alice" cannot create resource "pods/exec" in API group ""
    in the namespace "default"``."""
    user = identity.user
    if not attributes.is_resource:
        return status.ApiFailure(
            403,
            "Forbidden",
            f'forbidden: User "{user}" cannot {attributes.verb} path "{attributes.path}"',
        )
    resource = attributes.resource
    if attributes.subresource:
        resource += "/" + attributes.subresource
    where = (
        f'in the namespace "{attributes.namespace}"'
        if attributes.namespace
        else "at the cluster scope"
    )
    problem = (
        f'User "{user}" cannot {attributes.verb} resource "{resource}" '
        f'in API group "{attributes.group}" {where}'
    )
    qualified = attributes.resource + (f".{attributes.group}" if attributes.group else "")
    details: dict[str, Any] = {"kind": attributes.resource}
    if attributes.group:
        details["group"] = attributes.group
    if attributes.name:
        details = {"name": attributes.name, **details}
        message = f'{qualified} "{attributes.name}" is forbidden: {problem}'
    else:
        message = f"{qualified} is forbidden: {problem}"
    return status.ApiFailure(403, "Forbidden", message, details)
