"""One measurement in a process of its own: ``python -m benchmarks.worker SPEC_JSON``.

The orchestrator (:mod:`benchmarks.run`) starts one worker per contender, scenario and
repetition, so every figure comes from a fresh process. The worker sets itself up (imports,
credentials) outside the timed section, runs the execs, and prints one JSON line:

* ``wall_s``: the timed section;
* ``cpu_s``: user+system CPU of the client in that section — this process for the Python
  contenders, the kubectl processes (and ``xargs``) for kubectl, the kernel process for the
  kernel contender;
* ``rss_peak_mib``: the client's peak resident memory (for kubectl: the largest sum over the
  kubectl processes alive at once, sampled every 20 ms; ``rss_one_mib`` is the largest single
  one); ``rss_growth_mib``: peak minus the resident size when the timed section began;
* ``ok``: execs that ended with exit code 0; ``bytes``: output bytes the client received;
* ``cpus``: the cores this process may run on (the orchestrator pins it, see
  :mod:`benchmarks.cores`; what it starts — kubectl, xargs, a kernel — inherits them).

Contenders:

``podmagic``         ``Cluster.run`` (label selector; one LIST, then the fan-out)
``podmagic-nocap``   the same with ``capture_limit=0``, output consumed through ``on_event``
``podmagic-widgets`` ``Cluster.run`` feeding a ``WidgetRenderer`` whose comms are recorded
``kernel``           ``%%pod`` in a real IPython kernel (jupyter_client), ``kernel-quiet`` with -q
``kubectl``          ``xargs -P N kubectl exec POD -- argv``, warmed discovery cache
``official``         ``kubernetes.stream.stream`` in a ThreadPoolExecutor, one ApiClient per thread
``floor``            bare ``websockets`` connections: same URL, headers and TLS context as
                     podmagic, frames read to the end, output kept until the run ends (as
                     much per exec as podmagic's defaults keep), like results
``podmagic-names``, ``podmagic-selector``, ``podmagic-selected``: the same pods named, selected
                     by label, found before the run (:mod:`benchmarks.named_pods`)

With ``"runs": N`` in the spec (the "one pod, N runs in a row" scenario), a contender runs the
argv in one pod N times one after another, as a person or a script does, and also reports
each run's time as its caller saw it (``run_ms_median``, ``run_ms_min``, ``run_ms_max``, and
every run in ``run_ms``) and the client CPU of each (``run_cpu_ms_*``): ``Cluster.run``
calls on one Cluster; ``%pod`` lines in one kernel, one cell each (timed inside the kernel;
``cell_ms_*`` is the round trip of the cell as the front end saw it); ``kubectl exec``
processes; ``stream()`` calls on one ``ApiClient``.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cluster import NAMESPACE, pod_names, proc_status_kib, selector
from .cores import affinity

CAPTURE_LIMIT = 16 * 1024 * 1024


def _rss_mib() -> float:
    return proc_status_kib(os.getpid(), "VmRSS") / 1024


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class Measure:
    """Wall time, CPU and memory of this process around the block."""

    def __enter__(self) -> Measure:  # noqa: PYI034 - Self needs Python 3.11
        self.rss_start = _rss_mib()
        self.usage_start = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_start = _cpu(resource.RUSAGE_SELF)
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.cpu = _cpu(resource.RUSAGE_SELF) - self.cpu_start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.rss_peak = usage.ru_maxrss / 1024
        self.sys = usage.ru_stime - self.usage_start.ru_stime
        self.faults = usage.ru_minflt - self.usage_start.ru_minflt

    def figures(self) -> dict[str, float]:
        return {
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "rss_peak_mib": self.rss_peak,
            "rss_growth_mib": max(0.0, self.rss_peak - self.rss_start),
            "sys_s": self.sys,
            "page_faults": self.faults,
        }


# -- podmagic -----------------------------------------------------------------------------------


def run_podmagic(spec: dict[str, Any]) -> dict[str, Any]:
    from podmagic import Cluster
    from podmagic._events import PodOutput

    cluster = Cluster(kubeconfig=spec["kubeconfig"], namespace=NAMESPACE)
    variant = spec["contender"]
    received = 0
    on_event: Callable[[Any], None] | None = None
    limits: dict[str, Any] = {}  # the defaults: 16 MiB per stream within the run's budget
    renderer = None
    comms: list[tuple[str, int]] = []
    if variant == "podmagic-nocap":
        limits = {"capture_limit": 0}

        def count(event: Any) -> None:
            nonlocal received
            if isinstance(event, PodOutput):
                received += len(event.data)

        on_event = count
    elif variant == "podmagic-widgets":
        comms = _record_comms()
        from podmagic._render import RenderLimits, WidgetRenderer

        renderer = WidgetRenderer(limits=RenderLimits(), display=False, show_summary=False)
        stamps = stamp_updates(renderer)
        on_event = renderer.handle_event
        comms.clear()  # the widgets' creation is not part of the run
    # Imports and the loop thread are warmed up by a run that does nothing heavy.
    cluster.run(["true"], selector=selector(1), max_concurrency=1)
    with Measure() as measure:
        # yes=True: up to 1,000 pods, past the confirmation threshold on purpose.
        results = cluster.run(
            list(spec["argv"]),
            selector=selector(spec["pods"]),
            yes=True,
            max_concurrency=spec["concurrency"],
            on_event=on_event,
            **limits,
        )
        if renderer is not None:
            renderer.close()
    figures = measure.figures()
    figures["ok"] = sum(1 for r in results if r.exit_code == 0)
    if variant == "podmagic-nocap":
        figures["bytes"] = received
        figures["kept_bytes"] = sum(len(r.stdout) for r in results)
    else:
        figures["bytes"] = sum(len(r.stdout) + r.stdout_dropped for r in results)
    if renderer is not None:
        figures["updates_sent"] = renderer.updates_sent
        figures["lines_rendered"] = renderer.lines_received
        figures["comm_messages"] = len(comms)
        figures["comm_bytes"] = sum(size for _, size in comms)
        figures["updates_per_s"] = renderer.updates_sent / measure.wall
        figures["max_updates_1s"] = max_in_window(stamps, 1.0)
    return figures


def stamp_updates(renderer: Any) -> list[float]:
    """Record when each flush that changed the view happened (``updates_sent`` grew)."""
    stamps: list[float] = []
    flush = renderer._flush_locked

    def timed() -> None:
        before = renderer.updates_sent
        flush()
        if renderer.updates_sent != before:
            stamps.append(time.monotonic())

    renderer._flush_locked = timed
    return stamps


def max_in_window(stamps: list[float], window: float) -> int:
    """The most stamps that fall in any interval of ``window`` seconds."""
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _record_comms() -> list[tuple[str, int]]:
    """Make ipywidgets' comms record each message's type and JSON size (no kernel here)."""
    import comm
    from comm.base_comm import BaseComm

    sent: list[tuple[str, int]] = []

    class RecordingComm(BaseComm):
        def publish_msg(
            self,
            msg_type: str,
            data: Any = None,
            metadata: Any = None,
            buffers: Any = None,
            **keys: Any,
        ) -> None:
            content = {"data": data, "comm_id": self.comm_id, **keys}
            size = len(json.dumps(content, default=str))
            size += sum(len(b) for b in buffers or ())
            sent.append((msg_type, size))

    comm.create_comm = RecordingComm
    return sent


# -- the floor: bare websockets -------------------------------------------------------------------


def run_floor(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    from podmagic._credentials import load_credentials
    from podmagic._kubeapi import KubeApi

    credentials = load_credentials(kubeconfig=spec["kubeconfig"])
    names = pod_names(spec["pods"])
    argv = list(spec["argv"])
    # What podmagic's defaults keep per exec and stream in a run of this size.
    cap = _default_capture(len(names))

    async def main(names: list[str], argv: list[str]) -> tuple[int, int]:
        api = KubeApi(credentials)
        ssl_context = api.websocket_ssl()
        headers = await credentials.auth_headers()
        limit = asyncio.Semaphore(spec["concurrency"])

        async def one(pod: str) -> tuple[int, int]:
            url = api.exec_url(
                NAMESPACE,
                pod,
                container="main",
                command=argv,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
            )
            async with limit:
                kept: list[bytes] = []
                size = total = 0
                status = b""
                async with connect(
                    url,
                    ssl=ssl_context,
                    additional_headers=headers,
                    user_agent_header=api.user_agent,
                    subprotocols=[
                        Subprotocol("v5.channel.k8s.io"),
                        Subprotocol("v4.channel.k8s.io"),
                    ],
                    compression=None,
                    max_size=None,
                ) as ws:
                    try:
                        while True:
                            frame = await ws.recv(decode=False)
                            channel = frame[0] if frame else -1
                            if channel in (1, 2):
                                total += len(frame) - 1
                                if size < cap:
                                    piece = frame[1 : 1 + cap - size]
                                    kept.append(piece)
                                    size += len(piece)
                            elif channel == 3:
                                status += frame[1:]
                    except ConnectionClosed:
                        pass
                outputs.append(b"".join(kept))  # kept until the end, as results are
                return (1 if b'"Success"' in status else 0), total

        done = await asyncio.gather(*(one(pod) for pod in names))
        return sum(ok for ok, _ in done), sum(size for _, size in done)

    outputs: list[bytes] = []

    asyncio.run(main(names[:1], ["true"]))  # imports and first-use costs, untimed
    with Measure() as measure:
        ok, received = asyncio.run(main(names, argv))
    return {**measure.figures(), "ok": ok, "bytes": received}


def _default_capture(execs: int) -> int:
    from podmagic._engine import ExecOptions

    share = ExecOptions().capture_share(execs) if hasattr(ExecOptions, "capture_share") else None
    return CAPTURE_LIMIT if share is None else share


# -- the official client --------------------------------------------------------------------------


def _official_api(spec: dict[str, Any]) -> tuple[Any, Any]:
    """The official client's configuration for the sandbox, and a CoreV1Api on it."""
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(
        config_file=spec["kubeconfig"],  # type: ignore[no-untyped-call]
        client_configuration=configuration,
    )
    return configuration, client.CoreV1Api(client.ApiClient(configuration))


