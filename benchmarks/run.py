"""Run every benchmark scenario for every contender and print (and save) the table.

    .venv/bin/python -m benchmarks.run                       # the full run (about 10 minutes)
    .venv/bin/python -m benchmarks.run --only fanout named   # the fan-out targets alone
    .venv/bin/python -m benchmarks.run --quick               # smaller sizes, 3 rounds
    .venv/bin/python -m benchmarks.run --smoke               # everything in miniature (CI)

One sandbox (``python -m podmagic.sandbox serve``, a process of its own) serves the whole
run. With two or more cores it is pinned to one core and every contender to another
(:mod:`benchmarks.cores`), so the server and the client being measured do not compete. Each
measurement is a fresh worker process (:mod:`benchmarks.worker`). A scenario runs in rounds,
every contender once per round, so that load from other programs on the machine falls on all
of them alike; the tables show the median and the range over the rounds, and the ratios the
targets are stated on are computed in every round (:mod:`benchmarks.summary`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import cores
from .cluster import SandboxProcess
from .report import CONTENDER_TITLES, render_heading, render_tables
from .scenarios import DEFAULT_ROUNDS, OTHER_ROUNDS, Scenario, scenarios
from .summary import contender_summary, per_exec, round_ratios, targets

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


def _kubectl_binary() -> str | None:
    found = shutil.which("kubectl")
    if found is None:
        return None
    binary = Path(os.path.realpath(found)).parent / "kubectl.1.33"
    return str(binary) if os.access(binary, os.X_OK) else None


class Bench:
    """One run: the sandbox, the scenarios in rounds, the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
        self.rounds: int = args.rounds or DEFAULT_ROUNDS[self.mode]
        self.concurrency: int = args.concurrency
        self.scenarios = [
            s
            for s in scenarios(self.mode)
            if not args.only or any(s.key.startswith(o) for o in args.only)
        ]
        self.kubectl = _kubectl_binary()
        self.pinning = cores.plan(enabled=not args.no_pin)
        self.sandbox = SandboxProcess(
            max(s.pods for s in self.scenarios), cores=self.pinning.server
        )
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.elapsed: dict[str, float] = {}
        self.sandbox_cores: list[int] = []

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def rounds_of(self, scenario: Scenario) -> int:
        return min(self.rounds, scenario.max_rounds or self.rounds)

    def warm_kubectl(self) -> None:
        """A private HOME and KUBECACHEDIR, with discovery cached by one exec."""
        home = self.sandbox.folder / "kubectl-home"
        home.mkdir(exist_ok=True)
        self.kubectl_home, self.kubectl_cache = str(home), str(home / "cache")
        if self.kubectl is None:
            return
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": self.kubectl_home,
            "KUBECONFIG": str(self.sandbox.kubeconfig),
            "KUBECACHEDIR": self.kubectl_cache,
        }
        for attempt in range(3):
            done = subprocess.run(
                [self.kubectl, "exec", "-n", "bench", "p0000", "--", "true"],
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if done.returncode == 0:
                return
            # Under heavy load the sandbox may still be starting the pod's container.
            self.log(f"kubectl warm-up, attempt {attempt + 1}: {done.stderr.strip()[-300:]}")
            time.sleep(2)
        log = (self.sandbox.folder / "sandbox.log").read_text(errors="replace")
        self.log(f"the end of the sandbox's log:\n{log[-3000:]}")
        raise RuntimeError(f"kubectl exec into the sandbox failed: {done.stderr.strip()[-300:]}")

    def measure(self, scenario: Scenario, contender: str) -> dict[str, Any]:
        """One worker process on the contenders' core; its figures, or ``error``."""
        spec = {
            "contender": contender,
            "kubeconfig": str(self.sandbox.kubeconfig),
            "pods": scenario.pods,
            "argv": scenario.argv,
            "concurrency": self.concurrency,
            "expect_bytes": scenario.expect_bytes,
            "workdir": str(self.sandbox.folder),
            "kubectl": self.kubectl,
            "kubectl_home": self.kubectl_home,
            "kubectl_cache": self.kubectl_cache,
            "keep_output": not scenario.discard_output,
            "time_limit": scenario.time_limit.get(contender),
            "runs": scenario.runs,
        }
        if contender == "kubectl" and self.kubectl is None:
            return {"error": "kubectl.1.33 not found beside `kubectl` on PATH"}
        server_cpu = self.sandbox.cpu_seconds()
        began = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", json.dumps(spec)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
                # A preexec_fn is safe here: this process runs no threads.
                preexec_fn=self.pinning.for_client(),
            )
        except subprocess.TimeoutExpired:
            return {"error": "timed out"}
        figures: dict[str, Any]
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            figures = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        else:
            figures = json.loads(lines[-1])
            figures["server_cpu_s"] = self.sandbox.cpu_seconds() - server_cpu
            self.check(scenario, figures)
        figures["process_s"] = time.perf_counter() - began
        return figures

    def check(self, scenario: Scenario, figures: dict[str, Any]) -> None:
        """Mark ``figures`` as an error unless every exec succeeded with every byte on the
        contenders' core; add the per-exec figures."""
        expected = scenario.pods * scenario.runs
        if self.pinning.client is not None and figures.get("cpus") != sorted(self.pinning.client):
            figures["error"] = (
                f"the worker ran on cores {figures.get('cpus')}, not {sorted(self.pinning.client)}"
            )
        elif figures.get("timed_out"):
            figures["partial"] = (
                f"stopped after {figures['wall_s']:.0f} s with "
                f"{figures['bytes'] / MiB:.0f} of "
                f"{expected * scenario.expect_bytes / MiB:.0f} MiB"
            )
        elif figures.get("ok") != expected:
            figures["error"] = f"{figures.get('ok')} of {expected} execs succeeded" + why_failed(
                figures
            )
        elif figures.get("bytes") != expected * scenario.expect_bytes:
            figures["error"] = (
                f"received {figures.get('bytes')} bytes, expected "
                f"{expected * scenario.expect_bytes}"
            )
        if "error" not in figures:
            per_exec(figures, scenario)

    def run_scenario(self, scenario: Scenario) -> None:
        """``rounds_of(scenario)`` rounds, every contender once per round."""
        if self.args.contenders:
            scenario.contenders = [c for c in scenario.contenders if c in self.args.contenders]
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in scenario.contenders}
        began = time.perf_counter()
        # The sandbox sets a pod's container up (namespaces, its own /etc) at the first exec
        # into it: one pass over the scenario's pods, not measured, so that the first
        # contender of the first round does not pay for it (it took 3-4x its other rounds).
        if scenario.contenders:
            warm = "floor" if "floor" in scenario.contenders else scenario.contenders[0]
            warmed = self.measure(scenario, warm)
            self.log(
                f"{scenario.key:12} warm-up ({warm}, not counted)"
                + (f": {warmed['error']}" if "error" in warmed else "")
            )
        for number in range(1, self.rounds_of(scenario) + 1):
            for contender in scenario.contenders:
                if number > scenario.repeat_cap.get(contender, number):
                    continue
                figures = self.measure(scenario, contender)
                figures["round"] = number
                runs[contender].append(figures)
                self.log(
                    f"{scenario.key:12} #{number} {contender:17} "
                    + (
                        f"ERROR {figures['error']}"
                        if "error" in figures
                        else f"{figures['wall_s']:8.3f}s wall {figures['cpu_s']:8.3f}s cpu "
                        f"{figures['rss_peak_mib']:7.1f} MiB"
                    )
                )
        self.results[scenario.key] = runs
        self.elapsed[scenario.key] = time.perf_counter() - began

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.sandbox.start()
        try:
            self.log(
                f"sandbox: {self.sandbox.pods} pods, started in {self.sandbox.started_in:.1f}s, "
                f"all running and the server idle {self.sandbox.settled_in:.1f}s later; "
                f"{self.pinning.describe()}"
            )
            self.sandbox_cores = self.sandbox.affinity()
            self.warm_kubectl()
            for scenario in self.scenarios:
                self.run_scenario(scenario)
        finally:
            self.sandbox.stop()
        return self.report(time.perf_counter() - started)

    def report(self, elapsed: float) -> dict[str, Any]:
        """Every measurement, and per scenario: median and range per contender, ratios per
        round; then the targets."""
        pinning = self.pinning.as_json()
        pinning["sandbox_affinity"] = self.sandbox_cores
        out: dict[str, Any] = {
            "machine": machine(),
            "command": " ".join([_shown_python(), "-m benchmarks.run", *sys.argv[1:]]),
            "mode": self.mode,
            "rounds": self.rounds,
            "other_rounds": min(self.rounds, OTHER_ROUNDS[self.mode]),
            "concurrency": self.concurrency,
            "pinning": pinning,
            "elapsed_s": elapsed,
            "scenarios": [],
        }
        for scenario in self.scenarios:
            runs = self.results.get(scenario.key, {})
            rounds = self.rounds_of(scenario)
            out["scenarios"].append(
                {
                    "key": scenario.key,
                    "number": scenario.number,
                    "title": scenario.title,
                    "pods": scenario.pods,
                    "argv": scenario.argv,
                    "bytes_per_pod": scenario.expect_bytes,
                    "runs": scenario.runs,
                    "rounds": rounds,
                    "elapsed_s": self.elapsed.get(scenario.key),
                    "contenders": {
                        contender: contender_summary(runs.get(contender, []))
                        for contender in scenario.contenders
                    },
                    "ratios": [round_ratios(ratio, runs, rounds) for ratio in scenario.ratios],
                }
            )
        out["targets"] = targets(out)
        return out


