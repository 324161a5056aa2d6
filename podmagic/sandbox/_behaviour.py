"""Sandbox-only behaviour of a pod, set with ``sandbox.podmagic.io/*`` annotations.

Annotations go on a Pod, or on a workload (its own metadata or its pod template), where they
apply to every replica, or only to the replicas listed in ``sandbox.podmagic.io/only-replicas``.
They can also be changed at run time (``Sandbox.annotate``). The table is repeated in the README.
Every value is checked when the object is created (:func:`annotation_problems`): a bad one is
a 422 naming ``metadata.annotations[sandbox.podmagic.io/...]``, and nothing is created.

=================================  ==========================================================
annotation                         effect
=================================  ==========================================================
``phase``                          ``Pending`` / ``Running`` (default) / ``Succeeded`` / ``Failed``
``ready``                          ``"false"``: Running but not Ready (readiness probe failing)
``terminating``                    ``"true"``: has a deletionTimestamp (shown as Terminating)
``restarts``                       initial restart count of every container
``restart-backoff``                seconds of the first crash-loop back-off of a container whose
                                   main process keeps ending (default 10, as the kubelet's;
                                   later ones double, up to 30 times it)
``start-delay``                    seconds the pod stays ``ContainerCreating`` before its
                                   containers start (default 0: at once)
``exec-delay``                     seconds to wait after the upgrade before the command starts
                                   (``start-delay``, ``exec-delay``, ``fault-after``,
                                   ``retry-after``: finite, 0 to 3600; counts: whole numbers 0
                                   to 2**31-1)
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
                                   container's root when the pod is created (no ``..`` part,
                                   parts of at most 255 bytes, paths of at most 2048)
``only-replicas``                  on a workload: comma-separated replica indexes (0-based, in
                                   creation order) that get the workload's sandbox annotations
=================================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ._paths import path_problem

__all__ = [
    "EXEC_FAULTS",
    "MAX_COUNT",
    "MAX_SECONDS",
    "PREFIX",
    "BehaviourError",
    "PodBehaviour",
    "annotation_problems",
    "parse_files",
    "parse_only_replicas",
]

PREFIX = "sandbox.podmagic.io/"
EXEC_FAULTS = frozenset({"drop", "forbidden", "error-500", "delete", "recreate", "restart"})
PHASES = frozenset({"Pending", "Running", "Succeeded", "Failed"})
#: The longest ``exec-delay``, ``fault-after`` and ``retry-after``, in seconds (finite: a
#: ``nan`` or ``1e308`` would stop an exec's timer from ever firing, or overflow it).
MAX_SECONDS = 3600.0
#: The largest ``restarts``, ``throttle`` and ``fault-after-bytes`` (an int32, as a restart count).
MAX_COUNT = 2**31 - 1


class BehaviourError(ValueError):
    """A sandbox annotation has a value the sandbox does not understand.

    ``key`` is the annotation without :data:`PREFIX`, ``detail`` what is wrong, ``value`` the
    value as given.
    """

    def __init__(self, key: str, detail: str, value: Any) -> None:
        super().__init__(f"{PREFIX}{key}: {detail}, got {value!r}")
        self.key = key
        self.detail = detail
        self.value = value


def _float(annotations: Mapping[str, str], key: str, default: float) -> float:
    raw = annotations.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw.rstrip("s"))
    except ValueError:
        raise BehaviourError(key, "expected seconds", raw) from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise BehaviourError(key, f"expected seconds from 0 to {MAX_SECONDS:.0f}", raw)
    return value


def _int(annotations: Mapping[str, str], key: str, default: int | None) -> int | None:
    raw = annotations.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BehaviourError(key, "expected a whole number", raw) from None
    if not 0 <= value <= MAX_COUNT:
        raise BehaviourError(key, f"expected a whole number from 0 to {MAX_COUNT}", raw)
    return value


def _bool(annotations: Mapping[str, str], key: str, default: bool) -> bool:
    raw = annotations.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"true", "1", "yes"}:
        return True
    if raw.lower() in {"false", "0", "no"}:
        return False
    raise BehaviourError(key, "expected true or false", raw)


def parse_only_replicas(raw: str) -> set[int]:
    """The replica indexes of ``only-replicas`` (``"0, 2"``)."""
    try:
        chosen = {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise BehaviourError(
            "only-replicas", "expected comma-separated replica indexes (0, 1, ...)", raw
        ) from None
    if any(index < 0 for index in chosen):
        raise BehaviourError(
            "only-replicas", "expected comma-separated replica indexes (0, 1, ...)", raw
        )
    return chosen


def parse_files(raw: str) -> dict[str, str]:
    """The ``files`` annotation: relative path (inside a container's root) -> text.

    Every path is checked here, before the pod is stored: no ``..`` part, no part longer than
    ``NAME_MAX``, and no path that is both a file and the folder of another file.
    """
    expected = "expected a YAML mapping of relative path to text"
    try:
        loaded = yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        detail = " ".join(str(error).split())  # PyYAML's message spans several lines
        raise BehaviourError("files", f"{expected} ({detail})", raw) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, Mapping):
        raise BehaviourError("files", expected, raw)
    files: dict[str, str] = {}
    for key, content in loaded.items():
        path = key if isinstance(key, str) else None
        relative = "/".join(part for part in (path or "").split("/") if part not in ("", "."))
        problem = "a path must be a non-empty string" if not relative else path_problem(path or "")
        if problem is None and not (content is None or isinstance(content, (str, int, float))):
            problem = "the content of each path must be text"
        if problem is not None:
            raise BehaviourError("files", f"{key!r}: {problem}", raw)
        # YAML numbers and booleans are written as their text; null as an empty file.
        files[relative] = (
            ""
            if content is None
            else (("true" if content else "false") if isinstance(content, bool) else str(content))
        )
    for relative in files:
        parent = relative.rpartition("/")[0]
        while parent:
            if parent in files:
                raise BehaviourError(
                    "files", f"{parent!r} is both a file and the folder of {relative!r}", raw
                )
            parent = parent.rpartition("/")[0]
    return files


def annotation_problems(annotations: Mapping[str, Any]) -> list[BehaviourError]:
    """Every sandbox annotation in ``annotations`` the sandbox would refuse, one error each.

    Checked when an object is created, so a bad value is a 422 and never a half-made pod.
    """
    text = {key: value for key, value in annotations.items() if isinstance(value, str)}
    problems: list[BehaviourError] = []
    single = {
        key: value
        for key, value in text.items()
        if key.startswith(PREFIX) and key not in (PREFIX + "files", PREFIX + "only-replicas")
    }
    for key in sorted(single):
        try:
            PodBehaviour.from_annotations({key: single[key]})
        except BehaviourError as error:
            problems.append(error)
    if text.get(PREFIX + "files"):
        try:
            parse_files(text[PREFIX + "files"])
        except BehaviourError as error:
            problems.append(error)
    if PREFIX + "only-replicas" in text:
        try:
            parse_only_replicas(text[PREFIX + "only-replicas"])
        except BehaviourError as error:
            problems.append(error)
    return problems


@dataclass(frozen=True)
class PodBehaviour:
    """The parsed ``sandbox.podmagic.io/*`` annotations of one pod."""

    phase: str = "Running"
    ready: bool = True
    terminating: bool = False
    restarts: int = 0
    restart_backoff: float = 10.0
    start_delay: float = 0.0
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
            raise BehaviourError("phase", f"expected one of {', '.join(sorted(PHASES))}", phase)
        fault = annotations.get(PREFIX + "exec-fault") or None
        if fault is not None and fault not in EXEC_FAULTS:
            raise BehaviourError(
                "exec-fault", f"expected one of {', '.join(sorted(EXEC_FAULTS))}", fault
            )
        return cls(
            phase=phase,
            ready=_bool(annotations, "ready", True),
            terminating=_bool(annotations, "terminating", False),
            restarts=_int(annotations, "restarts", 0) or 0,
            restart_backoff=_float(annotations, "restart-backoff", 10.0),
            start_delay=_float(annotations, "start-delay", 0.0),
            exec_delay=_float(annotations, "exec-delay", 0.0),
            exec_fault=fault,
            fault_after=_float(annotations, "fault-after", 0.2),
            fault_after_bytes=_int(annotations, "fault-after-bytes", None),
            throttle=_int(annotations, "throttle", 0) or 0,
            retry_after=_float(annotations, "retry-after", 1.0),
        )