def _official_exec(api: Any, pod: str, argv: list[str], *, preload: bool = False) -> Any:
    """``stream()`` of an exec of ``argv`` in ``pod`` (binary frames, not preloaded)."""
    from kubernetes.stream import stream

    extra = {} if preload else {"binary": True, "_preload_content": False}
    return stream(
        api.connect_get_namespaced_pod_exec,
        pod,
        NAMESPACE,
        command=argv,
        container="main",
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        **extra,
    )


def _official_read(response: Any, kept: list[bytes]) -> None:
    """Read the exec to its end into ``kept``, with the loop of the client's own example
    (examples/pod_exec.py)."""
    while response.is_open():
        response.update(timeout=1)
        if response.peek_stdout():
            kept.append(response.read_stdout())
        if response.peek_stderr():
            kept.append(response.read_stderr())
    # The example stops here, but peek_stderr() may have pulled in more stdout frames (and
    # the close) after stdout was read: without this, a few execs in a hundred lose the end
    # of their output.
    kept.append(response.read_stdout(timeout=0))
    kept.append(response.read_stderr(timeout=0))


def run_official(spec: dict[str, Any]) -> dict[str, Any]:
    from concurrent.futures import ThreadPoolExecutor

    from kubernetes import client

    configuration, first_api = _official_api(spec)
    local = threading.local()
    outputs: list[bytes] = []
    timed_out: list[str] = []
    limit = spec.get("time_limit")
    deadline: float | None = None
    names = pod_names(spec["pods"])
    argv = list(spec["argv"])

    def one(pod: str) -> tuple[int, int]:
        api = getattr(local, "api", None)
        if api is None:  # one ApiClient per thread: stream() patches the client it uses
            api = local.api = client.CoreV1Api(client.ApiClient(configuration))
        response = _official_exec(api, pod, argv)
        kept: list[bytes] = []
        cut = threading.Event()
        timer = None
        if deadline is not None:
            # One update() call reads for as long as frames keep arriving, so the limit is
            # enforced from outside: the socket is shut down under it.
            def stop() -> None:
                cut.set()
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(response.sock.sock, socket.SHUT_RDWR)

            timer = threading.Timer(max(0.0, deadline - time.monotonic()), stop)
            timer.start()
        try:
            _official_read(response, kept)
            code = response.returncode
        except Exception:
            if not cut.is_set():
                raise
            timed_out.append(pod)
            code = None
            # What the cut-off update() had buffered but not handed out yet.
            kept.append(response._channels.get(1, b""))
        finally:
            if timer is not None:
                timer.cancel()
        response.close()
        output = b"".join(kept)
        outputs.append(output)  # kept until the end, as results are
        return (1 if code == 0 else 0), len(output)

    _official_exec(first_api, names[0], ["true"], preload=True)  # lazy imports, untimed
    with Measure() as measure:
        if limit:
            deadline = time.monotonic() + limit
        with ThreadPoolExecutor(max_workers=spec["concurrency"]) as pool:
            done = list(pool.map(one, names))
    figures = {
        **measure.figures(),
        "ok": sum(ok for ok, _ in done),
        "bytes": sum(size for _, size in done),
    }
    if timed_out:
        # Stopped at the time limit: the figures describe the part that was received.
        figures["timed_out"] = len(timed_out)
    return figures


