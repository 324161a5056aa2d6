"""Accepted exit codes: ``--ok-exit 0,1`` / ``ok_exit=`` make those codes ok everywhere a run
is judged (``.ok``, ``.failed``, ``check()``, ``--check``, the summary, the DataFrame's status),
while the results keep the real exit code. Against the sandbox."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic import Cluster
from podmagic._errors import PodsFailedError
from podmagic._results import ExecStatus, PodResults
from podmagic.sandbox import Sandbox

# grep exits 1 when nothing matches, 2 on an error (an unreadable file).
NO_MATCH = "grep -q no-such-text /etc/hostname"


def test_grep_without_a_match_is_ok_with_ok_exit_and_keeps_its_exit_code(
    cluster: Cluster,
) -> None:
    plain = cluster.run(NO_MATCH, selector="app=db")
    assert not plain.ok and len(plain.failed) == 2

    results = cluster.run(NO_MATCH, selector="app=db", ok_exit="0,1")
    assert results.ok
    assert len(results.failed) == 0
    assert [(r.status, r.exit_code, r.error) for r in results] == [(ExecStatus.OK, 1, None)] * 2
    assert results.check() is results
    frame = results.to_dataframe()
    assert list(frame["status"]) == ["ok", "ok"]
    assert list(frame["exit_code"]) == [1, 1]
    assert "2 pods in context podmagic-sandbox, namespace conf: 2 ok (exit 0, 1 counted as ok)" in (
        str(results)
    )
    assert "(exit 0, 1 counted as ok)" in results._repr_html_()
    assert results.ok_exit == {0, 1} and plain.ok_exit == {0}
    assert "counted as ok" not in str(plain)


def test_a_code_left_out_still_fails_and_zero_is_not_implied(cluster: Cluster) -> None:
    results = cluster.run("exit 2", "solo", ok_exit=[0, 1])
    assert results[0].status is ExecStatus.FAILED and results[0].exit_code == 2
    with pytest.raises(PodsFailedError):
        results.check()
    only_one = cluster.run("true", "solo", ok_exit=1)
    assert only_one[0].status is ExecStatus.FAILED and only_one[0].exit_code == 0


def test_ok_exit_takes_ranges_as_text_and_as_range(cluster: Cluster) -> None:
    for accepted in ("0-2", " 0 - 2 ", range(3), "2,0-1"):
        results = cluster.run("exit 2", "solo", ok_exit=accepted)
        assert results.ok, accepted
        assert results[0].exit_code == 2


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [
        ("0,x", ValueError, "ok_exit '0,x': not exit codes"),
        ("3-1", ValueError, "the range 3-1 is backwards"),
        ("0-300", ValueError, "exit codes are 0 to 255, got 300"),
        (-1, ValueError, "exit codes are 0 to 255, got -1"),
        ([], ValueError, "names no exit code"),
        (1.5, TypeError, "must be an int, ints, a range or text"),
        (["0"], TypeError, "must hold ints only, not str"),
        (True, TypeError, "not bool"),
    ],
)
def test_bad_ok_exit_is_one_line_before_anything_runs(
    cluster: Cluster, sandbox: Sandbox, value: object, error: type[Exception], words: str
) -> None:
    before = sandbox.exec_stats()["total"]
    with pytest.raises(error, match="Cluster.run\\(\\): ok_exit") as raised:
        cluster.run("true", "solo", ok_exit=value)  # type: ignore[arg-type]
    assert words in str(raised.value)
    assert "\n" not in str(raised.value)
    assert sandbox.exec_stats()["total"] == before


def test_magic_ok_exit_passes_check_and_keeps_the_code(ip: InteractiveShell) -> None:
    ip.run_line_magic("pod", f"-l app=db --ok-exit 0,1 --check -o found -- {NO_MATCH}")
    found = ip.user_ns["found"]
    assert isinstance(found, PodResults) and found.ok
    assert [r.exit_code for r in found] == [1, 1]
    with pytest.raises(PodsFailedError):
        ip.run_line_magic("pod", f"-l app=db --check -- {NO_MATCH}")


def test_magic_ok_exit_with_parse_does_not_report_the_pods_as_failed(
    ip: InteractiveShell,
) -> None:
    frame = ip.run_line_magic("pod", "solo --ok-exit 0-1 --parse lines --check -- echo x; exit 1")
    assert frame.attrs["failed"] == {}
    assert list(frame["line"]) == ["x"]


def test_magic_bad_ok_exit_is_a_usage_error_naming_the_flag(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="--ok-exit '0;1': not exit codes"):
        ip.run_line_magic("pod", "solo --ok-exit '0;1' -- true")
