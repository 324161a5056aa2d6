"""The benchmark counts kubectl's failed execs one by one and says why they failed; it
measures only once every pod of the sandbox runs."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# benchmarks/ is a folder of the repository, not part of the installed package.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.cluster import _running
from benchmarks.run import why_failed
from benchmarks.worker import KUBECTL_HARMLESS, kubectl_stderr


def test_kubectls_stderr_keeps_the_failures_and_counts_its_harmless_race_apart() -> None:
    stderr = (
        f"E1130 11:30:00.1 12 v2.go:104] {KUBECTL_HARMLESS}\n"
        'error: unable to upgrade connection: container not found ("main")\n'
        f"E1130 11:30:00.2 13 v2.go:104] {KUBECTL_HARMLESS}\n"
        "command terminated with exit code 3\n"
    )
    figures = kubectl_stderr(stderr, ["p0007 1", "p0009 3"])
    assert figures["stderr_harmless_lines"] == 2
    assert figures["failed_execs"] == ["p0007 1", "p0009 3"]
    assert KUBECTL_HARMLESS not in figures["stderr_tail"]
    assert figures["stderr_tail"].endswith("command terminated with exit code 3")
    message = why_failed(figures)
    assert "p0007 1, p0009 3" in message
    assert "stderr ends: command terminated with exit code 3" in message


def test_only_the_harmless_race_on_stderr_is_no_failure() -> None:
    figures = kubectl_stderr(f"E1 v2.go:104] {KUBECTL_HARMLESS}\n", [])
    assert figures == {"stderr_harmless_lines": 1}
    assert why_failed(figures) == ""


def test_a_pod_counts_as_running_only_with_every_container_ready() -> None:
    ready = {"phase": "Running", "containerStatuses": [{"ready": True}, {"ready": True}]}
    assert _running({"status": ready})
    assert not _running({"status": {**ready, "containerStatuses": [{"ready": False}]}})
    assert not _running({"status": {"phase": "Pending"}})
    assert not _running({})