# -- kubectl --------------------------------------------------------------------------------------


class _TreeSampler(threading.Thread):
    """The largest total RSS of this process's descendants, sampled every ``interval``."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop_event.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_kib = max(self.peak_kib, total // 1024)
            self.stop_event.wait(self.interval)


def run_kubectl(spec: dict[str, Any]) -> dict[str, Any]:
    workdir = Path(spec["workdir"])
    names_file = workdir / "pods.txt"
    names_file.write_text("\n".join(pod_names(spec["pods"])) + "\n")
    out_path = workdir / "kubectl.out"
    failed_path = workdir / "kubectl.failed"
    failed_path.write_bytes(b"")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": spec["kubectl_home"],
        "KUBECONFIG": spec["kubeconfig"],
        "KUBECACHEDIR": spec["kubectl_cache"],
    }
    # Each kubectl runs under a small sh that notes the pod and the exit code of a failed
    # exec (one short O_APPEND write: whole lines however many run at once), so successes
    # are counted per exec; xargs alone only says whether any of them failed. sh adds well
    # under 1 ms of CPU per exec to kubectl's tens of milliseconds.
    script = 'pod=$1; shift; "$0" exec -n "$pod_ns" "$pod" -- "$@" || echo "$pod $?" >>"$failed"'
    env["pod_ns"] = NAMESPACE
    env["failed"] = str(failed_path)
    command = [
        "xargs",
        "-a",
        str(names_file),
        "-P",
        str(spec["concurrency"]),
        "-I{}",
        "sh",
        "-c",
        script,
        spec["kubectl"],
        "{}",
        *spec["argv"],
    ]
    keep = spec.get("keep_output", True)
    sampler = _TreeSampler()
    children_before = _cpu(resource.RUSAGE_CHILDREN)
    with (
        open(out_path if keep else os.devnull, "wb") as out,
        tempfile.TemporaryFile() as errors,
    ):
        sampler.start()
        started = time.perf_counter()
        code = subprocess.run(command, stdout=out, stderr=errors, env=env, check=False).returncode
        wall = time.perf_counter() - started
        sampler.stop_event.set()
        sampler.join()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    received = out_path.stat().st_size if keep else spec["pods"] * spec["expect_bytes"]
    failed = failed_path.read_text().splitlines()
    figures: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": _cpu(resource.RUSAGE_CHILDREN) - children_before,
        "rss_peak_mib": sampler.peak_kib / 1024,
        "rss_growth_mib": sampler.peak_kib / 1024,
        "rss_one_mib": usage.ru_maxrss / 1024,
        "ok": spec["pods"] - len(failed),
        "bytes": received,
        "exit_code": code,
    }
    figures.update(kubectl_stderr(stderr, failed))
    return figures


#: What kubectl ≤ 1.33 logs when the server's first frame arrives before kubectl has
#: registered its streams (a client race, fixed in client-go 1.34): harmless, the exec goes on.
KUBECTL_HARMLESS = "Unknown stream id 1, discarding message"


def kubectl_stderr(stderr: str, failed: list[str]) -> dict[str, Any]:
    """What kubectl said on stderr, for the report: the failed execs (``pod code``), how
    many lines were kubectl's harmless race, and the end of everything else."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    harmless = sum(1 for line in lines if KUBECTL_HARMLESS in line)
    other = [line for line in lines if KUBECTL_HARMLESS not in line]
    figures: dict[str, Any] = {"stderr_harmless_lines": harmless}
    if failed:
        figures["failed_execs"] = failed[:20]
    if other:
        figures["stderr_tail"] = "\n".join(other[-10:])[-1500:]
    return figures


