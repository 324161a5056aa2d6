"""Run every benchmark scenario for every contender and print (and save) the table.

    .venv/bin/python -m benchmarks.run              # the full run (about 10-15 minutes)
    .venv/bin/python -m benchmarks.run --quick      # smaller sizes, one repetition
    .venv/bin/python -m benchmarks.run --smoke      # everything in miniature (CI, < 60 s)

One sandbox (``python -m podmagic.sandbox serve``, a process of its own) serves the whole
run. Each measurement is a fresh worker process (:mod:`benchmarks.worker`); repetitions are
interleaved (every contender once, then every contender again ...) so that load from other
programs on the machine falls on all of them alike, and the table shows medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cluster import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
CAPTURE_LIMIT_MIB = 16

#: Shown in the tables, in this order.
CONTENDER_TITLES = {
    "podmagic": "podmagic engine (Cluster.run)",
    "podmagic-nocap": "podmagic, capture_limit=0, on_event only",
    "podmagic-widgets": "podmagic + WidgetRenderer (recorded comms)",
    "kernel": "%%pod in a real kernel",
    "kernel-quiet": "%%pod -q in a real kernel (no view)",
    "kubectl": "kubectl 1.33 exec, xargs -P",
    "official": "official client stream(), thread pool",
    "floor": "floor: bare websockets",
}
#: Titles in the "runs in a row" table, where each contender runs one exec at a time.
RUNS_TITLES = {
    "podmagic": "podmagic engine (`Cluster.run`, one Cluster)",
    "kernel": "`%pod` in a real kernel (one cell each, timed in the kernel)",
    "kernel-quiet": "`%pod -q` in a real kernel (no live view)",
    "kubectl": "kubectl 1.33 exec (one process each)",
    "official": "official client `stream()` (one ApiClient)",
}


@dataclass
class Scenario:
    key: str
    number: int
    title: str
    pods: int
    argv: list[str]
    expect_bytes: int  # per pod
    contenders: list[str]
    #: contender -> at most this many repetitions (slow ones in big scenarios)
    repeat_cap: dict[str, int] = field(default_factory=dict)
    #: contenders whose output goes to /dev/null rather than a file (kubectl)
    discard_output: bool = False
    #: contender -> seconds after which it stops reading and reports what it received
    time_limit: dict[str, float] = field(default_factory=dict)
    #: runs one after another in the same client (a person or a script at work); each
    #: contender then reports every run's time too (see benchmarks.worker)
    runs: int = 1


def _lines_command(pods_lines: int, batches: int) -> tuple[list[str], int]:
    per_batch = pods_lines // batches
    text = "line %g: the quick brown fox jumps over the lazy dog"
    script = f'for i in $(seq {batches}); do seq -f "batch $i {text}" {per_batch}; sleep 0.2; done'
    # The bytes one pod prints: computed once, locally, with the same tools.
    printed = subprocess.run(
        ["sh", "-c", script.replace("sleep 0.2", "true")], capture_output=True, check=True
    ).stdout
    return ["sh", "-c", script], len(printed)


def scenarios(mode: str) -> list[Scenario]:
    fan_sizes = {"full": [10, 100, 500], "quick": [10, 100], "smoke": [5]}[mode]
    stream_bytes = {"full": 256 * MiB, "quick": 64 * MiB, "smoke": 1 * MiB}[mode]
    many_pods = {"full": 1000, "quick": 200, "smoke": 5}[mode]
    many_bytes = {"full": MiB, "quick": MiB, "smoke": 64 * 1024}[mode]
    view_pods, view_lines, view_batches = {
        "full": (20, 100_000, 10),
        "quick": (20, 100_000, 10),
        "smoke": (5, 500, 2),
    }[mode]
    fanout = ["podmagic", "kernel", "kubectl", "official", "floor"]
    found: list[Scenario] = []
    for size in fan_sizes:
        found.append(
            Scenario(
                key=f"fanout-{size}",
                number=1,
                title=f"1. fan-out of `hostname` over {size} pods",
                pods=size,
                argv=["hostname"],
                expect_bytes=6,
                contenders=fanout,
                repeat_cap={"kubectl": 2} if size >= 500 else {},
            )
        )
    found.append(
        Scenario(
            key="stream",
            number=2,
            title=f"2. one exec streaming {stream_bytes // MiB} MiB of stdout",
            pods=1,
            argv=["head", "-c", str(stream_bytes), "/dev/zero"],
            expect_bytes=stream_bytes,
            contenders=["podmagic", "podmagic-nocap", "kernel", "kubectl", "official", "floor"],
            discard_output=True,
            # The official client's read loop appends every frame to one bytes object
            # (quadratic): 256 MiB take it minutes, so it is cut off and measured so far.
            time_limit={"official": 30.0},
            repeat_cap={"official": 1},
        )
    )
    found.append(
        Scenario(
            key="many",
            number=3,
            title=f"3. {many_pods} pods each printing "
            + (f"{many_bytes // MiB} MiB" if many_bytes >= MiB else f"{many_bytes // 1024} KiB"),
            pods=many_pods,
            argv=["head", "-c", str(many_bytes), "/dev/zero"],
            expect_bytes=many_bytes,
            contenders=["podmagic", "podmagic-nocap", "kernel", "kubectl", "official", "floor"],
            repeat_cap={"kubectl": 1, "official": 1, "kernel": 1} if mode == "full" else {},
            discard_output=True,
        )
    )
    in_a_row = {"full": 30, "quick": 30, "smoke": 5}[mode]
    argv, per_pod = _lines_command(view_lines // view_pods, view_batches)
    found.append(
        Scenario(
            key="view",
            number=4,
            title=(
                f"4. live view fed {view_lines:,} lines from {view_pods} pods "
                f"({view_batches} bursts 0.2 s apart)"
            ),
            pods=view_pods,
            argv=argv,
            expect_bytes=per_pod,
            contenders=[
                "podmagic",
                "podmagic-widgets",
                "kernel",
                "kernel-quiet",
                "kubectl",
                "official",
                "floor",
            ],
        )
    )
    found.append(
        Scenario(
            key="repeat",
            number=5,
            title=f"5. one pod, {in_a_row} runs in a row (`hostname`)",
            pods=1,
            argv=["hostname"],
            expect_bytes=6,
            contenders=["podmagic", "kernel", "kernel-quiet", "kubectl", "official"],
            runs=in_a_row,
        )
    )
    return found


# -- running ---------------------------------------------------------------------------------


def _kubectl_binary() -> str | None:
    found = shutil.which("kubectl")
    if found is None:
        return None
    binary = Path(os.path.realpath(found)).parent / "kubectl.1.33"
    return str(binary) if os.access(binary, os.X_OK) else None


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
        self.repeat = args.repeat or (1 if self.mode != "full" else 3)
        self.concurrency = args.concurrency
        self.scenarios = [
            s
            for s in scenarios(self.mode)
            if not args.only or any(s.key.startswith(o) for o in args.only)
        ]
        self.kubectl = _kubectl_binary()
        self.sandbox = SandboxProcess(max(s.pods for s in self.scenarios))
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def log(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

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
        subprocess.run(
            [self.kubectl, "exec", "-n", "bench", "p0000", "--", "true"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def measure(self, scenario: Scenario, contender: str) -> dict[str, Any]:
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
            expected = scenario.pods * scenario.runs
            if figures.get("timed_out"):
                figures["partial"] = (
                    f"stopped after {figures['wall_s']:.0f} s with "
                    f"{figures['bytes'] / MiB:.0f} of "
                    f"{expected * scenario.expect_bytes / MiB:.0f} MiB"
                )
            elif figures.get("ok") != expected:
                figures["error"] = f"{figures.get('ok')} of {expected} execs succeeded"
            elif figures.get("bytes") != expected * scenario.expect_bytes:
                figures["error"] = (
                    f"received {figures.get('bytes')} bytes, expected "
                    f"{expected * scenario.expect_bytes}"
                )
        figures["process_s"] = time.perf_counter() - began
        return figures

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        self.sandbox.start()
        try:
            self.log(
                f"sandbox: {self.sandbox.pods} pods, started in {self.sandbox.started_in:.1f}s"
            )
            self.warm_kubectl()
            for scenario in self.scenarios:
                if self.args.contenders:
                    scenario.contenders = [
                        c for c in scenario.contenders if c in self.args.contenders
                    ]
                runs: dict[str, list[dict[str, Any]]] = {c: [] for c in scenario.contenders}
                for repetition in range(self.repeat):
                    for contender in scenario.contenders:
                        if repetition >= scenario.repeat_cap.get(contender, self.repeat):
                            continue
                        figures = self.measure(scenario, contender)
                        runs[contender].append(figures)
                        self.log(
                            f"{scenario.key:12} #{repetition + 1} {contender:17} "
                            + (
                                f"ERROR {figures['error']}"
                                if "error" in figures
                                else f"{figures['wall_s']:8.3f}s wall {figures['cpu_s']:8.3f}s cpu "
                                f"{figures['rss_peak_mib']:7.1f} MiB"
                            )
                        )
                self.results[scenario.key] = runs
        finally:
            self.sandbox.stop()
        return self.report(time.perf_counter() - started)

    # -- the report ----------------------------------------------------------------------------

    def report(self, elapsed: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "machine": machine(),
            "command": " ".join([_shown_python(), "-m benchmarks.run", *sys.argv[1:]]),
            "mode": self.mode,
            "repeat": self.repeat,
            "concurrency": self.concurrency,
            "elapsed_s": elapsed,
            "scenarios": [],
        }
        for scenario in self.scenarios:
            runs = self.results.get(scenario.key, {})
            entry: dict[str, Any] = {
                "key": scenario.key,
                "number": scenario.number,
                "title": scenario.title,
                "pods": scenario.pods,
                "argv": scenario.argv,
                "bytes_per_pod": scenario.expect_bytes,
                "runs": scenario.runs,
                "contenders": {},
            }
            for contender in scenario.contenders:
                measured = runs.get(contender, [])
                good = [r for r in measured if "error" not in r]
                median = (
                    {
                        key: statistics.median(r[key] for r in good)
                        for key in good[0]
                        if isinstance(good[0][key], (int, float))
                    }
                    if good
                    else {}
                )
                if median and median.get("wall_s"):
                    median["mib_per_s"] = median["bytes"] / MiB / median["wall_s"]
                    median["cpu_ms_per_exec"] = (
                        1000 * median["cpu_s"] / (scenario.pods * scenario.runs)
                    )
                entry["contenders"][contender] = {
                    "runs": measured,
                    "median": median,
                    "errors": [r["error"] for r in measured if "error" in r],
                    "partial": next((r["partial"] for r in good if "partial" in r), None),
                }
            out["scenarios"].append(entry)
        out["targets"] = targets(out)
        return out


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


def _median(report: dict[str, Any], scenario: str, contender: str, key: str) -> float | None:
    for entry in report["scenarios"]:
        if entry["key"] == scenario:
            value = entry["contenders"].get(contender, {}).get("median", {}).get(key)
            return float(value) if value is not None else None
    return None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    found: list[dict[str, Any]] = []

    def add(name: str, value: float | None, met: bool | None, shown: str) -> None:
        found.append(
            {
                "target": name,
                "value": value,
                "met": met,
                "shown": shown if value is not None else "not measured",
            }
        )

    keys = {entry["key"] for entry in report["scenarios"]}
    fan = (
        "fanout-100"
        if "fanout-100" in keys
        else next((k for k in sorted(keys) if k.startswith("fanout")), None)
    )
    if fan:
        pm = _median(report, fan, "podmagic", "wall_s")
        kc = _median(report, fan, "kubectl", "wall_s")
        of = _median(report, fan, "official", "wall_s")
        pm_cpu = _median(report, fan, "podmagic", "cpu_s")
        of_cpu = _median(report, fan, "official", "cpu_s")
        ratio = kc / pm if pm and kc else None
        add(
            f"{fan}: at least 15x faster than the kubectl loop",
            ratio,
            ratio >= 15 if ratio else None,
            f"{ratio:.1f}x" if ratio else "",
        )
        ratio = of / pm if pm and of else None
        add(
            f"{fan}: faster than the official client's thread pool",
            ratio,
            ratio > 1 if ratio else None,
            f"{ratio:.2f}x" if ratio else "",
        )
        ratio = pm_cpu / of_cpu if pm_cpu and of_cpu else None
        add(
            f"{fan}: client CPU per exec at most half the official client's",
            ratio,
            ratio <= 0.5 if ratio else None,
            f"{ratio:.2f} of it" if ratio else "",
        )
    big = max(
        (k for k in keys if k.startswith("fanout")),
        key=lambda k: int(k.split("-")[1]),
        default=None,
    )
    if big:
        pm = _median(report, big, "podmagic", "wall_s")
        fl = _median(report, big, "floor", "wall_s")
        ratio = pm / fl if pm and fl else None
        add(
            f"{big}: within 1.3x of the floor",
            ratio,
            ratio <= 1.3 if ratio else None,
            f"{ratio:.2f}x the floor" if ratio else "",
        )
    if "stream" in keys:
        pm = _median(report, "stream", "podmagic", "mib_per_s")
        kc = _median(report, "stream", "kubectl", "mib_per_s")
        ratio = pm / kc if pm and kc else None
        add(
            "stream: throughput at least kubectl's",
            ratio,
            ratio >= 1 if ratio else None,
            f"{pm:.0f} vs {kc:.0f} MiB/s ({ratio:.2f}x)" if ratio else "",
        )
        growth = _median(report, "stream", "podmagic", "rss_growth_mib")
        beyond = growth - CAPTURE_LIMIT_MIB if growth is not None else None
        add(
            "stream: client RSS growth under 64 MiB beyond the 16 MiB capture cap",
            beyond,
            beyond < 64 if beyond is not None else None,
            f"{beyond:.0f} MiB beyond the cap" if beyond is not None else "",
        )
    if "many" in keys:
        peak = _median(report, "many", "podmagic", "rss_peak_mib")
        add(
            "many: completes with client RSS under 300 MiB",
            peak,
            peak < 300 if peak is not None else None,
            f"{peak:.0f} MiB peak" if peak else "",
        )
    if "repeat" in keys:
        for contender, limit, name in (
            ("podmagic", 5.0, "Cluster.run"),
            ("kernel", 10.0, "%pod in a kernel"),
        ):
            # Both readings of "client time": the run as its caller waits for it, and the
            # client's own CPU (the wall time also holds the server's work and any load).
            for figure, what in (("run_ms_median", "time"), ("run_cpu_ms_median", "client CPU")):
                value = _median(report, "repeat", contender, figure)
                add(
                    f"repeat: at most {limit:g} ms {what} per {name} (one pod, runs in a row; "
                    "median)",
                    value,
                    value <= limit if value is not None else None,
                    f"{value:.1f} ms" if value is not None else "",
                )
    if "view" in keys:
        rate = _median(report, "view", "podmagic-widgets", "max_updates_1s")
        kernel_rate = _median(report, "view", "kernel", "max_updates_1s")
        worst = max(v for v in (rate, kernel_rate, 0.0) if v is not None)
        add(
            "view: at most ~10 display updates a second",
            worst if rate is not None else None,
            worst <= 11 if rate is not None else None,
            f"at most {worst:.0f} in any second",
        )
    return found


# -- printing ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _range(median: dict[str, Any], name: str) -> str:
    """``median (min–max)`` of one per-run figure, in ms."""
    if f"{name}_median" not in median:
        return "–"
    return (
        f"{median[f'{name}_median']:.1f} ({median[f'{name}_min']:.1f}–{median[f'{name}_max']:.1f})"
    )


def _render_runs(entry: dict[str, Any]) -> list[str]:
    """The table of a "runs in a row" scenario: each run's time and client CPU."""
    out = [
        (
            "| contender | runs | ms per run, median (min–max) | client CPU ms per run | "
            "peak RSS MiB | server CPU s |"
        ),
        "|---|--:|--:|--:|--:|--:|",
    ]
    for contender, data in entry["contenders"].items():
        median = data["median"]
        if not median:
            error = data["errors"][0] if data["errors"] else "not run"
            out.append(f"| {RUNS_TITLES[contender]} | 0 | error: {error} | | | |")
            continue
        title = RUNS_TITLES[contender]
        out.append(
            f"| {title} | {entry['runs']} | {_range(median, 'run_ms')} | "
            f"{_range(median, 'run_cpu_ms')} | {_fmt(median['rss_peak_mib'], 0)} | "
            f"{_fmt(median.get('server_cpu_s'), 2)} |"
        )
    kernel = entry["contenders"].get("kernel", {}).get("median", {})
    if "cell_ms_median" in kernel:
        out.append(
            "\nA `%pod` cell as the front end saw it (jupyter_client, execute to idle): "
            f"{_range(kernel, 'cell_ms')} ms."
        )
    return out


