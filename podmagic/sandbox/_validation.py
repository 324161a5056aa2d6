"""Validating objects the way the API server does, with its wording.

Manifests and API bodies are checked here before anything is created, so a bad name or path
can never reach the pods' folders and a bad number can never reach a loop. Each problem is a
:class:`FieldError` worded like apimachinery's ``field.Error`` (``metadata.name: Invalid value:
"Bad_Name": a lowercase RFC 1123 subdomain must consist of ...``); :class:`ObjectInvalid`
gathers them for one object, as ``apierrors.NewInvalid`` does, and turns them into the
``Status`` details (``causes``) real clients read.

What is checked, per kind (the rules of the real API server unless marked *sandbox*):

- names: Namespaces, and containers, are RFC 1123 labels (at most 63 characters); Pods, Nodes
  and workloads are RFC 1123 subdomains (at most 253); ``generateName`` as a prefix of one;
- ``metadata.namespace``: an RFC 1123 label;
- labels: keys are qualified names (``[prefix/]name``), values label values; annotation keys
  qualified names, at most 256 KiB in all; values of both must be strings (a number or a
  boolean is a decode error, 400, as in the real API server; ``null`` is ``""`` as Go decodes it);
- ``sandbox.podmagic.io/*`` annotations (*sandbox*): values the sandbox acts on are checked
  when the object is created (:func:`~podmagic.sandbox._behaviour.annotation_problems`), as
  ``metadata.annotations[<key>]`` causes;
- ``spec.containers``: a non-empty list of objects, each with a unique name;
- ``workingDir``: *sandbox*: an absolute path without ``..`` parts, parts of at most 255 bytes
  and at most 2048 bytes in all (:mod:`.paths`; a container's root cannot be left; the real API
  server leaves this to the container runtime). Backslashes are ordinary file-name characters;
- ``env``: names as the API server's rule, values strings without NUL, ``valueFrom.fieldRef``
  a field path the API server supports for environment variables;
- ``command`` and ``args``: arrays of strings;
- ``spec.replicas`` (and a Job's ``spec.parallelism``): an integer, at least 0 and, *sandbox*,
  at most :data:`MAX_REPLICAS` (each replica is a pod with its own folder and IP).

Types are checked too: a field of the wrong type (``replicas: "many"``) is a *decode* error,
which the API server answers with 400 BadRequest rather than 422 Invalid.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._kinds import WORKLOAD_KINDS
from ._behaviour import PREFIX, annotation_problems
from ._paths import path_problem

__all__ = [
    "MAX_REPLICAS",
    "FieldError",
    "ObjectInvalid",
    "desired_replicas",
    "generated_name",
    "normalised_working_dir",
    "replica_count",
    "text_value",
    "validate_namespace_name",
    "validate_object",
]

#: The most replicas one workload may ask for in the sandbox (``spec.replicas``, a Job's
#: ``spec.parallelism``). Each replica is a pod with its own folder and address; the pod
#: network (10.244.0.0/16) holds 65534 in all.
MAX_REPLICAS = 10_000

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _QUALIFIED_NAME + ")?"

_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
    f"for validation is '{_DNS1123_LABEL}')"
)
_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_DNS1123_SUBDOMAIN}')"
)
_QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    f"validation is '{_QUALIFIED_NAME}')"
)
_LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')"
)
_ENV_NAME = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME_MESSAGE = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or "
    "'.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    f"'MyEnvName1', regex used for validation is '{_ENV_NAME}')"
)
_ANNOTATIONS_MAX_BYTES = 256 * 1024
# The apiserver's validEnvDownwardAPIFieldPathExpressions, plus labels/annotations subscripts.
_ENV_FIELD_PATHS = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
)
# apiserver: a generated name keeps at most 58 characters of generateName, then 5 random ones.
_MAX_GENERATED_PREFIX = 58

# Kinds whose names are RFC 1123 labels; every other kind's are subdomains.
_LABEL_NAMED_KINDS = frozenset({"Namespace"})

_OMIT = object()  # a FieldError whose value is not shown

# field.ErrorType -> (the words in the message, the StatusCause reason)
_TYPES = {
    "Invalid": ("Invalid value", "FieldValueInvalid"),
    "Required": ("Required value", "FieldValueRequired"),
    "Duplicate": ("Duplicate value", "FieldValueDuplicate"),
    "TooLong": ("Too long", "FieldValueTooLong"),
    "NotSupported": ("Unsupported value", "FieldValueNotSupported"),
    "NotFound": ("Not found", "FieldValueNotFound"),
}


def _go_value(value: Any) -> str:
    """A bad value as apimachinery prints it: strings quoted (Go %q), numbers bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, default=str)


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, worded like apimachinery's ``field.Error``.

    ``decode`` marks a value of the wrong type: the API server fails to decode such a body
    (400 BadRequest) before it validates anything.
    """

    field: str
    type: str
    value: Any = _OMIT
    detail: str = ""
    decode: bool = False

    @property
    def reason(self) -> str:
        """The ``StatusCause`` reason (``FieldValueInvalid``, ...)."""
        return _TYPES[self.type][1]

    @property
    def body(self) -> str:
        """The message without the field path (a ``StatusCause`` message)."""
        words = _TYPES[self.type][0]
        text = words if self.value is _OMIT else f"{words}: {_go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def __str__(self) -> str:
        return f"{self.field}: {self.body}"


class ObjectInvalid(ValueError):
    """An object that fails validation: ``Pod "x" is invalid: <problems>``."""

    def __init__(self, kind: str, name: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.name = name
        self.errors = errors
        super().__init__(self.message)

    @property
    def decode(self) -> bool:
        """Whether a value of the wrong type is among the problems (400, not 422)."""
        return any(error.decode for error in self.errors)

    @property
    def message(self) -> str:
        """The message as ``apierrors.NewInvalid`` words it, or a decode failure's."""
        if self.decode:
            first = next(error for error in self.errors if error.decode)
            return f'{self.kind} in version "v1" cannot be handled as a {self.kind}: {first}'
        return self.invalid_message

    @property
    def invalid_message(self) -> str:
        """``Kind "name" is invalid: <every problem>`` (one line; several are bracketed)."""
        problems = [str(error) for error in self.errors]
        joined = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        return f'{self.kind} "{self.name}" is invalid: {joined}'

    def details(self) -> dict[str, Any]:
        """``Status.details``: the object and one cause per problem (apiserver field order)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "causes": [
                {"reason": e.reason, "message": e.body, "field": e.field} for e in self.errors
            ],
        }


# -- the single-value checks ---------------------------------------------------------------------


def _bounded_match(value: str, limit: int, pattern: str, message: str) -> list[str]:
    """The API server's two checks of a name-like value: its length, then its pattern."""
    problems = []
    if len(value) > limit:
        problems.append(f"must be no more than {limit} characters")
    if not re.fullmatch(pattern, value):
        problems.append(message)
    return problems