# -- a real kernel --------------------------------------------------------------------------------


def run_kernel(spec: dict[str, Any]) -> dict[str, Any]:
    from .kernel import run_in_kernel, runs_in_kernel

    return runs_in_kernel(spec) if spec.get("runs", 1) > 1 else run_in_kernel(spec)


# -- the same pods named, selected, found before --------------------------------------------------


def run_named(spec: dict[str, Any]) -> dict[str, Any]:
    from .named_pods import run_named

    return run_named(spec)


# -- one pod, N runs in a row ---------------------------------------------------------------------


def per_run(walls: list[float], cpus: list[float], prefix: str = "run") -> dict[str, Any]:
    """Median, min and max of each run's time and client CPU, in milliseconds."""
    import statistics

    figures: dict[str, Any] = {}
    for name, values in ((f"{prefix}_ms", walls), (f"{prefix}_cpu_ms", cpus)):
        if not values:
            continue
        shown = [round(1000 * value, 3) for value in values]
        figures[name] = shown
        figures[f"{name}_median"] = statistics.median(shown)
        figures[f"{name}_min"] = min(shown)
        figures[f"{name}_max"] = max(shown)
    return figures


def in_a_row(
    runs: int, once: Callable[[], tuple[int, int]], who: int = resource.RUSAGE_SELF
) -> dict[str, Any]:
    """Call ``once`` (which returns: succeeded 0/1, output bytes) ``runs`` times, timing each
    call and the CPU of ``who`` (this process, or its children) in it."""
    walls: list[float] = []
    cpus: list[float] = []
    ok = received = 0
    with Measure() as measure:
        for _ in range(runs):
            cpu, began = _cpu(who), time.perf_counter()
            good, size = once()
            walls.append(time.perf_counter() - began)
            cpus.append(_cpu(who) - cpu)
            ok += good
            received += size
    return {**measure.figures(), **per_run(walls, cpus), "ok": ok, "bytes": received}


