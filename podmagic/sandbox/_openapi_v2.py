"""``GET /openapi/v2``: the Swagger 2.0 document of everything the sandbox serves, as JSON.

Built from the OpenAPI v3 documents (:mod:`._openapi`): the same paths, kinds
(``x-kubernetes-group-version-kind``) and schemas, under ``definitions``, with the
operations' ``x-kubernetes-action``, parameters, ``consumes`` (the PATCH content types) and
response schemas that tools reading v2 look for.

Content negotiation is kube-openapi's: JSON for ``application/json``, ``*/*`` or no
``Accept``; the protobuf form (``application/com.github.proto-openapi.spec.v2@v1.0+protobuf``,
what kubectl asks for) is not produced, so an ``Accept`` naming only it is ``406 Not
Acceptable`` -- kubectl then does without v2 (it uses v3, or its built-in types, for
patches), as it does with an apiserver that lacks the document.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from typing import Any

from aiohttp import web

from ._discovery import RESOURCE_LISTS
from ._openapi import openapi_group_version

__all__ = ["handle_openapi_v2", "openapi_v2"]

_V3_REFS = "#/components/schemas/"
_V2_REFS = "#/definitions/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_PATCH_TYPES = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
]
_PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
_OFFERED = ("application", "json")


def _to_v2(schema: Any) -> Any:
    """A v3 schema as v2 writes it: ``$ref`` into ``definitions``, ``allOf: [ref]`` as a ref."""
    if isinstance(schema, list):
        return [_to_v2(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0]:
        converted = {"$ref": all_of[0]["$ref"].replace(_V3_REFS, _V2_REFS)}
        if "description" in schema:
            converted["description"] = schema["description"]
        return converted
    converted = {}
    for key, value in schema.items():
        if key == "$ref" and isinstance(value, str):
            converted[key] = value.replace(_V3_REFS, _V2_REFS)
        else:
            converted[key] = _to_v2(value)
    return converted


def _parameter(parameter: dict[str, Any]) -> dict[str, Any]:
    """A v3 query parameter (``schema: {type}``) as v2 writes it (``type`` beside ``in``)."""
    converted = {key: value for key, value in parameter.items() if key != "schema"}
    converted.update(parameter.get("schema") or {"type": "string"})
    return converted


_BODY = {"name": "body", "in": "body", "required": True}
_ACTIONS = {"get": "get", "post": "post", "put": "put", "patch": "patch", "delete": "delete"}


def _operation(
    verb: str, operation: dict[str, Any], definition: str, *, item: bool
) -> dict[str, Any]:
    gvk = operation.get("x-kubernetes-group-version-kind") or {}
    kind = str(gvk.get("kind", ""))
    list_kind = f"{definition}List" if verb == "get" and not item else definition
    action = "list" if verb == "get" and not item else _ACTIONS[verb]
    converted: dict[str, Any] = {
        "description": f"{action} {kind}",
        "operationId": f"{action}{kind}",
        "produces": _PRODUCES,
        "schemes": ["https"],
        "parameters": [_parameter(p) for p in operation.get("parameters") or []],
        "responses": {
            "200": {"description": "OK", "schema": {"$ref": _V2_REFS + list_kind}},
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if verb in ("post", "put"):
        converted["consumes"] = ["*/*"]
        converted["parameters"].insert(0, {**_BODY, "schema": {"$ref": _V2_REFS + definition}})
    elif verb == "patch":
        converted["consumes"] = _PATCH_TYPES
        converted["parameters"].insert(0, {**_BODY, "schema": {"$ref": f"{_V2_REFS}{_META}.Patch"}})
    elif verb == "delete":
        converted["consumes"] = ["*/*"]
        converted["responses"]["200"]["schema"] = {"$ref": f"{_V2_REFS}{_META}.Status"}
    return converted


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "type": "string",
            "uniqueItems": True,
            "description": f"{name} of the object",
        }
        for name in names
    ]


def _list_schema(definition: str, kind: str) -> dict[str, Any]:
    return {
        "description": f"{kind}List is a list of {kind} objects.",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": f"{_V2_REFS}{_META}.ListMeta"},
            "items": {"type": "array", "items": {"$ref": _V2_REFS + definition}},
        },
    }


@functools.lru_cache(maxsize=1)
def _document_bytes() -> bytes:
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {
        f"{_META}.Patch": {
            "description": "Patch is provided to give a concrete name and type to the "
            "Kubernetes PATCH request body.",
            "type": "object",
        },
        f"{_META}.Status": {
            "description": "Status is a return value for calls that don't return other objects.",
            "type": "object",
        },
        f"{_META}.ListMeta": {
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "type": "object",
            "properties": {
                "resourceVersion": {"type": "string"},
                "continue": {"type": "string"},
            },
        },
    }
    for group_version in RESOURCE_LISTS:
        document = openapi_group_version(group_version)
        if document is None:
            continue
        schemas = document["components"]["schemas"]
        for name, schema in schemas.items():
            definitions.setdefault(name, _to_v2(copy.deepcopy(schema)))
        by_kind = {
            schema["x-kubernetes-group-version-kind"][0]["kind"]: name
            for name, schema in schemas.items()
            if schema.get("x-kubernetes-group-version-kind")
        }
        for path, operations in document["paths"].items():
            item = path.endswith("{name}")
            converted: dict[str, Any] = {}
            for verb, operation in operations.items():
                kind = str((operation.get("x-kubernetes-group-version-kind") or {}).get("kind"))
                definition = by_kind.get(kind, f"{_META}.Status")
                converted[verb] = _operation(verb, operation, definition, item=item)
                if verb == "get" and not item:
                    definitions.setdefault(f"{definition}List", _list_schema(definition, kind))
            converted["parameters"] = _path_parameters(path)
            paths[path] = converted
    document_v2 = {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "type": "apiKey",
                "name": "authorization",
                "in": "header",
            }
        },
        "security": [{"BearerToken": []}],
    }
    return json.dumps(document_v2, separators=(",", ":")).encode()


def openapi_v2() -> dict[str, Any]:
    """The Swagger 2.0 document (a fresh copy)."""
    document: dict[str, Any] = json.loads(_document_bytes())
    return document


def _accepts_json(accept: str) -> bool:
    """kube-openapi's negotiation, with JSON the one type on offer."""
    for clause in (accept or "*/*").split(","):
        media = clause.split(";")[0].strip().lower()
        kind, _, subtype = media.partition("/")
        if kind in (_OFFERED[0], "*") and subtype in (_OFFERED[1], "*"):
            return True
    return False


async def handle_openapi_v2(request: web.Request) -> web.Response:
    """``GET /openapi/v2``: JSON, or 406 when the client takes only the protobuf form."""
    body = _document_bytes()
    etag = '"' + hashlib.sha512(body).hexdigest()[:64].upper() + '"'
    headers = {"Vary": "Accept", "Etag": etag}
    if not _accepts_json(request.headers.get("Accept", "")):
        return web.Response(status=406, headers=headers)
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers={**headers, "Content-Type": "application/json"})
