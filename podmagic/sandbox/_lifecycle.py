"""A pod's life in the sandbox, as the scheduler, the kubelet and the apiserver make it.

Creation goes through the steps a real cluster shows, each one a change that watches see:

1. the apiserver stores the pod (``ADDED``: phase ``Pending``, no node, no conditions);
2. the scheduler binds it (``MODIFIED``: ``spec.nodeName``, ``PodScheduled``; a ``Scheduled``
   event);
3. the kubelet takes it (``MODIFIED``: ``Initialized``, containers waiting in
   ``ContainerCreating``, ``Ready`` False);
4. the kubelet starts its containers (``MODIFIED``: ``Running``, the pod IP, ``Ready`` True;
   ``Pulled``, ``Created`` and ``Started`` events) — at once, or after the
   ``sandbox.podmagic.io/start-delay`` annotation's seconds.

Deletion is graceful, as :func:`check_graceful_delete` (the apiserver's pod strategy) and the
kubelet do it: the pod gets a ``deletionTimestamp`` (``now + grace``) and
``deletionGracePeriodSeconds`` (``MODIFIED``, shown as ``Terminating``), its processes get
SIGTERM, SIGKILL when the grace period ends, and once they are gone its containers are shown
terminated (``MODIFIED``, ``Ready`` False, phase ``Succeeded`` or ``Failed`` by their exit
codes, as kubelets since 1.27 report a deleted pod) and the pod is removed (``DELETED``). A
grace period of 0 (``--grace-period=0 --force``) removes it at once.

Processes are the containers' main processes (:attr:`PodEntry.processes`, whatever starts
them) or, for a pod without any, the commands running in it through exec.

Everything runs on the sandbox's event-loop thread; without a running loop (a cluster used
synchronously) the delays are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._behaviour import PodBehaviour
from ._objects import now_rfc3339, refresh_pod_status

if TYPE_CHECKING:
    from ._state import Cluster, PodEntry, PodProcess

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "KILL_WAIT_SECONDS",
    "DeleteOptionsError",
    "Lifecycle",
    "PodLife",
    "check_graceful_delete",
    "delete_options",
]

#: The grace period of a pod whose spec names none (the apiserver's default).
DEFAULT_GRACE_SECONDS = 30
#: How long the kubelet waits for processes to die after SIGKILL before it gives up on them.
KILL_WAIT_SECONDS = 10.0


class DeleteOptionsError(ValueError):
    """DeleteOptions the apiserver refuses (a 400 or 422 in its words)."""


@dataclass
class PodLife:
    """The lifecycle bookkeeping of one pod (never shown to clients)."""

    #: Whether the kubelet started the containers (False while ``ContainerCreating``).
    started: bool = False
    #: Whether a graceful deletion is under way (a real one, not the ``terminating``
    #: annotation's look).
    deleting: bool = False
    #: The pod's addresses, shown once its sandbox (network) exists.
    addresses: dict[str, Any] = field(default_factory=dict)
    start_timer: asyncio.TimerHandle | None = None
    stopping: asyncio.Task[None] | None = None
    #: When (loop time) the kubelet sends SIGKILL; moved by a shorter grace period.
    kill_at: float = 0.0
    #: Set when ``kill_at`` moves, to wake the stopping task.
    changed: asyncio.Event | None = None
    #: The pod as the apiserver stored it (``Pending``, unscheduled): what its create answers,
    #: so a client watching from that resourceVersion sees the steps that follow.
    created: dict[str, Any] | None = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    kind: str, value: bool, since: str, reason: str | None = None, message: str | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": kind,
        "status": "True" if value else "False",
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    if reason and not value:
        entry["reason"] = reason
        if message:
            entry["message"] = message
    return entry


def _set_conditions(status: dict[str, Any], conditions: list[dict[str, Any]]) -> None:
    """Replace ``status.conditions``, keeping a condition's transition time while its status
    stays the same (as the kubelet does)."""
    before = {c.get("type"): c for c in status.get("conditions") or []}
    for condition in conditions:
        old = before.get(condition["type"])
        if old is not None and old.get("status") == condition["status"]:
            condition["lastTransitionTime"] = old.get("lastTransitionTime")
    status["conditions"] = conditions


def _unready_message(pod: Mapping[str, Any]) -> str:
    names = " ".join(c.get("name", "") for c in pod["spec"].get("containers") or [])
    return f"containers with unready status: [{names}]"


def check_graceful_delete(pod: Mapping[str, Any], grace: int | None) -> int:
    """The grace period a DELETE gives ``pod``, as the apiserver's pod strategy decides it:
    the one asked for, else the pod's ``terminationGracePeriodSeconds``; 0 for a pod not
    scheduled or already finished; a negative one counts as 1."""
    spec = pod.get("spec") or {}
    if grace is not None:
        period = grace
    else:
        given = spec.get("terminationGracePeriodSeconds")
        period = given if isinstance(given, int) and not isinstance(given, bool) else 0
    if not spec.get("nodeName"):
        period = 0
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        period = 0
    return 1 if period < 0 else period


def _whole_number(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise DeleteOptionsError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise DeleteOptionsError(f"{where}: expected an integer, got {value!r}")


_PROPAGATION = ("Orphan", "Background", "Foreground")


def delete_options(
    query: Mapping[str, str], body: Mapping[str, Any] | None
) -> tuple[int | None, str | None]:
    """``(gracePeriodSeconds, propagationPolicy)`` of a DELETE, from its query or its
    DeleteOptions body (the query wins, as the apiserver decodes the query over the body).
    Both ``None`` when not given; :class:`DeleteOptionsError` for a value it refuses."""
    body = body or {}
    grace = _whole_number(body.get("gracePeriodSeconds"), "gracePeriodSeconds")
    if "gracePeriodSeconds" in query:
        grace = _whole_number(query["gracePeriodSeconds"], "gracePeriodSeconds")
    policy = body.get("propagationPolicy")
    if body.get("orphanDependents") is True and policy is None:
        policy = "Orphan"
    if "propagationPolicy" in query:
        policy = query["propagationPolicy"]
    elif query.get("orphanDependents", "").lower() == "true":
        policy = "Orphan"
    if policy is not None and policy not in _PROPAGATION:
        raise DeleteOptionsError(
            f'propagationPolicy: Unsupported value: "{policy}": supported values: '
            + ", ".join(f'"{p}"' for p in _PROPAGATION)
        )
    return grace, policy


class Lifecycle:
    """The scheduler and kubelet of one sandbox cluster: starts and stops its pods."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        #: Called with a pod's entry when its containers start (where main processes are
        #: started, so a start delay delays them too).
        self.started_callbacks: list[Callable[[PodEntry], None]] = []

    # -- creation ----------------------------------------------------------------------------

    def _publish(self, entry: PodEntry, event_type: str = "MODIFIED") -> None:
        entry.pod["metadata"]["resourceVersion"] = self.cluster.next_resource_version()
        self.cluster._notify(event_type, entry.pod)

    def admit(self, entry: PodEntry) -> None:
        """A new pod, already stored: announce it and take it through scheduling to its
        start (now, or after its start delay)."""
        pod = entry.pod
        spec, status = pod["spec"], pod["status"]
        life = entry.life
        life.addresses = {
            key: status[key] for key in ("podIP", "podIPs", "hostIP", "hostIPs") if key in status
        }
        node = spec.pop("nodeName", "")
        started_at = status.get("startTime")
        pod["status"] = {"phase": "Pending", "qosClass": status.get("qosClass", "BestEffort")}
        life.created = copy.deepcopy(pod)
        self.cluster._notify("ADDED", pod)
        # The scheduler binds the pod to its node.
        now = now_rfc3339()
        spec["nodeName"] = node
        pod["status"]["conditions"] = [_condition("PodScheduled", True, now)]
        self._publish(entry)
        self.cluster.record_event(
            pod,
            "Scheduled",
            f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} "
            f"to {node}",
            component="default-scheduler",
        )
        # The kubelet takes it: the pod's sandbox and containers are being made.
        self._creating(entry, started_at or now)
        delay = entry.behaviour.start_delay
        loop = _running_loop()
        if delay > 0 and loop is not None:
            life.start_timer = loop.call_later(delay, self._start, entry)
        else:
            self._start(entry)

    def _creating(self, entry: PodEntry, started_at: str) -> None:
        pod = entry.pod
        status = pod["status"]
        for key in ("hostIP", "hostIPs"):
            if key in entry.life.addresses:
                status[key] = entry.life.addresses[key]
        status["startTime"] = started_at
        now = now_rfc3339()
        message = _unready_message(pod)
        _set_conditions(
            status,
            [
                _condition("PodReadyToStartContainers", False, now),
                _condition("Initialized", True, now),
                _condition("Ready", False, now, "ContainersNotReady", message),
                _condition("ContainersReady", False, now, "ContainersNotReady", message),
                _condition("PodScheduled", True, now),
            ],
        )
        status["containerStatuses"] = [
            {
                "name": container["name"],
                "state": {"waiting": {"reason": "ContainerCreating"}},
                "lastState": {},
                "ready": False,
                "restartCount": 0,
                "image": container.get("image", ""),
                "imageID": "",
                "started": False,
            }
            for container in pod["spec"].get("containers") or []
        ]
        self._publish(entry)

    def _start(self, entry: PodEntry) -> None:
        """The kubelet starts the containers: the status the sandbox annotations ask for
        (Running and Ready by default)."""
        life = entry.life
        life.start_timer = None
        if life.started or life.deleting or not self._is_live(entry):
            return
        life.started = True
        pod = entry.pod
        pod["status"].update(life.addresses)
        entry.behaviour = refresh_pod_status(pod)
        self._runtime_refreshed(entry)
        self._publish(entry)
        if pod["status"].get("phase") == "Pending":
            return  # the phase annotation keeps it waiting
        for container in pod["spec"].get("containers") or []:
            image = container.get("image", "")
            self.cluster.record_event(
                pod, "Pulled", f'Container image "{image}" already present on machine'
            )
            self.cluster.record_event(pod, "Created", f"Created container: {container['name']}")
            self.cluster.record_event(pod, "Started", f"Started container {container['name']}")
        if pod["status"].get("phase") == "Running":
            for callback in list(self.started_callbacks):
                callback(entry)

    def _runtime_refreshed(self, entry: PodEntry) -> None:
        """Tell the container runtime (main processes, if the cluster has one) that the
        status was recomputed, so it puts back what it knows and starts what should run."""
        hook = getattr(getattr(self.cluster, "runtime", None), "status_refreshed", None)
        if hook is not None:
            hook(entry)

    def refresh(self, entry: PodEntry) -> PodBehaviour:
        """Apply changed sandbox annotations to a pod's status. A pod not started yet or
        being deleted keeps the status the kubelet gave it (the annotations are checked)."""
        if entry.life.started and not entry.life.deleting:
            return refresh_pod_status(entry.pod)
        return PodBehaviour.from_annotations(entry.pod["metadata"].get("annotations"))

    def _is_live(self, entry: PodEntry) -> bool:
        return self.cluster.pods.get((entry.namespace, entry.name)) is entry

    # -- deletion ----------------------------------------------------------------------------

    def delete(self, entry: PodEntry, grace: int | None = None) -> dict[str, Any]:
        """The apiserver's DELETE of a pod: begin (or shorten) its graceful deletion, or
        remove it at once for a grace period of 0. Returns the object to answer with."""
        pod = entry.pod
        metadata = pod["metadata"]
        life = entry.life
        if life.deleting:
            current = metadata.get("deletionGracePeriodSeconds")
            if not current:
                self.remove(entry)
                return pod
            period = 1 if grace is not None and grace < 0 else grace
            if period is not None and period < current:
                # Only a shorter grace period may be asked for: the deadline moves closer.
                stamp = dt.datetime.strptime(
                    metadata["deletionTimestamp"], "%Y-%m-%dT%H:%M:%SZ"
                ).replace(tzinfo=dt.timezone.utc)
                metadata["deletionTimestamp"] = _rfc3339(
                    stamp - dt.timedelta(seconds=current - period)
                )
                metadata["deletionGracePeriodSeconds"] = period
                self._publish(entry)
                if period == 0:
                    self.remove(entry)
                    return pod
                loop = _running_loop()
                if loop is not None:
                    life.kill_at = min(life.kill_at, loop.time() + period)
                    if life.changed is not None:
                        life.changed.set()
            return pod
        period = check_graceful_delete(pod, grace)
        now = dt.datetime.now(dt.timezone.utc)
        metadata["deletionTimestamp"] = _rfc3339(now + dt.timedelta(seconds=period))
        metadata["deletionGracePeriodSeconds"] = period
        loop = _running_loop()
        if period == 0 or loop is None:
            self.remove(entry)
            return pod
        life.deleting = True
        if life.start_timer is not None:
            life.start_timer.cancel()
            life.start_timer = None
        self._publish(entry)
        life.kill_at = loop.time() + period
        life.changed = asyncio.Event()
        life.stopping = loop.create_task(self._stop(entry))
        return pod

    def _processes(self, entry: PodEntry) -> list[PodProcess]:
        """What the kubelet signals: the containers' main processes, or (none) the commands
        running through exec."""
        if entry.processes:
            return list(entry.processes)
        found: list[PodProcess] = []
        for session in entry.sessions:
            process = getattr(session, "process", None)
            if process is not None and hasattr(process, "signal"):
                found.append(process)
        return found

    async def _stop(self, entry: PodEntry) -> None:
        """Stop a pod being deleted: SIGTERM, SIGKILL at the deadline, then remove it."""
        life = entry.life
        assert life.changed is not None
        for container in entry.pod["spec"].get("containers") or []:
            self.cluster.record_event(
                entry.pod, "Killing", f"Stopping container {container['name']}"
            )
        processes = self._processes(entry)
        for process in processes:
            process.signal(signal.SIGTERM)
        waits: dict[asyncio.Future[Any], PodProcess | None] = {
            asyncio.ensure_future(process.wait()): process for process in processes
        }
        # The container runtime stops the main processes it runs itself (it heard the
        # deletionTimestamp); the pod goes once it says they ended.
        wait_stopped = getattr(getattr(self.cluster, "runtime", None), "wait_stopped", None)
        if wait_stopped is not None:
            waits[asyncio.ensure_future(wait_stopped(entry))] = None
        loop = asyncio.get_running_loop()
        codes: list[int] = []
        try:
            pending = set(waits)
            while pending:
                life.changed.clear()
                changed = asyncio.ensure_future(life.changed.wait())
                timeout = max(0.0, life.kill_at - loop.time())
                done, _ = await asyncio.wait(
                    {*pending, changed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                changed.cancel()
                pending -= done
                if pending and loop.time() >= life.kill_at:
                    for waiter in pending:
                        target = waits[waiter]
                        if target is not None:
                            target.signal(signal.SIGKILL)
                    done, pending = await asyncio.wait(pending, timeout=KILL_WAIT_SECONDS)
                    break
            codes = [
                w.result()
                for w, process in waits.items()
                if process is not None and w.done() and not w.cancelled() and not w.exception()
            ]
        finally:
            for waiter in waits:
                waiter.cancel()
        if self._is_live(entry):
            self._terminated(entry, codes)
            self.remove(entry, killing_events=False)

    def _terminated(self, entry: PodEntry, codes: list[int]) -> None:
        """The kubelet's last status: every container terminated, the pod not ready, its phase
        final (Succeeded when every process exited 0)."""
        pod = entry.pod
        status = pod["status"]
        now = now_rfc3339()
        failed = [code for code in codes if code != 0]
        code = failed[0] if failed else 0
        for container in status.get("containerStatuses") or []:
            state = container.get("state") or {}
            if "terminated" in state:
                continue
            started = (state.get("running") or {}).get("startedAt")
            terminated: dict[str, Any] = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now,
            }
            if container.get("containerID"):
                terminated["containerID"] = container["containerID"]
            container.update({"state": {"terminated": terminated}, "ready": False})
            container["started"] = False
        exit_codes = [
            ((c.get("state") or {}).get("terminated") or {}).get("exitCode", 0)
            for c in status.get("containerStatuses") or []
        ]
        status["phase"] = "Failed" if any(exit_codes) else "Succeeded"
        _set_conditions(
            status,
            [
                _condition("PodReadyToStartContainers", False, now),
                _condition("Initialized", True, now),
                _condition("Ready", False, now, "PodCompleted"),
                _condition("ContainersReady", False, now, "PodCompleted"),
                _condition("PodScheduled", True, now),
            ],
        )
        self._publish(entry)

    def remove(self, entry: PodEntry, *, killing_events: bool = True) -> None:
        """Take a pod out of the cluster now (``DELETED``): its processes killed, its execs
        ended, its files removed."""
        life = entry.life
        if life.start_timer is not None:
            life.start_timer.cancel()
            life.start_timer = None
        stopping, life.stopping = life.stopping, None
        if stopping is not None and stopping is not _current_task():
            stopping.cancel()
        life.deleting = True  # no restart, no start, from here on
        key = (entry.namespace, entry.name)
        if self.cluster.pods.get(key) is not entry:
            return
        del self.cluster.pods[key]
        for process in list(entry.processes):
            process.signal(signal.SIGKILL)
        for session in list(entry.sessions):
            session.interrupt("pod deleted")
        metadata = entry.pod["metadata"]
        metadata.setdefault("deletionTimestamp", now_rfc3339())
        metadata.setdefault("deletionGracePeriodSeconds", 0)
        self._publish(entry, "DELETED")
        if killing_events and life.started:
            for container in entry.pod["spec"].get("containers") or []:
                self.cluster.record_event(
                    entry.pod, "Killing", f"Stopping container {container['name']}"
                )
        self.cluster.remove_pod_files(entry)


def _current_task() -> asyncio.Task[Any] | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.current_task()
    return None
