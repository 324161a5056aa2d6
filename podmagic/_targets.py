"""From what the user typed to the (pod, container) pairs to run in, and the pods skipped.

A :class:`TargetQuery` holds everything a run's target is made of: pod names and workloads
(:class:`Target`, parsed from ``web-1``, ``pod/web-1``, ``deploy/web``, ``sts/db`` ...), a label
selector (``-l``), a field selector, the namespace or ``-A``, and the choices about which pods
and containers to use (``--include-unready``, ``--one``, ``--pick N``, ``-c``,
``--all-containers``). :func:`resolve` asks a :class:`PodSource` (the Kubernetes API client, or
a fake in tests) for the pods and returns a :class:`Selection`: one :class:`PodTarget` per exec
to run, and one :class:`SkippedPod` per matched pod that will not run, with the reason.

Rules, as kubectl applies them where kubectl has one:

* Pod names are fetched one by one; with ``-A`` every pod is listed once and matched by name,
  so a name may match pods in several namespaces.
* A workload's pods are those its ``spec.selector`` matches *and* it owns (ownerReferences),
  since the selectors of different workloads can overlap. A Deployment owns its pods through a
  ReplicaSet named ``<deployment>-<pod-template-hash>``.
* Pods run when Running, Ready and not being deleted; ``include_unready`` also runs unready
  and terminating Running pods. Pending, completed and failed pods never run: exec cannot.
* ``one`` picks the most active pod the way ``kubectl exec deploy/NAME`` does
  (``sort.Reverse(podutils.ActivePods)``; see :func:`most_active_first`).
* The container is ``-c`` when given, else the only one, else the one the
  ``kubectl.kubernetes.io/default-container`` annotation names, else the first.

Everything that selects nothing raises :class:`~podmagic.SelectionError` with a
one-line message that says where it looked and what to try.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cmp_to_key, partial
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

import anyio

from ._errors import ApiError, SelectionError
from ._selectors import FieldSelector, LabelSelector, SelectorError

__all__ = [
    "DEFAULT_CONTAINER_ANNOTATION",
    "WORKLOAD_ALIASES",
    "WORKLOAD_KINDS",
    "PodSource",
    "PodTarget",
    "Selection",
    "SkippedPod",
    "Target",
    "TargetQuery",
    "most_active_first",
    "natural_key",
    "resolve",
]

#: The annotation that names the container kubectl uses when none is given.
DEFAULT_CONTAINER_ANNOTATION: Final = "kubectl.kubernetes.io/default-container"


class PodSource(Protocol):
    """What target resolution needs from the Kubernetes API (``KubeApi`` provides it).

    Objects are the API's JSON as dicts. ``None`` means "not found" (HTTP 404); any other
    failure raises (``ApiError``).
    """

    async def list_pods(
        self, namespace: str | None, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        """Pods in ``namespace`` (``None``: every namespace) matching both selectors."""
        ...

    async def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One pod, or ``None`` when there is no such pod."""
        ...

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        """One namespace, or ``None`` when there is no such namespace."""
        ...

    async def get_workload(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """A Deployment, StatefulSet, DaemonSet, ReplicaSet or Job, or ``None``."""
        ...

    async def list_namespaces(self) -> list[dict[str, Any]]:
        """Every namespace."""
        ...

    async def get_json(
        self, path: str, params: dict[str, str] | None = None, *, what: str
    ) -> dict[str, Any]:
        """``GET path`` decoded; ``what`` names the request in error messages."""
        ...


# -- kinds and their names --------------------------------------------------------------------

# kind -> (short prefix shown to users, API group/version, resource plural)
_KINDS: Final[Mapping[str, tuple[str, str, str]]] = MappingProxyType(
    {
        "Pod": ("pod", "v1", "pods"),
        "Deployment": ("deploy", "apps/v1", "deployments"),
        "StatefulSet": ("sts", "apps/v1", "statefulsets"),
        "DaemonSet": ("ds", "apps/v1", "daemonsets"),
        "ReplicaSet": ("rs", "apps/v1", "replicasets"),
        "Job": ("job", "batch/v1", "jobs"),
    }
)

#: The kinds a :class:`Target` can name: ``Pod`` and the workloads that own pods.
WORKLOAD_KINDS: Final[tuple[str, ...]] = tuple(_KINDS)


def _build_aliases() -> dict[str, str]:
    aliases = {"pod": "Pod", "po": "Pod", "pods": "Pod"}
    for kind, (short, group_version, plural) in _KINDS.items():
        if kind == "Pod":
            continue
        group = group_version.split("/")[0]
        aliases[short] = kind
        for word in (kind.lower(), plural):
            aliases[word] = kind
            aliases[f"{word}.{group}"] = kind
    return aliases


#: Accepted ``PREFIX/`` spellings (matched case-insensitively, like kubectl) → kind.
WORKLOAD_ALIASES: Final[Mapping[str, str]] = MappingProxyType(_build_aliases())

_SHORT_PREFIXES: Final = ", ".join(f"{short}/" for short, _, _ in _KINDS.values())

_NAME_MAX: Final = 253
_NAME_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAMESPACE_MAX: Final = 63
_NAMESPACE_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

_LABEL_EXAMPLE: Final = "e.g. -l app=web,tier in (a,b)"
_FIELD_EXAMPLE: Final = "e.g. --field-selector spec.nodeName=node-1,status.phase=Running"
_LIST_LIMIT: Final = 10
_CLOSE_CUTOFF: Final = 0.6


def _q(text: str) -> str:
    """Double-quoted and escaped, so that whatever the user typed stays on one line."""
    return json.dumps(text, ensure_ascii=False)


def _shown(text: str, limit: int = 60) -> str:
    return _q(text if len(text) <= limit else text[:limit] + "…")


def _kind_word(kind: str) -> str:
    return kind.lower()


def _or_list(words: Sequence[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _capped(names: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    shown = ", ".join(names[:limit])
    return shown + ", ..." if len(names) > limit else shown


def _did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """``did you mean a or b?`` for up to three near names, or ``None``.

    Scored like ``difflib.get_close_matches``, but equal scores keep natural order (that
    function puts ``web-2`` before ``web-1``).
    """
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name)
    scored = []
    for candidate in set(candidates) - {"", name}:
        matcher.set_seq1(candidate)
        if (
            matcher.real_quick_ratio() >= _CLOSE_CUTOFF
            and matcher.quick_ratio() >= _CLOSE_CUTOFF
            and matcher.ratio() >= _CLOSE_CUTOFF
        ):
            scored.append((-matcher.ratio(), natural_key(candidate), candidate))
    close = [candidate for _, _, candidate in sorted(scored)[:3]]
    return f"did you mean {_or_list(close)}?" if close else None


# -- what the user named ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """One pod or workload the user named: ``kind`` is ``"Pod"`` or a workload kind."""

    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise SelectionError(
                f"unknown target kind {_q(self.kind)}", hint=f"use one of {', '.join(_KINDS)}"
            )

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``NAME``, ``pod/NAME`` or ``KIND/NAME`` (``deploy/web``, ``sts/db``, ...).

        Raise :class:`SelectionError` for an unknown kind prefix (listing the accepted ones)
        and for a name that is not a valid Kubernetes object name (RFC 1123 subdomain).
        """
        stripped = text.strip()
        if not stripped:
            raise SelectionError(
                "empty target", hint="give a pod name, KIND/NAME such as deploy/web, or -l"
            )
        prefix, slash, name = stripped.partition("/")
        if not slash:
            kind, name = "Pod", stripped
        else:
            found = WORKLOAD_ALIASES.get(prefix.lower())
            if found is None:
                raise SelectionError(
                    f"unknown kind {_shown(prefix)} in {_shown(stripped)}",
                    hint=f"use one of {_SHORT_PREFIXES} (long forms such as deployment/ and "
                    "deployments.apps/ work too)",
                )
            kind = found
            if not name:
                raise SelectionError(f"no name after {_q(prefix + '/')}", hint=f"e.g. {prefix}/web")
        _check_name(kind, name, typed=stripped)
        return cls(kind, name)

    def __str__(self) -> str:
        return f"{_KINDS[self.kind][0]}/{self.name}"


def _check_name(kind: str, name: str, *, typed: str) -> None:
    what = f"invalid {_kind_word(kind)} name {_shown(name)}"
    if len(name) > _NAME_MAX:
        raise SelectionError(f"{what}: longer than {_NAME_MAX} characters")
    if not _NAME_RE.fullmatch(name):
        looks_like_selector = any(char in name for char in "=!,() ")
        raise SelectionError(
            f"{what}: names are lowercase letters, digits, '-' and '.', and start and end with a "
            "letter or digit",
            hint=f"for a label selector use -l {typed}" if looks_like_selector else None,
        )


@dataclasses.dataclass(frozen=True)
class TargetQuery:
    """Everything that decides which pods and containers a run uses.

    ``namespace`` ``None`` means the default namespace given to :func:`resolve`;
    ``all_namespaces`` (``-A``) overrides it. ``one`` runs in one pod, the most active, like
    ``kubectl exec deploy/NAME``; ``pick`` in a random sample of that many eligible pods
    (``seed`` makes it reproducible). An empty selector string counts as no selector.
    """

    targets: tuple[Target, ...] = ()
    label_selector: str | None = None
    field_selector: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    include_unready: bool = False
    one: bool = False
    pick: int | None = None
    container: str | None = None
    all_containers: bool = False
    seed: int | None = None

    def _label_text(self) -> str:
        return (self.label_selector or "").strip()

    def _field_text(self) -> str:
        return (self.field_selector or "").strip()

    def _targets_text(self) -> str:
        unique = list(dict.fromkeys(self.targets))
        pods = [t.name for t in unique if t.kind == "Pod"]
        parts = []
        if pods:
            parts.append(("pod " if len(pods) == 1 else "pods ") + ", ".join(pods))
        parts.extend(str(t) for t in unique if t.kind != "Pod")
        return ", ".join(parts)

    def _subject(self) -> str:
        """What was named, without where: ``app=web``, ``deploy/web with status.phase=...``."""
        named = self._targets_text() or self._label_text()
        fields = self._field_text()
        if named and fields:
            return f"{named} with {fields}"
        return named or fields

    def _where(self, default_namespace: str, *, error: bool = False) -> str:
        if self.all_namespaces:
            return "in any namespace" if error else "in all namespaces"
        return f"in namespace {self.namespace or default_namespace}"

    def describe(self, default_namespace: str) -> str:
        """Where pods are looked for, in words.

        ``app=web in namespace prod``, ``deploy/web in namespace demo``,
        ``pods web-1, web-2 in all namespaces``, ``all pods in namespace default``.
        """
        return f"{self._subject() or 'all pods'} {self._where(default_namespace)}"

    @property
    def selects_everything(self) -> bool:
        """True with no targets and no (or empty) selectors: every pod of the namespace(s).

        The caller asks for confirmation before running in that many pods.
        """
        return not self.targets and not self._label_text() and not self._field_text()


# -- what resolution produces -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PodTarget:
    """One exec to run: a container of a pod.

    ``containers`` lists all the pod's (regular) containers; ``restarts`` is the restart
    count of ``container`` when resolved, so that a restart during the run can be detected.
    """

    namespace: str
    pod: str
    container: str
    node: str | None
    containers: tuple[str, ...]
    pod_uid: str
    restarts: int


@dataclasses.dataclass(frozen=True)
class SkippedPod:
    """A matched pod that will not run, and why.

    ``reason`` is one of ``Pending`` (or another phase), ``not ready``, ``terminating``,
    ``completed (Succeeded)``, ``failed (Failed)``, ``not chosen (--one)``,
    ``not in sample (--pick N)`` or ``container "x" not found (containers: a, b)``. The last
    one has ``is_error`` set: the user asked for something this pod does not have, so the
    caller reports it as an error rather than as a skip. ``container`` is the container the
    pod would have run in (``None`` with ``all_containers``).
    """

    namespace: str
    pod: str
    container: str | None
    node: str | None
    reason: str
    is_error: bool = False


@dataclasses.dataclass(frozen=True)
class Selection:
    """The outcome of :func:`resolve`, in namespace then natural pod-name order.

    ``untargeted``: made with no target and no label selector (a field selector alone does
    not count), so it is every pod of the namespace(s); ``Cluster.run`` refuses it unless
    told ``all_pods=True``, as it refuses such a call itself.
    """

    run: tuple[PodTarget, ...]
    skipped: tuple[SkippedPod, ...]
    description: str
    untargeted: bool = False


# -- reading pod objects --------------------------------------------------------------------------

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_Pod = Mapping[str, Any]
_PodT = TypeVar("_PodT", bound=Mapping[str, Any])


def _section(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else _EMPTY


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _entries(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = obj.get(key)
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


def _pod_name(pod: _Pod) -> str:
    return _str(_section(pod, "metadata"), "name")


def _pod_namespace(pod: _Pod, fallback: str | None) -> str:
    return _str(_section(pod, "metadata"), "namespace") or fallback or ""


def _node(pod: _Pod) -> str | None:
    return _str(_section(pod, "spec"), "nodeName") or None


def _phase(pod: _Pod) -> str:
    return _str(_section(pod, "status"), "phase")


def _ready_condition(pod: _Pod) -> Mapping[str, Any] | None:
    for condition in _entries(_section(pod, "status"), "conditions"):
        if condition.get("type") == "Ready":
            return condition
    return None


def _is_ready(pod: _Pod) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def _container_names(pod: _Pod, key: str = "containers") -> tuple[str, ...]:
    return tuple(
        name for name in (_str(c, "name") for c in _entries(_section(pod, "spec"), key)) if name
    )


def _has_container(pod: _Pod, name: str) -> bool:
    # Like podutils.FindContainerByName: init (sidecar) and ephemeral containers count too.
    return any(
        name in _container_names(pod, key)
        for key in ("containers", "initContainers", "ephemeralContainers")
    )


def _default_container(pod: _Pod) -> str | None:
    names = _container_names(pod)
    if len(names) <= 1:
        return names[0] if names else None
    annotations = _section(_section(pod, "metadata"), "annotations")
    annotated = _str(annotations, DEFAULT_CONTAINER_ANNOTATION)
    if annotated and _has_container(pod, annotated):
        return annotated
    return names[0]


def _restart_count(pod: _Pod, container: str) -> int:
    status = _section(pod, "status")
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for entry in _entries(status, key):
            if entry.get("name") == container:
                count = entry.get("restartCount")
                return count if isinstance(count, int) and not isinstance(count, bool) else 0
    return 0


def _max_restarts(pod: _Pod) -> int:
    counts = [
        entry.get("restartCount")
        for entry in _entries(_section(pod, "status"), "containerStatuses")
    ]
    return max([c for c in counts if isinstance(c, int) and not isinstance(c, bool)] + [0])


_TIME_RE: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?"
)


def _parse_time(value: object) -> datetime | None:
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


def _ready_time(pod: _Pod) -> datetime | None:
    for condition in _entries(_section(pod, "status"), "conditions"):
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return _parse_time(condition.get("lastTransitionTime"))
    return None


def _created(pod: _Pod) -> datetime | None:
    return _parse_time(_section(pod, "metadata").get("creationTimestamp"))


def _after_or_zero(first: datetime | None, second: datetime | None) -> bool:
    # podutils.afterOrZero: a zero (missing) time counts as later than any real one.
    if first is None or second is None:
        return first is None
    return first > second


_PHASE_RANK: Final = MappingProxyType({"Pending": 0, "Unknown": 1, "Running": 2})


def _less_active(a: _Pod, b: _Pod) -> bool:
    """``podutils.ActivePods.Less(a, b)``: whether ``a`` is the less active of the two."""
    node_a, node_b = _node(a) or "", _node(b) or ""
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    # Go reads a missing map key as 0, so any other phase ranks with Pending.
    rank_a, rank_b = _PHASE_RANK.get(_phase(a), 0), _PHASE_RANK.get(_phase(b), 0)
    if rank_a != rank_b:
        return rank_a < rank_b
    ready_a, ready_b = _is_ready(a), _is_ready(b)
    if ready_a != ready_b:
        return not ready_a
    if ready_a and ready_b:
        time_a, time_b = _ready_time(a), _ready_time(b)
        if time_a != time_b:
            return _after_or_zero(time_a, time_b)
    restarts_a, restarts_b = _max_restarts(a), _max_restarts(b)
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    created_a, created_b = _created(a), _created(b)
    if created_a != created_b:
        return _after_or_zero(created_a, created_b)
    return False


def _activity_cmp(a: _Pod, b: _Pod) -> int:
    if _less_active(b, a):
        return -1
    if _less_active(a, b):
        return 1
    return 0


def most_active_first(pods: Iterable[_PodT]) -> list[_PodT]:
    """Pods ordered as ``kubectl exec deploy/NAME`` ranks them, the one it would pick first.

    That is ``sort.Reverse(podutils.ActivePods(pods))``: a pod on a node before an unassigned
    one, Running before Unknown before Pending, Ready before not ready, ready for longer
    before ready more recently, fewer container restarts before more, older before newer.
    Pods that tie keep their given order (Go's sort leaves ties in no particular order).
    """
    return sorted(pods, key=cmp_to_key(_activity_cmp))


def natural_key(name: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that puts ``web-2`` before ``web-10``."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), name


# -- resolution ---------------------------------------------------------------------------------

_T = TypeVar("_T")


async def _gather(calls: Sequence[Callable[[], Awaitable[_T]]]) -> list[_T]:
    """Run the calls concurrently; re-raise the failure of the earliest failing call."""
    if len(calls) == 1:
        return [await calls[0]()]
    results: dict[int, _T] = {}
    errors: dict[int, Exception] = {}

    async def run(index: int, call: Callable[[], Awaitable[_T]]) -> None:
        # Caught here so that the error reaches the caller as itself, not in an ExceptionGroup.
        try:
            results[index] = await call()
        except Exception as exc:  # noqa: BLE001 - re-raised below, once all calls ended
            errors[index] = exc

    async with anyio.create_task_group() as group:
        for index, call in enumerate(calls):
            group.start_soon(run, index, call)
    if errors:
        raise errors[min(errors)]
    return [results[index] for index in range(len(calls))]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _parse_label_selector(text: str) -> LabelSelector | None:
    if not text:
        return None
    try:
        return LabelSelector.parse(text)
    except SelectorError as exc:
        raise SelectionError(
            f"invalid label selector {_shown(text)}: {_one_line(str(exc))}", hint=_LABEL_EXAMPLE
        ) from None


def _parse_field_selector(text: str) -> FieldSelector | None:
    if not text:
        return None
    try:
        return FieldSelector.parse(text)
    except SelectorError as exc:
        raise SelectionError(
            f"invalid field selector {_shown(text)}: {_one_line(str(exc))}", hint=_FIELD_EXAMPLE
        ) from None


def _check_query(query: TargetQuery, namespace: str | None) -> None:
    if query.targets and query._label_text():
        if all(target.kind == "Pod" for target in query.targets):
            raise SelectionError("give pod names or a selector (-l), not both")
        raise SelectionError("give pod or workload names or a selector (-l), not both")
    if query.one and query.pick is not None:
        raise SelectionError("give --one or --pick N, not both")
    if query.pick is not None and query.pick < 1:
        raise SelectionError(
            f"--pick {query.pick}: the sample must hold at least 1 pod", hint="e.g. --pick 3"
        )
    if query.container is not None and query.all_containers:
        raise SelectionError("give -c/--container or --all-containers, not both")
    if query.container is not None and not query.container.strip():
        raise SelectionError("empty container name", hint="give -c NAME")
    if namespace is not None and (
        len(namespace) > _NAMESPACE_MAX or not _NAMESPACE_RE.fullmatch(namespace)
    ):
        raise SelectionError(
            f"invalid namespace {_shown(namespace)}: namespaces are at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )


async def _namespace_missing_error(source: PodSource, namespace: str) -> SelectionError | None:
    """The error for a namespace that does not exist, or ``None`` when it exists (or may)."""
    try:
        if await source.get_namespace(namespace) is not None:
            return None
    except ApiError:
        # Reading namespaces is often forbidden to namespace-scoped users: assume it exists.
        return None
    message = f"namespace {_q(namespace)} not found"
    try:
        names = sorted(
            {_str(_section(ns, "metadata"), "name") for ns in await source.list_namespaces()} - {""}
        )
    except ApiError:
        return SelectionError(message, hint="check the name given with -n")
    if not names:
        return SelectionError(f"{message} (there are no namespaces)")
    listing = f"namespaces: {_capped(names)}"
    close = _did_you_mean(namespace, names)
    if close:
        return SelectionError(f"{message} ({listing}; {close})")
    return SelectionError(f"{message} ({listing})", hint="check the name given with -n")


async def _missing_pod_error(source: PodSource, name: str, namespace: str) -> SelectionError:
    missing_namespace = await _namespace_missing_error(source, namespace)
    if missing_namespace is not None:
        return missing_namespace
    message = f"pod {_q(name)} not found in namespace {_q(namespace)}"
    try:
        names = [_pod_name(pod) for pod in await source.list_pods(namespace)]
    except ApiError:
        return SelectionError(message, hint="check the name, or look in every namespace with -A")
    if not any(names):
        return SelectionError(
            message, hint="there are no pods in it; give another namespace with -n, or try -A"
        )
    return SelectionError(
        message,
        hint=_did_you_mean(name, names)
        or f"list them with kubectl get pods -n {namespace}, or look in every namespace with -A",
    )


def _workload_path(kind: str, namespace: str | None) -> str:
    _, group_version, plural = _KINDS[kind]
    if namespace is None:
        return f"/apis/{group_version}/{plural}"
    return f"/apis/{group_version}/namespaces/{namespace}/{plural}"


async def _list_workloads(
    source: PodSource, kind: str, namespace: str | None
) -> list[Mapping[str, Any]]:
    plural = _KINDS[kind][2]
    where = "in all namespaces" if namespace is None else f"in namespace {namespace}"
    answer = await source.get_json(_workload_path(kind, namespace), what=f"list {plural} {where}")
    return _entries(answer, "items")


async def _missing_workload_error(
    source: PodSource, target: Target, namespace: str
) -> SelectionError:
    missing_namespace = await _namespace_missing_error(source, namespace)
    if missing_namespace is not None:
        return missing_namespace
    message = f"{_kind_word(target.kind)} {_q(target.name)} not found in namespace {_q(namespace)}"
    plural = _KINDS[target.kind][2]
    try:
        names = [
            _str(_section(item, "metadata"), "name")
            for item in await _list_workloads(source, target.kind, namespace)
        ]
    except ApiError:
        return SelectionError(message, hint="check the name, or look in every namespace with -A")
    return SelectionError(
        message,
        hint=_did_you_mean(target.name, names)
        or f"list them with kubectl get {plural} -n {namespace}, or look in every namespace "
        "with -A",
    )


def _owned_by(pod: _Pod, kind: str, workload: Mapping[str, Any]) -> bool:
    """Whether ``workload`` owns ``pod``: selectors alone can overlap between workloads."""
    metadata = _section(workload, "metadata")
    name = _str(metadata, "name")
    references = _entries(_section(pod, "metadata"), "ownerReferences")
    if kind == "Deployment":
        template_hash = _str(_section(_section(pod, "metadata"), "labels"), "pod-template-hash")
        for reference in references:
            if reference.get("kind") != "ReplicaSet":
                continue
            owner = _str(reference, "name")
            if template_hash:
                if owner == f"{name}-{template_hash}":
                    return True
            else:
                suffix = owner[len(name) + 1 :] if owner.startswith(name + "-") else ""
                if suffix and "-" not in suffix:
                    return True
        return False
    uid = _str(metadata, "uid")
    for reference in references:
        if uid:
            if reference.get("uid") == uid:
                return True
        elif reference.get("kind") == kind and reference.get("name") == name:
            return True
    return False


async def _workload_pods(
    source: PodSource,
    target: Target,
    workload: Mapping[str, Any],
    fields: FieldSelector | None,
    fallback_namespace: str | None,
) -> list[dict[str, Any]]:
    namespace = _str(_section(workload, "metadata"), "namespace") or fallback_namespace or ""
    try:
        selector = LabelSelector.from_spec(_section(_section(workload, "spec"), "selector"))
    except SelectorError as exc:
        raise SelectionError(
            f"{target} in namespace {namespace} has an invalid selector: {_one_line(str(exc))}",
            hint=f"check it with kubectl get {target} -n {namespace} -o yaml",
        ) from None
    pods = await source.list_pods(
        namespace, label_selector=str(selector), field_selector=str(fields) if fields else ""
    )
    return [pod for pod in pods if _owned_by(pod, target.kind, workload)]


async def _named_pods(
    source: PodSource,
    names: Sequence[str],
    namespace: str | None,
    fields: FieldSelector | None,
) -> list[dict[str, Any]]:
    if namespace is None:
        # Not filtered by the server: a pod the field selector excludes still exists, and
        # must not be reported as not found.
        everything = await source.list_pods(None)
        by_name: dict[str, list[dict[str, Any]]] = {}
        for pod in everything:
            by_name.setdefault(_pod_name(pod), []).append(pod)
        for name in names:
            if name not in by_name:
                raise SelectionError(
                    f"pod {_q(name)} not found in any namespace",
                    hint=_did_you_mean(name, by_name) or "check the name with kubectl get pods -A",
                )
        found = [pod for name in names for pod in by_name[name]]
    else:
        answers = await _gather([partial(source.get_pod, namespace, name) for name in names])
        found = []
        for name, answer in zip(names, answers):
            if answer is None:
                raise await _missing_pod_error(source, name, namespace)
            found.append(answer)
    return [pod for pod in found if fields is None or fields.matches_pod(pod)]


async def _targeted_pods(
    source: PodSource,
    targets: Sequence[Target],
    namespace: str | None,
    fields: FieldSelector | None,
) -> list[dict[str, Any]]:
    unique = list(dict.fromkeys(targets))
    names = [t.name for t in unique if t.kind == "Pod"]
    workloads = [t for t in unique if t.kind != "Pod"]
    pods: list[dict[str, Any]] = []
    if names:
        pods.extend(await _named_pods(source, names, namespace, fields))
    if not workloads:
        return pods

    found: list[tuple[Target, Mapping[str, Any]]] = []
    if namespace is None:
        kinds = list(dict.fromkeys(t.kind for t in workloads))
        listed = dict(
            zip(
                kinds,
                await _gather([partial(_list_workloads, source, kind, None) for kind in kinds]),
            )
        )
        for target in workloads:
            items = listed[target.kind]
            matches = [i for i in items if _str(_section(i, "metadata"), "name") == target.name]
            if not matches:
                names_there = [_str(_section(i, "metadata"), "name") for i in items]
                raise SelectionError(
                    f"{_kind_word(target.kind)} {_q(target.name)} not found in any namespace",
                    hint=_did_you_mean(target.name, names_there)
                    or f"check the name with kubectl get {_KINDS[target.kind][2]} -A",
                )
            found.extend((target, item) for item in matches)
    else:
        objects = await _gather(
            [partial(source.get_workload, t.kind, namespace, t.name) for t in workloads]
        )
        for target, obj in zip(workloads, objects):
            if obj is None:
                raise await _missing_workload_error(source, target, namespace)
            found.append((target, obj))

    lists = await _gather(
        [partial(_workload_pods, source, t, w, fields, namespace) for t, w in found]
    )
    for listed_pods in lists:
        pods.extend(listed_pods)
    return pods


def _ordered(pods: Iterable[dict[str, Any]], namespace: str | None) -> list[dict[str, Any]]:
    """De-duplicated by namespace and name; namespace, then natural name order."""
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for pod in pods:
        unique.setdefault((_pod_namespace(pod, namespace), _pod_name(pod)), pod)
    return [unique[key] for key in sorted(unique, key=lambda k: (k[0], natural_key(k[1])))]


async def _nothing_matched(
    source: PodSource,
    query: TargetQuery,
    namespace: str | None,
    default_namespace: str,
    labels: LabelSelector | None,
    fields: FieldSelector | None,
) -> SelectionError:
    subject = query._subject()
    if query.targets:
        message = f"no pods match {subject} {query._where(default_namespace, error=True)}"
        if fields is not None:
            return SelectionError(message, hint="check the field selector, or leave it out")
        several = len(set(query.targets)) > 1
        return SelectionError(
            message,
            hint=("they have" if several else "it has")
            + " no pods now (scaled to zero, or not started yet)",
        )

    label_text = str(labels) if labels else ""
    field_text = str(fields) if fields else ""
    if label_text:
        check = "check the labels with kubectl get pods --show-labels"
    elif field_text:
        check = "check the fields with kubectl get pods -o wide"
    else:
        check = "check the context (--context)"

    def error(where: str, hint: str) -> SelectionError:
        if subject:
            return SelectionError(f"no pods match {subject} {where}", hint=hint)
        return SelectionError(f"no pods {where}", hint=hint)

    if namespace is None:
        return error("in any namespace", check)
    missing_namespace = await _namespace_missing_error(source, namespace)
    if missing_namespace is not None:
        return missing_namespace
    where = f"in namespace {namespace}"
    try:
        elsewhere = await source.list_pods(
            None, label_selector=label_text, field_selector=field_text
        )
    except ApiError:
        # Listing across namespaces needs cluster-wide rights: say less rather than fail.
        return error(where, f"{check}, or try -A")
    others = sum(1 for pod in elsewhere if _pod_namespace(pod, None) != namespace)
    if others == 0:
        return error("in any namespace", check)
    counted = "1 pod in another namespace" if others == 1 else f"{others} pods in other namespaces"
    if subject:
        return SelectionError(f"no pods match {subject} {where} ({counted}; try -A)")
    return SelectionError(f"no pods {where} ({counted}; try -A)")


def _ineligible(pod: _Pod, include_unready: bool) -> str | None:
    """Why the pod cannot run, or ``None`` when it can."""
    phase = _phase(pod)
    if phase == "Succeeded":
        return "completed (Succeeded)"
    if phase == "Failed":
        return "failed (Failed)"
    if phase != "Running":
        return phase or "Unknown"
    if include_unready:
        return None
    if _section(pod, "metadata").get("deletionTimestamp"):
        return "terminating"
    if not _is_ready(pod):
        return "not ready"
    return None


def _select(
    pods: list[dict[str, Any]], query: TargetQuery, namespace: str | None, description: str
) -> Selection:
    wanted = query.container
    if wanted is not None and not any(_has_container(pod, wanted) for pod in pods):
        seen = list(dict.fromkeys(name for pod in pods for name in _container_names(pod)))
        raise SelectionError(
            f"container {_q(wanted)} not found in any matched pod (containers: {_capped(seen)})"
        )

    outcome: dict[int, SkippedPod] = {}
    candidates: list[int] = []
    for index, pod in enumerate(pods):
        where = (_pod_namespace(pod, namespace), _pod_name(pod))
        shown = (
            wanted
            if wanted is not None
            else (None if query.all_containers else _default_container(pod))
        )
        reason = _ineligible(pod, query.include_unready)
        if reason is not None:
            outcome[index] = SkippedPod(*where, shown, _node(pod), reason)
        elif wanted is not None and not _has_container(pod, wanted):
            names = ", ".join(_container_names(pod))
            outcome[index] = SkippedPod(
                *where,
                wanted,
                _node(pod),
                f"container {_q(wanted)} not found (containers: {names})",
                is_error=True,
            )
        elif wanted is None and not _container_names(pod):
            outcome[index] = SkippedPod(*where, None, _node(pod), "no containers in its spec")
        else:
            candidates.append(index)

    chosen = set(candidates)
    left_out = ""
    if query.one and candidates:
        best = most_active_first([pods[index] for index in candidates])[0]
        chosen = {next(index for index in candidates if pods[index] is best)}
        left_out = "not chosen (--one)"
    elif query.pick is not None:
        size = min(query.pick, len(candidates))
        chosen = set(random.Random(query.seed).sample(candidates, size))
        left_out = f"not in sample (--pick {query.pick})"
    for index in candidates:
        if index not in chosen:
            pod = pods[index]
            outcome[index] = SkippedPod(
                _pod_namespace(pod, namespace),
                _pod_name(pod),
                wanted
                if wanted is not None
                else (None if query.all_containers else _default_container(pod)),
                _node(pod),
                left_out,
            )

    run: list[PodTarget] = []
    for index in sorted(chosen):
        pod = pods[index]
        containers = _container_names(pod)
        if query.all_containers:
            use = containers
        else:
            single = wanted if wanted is not None else _default_container(pod)
            assert single is not None
            use = (single,)
        for container in use:
            run.append(
                PodTarget(
                    namespace=_pod_namespace(pod, namespace),
                    pod=_pod_name(pod),
                    container=container,
                    node=_node(pod),
                    containers=containers,
                    pod_uid=_str(_section(pod, "metadata"), "uid"),
                    restarts=_restart_count(pod, container),
                )
            )
    skipped = tuple(outcome[index] for index in sorted(outcome))
    return Selection(run=tuple(run), skipped=skipped, description=description)


async def resolve(source: PodSource, query: TargetQuery, *, default_namespace: str) -> Selection:
    """Find the pods ``query`` names and decide, per pod, which container to run in or why not.

    Requests: one ``list_pods`` for a selector; one ``get_pod`` per pod name (one
    ``list_pods`` of every namespace with ``-A``); one ``get_workload`` and one ``list_pods``
    per workload (one listing per kind with ``-A``). Extra look-ups happen only on the way to
    an error, to say what to try.

    Raise :class:`SelectionError` for malformed input, unknown names, a container no matched
    pod has, or when nothing matched at all. API failures propagate (``ApiError``).
    """
    namespace = None if query.all_namespaces else (query.namespace or default_namespace)
    _check_query(query, namespace)
    labels = _parse_label_selector(query._label_text())
    fields = _parse_field_selector(query._field_text())
    description = query.describe(default_namespace)

    found: list[dict[str, Any]]
    if query.targets:
        found = await _targeted_pods(source, query.targets, namespace, fields)
    else:
        found = await source.list_pods(
            namespace,
            label_selector=str(labels) if labels else "",
            field_selector=str(fields) if fields else "",
        )
    pods = _ordered(found, namespace)
    if not pods:
        raise await _nothing_matched(source, query, namespace, default_namespace, labels, fields)
    return _select(pods, query, namespace, description)
