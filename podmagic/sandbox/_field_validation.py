"""``fieldValidation`` on create, update and patch, as the apiserver applies it to fields a
kind does not declare (a typo such as ``spec.containers[0].imagee``):

- ``Strict``: 400 BadRequest, ``Pod in version "v1" cannot be handled as a Pod: strict
  decoding error: unknown field "spec.foo"`` (for a patch, the message after the colon);
- ``Warn`` (the default, and what kubectl 1.27+ asks for unless ``--validate=false``): the
  fields are dropped and each named in a ``Warning: 299 - "unknown field \\"spec.foo\\""``
  response header, which kubectl prints as ``Warning: unknown field "spec.foo"``;
- ``Ignore``: the fields are dropped silently.

A kind's fields come from :mod:`._known_fields` (generated from the Kubernetes API's models);
kinds it does not list are taken as they come.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import _status as status
from ._known_fields import KINDS, TYPES

__all__ = ["add_warning_headers", "check_fields", "unknown_fields"]

DIRECTIVES = ("Ignore", "Strict", "Warn")
WARNINGS_KEY = web.RequestKey("warnings", list)


def unknown_fields(value: Any, type_name: str, path: str = "") -> list[tuple[str, Any, str]]:
    """(path, the object holding it, its key) of every field of ``value`` that its type
    (``type_name`` in :data:`TYPES`) does not declare, in the apiserver's path notation."""
    fields = TYPES.get(type_name)
    if fields is None or not isinstance(value, dict):
        return []
    found: list[tuple[str, Any, str]] = []
    for key, item in value.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in fields:
            found.append((where, value, key))
            continue
        shape = fields[key]
        if not shape:
            continue
        if shape[0] == "[":
            if shape[1:] and isinstance(item, list):
                for index, element in enumerate(item):
                    found += unknown_fields(element, shape[1:], f"{where}[{index}]")
        elif shape[0] == "{":
            if shape[1:] and isinstance(item, dict):
                for name, element in item.items():
                    found += unknown_fields(element, shape[1:], f"{where}[{name}]")
        else:
            found += unknown_fields(item, shape, where)
    return found


def _directive(request: web.Request) -> str:
    given = request.query.get("fieldValidation", "")
    if given and given not in DIRECTIVES:
        message = (
            f'fieldValidation: Unsupported value: "{given}": supported values: '
            '"Ignore", "Strict", "Warn"'
        )
        cause = {"reason": "FieldValueNotSupported", "message": message, "field": "fieldValidation"}
        raise status.ApiFailure(400, "BadRequest", message, {"causes": [cause]})
    return given or "Warn"


def check_fields(
    request: web.Request,
    body: dict[str, Any],
    *,
    patch: bool = False,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``body`` with the fields its kind does not declare refused (Strict), or dropped and
    warned of (Warn) or dropped (Ignore); ``patch``: the body is ``current`` patched, and
    only the fields the patch brought count."""
    directive = _directive(request)
    version, kind = str(body.get("apiVersion", "")), str(body.get("kind", ""))
    type_name = KINDS.get(f"{version}:{kind}")
    if type_name is None:
        return body
    unknown = unknown_fields(body, type_name)
    if current is not None:
        before = {path for path, _, _ in unknown_fields(current, type_name)}
        unknown = [found for found in unknown if found[0] not in before]
    if not unknown:
        return body
    problems = [f'unknown field "{path}"' for path, _, _ in unknown]
    if directive == "Strict":
        message = "strict decoding error: " + ", ".join(problems)
        if not patch:
            short = version.rpartition("/")[2]
            message = f'{kind} in version "{short}" cannot be handled as a {kind}: {message}'
        raise status.bad_request(message)
    for _, holder, key in unknown:
        holder.pop(key, None)
    if directive == "Warn":
        if WARNINGS_KEY not in request:
            request[WARNINGS_KEY] = []
        request[WARNINGS_KEY].extend(problems)
    return body


async def add_warning_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a ``Warning`` header for each warning the request collected,
    as the apiserver writes them (code 299, agent ``-``, the text quoted)."""
    for text in request.get(WARNINGS_KEY, ()):
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{quoted}"')