def _dns_label(value: str) -> list[str]:
    return _bounded_match(value, 63, _DNS1123_LABEL, _LABEL_MESSAGE)


def _dns_subdomain(value: str) -> list[str]:
    return _bounded_match(value, 253, _DNS1123_SUBDOMAIN, _SUBDOMAIN_MESSAGE)


def _qualified_name(value: str) -> list[str]:
    prefix, slash, name = value.rpartition("/")
    problems = []
    if slash:
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            problems.extend("prefix part " + p for p in _dns_subdomain(prefix))
    if not name:
        problems.append("name part must be non-empty")
    else:
        if len(name) > 63:
            problems.append("name part must be no more than 63 characters")
        if not re.fullmatch(_QUALIFIED_NAME, name):
            problems.append(_QUALIFIED_NAME_MESSAGE)
    return problems


def _label_value(value: str) -> list[str]:
    return _bounded_match(value, 63, _LABEL_VALUE, _LABEL_VALUE_MESSAGE)


def text_value(value: Any) -> str | None:
    """A string field's value; YAML numbers and booleans as their text (None: not a scalar)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _wrong_type(path: str, value: Any, expected: str) -> FieldError:
    return FieldError(
        path,
        "Invalid",
        value if not isinstance(value, (Mapping, list)) else _OMIT,
        f"expected {expected}, got {_type_name(value)}",
        decode=True,
    )


def validate_namespace_name(name: Any, path: str = "metadata.name") -> list[FieldError]:
    """Problems with a namespace name (an RFC 1123 label)."""
    if not isinstance(name, str):
        return [_wrong_type(path, name, "a string")]
    return [FieldError(path, "Invalid", name, p) for p in _dns_label(name)]


def generated_name(prefix: str, suffix: str) -> str:
    """A name from ``generateName``, as the apiserver builds it (a long prefix is cut)."""
    return prefix[:_MAX_GENERATED_PREFIX] + suffix


# -- objects ---------------------------------------------------------------------------------------


def validate_object(doc: Mapping[str, Any], *, namespaced: bool = True) -> list[FieldError]:
    """Every problem with one object (a Pod, Namespace, Node or workload), in field order.

    ``doc["kind"]`` must already be a kind the sandbox supports.
    """
    kind = doc["kind"]
    errors: list[FieldError] = []
    metadata = doc.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        return [_wrong_type("metadata", metadata, "an object")]
    name_check = _dns_label if kind in _LABEL_NAMED_KINDS else _dns_subdomain
    errors.extend(
        _validate_metadata(
            metadata,
            "metadata",
            name_check,
            namespaced=namespaced and kind not in ("Namespace", "Node"),
        )
    )
    spec = doc.get("spec")
    if kind == "Pod":
        errors.extend(_validate_pod_spec(spec, "spec"))
    elif kind in WORKLOAD_KINDS:
        workload_errors = _validate_workload_spec(kind, spec)
        errors.extend(workload_errors)
        name = metadata.get("name")
        if kind == "StatefulSet" and not errors and isinstance(name, str):
            # Its pods are NAME-INDEX, a label value too (statefulset.kubernetes.io/pod-name):
            # the real controller fails to create longer ones, the sandbox says so up front.
            longest = f"{name}-{max(desired_replicas(doc) - 1, 0)}"
            if len(longest) > 63:
                errors.append(
                    FieldError(
                        "metadata.name",
                        "Invalid",
                        name,
                        f"must be no more than {63 - len(longest) + len(name)} characters "
                        f"(its last pod, {longest[:20]}..., must be a valid label value)",
                    )
                )
    return errors


def _validate_metadata(
    metadata: Mapping[str, Any],
    path: str,
    name_check: Any,
    *,
    namespaced: bool,
    template: bool = False,
) -> list[FieldError]:
    errors: list[FieldError] = []
    name = metadata.get("name")
    generate = metadata.get("generateName")
    if not template:
        if name is not None and not isinstance(name, str):
            errors.append(_wrong_type(f"{path}.name", name, "a string"))
        elif generate is not None and not isinstance(generate, str):
            errors.append(_wrong_type(f"{path}.generateName", generate, "a string"))
        elif not name and not generate:
            errors.append(
                FieldError(f"{path}.name", "Required", detail="name or generateName is required")
            )
        else:
            if generate:
                # A prefix may end in "-": check it as if a letter followed (apimachinery does).
                masked = generate[:-1] + "a" if generate.endswith("-") else generate
                errors.extend(
                    FieldError(f"{path}.generateName", "Invalid", generate, p)
                    for p in name_check(masked)
                )
            if name:
                errors.extend(
                    FieldError(f"{path}.name", "Invalid", name, p) for p in name_check(name)
                )
        namespace = metadata.get("namespace")
        if namespaced and namespace is not None and namespace != "":
            errors.extend(validate_namespace_name(namespace, f"{path}.namespace"))
    errors.extend(_validate_string_map(metadata.get("labels"), f"{path}.labels", labels=True))
    errors.extend(
        _validate_string_map(metadata.get("annotations"), f"{path}.annotations", labels=False)
    )
    errors.extend(
        _validate_owner_references(metadata.get("ownerReferences"), f"{path}.ownerReferences")
    )
    return errors


def _validate_string_map(values: Any, path: str, *, labels: bool) -> list[FieldError]:
    if values is None:
        return []
    if not isinstance(values, Mapping):
        return [_wrong_type(path, values, "an object of strings")]
    errors: list[FieldError] = []
    size = 0
    for key, value in values.items():
        if not isinstance(key, str):
            errors.append(_wrong_type(path, key, "string keys"))
            continue
        errors.extend(FieldError(path, "Invalid", key, p) for p in _qualified_name(key))
        if value is not None and not isinstance(value, str):  # Go decodes null as ""
            errors.append(_wrong_type(f"{path}[{key}]", value, "a string"))
            continue
        text = value or ""
        if labels:
            errors.extend(FieldError(path, "Invalid", text, p) for p in _label_value(text))
        size += len(key.encode()) + len(text.encode())
    if not labels and size > _ANNOTATIONS_MAX_BYTES:
        errors.append(
            FieldError(path, "TooLong", detail=f"must have at most {_ANNOTATIONS_MAX_BYTES} bytes")
        )
    if not labels:
        errors.extend(
            FieldError(f"{path}[{PREFIX}{problem.key}]", "Invalid", problem.value, problem.detail)
            for problem in annotation_problems(values)
        )
    return errors


def _validate_pod_spec(spec: Any, path: str) -> list[FieldError]:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        return [_wrong_type(path, spec, "an object")]
    errors: list[FieldError] = []
    containers = spec.get("containers")
    if containers is not None and not isinstance(containers, list):
        return [_wrong_type(f"{path}.containers", containers, "an array")]
    if not containers:
        errors.append(FieldError(f"{path}.containers", "Required"))
        containers = []
    seen: set[str] = set()
    volumes = _volume_names(spec.get("volumes"))
    if volumes is None:
        return [_wrong_type(f"{path}.volumes", spec.get("volumes"), "an array of objects")]
    for index, container in enumerate(containers):
        where = f"{path}.containers[{index}]"
        if not isinstance(container, Mapping):
            errors.append(_wrong_type(where, container, "an object"))
            continue
        name = container.get("name")
        if not name:
            errors.append(FieldError(f"{where}.name", "Required"))
        elif not isinstance(name, str):
            errors.append(_wrong_type(f"{where}.name", name, "a string"))
        else:
            errors.extend(FieldError(f"{where}.name", "Invalid", name, p) for p in _dns_label(name))
            if name in seen:
                errors.append(FieldError(f"{where}.name", "Duplicate", name))
            seen.add(name)
        errors.extend(_validate_working_dir(container.get("workingDir"), f"{where}.workingDir"))
        for key in ("command", "args"):
            argv = container.get(key)
            if argv is not None and not (
                isinstance(argv, list) and all(isinstance(a, str) for a in argv)
            ):
                errors.append(_wrong_type(f"{where}.{key}", argv, "an array of strings"))
        errors.extend(_validate_env(container.get("env"), f"{where}.env"))
        image = container.get("image")
        if image is not None and not isinstance(image, str):
            errors.append(_wrong_type(f"{where}.image", image, "a string"))
        errors.extend(_validate_ports(container.get("ports"), f"{where}.ports"))
        errors.extend(_validate_mounts(container.get("volumeMounts"), volumes, f"{where}"))
    policy = spec.get("restartPolicy")
    if policy is not None and policy not in _RESTART_POLICIES:
        errors.append(
            FieldError(
                f"{path}.restartPolicy",
                "NotSupported",
                policy,
                "supported values: " + ", ".join(f'"{p}"' for p in _RESTART_POLICIES),
            )
        )
    node = spec.get("nodeName")
    if node is not None and node != "":
        if not isinstance(node, str):
            errors.append(_wrong_type(f"{path}.nodeName", node, "a string"))
        else:
            errors.extend(
                FieldError(f"{path}.nodeName", "Invalid", node, p) for p in _dns_subdomain(node)
            )
    return errors


_RESTART_POLICIES = ("Always", "OnFailure", "Never")


def _volume_names(volumes: Any) -> set[str] | None:
    """The names of a pod's volumes; None when ``volumes`` is not an array of objects."""
    if volumes is None:
        return set()
    if not isinstance(volumes, list) or not all(isinstance(v, Mapping) for v in volumes):
        return None
    return {str(volume.get("name")) for volume in volumes}


