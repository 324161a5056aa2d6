"""Truncation is never hidden, and parse() never drops a pod in silence.

The capture cap keeps the *first* bytes of each stream. Outputs that differ only after the
kept part are different outputs: groups compare the dropped bytes too (their count and their
SHA-256 digest), and every view says how much was not kept. ``parse()`` gives every pod it
could not parse a row with an ``error`` column, lists skipped pods next to the frame, and
``%pod --parse --check`` fails on a pod that was not parsed.

The issue's reproduction runs end to end against the sandbox, through ``Cluster`` and
through ``%pod``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from conftest import quiet_podmagic_shell
from IPython.core.interactiveshell import InteractiveShell

from podmagic._client import Cluster
from podmagic._errors import ParseError
from podmagic._render import TextRenderer
from podmagic._results import (
    ExecStatus,
    PodResult,
    PodResults,
    check_parsed,
    parse_problems,
)
from podmagic.sandbox import Sandbox

HEAD = b"x" * 65536


def result(
    pod: str,
    stdout: bytes = b"",
    *,
    dropped_tail: bytes | None = None,
    status: ExecStatus = ExecStatus.OK,
    **kw: Any,
) -> PodResult:
    """A result whose stdout was cut after ``stdout``: ``dropped_tail`` is what the cap
    dropped (counted and digested as the engine does)."""
    if dropped_tail is not None:
        kw["stdout_dropped"] = len(dropped_tail)
        kw["stdout_dropped_digest"] = hashlib.sha256(dropped_tail).digest()
    exit_code = kw.pop("exit_code", 0 if status is ExecStatus.OK else None)
    return PodResult(
        context="ctx",
        namespace="prod",
        pod=pod,
        container="app",
        status=status,
        exit_code=exit_code,
        stdout=stdout,
        **kw,
    )


# -- groups -----------------------------------------------------------------------------------


def test_outputs_that_differ_only_in_the_dropped_bytes_are_not_grouped() -> None:
    results = PodResults(
        [result(f"web-{i}", HEAD, dropped_tail=b"max_connections=500\n") for i in (1, 2, 3)]
        + [result("web-4", HEAD, dropped_tail=b"max_connections=501\n")]
    )
    groups = results.groups()
    assert [g.pods for g in groups] == [("web-1", "web-2", "web-3"), ("web-4",)]
    assert groups[0].stdout_dropped == 20 and groups[0].dropped_compared
    assert groups[0].label == "web-1, web-2, web-3 — 3 pods, exit 0; 20 bytes of stdout not kept"


def test_outputs_with_different_dropped_counts_are_not_grouped() -> None:
    results = PodResults(
        [
            result("web-1", HEAD, dropped_tail=b"max_connections=500\n"),
            result("web-2", HEAD, dropped_tail=b"max_connections=10\n"),
            result("web-3", HEAD),
        ]
    )
    assert [g.pods for g in results.groups()] == [("web-1",), ("web-2",), ("web-3",)]


def test_results_without_digests_group_by_count_and_say_the_drops_were_not_compared() -> None:
    results = PodResults([result(p, HEAD, stdout_dropped=40_000) for p in ("web-1", "web-2")])
    [group] = results.groups()
    assert not group.dropped_compared
    assert group.truncation_note == (
        "stdout: first 65,536 bytes kept, 40,000 bytes not kept; the 2 pods' dropped bytes were "
        "not compared (same count only)"
    )


def test_identical_truncated_outputs_say_their_dropped_bytes_match() -> None:
    tail = b"max_connections=500\n" * 2000
    results = PodResults([result(p, HEAD, dropped_tail=tail) for p in ("web-1", "web-2")])
    [group] = results.groups()
    assert group.truncation_note == (
        "stdout: first 65,536 bytes kept, 40,000 bytes not kept; the 2 pods' dropped bytes are "
        "identical (SHA-256)"
    )


# -- what the views say -----------------------------------------------------------------------


def truncated_sample() -> PodResults:
    return PodResults(
        [result(f"web-{i}", b"head\n", dropped_tail=b"a" * 40_000) for i in (1, 2, 3)]
        + [result("web-4", b"head\n", dropped_tail=b"b" * 40_000), result("web-5", b"whole\n")]
    )


def test_summary_text_says_how_many_bytes_were_not_kept() -> None:
    text = str(truncated_sample())
    assert (
        "Output truncated in 4 pods: 160,000 bytes not kept (the first bytes of each stream "
        "are kept; raise capture_limit to keep more)"
    ) in text
    header = next(line for line in text.splitlines() if line.startswith("pod "))
    assert "not kept" in header
    row = next(line for line in text.splitlines() if line.startswith("web-4 "))
    assert "40,000 bytes" in row
    assert "web-1, web-2, web-3 — 3 pods, exit 0; 40,000 bytes of stdout not kept\n  head\n" in text
    assert "  [stdout: first 5 bytes kept, 40,000 bytes not kept; the 3 pods' dropped" in text
    assert "web-4 — 1 pod, exit 0; 40,000 bytes of stdout not kept" in text
    assert "web-5 — 1 pod, exit 0\n  whole" in text


def test_summary_html_says_how_many_bytes_were_not_kept() -> None:
    markup = truncated_sample()._repr_html_()
    assert "Output truncated in 4 pods: 160,000 bytes not kept" in markup
    assert ">not kept</th>" in markup
    assert "web-1, web-2, web-3 — 3 pods, exit 0; 40,000 bytes of stdout not kept" in markup
    assert "stdout: first 5 bytes kept, 40,000 bytes not kept" in markup


def test_summary_without_truncation_has_no_not_kept_column() -> None:
    text = str(PodResults([result("web-1", b"whole\n")]))
    assert "not kept" not in text and "truncated" not in text


def test_to_dataframe_has_the_dropped_columns() -> None:
    frame = truncated_sample().to_dataframe()
    assert frame["stdout_dropped"].tolist() == [40_000] * 4 + [0]
    assert frame["stderr_dropped"].tolist() == [0] * 5
    assert frame["stdout_dropped"].dtype == "int64"


def test_repr_shows_the_dropped_count() -> None:
    assert "stdout_dropped=40000" in repr(truncated_sample()[0])
    assert "dropped" not in repr(truncated_sample()[4])


# -- parse ------------------------------------------------------------------------------------


def test_parse_gives_unparsed_pods_a_row_with_the_reason() -> None:
    results = PodResults(
        [
            result("web-1", b'{"a": 1}\n{"a": 2}\n'),
            result("web-2", b'{"a": 3}\n{"a": 4}\nnot json\n'),
            result("web-3", b'{"a": 5}\n', dropped_tail=b"x" * 40_000),
            result("web-4", b"", status=ExecStatus.SKIPPED, error="not ready"),
        ]
    )
    frame = results.parse("jsonl")
    assert list(frame.columns) == ["pod", "a", "error"]
    assert frame["pod"].tolist() == ["web-1", "web-1", "web-2", "web-3"]
    assert frame["a"].tolist()[:2] == [1, 2]
    assert pd.isna(frame.loc[2, "a"]) and pd.isna(frame.loc[0, "error"])
    assert frame.loc[2, "error"] == "line 3: not valid JSON (Expecting value at column 1)"
    assert frame.loc[3, "error"] == "output truncated: 40,000 bytes not kept"
    assert frame.attrs["skipped"] == {"web-4": "not ready"}
    assert parse_problems(frame) == (
        "--parse jsonl: 2 pods not parsed (their rows have an error):\n"
        "  web-2: line 3: not valid JSON (Expecting value at column 1)\n"
        "  web-3: output truncated: 40,000 bytes not kept\n"
        "--parse jsonl: 1 pod skipped, no rows:\n"
        "  web-4: not ready"
    )
    with pytest.raises(ParseError, match=r"2 pods not parsed: web-2 \(line 3: not valid JSON"):
        check_parsed(frame)


def test_parse_renames_a_parsed_error_column() -> None:
    frame = PodResults([result("web-1", b'{"error": "none", "n": 1}')]).parse("json")
    assert list(frame.columns) == ["pod", "error_", "n"]
    assert check_parsed(frame) is frame
    assert parse_problems(frame) is None


# -- end to end against the sandbox: the reproduction --------------------------------

# Three pods print the same 100 KB and then max_connections=500; solo prints a different
# last line. Only the first 65,536 bytes are kept.
DRIFT = (
    "head -c 100000 /dev/zero | tr '\\0' x; echo; "
    'if [ "$HOSTNAME" = solo ]; then echo max_connections={solo}; '
    "else echo max_connections=500; fi"
)
PODS = "app in (web, solo)"


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(kubeconfig=sandbox.kubeconfig)


@pytest.mark.parametrize("solo", ["10", "501"], ids=["shorter-value", "same-length-value"])
def test_drift_past_the_capture_limit_is_not_grouped_as_identical(
    cluster: Cluster, solo: str
) -> None:
    results = cluster.run(
        DRIFT.format(solo=solo), selector=PODS, namespace="conf", capture_limit=65536
    )
    assert results.ok and len(results) == 4
    assert {len(r.stdout) for r in results} == {65536}, "the kept heads are identical"
    groups = results.groups()
    assert [len(g.pods) for g in groups] == [3, 1]
    assert groups[1].pods == ("solo",)
    assert all(g.truncated for g in groups)
    dropped = 100_001 - 65536 + len("max_connections=500\n")
    assert groups[0].label.endswith(f"3 pods, exit 0; {dropped:,} bytes of stdout not kept")
    text = str(results)
    assert "Output truncated in 4 pods" in text
    assert "solo — 1 pod, exit 0;" in text and "bytes of stdout not kept" in text
    assert "4 pods, exit 0" not in text


def test_the_same_truncated_output_still_groups(cluster: Cluster) -> None:
    results = cluster.run(
        DRIFT.format(solo="500"), selector=PODS, namespace="conf", capture_limit=65536
    )
    [group] = results.groups()
    assert len(group.pods) == 4 and group.dropped_compared
    assert "the 4 pods' dropped bytes are identical (SHA-256)" in group.truncation_note


def test_text_view_says_what_was_not_kept(cluster: Cluster) -> None:
    out = io.StringIO()
    renderer = TextRenderer(out, colour=False)
    try:
        cluster.run(
            DRIFT.format(solo="10"),
            selector=PODS,
            namespace="conf",
            capture_limit=65536,
            on_event=renderer.handle_event,
        )
    finally:
        renderer.close()
    text = out.getvalue()
    assert "Output truncated in 4 pods" in text
    assert "solo — 1 pod, exit 0; 34,484 bytes of stdout not kept" in text


def test_parse_of_truncated_output_through_the_python_api(cluster: Cluster) -> None:
    # Every line parses as kv: only the truncation stops it (a prefix is not the whole).
    script = "yes k=vvvvvvvvv | head -c 100008; echo max_connections=500"
    results = cluster.run(script, selector=PODS, namespace="conf", capture_limit=65536)
    frame = results.parse("kv")
    assert len(frame) == 4
    assert set(frame["error"]) == {"output truncated: 34,492 bytes not kept"}
    with pytest.raises(ParseError, match="4 pods not parsed"):
        check_parsed(frame)
    assert frame.attrs["errors"] == dict.fromkeys(
        results.labels, "output truncated: 34,492 bytes not kept"
    )


# -- %pod --parse ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    """The shared quiet shell; the capture limit the tests change is put back afterwards."""
    with quiet_podmagic_shell(sandbox.kubeconfig) as shell:
        yield shell
    shell.run_line_magic("config", f"PodMagic.capture_limit = {16 * 1024 * 1024}")


PARTLY_JSON = (
    'if [ "$HOSTNAME" = solo ]; then echo "<html>502 Bad Gateway</html>"; '
    'else echo "{\\"host\\": \\"$HOSTNAME\\"}"; fi'
)


def test_magic_parse_shows_unparsed_pods_even_when_quiet(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = ip.run_line_magic("pod", f"-l '{PODS}' --parse json -- {PARTLY_JSON}")
    assert len(frame) == 4
    assert frame.loc[frame["pod"] == "solo", "error"].tolist() == [
        "line 1, column 1: not valid JSON (Expecting value)"
    ]
    shown = capsys.readouterr().out
    assert "--parse json: 1 pod not parsed (their rows have an error):" in shown
    assert "solo: line 1, column 1: not valid JSON" in shown


def test_magic_check_fails_on_a_parse_error(ip: InteractiveShell) -> None:
    with pytest.raises(ParseError, match=r"1 pod not parsed: solo \(line 1, column 1"):
        ip.run_line_magic("pod", f"-l '{PODS}' --parse json --check -o parsed -- {PARTLY_JSON}")
    assert len(ip.user_ns["parsed"]) == 4, "-o stores the frame before --check fails"


def test_magic_check_fails_on_truncated_output(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "PodMagic.capture_limit = 65536")
    try:
        with pytest.raises(ParseError, match="4 pods not parsed.*output truncated"):
            ip.run_line_magic("pod", f"-l '{PODS}' --parse kv --check -- {DRIFT.format(solo='10')}")
    finally:
        ip.run_line_magic("config", f"PodMagic.capture_limit = {16 * 1024 * 1024}")
