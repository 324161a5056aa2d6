"""Sandbox-only behaviour of a pod, set with ``sandbox.podmagic.io/*`` annotations.

Annotations go on a Pod, or on a workload (its own metadata or its pod template), where they
apply to every replica, or only to the replicas listed in ``sandbox.podmagic.io/only-replicas``.
They can also be changed at run time (``Sandbox.annotate``). The table is repeated in the README.

=================================  ==========================================================
annotation                         effect
=================================  ==========================================================
``phase``                          ``Pending`` / ``Running`` (default) / ``Succeeded`` / ``Failed``
``ready``                          ``"false"``: Running but not Ready (readiness probe failing)
``terminating``                    ``"true"``: has a deletionTimestamp (shown as Terminating)
``restarts``                       initial restart count of every container
``exec-delay``                     seconds to wait after the upgrade before the command starts
``exec-fault``                     ``drop``: the stream is cut mid-output, no status frame;
                                   ``forbidden``: the exec is refused with 403 (RBAC wording);
                                   ``error-500``: the upgrade answers 500;
                                   ``delete``: the pod is deleted while the command runs;
                                   ``recreate``: deleted and recreated under the same name
                                   (new uid) while the command runs;
                                   ``restart``: the container restarts while the command runs
``fault-after``                    seconds after the command starts when ``exec-fault`` strikes
                                   (default 0.2)
``fault-after-bytes``              strike once this many output bytes were sent (``drop``)
``throttle``                       the next N API requests naming this pod answer 429
``retry-after``                    the Retry-After seconds of those 429s (default 1)
``files``                          a YAML mapping of relative path → content, created in each
                                   container's root when the pod is created
``only-replicas``                  on a workload: comma-separated replica indexes (0-based, in
                                   creation order) that get the workload's sandbox annotations
=================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["EXEC_FAULTS", "PREFIX", "BehaviourError", "PodBehaviour"]

PREFIX = "sandbox.podmagic.io/"
EXEC_FAULTS = frozenset({"drop", "forbidden", "error-500", "delete", "recreate", "restart"})
PHASES = frozenset({"Pending", "Running", "Succeeded", "Failed"})


class BehaviourError(ValueError):
    """A sandbox annotation has a value the sandbox does not understand."""


def _float(annotations: Mapping[str, str], key: str, default: float) -> float:
    raw = annotations.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.rstrip("s"))
    except ValueError:
        raise BehaviourError(f"{PREFIX}{key}: expected seconds, got {raw!r}") from None
    if value < 0:
        raise BehaviourError(f"{PREFIX}{key}: must not be negative, got {raw!r}")
    return value


def _int(annotations: Mapping[str, str], key: str, default: int | None) -> int | None:
    raw = annotations.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BehaviourError(f"{PREFIX}{key}: expected a whole number, got {raw!r}") from None
    if value < 0:
        raise BehaviourError(f"{PREFIX}{key}: must not be negative, got {raw!r}")
    return value


def _bool(annotations: Mapping[str, str], key: str, default: bool) -> bool:
    raw = annotations.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"true", "1", "yes"}:
        return True
    if raw.lower() in {"false", "0", "no"}:
        return False
    raise BehaviourError(f"{PREFIX}{key}: expected true or false, got {raw!r}")


@dataclass(frozen=True)
class PodBehaviour:
    """The parsed ``sandbox.podmagic.io/*`` annotations of one pod."""

    phase: str = "Running"
    ready: bool = True
    terminating: bool = False
    restarts: int = 0
    exec_delay: float = 0.0
    exec_fault: str | None = None
    fault_after: float = 0.2
    fault_after_bytes: int | None = None
    throttle: int = 0
    retry_after: float = 1.0

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str] | None) -> PodBehaviour:
        """Parse a pod's annotations; raises :class:`BehaviourError` for bad values."""
        annotations = annotations or {}
        phase = annotations.get(PREFIX + "phase") or "Running"
        if phase not in PHASES:
            raise BehaviourError(
                f"{PREFIX}phase: expected one of {', '.join(sorted(PHASES))}, got {phase!r}"
            )
        fault = annotations.get(PREFIX + "exec-fault") or None
        if fault is not None and fault not in EXEC_FAULTS:
            raise BehaviourError(
                f"{PREFIX}exec-fault: expected one of {', '.join(sorted(EXEC_FAULTS))}, "
                f"got {fault!r}"
            )
        return cls(
            phase=phase,
            ready=_bool(annotations, "ready", True),
            terminating=_bool(annotations, "terminating", False),
            restarts=_int(annotations, "restarts", 0) or 0,
            exec_delay=_float(annotations, "exec-delay", 0.0),
            exec_fault=fault,
            fault_after=_float(annotations, "fault-after", 0.2),
            fault_after_bytes=_int(annotations, "fault-after-bytes", None),
            throttle=_int(annotations, "throttle", 0) or 0,
            retry_after=_float(annotations, "retry-after", 1.0),
        )
