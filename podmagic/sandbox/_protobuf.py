"""Decoding the Kubernetes protobuf bodies kubectl sends, into the JSON objects they stand for.

kubectl 1.33 sends the objects its ``create`` generators build (``create namespace``,
``create configmap``, ...) as protobuf, and client-go falls back to JSON on a 415 only for
CBOR, so a server that takes JSON alone cannot serve those commands. The sandbox decodes
the kinds those generators make, field by field from the proto schemas of ``k8s.io/api``;
a body of another kind, or with a field the sandbox does not know, is refused (415) rather
than read into a different object.

The envelope (``k8s.io/apimachinery/pkg/runtime/serializer/protobuf``): the four bytes
``k8s\\0``, then a ``runtime.Unknown`` message holding ``typeMeta`` (apiVersion, kind) and
``raw``, the object's own message.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from typing import Any

__all__ = ["MEDIA_TYPE", "ProtobufError", "decode"]

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A protobuf body the sandbox cannot decode (its message says why)."""


# A schema maps field numbers to (JSON name, decoder). A decoder is "string", "bytes" (base64
# text in JSON), "raw" (bytes kept), "int", "bool", "time", a nested schema, or ("map", value
# decoder) for map<string, ...>, or "ignore" (a status: the apiserver ignores it in a
# create, and Go writes one even when empty). A name ending in "[]" is a repeated field.
Schema = Mapping[int, tuple[str, Any]]

_TIME: Schema = {1: ("seconds", "int"), 2: ("nanos", "int")}
_OWNER_REFERENCE: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", "time"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences[]", _OWNER_REFERENCE),
    14: ("finalizers[]", "string"),
}
_LOCAL_REFERENCE: Schema = {1: ("name", "string")}
_LABEL_SELECTOR: Schema = {1: ("matchLabels", ("map", "string"))}
_QUANTITY: Schema = {1: ("string", "string")}
_RESOURCES: Schema = {
    1: ("limits", ("map", _QUANTITY)),
    2: ("requests", ("map", _QUANTITY)),
}
_CONTAINER_PORT: Schema = {
    1: ("name", "string"),
    2: ("hostPort", "int"),
    3: ("containerPort", "int"),
    4: ("protocol", "string"),
    5: ("hostIP", "string"),
}
_ENV_VAR: Schema = {1: ("name", "string"), 2: ("value", "string")}
_CONTAINER: Schema = {
    1: ("name", "string"),
    2: ("image", "string"),
    3: ("command[]", "string"),
    4: ("args[]", "string"),
    5: ("workingDir", "string"),
    6: ("ports[]", _CONTAINER_PORT),
    7: ("env[]", _ENV_VAR),
    8: ("resources", _RESOURCES),
    13: ("terminationMessagePath", "string"),
    14: ("imagePullPolicy", "string"),
    16: ("stdin", "bool"),
    17: ("stdinOnce", "bool"),
    18: ("tty", "bool"),
    20: ("terminationMessagePolicy", "string"),
}
_POD_SPEC: Schema = {
    2: ("containers[]", _CONTAINER),
    3: ("restartPolicy", "string"),
    4: ("terminationGracePeriodSeconds", "int"),
    6: ("dnsPolicy", "string"),
    7: ("nodeSelector", ("map", "string")),
    8: ("serviceAccountName", "string"),
    10: ("nodeName", "string"),
    19: ("schedulerName", "string"),
    20: ("initContainers[]", _CONTAINER),
}
_POD_TEMPLATE: Schema = {1: ("metadata", _OBJECT_META), 2: ("spec", _POD_SPEC)}
_DEPLOYMENT_STRATEGY: Schema = {1: ("type", "string")}
_INT_OR_STRING: Schema = {1: ("type", "int"), 2: ("intVal", "int"), 3: ("strVal", "string")}
_SERVICE_PORT: Schema = {
    1: ("name", "string"),
    2: ("protocol", "string"),
    3: ("port", "int"),
    4: ("targetPort", _INT_OR_STRING),
    5: ("nodePort", "int"),
}