def _validate_ports(ports: Any, path: str) -> list[FieldError]:
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [_wrong_type(path, ports, "an array of objects")]
    errors: list[FieldError] = []
    for index, port in enumerate(ports):
        where = f"{path}[{index}]"
        if not isinstance(port, Mapping):
            errors.append(_wrong_type(where, port, "an object"))
            continue
        number = port.get("containerPort")
        if number is None:
            errors.append(FieldError(f"{where}.containerPort", "Required"))
        elif isinstance(number, bool) or not isinstance(number, int):
            errors.append(_wrong_type(f"{where}.containerPort", number, "an integer"))
        elif not 1 <= number <= 65535:
            errors.append(
                FieldError(
                    f"{where}.containerPort",
                    "Invalid",
                    number,
                    "must be between 1 and 65535, inclusive",
                )
            )
    return errors


def _validate_mounts(mounts: Any, volumes: set[str], path: str) -> list[FieldError]:
    if mounts is None:
        return []
    if not isinstance(mounts, list):
        return [_wrong_type(f"{path}.volumeMounts", mounts, "an array of objects")]
    errors: list[FieldError] = []
    for index, mount in enumerate(mounts):
        where = f"{path}.volumeMounts[{index}]"
        if not isinstance(mount, Mapping):
            errors.append(_wrong_type(where, mount, "an object"))
            continue
        name = mount.get("name")
        if not name:
            errors.append(FieldError(f"{where}.name", "Required"))
        elif name not in volumes:
            errors.append(FieldError(f"{where}.name", "NotFound", name))
        if not mount.get("mountPath"):
            errors.append(FieldError(f"{where}.mountPath", "Required"))
    return errors


