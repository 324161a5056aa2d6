"""Target resolution: names, selectors and workloads to (pod, container) pairs and skips.

Every test runs against ``FakeSource``, an in-memory stand-in for the API client that holds
API-shaped objects, filters with the real selector code and records each call, so the tests
can also check that resolution sends no needless requests.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from typing import Any

import pytest

from podmagic._errors import ApiError, SelectionError
from podmagic._kinds import ALIASES
from podmagic._natsort import natural_key
from podmagic._query import Target, TargetQuery
from podmagic._resolve import (
    PodSource,
    PodTarget,
    Selection,
    SkippedPod,
    most_active_first,
    resolve,
)
from podmagic._selectors import FieldSelector, LabelSelector

pytestmark = pytest.mark.anyio

Obj = dict[str, Any]

T0 = "2024-05-01T10:00:00Z"


# -- API-shaped objects --------------------------------------------------------------------------


def make_pod(
    name: str,
    namespace: str = "demo",
    *,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    ready: bool | None = None,
    node: str | None = "node-1",
    containers: Iterable[str] = ("app",),
    annotations: dict[str, str] | None = None,
    owner: tuple[str, str, str] | None = None,
    deleting: bool = False,
    created: str | None = T0,
    ready_since: str | None = "2024-05-01T10:01:00Z",
    restarts: dict[str, int] | None = None,
) -> Obj:
    """A Pod as the API returns it; ``owner`` is (kind, name, uid)."""
    names = list(containers)
    if ready is None:
        ready = phase == "Running"
    metadata: Obj = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-pod-{namespace}-{name}",
        "labels": dict(labels or {}),
    }
    if created is not None:
        metadata["creationTimestamp"] = created
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owner:
        kind, owner_name, uid = owner
        api_version = "batch/v1" if kind == "Job" else "apps/v1"
        metadata["ownerReferences"] = [
            {
                "apiVersion": api_version,
                "kind": kind,
                "name": owner_name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    if deleting:
        metadata["deletionTimestamp"] = "2024-05-01T12:00:00Z"
        metadata["deletionGracePeriodSeconds"] = 30
    spec: Obj = {"containers": [{"name": c, "image": f"example/{c}:1"} for c in names]}
    if node:
        spec["nodeName"] = node
    ready_condition: Obj = {"type": "Ready", "status": "True" if ready else "False"}
    if ready and ready_since is not None:
        ready_condition["lastTransitionTime"] = ready_since
    conditions: list[Obj] = [{"type": "PodScheduled", "status": "True" if node else "False"}]
    if node:
        conditions += [
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready_condition["status"]},
            ready_condition,
        ]
    status: Obj = {"phase": phase, "conditions": conditions}
    if node and phase != "Pending":
        status["containerStatuses"] = [
            {
                "name": c,
                "ready": ready,
                "restartCount": (restarts or {}).get(c, 0),
                "image": f"example/{c}:1",
            }
            for c in names
        ]
    return {"kind": "Pod", "apiVersion": "v1", "metadata": metadata, "spec": spec, "status": status}


def make_workload(
    kind: str,
    name: str,
    namespace: str = "demo",
    *,
    match_labels: dict[str, str],
    owner: tuple[str, str, str] | None = None,
    replicas: int = 1,
) -> Obj:
    metadata: Obj = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{kind}-{name}",
        "creationTimestamp": T0,
    }
    if owner:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": owner[0],
                "name": owner[1],
                "uid": owner[2],
                "controller": True,
            }
        ]
    return {
        "kind": kind,
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(match_labels)},
            "template": {"metadata": {"labels": dict(match_labels)}},
        },
    }


WEB_RS = ("ReplicaSet", "web-5d8f7", "uid-ReplicaSet-web-5d8f7")
WEB_OLD_RS = ("ReplicaSet", "web-7c9b2", "uid-ReplicaSet-web-7c9b2")
CANARY_RS = ("ReplicaSet", "web-canary-6b7c8", "uid-ReplicaSet-web-canary-6b7c8")
DB = ("StatefulSet", "db", "uid-StatefulSet-db")
AGENT = ("DaemonSet", "node-agent", "uid-DaemonSet-node-agent")
MIGRATE = ("Job", "migrate", "uid-Job-migrate")
MESH = {"kubectl.kubernetes.io/default-container": "app"}


def web_pod(name: str, template_hash: str = "5d8f7", **kwargs: Any) -> Obj:
    owner = WEB_RS if template_hash == "5d8f7" else WEB_OLD_RS
    return make_pod(
        name,
        labels={"app": "web", "pod-template-hash": template_hash},
        owner=owner,
        containers=("app", "istio-proxy"),
        annotations=MESH,
        **kwargs,
    )


def cluster_pods() -> list[Obj]:
    """demo: Deployment web (two ReplicaSets), web-canary, StatefulSet db, Job migrate, a
    stray pod labelled app=web; prod: a DaemonSet and standalone pods; staging: empty."""
    return [
        # Listed out of order on purpose: resolution sorts.
        web_pod(
            "web-5d8f7-x2k9p",
            node="node-2",
            ready_since="2024-05-01T10:05:00Z",
            restarts={"app": 2},
        ),
        web_pod("web-5d8f7-a1b2c", ready_since="2024-05-01T10:02:00Z"),
        web_pod("web-5d8f7-pend1", phase="Pending", node=None),
        web_pod("web-5d8f7-unrdy", ready=False),
        web_pod("web-5d8f7-gone1", deleting=True),
        web_pod("web-7c9b2-old01", template_hash="7c9b2", ready_since="2024-05-01T10:03:00Z"),
        make_pod(
            "web-canary-6b7c8-c4n4r",
            labels={"app": "web", "track": "canary", "pod-template-hash": "6b7c8"},
            owner=CANARY_RS,
        ),
        make_pod("debug", labels={"app": "web", "run": "debug"}, containers=("shell",)),
        *[
            make_pod(
                f"db-{i}",
                labels={"app": "db"},
                owner=DB,
                containers=("metrics", "postgres"),
                annotations={
                    "kubectl.kubernetes.io/default-container": "pg" if i == 2 else "postgres"
                },
                restarts={"postgres": i},
            )
            for i in (2, 0, 1)
        ],
        make_pod("migrate-8kq2z", labels={"job-name": "migrate"}, owner=MIGRATE, phase="Succeeded"),
        make_pod("migrate-v9c1d", labels={"job-name": "migrate"}, owner=MIGRATE, phase="Failed"),
        *[
            make_pod(
                f"agent-{i}",
                "prod",
                labels={"app": "agent"},
                owner=AGENT,
                node=f"node-{i}",
                containers=("agent", "exporter"),
            )
            for i in (10, 2, 1)
        ],
        make_pod("web-2", "prod", labels={"app": "web"}, node="node-2"),
        make_pod("web-1", "prod", labels={"app": "web"}, node="node-1"),
        make_pod("debug", "prod", labels={"run": "debug"}, containers=("shell",)),
    ]


def cluster_workloads() -> list[Obj]:
    return [
        make_workload("Deployment", "web", match_labels={"app": "web"}, replicas=5),
        make_workload(
            "ReplicaSet",
            "web-5d8f7",
            match_labels={"app": "web", "pod-template-hash": "5d8f7"},
            owner=("Deployment", "web", "uid-Deployment-web"),
        ),
        make_workload(
            "ReplicaSet",
            "web-7c9b2",
            match_labels={"app": "web", "pod-template-hash": "7c9b2"},
            owner=("Deployment", "web", "uid-Deployment-web"),
        ),
        make_workload("Deployment", "web-canary", match_labels={"app": "web", "track": "canary"}),
        make_workload(
            "ReplicaSet",
            "web-canary-6b7c8",
            match_labels={"app": "web", "track": "canary", "pod-template-hash": "6b7c8"},
            owner=("Deployment", "web-canary", "uid-Deployment-web-canary"),
        ),
        make_workload("Deployment", "empty", match_labels={"app": "empty"}, replicas=0),
        make_workload("StatefulSet", "db", match_labels={"app": "db"}, replicas=3),
        make_workload("Job", "migrate", match_labels={"job-name": "migrate"}),
        make_workload("DaemonSet", "node-agent", "prod", match_labels={"app": "agent"}),
    ]


PLURALS = {
    "deployments": "Deployment",
    "statefulsets": "StatefulSet",
    "daemonsets": "DaemonSet",
    "replicasets": "ReplicaSet",
    "jobs": "Job",
}


class FakeSource:
    """An in-memory PodSource. ``calls`` records (method, arguments...) in order;
    ``forbidden`` names methods that answer 403 like an RBAC denial."""

    def __init__(
        self,
        pods: list[Obj] | None = None,
        workloads: list[Obj] | None = None,
        namespaces: Iterable[str] = ("default", "demo", "prod", "staging"),
        forbidden: Iterable[str] = (),
    ) -> None:
        self.pods = cluster_pods() if pods is None else pods
        self.workloads = cluster_workloads() if workloads is None else workloads
        self.namespaces = list(namespaces)
        self.forbidden = set(forbidden)
        self.calls: list[tuple[Any, ...]] = []

    def _record(self, method: str, *args: Any) -> None:
        self.calls.append((method, *args))
        if method in self.forbidden:
            raise ApiError(403, f"{method} is forbidden", reason="Forbidden", what=method)

    @property
    def methods(self) -> list[str]:
        return [call[0] for call in self.calls]

    async def list_pods(
        self, namespace: str | None, *, label_selector: str = "", field_selector: str = ""
    ) -> list[Obj]:
        self._record("list_pods", namespace, label_selector, field_selector)
        labels = LabelSelector.parse(label_selector)
        fields = FieldSelector.parse(field_selector)
        return [
            copy.deepcopy(pod)
            for pod in self.pods
            if namespace in (None, pod["metadata"]["namespace"])
            and labels.matches(pod["metadata"].get("labels"))
            and fields.matches_pod(pod)
        ]

    async def get_pod(self, namespace: str, name: str) -> Obj | None:
        self._record("get_pod", namespace, name)
        for pod in self.pods:
            if (pod["metadata"]["namespace"], pod["metadata"]["name"]) == (namespace, name):
                return copy.deepcopy(pod)
        return None

    async def get_namespace(self, name: str) -> Obj | None:
        self._record("get_namespace", name)
        if name in self.namespaces:
            return {"kind": "Namespace", "metadata": {"name": name}}
        return None

    async def get_workload(self, kind: str, namespace: str, name: str) -> Obj | None:
        self._record("get_workload", kind, namespace, name)
        for workload in self.workloads:
            meta = workload["metadata"]
            if (workload["kind"], meta["namespace"], meta["name"]) == (kind, namespace, name):
                return copy.deepcopy(workload)
        return None

    async def list_namespaces(self) -> list[Obj]:
        self._record("list_namespaces")
        return [{"kind": "Namespace", "metadata": {"name": n}} for n in self.namespaces]

    async def get_json(self, path: str, params: dict[str, str] | None = None, *, what: str) -> Obj:
        self._record("get_json", path, what)
        parts = path.strip("/").split("/")
        # /apis/GROUP/VERSION/[namespaces/NS/]PLURAL
        assert parts[0] == "apis" and parts[1] in ("apps", "batch") and parts[2] == "v1", path
        namespace = parts[4] if len(parts) == 6 else None
        kind = PLURALS[parts[-1]]
        items = [
            copy.deepcopy(w)
            for w in self.workloads
            if w["kind"] == kind and namespace in (None, w["metadata"]["namespace"])
        ]
        return {"kind": f"{kind}List", "apiVersion": "v1", "metadata": {}, "items": items}


def _typed(source: FakeSource) -> PodSource:
    # Checked by mypy: the fake satisfies the protocol resolve() depends on.
    return source


async def run(
    query: TargetQuery, source: FakeSource | None = None, default_namespace: str = "demo"
) -> Selection:
    return await resolve(source or FakeSource(), query, default_namespace=default_namespace)


async def fails(
    query: TargetQuery, source: FakeSource | None = None, default_namespace: str = "demo"
) -> str:
    """The message of the SelectionError that resolving ``query`` raises (one line)."""
    with pytest.raises(SelectionError) as caught:
        await run(query, source, default_namespace)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def ran(selection: Selection) -> list[tuple[str, str, str]]:
    return [(t.namespace, t.pod, t.container) for t in selection.run]


def skips(selection: Selection) -> list[tuple[str, str]]:
    return [(s.pod, s.reason) for s in selection.skipped]


def deploy(*names: str) -> tuple[Target, ...]:
    return tuple(Target("Deployment", n) for n in names)


def pods(*names: str) -> tuple[Target, ...]:
    return tuple(Target("Pod", n) for n in names)


# -- Target.parse ---------------------------------------------------------------------------------

EXPECTED_ALIASES = {
    "pod": "Pod",
    "po": "Pod",
    "pods": "Pod",
    "deploy": "Deployment",
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deployment.apps": "Deployment",
    "deployments.apps": "Deployment",
    "sts": "StatefulSet",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "statefulset.apps": "StatefulSet",
    "statefulsets.apps": "StatefulSet",
    "ds": "DaemonSet",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "daemonset.apps": "DaemonSet",
    "daemonsets.apps": "DaemonSet",
    "rs": "ReplicaSet",
    "replicaset": "ReplicaSet",
    "replicasets": "ReplicaSet",
    "replicaset.apps": "ReplicaSet",
    "replicasets.apps": "ReplicaSet",
    "job": "Job",
    "jobs": "Job",
    "job.batch": "Job",
    "jobs.batch": "Job",
}


def test_aliases_are_exactly_the_documented_ones() -> None:
    assert dict(ALIASES) == EXPECTED_ALIASES


@pytest.mark.parametrize(("prefix", "kind"), sorted(EXPECTED_ALIASES.items()))
def test_parse_every_alias(prefix: str, kind: str) -> None:
    assert Target.parse(f"{prefix}/web-1") == Target(kind, "web-1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web-1", Target("Pod", "web-1")),
        ("  web-1 ", Target("Pod", "web-1")),
        ("web.v2", Target("Pod", "web.v2")),
        ("Deployment/web", Target("Deployment", "web")),
        ("STS/db", Target("StatefulSet", "db")),
        ("Deployments.Apps/web", Target("Deployment", "web")),
    ],
)
def test_parse(text: str, expected: Target) -> None:
    assert Target.parse(text) == expected


def test_str_uses_the_short_prefix() -> None:
    assert [
        str(Target.parse(t))
        for t in (
            "web-1",
            "deployment.apps/web",
            "statefulsets/db",
            "daemonset/a",
            "replicasets.apps/b",
            "jobs.batch/c",
        )
    ] == ["pod/web-1", "deploy/web", "sts/db", "ds/a", "rs/b", "job/c"]


NAME_RULE = (
    "names are lowercase letters, digits, '-' and '.', and start and end with a letter or digit"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "svc/web",
            (
                'unknown kind "svc" in "svc/web"; use one of pod/, deploy/, sts/, ds/, rs/, '
                "job/ (long forms such as deployment/ and deployments.apps/ work too)"
            ),
        ),
        (
            "deployment.extensions/web",
            (
                'unknown kind "deployment.extensions" in "deployment.extensions/web"; use one of pod/, '
                "deploy/, sts/, ds/, rs/, job/ (long forms such as deployment/ and deployments.apps/ "
                "work too)"
            ),
        ),
        ("Web_1", f'invalid pod name "Web_1": {NAME_RULE}'),
        ("deploy/Web", f'invalid deployment name "Web": {NAME_RULE}'),
        ("web-", f'invalid pod name "web-": {NAME_RULE}'),
        (
            "app=web",
            (f'invalid pod name "app=web": {NAME_RULE}; for a label selector use -l app=web'),
        ),
        ("deploy/", 'no name after "deploy/"; e.g. deploy/web'),
        ("", "empty target; give a pod name, KIND/NAME such as deploy/web, or -l"),
        ("  ", "empty target; give a pod name, KIND/NAME such as deploy/web, or -l"),
        ("a" * 254, 'invalid pod name "' + "a" * 60 + '…": longer than 253 characters'),
        ("pod/web\n1", f'invalid pod name "web\\n1": {NAME_RULE}'),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SelectionError) as caught:
        Target.parse(text)
    assert str(caught.value) == message


def test_longest_name_is_accepted() -> None:
    assert Target.parse("a" * 253).name == "a" * 253


def test_unknown_kind_in_constructor() -> None:
    with pytest.raises(SelectionError, match='unknown target kind "Service"'):
        Target("Service", "web")


# -- TargetQuery.describe / selects_everything -----------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (TargetQuery(label_selector="app=web", namespace="prod"), "app=web in namespace prod"),
        (TargetQuery(targets=deploy("web")), "deploy/web in namespace demo"),
        (
            TargetQuery(targets=pods("web-1", "web-2"), all_namespaces=True),
            "pods web-1, web-2 in all namespaces",
        ),
        (TargetQuery(targets=pods("web-1")), "pod web-1 in namespace demo"),
        (
            TargetQuery(targets=(Target("StatefulSet", "db"), *pods("a", "b", "a"))),
            "pods a, b, sts/db in namespace demo",
        ),
        (
            TargetQuery(label_selector=" app=web ", field_selector="status.phase=Running"),
            "app=web with status.phase=Running in namespace demo",
        ),
        (
            TargetQuery(field_selector="spec.nodeName=node-1"),
            "spec.nodeName=node-1 in namespace demo",
        ),
        (TargetQuery(), "all pods in namespace demo"),
        (TargetQuery(label_selector=""), "all pods in namespace demo"),
        (TargetQuery(all_namespaces=True, namespace="prod"), "all pods in all namespaces"),
    ],
)
def test_describe(query: TargetQuery, expected: str) -> None:
    assert query.describe("demo") == expected


@pytest.mark.parametrize(
    ("query", "everything"),
    [
        (TargetQuery(), True),
        (TargetQuery(label_selector=""), True),
        (TargetQuery(label_selector="  ", field_selector=""), True),
        (TargetQuery(all_namespaces=True), True),
        (TargetQuery(namespace="prod", one=True), True),
        (TargetQuery(label_selector="app=web"), False),
        (TargetQuery(field_selector="spec.nodeName=node-1"), False),
        (TargetQuery(targets=pods("web-1")), False),
        (TargetQuery(targets=deploy("web")), False),
    ],
)
def test_selects_everything(query: TargetQuery, everything: bool) -> None:
    assert query.selects_everything is everything


# -- label selectors ------------------------------------------------------------------------------


async def test_label_selector_is_one_list_call() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(label_selector="app=web"), source)
    assert source.calls == [("list_pods", "demo", "app=web", "")]
    assert selection.description == "app=web in namespace demo"
    assert ran(selection) == [
        ("demo", "debug", "shell"),
        ("demo", "web-5d8f7-a1b2c", "app"),
        ("demo", "web-5d8f7-x2k9p", "app"),
        ("demo", "web-7c9b2-old01", "app"),
        ("demo", "web-canary-6b7c8-c4n4r", "app"),
    ]
    assert skips(selection) == [
        ("web-5d8f7-gone1", "terminating"),
        ("web-5d8f7-pend1", "Pending"),
        ("web-5d8f7-unrdy", "not ready"),
    ]


async def test_selector_sent_in_canonical_form_with_the_field_selector() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(
            label_selector="tier notin (x), app in (web,db)",
            field_selector="spec.nodeName==node-2",
            namespace="demo",
        ),
        source,
    )
    assert source.calls == [
        ("list_pods", "demo", "app in (db,web),tier notin (x)", "spec.nodeName=node-2")
    ]
    assert ran(selection) == [("demo", "web-5d8f7-x2k9p", "app")]


async def test_default_and_explicit_namespace() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(label_selector="app=web"), source, default_namespace="prod")
    assert [t.pod for t in selection.run] == ["web-1", "web-2"]
    source = FakeSource()
    await run(TargetQuery(label_selector="app=web", namespace="prod"), source)
    assert source.calls == [("list_pods", "prod", "app=web", "")]


async def test_all_namespaces_sorted_by_namespace_then_natural_name() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(label_selector="app in (web,agent)", namespace="demo", all_namespaces=True),
        source,
    )
    assert source.calls == [("list_pods", None, "app in (agent,web)", "")]
    assert [(t.namespace, t.pod) for t in selection.run] == [
        ("demo", "debug"),
        ("demo", "web-5d8f7-a1b2c"),
        ("demo", "web-5d8f7-x2k9p"),
        ("demo", "web-7c9b2-old01"),
        ("demo", "web-canary-6b7c8-c4n4r"),
        ("prod", "agent-1"),
        ("prod", "agent-2"),
        ("prod", "agent-10"),
        ("prod", "web-1"),
        ("prod", "web-2"),
    ]
    assert selection.description == "app in (web,agent) in all namespaces"


async def test_no_selector_lists_every_pod_of_the_namespace() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(namespace="prod"), source)
    assert source.calls == [("list_pods", "prod", "", "")]
    assert [t.pod for t in selection.run] == [
        "agent-1",
        "agent-2",
        "agent-10",
        "debug",
        "web-1",
        "web-2",
    ]
    assert selection.description == "all pods in namespace prod"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            "app in (a",
            (
                'invalid label selector "app in (a": unable to parse requirement: found '
                "'', expected: ',' or ')'; e.g. -l 'app=web,tier in (a,b)'"
            ),
        ),
        (
            "app web",
            (
                'invalid label selector "app web": unable to parse requirement: found '
                "'web', expected: in, notin, =, ==, !=, gt, lt; "
                "e.g. -l 'app=web,tier in (a,b)'"
            ),
        ),
        (
            "app=(x)",
            (
                'invalid label selector "app=(x)": unable to parse requirement: found '
                "'(', expected: identifier; e.g. -l 'app=web,tier in (a,b)'"
            ),
        ),
    ],
)
async def test_invalid_label_selector(selector: str, message: str) -> None:
    source = FakeSource()
    assert await fails(TargetQuery(label_selector=selector), source) == message
    assert source.calls == []


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            "spec.nodename=a",
            (
                'invalid field selector "spec.nodename=a": field label not '
                "supported: spec.nodename; e.g. --field-selector "
                "spec.nodeName=node-1,status.phase=Running"
            ),
        ),
        (
            "status.phase",
            (
                'invalid field selector "status.phase": invalid selector: '
                "'status.phase'; can't understand 'status.phase'; e.g. "
                "--field-selector spec.nodeName=node-1,status.phase=Running"
            ),
        ),
    ],
)
async def test_invalid_field_selector(selector: str, message: str) -> None:
    source = FakeSource()
    assert (
        await fails(TargetQuery(targets=pods("web-1"), field_selector=selector), source) == message
    )
    assert source.calls == []


# -- nothing matched ------------------------------------------------------------------------------


async def test_zero_match_counts_other_namespaces() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(label_selector="app=web", namespace="staging"), source)
    assert (
        message == "no pods match app=web in namespace staging (10 pods in other namespaces; "
        "try -A)"
    )
    assert source.calls == [
        ("list_pods", "staging", "app=web", ""),
        ("get_namespace", "staging"),
        ("list_pods", None, "app=web", ""),
    ]


async def test_zero_match_one_pod_elsewhere() -> None:
    message = await fails(TargetQuery(label_selector="track=canary", namespace="prod"))
    assert (
        message == "no pods match track=canary in namespace prod (1 pod in another "
        "namespace; try -A)"
    )


async def test_zero_match_with_field_selector_counts_with_both() -> None:
    source = FakeSource()
    message = await fails(
        TargetQuery(
            label_selector="app=web", field_selector="spec.nodeName=node-2", namespace="staging"
        ),
        source,
    )
    assert (
        message == "no pods match app=web with spec.nodeName=node-2 in namespace staging "
        "(2 pods in other namespaces; try -A)"
    )
    assert source.calls[-1] == ("list_pods", None, "app=web", "spec.nodeName=node-2")


async def test_zero_match_nowhere() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(label_selector="app=nothing"), source)
    assert (
        message == "no pods match app=nothing in namespace demo, nor in any other "
        "namespace; check the labels with kubectl get pods -n demo --show-labels"
    )
    assert len(source.calls) == 3


async def test_zero_match_all_namespaces_needs_no_extra_call() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(label_selector="app=nothing", all_namespaces=True), source)
    assert (
        message == "no pods match app=nothing in any namespace; check the labels with "
        "kubectl get pods -A --show-labels"
    )
    assert source.calls == [("list_pods", None, "app=nothing", "")]


async def test_zero_match_field_selector_only() -> None:
    message = await fails(TargetQuery(field_selector="spec.nodeName=node-9"))
    assert (
        message == "no pods match spec.nodeName=node-9 in namespace demo, nor in any other "
        "namespace; check the fields with kubectl get pods -n demo -o wide"
    )


async def test_zero_match_empty_namespace_without_selector() -> None:
    assert (
        await fails(TargetQuery(namespace="staging"))
        == "no pods in namespace staging (19 pods in other namespaces; try -A)"
    )
    assert (
        await fails(TargetQuery(), FakeSource(pods=[]))
        == "no pods in namespace demo, nor in any other namespace; check the context "
        "(--context)"
    )


async def test_zero_match_in_a_namespace_that_does_not_exist() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(label_selector="app=web", namespace="dmeo"), source)
    assert (
        message == 'namespace "dmeo" not found (namespaces: default, demo, prod, staging; '
        "did you mean demo?)"
    )
    assert source.methods == ["list_pods", "get_namespace", "list_namespaces"]


async def test_zero_match_when_listing_everywhere_is_forbidden() -> None:
    source = FakeSource()
    source.forbidden = {"get_namespace"}
    original = source.list_pods

    async def list_pods(namespace: str | None, **kwargs: Any) -> list[Obj]:
        if namespace is None:
            source.calls.append(("list_pods", None))
            raise ApiError(403, "pods is forbidden", reason="Forbidden", what="list pods")
        return await original(namespace, **kwargs)

    source.list_pods = list_pods  # type: ignore[method-assign]
    message = await fails(TargetQuery(label_selector="app=web", namespace="staging"), source)
    assert (
        message == "no pods match app=web in namespace staging; check the labels with "
        "kubectl get pods -n staging --show-labels, or try -A"
    )


async def test_other_api_errors_propagate() -> None:
    source = FakeSource(forbidden={"list_pods"})
    with pytest.raises(ApiError):
        await run(TargetQuery(label_selector="app=web"), source)


# -- pod names ------------------------------------------------------------------------------------


async def test_pod_names_one_get_each() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(targets=pods("web-2", "web-1", "web-2"), namespace="prod"), source
    )
    assert sorted(source.calls) == [("get_pod", "prod", "web-1"), ("get_pod", "prod", "web-2")]
    assert ran(selection) == [("prod", "web-1", "app"), ("prod", "web-2", "app")]
    assert selection.skipped == ()
    assert selection.description == "pods web-2, web-1 in namespace prod"


async def test_pod_target_fields() -> None:
    selection = await run(TargetQuery(targets=pods("web-5d8f7-x2k9p")))
    assert selection.run == (
        PodTarget(
            namespace="demo",
            pod="web-5d8f7-x2k9p",
            container="app",
            node="node-2",
            containers=("app", "istio-proxy"),
            pod_uid="uid-pod-demo-web-5d8f7-x2k9p",
            restarts=2,
        ),
    )


async def test_named_pod_not_ready_is_skipped_not_an_error() -> None:
    selection = await run(TargetQuery(targets=pods("web-5d8f7-unrdy", "web-5d8f7-pend1")))
    assert selection.run == ()
    assert selection.skipped == (
        SkippedPod("demo", "web-5d8f7-pend1", "app", None, "Pending"),
        SkippedPod("demo", "web-5d8f7-unrdy", "app", "node-1", "not ready"),
    )


async def test_missing_pod_suggests_near_names() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(targets=pods("web-9"), namespace="prod"), source)
    assert message == 'pod "web-9" not found in namespace "prod"; did you mean web-1 or web-2?'
    assert source.calls == [
        ("get_pod", "prod", "web-9"),
        ("get_namespace", "prod"),
        ("list_pods", "prod", "", ""),
    ]


async def test_missing_pod_single_suggestion() -> None:
    message = await fails(TargetQuery(targets=pods("db-9")))
    assert message == 'pod "db-9" not found in namespace "demo"; did you mean db-0, db-1 or db-2?'
    message = await fails(TargetQuery(targets=pods("debgu")))
    assert message == 'pod "debgu" not found in namespace "demo"; did you mean debug?'


async def test_missing_pod_without_near_names() -> None:
    message = await fails(TargetQuery(targets=pods("zookeeper")))
    assert (
        message == 'pod "zookeeper" not found in namespace "demo"; list them with kubectl '
        "get pods -n demo, or look in every namespace with -A"
    )
    message = await fails(TargetQuery(targets=pods("web-1"), namespace="staging"))
    assert (
        message == 'pod "web-1" not found in namespace "staging"; there are no pods in it; '
        "give another namespace with -n, or try -A"
    )


async def test_missing_pod_when_listing_is_forbidden() -> None:
    source = FakeSource(forbidden={"list_pods"})
    message = await fails(TargetQuery(targets=pods("web-9"), namespace="prod"), source)
    assert (
        message == 'pod "web-9" not found in namespace "prod"; check the name, or look in '
        "every namespace with -A"
    )


async def test_missing_pod_in_missing_namespace() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(targets=pods("web-1"), namespace="dmeo"), source)
    assert (
        message == 'namespace "dmeo" not found (namespaces: default, demo, prod, staging; '
        "did you mean demo?)"
    )
    assert source.calls == [
        ("get_pod", "dmeo", "web-1"),
        ("get_namespace", "dmeo"),
        ("list_namespaces",),
    ]


async def test_missing_namespace_messages() -> None:
    message = await fails(TargetQuery(targets=pods("web-1"), namespace="zzz"))
    assert (
        message == 'namespace "zzz" not found (namespaces: default, demo, prod, staging); '
        "check the name given with -n"
    )
    many = [f"team-{i}" for i in range(12)]
    message = await fails(
        TargetQuery(targets=pods("web-1"), namespace="team-x"), FakeSource(namespaces=many)
    )
    assert (
        message == 'namespace "team-x" not found (namespaces: team-0, team-1, team-10, '
        "team-11, team-2, team-3, team-4, team-5, team-6, team-7, ...; did you "
        "mean team-0, team-1 or team-2?)"
    )
    source = FakeSource(forbidden={"list_namespaces"})
    message = await fails(TargetQuery(targets=pods("web-1"), namespace="zzz"), source)
    assert message == 'namespace "zzz" not found; check the name given with -n'
    message = await fails(
        TargetQuery(targets=pods("web-1"), namespace="zzz"), FakeSource(namespaces=[])
    )
    assert message == 'namespace "zzz" not found (there are no namespaces)'


async def test_namespace_lookup_forbidden_assumes_it_exists() -> None:
    source = FakeSource(forbidden={"get_namespace"})
    message = await fails(TargetQuery(targets=pods("web-9"), namespace="prod"), source)
    assert message == 'pod "web-9" not found in namespace "prod"; did you mean web-1 or web-2?'


async def test_first_missing_name_is_reported() -> None:
    source = FakeSource()
    message = await fails(
        TargetQuery(targets=pods("web-1", "nope-2", "nope-1"), namespace="prod"), source
    )
    assert message.startswith('pod "nope-2" not found in namespace "prod"')


async def test_pod_name_in_all_namespaces_matches_several() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(targets=pods("debug", "web-1"), all_namespaces=True), source)
    assert source.calls == [("list_pods", None, "", "")]
    assert ran(selection) == [
        ("demo", "debug", "shell"),
        ("prod", "debug", "shell"),
        ("prod", "web-1", "app"),
    ]


async def test_missing_pod_in_all_namespaces() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(targets=pods("web-3"), all_namespaces=True), source)
    assert message == 'pod "web-3" not found in any namespace; did you mean web-1 or web-2?'
    assert source.calls == [("list_pods", None, "", "")]
    message = await fails(TargetQuery(targets=pods("zookeeper"), all_namespaces=True))
    assert (
        message == 'pod "zookeeper" not found in any namespace; check the name with kubectl '
        "get pods -A"
    )


async def test_field_selector_applies_to_named_pods() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(
            targets=pods("web-1", "web-2"), field_selector="spec.nodeName=node-2", namespace="prod"
        ),
        source,
    )
    assert ran(selection) == [("prod", "web-2", "app")]
    assert sorted(source.methods) == ["get_pod", "get_pod"]


async def test_field_selector_on_named_pods_in_all_namespaces() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(
            targets=pods("debug"), field_selector="metadata.namespace=prod", all_namespaces=True
        ),
        source,
    )
    assert ran(selection) == [("prod", "debug", "shell")]
    # Listed unfiltered, so that a pod the field selector excludes is not "not found".
    assert source.calls == [("list_pods", None, "", "")]


async def test_field_selector_excluding_every_named_pod() -> None:
    message = await fails(
        TargetQuery(targets=pods("web-1"), field_selector="status.phase=Pending", namespace="prod")
    )
    assert (
        message == "no pods match pod web-1 with status.phase=Pending in namespace prod; "
        "check the field selector, or leave it out"
    )


async def test_names_and_selector_together() -> None:
    source = FakeSource()
    assert (
        await fails(TargetQuery(targets=pods("web-1"), label_selector="app=web"), source)
        == "give pod names or a selector (-l), not both"
    )
    assert (
        await fails(TargetQuery(targets=deploy("web"), label_selector="app=web"), source)
        == "give pod or workload names or a selector (-l), not both"
    )
    assert source.calls == []
    # An empty selector is no selector.
    assert ran(await run(TargetQuery(targets=pods("debug"), label_selector=" "))) == [
        ("demo", "debug", "shell")
    ]


async def test_api_error_of_one_concurrent_lookup_propagates_as_itself() -> None:
    source = FakeSource()
    original = source.get_pod

    async def get_pod(namespace: str, name: str) -> Obj | None:
        if name == "web-2":
            raise ApiError(500, "etcd timeout", what="get pod")
        return await original(namespace, name)

    source.get_pod = get_pod  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="etcd timeout"):
        await run(TargetQuery(targets=pods("web-1", "web-2"), namespace="prod"), source)


# -- many pod names: one LIST instead of a GET each -------------------------------------------------


def many_pods(count: int, namespace: str = "bench") -> list[Obj]:
    # Listed in reverse, so that the order of the result cannot come from the listing.
    return [make_pod(f"p{index}", namespace) for index in reversed(range(count))]


async def test_many_pod_names_in_one_namespace_take_one_list_and_no_get() -> None:
    source = FakeSource(pods=many_pods(120), namespaces=["bench"])
    names = [f"p{index}" for index in range(100)]
    random.Random(7).shuffle(names)
    selection = await run(TargetQuery(targets=pods(*names), namespace="bench"), source)
    # Unfiltered, so that a pod a field selector excludes is not reported as not found.
    assert source.calls == [("list_pods", "bench", "", "")]
    assert ran(selection) == [("bench", f"p{index}", "app") for index in range(100)]


@pytest.mark.parametrize(("count", "methods"), [(3, ["get_pod"] * 3), (4, ["list_pods"])])
async def test_names_up_to_the_threshold_take_a_get_each_more_take_one_list(
    count: int, methods: list[str]
) -> None:
    # A LIST returns the whole namespace: on a large cluster a few GETs cost far less.
    source = FakeSource(pods=many_pods(10), namespaces=["bench"])
    selection = await run(
        TargetQuery(targets=pods(*[f"p{i}" for i in range(count)]), namespace="bench"), source
    )
    assert source.methods == methods
    assert [pod for _, pod, _ in ran(selection)] == [f"p{i}" for i in range(count)]


async def test_a_missing_name_among_many_reads_as_among_few() -> None:
    few = await fails(TargetQuery(targets=pods("web-1", "web-9"), namespace="prod"))
    source = FakeSource()
    many = await fails(
        TargetQuery(targets=pods("web-1", "web-2", "debug", "web-9", "nope-1"), namespace="prod"),
        source,
    )
    assert many == few == 'pod "web-9" not found in namespace "prod"; did you mean web-1 or web-2?'
    # The listing already made serves the suggestion: no second one.
    assert source.calls == [("list_pods", "prod", "", ""), ("get_namespace", "prod")]


async def test_many_names_in_a_missing_namespace_name_the_namespace() -> None:
    message = await fails(TargetQuery(targets=pods("a", "b", "c", "d"), namespace="dmeo"))
    assert (
        message == 'namespace "dmeo" not found (namespaces: default, demo, prod, staging; '
        "did you mean demo?)"
    )
    message = await fails(TargetQuery(targets=pods("a", "b", "c", "d"), namespace="staging"))
    assert (
        message == 'pod "a" not found in namespace "staging"; there are no pods in it; '
        "give another namespace with -n, or try -A"
    )


async def test_many_names_where_listing_is_forbidden_fall_back_to_a_get_each() -> None:
    # RBAC can grant get without list (a role for exec into known pods).
    source = FakeSource(forbidden={"list_pods"})
    selection = await run(
        TargetQuery(targets=pods("web-2", "web-1", "debug", "agent-1"), namespace="prod"), source
    )
    assert source.methods == ["list_pods"] + ["get_pod"] * 4
    assert [pod for _, pod, _ in ran(selection)] == ["agent-1", "debug", "web-1", "web-2"]
    message = await fails(
        TargetQuery(targets=pods("web-2", "web-1", "debug", "web-9"), namespace="prod"), source
    )
    assert (
        message == 'pod "web-9" not found in namespace "prod"; check the name, or look in '
        "every namespace with -A"
    )


async def test_many_names_list_errors_other_than_forbidden_propagate() -> None:
    source = FakeSource()

    async def list_pods(namespace: str | None, **_: str) -> list[Obj]:
        raise ApiError(500, "etcd timeout", what="list pods")

    source.list_pods = list_pods  # type: ignore[method-assign]
    with pytest.raises(ApiError, match="etcd timeout"):
        await run(TargetQuery(targets=pods("a", "b", "c", "d"), namespace="prod"), source)


async def test_field_selector_applies_to_many_named_pods_after_the_listing() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(
            targets=pods("web-1", "web-2", "debug", "agent-1"),
            field_selector="spec.nodeName=node-1",
            namespace="prod",
        ),
        source,
    )
    assert source.calls == [("list_pods", "prod", "", "")]
    assert ran(selection) == [
        ("prod", "agent-1", "agent"),
        ("prod", "debug", "shell"),
        ("prod", "web-1", "app"),
    ]


# -- workloads ------------------------------------------------------------------------------------


async def test_deployment_keeps_only_its_own_pods() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(targets=deploy("web")), source)
    assert source.calls == [
        ("get_workload", "Deployment", "demo", "web"),
        ("list_pods", "demo", "app=web", ""),
    ]
    # Not web-canary-... (selector overlaps, other ReplicaSet) and not debug (no owner).
    assert [t.pod for t in selection.run] == [
        "web-5d8f7-a1b2c",
        "web-5d8f7-x2k9p",
        "web-7c9b2-old01",
    ]
    assert skips(selection) == [
        ("web-5d8f7-gone1", "terminating"),
        ("web-5d8f7-pend1", "Pending"),
        ("web-5d8f7-unrdy", "not ready"),
    ]
    assert selection.description == "deploy/web in namespace demo"


async def test_deployment_pods_without_template_hash_label() -> None:
    unlabelled = [
        make_pod("web-5d8f7-aaaaa", labels={"app": "web"}, owner=WEB_RS),
        make_pod("web-canary-6b7c8-bbbbb", labels={"app": "web"}, owner=CANARY_RS),
        make_pod("web-ccccc", labels={"app": "web"}, owner=("ReplicaSet", "web", "uid-x")),
        make_pod("web-ddddd", labels={"app": "web"}, owner=("StatefulSet", "web-5d8f7", "u")),
    ]
    selection = await run(TargetQuery(targets=deploy("web")), FakeSource(pods=unlabelled))
    assert [t.pod for t in selection.run] == ["web-5d8f7-aaaaa"]


async def test_replicaset_by_uid() -> None:
    selection = await run(TargetQuery(targets=(Target.parse("rs/web-5d8f7"),)))
    assert [t.pod for t in selection.run] == ["web-5d8f7-a1b2c", "web-5d8f7-x2k9p"]
    assert len(selection.skipped) == 3


async def test_statefulset_default_container_annotation() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(targets=(Target.parse("sts/db"),)), source)
    assert source.calls == [
        ("get_workload", "StatefulSet", "demo", "db"),
        ("list_pods", "demo", "app=db", ""),
    ]
    # db-2's annotation names a container it does not have: the first one is used.
    assert ran(selection) == [
        ("demo", "db-0", "postgres"),
        ("demo", "db-1", "postgres"),
        ("demo", "db-2", "metrics"),
    ]
    assert [t.restarts for t in selection.run] == [0, 1, 0]


async def test_daemonset_in_natural_order_first_container() -> None:
    selection = await run(TargetQuery(targets=(Target.parse("ds/node-agent"),), namespace="prod"))
    assert ran(selection) == [
        ("prod", "agent-1", "agent"),
        ("prod", "agent-2", "agent"),
        ("prod", "agent-10", "agent"),
    ]
    assert [t.node for t in selection.run] == ["node-1", "node-2", "node-10"]


async def test_job_with_finished_pods_runs_nothing() -> None:
    selection = await run(TargetQuery(targets=(Target.parse("job/migrate"),), include_unready=True))
    assert selection.run == ()
    assert selection.skipped == (
        SkippedPod("demo", "migrate-8kq2z", "app", "node-1", "completed (Succeeded)"),
        SkippedPod("demo", "migrate-v9c1d", "app", "node-1", "failed (Failed)"),
    )


async def test_workload_without_pods() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(targets=deploy("empty")), source)
    assert (
        message == "no pods match deploy/empty in namespace demo; it has no pods now "
        "(scaled to zero, or not started yet)"
    )
    assert source.methods == ["get_workload", "list_pods"]
    message = await fails(
        TargetQuery(
            targets=deploy("empty", "empty", "web-canary"), field_selector="spec.nodeName=node-7"
        )
    )
    assert (
        message == "no pods match deploy/empty, deploy/web-canary with spec.nodeName=node-7 "
        "in namespace demo; check the field selector, or leave it out"
    )


async def test_workload_field_selector_goes_to_the_server() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(targets=deploy("web"), field_selector="spec.nodeName=node-2"), source
    )
    assert source.calls[-1] == ("list_pods", "demo", "app=web", "spec.nodeName=node-2")
    assert [t.pod for t in selection.run] == ["web-5d8f7-x2k9p"]


async def test_missing_workload_suggests_near_names() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(targets=deploy("webb")), source)
    assert message == 'deployment "webb" not found in namespace "demo"; did you mean web?'
    assert source.calls == [
        ("get_workload", "Deployment", "demo", "webb"),
        ("get_namespace", "demo"),
        (
            "get_json",
            "/apis/apps/v1/namespaces/demo/deployments",
            "list deployments in namespace demo",
        ),
    ]


async def test_missing_workload_other_kinds_and_paths() -> None:
    source = FakeSource()
    message = await fails(TargetQuery(targets=(Target.parse("job/migrat"),)), source)
    assert message == 'job "migrat" not found in namespace "demo"; did you mean migrate?'
    assert source.calls[-1] == (
        "get_json",
        "/apis/batch/v1/namespaces/demo/jobs",
        "list jobs in namespace demo",
    )
    message = await fails(TargetQuery(targets=(Target.parse("sts/cache"),)))
    assert (
        message == 'statefulset "cache" not found in namespace "demo"; list them with '
        "kubectl get statefulsets -n demo, or look in every namespace with -A"
    )
    source = FakeSource(forbidden={"get_json"})
    message = await fails(TargetQuery(targets=(Target.parse("ds/agent"),)), source)
    assert (
        message == 'daemonset "agent" not found in namespace "demo"; check the name, or look '
        "in every namespace with -A"
    )


async def test_missing_workload_in_missing_namespace() -> None:
    message = await fails(TargetQuery(targets=deploy("web"), namespace="dmeo"))
    assert (
        message == 'namespace "dmeo" not found (namespaces: default, demo, prod, staging; '
        "did you mean demo?)"
    )


async def test_workloads_in_all_namespaces() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(targets=(*deploy("web"), Target.parse("ds/node-agent")), all_namespaces=True),
        source,
    )
    assert source.calls[:2] == [
        ("get_json", "/apis/apps/v1/deployments", "list deployments in all namespaces"),
        ("get_json", "/apis/apps/v1/daemonsets", "list daemonsets in all namespaces"),
    ]
    assert sorted(source.calls[2:]) == [
        ("list_pods", "demo", "app=web", ""),
        ("list_pods", "prod", "app=agent", ""),
    ]
    assert [(t.namespace, t.pod) for t in selection.run] == [
        ("demo", "web-5d8f7-a1b2c"),
        ("demo", "web-5d8f7-x2k9p"),
        ("demo", "web-7c9b2-old01"),
        ("prod", "agent-1"),
        ("prod", "agent-2"),
        ("prod", "agent-10"),
    ]


async def test_missing_workload_in_all_namespaces() -> None:
    message = await fails(TargetQuery(targets=deploy("wbe-canary"), all_namespaces=True))
    assert message == 'deployment "wbe-canary" not found in any namespace; did you mean web-canary?'
    message = await fails(TargetQuery(targets=(Target.parse("rs/zzz"),), all_namespaces=True))
    assert (
        message == 'replicaset "zzz" not found in any namespace; check the name with kubectl '
        "get replicasets -A"
    )


async def test_invalid_workload_selector() -> None:
    broken = make_workload("Deployment", "web", match_labels={"app": "web"})
    broken["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "Near"}]}
    message = await fails(TargetQuery(targets=deploy("web")), FakeSource(workloads=[broken]))
    assert (
        message == 'deploy/web in namespace demo has an invalid selector: "Near" is not a '
        "valid label selector operator; check it with kubectl get deploy/web -n "
        "demo -o yaml"
    )


async def test_union_of_targets_is_deduplicated_and_sorted() -> None:
    source = FakeSource()
    selection = await run(
        TargetQuery(
            targets=(
                Target.parse("pod/web-canary-6b7c8-c4n4r"),
                *deploy("web"),
                Target.parse("web-5d8f7-x2k9p"),
                Target.parse("deploy/web"),
            )
        ),
        source,
    )
    assert sorted(source.methods) == ["get_pod", "get_pod", "get_workload", "list_pods"]
    assert [t.pod for t in selection.run] == [
        "web-5d8f7-a1b2c",
        "web-5d8f7-x2k9p",
        "web-7c9b2-old01",
        "web-canary-6b7c8-c4n4r",
    ]
    assert len(selection.skipped) == 3


# -- eligibility ----------------------------------------------------------------------------------


async def test_include_unready_runs_unready_and_terminating() -> None:
    selection = await run(TargetQuery(targets=deploy("web"), include_unready=True))
    assert [t.pod for t in selection.run] == [
        "web-5d8f7-a1b2c",
        "web-5d8f7-gone1",
        "web-5d8f7-unrdy",
        "web-5d8f7-x2k9p",
        "web-7c9b2-old01",
    ]
    assert skips(selection) == [("web-5d8f7-pend1", "Pending")]


async def test_other_phases_and_terminating_before_not_ready() -> None:
    odd = [
        make_pod("a-1", phase="Unknown"),
        make_pod("a-2", phase=""),
        make_pod("a-3", ready=False, deleting=True),
        make_pod("a-4", phase="Pending", deleting=True),
        make_pod("a-5", phase="Failed", deleting=True),
    ]
    selection = await run(TargetQuery(), FakeSource(pods=odd))
    assert skips(selection) == [
        ("a-1", "Unknown"),
        ("a-2", "Unknown"),
        ("a-3", "terminating"),
        ("a-4", "Pending"),
        ("a-5", "failed (Failed)"),
    ]
    selection = await run(TargetQuery(include_unready=True), FakeSource(pods=odd))
    assert [t.pod for t in selection.run] == ["a-3"]


# -- --one ----------------------------------------------------------------------------------------


async def test_one_picks_the_longest_ready_pod() -> None:
    source = FakeSource()
    selection = await run(TargetQuery(targets=deploy("web"), one=True), source)
    # a1b2c has been ready since 10:02, old01 since 10:03, x2k9p since 10:05.
    assert ran(selection) == [("demo", "web-5d8f7-a1b2c", "app")]
    assert skips(selection) == [
        ("web-5d8f7-gone1", "terminating"),
        ("web-5d8f7-pend1", "Pending"),
        ("web-5d8f7-unrdy", "not ready"),
        ("web-5d8f7-x2k9p", "not chosen (--one)"),
        ("web-7c9b2-old01", "not chosen (--one)"),
    ]
    assert len(source.calls) == 2


async def test_one_with_include_unready_prefers_ready() -> None:
    candidates = [
        make_pod("p-1", ready=False, created="2020-01-01T00:00:00Z"),
        make_pod("p-2", deleting=True, ready=False),
        make_pod("p-3", restarts={"app": 9}),
    ]
    selection = await run(TargetQuery(include_unready=True, one=True), FakeSource(pods=candidates))
    assert [t.pod for t in selection.run] == ["p-3"]
    assert skips(selection) == [("p-1", "not chosen (--one)"), ("p-2", "not chosen (--one)")]


async def test_one_without_eligible_pods_runs_nothing() -> None:
    selection = await run(TargetQuery(targets=(Target.parse("job/migrate"),), one=True))
    assert selection.run == ()
    assert [reason for _, reason in skips(selection)] == [
        "completed (Succeeded)",
        "failed (Failed)",
    ]


def ranked(*pods_in: Obj) -> list[str]:
    return [p["metadata"]["name"] for p in most_active_first(pods_in)]


EARLY, LATE = "2024-05-01T08:00:00Z", "2024-05-01T09:00:00.5+00:00"

# (more active, less active): the first beats the second on exactly the named criterion.
ORDERING: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "assigned beats unassigned": (
        {"phase": "Pending", "node": "node-1", "ready": False},
        {"phase": "Running", "node": None},
    ),
    "running beats pending": ({"phase": "Running", "ready": False}, {"phase": "Pending"}),
    "running beats unknown": (
        {"phase": "Running", "ready": False},
        {"phase": "Unknown", "ready": False},
    ),
    "unknown beats pending": ({"phase": "Unknown", "ready": False}, {"phase": "Pending"}),
    "unknown beats succeeded": ({"phase": "Unknown", "ready": False}, {"phase": "Succeeded"}),
    "ready beats not ready": (
        {"restarts": {"app": 5}, "created": LATE},
        {"ready": False, "created": EARLY},
    ),
    "longer ready beats shorter": (
        {"ready_since": EARLY, "restarts": {"app": 3}, "created": LATE},
        {"ready_since": LATE, "created": EARLY},
    ),
    "ready time beats none": ({"ready_since": "2024-05-01T11:00:00Z"}, {"ready_since": None}),
    "fewer restarts beat more": (
        {"restarts": {"app": 1}, "created": LATE},
        {"restarts": {"app": 2}, "created": EARLY},
    ),
    "max over containers": (
        {"containers": ("a", "b"), "restarts": {"a": 2, "b": 2}},
        {"containers": ("a", "b"), "restarts": {"a": 0, "b": 3}},
    ),
    "older beats newer": ({"created": EARLY}, {"created": LATE}),
    "offsets are compared as instants": (
        {"created": "2024-05-01T10:00:00+02:00"},
        {"created": "2024-05-01T09:00:00Z"},
    ),
    "creation time beats none": ({"created": LATE}, {"created": None}),
    "fewer restarts beat more, unready too": (
        {"ready": False, "restarts": {"app": 0}},
        {"ready": False, "restarts": {"app": 4}},
    ),
}


@pytest.mark.parametrize("case", sorted(ORDERING))
def test_most_active_ordering(case: str) -> None:
    better, worse = ORDERING[case]
    first = make_pod("first", **better)
    second = make_pod("second", **worse)
    assert ranked(first, second) == ["first", "second"]
    assert ranked(second, first) == ["first", "second"]


def test_most_active_ties_keep_their_order() -> None:
    assert ranked(make_pod("b"), make_pod("a"), make_pod("c")) == ["b", "a", "c"]


def test_most_active_full_ranking() -> None:
    pool = [
        make_pod("pending", phase="Pending", node=None),
        make_pod("unassigned-running", node=None),
        make_pod("unready", ready=False),
        make_pod("ready-late", ready_since=LATE),
        make_pod("ready-early-restarted", ready_since=EARLY, restarts={"app": 1}),
        make_pod("ready-early", ready_since=EARLY),
        make_pod("ready-early-young", ready_since=EARLY, created="2024-05-01T11:00:00Z"),
    ]
    random.Random(3).shuffle(pool)
    assert ranked(*pool) == [
        "ready-early",
        "ready-early-young",
        "ready-early-restarted",
        "ready-late",
        "unready",
        "unassigned-running",
        "pending",
    ]


# -- --pick ---------------------------------------------------------------------------------------


async def test_pick_is_a_seeded_sample() -> None:
    query = TargetQuery(label_selector="app=web", pick=2, seed=7)
    first = await run(query)
    second = await run(query)
    assert first == second
    assert len(first.run) == 2
    eligible = [
        "debug",
        "web-5d8f7-a1b2c",
        "web-5d8f7-x2k9p",
        "web-7c9b2-old01",
        "web-canary-6b7c8-c4n4r",
    ]
    chosen = [t.pod for t in first.run]
    assert chosen == sorted(chosen, key=natural_key) and set(chosen) <= set(eligible)
    assert sorted(p for p, r in skips(first) if r == "not in sample (--pick 2)") == sorted(
        set(eligible) - set(chosen)
    )
    assert len(first.skipped) == 3 + 3
    samples = {
        tuple(
            t.pod for t in (await run(TargetQuery(label_selector="app=web", pick=2, seed=seed))).run
        )
        for seed in range(8)
    }
    assert len(samples) > 1


async def test_pick_more_than_there_are_runs_all() -> None:
    selection = await run(TargetQuery(targets=deploy("web"), pick=10))
    assert len(selection.run) == 3
    assert all(not s.reason.startswith("not in sample") for s in selection.skipped)


async def test_pick_one_and_without_seed() -> None:
    selection = await run(TargetQuery(targets=(Target.parse("sts/db"),), pick=1))
    assert len(selection.run) == 1
    assert [r for _, r in skips(selection)] == ["not in sample (--pick 1)"] * 2


@pytest.mark.parametrize("pick", [0, -3])
async def test_pick_below_one(pick: int) -> None:
    source = FakeSource()
    assert (
        await fails(TargetQuery(label_selector="app=web", pick=pick), source)
        == f"--pick {pick}: the sample must hold at least 1 pod; e.g. --pick 3"
    )
    assert source.calls == []


async def test_one_and_pick_together() -> None:
    assert (
        await fails(TargetQuery(label_selector="app=web", one=True, pick=2))
        == "give --one or --pick N, not both"
    )


# -- containers -----------------------------------------------------------------------------------


async def test_container_missing_in_some_pods_is_an_error_row() -> None:
    selection = await run(TargetQuery(label_selector="app=web", container="istio-proxy"))
    assert ran(selection) == [
        ("demo", "web-5d8f7-a1b2c", "istio-proxy"),
        ("demo", "web-5d8f7-x2k9p", "istio-proxy"),
        ("demo", "web-7c9b2-old01", "istio-proxy"),
    ]
    errors = [s for s in selection.skipped if s.is_error]
    assert errors == [
        SkippedPod(
            "demo",
            "debug",
            "istio-proxy",
            "node-1",
            'container "istio-proxy" not found (containers: shell)',
            is_error=True,
        ),
        SkippedPod(
            "demo",
            "web-canary-6b7c8-c4n4r",
            "istio-proxy",
            "node-1",
            'container "istio-proxy" not found (containers: app)',
            is_error=True,
        ),
    ]
    # Pods that could not run anyway keep their own reason, with the container asked for.
    assert (
        SkippedPod("demo", "web-5d8f7-pend1", "istio-proxy", None, "Pending") in selection.skipped
    )


async def test_container_in_no_matched_pod() -> None:
    message = await fails(TargetQuery(label_selector="app=web", container="nginx"))
    assert (
        message == 'container "nginx" not found in any matched pod (containers: shell, app, '
        "istio-proxy)"
    )


async def test_one_chooses_among_pods_with_the_container() -> None:
    selection = await run(TargetQuery(label_selector="app=web", container="shell", one=True))
    assert ran(selection) == [("demo", "debug", "shell")]
    assert sum(s.is_error for s in selection.skipped) == 4


async def test_init_and_ephemeral_containers_can_be_named() -> None:
    pod = make_pod("p-1", containers=("app",))
    pod["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always"}]
    pod["spec"]["ephemeralContainers"] = [{"name": "debugger"}]
    pod["status"]["initContainerStatuses"] = [{"name": "proxy", "restartCount": 4}]
    for name, restarts in (("proxy", 4), ("debugger", 0)):
        selection = await run(TargetQuery(container=name), FakeSource(pods=[copy.deepcopy(pod)]))
        assert [(t.container, t.containers, t.restarts) for t in selection.run] == [
            (name, ("app",), restarts)
        ]


async def test_all_containers() -> None:
    selection = await run(TargetQuery(targets=(Target.parse("sts/db"),), all_containers=True))
    assert [(t.pod, t.container, t.restarts) for t in selection.run] == [
        ("db-0", "metrics", 0),
        ("db-0", "postgres", 0),
        ("db-1", "metrics", 0),
        ("db-1", "postgres", 1),
        ("db-2", "metrics", 0),
        ("db-2", "postgres", 2),
    ]
    selection = await run(TargetQuery(targets=deploy("web"), all_containers=True, one=True))
    assert ran(selection) == [
        ("demo", "web-5d8f7-a1b2c", "app"),
        ("demo", "web-5d8f7-a1b2c", "istio-proxy"),
    ]
    assert all(s.container is None for s in selection.skipped)


async def test_container_and_all_containers_together() -> None:
    assert (
        await fails(TargetQuery(container="app", all_containers=True))
        == "give -c/--container or --all-containers, not both"
    )
    assert await fails(TargetQuery(container=" ")) == "empty container name; give -c NAME"


async def test_default_container_rules() -> None:
    annotated_missing = make_pod(
        "c-3", containers=("x", "y"), annotations={"kubectl.kubernetes.io/default-container": "z"}
    )
    source = FakeSource(
        pods=[
            make_pod(
                "c-1",
                containers=("only",),
                annotations={"kubectl.kubernetes.io/default-container": "other"},
            ),
            make_pod(
                "c-2",
                containers=("first", "second"),
                annotations={"kubectl.kubernetes.io/default-container": "second"},
            ),
            annotated_missing,
            make_pod("c-4", containers=("first", "second")),
        ]
    )
    selection = await run(TargetQuery(), source)
    assert [(t.pod, t.container) for t in selection.run] == [
        ("c-1", "only"),
        ("c-2", "second"),
        ("c-3", "x"),
        ("c-4", "first"),
    ]


async def test_pod_without_containers_is_skipped() -> None:
    broken = make_pod("broken")
    broken["spec"]["containers"] = []
    selection = await run(TargetQuery(), FakeSource(pods=[broken, make_pod("fine")]))
    assert ran(selection) == [("demo", "fine", "app")]
    assert selection.skipped == (
        SkippedPod("demo", "broken", None, "node-1", "no containers in its spec"),
    )


# -- query checks and helpers ---------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["Prod", "prod_1", "-prod", "a" * 64])
async def test_invalid_namespace(namespace: str) -> None:
    source = FakeSource()
    message = await fails(TargetQuery(label_selector="app=web", namespace=namespace), source)
    assert message.startswith("invalid namespace ")
    assert message.endswith(
        ": namespaces are at most 63 lowercase letters, digits and '-', "
        "starting and ending with a letter or digit"
    )
    assert source.calls == []


async def test_namespace_is_ignored_with_all_namespaces() -> None:
    source = FakeSource()
    await run(TargetQuery(label_selector="app=web", namespace="Bad", all_namespaces=True), source)
    assert source.calls == [("list_pods", None, "app=web", "")]


def test_natural_key() -> None:
    names = ["web-10", "web-2", "web-1", "web-02", "api", "web-1a", "web-"]
    # kubectl's order (sortorder.NaturalLess): equal numbers, fewer leading zeros first.
    assert sorted(names, key=natural_key) == [
        "api",
        "web-",
        "web-1",
        "web-1a",
        "web-2",
        "web-02",
        "web-10",
    ]


def test_fake_source_satisfies_the_protocol() -> None:
    assert _typed(FakeSource()) is not None
