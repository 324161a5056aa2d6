"""Typed, read-only views over API objects as JSON: what podmagic reads from a pod.

The API's objects arrive as dicts that a server (or a fault) may leave incomplete: a pod
being created has no ``status``, a field may be ``null``. :class:`ObjectView` and
:class:`PodView` read them without ever raising: a missing or mistyped field reads as empty
(``""``, ``None``, ``()``, ``0``), which is what resolution, the engine and the renderers
treat as "not known". They hold the dict, copy nothing, and are cheap to make per use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final

__all__ = [
    "DEFAULT_CONTAINER_ANNOTATION",
    "ObjectView",
    "PodView",
    "parse_time",
    "section",
    "string",
]

#: The annotation that names the container kubectl uses when none is given.
DEFAULT_CONTAINER_ANNOTATION: Final = "kubectl.kubernetes.io/default-container"

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``obj[key]`` when it is an object, else an empty (read-only) one."""
    value = obj.get(key)
    return value if isinstance(value, Mapping) else _EMPTY


def string(obj: Mapping[str, Any], key: str) -> str:
    """``obj[key]`` when it is a string, else ``""``."""
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _entries(obj: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    value = obj.get(key)
    if not isinstance(value, list):
        return ()
    return tuple(entry for entry in value if isinstance(entry, Mapping))


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_TIME_RE: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?"
)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 timestamp as the API writes it; ``None`` for missing or unreadable."""
    if not isinstance(value, str):
        return None
    match = _TIME_RE.fullmatch(value.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    tz = timezone.utc
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError:
        return None


class ObjectView:
    """The metadata and spec of any API object (a workload, a namespace, a pod)."""

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        #: The object as the API sent it.
        self.raw = raw

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.namespace or '-'}/{self.name or '?'})"

    @property
    def metadata(self) -> Mapping[str, Any]:
        return section(self.raw, "metadata")

    @property
    def spec(self) -> Mapping[str, Any]:
        return section(self.raw, "spec")

    @property
    def name(self) -> str:
        return string(self.metadata, "name")

    @property
    def namespace(self) -> str:
        """The namespace, ``""`` when the object does not say (callers know where they looked)."""
        return string(self.metadata, "namespace")

    @property
    def uid(self) -> str:
        return string(self.metadata, "uid")

    @property
    def labels(self) -> Mapping[str, Any]:
        return section(self.metadata, "labels")

    @property
    def annotations(self) -> Mapping[str, Any]:
        return section(self.metadata, "annotations")

    @property
    def owner_references(self) -> tuple[Mapping[str, Any], ...]:
        return _entries(self.metadata, "ownerReferences")

    @property
    def deleting(self) -> bool:
        """Whether deletion has begun (``metadata.deletionTimestamp`` is set)."""
        return bool(self.metadata.get("deletionTimestamp"))

    @property
    def created(self) -> datetime | None:
        return parse_time(self.metadata.get("creationTimestamp"))

    @property
    def selector(self) -> Mapping[str, Any]:
        """A workload's ``spec.selector`` (empty when it has none)."""
        return section(self.spec, "selector")


class PodView(ObjectView):
    """What podmagic reads from a pod: where it runs, its state, its containers."""

    __slots__ = ()

    @property
    def status(self) -> Mapping[str, Any]:
        return section(self.raw, "status")

    @property
    def node(self) -> str | None:
        """``spec.nodeName``; ``None`` while unscheduled."""
        return string(self.spec, "nodeName") or None

    @property
    def phase(self) -> str:
        """``status.phase`` (``Running``, ``Pending`` ...); ``""`` when not reported."""
        return string(self.status, "phase")

    def _ready_condition(self) -> Mapping[str, Any] | None:
        for condition in _entries(self.status, "conditions"):
            if condition.get("type") == "Ready":
                return condition
        return None

    @property
    def ready(self) -> bool:
        """Whether the pod's ``Ready`` condition is ``True``."""
        condition = self._ready_condition()
        return condition is not None and condition.get("status") == "True"

    @property
    def ready_since(self) -> datetime | None:
        """When the pod became ready; ``None`` when not ready or not known."""
        condition = self._ready_condition()
        if condition is None or condition.get("status") != "True":
            return None
        return parse_time(condition.get("lastTransitionTime"))

    def container_names(self, key: str = "containers") -> tuple[str, ...]:
        """Names in ``spec.<key>``: regular containers, ``initContainers`` or
        ``ephemeralContainers``."""
        return tuple(name for name in (string(c, "name") for c in _entries(self.spec, key)) if name)

    def has_container(self, name: str) -> bool:
        """Whether ``name`` is any of its containers, init (sidecar) and ephemeral included,
        as ``podutils.FindContainerByName`` looks for it."""
        return any(
            name in self.container_names(key)
            for key in ("containers", "initContainers", "ephemeralContainers")
        )

    @property
    def default_container(self) -> str | None:
        """The container kubectl uses without ``-c``: the only one, else the one the
        ``kubectl.kubernetes.io/default-container`` annotation names, else the first."""
        names = self.container_names()
        if len(names) <= 1:
            return names[0] if names else None
        annotated = string(self.annotations, DEFAULT_CONTAINER_ANNOTATION)
        if annotated and self.has_container(annotated):
            return annotated
        return names[0]

    def restart_count(self, container: str) -> int:
        """How often ``container`` (of any sort) restarted; 0 when not reported."""
        for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
            for entry in _entries(self.status, key):
                if entry.get("name") == container:
                    return _count(entry.get("restartCount"))
        return 0

    @property
    def max_restarts(self) -> int:
        """The most restarts of any regular container (kubectl's activity ranking uses it)."""
        counts = [_count(e.get("restartCount")) for e in _entries(self.status, "containerStatuses")]
        return max([*counts, 0])