def _validate_owner_references(references: Any, path: str) -> list[FieldError]:
    if references is None:
        return []
    if not isinstance(references, list):
        return [_wrong_type(path, references, "an array of objects")]
    errors: list[FieldError] = []
    for index, reference in enumerate(references):
        where = f"{path}[{index}]"
        if not isinstance(reference, Mapping):
            errors.append(_wrong_type(where, reference, "an object"))
            continue
        for key in ("apiVersion", "kind", "name", "uid"):
            if not reference.get(key):
                errors.append(
                    FieldError(f"{where}.{key}", "Invalid", "", f"{key} must not be empty")
                )
    return errors


def _validate_env(env: Any, path: str) -> list[FieldError]:
    if env is None:
        return []
    if not isinstance(env, list):
        return [_wrong_type(path, env, "an array of objects")]
    errors: list[FieldError] = []
    for index, variable in enumerate(env):
        where = f"{path}[{index}]"
        if not isinstance(variable, Mapping):
            errors.append(_wrong_type(where, variable, "an object"))
            continue
        name = variable.get("name")
        if not name:
            errors.append(FieldError(f"{where}.name", "Required"))
        elif not isinstance(name, str):
            errors.append(_wrong_type(f"{where}.name", name, "a string"))
        elif not re.fullmatch(_ENV_NAME, name):
            errors.append(FieldError(f"{where}.name", "Invalid", name, _ENV_NAME_MESSAGE))
        value = variable.get("value")
        if value is not None and not isinstance(value, str):
            errors.append(_wrong_type(f"{where}.value", value, "a string"))
        elif isinstance(value, str) and "\x00" in value:  # no process environment can hold one
            errors.append(
                FieldError(f"{where}.value", "Invalid", value, "must not contain a NUL character")
            )
        source = variable.get("valueFrom")
        if source is not None:
            field_ref = source.get("fieldRef") if isinstance(source, Mapping) else None
            if not isinstance(source, Mapping) or (
                field_ref is not None
                and not (
                    isinstance(field_ref, Mapping)
                    and isinstance(field_ref.get("fieldPath", ""), str)
                )
            ):
                errors.append(
                    _wrong_type(
                        f"{where}.valueFrom",
                        source,
                        "an object such as {fieldRef: {fieldPath: ...}}",
                    )
                )
            elif field_ref is not None:
                errors.extend(
                    _validate_field_path(
                        field_ref.get("fieldPath") or "", f"{where}.valueFrom.fieldRef.fieldPath"
                    )
                )
    return errors