def why_failed(figures: dict[str, Any]) -> str:
    """What a contender said about its failed execs (kubectl's pods and exit codes and the
    last line of its stderr), for the error's message; ``""`` when it said nothing."""
    parts = []
    if figures.get("failed_execs"):
        parts.append("failed (pod, exit code): " + ", ".join(figures["failed_execs"][:5]))
    tail = figures.get("stderr_tail", "").strip().splitlines()
    if tail:
        parts.append(f"stderr ends: {tail[-1][:200]}")
    return f" ({'; '.join(parts)})" if parts else ""


def _shown_python() -> str:
    """The interpreter as the README would write it (``.venv/bin/python``)."""
    try:
        return (
            os.path.relpath(sys.executable, ROOT)
            if sys.executable.startswith(str(ROOT))
            else "python"
        )
    except ValueError:
        return "python"


def machine() -> dict[str, Any]:
    """Cores, memory, Python, versions of the contenders' libraries, the date."""
    memory = 0
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    versions: dict[str, str | None] = {}
    for module in ("websockets", "aiohttp", "kubernetes", "ipykernel", "ipywidgets"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:  # noqa: BLE001 - informational only
            versions[module] = None
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "kubectl": _kubectl_binary(),
        "versions": versions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, 3 rounds")
    size.add_argument("--smoke", action="store_true", help="every scenario in miniature (CI)")
    parser.add_argument(
        "--rounds",
        "--repeat",
        type=int,
        help=(
            "rounds of the fan-out and named-pods scenarios, every contender once per round "
            "(default 5; 3 with --quick, 1 with --smoke); the other scenarios run at most 2 "
            "(1 with --quick/--smoke)"
        ),
    )
    parser.add_argument(
        "--concurrency",
        "-P",
        type=int,
        default=50,
        help="execs at once, for every contender (default 50)",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        help="scenario keys to run (prefixes: fanout, stream, many, view, repeat, named)",
    )
    parser.add_argument(
        "--contenders",
        nargs="*",
        choices=sorted(CONTENDER_TITLES),
        help="run only these contenders (default: every one)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the sandbox and the contenders wherever the system runs them",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest.json",
        help="where to write the JSON (default benchmarks/results/latest.json)",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, not {args.rounds}")
    report = Bench(args).run()
    tables = render_heading(report) + "\n" + render_tables(report)
    print(tables)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(tables + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
