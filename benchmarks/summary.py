"""From the measurements of a run to its summary: median and range of every figure, the
ratios of each round, and the targets, each with whether it held in every round.

A measurement is one worker's figures (see :mod:`benchmarks.worker`) plus ``round`` (1, 2,
...) and, when it failed, ``error``. Nothing here runs anything: the functions take the
figures and return plain dicts for the JSON report.
"""

from __future__ import annotations

import statistics
from typing import Any

from .scenarios import Ratio, Scenario

MiB = 1024 * 1024
CAPTURE_LIMIT_MIB = 16


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def per_exec(figures: dict[str, Any], scenario: Scenario) -> None:
    """Add the derived per-measurement figures: client CPU per exec and MiB/s."""
    execs = scenario.pods * scenario.runs
    figures["cpu_ms_per_exec"] = 1000 * figures["cpu_s"] / execs
    if "server_cpu_s" in figures:
        figures["server_cpu_ms_per_exec"] = 1000 * figures["server_cpu_s"] / execs
    if figures.get("wall_s"):
        figures["mib_per_s"] = figures["bytes"] / MiB / figures["wall_s"]


def contender_summary(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of every numeric figure of the measurements that succeeded."""
    good = [figures for figures in measured if "error" not in figures]
    keys = [key for key in good[0] if _numeric(good[0][key])] if good else []
    values = {key: [r[key] for r in good if _numeric(r.get(key))] for key in keys}
    return {
        "runs": measured,
        "median": {key: statistics.median(v) for key, v in values.items() if v},
        "min": {key: min(v) for key, v in values.items() if v},
        "max": {key: max(v) for key, v in values.items() if v},
        "errors": [figures["error"] for figures in measured if "error" in figures],
        "partial": next((r["partial"] for r in good if "partial" in r), None),
    }


def round_ratios(
    ratio: Ratio, runs: dict[str, list[dict[str, Any]]], rounds: int
) -> dict[str, Any]:
    """``ratio`` in each of ``rounds`` rounds (None where a side failed or did not run), with
    its median and range over the rounds it was measured in and whether the target held in
    every one of the ``rounds``."""

    def by_round(contender: str) -> dict[int, float]:
        return {
            figures["round"]: figures[ratio.figure]
            for figures in runs.get(contender, [])
            if "error" not in figures and figures.get(ratio.figure)
        }

    top, bottom = by_round(ratio.numerator), by_round(ratio.denominator)
    per_round: list[float | None] = [
        top[number] / bottom[number] if number in top and number in bottom else None
        for number in range(1, rounds + 1)
    ]
    measured = [value for value in per_round if value is not None]
    verdicts = [ratio.holds(value) for value in measured]
    held: bool | None = None
    if ratio.target and measured:
        # A round without the figure is a round the target cannot be said to hold in.
        held = len(measured) == rounds and all(verdicts)
    return {
        "key": ratio.key,
        "title": ratio.title,
        "target": ratio.target,
        "per_round": per_round,
        "median": statistics.median(measured) if measured else None,
        "min": min(measured) if measured else None,
        "max": max(measured) if measured else None,
        "held_rounds": sum(1 for verdict in verdicts if verdict),
        "rounds": rounds,
        "held": held,
    }


def shown_ratio(entry: dict[str, Any]) -> str:
    """``1.08 (1.02–1.12)``, or ``–`` when never measured."""
    if entry["median"] is None:
        return "–"
    if entry["min"] == entry["max"]:
        return f"{entry['median']:.2f}"
    return f"{entry['median']:.2f} ({entry['min']:.2f}–{entry['max']:.2f})"


# -- targets -------------------------------------------------------------------------------------


def _median(report: dict[str, Any], scenario: str, contender: str, key: str) -> float | None:
    for entry in report["scenarios"]:
        if entry["key"] == scenario:
            value = entry["contenders"].get(contender, {}).get("median", {}).get(key)
            return float(value) if value is not None else None
    return None


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met.

    A per-round ratio's target is met only if it held in every round (``value`` is then the
    median and ``rounds`` every round's value); the other targets are judged on medians.
    """
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

    for entry in report["scenarios"]:
        for ratio in entry.get("ratios", []):
            if not ratio["target"]:
                continue
            held = ratio["held_rounds"]
            found.append(
                {
                    "target": f"{entry['key']}: {ratio['title']} {ratio['target']}",
                    "value": ratio["median"],
                    "met": ratio["held"],
                    "rounds": ratio["per_round"],
                    "shown": (
                        f"{shown_ratio(ratio)}; held in {held} of {ratio['rounds']} rounds"
                        if ratio["median"] is not None
                        else "not measured"
                    ),
                }
            )
    keys = {entry["key"] for entry in report["scenarios"]}
    if "stream" in keys:
        pm = _median(report, "stream", "podmagic", "mib_per_s")
        kc = _median(report, "stream", "kubectl", "mib_per_s")
        ratio = pm / kc if pm and kc else None
        add(
            "stream: throughput at least kubectl's (medians)",
            ratio,
            ratio >= 1 if ratio else None,
            f"{pm:.0f} vs {kc:.0f} MiB/s ({ratio:.2f}x)" if ratio else "",
        )
        growth = _median(report, "stream", "podmagic", "rss_growth_mib")
        beyond = growth - CAPTURE_LIMIT_MIB if growth is not None else None
        add(
            "stream: client RSS growth under 64 MiB beyond the 16 MiB capture cap (median)",
            beyond,
            beyond < 64 if beyond is not None else None,
            f"{beyond:.0f} MiB beyond the cap" if beyond is not None else "",
        )
    if "many" in keys:
        peak = _median(report, "many", "podmagic", "rss_peak_mib")
        add(
            "many: completes with client RSS under 300 MiB (median)",
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