#: The kinds the sandbox decodes, by ``apiVersion/kind``.
# kubectl 1.33's create role / clusterrole / rolebinding / clusterrolebinding.
_POLICY_RULES = (
    "rules[]",
    {
        1: ("verbs[]", "string"),
        2: ("apiGroups[]", "string"),
        3: ("resources[]", "string"),
        4: ("resourceNames[]", "string"),
        5: ("nonResourceURLs[]", "string"),
    },
)
_ROLE_BINDING: Schema = {
    1: ("metadata", _OBJECT_META),
    2: (
        "subjects[]",
        {
            1: ("kind", "string"),
            2: ("apiGroup", "string"),
            3: ("name", "string"),
            4: ("namespace", "string"),
        },
    ),
    3: ("roleRef", {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}),
}

_KINDS: dict[str, Schema] = {
    "v1/Namespace": {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers[]", "string")}),
        3: ("status", "ignore"),
    },
    "v1/ConfigMap": {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    "v1/Secret": {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    "v1/ServiceAccount": {
        1: ("metadata", _OBJECT_META),
        2: ("secrets[]", {1: ("kind", "string"), 3: ("name", "string")}),
        3: ("imagePullSecrets[]", _LOCAL_REFERENCE),
        4: ("automountServiceAccountToken", "bool"),
    },
    "v1/Pod": {1: ("metadata", _OBJECT_META), 2: ("spec", _POD_SPEC), 3: ("status", "ignore")},
    "v1/Service": {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: ("ports[]", _SERVICE_PORT),
                2: ("selector", ("map", "string")),
                3: ("clusterIP", "string"),
                4: ("type", "string"),
                11: ("externalName", "string"),
            },
        ),
    },
    "authentication.k8s.io/v1/SelfSubjectReview": {
        1: ("metadata", _OBJECT_META),
        2: ("status", "ignore"),
    },
    "authentication.k8s.io/v1/TokenRequest": {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: ("audiences[]", "string"),
                3: (
                    "boundObjectRef",
                    {
                        1: ("kind", "string"),
                        2: ("apiVersion", "string"),
                        3: ("name", "string"),
                        4: ("uid", "string"),
                    },
                ),
                4: ("expirationSeconds", "int"),
            },
        ),
    },
    "rbac.authorization.k8s.io/v1/Role": {1: ("metadata", _OBJECT_META), 2: _POLICY_RULES},
    "rbac.authorization.k8s.io/v1/ClusterRole": {
        1: ("metadata", _OBJECT_META),
        2: _POLICY_RULES,
        3: ("aggregationRule", {1: ("clusterRoleSelectors[]", _LABEL_SELECTOR)}),
    },
    "rbac.authorization.k8s.io/v1/RoleBinding": _ROLE_BINDING,
    "rbac.authorization.k8s.io/v1/ClusterRoleBinding": _ROLE_BINDING,
    "authorization.k8s.io/v1/SelfSubjectAccessReview": {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: (
                    "resourceAttributes",
                    {
                        1: ("namespace", "string"),
                        2: ("verb", "string"),
                        3: ("group", "string"),
                        4: ("version", "string"),
                        5: ("resource", "string"),
                        6: ("subresource", "string"),
                        7: ("name", "string"),
                    },
                ),
                2: ("nonResourceAttributes", {1: ("path", "string"), 2: ("verb", "string")}),
            },
        ),
    },
    "authorization.k8s.io/v1/SelfSubjectRulesReview": {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("namespace", "string")}),
    },
    "apps/v1/Deployment": {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: ("replicas", "int"),
                2: ("selector", _LABEL_SELECTOR),
                3: ("template", _POD_TEMPLATE),
                4: ("strategy", _DEPLOYMENT_STRATEGY),
                5: ("minReadySeconds", "int"),
                6: ("revisionHistoryLimit", "int"),
            },
        ),
    },
    "batch/v1/Job": {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: ("parallelism", "int"),
                2: ("completions", "int"),
                4: ("selector", _LABEL_SELECTOR),
                6: ("template", _POD_TEMPLATE),
                7: ("backoffLimit", "int"),
            },
        ),
    },
}


