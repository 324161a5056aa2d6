"""Where the fan-out's client CPU goes: CPU per exec and a cProfile of podmagic and the floor.

An investigation tool, not part of ``benchmarks.run``. It starts a sandbox of its own
(:class:`~benchmarks.cluster.SandboxProcess`) with ``--execs`` pods, and runs the fan-out of
``hostname`` over all of them (50 at once) in fresh worker processes, through the contenders
of :mod:`benchmarks.worker` unchanged:

* ``--repeat`` unprofiled runs of every contender, interleaved, for client CPU per exec
  (user+system of the worker during the timed section, ``getrusage``): median and range;
* then one run of ``podmagic`` and of the floors under cProfile (only the timed section, on
  the thread that does the work: podmagic's loop thread, the floor's main thread), whose top
  entries by cumulative and by own time are printed. The profiler slows the code it watches:
  its timings show proportions, the CPU figures come from the unprofiled runs.

``podmagic-websockets`` is ``podmagic`` with its exec WebSockets made by the ``websockets``
library instead of podmagic's own client (``PODMAGIC_EXEC_WEBSOCKET=websockets``, kept for
one release to compare the two). ``floor-direct`` is :func:`benchmarks.worker.run_floor` with websockets' proxy look-up per
connection (``proxy=True``: the environment's ``*_proxy`` variables read and parsed on every
connect) replaced by the answer podmagic looks up once per client (no proxy here): the floor
without a cost podmagic does not pay.

With two or more cores the sandbox (and the pod processes it starts) is pinned to the first
core and every worker to the second, so the server's CPU does not compete with the client's
and the client's CPU time is its own. Wall time is not reported: on a shared machine it says
more about the neighbours than about the code.

    .venv/bin/python -m benchmarks.profile_fanout [--execs 500] [--repeat 3] [--top 15]
        [--contenders podmagic podmagic-websockets floor floor-direct official] [--no-profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from typing import Any

from . import worker
from .cluster import GROUPS, SandboxProcess

CONCURRENCY = 50
ARGV = ("hostname",)
#: Contenders that can be profiled: their work runs on one thread the profiler can watch.
PROFILED = ("podmagic", "podmagic-websockets", "floor", "floor-direct")


def _cores() -> tuple[set[int], set[int]] | None:
    """``(sandbox cores, client cores)``, or None when there is nothing to pin to."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return {cores[0]}, {cores[1]}


class _ProfiledMeasure(worker.Measure):
    """:class:`benchmarks.worker.Measure` that also runs cProfile over the timed section.

    podmagic's blocking calls run on its event-loop thread (``podmagic._portal``), which
    cProfile only sees when it is enabled there; the other contenders work on the calling
    thread.
    """

    #: Timed by the CPU time of the profiled thread: time spent waiting in ``epoll`` for the
    #: server is not the client's cost.
    profiler = cProfile.Profile(time.thread_time)

    def _on_work_thread(self, call: Any) -> None:
        portal_module = sys.modules.get("podmagic._portal")
        portal = getattr(portal_module, "_portal", None)
        if portal is not None:
            portal.call(call)
        else:
            call()

    def __enter__(self) -> _ProfiledMeasure:  # noqa: PYI034 - Self needs Python 3.11
        super().__enter__()
        self._on_work_thread(self.profiler.enable)
        return self

    def __exit__(self, *exc: object) -> None:
        self._on_work_thread(self.profiler.disable)
        super().__exit__(*exc)


