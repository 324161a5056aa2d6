"""The markdown of a run (``benchmarks/results/latest.md``, and the README's tables).

Figures measured in several rounds are shown as ``median (min–max)``. A scenario with per-round
ratios (the fan-out, the named pods) gets a second table: each ratio in every round, its median
and range, and whether its target held in every round.
"""

from __future__ import annotations

from typing import Any

from .summary import shown_ratio

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
    "podmagic-names": "podmagic, the pods by name",
    "podmagic-selector": "podmagic, the same pods by label selector",
    "podmagic-selected": "podmagic, the same pods found before (`selection=`)",
}
#: Titles in the "runs in a row" table, where each contender runs one exec at a time.
RUNS_TITLES = {
    "podmagic": "podmagic engine (`Cluster.run`, one Cluster)",
    "kernel": "`%pod` in a real kernel (one cell each, timed in the kernel)",
    "kernel-quiet": "`%pod -q` in a real kernel (no live view)",
    "kubectl": "kubectl 1.33 exec (one process each)",
    "official": "official client `stream()` (one ApiClient)",
}


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _spread(data: dict[str, Any], key: str, digits: int) -> str:
    """``median (min–max)`` of a figure over the rounds; the median alone if they agree."""
    median = data["median"].get(key)
    low, high = data["min"].get(key), data["max"].get(key)
    if median is None:
        return "–"
    if low is None or high is None or f"{low:,.{digits}f}" == f"{high:,.{digits}f}":
        return _fmt(median, digits)
    return f"{_fmt(median, digits)} ({_fmt(low, digits)}–{_fmt(high, digits)})"


def _runs(data: dict[str, Any]) -> int:
    return len([r for r in data["runs"] if "error" not in r])


def _error_row(title: str, data: dict[str, Any], columns: int) -> str:
    error = data["errors"][0] if data["errors"] else "not run"
    return f"| {title} | 0 | error: {error} |" + " |" * (columns - 3)


def _render_runs(entry: dict[str, Any]) -> list[str]:
    """The table of a "runs in a row" scenario: each run's time and client CPU."""
    out = [
        (
            "| contender | rounds × runs | ms per run, median (min–max) | client CPU ms per run | "
            "peak RSS MiB | server CPU s |"
        ),
        "|---|--:|--:|--:|--:|--:|",
    ]
    for contender, data in entry["contenders"].items():
        median = data["median"]
        title = RUNS_TITLES[contender]
        if not median:
            out.append(_error_row(title, data, 6))
            continue
        out.append(
            f"| {title} | {_runs(data)} × {entry['runs']} | {_per_run(median, 'run_ms')} | "
            f"{_per_run(median, 'run_cpu_ms')} | {_fmt(median['rss_peak_mib'], 0)} | "
            f"{_fmt(median.get('server_cpu_s'), 2)} |"
        )
    kernel = entry["contenders"].get("kernel", {}).get("median", {})
    if "cell_ms_median" in kernel:
        out.append(
            "\nA `%pod` cell as the front end saw it (jupyter_client, execute to idle): "
            f"{_per_run(kernel, 'cell_ms')} ms."
        )
    return out


def _per_run(median: dict[str, Any], name: str) -> str:
    """``median (min–max)`` of one per-run figure of a worker, in ms."""
    if f"{name}_median" not in median:
        return "–"
    return (
        f"{median[f'{name}_median']:.1f} ({median[f'{name}_min']:.1f}–{median[f'{name}_max']:.1f})"
    )


def _render_fanout(entry: dict[str, Any]) -> list[str]:
    """Client CPU per exec first (the headline), then wall time, each as median (range); the
    REST reads a run made where they were counted (the named pods)."""
    contenders = entry["contenders"]
    reads = any("requests" in data["median"] for data in contenders.values())
    header = ["contender", "rounds", "client CPU ms per exec", "wall s", "peak RSS MiB"]
    header += ["server CPU ms per exec"] + (["REST reads per run"] if reads else [])
    out = ["| " + " | ".join(header) + " |"]
    out.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
    for contender, data in contenders.items():
        title = CONTENDER_TITLES[contender]
        if not data["median"]:
            out.append(_error_row(title, data, len(header)))
            continue
        rss = _fmt(data["median"]["rss_peak_mib"], 0)
        if contender == "kubectl" and "rss_one_mib" in data["median"]:
            rss += f" ({_fmt(data['median']['rss_one_mib'], 0)} each)"
        row = [
            title,
            str(_runs(data)),
            _spread(data, "cpu_ms_per_exec", 2),
            _spread(data, "wall_s", 3),
            rss,
            _spread(data, "server_cpu_ms_per_exec", 2),
        ]
        if reads:
            row.append(_spread(data, "requests", 0))
        out.append("| " + " | ".join(row) + " |")
    return out


