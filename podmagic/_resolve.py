"""From a :class:`~podmagic._query.TargetQuery` to the (pod, container) pairs to run in.

:func:`resolve` asks a :class:`PodSource` (the Kubernetes API client, or a fake in tests) for
the pods a query names and returns a :class:`Selection`: one :class:`PodTarget` per exec to
run, and one :class:`SkippedPod` per matched pod that will not run, with the reason.

Rules, as kubectl applies them where kubectl has one:

* A few pod names are fetched one by one (GET); more than :data:`GET_AT_MOST` names in a
  namespace are found with one LIST of it; with ``-A`` every pod is listed once and matched
  by name, so a name may match pods in several namespaces.
* A workload's pods are those its ``spec.selector`` matches *and* it owns (ownerReferences),
  since the selectors of different workloads can overlap. A Deployment owns its pods through a
  ReplicaSet named ``<deployment>-<pod-template-hash>``.
* Pods run when Running, Ready and not being deleted; ``include_unready`` also runs unready
  and terminating Running pods. Pending, completed and failed pods never run: exec cannot.
* ``one`` picks the most active pod the way ``kubectl exec deploy/NAME`` does
  (``sort.Reverse(podutils.ActivePods)``; see :func:`most_active_first`).
* The container is ``-c`` when given, else the only one, else the one the
  ``kubectl.kubernetes.io/default-container`` annotation names, else the first.
* Pods come in namespace, then natural name order (:func:`~podmagic._natsort.natural_key`).

Everything that selects nothing raises :class:`~podmagic.SelectionError` with a one-line
message that says where it looked and what to try.
"""

from __future__ import annotations

import dataclasses
import difflib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cmp_to_key, partial
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar

import anyio

from ._errors import ApiError, SelectionError
from ._kinds import KINDS
from ._natsort import natural_key
from ._podview import ObjectView, PodView, string
from ._query import (
    Target,
    TargetQuery,
    check_query,
    kind_word,
    one_line,
    quoted,
)
from ._selectors import FieldSelector, LabelSelector, SelectorError

__all__ = [
    "GET_AT_MOST",
    "PodSource",
    "PodTarget",
    "Selection",
    "SkippedPod",
    "most_active_first",
    "resolve",
]

#: Named pods of one namespace fetched one GET each up to this many; more take one LIST.
#: A GET costs a round trip per name, a LIST one round trip but the whole namespace in its
#: body: on a cluster with thousands of pods in a namespace, a LIST for one or two names
#: costs far more than their GETs, while a hundred names cost a hundred requests.
GET_AT_MOST: Final = 3

_LIST_LIMIT: Final = 10
_CLOSE_CUTOFF: Final = 0.6


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
    """The pods a run would use, from :meth:`Cluster.select() <podmagic.Cluster.select>`,
    in namespace then natural pod-name order: ``run`` lists the (pod, container) targets,
    ``skipped`` the pods left out with the reason, ``description`` where they were looked
    for. ``Cluster.run(selection=...)`` runs in them without looking again.

    ``untargeted``: made with no target and no label selector (a field selector alone does
    not count), so it is every pod of the namespace(s); ``Cluster.run`` refuses it unless
    told ``all_pods=True``, as it refuses such a call itself.

    ``query``: what was looked for (None when earlier results named the pods), so that a
    re-run can look for it again (``PodResults.rerun(target=True)``).
    """

    run: tuple[PodTarget, ...]
    skipped: tuple[SkippedPod, ...]
    description: str
    untargeted: bool = False
    query: TargetQuery | None = dataclasses.field(default=None, compare=False, repr=False)


# -- words for errors ---------------------------------------------------------------------------


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


# -- kubectl's ranking of pods ------------------------------------------------------------------

_PodT = TypeVar("_PodT", bound=Mapping[str, Any])
_PHASE_RANK: Final = MappingProxyType({"Pending": 0, "Unknown": 1, "Running": 2})


def _after_or_zero(first: datetime | None, second: datetime | None) -> bool:
    # podutils.afterOrZero: a zero (missing) time counts as later than any real one.
    if first is None or second is None:
        return first is None
    return first > second


