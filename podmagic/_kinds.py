"""The object kinds podmagic names and serves: Pod and the workloads that own pods.

One table, read by the client (target parsing, workload look-ups, API paths) and by the
sandbox (which kinds it stores, their apiVersion and plural). A kind's short name is the one
kubectl accepts and podmagic prints (``deploy/web``); :data:`ALIASES` holds every spelling
kubectl accepts before the ``/`` of ``KIND/NAME``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["ALIASES", "KINDS", "WORKLOAD_KINDS", "Kind", "kind_named"]


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of object: ``Kind("Deployment", "deploy", "apps/v1", "deployments")``."""

    name: str
    #: kubectl's short name, the prefix podmagic shows (``deploy/web``).
    short: str
    #: The ``apiVersion`` of its objects: ``v1`` for the core group, else ``GROUP/VERSION``.
    api_version: str
    #: The resource in URLs (``deployments``).
    plural: str

    @property
    def group(self) -> str:
        """The API group (``apps``, ``batch``); ``""`` for the core group."""
        return self.api_version.rpartition("/")[0]

    def path(self, namespace: str | None = None) -> str:
        """The collection's URL path, in ``namespace`` or (``None``) across all namespaces.

        ``namespace`` is used as given: the caller checks or escapes it.
        """
        root = f"/apis/{self.api_version}" if self.group else f"/api/{self.api_version}"
        if namespace is None:
            return f"{root}/{self.plural}"
        return f"{root}/namespaces/{namespace}/{self.plural}"


_POD: Final = Kind("Pod", "pod", "v1", "pods")

#: The workloads that own pods, by kind, in the order messages list them.
WORKLOAD_KINDS: Final[Mapping[str, Kind]] = MappingProxyType(
    {
        kind.name: kind
        for kind in (
            Kind("Deployment", "deploy", "apps/v1", "deployments"),
            Kind("StatefulSet", "sts", "apps/v1", "statefulsets"),
            Kind("DaemonSet", "ds", "apps/v1", "daemonsets"),
            Kind("ReplicaSet", "rs", "apps/v1", "replicasets"),
            Kind("Job", "job", "batch/v1", "jobs"),
        )
    }
)

#: The kinds a target can name: ``Pod`` first, then the workloads.
KINDS: Final[Mapping[str, Kind]] = MappingProxyType({"Pod": _POD, **WORKLOAD_KINDS})


def _build_aliases() -> dict[str, str]:
    aliases = {"pod": "Pod", "po": "Pod", "pods": "Pod"}
    for kind in WORKLOAD_KINDS.values():
        aliases[kind.short] = kind.name
        for word in (kind.name.lower(), kind.plural):
            aliases[word] = kind.name
            aliases[f"{word}.{kind.group}"] = kind.name
    return aliases


#: Accepted ``KIND/`` spellings, lower case (matched case-insensitively, like kubectl) → kind.
ALIASES: Final[Mapping[str, str]] = MappingProxyType(_build_aliases())


def kind_named(text: str) -> Kind | None:
    """The kind ``text`` names in any spelling of :data:`ALIASES` (any case), or ``None``."""
    name = ALIASES.get(text.lower())
    return None if name is None else KINDS[name]
