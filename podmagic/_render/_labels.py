"""How a pod is named on screen: one format for the live views, the summary and the errors.

A label is the pod name, prefixed ``namespace/`` when the run spans namespaces and followed by
`` [container]`` when a pod runs more than one container: ``web-1``, ``prod/web-1``,
``web-1 [app]``, ``prod/web-1 [app]``.

Why ``web-1 [app]`` and not ``web-1/app``: a slash already means ``namespace/pod`` here (and
``kind/name`` to kubectl), so ``web-1/app`` reads as pod ``app`` in namespace ``web-1``. The
tools people read pod output with put the container after the pod as a separate word — stern
prints ``pod container``, kubectl takes ``pod -c container`` — and the brackets keep that word
from reading as a second pod in a list (``web-1 [app], web-2 [app]``). Kubernetes names never
contain spaces or brackets, so the label stays unambiguous.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["LabelStyle", "PodKey", "pod_label", "pod_labels"]

PodKey = tuple[str, str, str | None]
"""(namespace, pod, container): one exec, as events and results name it."""


def pod_label(
    namespace: str,
    pod: str,
    container: str | None,
    *,
    show_namespace: bool,
    show_container: bool,
) -> str:
    """The one place a pod's display name is written (see the module docstring)."""
    label = f"{namespace}/{pod}" if show_namespace else pod
    if show_container and container:
        label += f" [{container}]"
    return label


@dataclass(frozen=True)
class LabelStyle:
    """What a set of execs needs to tell its members apart: the namespace when they span
    several, the container when some pod runs more than one."""

    show_namespace: bool = False
    show_container: bool = False

    @classmethod
    def for_keys(cls, keys: Iterable[PodKey]) -> LabelStyle:
        keys = list(keys)
        return cls(
            show_namespace=len({namespace for namespace, _, _ in keys}) > 1,
            show_container=len({(namespace, pod) for namespace, pod, _ in keys}) < len(keys),
        )

    def label(self, key: PodKey) -> str:
        namespace, pod, container = key
        return pod_label(
            namespace,
            pod,
            container,
            show_namespace=self.show_namespace,
            show_container=self.show_container,
        )


def pod_labels(keys: Iterable[PodKey]) -> list[str]:
    """Each key's label, named as the whole set needs (``PodResults.labels``)."""
    keys = list(keys)
    style = LabelStyle.for_keys(keys)
    return [style.label(key) for key in keys]
