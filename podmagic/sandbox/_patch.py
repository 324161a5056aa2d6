"""The PATCH flavours of the Kubernetes API: JSON merge, strategic merge and JSON patch.

* JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null``
  deletes, anything else replaces.
* Strategic merge patch (``application/strategic-merge-patch+json``, what ``kubectl label``,
  ``annotate``, ``patch`` and client-side ``apply`` send): a merge patch in which lists with a
  merge key (containers by ``name``, container ports by ``containerPort``, ...) merge item by
  item, and the ``$patch``, ``$retainKeys``, ``$deleteFromPrimitiveList/`` and
  ``$setElementOrder/`` directives of ``k8s.io/apimachinery/pkg/util/strategicpatch`` apply.
  The merge keys are those of the kinds the sandbox serves.
* JSON patch (RFC 6902, ``application/json-patch+json``): a list of operations on JSON
  pointers.

Every function returns a new value and leaves its inputs alone; :class:`PatchError` says what
in the patch could not be applied.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "PatchError",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = frozenset({JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH})


class PatchError(ValueError):
    """A patch that cannot be applied (the message names the operation or field)."""


# -- JSON merge patch ---------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` merged onto ``target``."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(copy.deepcopy(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch ----------------------------------------------------------------------

# Lists merged item by item, by field name, with the key their items are matched on (the
# ``patchMergeKey`` of k8s.io/api). Container ports and service ports share the name "ports".
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",
}
# Lists of scalars merged as sets (patchStrategy "merge").
_MERGED_SCALAR_LISTS = frozenset({"finalizers"})
_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM = "$deleteFromPrimitiveList/"
_ELEMENT_ORDER = "$setElementOrder/"


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        maps = [item for item in items if isinstance(item, Mapping)]
        return "containerPort" if any("containerPort" in item for item in maps) else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` merged onto ``target`` as the apiserver's strategic merge does it."""
    if not isinstance(patch, Mapping):
        raise PatchError("a strategic merge patch must be a JSON object")
    return _merge_map(target if isinstance(target, Mapping) else {}, patch)


def _merge_map(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    directive = patch.get(_DIRECTIVE)
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != _DIRECTIVE}
    if directive == "delete":
        return {}
    if directive not in (None, "merge"):
        raise PatchError(f"unknown patch type: {directive!r} in map")
    result = copy.deepcopy(dict(target))
    retain = patch.get(_RETAIN_KEYS)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in (_DIRECTIVE, _RETAIN_KEYS):
            continue
        if key.startswith(_ELEMENT_ORDER):
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list")
            orders[key[len(_ELEMENT_ORDER) :]] = value
            continue
        if key.startswith(_DELETE_FROM):
            field = key[len(_DELETE_FROM) :]
            if not isinstance(value, list):
                raise PatchError(f"{key} must be a list")
            current = result.get(field)
            if isinstance(current, list):
                result[field] = [item for item in current if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, Mapping) else {}, value)
            if value.get(_DIRECTIVE) == "delete":
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            current = result.get(key)
            result[key] = _merge_list(key, current if isinstance(current, list) else [], value)
        else:
            result[key] = copy.deepcopy(value)
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _ordered(field, result[field], order)
    if isinstance(retain, list):
        result = {key: value for key, value in result.items() if key in retain}
    return result


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    if field in _MERGED_SCALAR_LISTS and all(not isinstance(v, Mapping) for v in patch):
        return [*target, *(copy.deepcopy(v) for v in patch if v not in target)]
    key = _merge_key(field, [*target, *patch])
    maps = [item for item in patch if isinstance(item, Mapping)]
    if key is None or len(maps) != len(patch):
        # No merge key: the patch's list replaces the object's ($patch: replace items dropped).
        return [copy.deepcopy(item) for item in patch if not _is_directive_item(item)]
    if any(item.get(_DIRECTIVE) == "replace" for item in maps):
        return [copy.deepcopy(item) for item in maps if not _is_directive_item(item)]
    result = copy.deepcopy(target)
    for item in maps:
        if key not in item:
            raise PatchError(f"map: {dict(item)} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, Mapping) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get(_DIRECTIVE) == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append(_merge_map({}, item))
        else:
            result[index] = _merge_map(result[index], item)
    return result


def _is_directive_item(item: Any) -> bool:
    return isinstance(item, Mapping) and _DIRECTIVE in item and len(item) == 1


def _ordered(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    """``items`` in the order ``$setElementOrder`` gives; items it does not name go last."""
    key = _merge_key(field, items)

    def identity(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, Mapping) else item

    wanted = [identity(entry) for entry in order]
    ranked = sorted(
        enumerate(items),
        key=lambda pair: (
            wanted.index(identity(pair[1])) if identity(pair[1]) in wanted else len(wanted),
            pair[0],
        ),
    )
    return [item for _, item in ranked]


# -- JSON patch ---------------------------------------------------------------------------------


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _index(container: list[Any], token: str, path: str, *, adding: bool = False) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in {path}")
    index = int(token)
    if index > len(container) or (not adding and index == len(container)):
        raise PatchError(f"array index {index} out of bounds in {path}")
    return index


def _parent(document: Any, path: str) -> tuple[Any, str]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError(f"the operation cannot apply to the whole document ({path!r})")
    node = document
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return node, tokens[-1]


def _get(document: Any, path: str) -> Any:
    node = document
    for token in _pointer(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, path)]
        else:
            raise PatchError(f"doc is missing path: {path}")
    return node


def _add(document: Any, path: str, value: Any) -> Any:
    if not _pointer(path):
        return copy.deepcopy(value)
    parent, token = _parent(document, path)
    if isinstance(parent, dict):
        parent[token] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path, adding=True), copy.deepcopy(value))
    else:
        raise PatchError(f"doc is missing path: {path}")
    return document


def _remove(document: Any, path: str) -> Any:
    parent, token = _parent(document, path)
    if isinstance(parent, dict):
        if token not in parent:
            raise PatchError(f"unable to remove nonexistent key: {token}: missing value")
        return parent.pop(token)
    if isinstance(parent, list):
        return parent.pop(_index(parent, token, path))
    raise PatchError(f"doc is missing path: {path}")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: the operations applied in order to a copy of ``target``."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, Mapping):
            raise PatchError(f"a JSON patch operation must be an object, got {operation!r}")
        op, path = operation.get("op"), operation.get("path")
        if not isinstance(path, str):
            raise PatchError(f"operation {op!r} has no path")
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"operation {op!r} at {path} has no value")
        if op == "add":
            document = _add(document, path, operation["value"])
        elif op == "remove":
            _remove(document, path)
        elif op == "replace":
            if not _pointer(path):
                document = copy.deepcopy(operation["value"])
            else:
                _remove(document, path)
                document = _add(document, path, operation["value"])
        elif op in ("move", "copy"):
            source = operation.get("from")
            if not isinstance(source, str):
                raise PatchError(f"operation {op!r} at {path} has no from")
            value = _remove(document, source) if op == "move" else _get(document, source)
            document = _add(document, path, value)
        elif op == "test":
            if _get(document, path) != operation["value"]:
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"unexpected kind of operation: {op!r}")
    return document