# Field 3 of a top-level object is its status where the kind has one (the ones above that
# name no field 3): ignored, as the apiserver ignores a status sent with a create.
_KINDS = {
    name: schema
    if 3 in schema or "SelfSubjectReview" in name
    else {**schema, 3: ("status", "ignore")}
    for name, schema in _KINDS.items()
}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ProtobufError("the protobuf body ends inside a number")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ProtobufError("the protobuf body has a number longer than 64 bits")


def _fields(data: bytes, where: str) -> list[tuple[int, int | bytes]]:
    """(field number, value) of every field of one message: ints for varints, bytes else."""
    fields: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            fields.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ProtobufError(f"the protobuf body ends inside {where}")
            fields.append((number, data[at : at + length]))
            at += length
        else:
            raise ProtobufError(f"{where}: field {number} has wire type {wire}, not supported")
    return fields


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _value(decoder: Any, raw: int | bytes, where: str) -> Any:
    if decoder in ("int", "bool"):
        if not isinstance(raw, int):
            raise ProtobufError(f"{where} is not a number")
        return bool(raw) if decoder == "bool" else _signed(raw)
    if not isinstance(raw, bytes):
        raise ProtobufError(f"{where} is a number where bytes were expected")
    if decoder == "string":
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtobufError(f"{where} is not UTF-8 text") from None
    if decoder == "bytes":
        return base64.b64encode(raw).decode()
    if decoder == "raw":
        return raw
    if decoder == "time":
        seconds = _message(_TIME, raw, where).get("seconds", 0)
        if not seconds:
            return None  # the zero time: JSON has null
        stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
        return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if decoder is _QUANTITY:
        return _message(_QUANTITY, raw, where).get("string", "")
    if decoder is _INT_OR_STRING:  # type 0: an int, 1: a string
        parts = _message(decoder, raw, where)
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    return _message(decoder, raw, where)


def _message(schema: Schema, data: bytes, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    # An unset field is absent, and so is one Go wrote empty (it writes every string).
    for number, raw in _fields(data, where):
        repeated = number in schema and schema[number][0].endswith("[]")
        if raw in (0, b"") and not repeated:
            # Go's generated code writes every scalar field, set or not; JSON omits the empty.
            # An empty element of a list is kept (a Role's apiGroups [""] is the core group).
            continue
        if number not in schema:
            raise ProtobufError(
                f"{where}: field {number} is not one the sandbox decodes; send the object "
                "as JSON (kubectl create -f, or -o json | kubectl create -f -)"
            )
        name, decoder = schema[number]
        if decoder == "ignore":
            continue
        if isinstance(decoder, tuple):  # map<string, V>: repeated {1: key, 2: value}
            entry: dict[int, int | bytes] = dict(_fields(_bytes(raw, where), f"{where}.{name}"))
            key = _value("string", entry.get(1, b""), f"{where}.{name}")
            result.setdefault(name, {})[key] = _value(
                decoder[1], entry.get(2, b""), f"{where}.{name}"
            )
        elif name.endswith("[]"):
            result.setdefault(name[:-2], []).append(_value(decoder, raw, f"{where}.{name[:-2]}"))
        else:
            value = _value(decoder, raw, f"{where}.{name}")
            if value is not None:
                result[name] = value
    return result


def _bytes(raw: int | bytes, where: str) -> bytes:
    if not isinstance(raw, bytes):
        raise ProtobufError(f"{where} is a number where a message was expected")
    return raw


_ENVELOPE: Schema = {
    1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}),
    2: ("raw", "raw"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object a Kubernetes protobuf body stands for; :class:`ProtobufError` when it
    is not one of the kinds the sandbox decodes."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("the protobuf body does not start with the Kubernetes envelope")
    envelope = _message(_ENVELOPE, body[len(_MAGIC) :], "envelope")
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    schema = _KINDS.get(f"{api_version}/{kind}")
    if schema is None:
        raise ProtobufError(f"the sandbox does not decode {kind or 'this kind'} from protobuf")
    raw = envelope.get("raw", b"")
    return {"kind": kind, "apiVersion": api_version, **_message(schema, raw, kind)}