def repeat_podmagic(spec: dict[str, Any]) -> dict[str, Any]:
    from podmagic import Cluster

    cluster = Cluster(kubeconfig=spec["kubeconfig"], namespace=NAMESPACE)
    pod, argv = pod_names(1)[0], list(spec["argv"])

    def once() -> tuple[int, int]:
        [result] = cluster.run(argv, pod)
        return int(result.exit_code == 0), len(result.stdout) + result.stdout_dropped

    cluster.run(["true"], pod)  # imports and the loop thread, untimed
    figures = in_a_row(spec["runs"], once)
    close = getattr(cluster, "close", None)  # older versions have none (to compare)
    if close is not None:
        close()
    return figures


def repeat_kubectl(spec: dict[str, Any]) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": spec["kubectl_home"],
        "KUBECONFIG": spec["kubeconfig"],
        "KUBECACHEDIR": spec["kubectl_cache"],
    }
    command = [spec["kubectl"], "exec", "-n", NAMESPACE, pod_names(1)[0], "--", *spec["argv"]]

    def once() -> tuple[int, int]:
        done = subprocess.run(command, capture_output=True, env=env, check=False)
        return int(done.returncode == 0), len(done.stdout)

    figures = in_a_row(spec["runs"], once, resource.RUSAGE_CHILDREN)
    # The client is the kubectl processes: their CPU, and the largest of them.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures.update(cpu_s=sum(figures["run_cpu_ms"]) / 1000, rss_peak_mib=peak, rss_growth_mib=peak)
    return figures


def repeat_official(spec: dict[str, Any]) -> dict[str, Any]:
    _, api = _official_api(spec)
    pod, argv = pod_names(1)[0], list(spec["argv"])

    def once(command: list[str] = argv) -> tuple[int, int]:
        response = _official_exec(api, pod, command)
        kept: list[bytes] = []
        _official_read(response, kept)
        code = response.returncode
        response.close()
        return int(code == 0), len(b"".join(kept))

    once(["true"])  # lazy imports, untimed
    return in_a_row(spec["runs"], once)


#: The same contenders, one pod, ``spec["runs"]`` runs in a row.
REPEATERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "podmagic": repeat_podmagic,
    "kernel": run_kernel,
    "kernel-quiet": run_kernel,
    "kubectl": repeat_kubectl,
    "official": repeat_official,
}


CONTENDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "podmagic": run_podmagic,
    "podmagic-nocap": run_podmagic,
    "podmagic-widgets": run_podmagic,
    "kernel": run_kernel,
    "kernel-quiet": run_kernel,
    "kubectl": run_kubectl,
    "official": run_official,
    "floor": run_floor,
    "podmagic-names": run_named,
    "podmagic-selector": run_named,
    "podmagic-selected": run_named,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    table = REPEATERS if spec.get("runs", 1) > 1 else CONTENDERS
    figures = table[spec["contender"]](spec)
    figures["cpus"] = affinity()
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