def _top(profiler: cProfile.Profile, sort: str, count: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(count)
    text = out.getvalue()
    # From the column header on: the preamble repeats what the caller already knows.
    start = text.find("   ncalls")
    return text[start:].rstrip() if start >= 0 else text.rstrip()


def run_worker(contender: str, kubeconfig: str, execs: int, profile: bool, top: int) -> None:
    """In a worker process: one measurement, printed as one JSON line."""
    spec: dict[str, Any] = {
        "contender": contender,
        "kubeconfig": kubeconfig,
        "pods": execs,
        "argv": list(ARGV),
        "concurrency": CONCURRENCY,
    }
    if profile:
        worker.Measure = _ProfiledMeasure  # type: ignore[misc]
    if contender == "podmagic-websockets":
        spec["contender"] = "podmagic"  # the switch is in the environment (see _measure)
    if contender == "floor-direct":
        import websockets.asyncio.client

        websockets.asyncio.client.get_proxy = lambda uri: None  # type: ignore[attr-defined]
        spec["contender"] = "floor"
    figures: dict[str, Any] = worker.CONTENDERS[spec["contender"]](spec)
    if profile:
        profiler = _ProfiledMeasure.profiler
        figures["calls"] = sum(entry[1] for entry in pstats.Stats(profiler).stats.values())  # type: ignore[attr-defined]
        figures["cumulative"] = _top(profiler, "cumulative", top)
        figures["tottime"] = _top(profiler, "tottime", top)
        dump = os.environ.get("PODMAGIC_PROFILE_DUMP")
        if dump:  # the raw statistics, for pstats (callers, callees)
            profiler.dump_stats(dump)
    print(json.dumps(figures), flush=True)


def _measure(
    contender: str, sandbox: SandboxProcess, execs: int, profile: bool, top: int
) -> dict[str, Any] | None:
    command = [sys.executable, "-m", "benchmarks.profile_fanout", "--worker", contender]
    command += ["--kubeconfig", str(sandbox.kubeconfig), "--execs", str(execs), "--top", str(top)]
    if profile:
        command.append("--profile")
    env = dict(os.environ)
    if contender == "podmagic-websockets":
        env["PODMAGIC_EXEC_WEBSOCKET"] = "websockets"
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        print(f"{contender}: failed\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if figures.get("ok") != execs:
        print(f"{contender}: {figures.get('ok')} of {execs} execs succeeded", file=sys.stderr)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--execs", type=int, default=500, choices=GROUPS, help="pods, one exec each"
    )
    parser.add_argument("--repeat", type=int, default=3, help="unprofiled runs per contender")
    parser.add_argument("--top", type=int, default=15, help="profile entries shown per order")
    parser.add_argument(
        "--contenders",
        nargs="*",
        default=["podmagic", "podmagic-websockets", "floor", "floor-direct", "official"],
        help="to measure",
    )
    parser.add_argument("--no-profile", action="store_true", help="CPU figures only")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.kubeconfig, args.execs, args.profile, args.top)
        return

    pinning = _cores()
    if pinning is not None:
        # Children inherit the affinity of the process that starts them: the sandbox (and
        # its pod processes) get the first core, the workers started later the second.
        os.sched_setaffinity(0, pinning[0])
    sandbox = SandboxProcess(args.execs)
    cpu: dict[str, list[float]] = {name: [] for name in args.contenders}
    profiles: dict[str, dict[str, Any]] = {}
    with sandbox:
        if pinning is not None:
            os.sched_setaffinity(0, pinning[1])
        for _ in range(args.repeat):
            for name in args.contenders:
                figures = _measure(name, sandbox, args.execs, False, args.top)
                if figures is not None:
                    cpu[name].append(1000 * figures["cpu_s"] / args.execs)
        if not args.no_profile:
            for name in args.contenders:
                if name in PROFILED:
                    figures = _measure(name, sandbox, args.execs, True, args.top)
                    if figures is not None:
                        profiles[name] = figures

    where = (
        f"sandbox on core {min(pinning[0])}, client on core {min(pinning[1])}"
        if pinning is not None
        else "not pinned (fewer than 2 cores)"
    )
    print(f"fan-out of {' '.join(ARGV)} over {args.execs} pods, {CONCURRENCY} at once; {where}")
    print(f"client CPU per exec, ms: median (min-max) of {args.repeat} runs")
    medians = {name: statistics.median(values) for name, values in cpu.items() if values}
    for name, values in cpu.items():
        if not values:
            continue
        line = f"  {name:<19} {medians[name]:.3f} ({min(values):.3f}-{max(values):.3f})"
        line += "  [" + ", ".join(f"{value:.3f}" for value in values) + "]"
        print(line)
    if "podmagic" in medians:
        for other in ("podmagic-websockets", "floor", "floor-direct", "official"):
            if other in medians:
                print(f"  podmagic / {other}: {medians['podmagic'] / medians[other]:.2f}")
    for name, figures in profiles.items():
        calls = figures["calls"]
        print(
            f"\n== {name}: cProfile of the timed section (thread CPU time), {calls} calls, "
            f"{calls / args.execs:.0f} per exec =="
        )
        print(f"-- by cumulative time --\n{figures['cumulative']}")
        print(f"-- by own time --\n{figures['tottime']}")


if __name__ == "__main__":
    main()