def _render_ratios(entry: dict[str, Any]) -> list[str]:
    rounds = max((ratio["rounds"] for ratio in entry["ratios"]), default=0)
    out = [
        "\n| ratio | target | "
        + " | ".join(f"round {n}" for n in range(1, rounds + 1))
        + " | median (min–max) | held in every round |",
        "|---|---|" + "--:|" * rounds + "--:|---|",
    ]
    for ratio in entry["ratios"]:
        cells = [_fmt(value, 2) for value in ratio["per_round"]]
        held = {True: "yes", False: "**no**", None: "–"}[ratio["held"]]
        if ratio["held"] is False:
            held += f" ({ratio['held_rounds']} of {ratio['rounds']})"
        out.append(
            f"| {ratio['title']} | {ratio['target'] or '–'} | "
            + " | ".join(cells)
            + f" | {shown_ratio(ratio)} | {held} |"
        )
    return out


def _render_plain(entry: dict[str, Any]) -> list[str]:
    """Streaming, many pods, the live view: wall and CPU as median (range), medians else."""
    contenders = entry["contenders"]
    base = contenders.get("podmagic", {}).get("median", {})
    streaming = entry["number"] in (2, 3)
    view = entry["number"] == 4
    header = [
        "contender",
        "rounds",
        "wall s",
        "× podmagic",
        "client CPU ms/exec",
        "peak RSS MiB",
        "RSS growth MiB",
        "server CPU s",
    ]
    if streaming:
        header.insert(4, "MiB/s")
    if view:
        header += ["updates", "max/1 s", "comm msgs", "comm KiB"]
    out = ["| " + " | ".join(header) + " |"]
    out.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
    for contender, data in contenders.items():
        median = data["median"]
        if not median:
            out.append(_error_row(CONTENDER_TITLES[contender], data, len(header)))
            continue
        ratio = (median["wall_s"] / base["wall_s"]) if base.get("wall_s") else None
        rss = _fmt(median["rss_peak_mib"], 0)
        if contender == "kubectl" and "rss_one_mib" in median:
            rss += f" ({_fmt(median['rss_one_mib'], 0)} each)"
        wall = _spread(data, "wall_s", 3)
        if data.get("partial"):
            wall = f"> {median['wall_s']:.0f} ({data['partial']})"
        row = [
            CONTENDER_TITLES[contender],
            str(_runs(data)),
            wall,
            _fmt(ratio, 2),
            _spread(data, "cpu_ms_per_exec", 1),
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
    return out


def render_heading(report: dict[str, Any]) -> str:
    """What ran where: machine, pinning, command, rounds, time taken."""
    m = report["machine"]
    rounds = f"{report['rounds']} round" + ("s" if report["rounds"] != 1 else "")
    if report.get("other_rounds") and report["other_rounds"] < report["rounds"]:
        rounds += f" (stream, many, view, repeat: at most {report['other_rounds']})"
    return (
        f"podmagic benchmarks ({report['mode']}), {m['date']}: {m['cores']} cores, "
        f"{m['memory_gib']} GiB, Python {m['python']}; {report['pinning']['shown']}; "
        f"`{report['command']}`; -P {report['concurrency']}; {rounds}, every contender once "
        f"per round; {report['elapsed_s']:.0f} s in all"
    )


def render_tables(report: dict[str, Any]) -> str:
    """Every scenario's table, then the targets."""
    out: list[str] = []
    for entry in report["scenarios"]:
        out.append(f"\n#### {entry['title']}\n")
        if entry.get("runs", 1) > 1:
            out.extend(_render_runs(entry))
        elif entry.get("ratios"):
            out.extend(_render_fanout(entry))
            out.extend(_render_ratios(entry))
        else:
            out.extend(_render_plain(entry))
    out.append("\n#### Targets\n")
    out.append("| target | measured | met |")
    out.append("|---|---|---|")
    for target in report["targets"]:
        met = {True: "yes", False: "**no**", None: "–"}[target["met"]]
        out.append(f"| {target['target']} | {target['shown']} | {met} |")
    return "\n".join(out)
