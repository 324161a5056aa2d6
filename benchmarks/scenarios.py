"""What the benchmark measures: the scenarios, their sizes per mode, and the ratios judged in
every round.

Three modes: ``full`` (the README's figures), ``quick`` (smaller, fewer rounds) and ``smoke``
(every scenario and contender in miniature, for CI). The fan-out and the named-pods scenarios
are the ones the performance targets are stated on: they run ``rounds`` times (5 by default
in a full run), every contender once per round, and each :class:`Ratio` is computed in every
round, so that a target can be said to hold in every run. The other scenarios describe
throughput, memory and the live view, and run at most ``max_rounds`` times.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

MiB = 1024 * 1024

#: Rounds per mode when ``--rounds`` is not given.
DEFAULT_ROUNDS = {"full": 5, "quick": 3, "smoke": 1}
#: The most rounds of the scenarios that carry no per-round ratios, per mode.
OTHER_ROUNDS = {"full": 2, "quick": 1, "smoke": 1}


@dataclass(frozen=True)
class Ratio:
    """``numerator``'s ``figure`` divided by ``denominator``'s, in each round; a target when
    ``at_most`` or ``at_least`` is set."""

    key: str
    title: str
    figure: str  # "cpu_s" or "wall_s" (per exec or per run: the pods are the same)
    numerator: str
    denominator: str
    at_most: float | None = None
    at_least: float | None = None

    def holds(self, value: float) -> bool | None:
        """Whether ``value`` meets the target (None: no target)."""
        if self.at_most is not None:
            return value <= self.at_most
        if self.at_least is not None:
            return value >= self.at_least
        return None

    @property
    def target(self) -> str:
        """``≤ 1.15`` / ``≥ 15`` / ``""``."""
        if self.at_most is not None:
            return f"≤ {self.at_most:g}"
        if self.at_least is not None:
            return f"≥ {self.at_least:g}"
        return ""


#: The issue's fan-out targets, judged in every round.
FANOUT_RATIOS = (
    Ratio(
        "cpu_vs_floor",
        "client CPU per exec, podmagic ÷ bare-websockets floor",
        "cpu_s",
        "podmagic",
        "floor",
        at_most=1.15,
    ),
    Ratio(
        "cpu_vs_official",
        "client CPU per exec, podmagic ÷ official client",
        "cpu_s",
        "podmagic",
        "official",
        at_most=0.5,
    ),
    Ratio(
        "wall_vs_kubectl",
        "wall time, kubectl loop ÷ podmagic",
        "wall_s",
        "kubectl",
        "podmagic",
        at_least=15,
    ),
    Ratio(
        "wall_vs_official",
        "wall time, official client ÷ podmagic",
        "wall_s",
        "official",
        "podmagic",
        at_least=1.5,
    ),
)
#: Naming pods must cost what selecting them does (one LIST per namespace either way).
NAMED_RATIOS = (
    Ratio(
        "names_vs_selector",
        "wall time, by name ÷ by selector",
        "wall_s",
        "podmagic-names",
        "podmagic-selector",
        at_most=1.1,
    ),
    Ratio(
        "names_cpu_vs_selector",
        "client CPU, by name ÷ by selector",
        "cpu_s",
        "podmagic-names",
        "podmagic-selector",
    ),
    Ratio(
        "selector_vs_selected",
        "wall time, by selector ÷ found before (the LIST's share)",
        "wall_s",
        "podmagic-selector",
        "podmagic-selected",
    ),
)


@dataclass
class Scenario:
    key: str
    number: int
    title: str
    pods: int
    argv: list[str]
    expect_bytes: int  # per pod
    contenders: list[str]
    #: contender -> at most this many rounds (slow ones in big scenarios)
    repeat_cap: dict[str, int] = field(default_factory=dict)
    #: contenders whose output goes to /dev/null rather than a file (kubectl)
    discard_output: bool = False
    #: contender -> seconds after which it stops reading and reports what it received
    time_limit: dict[str, float] = field(default_factory=dict)
    #: runs one after another in the same client (a person or a script at work); each
    #: contender then reports every run's time too (see benchmarks.worker)
    runs: int = 1
    #: computed in every round; the targets among them must hold in every round
    ratios: tuple[Ratio, ...] = ()
    #: at most this many rounds (None: as many as the run has)
    max_rounds: int | None = None


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
    """Every scenario of ``mode`` (``full``, ``quick`` or ``smoke``), in the order run."""
    fan_sizes = {"full": [100, 500], "quick": [100], "smoke": [5]}[mode]
    named_pods = {"full": 100, "quick": 100, "smoke": 5}[mode]
    stream_bytes = {"full": 256 * MiB, "quick": 64 * MiB, "smoke": 1 * MiB}[mode]
    many_pods = {"full": 1000, "quick": 200, "smoke": 5}[mode]
    many_bytes = {"full": MiB, "quick": MiB, "smoke": 64 * 1024}[mode]
    view_pods, view_lines, view_batches = {
        "full": (20, 100_000, 10),
        "quick": (20, 100_000, 10),
        "smoke": (5, 500, 2),
    }[mode]
    others = OTHER_ROUNDS[mode]
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
                ratios=FANOUT_RATIOS,
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
            max_rounds=others,
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
            max_rounds=others,
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
            max_rounds=others,
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
            max_rounds=others,
        )
    )
    found.append(
        Scenario(
            key="named",
            number=6,
            title=(
                f"6. {named_pods} pods by name, by label selector, and found before (`hostname`)"
            ),
            pods=named_pods,
            argv=["hostname"],
            expect_bytes=6,
            contenders=["podmagic-names", "podmagic-selector", "podmagic-selected"],
            ratios=NAMED_RATIOS,
        )
    )
    return found