def _less_active(a: PodView, b: PodView) -> bool:
    """``podutils.ActivePods.Less(a, b)``: whether ``a`` is the less active of the two."""
    node_a, node_b = a.node or "", b.node or ""
    if node_a != node_b and (not node_a or not node_b):
        return not node_a
    # Go reads a missing map key as 0, so any other phase ranks with Pending.
    rank_a, rank_b = _PHASE_RANK.get(a.phase, 0), _PHASE_RANK.get(b.phase, 0)
    if rank_a != rank_b:
        return rank_a < rank_b
    ready_a, ready_b = a.ready, b.ready
    if ready_a != ready_b:
        return not ready_a
    if ready_a and ready_b:
        time_a, time_b = a.ready_since, b.ready_since
        if time_a != time_b:
            return _after_or_zero(time_a, time_b)
    restarts_a, restarts_b = a.max_restarts, b.max_restarts
    if restarts_a != restarts_b:
        return restarts_a > restarts_b
    created_a, created_b = a.created, b.created
    if created_a != created_b:
        return _after_or_zero(created_a, created_b)
    return False


def _activity_cmp(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    view_a, view_b = PodView(a), PodView(b)
    if _less_active(view_b, view_a):
        return -1
    if _less_active(view_a, view_b):
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


# -- requests -----------------------------------------------------------------------------------

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


async def _namespace_missing_error(source: PodSource, namespace: str) -> SelectionError | None:
    """The error for a namespace that does not exist, or ``None`` when it exists (or may)."""
    try:
        if await source.get_namespace(namespace) is not None:
            return None
    except ApiError:
        # Reading namespaces is often forbidden to namespace-scoped users: assume it exists.
        return None
    message = f"namespace {quoted(namespace)} not found"
    try:
        names = sorted({ObjectView(ns).name for ns in await source.list_namespaces()} - {""})
    except ApiError:
        return SelectionError(message, hint="check the name given with -n")
    if not names:
        return SelectionError(f"{message} (there are no namespaces)")
    listing = f"namespaces: {_capped(names)}"
    close = _did_you_mean(namespace, names)
    if close:
        return SelectionError(f"{message} ({listing}; {close})")
    return SelectionError(f"{message} ({listing})", hint="check the name given with -n")


async def _missing_pod_error(
    source: PodSource,
    name: str,
    namespace: str,
    listed: Sequence[Mapping[str, Any]] | None = None,
) -> SelectionError:
    """The error for a pod name not found in ``namespace``; ``listed``: its pods, when they
    were listed already."""
    missing_namespace = await _namespace_missing_error(source, namespace)
    if missing_namespace is not None:
        return missing_namespace
    message = f"pod {quoted(name)} not found in namespace {quoted(namespace)}"
    try:
        if listed is None:
            listed = await source.list_pods(namespace)
        names = [PodView(pod).name for pod in listed]
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


async def _list_workloads(
    source: PodSource, kind: str, namespace: str | None
) -> list[Mapping[str, Any]]:
    plural = KINDS[kind].plural
    where = "in all namespaces" if namespace is None else f"in namespace {namespace}"
    answer = await source.get_json(KINDS[kind].path(namespace), what=f"list {plural} {where}")
    items = answer.get("items")
    return [item for item in items if isinstance(item, Mapping)] if isinstance(items, list) else []


async def _missing_workload_error(
    source: PodSource, target: Target, namespace: str
) -> SelectionError:
    missing_namespace = await _namespace_missing_error(source, namespace)
    if missing_namespace is not None:
        return missing_namespace
    message = (
        f"{kind_word(target.kind)} {quoted(target.name)} not found in namespace {quoted(namespace)}"
    )
    plural = KINDS[target.kind].plural
    try:
        names = [
            ObjectView(item).name for item in await _list_workloads(source, target.kind, namespace)
        ]
    except ApiError:
        return SelectionError(message, hint="check the name, or look in every namespace with -A")
    return SelectionError(
        message,
        hint=_did_you_mean(target.name, names)
        or f"list them with kubectl get {plural} -n {namespace}, or look in every namespace "
        "with -A",
    )


def _owned_by(pod: Mapping[str, Any], kind: str, workload: Mapping[str, Any]) -> bool:
    """Whether ``workload`` owns ``pod``: selectors alone can overlap between workloads."""
    owner_view, pod_view = ObjectView(workload), PodView(pod)
    name = owner_view.name
    references = pod_view.owner_references
    if kind == "Deployment":
        template_hash = string(pod_view.labels, "pod-template-hash")
        for reference in references:
            if reference.get("kind") != "ReplicaSet":
                continue
            owner = string(reference, "name")
            if template_hash:
                if owner == f"{name}-{template_hash}":
                    return True
            else:
                suffix = owner[len(name) + 1 :] if owner.startswith(name + "-") else ""
                if suffix and "-" not in suffix:
                    return True
        return False
    uid = owner_view.uid
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
    namespace = ObjectView(workload).namespace or fallback_namespace or ""
    try:
        selector = LabelSelector.from_spec(ObjectView(workload).selector)
    except SelectorError as exc:
        raise SelectionError(
            f"{target} in namespace {namespace} has an invalid selector: {one_line(str(exc))}",
            hint=f"check it with kubectl get {target} -n {namespace} -o yaml",
        ) from None
    pods = await source.list_pods(
        namespace, label_selector=str(selector), field_selector=str(fields) if fields else ""
    )
    return [pod for pod in pods if _owned_by(pod, target.kind, workload)]


async def _pods_by_name(
    source: PodSource, namespace: str, names: Sequence[str]
) -> list[dict[str, Any]]:
    """The pods ``names`` name in ``namespace``, in that order; the first missing one raises
    the same error, in the same words, however the pods were fetched."""
    if len(names) > GET_AT_MOST:
        # Not filtered by the server: a pod the field selector excludes still exists, and
        # must not be reported as not found.
        try:
            listed = await source.list_pods(namespace)
        except ApiError as exc:
            # RBAC may grant get but not list: then fetch them one by one, as for a few.
            if exc.status != 403:
                raise
        else:
            by_name = {PodView(pod).name: pod for pod in listed}
            for name in names:
                if name not in by_name:
                    raise await _missing_pod_error(source, name, namespace, listed)
            return [by_name[name] for name in names]
    answers = await _gather([partial(source.get_pod, namespace, name) for name in names])
    found = []
    for name, answer in zip(names, answers):
        if answer is None:
            raise await _missing_pod_error(source, name, namespace)
        found.append(answer)
    return found


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
            by_name.setdefault(PodView(pod).name, []).append(pod)
        for name in names:
            if name not in by_name:
                raise SelectionError(
                    f"pod {quoted(name)} not found in any namespace",
                    hint=_did_you_mean(name, by_name) or "check the name with kubectl get pods -A",
                )
        found = [pod for name in names for pod in by_name[name]]
    else:
        found = await _pods_by_name(source, namespace, names)
    return [pod for pod in found if fields is None or fields.matches_pod(pod)]


async def _targeted_pods(
    source: PodSource,
    targets: Sequence[Target],
    namespace: str | None,
    fields: FieldSelector | None,
) -> list[dict[str, Any]]:
    unique = list(dict.fromkeys(targets))
    names = [t.name for t in unique if t.is_pod]
    workloads = [t for t in unique if not t.is_pod]
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
            matches = [i for i in items if ObjectView(i).name == target.name]
            if not matches:
                names_there = [ObjectView(i).name for i in items]
                raise SelectionError(
                    f"{kind_word(target.kind)} {quoted(target.name)} not found in any namespace",
                    hint=_did_you_mean(target.name, names_there)
                    or f"check the name with kubectl get {KINDS[target.kind].plural} -A",
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


def _namespace_of(pod: PodView, fallback: str | None) -> str:
    return pod.namespace or fallback or ""


def _ordered(pods: Iterable[dict[str, Any]], namespace: str | None) -> list[dict[str, Any]]:
    """De-duplicated by namespace and name; namespace, then natural name order."""
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for pod in pods:
        view = PodView(pod)
        unique.setdefault((_namespace_of(view, namespace), view.name), pod)
    return [unique[key] for key in sorted(unique, key=lambda k: (k[0], natural_key(k[1])))]


async def _nothing_matched(
    source: PodSource,
    query: TargetQuery,
    namespace: str | None,
    default_namespace: str,
    labels: LabelSelector | None,
    fields: FieldSelector | None,
) -> SelectionError:
    subject = query.subject()
    if query.targets:
        message = f"no pods match {subject} {query.where(default_namespace, error=True)}"
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
    # The kubectl line looks where the query looked: -n NAMESPACE, or -A.
    scope = "-A" if namespace is None else f"-n {namespace}"
    if label_text:
        check = f"check the labels with kubectl get pods {scope} --show-labels"
    elif field_text:
        check = f"check the fields with kubectl get pods {scope} -o wide"
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
    others = sum(1 for pod in elsewhere if PodView(pod).namespace != namespace)
    if others == 0:
        return error(f"{where}, nor in any other namespace", check)
    counted = "1 pod in another namespace" if others == 1 else f"{others} pods in other namespaces"
    if subject:
        return SelectionError(f"no pods match {subject} {where} ({counted}; try -A)")
    return SelectionError(f"no pods {where} ({counted}; try -A)")


# -- choosing pods and containers ---------------------------------------------------------------


def _ineligible(pod: PodView, include_unready: bool) -> str | None:
    """Why the pod cannot run, or ``None`` when it can."""
    phase = pod.phase
    if phase == "Succeeded":
        return "completed (Succeeded)"
    if phase == "Failed":
        return "failed (Failed)"
    if phase != "Running":
        return phase or "Unknown"
    if include_unready:
        return None
    if pod.deleting:
        return "terminating"
    if not pod.ready:
        return "not ready"
    return None


def _select(
    pods: list[dict[str, Any]], query: TargetQuery, namespace: str | None, description: str
) -> Selection:
    views = [PodView(pod) for pod in pods]
    wanted = query.container
    if wanted is not None and not any(view.has_container(wanted) for view in views):
        seen = list(dict.fromkeys(name for view in views for name in view.container_names()))
        raise SelectionError(
            f"container {quoted(wanted)} not found in any matched pod (containers: {_capped(seen)})"
        )

    def shown_container(view: PodView) -> str | None:
        if wanted is not None:
            return wanted
        return None if query.all_containers else view.default_container

    outcome: dict[int, SkippedPod] = {}
    candidates: list[int] = []
    for index, view in enumerate(views):
        where = (_namespace_of(view, namespace), view.name)
        reason = _ineligible(view, query.include_unready)
        if reason is not None:
            outcome[index] = SkippedPod(*where, shown_container(view), view.node, reason)
        elif wanted is not None and not view.has_container(wanted):
            names = ", ".join(view.container_names())
            outcome[index] = SkippedPod(
                *where,
                wanted,
                view.node,
                f"container {quoted(wanted)} not found (containers: {names})",
                is_error=True,
            )
        elif wanted is None and not view.container_names():
            outcome[index] = SkippedPod(*where, None, view.node, "no containers in its spec")
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
            view = views[index]
            outcome[index] = SkippedPod(
                _namespace_of(view, namespace),
                view.name,
                shown_container(view),
                view.node,
                left_out,
            )

    run: list[PodTarget] = []
    for index in sorted(chosen):
        view = views[index]
        containers = view.container_names()
        if query.all_containers:
            use = containers
        else:
            single = wanted if wanted is not None else view.default_container
            assert single is not None
            use = (single,)
        for container in use:
            run.append(
                PodTarget(
                    namespace=_namespace_of(view, namespace),
                    pod=view.name,
                    container=container,
                    node=view.node,
                    containers=containers,
                    pod_uid=view.uid,
                    restarts=view.restart_count(container),
                )
            )
    skipped = tuple(outcome[index] for index in sorted(outcome))
    return Selection(run=tuple(run), skipped=skipped, description=description)


async def resolve(source: PodSource, query: TargetQuery, *, default_namespace: str) -> Selection:
    """Find the pods ``query`` names and decide, per pod, which container to run in or why not.

    Requests: one ``list_pods`` for a selector; one ``get_pod`` per pod name up to
    :data:`GET_AT_MOST` names, one ``list_pods`` of the namespace for more (one
    ``list_pods`` of every namespace with ``-A``); one ``get_workload`` and one ``list_pods``
    per workload (one listing per kind with ``-A``). Extra look-ups happen only on the way to
    an error, to say what to try.

    Raise :class:`SelectionError` for malformed input, unknown names, a container no matched
    pod has, or when nothing matched at all. API failures propagate (``ApiError``).
    """
    namespace = None if query.all_namespaces else (query.namespace or default_namespace)
    check_query(query, namespace)
    labels, fields = query.selectors()
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
    return dataclasses.replace(_select(pods, query, namespace, description), query=query)
