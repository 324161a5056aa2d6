"""The benchmark's judgement of its own figures: a target holds only if it held in every round,
and the sandbox and the contenders are put on separate cores when there are two.

These run no benchmark: they feed :mod:`benchmarks.summary` and :mod:`benchmarks.cores` made-up
figures (the smoke run, ``tests/test_benchmarks_smoke.py``, runs the real thing).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/ is a folder of the repository, not part of the installed package.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import cores
from benchmarks.scenarios import FANOUT_RATIOS, Ratio
from benchmarks.summary import contender_summary, round_ratios, targets

CPU_VS_FLOOR = next(ratio for ratio in FANOUT_RATIOS if ratio.key == "cpu_vs_floor")
WALL_VS_KUBECTL = next(ratio for ratio in FANOUT_RATIOS if ratio.key == "wall_vs_kubectl")


def _runs(contender_cpu: dict[str, list[float]]) -> dict[str, list[dict[str, Any]]]:
    """Measurements with ``cpu_s`` and ``wall_s`` both set to the given value, one a round."""
    return {
        contender: [
            {"round": number, "cpu_s": value, "wall_s": value}
            for number, value in enumerate(values, 1)
        ]
        for contender, values in contender_cpu.items()
    }


def test_a_target_missed_in_one_round_of_five_is_not_held() -> None:
    runs = _runs({"podmagic": [1.0, 1.0, 1.3, 1.0, 1.0], "floor": [1.0] * 5})

    ratio = round_ratios(CPU_VS_FLOOR, runs, rounds=5)

    assert ratio["per_round"] == [1.0, 1.0, 1.3, 1.0, 1.0]
    assert (ratio["median"], ratio["min"], ratio["max"]) == (1.0, 1.0, 1.3)
    assert ratio["held_rounds"] == 4
    assert ratio["held"] is False


def test_a_target_met_in_every_round_is_held() -> None:
    runs = _runs({"podmagic": [0.1, 0.11, 0.09], "kubectl": [2.0, 2.2, 1.8]})

    ratio = round_ratios(WALL_VS_KUBECTL, runs, rounds=3)

    assert ratio["per_round"] == pytest.approx([20.0, 20.0, 20.0])
    assert ratio["held"] is True


def test_a_round_where_one_side_failed_counts_as_not_held() -> None:
    runs = _runs({"podmagic": [1.0, 1.0, 1.0], "floor": [1.0, 1.0, 1.0]})
    runs["floor"][1] = {"round": 2, "error": "99 of 100 execs succeeded"}

    ratio = round_ratios(CPU_VS_FLOOR, runs, rounds=3)

    assert ratio["per_round"] == [1.0, None, 1.0]
    assert ratio["held_rounds"] == 2
    assert ratio["held"] is False


def test_a_ratio_without_a_target_is_shown_but_never_judged() -> None:
    shown = Ratio("share", "wall time, a ÷ b", "wall_s", "a", "b")
    ratio = round_ratios(shown, _runs({"a": [2.0], "b": [1.0]}), rounds=1)

    assert ratio["median"] == 2.0 and ratio["held"] is None
    report = {"scenarios": [{"key": "x", "contenders": {}, "ratios": [ratio]}]}
    assert targets(report) == []


def test_targets_name_the_rounds_a_ratio_held_in() -> None:
    ratio = round_ratios(
        CPU_VS_FLOOR, _runs({"podmagic": [1.0, 1.2], "floor": [1.0, 1.0]}), rounds=2
    )
    report = {"scenarios": [{"key": "fanout-100", "contenders": {}, "ratios": [ratio]}]}

    [target] = targets(report)

    assert target["met"] is False
    assert target["rounds"] == [1.0, 1.2]
    assert target["shown"] == "1.10 (1.00–1.20); held in 1 of 2 rounds"


def test_contender_summary_gives_median_and_range_of_the_good_runs() -> None:
    runs: list[dict[str, Any]] = [
        {"round": 1, "wall_s": 3.0},
        {"round": 2, "error": "timed out"},
        {"round": 3, "wall_s": 1.0},
        {"round": 4, "wall_s": 2.0},
    ]

    summary = contender_summary(runs)

    assert summary["median"]["wall_s"] == 2.0
    assert (summary["min"]["wall_s"], summary["max"]["wall_s"]) == (1.0, 3.0)
    assert summary["errors"] == ["timed out"]


def test_two_cores_put_the_sandbox_and_the_contenders_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {2, 5, 7})

    pinning = cores.plan()

    assert pinning.server == frozenset({2}) and pinning.client == frozenset({5})
    assert pinning.describe() == "sandbox on core 2, contenders on core 5"
    assert pinning.for_client() is not None


def test_one_core_pins_nothing_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})

    pinning = cores.plan()

    assert not pinning.pinned and pinning.for_client() is None
    assert pinning.describe() == "not pinned (only 1 core available)"
