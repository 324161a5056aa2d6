"""Who the caller is and what it may do: SelfSubjectReview, SelfSubjectAccessReview and
SelfSubjectRulesReview, as ``kubectl auth whoami`` and ``kubectl auth can-i`` ask, and
TokenReview (kr8s's ``whoami`` reviews its own token).

The sandbox's own token (and the tokens it issues without a user) belong to its user, in
the ``system:masters`` group, which may do everything. Tokens issued to a named user or a
service account are held to the cluster's RBAC objects (:mod:`._rbac`); the reviews answer
from the same rules the requests are held to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._rbac import ADMIN_GROUPS, AUTHENTICATED, Attributes, Identity, authorize, rules_for

__all__ = [
    "access_review",
    "groups_of",
    "identity_of",
    "rules_review",
    "self_review",
    "token_review",
]


def groups_of(user: str, groups: tuple[str, ...] | None = None) -> list[str]:
    """The groups of ``user``: a service account's (``system:serviceaccount:NS:NAME``) as the
    apiserver names them; a named user's ``groups`` and ``system:authenticated``; the
    sandbox user's (``groups`` None) ``system:masters`` too."""
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        return [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            AUTHENTICATED,
        ]
    if groups is None:
        return list(ADMIN_GROUPS)
    return [*(group for group in groups if group != AUTHENTICATED), AUTHENTICATED]


def identity_of(cluster: Any, token: str | None) -> Identity:
    """Whose ``token`` is (one the sandbox accepted): a named user's or a service account's
    when it was issued to one, else the sandbox's admin."""
    if token is not None and token in cluster.token_users:
        user = str(cluster.token_users[token])
        named: tuple[str, ...] = tuple(cluster.token_groups.get(token, ()))
        return Identity(user, tuple(groups_of(user, named)))
    return Identity(str(cluster.user), ADMIN_GROUPS)


def self_review(identity: Identity, api_version: str) -> dict[str, Any]:
    """The answer to a SelfSubjectReview: the caller's user name and groups."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": identity.user, "groups": list(identity.groups)}},
    }


def _review_attributes(spec: Mapping[str, Any]) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, Mapping):
        return Attributes(
            verb=str(resource.get("verb") or ""),
            path="",
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            group=str(resource.get("group") or ""),
            namespace=str(resource.get("namespace") or ""),
            name=str(resource.get("name") or ""),
        )
    other = spec.get("nonResourceAttributes")
    other = other if isinstance(other, Mapping) else {}
    return Attributes(verb=str(other.get("verb") or ""), path=str(other.get("path") or ""))


def access_review(
    cluster: Any, identity: Identity, body: Mapping[str, Any], api_version: str
) -> dict[str, Any]:
    """The answer to a SelfSubjectAccessReview: whether the caller may, and the RBAC
    authorizer's reason."""
    spec = dict(body.get("spec") or {})
    if identity.admin:
        allowed, reason = True, 'allowed by ClusterRoleBinding "cluster-admin"'
    else:
        allowed, reason = authorize(cluster, identity, _review_attributes(spec))
    answer: dict[str, Any] = {"allowed": allowed}
    if reason:
        answer["reason"] = reason
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": answer,
    }


def rules_review(
    cluster: Any, identity: Identity, body: Mapping[str, Any], api_version: str
) -> dict[str, Any]:
    """The answer to a SelfSubjectRulesReview (``kubectl auth can-i --list``): the rules that
    apply to the caller in ``spec.namespace``."""
    spec = dict(body.get("spec") or {})
    resource_rules, other_rules = [], []
    for rule in rules_for(cluster, identity, str(spec.get("namespace") or "")):
        if rule.get("nonResourceURLs"):
            other_rules.append(
                {"verbs": list(rule.get("verbs") or []), "nonResourceURLs": rule["nonResourceURLs"]}
            )
        else:
            kept = {
                key: list(rule[key])
                for key in ("verbs", "apiGroups", "resources", "resourceNames")
                if rule.get(key)
            }
            resource_rules.append(kept)
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": other_rules,
            "incomplete": False,
        },
    }


def token_review(
    body: Mapping[str, Any], api_version: str, *, identity: Identity | None
) -> dict[str, Any]:
    """The answer to a TokenReview: whether ``spec.token`` is one of the sandbox's tokens
    (``identity`` None: it is not), and then whose. The spec comes back as sent, as the
    apiserver's does (clients require it)."""
    spec = dict(body.get("spec") or {})
    answer: dict[str, Any] = {"authenticated": identity is not None}
    if identity is not None:
        answer["user"] = {"username": identity.user, "groups": list(identity.groups)}
        answer["audiences"] = list(spec.get("audiences") or ["https://kubernetes.default.svc"])
    else:
        answer["error"] = "invalid bearer token"
    return {
        "kind": "TokenReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": answer,
    }