def render_tables(report: dict[str, Any]) -> str:
    out: list[str] = []
    for entry in report["scenarios"]:
        contenders = entry["contenders"]
        if entry.get("runs", 1) > 1:
            out.append(f"\n#### {entry['title']}\n")
            out.extend(_render_runs(entry))
            continue
        base = contenders.get("podmagic", {}).get("median", {})
        streaming = entry["number"] in (2, 3)
        view = entry["number"] == 4
        out.append(f"\n#### {entry['title']}\n")
        header = [
            "contender",
            "runs",
            "wall s",
            "× podmagic",
            "client CPU s",
            "CPU ms/exec",
            "peak RSS MiB",
            "RSS growth MiB",
            "server CPU s",
        ]
        if streaming:
            header.insert(4, "MiB/s")
        if view:
            header += ["updates", "max/1 s", "comm msgs", "comm KiB"]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
        for contender, data in contenders.items():
            median = data["median"]
            runs = len([r for r in data["runs"] if "error" not in r])
            if not median:
                error = data["errors"][0] if data["errors"] else "not run"
                out.append(
                    f"| {CONTENDER_TITLES[contender]} | 0 | error: {error} |"
                    + " |" * (len(header) - 3)
                )
                continue
            ratio = (median["wall_s"] / base["wall_s"]) if base.get("wall_s") else None
            rss = _fmt(median["rss_peak_mib"], 0)
            if contender == "kubectl" and "rss_one_mib" in median:
                rss += f" ({_fmt(median['rss_one_mib'], 0)} each)"
            wall = _fmt(median["wall_s"], 3)
            if data.get("partial"):
                wall = f"> {median['wall_s']:.0f} ({data['partial']})"
            row = [
                CONTENDER_TITLES[contender],
                str(runs),
                wall,
                _fmt(ratio, 2),
                _fmt(median["cpu_s"], 2),
                _fmt(median["cpu_ms_per_exec"], 1),
                rss,
                _fmt(median["rss_growth_mib"], 0),
                _fmt(median.get("server_cpu_s"), 2),
            ]
            if streaming:
                row.insert(4, _fmt(median["mib_per_s"], 0))
            if view:
                if "updates_sent" in median:
                    row += [
                        _fmt(median["updates_sent"], 0),
                        _fmt(median.get("max_updates_1s"), 0),
                        _fmt(median["comm_messages"], 0),
                        _fmt(median["comm_bytes"] / 1024, 0),
                    ]
                else:
                    row += ["–"] * 4
            out.append("| " + " | ".join(row) + " |")
        if view:
            extra = []
            for name, quiet in (("podmagic-widgets", "podmagic"), ("kernel", "kernel-quiet")):
                loud = contenders.get(name, {}).get("median", {}).get("cpu_s")
                calm = contenders.get(quiet, {}).get("median", {}).get("cpu_s")
                if loud is not None and calm is not None:
                    extra.append(f"rendering CPU ({name} − {quiet}): {loud - calm:.2f} s")
            if extra:
                out.append("\n" + "; ".join(extra))
    out.append("\n#### Targets\n")
    out.append("| target | measured | met |")
    out.append("|---|---|---|")
    for target in report["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[target["met"]]
        out.append(f"| {target['target']} | {target['shown']} | {met} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, one repetition")
    size.add_argument("--smoke", action="store_true", help="every scenario in miniature (CI)")
    parser.add_argument(
        "--repeat", type=int, help="repetitions (default 3; 1 with --quick/--smoke)"
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
        help="scenario keys to run (prefixes: fanout, stream, many, view, repeat)",
    )
    parser.add_argument(
        "--contenders",
        nargs="*",
        choices=sorted(CONTENDER_TITLES),
        help="run only these contenders (default: every one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest.json",
        help="where to write the JSON (default benchmarks/results/latest.json)",
    )
    args = parser.parse_args(argv)
    bench = Bench(args)
    report = bench.run()
    m = report["machine"]
    tables = (
        f"podmagic benchmarks ({report['mode']}): {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Python {m['python']}, {m['date']}; `{report['command']}`; "
        f"-P {report['concurrency']}, medians of up to {report['repeat']} runs; "
        f"{report['elapsed_s']:.0f} s in all\n" + render_tables(report)
    )
    print(tables)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(tables + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