def _validate_field_path(field_path: str, path: str) -> list[FieldError]:
    """A ``fieldRef.fieldPath`` of an environment variable, as the apiserver checks it."""
    if not field_path:
        return [FieldError(path, "Required")]
    for prefix in ("metadata.labels", "metadata.annotations"):
        if field_path.startswith(prefix + "['") and field_path.endswith("']"):
            key = field_path[len(prefix) + 2 : -2]
            return [FieldError(path, "Invalid", key, p) for p in _qualified_name(key)]
    if field_path in _ENV_FIELD_PATHS:
        return []
    supported = ", ".join(json.dumps(p) for p in _ENV_FIELD_PATHS)
    return [FieldError(path, "NotSupported", field_path, f"supported values: {supported}")]


def _validate_working_dir(value: Any, path: str) -> list[FieldError]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        return [_wrong_type(path, value, "a string")]
    if "\x00" in value:
        return [FieldError(path, "Invalid", value, "must not contain a NUL character")]
    if not value.startswith("/"):
        return [
            FieldError(
                path,
                "Invalid",
                value,
                "must be an absolute path (the sandbox runs the "
                "command there, inside the container's root)",
            )
        ]
    problem = path_problem(value)
    return [] if problem is None else [FieldError(path, "Invalid", value, problem)]


