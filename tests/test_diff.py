"""Diffs (issue 13, item 4): ``res.diff()`` and ``%pod --diff`` show each minority output
group as a unified diff against the majority's, line-numbered hunks naming the pods on each
side; exact bytes, shown safely; a truncated group says so instead of being diffed. Against the
sandbox, and on results made by hand for the edge cases."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic import Cluster, OutputDiff
from podmagic._results import ExecStatus, PodResult, PodResults


@pytest.fixture(scope="module")
def web(cluster: Cluster) -> list[str]:
    """The three pods of deploy/web, in natural order."""
    return [t.pod for t in cluster.select("deploy/web").run]


def odd_one_out(odd: str, common: str, different: str, *, stream: str = "") -> str:
    """A script printing ``different`` in pod ``odd``, ``common`` elsewhere."""
    redirect = " >&2" if stream == "stderr" else ""
    return (
        f'if [ "$HOSTNAME" = {odd} ]; then printf "{different}"{redirect}; '
        f'else printf "{common}"{redirect}; fi'
    )


def test_the_minority_is_a_unified_diff_against_the_majority_naming_both_sides(
    cluster: Cluster, web: list[str]
) -> None:
    odd = web[1]
    script = odd_one_out(odd, "a\\nb\\nc\\nd\\n", "a\\nb\\nX\\nd\\ne\\n")
    diff = cluster.run(script, "deploy/web").diff()
    assert isinstance(diff, OutputDiff) and len(diff) == 1
    assert diff.majority and diff.reference == (web[0], web[2])
    assert diff.title == "stdout: 1 group differs from the majority (2 of 3 pods)"
    assert diff[0].pods == (odd,)
    assert list(diff[0].lines) == [
        f"--- {web[0]}, {web[2]} (2 pods, majority)",
        f"+++ {odd} (1 pod, exit 0)",
        "@@ -1,4 +1,5 @@",
        " a",
        " b",
        "-c",
        "+X",
        " d",
        "+e",
    ]
    text = str(diff)
    assert "@@ -1,4 +1,5 @@" in text and f"+++ {odd}" in text
    html = diff._repr_html_()
    assert "@@ -1,4 +1,5 @@" in html and "+X" in html


def test_exact_bytes_are_compared_and_shown_safely(cluster: Cluster, web: list[str]) -> None:
    # The odd pod sends a byte that is not UTF-8 and a terminal title escape.
    script = odd_one_out(web[0], "ok\\n", "ok\\377\\033]0;PWN\\007\\n")
    diff = cluster.run(script, "deploy/web").diff()
    text = str(diff)
    assert "\x1b" not in text and "\x07" not in text
    assert "+ok\\xff^[]0;PWN^G" in text
    assert "-ok" in text
    assert "\x1b" not in diff._repr_html_()


def test_invalid_bytes_that_differ_read_differently() -> None:
    def made(pod: str, out: bytes) -> PodResult:
        return PodResult(
            context="c", namespace="n", pod=pod, status=ExecStatus.OK, exit_code=0, stdout=out
        )

    diff = PodResults([made("a", b"\xff\n"), made("b", b"\xff\n"), made("c", b"\xfe\n")]).diff()
    assert "-\\xff" in diff[0].lines and "+\\xfe" in diff[0].lines


def test_a_truncated_group_says_so_instead_of_diffing_a_prefix(
    cluster: Cluster, web: list[str]
) -> None:
    script = odd_one_out(web[2], "same\\n", "same\\nand then a lot more\\n")
    results = cluster.run(script, "deploy/web", capture_limit=8)
    assert results[2].stdout_dropped > 0 and not results[0].stdout_dropped
    diff = results.diff()
    assert len(diff) == 1 and diff[0].lines == ()
    assert "stdout was cut by the capture cap" in diff[0].note
    assert "not diffed" in diff[0].note
    assert "@@" not in str(diff) and "not diffed" in str(diff)


def test_stderr_is_diffed_on_request(cluster: Cluster, web: list[str]) -> None:
    script = odd_one_out(web[0], "warn\\n", "error: disk full\\n", stream="stderr")
    results = cluster.run(script, "deploy/web")
    assert str(results.diff()) == "stdout: all 3 pods said the same"
    diff = results.diff("stderr")
    assert "+error: disk full" in diff[0].lines and "-warn" in diff[0].lines
    assert diff.title.startswith("stderr: 1 group differs")


def test_no_majority_is_said_and_the_largest_group_is_the_reference() -> None:
    def made(pod: str, out: bytes) -> PodResult:
        return PodResult(
            context="c", namespace="n", pod=pod, status=ExecStatus.OK, exit_code=0, stdout=out
        )

    diff = PodResults([made("web-1", b"x\n"), made("web-2", b"y\n")]).diff()
    assert not diff.majority and diff.reference == ("web-1",)
    assert "largest group, no majority" in diff.title
    assert diff[0].lines[0] == "--- web-1 (1 pod, largest group)"


def test_bad_arguments_are_one_clear_error() -> None:
    results = PodResults([])
    with pytest.raises(ValueError, match="stream must be 'stdout' or 'stderr'"):
        results.diff("both")
    with pytest.raises(ValueError, match="context must be a number of lines"):
        results.diff(context=-1)
    assert results.diff().title == "stdout: nothing to compare (no pod ran)"


def test_magic_diff_shows_the_diff_after_the_summary(
    ip: InteractiveShell, web: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns["odd"] = web[1]
    capsys.readouterr()
    ip.run_line_magic(
        "pod",
        'deploy/web --diff -o diffed -- if [ "$HOSTNAME" = {{odd}} ]; then echo two; echo warn >&2; '
        "else echo one; fi",
    )
    out = capsys.readouterr().out
    assert "stdout: 1 group differs from the majority (2 of 3 pods)" in out
    assert f"+++ {web[1]} (1 pod, exit 0)" in out and "-one" in out and "+two" in out
    assert "stderr: 1 group differs" in out and "+warn" in out
    with pytest.raises(UsageError, match="--raw goes with --parse"):
        ip.run_line_magic("pod", "deploy/web --raw -- true")
    with pytest.raises(UsageError, match=r"with --bg, use h.result\(\).diff\(\)"):
        ip.run_line_magic("pod", "deploy/web --diff --bg -- true")
