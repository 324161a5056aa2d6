"""Who the caller is and what it may do: SelfSubjectReview, SelfSubjectAccessReview and
SelfSubjectRulesReview, as ``kubectl auth whoami`` and ``kubectl auth can-i`` ask, and
TokenReview (kr8s's ``whoami`` reviews its own token).

The sandbox has one identity: its token (and the tokens it issues) belong to its user, in
the ``system:masters`` group, which may do everything; so every access review is allowed.
RBAC objects in a manifest are not enforced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "GROUPS",
    "access_review",
    "groups_of",
    "rules_review",
    "self_review",
    "token_review",
]

#: The groups of the sandbox's user (system:masters: allowed everything, as a kind cluster's admin).
GROUPS = ("system:masters", "system:authenticated")


def groups_of(user: str) -> list[str]:
    """The groups of ``user``: a service account's (``system:serviceaccount:NS:NAME``) as
    the apiserver names them, else the sandbox user's."""
    if user.startswith("system:serviceaccount:"):
        namespace = user.split(":")[2]
        return [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ]
    return list(GROUPS)


def self_review(user: str, api_version: str) -> dict[str, Any]:
    """The answer to a SelfSubjectReview: the caller's user name and groups."""
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": {"username": user, "groups": groups_of(user)}},
    }


def access_review(body: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """The answer to a SelfSubjectAccessReview: allowed, the RBAC authorizer's reason."""
    return {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "spec": dict(body.get("spec") or {}),
        "status": {"allowed": True, "reason": 'allowed by ClusterRoleBinding "cluster-admin"'},
    }


def rules_review(body: Mapping[str, Any], api_version: str) -> dict[str, Any]:
    """The answer to a SelfSubjectRulesReview (``kubectl auth can-i --list``): everything."""
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": api_version,
        "metadata": {"creationTimestamp": None},
        "spec": dict(body.get("spec") or {}),
        "status": {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        },
    }


def token_review(
    body: Mapping[str, Any], api_version: str, *, user: str, authenticated: bool
) -> dict[str, Any]:
    """The answer to a TokenReview: whether ``spec.token`` is one of the sandbox's tokens, and
    then whose. The spec comes back as sent, as the apiserver's does (clients require it)."""
    spec = dict(body.get("spec") or {})
    answer: dict[str, Any] = {"authenticated": authenticated}
    if authenticated:
        answer["user"] = {"username": user, "groups": groups_of(user)}
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
