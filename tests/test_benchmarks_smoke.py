"""The benchmarks in miniature: ``python -m benchmarks.run --smoke`` runs every scenario for every
contender (a few pods, one round) and reports numeric figures for each.

Speed is not asserted here — a shared CI machine cannot promise it; the README's "Performance"
section holds a full run. What is asserted is that the harness works end to end: the sandbox in
its own process (pinned to one core and the contenders to another, with two cores or more),
kubectl, the official client, the bare-websockets floor, podmagic's engine, ``%%pod`` in a real
kernel and the named/selected pods all completed every scenario and received every byte, and
every per-round ratio and target was computed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import kubectl_folder, missing_tool

ROOT = Path(__file__).resolve().parent.parent

COMMON = {"podmagic", "kernel", "kubectl", "official", "floor"}
#: scenario number -> the contenders it must report
EXPECTED = {
    1: COMMON,
    2: COMMON | {"podmagic-nocap"},
    3: COMMON | {"podmagic-nocap"},
    4: COMMON | {"podmagic-widgets", "kernel-quiet"},
    5: {"podmagic", "kernel", "kernel-quiet", "kubectl", "official"},  # one pod, runs in a row
    6: {"podmagic-names", "podmagic-selector", "podmagic-selected"},  # named vs selected
}
#: Scenario number -> the per-round ratios it must report.
RATIOS = {
    1: {"cpu_vs_floor", "cpu_vs_official", "wall_vs_kubectl", "wall_vs_official"},
    6: {"names_vs_selector", "names_cpu_vs_selector", "selector_vs_selected"},
}
#: What each contender of a "runs in a row" scenario reports besides FIGURES (ms per run).
PER_RUN = ("run_ms_median", "run_ms_min", "run_ms_max", "run_cpu_ms_median")
FIGURES = (
    "wall_s",
    "cpu_s",
    "rss_peak_mib",
    "rss_growth_mib",
    "server_cpu_s",
    "cpu_ms_per_exec",
    "mib_per_s",
)


def _require_contenders() -> None:
    folder = kubectl_folder()
    if folder is None or not os.access(folder / "kubectl.1.33", os.X_OK):
        missing_tool("kubectl.1.33 not found beside `kubectl` on PATH (a benchmark contender)")
    for module, why in (
        ("kubernetes", "the official client is a benchmark contender"),
        ("jupyter_client", "%%pod runs in a real kernel"),
        ("ipykernel", "%%pod runs in a real kernel"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing_tool(f"the {module} package is not installed ({why})")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(300)
def test_smoke_run_reports_every_scenario_and_contender(tmp_path: Path) -> None:
    _require_contenders()
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "#### Targets" in done.stdout  # the table went to stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert out.with_suffix(".md").read_text(encoding="utf-8").strip()

    assert report["mode"] == "smoke"
    assert _number(report["machine"]["cores"]) and report["machine"]["python"]
    pinning = report["pinning"]
    if len(os.sched_getaffinity(0)) >= 2:
        assert pinning["server"] and pinning["client"], pinning
        assert not set(pinning["server"]) & set(pinning["client"]), pinning
        assert pinning["sandbox_affinity"] == pinning["server"], pinning
    else:
        assert pinning["server"] is None and pinning["reason"], pinning
    by_number: dict[int, list[dict[str, Any]]] = {}
    for scenario in report["scenarios"]:
        by_number.setdefault(scenario["number"], []).append(scenario)
    assert set(by_number) == set(EXPECTED)

    problems: list[str] = []
    for number, scenarios in by_number.items():
        for scenario in scenarios:
            contenders = scenario["contenders"]
            missing = EXPECTED[number] - set(contenders)
            if missing:
                problems.append(f"{scenario['key']}: no {sorted(missing)}")
            for name, data in contenders.items():
                where = f"{scenario['key']} / {name}"
                if data["errors"]:
                    problems.append(f"{where}: {data['errors']}")
                median = data["median"]
                for figure in FIGURES:
                    if not _number(median.get(figure)):
                        problems.append(f"{where}: {figure} = {median.get(figure)!r}")
                if _number(median.get("wall_s")) and not median["wall_s"] > 0:
                    problems.append(f"{where}: wall time {median['wall_s']}")
                runs = scenario.get("runs", 1)
                if median.get("bytes") != scenario["pods"] * runs * scenario["bytes_per_pod"]:
                    problems.append(f"{where}: received {median.get('bytes')} bytes")
                if pinning["client"] and any(
                    r.get("cpus") != pinning["client"] for r in data["runs"]
                ):
                    problems.append(f"{where}: not on the contenders' core {data['runs']}")
                if number == 6 and not _number(median.get("requests")):
                    problems.append(f"{where}: REST reads = {median.get('requests')!r}")
                if runs > 1:
                    for figure in PER_RUN:
                        if not _number(median.get(figure)):
                            problems.append(f"{where}: {figure} = {median.get(figure)!r}")
            ratios = {ratio["key"]: ratio for ratio in scenario["ratios"]}
            if set(ratios) != RATIOS.get(number, set()):
                problems.append(f"{scenario['key']}: ratios {sorted(ratios)}")
            for key, ratio in ratios.items():
                if len(ratio["per_round"]) != scenario["rounds"] or not all(
                    _number(value) for value in ratio["per_round"]
                ):
                    problems.append(f"{scenario['key']} / {key}: {ratio['per_round']}")
            if number == 4:
                for name in ("podmagic-widgets", "kernel"):
                    median = contenders.get(name, {}).get("median", {})
                    for figure in ("updates_sent", "max_updates_1s", "comm_messages", "comm_bytes"):
                        if not _number(median.get(figure)):
                            problems.append(f"view / {name}: {figure} = {median.get(figure)!r}")
    assert not problems, "\n".join(problems)

    assert report["targets"], "no targets evaluated"
    for target in report["targets"]:
        assert _number(target["value"]), target
        assert target["met"] in (True, False), target
