"""Kubernetes ``Status`` error bodies, as the API server words them.

Real clients print these messages verbatim (``Error from server (NotFound): ...``), so the
wording and the ``reason``/``code`` pairs follow the apiserver exactly.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = [
    "STATUS_CONTENT_TYPE",
    "ApiFailure",
    "already_exists",
    "bad_request",
    "forbidden",
    "internal_error",
    "not_found",
    "status_body",
    "too_many_requests",
    "unauthorized",
]

STATUS_CONTENT_TYPE = "application/json"


def status_body(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``Status`` object with ``status: Failure``."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return body


class ApiFailure(web.HTTPException):
    """An HTTP error response whose body is a Kubernetes ``Status``.

    Raised from handlers; aiohttp turns it into the response.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status_code = code
        super().__init__(
            headers=headers,
            # Compact and newline-ended, as Go's json.Encoder writes it: clients quote the
            # body verbatim (the official client's FailToCreateError), and tests compare it.
            text=json.dumps(status_body(code, reason, message, details), separators=(",", ":"))
            + "\n",
            content_type=STATUS_CONTENT_TYPE,
        )
        self.k8s_reason = reason
        self.k8s_message = message


def not_found(kind: str, name: str, group: str = "") -> ApiFailure:
    """404 for a missing object: ``pods "nope" not found``."""
    resource = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return ApiFailure(404, "NotFound", f'{resource} "{name}" not found', details)


def already_exists(kind: str, name: str, group: str = "") -> ApiFailure:
    """409 when creating an object whose name is taken: ``deployments.apps "web" already
    exists`` for a kind of a group."""
    resource = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details = {"name": name, "group": group, "kind": kind}
    return ApiFailure(409, "AlreadyExists", f'{resource} "{name}" already exists', details)


def bad_request(message: str) -> ApiFailure:
    """400 with the given message."""
    return ApiFailure(400, "BadRequest", message)


def forbidden(
    user: str, verb: str, resource: str, namespace: str, name: str | None = None, kind: str = "pods"
) -> ApiFailure:
    """403 in the RBAC authorizer's wording."""
    subject = f'{kind} "{name}" is forbidden' if name else f"{kind} is forbidden"
    message = (
        f'{subject}: User "{user}" cannot {verb} resource "{resource}" in API group "" '
        f'in the namespace "{namespace}"'
    )
    details = {"name": name, "kind": kind} if name else {"kind": kind}
    return ApiFailure(403, "Forbidden", message, details)


def unauthorized() -> ApiFailure:
    """401 for a missing or wrong bearer token."""
    return ApiFailure(401, "Unauthorized", "Unauthorized")


def too_many_requests(retry_after: float) -> ApiFailure:
    """429 with a ``Retry-After`` header (whole seconds, at least 1, as the apiserver sends)."""
    seconds = max(1, round(retry_after))
    return ApiFailure(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        {"retryAfterSeconds": seconds},
        headers={"Retry-After": str(seconds)},
    )


def internal_error(message: str) -> ApiFailure:
    """500 ``Internal error occurred: ...``."""
    return ApiFailure(
        500,
        "InternalError",
        f"Internal error occurred: {message}",
        {"causes": [{"message": message}]},
    )