def normalised_working_dir(value: Any) -> str:
    """A valid ``workingDir`` made canonical (``/a//b/.`` → ``/a/b``); ``/`` when unset."""
    return posixpath.normpath(str(value or "/")).replace("//", "/")


def _replicas(spec: Mapping[str, Any], key: str) -> list[FieldError]:
    value = spec.get(key)
    path = f"spec.{key}"
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # YAML/JSON "3.0": Go decodes it into an int32 as well
        else:
            return [_wrong_type(path, value, "an integer")]
    if value < 0:
        return [FieldError(path, "Invalid", value, "must be greater than or equal to 0")]
    if value > MAX_REPLICAS:
        return [
            FieldError(
                path,
                "Invalid",
                value,
                f"must be less than or equal to {MAX_REPLICAS} (the sandbox's limit)",
            )
        ]
    return []


def _validate_workload_spec(kind: str, spec: Any) -> list[FieldError]:
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        return [_wrong_type("spec", spec, "an object")]
    errors: list[FieldError] = []
    if kind == "Job":
        errors.extend(_replicas(spec, "parallelism"))
    elif kind != "DaemonSet":
        errors.extend(_replicas(spec, "replicas"))
    template = spec.get("template")
    if template is None:
        template = {}
    if not isinstance(template, Mapping):
        return [*errors, _wrong_type("spec.template", template, "an object")]
    metadata = template.get("metadata")
    if metadata is not None and not isinstance(metadata, Mapping):
        errors.append(_wrong_type("spec.template.metadata", metadata, "an object"))
    elif metadata is not None:
        errors.extend(
            _validate_metadata(
                metadata, "spec.template.metadata", _dns_subdomain, namespaced=False, template=True
            )
        )
    errors.extend(_validate_pod_spec(template.get("spec"), "spec.template.spec"))
    return errors


def replica_count(doc: Mapping[str, Any], nodes: int) -> int:
    """How many pods a valid object makes (a DaemonSet: one per node)."""
    kind = doc["kind"]
    if kind == "Pod":
        return 1
    if kind == "DaemonSet":
        return nodes
    if kind in WORKLOAD_KINDS:
        return desired_replicas(doc)
    return 0


def desired_replicas(doc: Mapping[str, Any]) -> int:
    """A valid workload's ``spec.replicas`` (a Job's ``spec.parallelism``); 1 when unset."""
    spec = doc.get("spec") or {}
    value = spec.get("parallelism" if doc["kind"] == "Job" else "replicas")
    return 1 if value is None else int(value)
