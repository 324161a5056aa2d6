"""The hint for a missing program fits how the command ran.

A shell script whose shell is missing, or that exits 126/127, is told it may run a direct argv
instead (``--no-shell``); a command that already was a direct argv is not told to become one.
Against the sandbox (pod ``solo`` of namespace ``conf``)."""

from __future__ import annotations

import pytest

from podmagic import Cluster
from podmagic._results import ExecStatus, PodResult

MISSING = "podmagic-no-such-program"


def one(results: object) -> PodResult:
    [result] = list(results)  # type: ignore[call-overload]
    assert isinstance(result, PodResult)
    return result


@pytest.mark.parametrize("env", [None, {"A": "1"}], ids=["plain", "env"])
def test_a_missing_program_run_as_a_direct_argv_is_not_told_to_use_no_shell(
    cluster: Cluster, env: dict[str, str] | None
) -> None:
    result = one(cluster.run([MISSING], "solo", env=env, timeout=60))
    assert result.status in (ExecStatus.ERROR, ExecStatus.FAILED), result
    assert result.error is not None
    assert "--no-shell" not in result.error, result.error
    if result.status is ExecStatus.ERROR:
        assert "direct argv (no shell): check the program's name" in result.error
    else:
        # With env, a shell sets it up and then execs the program: exit 127.
        assert result.exit_code == 127 and result.error.startswith("exit 127: command not found")


def test_a_missing_shell_is_told_to_run_a_direct_argv(cluster: Cluster) -> None:
    result = one(cluster.run("echo hi", "solo", shell=f"/{MISSING}/sh", timeout=60))
    assert result.status is ExecStatus.ERROR, result
    assert result.error is not None
    assert "if the image has no shell, run a direct argv (--no-shell)" in result.error


@pytest.mark.parametrize("code", [126, 127])
def test_exit_126_and_127_hint_at_no_shell_only_for_a_shell_script(
    cluster: Cluster, code: int
) -> None:
    script = one(cluster.run(f"exit {code}", "solo", timeout=60))
    direct = one(cluster.run(["sh", "-c", f"exit {code}"], "solo", timeout=60))
    assert script.exit_code == direct.exit_code == code
    assert script.error is not None and direct.error is not None
    assert "--no-shell" in script.error
    assert "--no-shell" not in direct.error
    assert direct.error.startswith(f"exit {code}: command ")
