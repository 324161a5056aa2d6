"""Containers' main processes, supervised as the kubelet supervises them.

Each container of a running pod gets a *main process*: its ``command`` and ``args`` (with
``$(VAR)`` references expanded from its env, as the kubelet expands them). It runs where an
exec of that container runs (the pod's namespaces when pods are isolated: :mod:`._isolation`),
with the same env and working folder, stdin at EOF; its stdout and stderr are the container
log (:mod:`._logs`). A container with neither runs its image's default command where the
sandbox has a stand-in for it (nginx: :mod:`._images`); otherwise (an image whose entrypoint
the sandbox cannot know) it gets an idle main process that spawns nothing: it runs until it
is signalled, as ``sleep infinity`` would, so a thousand such pods cost nothing.

When the main process ends, ``restartPolicy`` decides (the kubelet's ``getPhase`` and
``doBackOff``): ``Always``, and ``OnFailure`` after a failure, start it again with
``restartCount`` one higher and the run that ended in ``lastState.terminated``; the first
restart is at once, every later one waits in ``CrashLoopBackOff`` for a back-off of 10 s
that doubles up to 300 s (reset after a run of twice that), or what the pod's
``sandbox.podmagic.io/restart-backoff`` annotation makes the first one (the cap stays 30
times it). Otherwise the container stays terminated, and once every container is, the pod is
``Succeeded`` (all exited 0) or ``Failed``.

Probes (``exec``, ``tcpSocket``, ``httpGet``) run as the kubelet's probe workers run them:
the startup probe first (nothing else until it succeeds; ``failureThreshold`` failures
restart the container), then liveness (``failureThreshold`` failures: ``Killing``, SIGTERM,
SIGKILL after the grace period, restart per policy) and readiness (``ready`` after
``successThreshold`` successes, not ready after ``failureThreshold`` failures), each after
``initialDelaySeconds`` and every ``periodSeconds``, a try given ``timeoutSeconds``. A
failure records an ``Unhealthy`` event in the kubelet's words. ``ready`` drives the pod's
``Ready`` and ``ContainersReady`` conditions.

The runtime only acts on pods the sandbox runs (phase ``Running``: not the ones a
``sandbox.podmagic.io/phase`` annotation pins to another phase, whose status stays
simulated). It hears of pods through :mod:`._lifecycle`'s ``started_callbacks`` (the kubelet
started a pod's containers), hooks of :mod:`._objects` (:data:`STATUS_OVERLAYS`: a status
recomputed from annotations gets the runtime's truth back; :data:`RESTARTERS`: the
``restart`` exec fault) and a watcher (pods being deleted); graceful deletion signals the main
processes through ``PodEntry.processes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._images import emulated_main, image_argv
from ._isolation import acontainer_placement, isolation_problem, pod_socket
from ._logs import LogFile
from ._objects import RESTARTERS, STATUS_OVERLAYS
from ._runner import ExecutableNotFound, ProcessSpec, RunningProcess, start_process
from ._state import Cluster, PodEntry, Watcher, _expand

__all__ = [
    "DEFAULT_BACKOFF",
    "IDLE_COMMAND",
    "ContainerRuntime",
    "close_containers",
    "container_process_spec",
    "container_runtime",
    "instance_log",
    "main_argv",
    "stand_ins_listening",
]

log = logging.getLogger(__name__)

#: The kubelet's first crash-loop back-off in seconds; later ones double, up to 30 times it.
DEFAULT_BACKOFF = 10.0
_BACKOFF_CAP_FACTOR = 30.0
#: What a container whose command the sandbox cannot know runs as its main process.
IDLE_COMMAND = ("sleep", "infinity")
# The kubelet reads at most this much of an exec probe's output.
_PROBE_OUTPUT = 10 * 1024
# After the main process ended: how long its leftover output may take to drain.
_DRAIN_SECONDS = 2.0
_KUBE_VERSION = "1.33"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _container_id(uid: str, name: str, number: int) -> str:
    # The formula the simulated statuses use (_objects), so instance 0 keeps the ID it was
    # given at creation.
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{number}".encode()).hexdigest()


def go_duration(seconds: float) -> str:
    """A duration as Go's ``time.Duration.String`` prints it (``10s``, ``1m20s``, ``100ms``)."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        millis = seconds * 1000
        return f"{millis:g}ms" if millis >= 1 else f"{seconds * 1e6:g}µs"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:g}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def main_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The main process's argv: ``command`` + ``args`` with ``$(VAR)`` expanded (and the
    image's programs the host lacks replaced: :func:`._images.image_argv`); the idle command
    when both are empty (the image's entrypoint is not known here)."""
    argv = [
        _expand(str(part), env)
        for part in [*(container.get("command") or []), *(container.get("args") or [])]
    ]
    return image_argv(container, argv, env) if argv else list(IDLE_COMMAND)


async def container_process_spec(
    cluster: Cluster,
    entry: PodEntry,
    container: Mapping[str, Any],
    argv: Sequence[str] | None = None,
) -> ProcessSpec:
    """How to start a process of ``container`` as an exec would (``argv`` None: its main
    process); the pod's namespaces are made first if need be, off the event loop. Start it
    right after this returns (the namespaces it names stay open until then). Raises
    :class:`._state.ManifestError` when the container cannot be entered."""
    env = cluster.exec_environment(entry, container, tty=False)
    isolation, workdir = await acontainer_placement(cluster, entry, container, env)
    return ProcessSpec(
        argv=list(argv)
        if argv is not None
        else emulated_main(container, isolated=isolation is not None) or main_argv(container, env),
        env=env,
        cwd=workdir,
        hostname=entry.name[:63],
        isolation=isolation,
    )


@dataclass
class _Probe:
    """A probe of the container spec with the API server's defaults."""

    kind: str  # "Startup", "Liveness", "Readiness" (as the kubelet's events name them)
    spec: Mapping[str, Any]

    def _int(self, key: str, default: int, least: int) -> int:
        value = self.spec.get(key)
        return max(least, value) if isinstance(value, int) else default

    @property
    def initial_delay(self) -> int:
        return self._int("initialDelaySeconds", 0, 0)

    @property
    def period(self) -> int:
        return self._int("periodSeconds", 10, 1)

    @property
    def timeout(self) -> int:
        return self._int("timeoutSeconds", 1, 1)

    @property
    def success_threshold(self) -> int:
        return self._int("successThreshold", 1, 1)

    @property
    def failure_threshold(self) -> int:
        return self._int("failureThreshold", 3, 1)


@dataclass
class _Instance:
    """One run of a container's main process (what the runtime calls a container)."""

    number: int  # the restart count it started with
    container_id: str
    log: LogFile
    started_at: str = ""
    process: RunningProcess | _IdleProcess | None = None
    kill_reason: str | None = None  # why the runtime ended it ("liveness", "startup", ...)


@dataclass
class _Container:
    """A container of a pod: its spec, status as the kubelet reports it, and instances."""

    name: str
    spec: Mapping[str, Any]
    restart_count: int
    state: dict[str, Any]
    last_state: dict[str, Any] = field(default_factory=dict)
    container_id: str = ""
    ready: bool = False
    started: bool = False
    logs: dict[str, tuple[Path, LogFile]] = field(default_factory=dict)  # by container ID
    instance: _Instance | None = None
    backoff: float | None = None
    backoff_updated: float = 0.0  # monotonic time of the exit that last set it
    exited_at: float = 0.0  # monotonic time of the last exit
    task: asyncio.Task[None] | None = None
    probe_tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Set once its main process said something (a stand-in of :mod:`._images` speaks once it
    # listens) or ended: what :func:`stand_ins_listening` waits for.
    spoke: asyncio.Event = field(default_factory=asyncio.Event)

    def probe(self, kind: str) -> _Probe | None:
        spec = self.spec.get(f"{kind.lower()}Probe")
        return _Probe(kind, spec) if isinstance(spec, Mapping) else None


@dataclass(eq=False)
class _Pod:
    """The runtime's side of one pod (by uid: a pod recreated under its name is another)."""

    namespace: str
    name: str
    uid: str
    containers: dict[str, _Container]
    log_folder: Path
    launched: bool = False
    stopping: bool = False
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set when stopping begins
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    forgetting: asyncio.Task[None] | None = None  # the end of :meth:`ContainerRuntime._stop`

    @property
    def label(self) -> str:
        """The pod as the kubelet's messages name it (``format.Pod``)."""
        return f"{self.name}_{self.namespace}({self.uid})"


class ContainerRuntime:
    """The main processes of one cluster's pods (one per cluster: :func:`container_runtime`)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.pods: dict[str, _Pod] = {}  # by uid
        self.closing = False
        self._loop = asyncio.get_running_loop()
        self._watcher = Watcher(namespace=None, matches=self._heard)
        cluster.watchers.add(self._watcher)
        cluster.lifecycle.started_callbacks.append(self._started)
        if _overlay_status not in STATUS_OVERLAYS:
            STATUS_OVERLAYS.append(_overlay_status)
        if _restart not in RESTARTERS:
            RESTARTERS.append(_restart)

    # ---- what the cluster tells ----------------------------------------------------------------

    def _started(self, entry: PodEntry) -> None:
        """The kubelet started the pod's containers: their main processes start."""
        pod = self._pod_for(entry)
        if pod is not None and not pod.launched:
            self._loop.call_soon(self._launch, pod)

    def restart(self, pod: _Pod) -> None:
        """Kill every container's main process: each starts again as its restart policy
        says (the ``restart`` exec fault)."""
        for container in pod.containers.values():
            instance = container.instance
            if instance is not None and instance.process is not None:
                instance.kill_reason = "restart"
                instance.process.kill()

    def _heard(self, obj: dict[str, Any]) -> bool:
        # Called inside the cluster's notification of a pod change: only note it here, and act
        # once the change is complete.
        metadata = obj.get("metadata") or {}
        uid = str(metadata.get("uid", ""))
        if "deletionTimestamp" in metadata and uid in self.pods:
            self._loop.call_soon(
                self._pod_changed, str(metadata.get("namespace")), str(metadata.get("name")), uid
            )
        return False

    def _pod_changed(self, namespace: str, name: str, uid: str) -> None:
        """A pod being deleted (or gone): its containers are not started again. The kubelet
        side of deletion (SIGTERM, SIGKILL) is :mod:`._lifecycle`'s, through
        ``PodEntry.processes``; what is left when the pod is gone is killed here."""
        pod = self.pods.get(uid)
        if pod is None:
            return
        entry = self.cluster.pods.get((namespace, name))
        live = entry is not None and str(entry.pod["metadata"].get("uid", "")) == uid
        if not live:
            self._stop(pod, grace=0)
        elif entry is not None and entry.life.deleting:
            pod.stopping = True
            pod.wake.set()

    # ---- pods ----------------------------------------------------------------------------------

    def _pod_for(self, entry: PodEntry) -> _Pod | None:
        metadata = entry.pod["metadata"]
        uid = str(metadata.get("uid", ""))
        pod = self.pods.get(uid)
        if pod is not None:
            return pod
        if (
            self.closing
            or entry.behaviour.phase != "Running"
            or entry.pod["status"].get("phase") != "Running"
            or "deletionTimestamp" in metadata
        ):
            return None
        statuses = {s["name"]: s for s in entry.pod["status"].get("containerStatuses") or []}
        containers = {}
        for spec in entry.pod["spec"].get("containers") or []:
            status = statuses.get(spec["name"], {})
            container = _Container(
                name=spec["name"],
                spec=spec,
                restart_count=int(status.get("restartCount", 0)),
                state=copy.deepcopy(
                    status.get("state") or {"waiting": {"reason": "ContainerCreating"}}
                ),
                last_state=copy.deepcopy(status.get("lastState") or {}),
                container_id=str(status.get("containerID", "")),
            )
            # Not started until a startup probe says so; not ready until a readiness probe
            # does (or, without one, once started).
            container.started = container.probe("Startup") is None
            container.ready = container.started and container.probe("Readiness") is None
            containers[container.name] = container
        folder = self.cluster.state_dir / "logs" / f"{entry.namespace}_{entry.name}_{uid}"
        pod = _Pod(entry.namespace, entry.name, uid, containers, folder)
        self.pods[uid] = pod
        _known[uid] = (self, pod)
        return pod

    def _entry(self, pod: _Pod) -> PodEntry | None:
        entry = self.cluster.pods.get((pod.namespace, pod.name))
        if entry is None or str(entry.pod["metadata"].get("uid", "")) != pod.uid:
            return None
        return entry

    def _launch(self, pod: _Pod) -> None:
        if pod.launched or pod.stopping or self.closing:
            return
        entry = self._entry(pod)
        if entry is None or entry.pod["status"].get("phase") != "Running":
            return
        pod.launched = True
        for container in pod.containers.values():
            container.task = self._spawn(pod, self._supervise(pod, container))

    def _spawn(self, pod: _Pod, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = self._loop.create_task(work)
        pod.tasks.add(task)
        task.add_done_callback(pod.tasks.discard)
        return task

    def _stop(self, pod: _Pod, *, grace: float) -> None:
        """End the pod's main processes (SIGTERM, SIGKILL after ``grace`` seconds) and, once
        they ended, remove its logs if the pod is gone."""
        if pod.forgetting is not None:
            return
        pod.stopping = True
        pod.wake.set()
        for container in pod.containers.values():
            instance = container.instance
            if instance is not None and instance.process is not None:
                instance.kill_reason = "stopping"
                _terminate(instance.process, grace)
        pod.forgetting = self._loop.create_task(self._forget_when_done(pod))

    async def _forget_when_done(self, pod: _Pod) -> None:
        tasks = [c.task for c in pod.containers.values() if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for container in pod.containers.values():
            for _, live in container.logs.values():
                live.end()
        if self._entry(pod) is None:
            self.pods.pop(pod.uid, None)
            _known.pop(pod.uid, None)
            shutil.rmtree(pod.log_folder, ignore_errors=True)
        pod.stopped.set()

    async def close(self) -> None:
        """Kill every main process now and wait until they are reaped (the sandbox stops)."""
        self.closing = True
        self.cluster.watchers.discard(self._watcher)
        with contextlib.suppress(ValueError):
            self.cluster.lifecycle.started_callbacks.remove(self._started)
        for uid in self.pods:
            _known.pop(uid, None)
        for pod in list(self.pods.values()):
            self._stop(pod, grace=0)
        waiting = [pod.stopped.wait() for pod in self.pods.values()]
        if waiting:
            try:
                await asyncio.wait_for(asyncio.gather(*waiting), timeout=10)
            except asyncio.TimeoutError:
                # Stopping goes on: the processes were sent SIGKILL, and the sandbox kills
                # every group it started once its loop is stopped.
                log.warning("some main processes did not end within 10 s of SIGKILL")

    # ---- status --------------------------------------------------------------------------------

    def _publish(self, pod: _Pod) -> None:
        """Tell watchers the pod's new status (not once it is being deleted: the kubelet's last
        status is then :mod:`._lifecycle`'s)."""
        entry = self._entry(pod)
        if entry is None or self.closing or entry.life.deleting:
            return
        _apply(entry.pod, pod, entry.behaviour)
        _derive(entry.pod, entry.behaviour)
        entry.pod["metadata"]["resourceVersion"] = self.cluster.next_resource_version()
        self.cluster._notify("MODIFIED", entry.pod)
        self.cluster._refresh_owner_status(entry.pod)

    def _event(self, pod: _Pod, reason: str, message: str, *, warning: bool = False) -> None:
        entry = self._entry(pod)
        if entry is not None and not self.closing:
            self.cluster.record_event(
                entry.pod, reason, message, type="Warning" if warning else "Normal"
            )

    # ---- one container -------------------------------------------------------------------------

    async def _supervise(self, pod: _Pod, container: _Container) -> None:
        first = True
        try:
            while not pod.stopping:
                if not first and self._in_backoff(pod, container):
                    assert container.backoff is not None
                    delay = container.backoff - (time.monotonic() - container.exited_at)
                    if delay > 0:
                        message = (
                            f"back-off {go_duration(container.backoff)} restarting failed "
                            f"container={container.name} pod={pod.label}"
                        )
                        container.state = {
                            "waiting": {"reason": "CrashLoopBackOff", "message": message}
                        }
                        self._event(
                            pod,
                            "BackOff",
                            f"Back-off restarting failed container {container.name} in pod "
                            f"{pod.label}",
                            warning=True,
                        )
                        self._publish(pod)
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(pod.wake.wait(), delay)
                        if pod.stopping:
                            break
                    container.backoff = min(container.backoff * 2, self._backoff_cap(pod))
                    container.backoff_updated = container.exited_at
                exit_code = await self._run_instance(pod, container, first)
                first = False
                if pod.stopping:
                    break
                entry = self._entry(pod)
                if entry is None or entry.life.deleting:
                    break
                policy = entry.pod["spec"].get("restartPolicy", "Always")
                if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                    break  # terminated for good: _ended told watchers
        except Exception:
            log.exception(
                "container %s of pod %s/%s failed", container.name, pod.namespace, pod.name
            )

    def _initial_backoff(self, pod: _Pod) -> float:
        entry = self._entry(pod)
        if entry is None:
            return DEFAULT_BACKOFF
        return entry.behaviour.restart_backoff

    def _backoff_cap(self, pod: _Pod) -> float:
        return self._initial_backoff(pod) * _BACKOFF_CAP_FACTOR

    def _in_backoff(self, pod: _Pod, container: _Container) -> bool:
        """Whether the next start waits, as the kubelet's ``doBackOff`` decides: not after a
        first exit, nor after one long after the back-off was last raised (it starts over)."""
        cap = self._backoff_cap(pod)
        if container.backoff is None or container.exited_at - container.backoff_updated > 2 * cap:
            container.backoff = self._initial_backoff(pod)
            container.backoff_updated = container.exited_at
            return False
        return True

    async def _run_instance(self, pod: _Pod, container: _Container, first: bool) -> int:
        """Start one instance of the main process and wait for its end; its exit code."""
        entry = self._entry(pod)
        if entry is None:
            return 0
        if not first:
            container.restart_count += 1
        number = container.restart_count
        container_id = _container_id(pod.uid, container.name, number)
        path = pod.log_folder / container.name / f"{number}.log"
        instance = _Instance(number, container_id, LogFile(path))
        self._keep_logs(container, container_id, path, instance.log)
        container.instance = instance
        container.container_id = container_id
        container.started = container.probe("Startup") is None
        container.ready = container.started and container.probe("Readiness") is None
        if container.spoke.is_set():  # a new instance: its stand-in has to listen again
            container.spoke = asyncio.Event()
        if not first:
            image = container.spec.get("image", "")
            self._event(pod, "Pulled", f'Container image "{image}" already present on machine')
            self._event(pod, "Created", f"Created container: {container.name}")
        process: RunningProcess | _IdleProcess
        try:
            if _is_idle(container.spec):
                process = _IdleProcess(self._loop)
            else:
                # Off the loop: many pods start at once, and each spawn waits for its exec.
                process = await start_process(
                    await container_process_spec(self.cluster, entry, container.spec),
                    off_loop=True,
                )
        except Exception as error:  # noqa: BLE001 - any start failure is the container's
            return self._start_failed(pod, container, instance, error)
        instance.process = process
        if pod.stopping:
            process.kill()  # stopped while it was being started: it ends at once
        # Graceful deletion signals what is here (:mod:`._lifecycle`).
        entry.processes.add(process)
        instance.started_at = _now()
        if first and "running" in container.state:
            # Keep the start time the pod was created with: nothing to tell watchers.
            instance.started_at = container.state["running"].get("startedAt", instance.started_at)
        changed = "running" not in container.state or not first
        container.state = {"running": {"startedAt": instance.started_at}}
        if not first:
            self._event(pod, "Started", f"Started container {container.name}")
        if changed:
            self._publish(pod)
        self._start_probes(pod, container, instance)
        try:
            return await self._wait_instance(pod, container, instance, process)
        finally:
            entry.processes.discard(process)

    def _keep_logs(
        self, container: _Container, container_id: str, path: Path, live: LogFile
    ) -> None:
        """Keep the logs of this instance and the one before (what ``--previous`` reads)."""
        previous = container.last_state.get("terminated", {}).get("containerID")
        for known, (old_path, old_log) in list(container.logs.items()):
            if known in (previous, container.container_id):
                continue
            old_log.end()
            for part in (old_path, old_path.with_name(old_path.name + ".1")):
                with contextlib.suppress(OSError):
                    part.unlink()
            del container.logs[known]
        container.logs[container_id] = (path, live)

    def _start_failed(
        self, pod: _Pod, container: _Container, instance: _Instance, error: Exception
    ) -> int:
        # containerd's words for a process that cannot start (StartError, exit code 128).
        if isinstance(error, ExecutableNotFound):
            detail = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                "create failed: runc create failed: unable to start container process: "
                f"error during container init: {error}: unknown"
            )
        else:
            log.warning(
                "the main process of %s in pod %s/%s could not start: %s",
                container.name,
                pod.namespace,
                pod.name,
                error,
            )
            detail = (
                "failed to create containerd task: the sandbox could not start the process "
                f"({type(error).__name__}); its log (logger podmagic.sandbox) has the details"
            )
        instance.log.end()
        container.spoke.set()
        self._event(pod, "Failed", f"Error: {detail}", warning=True)
        self._ended(
            pod,
            container,
            instance,
            128,
            reason="StartError",
            message=detail,
            started_at="1970-01-01T00:00:00Z",
        )
        return 128

    async def _wait_instance(
        self,
        pod: _Pod,
        container: _Container,
        instance: _Instance,
        process: RunningProcess | _IdleProcess,
    ) -> int:
        async def pump() -> None:
            async for channel, chunk in process.read_output():
                instance.log.write(channel, chunk)
                container.spoke.set()

        pumping = self._loop.create_task(pump())
        try:
            await process.close_stdin()
            exit_code = await process.wait()
            # As when a container's first process ends: whatever it left running goes too.
            process.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(pumping), _DRAIN_SECONDS)
        finally:
            for task in container.probe_tasks:
                task.cancel()
            container.probe_tasks.clear()
            await process.aclose()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumping
            instance.log.end()
            instance.process = None
            container.spoke.set()
        self._ended(pod, container, instance, exit_code)
        return exit_code

    def _ended(
        self,
        pod: _Pod,
        container: _Container,
        instance: _Instance,
        exit_code: int,
        *,
        reason: str | None = None,
        message: str | None = None,
        started_at: str | None = None,
    ) -> None:
        terminated: dict[str, Any] = {
            "exitCode": exit_code,
            "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        }
        if message:
            terminated["message"] = message
        terminated.update(
            startedAt=started_at or instance.started_at or _now(),
            finishedAt=_now(),
            containerID=instance.container_id,
        )
        container.state = {"terminated": terminated}
        container.last_state = {"terminated": dict(terminated)}
        container.ready = False
        container.started = False
        container.exited_at = time.monotonic()
        self._publish(pod)

    # ---- probes --------------------------------------------------------------------------------

    def _start_probes(self, pod: _Pod, container: _Container, instance: _Instance) -> None:
        startup = container.probe("Startup")
        if startup is not None:
            container.probe_tasks.append(
                self._spawn(pod, self._probe_loop(pod, container, instance, startup))
            )
        else:
            self._start_running_probes(pod, container, instance)

    def _start_running_probes(self, pod: _Pod, container: _Container, instance: _Instance) -> None:
        for kind in ("Liveness", "Readiness"):
            probe = container.probe(kind)
            if probe is not None:
                container.probe_tasks.append(
                    self._spawn(pod, self._probe_loop(pod, container, instance, probe))
                )

    async def _probe_loop(
        self, pod: _Pod, container: _Container, instance: _Instance, probe: _Probe
    ) -> None:
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while container.instance is instance and instance.process is not None:
            ok, output = await self._probe_once(pod, container, probe)
            if container.instance is not instance or instance.process is None:
                return
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                self._event(pod, "Unhealthy", f"{probe.kind} probe {output}", warning=True)
            if probe.kind == "Startup":
                if ok:
                    container.started = True
                    container.ready = container.probe("Readiness") is None
                    self._publish(pod)
                    self._start_running_probes(pod, container, instance)
                    return
                if failures >= probe.failure_threshold:
                    self._kill_instance(pod, container, instance, probe, "startup")
                    return
            elif probe.kind == "Liveness":
                if failures >= probe.failure_threshold:
                    self._kill_instance(pod, container, instance, probe, "liveness")
                    return
            elif ok and successes >= probe.success_threshold and not container.ready:
                container.ready = True
                self._publish(pod)
            elif not ok and failures >= probe.failure_threshold and container.ready:
                container.ready = False
                self._publish(pod)
            await asyncio.sleep(probe.period)

    def _kill_instance(
        self, pod: _Pod, container: _Container, instance: _Instance, probe: _Probe, why: str
    ) -> None:
        process = instance.process
        if process is None:
            return
        self._event(
            pod,
            "Killing",
            f"Container {container.name} failed {why} probe, will be restarted",
        )
        instance.kill_reason = why
        grace = probe.spec.get("terminationGracePeriodSeconds")
        if not isinstance(grace, int):
            entry = self._entry(pod)
            grace = (entry.pod["spec"] if entry else {}).get("terminationGracePeriodSeconds", 30)
        _terminate(process, float(grace if isinstance(grace, int) else 30))

    async def _probe_once(
        self, pod: _Pod, container: _Container, probe: _Probe
    ) -> tuple[bool, str]:
        """One try: (success, the words after "<Kind> probe" in a failure's event)."""
        spec = probe.spec
        try:
            if isinstance(spec.get("exec"), Mapping):
                return await self._exec_probe(pod, container, spec["exec"], probe.timeout)
            if isinstance(spec.get("tcpSocket"), Mapping):
                return await self._tcp_probe(pod, container, spec["tcpSocket"], probe.timeout)
            if isinstance(spec.get("httpGet"), Mapping):
                return await self._http_probe(pod, container, spec["httpGet"], probe.timeout)
        except Exception as error:  # noqa: BLE001 - a probe that errs is a failed probe
            return False, f"errored: {error}"
        return False, "errored: the sandbox runs exec, tcpSocket and httpGet probes only"

    async def _exec_probe(
        self, pod: _Pod, container: _Container, action: Mapping[str, Any], timeout: int
    ) -> tuple[bool, str]:
        argv = [str(part) for part in action.get("command") or []]
        entry = self._entry(pod)
        if entry is None or not argv:
            return False, "errored: no command"
        try:
            process = await start_process(
                await container_process_spec(self.cluster, entry, container.spec, argv)
            )
        except ExecutableNotFound as error:
            return False, (
                "errored: rpc error: code = Unknown desc = failed to exec in container: failed "
                "to start exec: OCI runtime exec failed: exec failed: unable to start container "
                f"process: {error}: unknown"
            )
        output = bytearray()

        async def run() -> int:
            await process.close_stdin()
            async for _, chunk in process.read_output():
                if len(output) < _PROBE_OUTPUT:
                    output.extend(chunk[: _PROBE_OUTPUT - len(output)])
            return await process.wait()

        try:
            code = await asyncio.wait_for(run(), timeout)
        except asyncio.TimeoutError:
            return False, f'failed: command "{" ".join(argv)}" timed out'
        finally:
            await process.aclose()
        if code == 0:
            return True, ""
        return False, "failed: " + output.decode(errors="replace")

    def _port(self, container: _Container, port: Any) -> int:
        if isinstance(port, int):
            return port
        for declared in container.spec.get("ports") or []:
            if declared.get("name") == port and isinstance(declared.get("containerPort"), int):
                return int(declared["containerPort"])
        if isinstance(port, str) and port.isdigit():
            return int(port)
        raise ValueError(f"couldn't find port: {port} in {container.name}")

    async def _connect(self, pod: _Pod, host: str, port: int, timeout: float) -> socket.socket:
        """A socket connected to ``host:port`` as the pod sees it (its own loopback when pods
        are isolated; this host's otherwise, where every pod's ports are)."""
        entry = self._entry(pod)
        pod_ip = (entry.pod["status"].get("podIP") if entry else "") or ""
        target = "127.0.0.1" if host in ("", pod_ip, "localhost") else host
        try:
            family = (
                socket.AF_INET6 if ipaddress.ip_address(target).version == 6 else socket.AF_INET
            )
        except ValueError:
            infos = await self._loop.getaddrinfo(target, port, type=socket.SOCK_STREAM)
            family, target = infos[0][0], str(infos[0][4][0])
        sock = pod_socket(self.cluster, pod.namespace, pod.name, family)
        if sock is None:
            sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self._loop.sock_connect(sock, (target, port)), timeout)
        except BaseException:
            sock.close()
            raise
        return sock

    def _shown_host(self, pod: _Pod, host: str) -> str:
        entry = self._entry(pod)
        return host or ((entry.pod["status"].get("podIP") if entry else "") or "127.0.0.1")

    async def _tcp_probe(
        self, pod: _Pod, container: _Container, action: Mapping[str, Any], timeout: int
    ) -> tuple[bool, str]:
        host = str(action.get("host") or "")
        port = self._port(container, action.get("port"))
        address = f"{self._shown_host(pod, host)}:{port}"
        try:
            sock = await self._connect(pod, host, port, timeout)
        except asyncio.TimeoutError:
            return False, f"failed: dial tcp {address}: i/o timeout"
        except OSError as error:
            return False, f"failed: dial tcp {address}: connect: {_go_error(error)}"
        sock.close()
        return True, ""

    async def _http_probe(
        self, pod: _Pod, container: _Container, action: Mapping[str, Any], timeout: int
    ) -> tuple[bool, str]:
        host = str(action.get("host") or "")
        port = self._port(container, action.get("port"))
        scheme = str(action.get("scheme") or "HTTP").lower()
        path = str(action.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        shown = self._shown_host(pod, host)
        url = f"{scheme}://{shown}:{port}{path}"
        headers = {"Host": f"{shown}:{port}", "User-Agent": f"kube-probe/{_KUBE_VERSION}"}
        headers["Accept"] = "*/*"
        for header in action.get("httpHeaders") or []:
            if isinstance(header, Mapping) and header.get("name"):
                headers[str(header["name"])] = str(header.get("value", ""))
        deadline = time.monotonic() + timeout

        async def request() -> int:
            sock = await self._connect(pod, host, port, timeout)
            context = None
            if scheme == "https":
                # The kubelet does not verify a probed server's certificate.
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname=shown if context else None
            )
            try:
                lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
                lines.append("Connection: close")
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
                await writer.drain()
                status_line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            parts = status_line.split()
            if len(parts) < 2 or not parts[1].isdigit():
                raise ConnectionError("malformed HTTP response")
            return int(parts[1])

        try:
            code = await asyncio.wait_for(request(), max(0.001, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            return False, (
                f'failed: Get "{url}": context deadline exceeded (Client.Timeout exceeded '
                "while awaiting headers)"
            )
        except OSError as error:
            return (
                False,
                f'failed: Get "{url}": dial tcp {shown}:{port}: connect: {_go_error(error)}',
            )
        if 200 <= code < 400:
            return True, ""
        return False, f"failed: HTTP probe failed with statuscode: {code}"


def _go_error(error: OSError) -> str:
    """An errno as Go's syscall errors print it (``connection refused``)."""
    if error.errno is None:
        return str(error)
    text = os.strerror(error.errno)
    return text[:1].lower() + text[1:]


def _terminate(process: RunningProcess | _IdleProcess, grace: float) -> None:
    """SIGTERM the process now (only it, as a runtime signals a container's first process),
    SIGKILL its group after ``grace`` seconds (at once for 0)."""
    if grace <= 0:
        process.kill()
        return
    process.signal(signal.SIGTERM)
    asyncio.get_running_loop().call_later(grace, process.kill)


def _stand_in(container: Mapping[str, Any]) -> bool:
    """Whether the main process is a stand-in for the image's command (:mod:`._images`)."""
    return emulated_main(container, isolated=isolation_problem() is None) is not None


def _is_idle(container: Mapping[str, Any]) -> bool:
    """Whether the main process is the idle one: no command, and no stand-in for the image's
    (:mod:`._images`)."""
    if container.get("command") or container.get("args"):
        return False
    return not _stand_in(container)


class _IdleProcess:
    """The main process of a container whose command the sandbox cannot know (an image's own
    entrypoint): it does nothing until it is signalled, as ``sleep infinity`` would, without
    a process of its own, so that a thousand such pods cost nothing. (Isolated, the container
    holds a ``sleep infinity`` of its own once an exec, a probe or a port-forward needed its
    namespaces.)"""

    pid = 0

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._exit: asyncio.Future[int] = loop.create_future()

    def signal(self, signum: int) -> None:
        """End as a process without handlers ends: 128 + the signal."""
        if not self._exit.done():
            self._exit.set_result(128 + signum)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def close_stdin(self) -> None:
        pass

    async def read_output(self) -> AsyncIterator[tuple[int, bytes]]:
        await self.wait()
        return
        yield  # an async generator with nothing to yield

    async def aclose(self) -> None:
        self.kill()


def _phase(policy: str, statuses: Sequence[Mapping[str, Any]]) -> str:
    """The pod phase from its containers, as the kubelet's ``getPhase`` derives it."""
    running = waiting = stopped = succeeded = 0
    for item in statuses:
        state = item.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif (item.get("lastState") or {}).get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    if policy == "Never":
        return "Failed"
    return "Running"


# Pods a runtime runs, by uid, for the status hook (uids are unique across clusters).
_known: dict[str, tuple[ContainerRuntime, _Pod]] = {}

#: How long a connection to a pod waits for its stand-ins to listen, at most.
STAND_IN_START_SECONDS = 10.0


async def stand_ins_listening(entry: PodEntry) -> None:
    """Wait until the stand-ins for image commands (:mod:`._images`) of ``entry``'s containers
    listen (at most :data:`STAND_IN_START_SECONDS`; at once for a pod without any).

    The pod is Running before its main processes have started (the sandbox makes their
    namespaces then), and the nginx stand-in needs a Python start before it listens, where
    nginx listens within a millisecond of its start: a client that connects as soon as it
    sees the pod Running (the official client's e2e test_portforward_http) would be refused
    what a real nginx pod never refuses it. Port-forward waits here before it dials."""
    known = _known.get(str(entry.pod["metadata"].get("uid", "")))
    if known is None:
        return
    waits = [
        container.spoke.wait()
        for container in known[1].containers.values()
        if not container.spoke.is_set() and _stand_in(container.spec)
    ]
    if waits:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), STAND_IN_START_SECONDS)


def _apply(pod: dict[str, Any], record: _Pod, behaviour: Any) -> None:
    """Write the runtime's container states into the pod's ``containerStatuses`` (a pod
    whose ``ready`` annotation says false has no ready container, as if their readiness
    probes failed)."""
    for item in pod["status"].get("containerStatuses") or []:
        container = record.containers.get(item.get("name"))
        if container is None:
            continue
        running = "running" in container.state
        item["state"] = copy.deepcopy(container.state)
        item["lastState"] = copy.deepcopy(container.last_state)
        item["restartCount"] = container.restart_count
        item["ready"] = container.ready and running and bool(behaviour.ready)
        item["started"] = container.started and running
        if container.container_id:
            item["containerID"] = container.container_id


def _gate_probes(pod: dict[str, Any]) -> bool:
    """A container that just started: not started while it has a startup probe, not ready
    while it has that or a readiness probe. Whether anything changed."""
    specs = {c.get("name"): c for c in pod["spec"].get("containers") or []}
    changed = False
    for item in pod["status"].get("containerStatuses") or []:
        spec = specs.get(item.get("name")) or {}
        if "running" not in (item.get("state") or {}):
            continue
        if isinstance(spec.get("startupProbe"), Mapping) and item.get("started"):
            item["started"] = False
            changed = True
        if (
            isinstance(spec.get("startupProbe"), Mapping)
            or isinstance(spec.get("readinessProbe"), Mapping)
        ) and item.get("ready"):
            item["ready"] = False
            changed = True
    return changed


def _derive(pod: dict[str, Any], behaviour: Any) -> None:
    """The pod's phase and its ``Ready``/``ContainersReady`` conditions from its containers."""
    status = pod["status"]
    statuses = status.get("containerStatuses") or []
    phase = _phase(pod["spec"].get("restartPolicy", "Always"), statuses)
    status["phase"] = phase
    unready = [str(item.get("name")) for item in statuses if not item.get("ready")]
    ready = phase == "Running" and not unready and behaviour.ready and not behaviour.terminating
    message = None
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted"
    else:
        reason = "ContainersNotReady"
        if unready:
            message = f"containers with unready status: [{' '.join(unready)}]"
    for condition in status.get("conditions") or []:
        if condition.get("type") not in ("Ready", "ContainersReady"):
            continue
        value = "True" if ready else "False"
        if condition.get("status") != value:
            condition["lastTransitionTime"] = _now()
        condition["status"] = value
        condition.pop("reason", None)
        condition.pop("message", None)
        if not ready:
            condition["reason"] = reason
            if message:
                condition["message"] = message


def _overlay_status(pod: dict[str, Any], behaviour: Any) -> None:
    """``refresh_pod_status``'s hook: after a pod's status was recomputed from its annotations,
    put back what its processes and probes say (or, for one about to start, what its probes
    keep it from being yet)."""
    if behaviour.phase != "Running" or (pod.get("status") or {}).get("phase") != "Running":
        return
    known = _known.get(str(pod["metadata"].get("uid", "")))
    if known is not None:
        _apply(pod, known[1], behaviour)
    elif not _gate_probes(pod):
        return
    _derive(pod, behaviour)


def _restart(pod: dict[str, Any]) -> bool:
    """``restart_containers``'s hook: a pod the runtime runs restarts for real."""
    known = _known.get(str(pod["metadata"].get("uid", "")))
    if known is None or not known[1].launched:
        return False
    known[0].restart(known[1])
    return True


_runtimes: weakref.WeakKeyDictionary[Cluster, ContainerRuntime] = weakref.WeakKeyDictionary()


def container_runtime(cluster: Cluster) -> ContainerRuntime:
    """The cluster's runtime, made at first call (on the cluster's event loop)."""
    runtime = _runtimes.get(cluster)
    if runtime is None:
        runtime = ContainerRuntime(cluster)
        _runtimes[cluster] = runtime
    return runtime


async def close_containers(cluster: Cluster) -> None:
    """Kill every main process of ``cluster`` and wait until they are reaped."""
    runtime = _runtimes.pop(cluster, None)
    if runtime is not None:
        await runtime.close()


def instance_log(
    cluster: Cluster, entry: PodEntry, container: str, container_id: str
) -> tuple[Path, LogFile | None] | None:
    """The log of a container instance: its file, and the live :class:`LogFile` while the
    instance still runs (None once it ended); None when there is none (a simulated pod)."""
    runtime = _runtimes.get(cluster)
    if runtime is None:
        return None
    pod = runtime.pods.get(str(entry.pod["metadata"].get("uid", "")))
    known = pod.containers.get(container) if pod is not None else None
    if known is None or container_id not in known.logs:
        return None
    path, live = known.logs[container_id]
    return path, (None if live.ended else live)
