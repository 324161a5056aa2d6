"""PodResult, PodResults and the error hierarchy, built by hand (no cluster)."""

from __future__ import annotations

import copy
import json
import pickle
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from podmagic import _errors as errors
from podmagic._errors import (
    ApiError,
    ConfigError,
    ExecError,
    HandshakeError,
    ParseError,
    PodExecError,
    PodmagicError,
    PodsFailedError,
    RefusedError,
    SelectionError,
    StreamLostError,
)
from podmagic._results import ExecStatus, OutputGroup, PodResult, PodResults

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def result(
    pod: str,
    status: ExecStatus = ExecStatus.OK,
    exit_code: int | None = 0,
    stdout: bytes = b"",
    stderr: bytes = b"",
    **kw: Any,
) -> PodResult:
    fields: dict[str, Any] = {
        "context": "kind-dev",
        "namespace": "prod",
        "container": "app",
        "node": "node-a",
        "command": ("sh", "-c", "true"),
        "started_at": T0,
        "duration": 0.25,
    }
    fields.update(kw)
    return PodResult(
        pod=pod, status=status, exit_code=exit_code, stdout=stdout, stderr=stderr, **fields
    )


def ok(pod: str, stdout: bytes = b"hello\n", **kw: Any) -> PodResult:
    return result(pod, ExecStatus.OK, 0, stdout, **kw)


def failed(pod: str, code: int = 1, stderr: bytes = b"boom\n", **kw: Any) -> PodResult:
    return result(pod, ExecStatus.FAILED, code, b"", stderr, **kw)


def timeout(pod: str, **kw: Any) -> PodResult:
    kw.setdefault("error", "no exit status within 5s")
    return result(pod, ExecStatus.TIMEOUT, None, b"partial", **kw)


def skipped(pod: str, **kw: Any) -> PodResult:
    kw.setdefault("error", "not ready")
    return result(pod, ExecStatus.SKIPPED, None, duration=None, started_at=None, **kw)


# -- ExecStatus -------------------------------------------------------------------------------


def test_exec_status_values() -> None:
    assert [s.value for s in ExecStatus] == [
        "ok",
        "failed",
        "error",
        "timeout",
        "cancelled",
        "skipped",
        "not started",
    ]
    assert isinstance(ExecStatus.OK, str)
    assert str.__eq__(ExecStatus.OK, "ok")
    assert ExecStatus("not started") is ExecStatus.NOT_STARTED
    assert str(ExecStatus.NOT_STARTED) == "not started"
    assert f"{ExecStatus.TIMEOUT}" == "timeout"


# -- PodResult --------------------------------------------------------------------------------


def test_pod_result_mirrors_completed_process() -> None:
    r = ok("web-1", stdout=b"out\n", stderr=b"warn\n")
    assert r.args == ("sh", "-c", "true") == r.command
    assert r.returncode == 0 == r.exit_code
    assert r.ok
    assert r.outcome == "exit 0"
    assert r.stdout == b"out\n"
    assert r.stdout_text == "out\n"
    assert r.stderr_text == "warn\n"
    r.check_returncode()
    assert r.stdout_dropped == 0 and r.stderr_dropped == 0


def test_pod_result_defaults_and_coercion() -> None:
    r = PodResult(
        context="c",
        namespace="n",
        pod="p",
        command=["ls", "-l"],  # type: ignore[arg-type]
        status="timeout",  # type: ignore[arg-type]
        stdout=bytearray(b"x"),  # type: ignore[arg-type]
    )
    assert r.status is ExecStatus.TIMEOUT
    assert r.command == ("ls", "-l")
    assert r.stdout == b"x" and type(r.stdout) is bytes
    assert r.container is None and r.node is None and r.exit_code is None
    assert r.started_at is None and r.duration is None and r.error is None
    assert not r.ok
    assert r.outcome == "timeout"
    with pytest.raises(TypeError, match="bytes, not str"):
        PodResult(context="c", namespace="n", pod="p", status="ok", stdout="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        PodResult(context="c", namespace="n", pod="p", status="fine")  # type: ignore[arg-type]


def test_invalid_utf8_keeps_exact_bytes_and_shows_replacement_characters() -> None:
    raw = b"caf\xc3\xa9 \xff\xfe end\n"
    r = ok("web-1", stdout=raw, stderr=b"\x80")
    assert r.stdout == raw
    assert r.stdout_text == "café \ufffd\ufffd end\n"
    assert r.stderr_text == "\ufffd"
    frame = PodResults([r]).to_dataframe()
    assert frame.loc[0, "stdout"] == "café \ufffd\ufffd end\n"


def test_check_returncode_raises_pod_exec_error() -> None:
    r = failed("web-3", code=2, stderr=b"first\nno such file\n", namespace="prod")
    with pytest.raises(PodExecError) as info:
        r.check_returncode()
    exc = info.value
    assert exc.result is r
    assert exc.returncode == 2
    assert exc.stderr == b"first\nno such file\n"
    assert exc.stdout == b""
    message = str(exc)
    assert "pod prod/web-3 (container app)" in message
    assert "exited with code 2: no such file" in message
    assert ".stderr_text" in message

    with pytest.raises(PodExecError, match=r"web-7.*timeout: no exit status within 5s"):
        timeout("web-7").check_returncode()


def test_repr_is_readable_and_truncates_output() -> None:
    r = ok("web-1", stdout=b"x" * 500)
    text = repr(r)
    assert text.startswith("PodResult(context='kind-dev', namespace='prod', pod='web-1'")
    assert "status='ok'" in text and "exit_code=0" in text
    assert "(500 bytes)" in text
    assert len(text) < 400
    assert "error=" not in text
    assert "error='not ready'" in repr(skipped("web-9"))


def test_pod_result_html_escapes_output() -> None:
    r = ok("web-<1>", stdout=b"<script>alert(1)</script>\n")
    page = r._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "web-&lt;1&gt;" in page


# -- PodResults: list behaviour ---------------------------------------------------------------


def test_pod_results_is_list_like() -> None:
    a, b, c = ok("web-1"), ok("web-2"), failed("web-3")
    results = PodResults([a, b, c])
    assert len(results) == 3
    assert results[0] is a and results[-1] is c
    assert list(results) == [a, b, c]
    head = results[:2]
    assert isinstance(head, PodResults) and list(head) == [a, b]
    assert b in results
    assert results.index(c) == 2
    combined = head + PodResults([c])
    assert isinstance(combined, PodResults) and combined == results
    assert head + [c] == results
    assert [a] + PodResults([b, c]) == results
    assert sum([PodResults([a]), PodResults([b])], PodResults()) == PodResults([a, b])
    assert results != [a, b, c]
    with pytest.raises(TypeError):
        hash(results)
    with pytest.raises(TypeError, match="PodResult objects"):
        PodResults(["web-1"])  # type: ignore[list-item]
    assert len(PodResults()) == 0


def test_ok_failed_skipped() -> None:
    results = PodResults([ok("web-1"), failed("web-2"), timeout("web-3"), skipped("web-4")])
    assert not results.ok
    assert [r.pod for r in results.failed] == ["web-2", "web-3"]
    assert isinstance(results.failed, PodResults)
    assert [r.pod for r in results.skipped] == ["web-4"]

    assert PodResults([ok("web-1"), skipped("web-2")]).ok, "skipped pods do not fail a run"
    assert not PodResults([skipped("web-1")]).ok, "nothing ran"
    assert not PodResults().ok
    not_started = result("web-5", ExecStatus.NOT_STARTED, None, duration=None)
    assert not PodResults([ok("web-1"), not_started]).ok
    assert PodResults([ok("web-1"), not_started]).failed[0] is not_started


def test_worst_exit_code() -> None:
    assert PodResults([ok("a"), failed("b", 3), failed("c", 1), timeout("d")]).worst_exit_code == 3
    assert PodResults([ok("a")]).worst_exit_code == 0
    assert PodResults([timeout("a"), skipped("b")]).worst_exit_code is None
    assert PodResults().worst_exit_code is None


def test_single_result_shortcuts() -> None:
    one = PodResults([failed("web-1", 4, stderr=b"bad\xff")])
    assert one.exit_code == 4
    assert one.stdout == b""
    assert one.stderr == b"bad\xff"
    assert one.stderr_text == "bad\ufffd"
    assert PodResults([ok("web-1", stdout=b"hi\n")]).stdout_text == "hi\n"

    many = PodResults([ok("web-1"), ok("web-2")])
    for name in ("exit_code", "stdout", "stderr", "stdout_text", "stderr_text"):
        with pytest.raises(ValueError, match=f"{name} needs exactly one result.*there are 2"):
            getattr(many, name)
    with pytest.raises(ValueError, match="there are 0"):
        PodResults().stdout  # noqa: B018


def test_summary_counts_by_status() -> None:
    results = PodResults([ok("a"), ok("b"), failed("c"), timeout("d"), skipped("e")])
    assert results.summary() == {"ok": 2, "failed": 1, "timeout": 1, "skipped": 1}
    assert list(results.summary()) == ["ok", "failed", "timeout", "skipped"]
    assert PodResults().summary() == {}


# -- check() ----------------------------------------------------------------------------------


def test_check_returns_self_when_ok() -> None:
    results = PodResults([ok("web-1"), skipped("web-2")])
    assert results.check() is results


def test_check_raises_with_every_result_and_a_summary() -> None:
    pods = [ok(f"web-{i}") for i in range(1, 41)]
    pods[2] = failed("web-3", 1)
    pods[6] = timeout("web-7")
    results = PodResults(pods)
    with pytest.raises(PodsFailedError) as info:
        results.check()
    exc = info.value
    assert exc.results is results
    assert len(exc.results) == 40
    assert [r.pod for r in exc.failed] == ["web-3", "web-7"]
    assert str(exc).startswith("2 of 40 pods failed: web-3 (exit 1), web-7 (timeout)")
    assert isinstance(exc, PodmagicError)


def test_check_message_limits_the_list_and_counts_skipped() -> None:
    results = PodResults(
        [failed(f"web-{i}", i) for i in range(1, 16)] + [ok("web-16"), skipped("web-17")]
    )
    with pytest.raises(PodsFailedError) as info:
        results.check()
    message = str(info.value)
    assert message.startswith("15 of 16 pods failed: web-1 (exit 1), web-2 (exit 2)")
    assert "web-10 (exit 10) and 5 more; 1 skipped" in message
    assert "web-11" not in message


def test_check_when_nothing_ran() -> None:
    with pytest.raises(PodsFailedError, match=r"none of 2 pods ran.*web-1 \(skipped\)"):
        PodResults([skipped("web-1"), skipped("web-2")]).check()
    with pytest.raises(PodsFailedError, match="no pod ran"):
        PodResults().check()


def test_check_names_namespaces_and_containers_when_needed() -> None:
    results = PodResults(
        [
            ok("web-1", container="app"),
            failed("web-1", container="sidecar"),
            ok("web-1", namespace="dev", container="app"),
            ok("web-1", namespace="dev", container="sidecar"),
        ]
    )
    with pytest.raises(PodsFailedError, match=r"1 of 4 containers failed: prod/web-1 \[sidecar\]"):
        results.check()


# -- labels and groups ------------------------------------------------------------------------


def test_labels() -> None:
    assert PodResults([ok("a"), ok("b")]).labels == ["a", "b"]
    assert PodResults([ok("a"), ok("a", namespace="dev")]).labels == ["prod/a", "dev/a"]
    assert PodResults([ok("a", container="x"), ok("a", container="y")]).labels == [
        "a [x]",
        "a [y]",
    ]


def test_groups_identical_outputs_largest_first() -> None:
    results = PodResults(
        [
            ok("web-10", stdout=b"v2\n"),
            ok("web-1"),
            ok("web-2"),
            failed("web-3"),
            ok("web-4"),
            ok("web-9", stdout=b"v2\n"),
            timeout("web-7"),
            failed("web-5", 1, stderr=b"other\n"),
        ]
    )
    groups = results.groups()
    assert all(isinstance(g, OutputGroup) for g in groups)
    assert [g.pods for g in groups] == [
        ("web-1", "web-2", "web-4"),
        ("web-10", "web-9"),
        ("web-3",),
        ("web-5",),
        ("web-7",),
    ], "size descending, then the first pod's name in natural order"
    first = groups[0]
    assert first.label == "web-1, web-2, web-4 — 3 pods, exit 0"
    assert first.stdout == b"hello\n" and first.stdout_text == "hello\n"
    assert first.stderr == b"" and first.exit_code == 0 and first.status is ExecStatus.OK
    assert isinstance(first.results, PodResults) and len(first.results) == 3
    assert groups[2].label == "web-3 — 1 pod, exit 1"
    assert groups[2].stderr_text == "boom\n"
    assert groups[4].label == "web-7 — 1 pod, timeout"
    assert sum(len(g.results) for g in groups) == len(results)


def test_group_label_is_limited_for_many_pods() -> None:
    results = PodResults([ok(f"web-{i}") for i in range(1, 41)])
    (group,) = results.groups()
    assert group.label == ("web-1, web-2, web-3, web-4, web-5, web-6 and 34 more — 40 pods, exit 0")
    assert len(group.pods) == 40


def test_groups_separate_status_and_exit_code() -> None:
    results = PodResults(
        [
            result("a", ExecStatus.FAILED, 1),
            result("b", ExecStatus.FAILED, 2),
            result("c", ExecStatus.ERROR, None),
            result("d", ExecStatus.CANCELLED, None),
        ]
    )
    assert [g.label for g in results.groups()] == [
        "a — 1 pod, exit 1",
        "b — 1 pod, exit 2",
        "c — 1 pod, error",
        "d — 1 pod, cancelled",
    ]


# -- to_dataframe -----------------------------------------------------------------------------


COLUMNS = [
    "context",
    "namespace",
    "pod",
    "container",
    "node",
    "status",
    "exit_code",
    "duration",
    "started_at",
    "stdout",
    "stderr",
    "stdout_dropped",
    "stderr_dropped",
    "error",
]


def test_to_dataframe_columns_and_dtypes() -> None:
    results = PodResults(
        [
            ok("web-1", stdout=b"hi\n"),
            failed("web-2", 3, container=None, node=None),
            skipped("web-3"),
        ]
    )
    frame = results.to_dataframe()
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 3
    for name in ("context", "namespace", "pod", "container", "node", "stdout", "stderr", "error"):
        assert pd.api.types.is_string_dtype(frame[name].dtype), name
    assert isinstance(frame["status"].dtype, pd.CategoricalDtype)
    assert list(frame["status"].cat.categories) == [s.value for s in ExecStatus]
    assert str(frame["exit_code"].dtype) == "Int64"
    assert frame["duration"].dtype == "float64"
    assert isinstance(frame["started_at"].dtype, pd.DatetimeTZDtype)
    assert str(frame["started_at"].dt.tz) == "UTC"

    assert list(frame["pod"]) == ["web-1", "web-2", "web-3"]
    assert list(frame["status"]) == ["ok", "failed", "skipped"]
    assert frame["exit_code"].tolist() == [0, 3, pd.NA]
    assert frame.loc[0, "stdout"] == "hi\n"
    assert frame.loc[1, "stderr"] == "boom\n"
    assert pd.isna(frame.loc[1, "container"])
    assert pd.isna(frame.loc[2, "duration"])
    assert pd.isna(frame.loc[2, "started_at"])
    assert frame.loc[0, "started_at"] == pd.Timestamp(T0)
    assert frame.loc[2, "error"] == "not ready"
    assert frame["status"].value_counts()["ok"] == 1


def test_to_dataframe_of_nothing_has_the_columns() -> None:
    frame = PodResults().to_dataframe()
    assert list(frame.columns) == COLUMNS
    assert len(frame) == 0
    assert str(frame["exit_code"].dtype) == "Int64"


def test_naive_start_times_are_taken_as_utc() -> None:
    naive = ok("web-1", started_at=datetime(2024, 5, 1, 12, 0))
    other = ok("web-2", started_at=T0 + timedelta(seconds=1))
    frame = PodResults([naive, other]).to_dataframe()
    assert frame.loc[0, "started_at"] == pd.Timestamp(T0)


# -- parse ------------------------------------------------------------------------------------


def test_parse_json_across_pods_records_bad_output() -> None:
    results = PodResults(
        [
            ok("web-1", stdout=b'{"version": "1.2", "conns": "10"}'),
            ok("web-2", stdout=b'{"version": "1.3", "conns": "7"}'),
            ok("web-3", stdout=b"<html>502 Bad Gateway</html>"),
            skipped("web-4"),
        ]
    )
    frame = results.parse("json")
    assert list(frame.columns) == ["pod", "version", "conns", "error"]
    assert list(frame["pod"]) == ["web-1", "web-2", "web-3"]
    assert frame["conns"].tolist()[:2] == [10, 7]
    assert pd.api.types.is_numeric_dtype(frame["conns"])
    assert frame["version"].tolist()[:2] == [1.2, 1.3]
    assert frame["error"].isna().tolist() == [True, True, False]
    assert frame.loc[2, "error"].startswith("line 1, column 1: not valid JSON")
    assert frame.attrs["errors"] == {"web-3": frame.loc[2, "error"]}
    assert frame.attrs["skipped"] == {"web-4": "not ready"}


def test_parse_strict_raises_naming_the_pod() -> None:
    results = PodResults([ok("web-1", stdout=b"{}"), ok("web-3", stdout=b"{bad")])
    with pytest.raises(ParseError) as info:
        results.parse("json", strict=True)
    exc = info.value
    assert exc.pod == "web-3" and exc.namespace == "prod" and exc.container == "app"
    assert exc.fmt == "json"
    assert "could not parse the output of pod prod/web-3 (container app) as json" in str(exc)
    assert ".stdout_text" in str(exc)


def test_parse_infer_false_keeps_strings() -> None:
    results = PodResults([ok("web-1", stdout=b"a,b\n1,x\n2,\n")])
    frame = results.parse("csv", infer=False)
    assert frame["a"].tolist() == ["1", "2"]
    inferred = results.parse("csv")
    assert inferred["a"].tolist() == [1, 2]
    assert inferred["b"].tolist()[0] == "x"


def test_parse_df_h_from_several_pods() -> None:
    df_h = (
        b"Filesystem      Size  Used Avail Use% Mounted on\n"
        b"overlay          59G   20G   37G  35% /\n"
        b"tmpfs            64M     0   64M   0% /dev\n"
    )
    results = PodResults([ok("web-1", stdout=df_h), ok("web-2", stdout=df_h)])
    frame = results.parse("whitespace")
    assert list(frame.columns) == [
        "pod", "Filesystem", "Size", "Used", "Avail", "Use%", "Mounted on",
    ]  # fmt: skip
    assert len(frame) == 4
    assert frame["Mounted on"].tolist() == ["/", "/dev", "/", "/dev"]
    # df -h's sizes are powers of 1024 (issue 13: typed columns); the text on request.
    assert frame["Size"].tolist() == [59 * 2**30, 64 * 2**20] * 2
    assert frame["Use%"].tolist() == [35.0, 0.0] * 2
    assert results.parse("whitespace", raw=True)["Size_raw"].tolist() == ["59G", "64M"] * 2
    assert frame.attrs["errors"] == {}


def test_parse_leading_columns_when_namespace_and_container_differ() -> None:
    results = PodResults(
        [
            ok("web-1", stdout=b"a\n", container="app"),
            ok("web-1", stdout=b"b\n", container="sidecar"),
            ok("db-1", stdout=b"c\n", namespace="data", container="pg"),
        ]
    )
    frame = results.parse("lines")
    assert list(frame.columns) == ["namespace", "pod", "container", "line"]
    assert frame.values.tolist() == [
        ["prod", "web-1", "app", "a"],
        ["prod", "web-1", "sidecar", "b"],
        ["data", "db-1", "pg", "c"],
    ]


def test_parse_renames_parsed_columns_that_clash_with_the_leading_ones() -> None:
    frame = PodResults([ok("web-1", stdout=b'{"pod": "inner", "n": 1}')]).parse("json")
    assert list(frame.columns) == ["pod", "pod_", "n"]
    assert frame.loc[0, "pod_"] == "inner"


def test_parse_records_incomplete_and_failed_output() -> None:
    results = PodResults(
        [
            ok("web-1", stdout=b"[1, 2]"),
            failed("web-2", 7, stderr=b"curl: (7) refused"),
            timeout("web-3"),
            ok("web-4", stdout=b"[3", stdout_dropped=4096),
            result("web-5", ExecStatus.NOT_STARTED, None),
        ]
    )
    frame = results.parse("json")
    assert frame.attrs["errors"] == {
        "web-2": "exit 7; the output is empty",
        "web-3": "timeout: the output is incomplete, not parsed",
        "web-4": "output truncated: 4,096 bytes not kept",
        "web-5": "not started",
    }
    assert list(frame["pod"]) == ["web-1", "web-1", "web-2", "web-3", "web-4", "web-5"]
    assert frame["value"].tolist()[:2] == [1, 2]
    assert frame["error"].tolist()[2:] == list(frame.attrs["errors"].values())
    with pytest.raises(ParseError, match="web-2.*exit 7; the output is empty"):
        results.parse("json", strict=True)
    with pytest.raises(ParseError, match="web-3.*incomplete"):
        results[2:].parse("json", strict=True)


def test_parse_with_nothing_to_parse_and_bad_format() -> None:
    frame = PodResults([skipped("web-1")]).parse("lines")
    assert list(frame.columns) == ["pod"]
    assert len(frame) == 0
    assert frame.attrs["errors"] == {}
    assert frame.attrs["skipped"] == {"web-1": "not ready"}
    with pytest.raises(ValueError, match="unknown output format 'xml'"):
        PodResults().parse("xml")
    with pytest.raises(ValueError, match="pattern"):
        PodResults().parse("regex")


def test_parse_regex_and_kv_options_pass_through() -> None:
    results = PodResults(
        [ok("web-1", stdout=b"took 12ms\ntook 30ms\n"), ok("web-2", stdout=b"took 7ms\n")]
    )
    frame = results.parse("regex", pattern=r"took (?P<ms>\d+)ms")
    assert frame["ms"].tolist() == [12, 30, 7]
    kv = PodResults([ok("web-1", stdout=b"a=1\nb=x\n"), ok("web-2", stdout=b"a=2\n")]).parse("kv")
    assert kv["a"].tolist() == [1, 2]
    assert kv.loc[0, "b"] == "x" and pd.isna(kv.loc[1, "b"])


# -- display ----------------------------------------------------------------------------------


def sample() -> PodResults:
    return PodResults(
        [
            ok("web-1"),
            ok("web-2"),
            failed("web-3", 1, stderr=b"<script>alert('x')</script>\n"),
            ok("web-4"),
            timeout("web-7", duration=65.0),
            skipped("web-9"),
        ]
    )


def test_str_is_a_summary_table_with_grouped_outputs() -> None:
    text = str(sample())
    lines = text.splitlines()
    assert lines[0] == (
        "6 pods in context kind-dev, namespace prod: 3 ok, 1 failed, 1 timeout, 1 skipped"
    )
    assert lines[1].split() == ["pod", "container", "exit", "status", "duration", "node", "error"]
    assert lines[2].split() == ["web-1", "app", "0", "ok", "0.25s", "node-a"]
    assert "1m05s" in text
    assert "web-1, web-2, web-4 — 3 pods, exit 0\n  hello" in text
    assert "web-3 — 1 pod, exit 1\n  stderr:\n    <script>alert('x')</script>" in text
    # A skipped pod has no output to group; the table row says why it was skipped.
    assert "web-9 — 1 pod, skipped" not in text
    assert "not ready" in text


def test_html_escapes_everything_and_agrees_with_text() -> None:
    results = sample()
    page = results._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.startswith('<div class="podmagic-results" ')
    for line in (
        "6 pods in context kind-dev, namespace prod: 3 ok, 1 failed, 1 timeout, 1 skipped",
        "web-1, web-2, web-4 — 3 pods, exit 0",
        "web-7 — 1 pod, timeout",
    ):
        assert line in page and line in str(results)
    assert page.count("<tr>") == 1 + len(results)


def test_repr_is_short_and_pretty_is_the_summary() -> None:
    results = sample()
    assert repr(results) == "<PodResults: 6 pods: 3 ok, 1 failed, 1 timeout, 1 skipped>"
    assert repr(PodResults()) == "<PodResults: 0 pods>"

    class Printer:
        def __init__(self) -> None:
            self.out: list[str] = []

        def text(self, value: str) -> None:
            self.out.append(value)

    printer = Printer()
    results._repr_pretty_(printer, False)
    assert printer.out == [str(results)]


def test_display_is_capped_and_shows_failures_first() -> None:
    pods = [ok(f"web-{i}", stdout=f"{i}\n".encode()) for i in range(200)]
    pods[150] = failed("web-150")
    results = PodResults(pods)
    text = str(results)
    assert "web-150" in text.split("\n\n")[0], "the failure is in the table"
    assert "… 150 more rows; see .to_dataframe()" in text
    assert "… 190 more distinct outputs; see .groups()" in text
    assert "web-150 — 1 pod, exit 1\n  stderr:\n    boom" in text, "failures first"
    long = PodResults([ok("web-1", stdout=b"line\n" * 1000 + b"x" * 5000)])
    assert "… 991 lines hidden …" in str(long)
    assert len(long._repr_html_()) < 10_000


def test_empty_results_display() -> None:
    assert str(PodResults()) == "0 pods"
    assert "0 pods" in PodResults()._repr_html_()


# -- errors -----------------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    for cls in (
        ConfigError,
        SelectionError,
        ApiError,
        ExecError,
        PodExecError,
        PodsFailedError,
        ParseError,
        RefusedError,
    ):
        assert issubclass(cls, PodmagicError)
    for sub in (HandshakeError, StreamLostError):
        assert issubclass(sub, ExecError)
    assert sorted(errors.__all__) == sorted(
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, PodmagicError)
    )
    for name in errors.__all__:
        assert (getattr(errors, name).__doc__ or "").strip(), name
    assert "├── PodsFailedError" in (errors.__doc__ or "")


def test_hint_follows_the_message() -> None:
    exc = SelectionError("no pods match app=web in namespace prod", hint="try -A")
    assert str(exc) == "no pods match app=web in namespace prod; try -A"
    assert exc.hint == "try -A"
    assert str(ConfigError("no context 'x'")) == "no context 'x'"


def test_api_error_from_a_status_body() -> None:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": 'pods is forbidden: User "dev" cannot list resource "pods" in "prod"',
        "reason": "Forbidden",
        "code": 403,
    }
    exc = ApiError.from_status(403, json.dumps(body).encode(), what="list pods in prod")
    assert exc.status == 403
    assert exc.reason == "Forbidden"
    assert exc.message == body["message"]
    assert str(exc).startswith(f"list pods in prod failed: {body['message']} (HTTP 403 Forbidden)")
    assert "kubectl auth can-i" in str(exc)
    assert ApiError.from_status(403, body, what="x").message == body["message"]


def test_api_error_from_other_bodies() -> None:
    exc = ApiError.from_status(502, b"<html>\n<b>Bad   gateway</b></html>", what="get pod web-1")
    assert exc.reason is None
    assert exc.message == "<html> <b>Bad gateway</b></html>"
    assert "try again" in str(exc)
    none = ApiError.from_status(404, None, what="get pod web-1")
    assert none.message == "Not Found"
    assert "(HTTP 404)" in str(none) and "-n" in str(none)
    huge = ApiError.from_status(500, b"x" * 5000, what="w")
    assert len(huge.message) < 400
    assert ApiError.from_status(599, b"[]", what="w").message == "error"


def test_exec_errors_name_the_pod() -> None:
    handshake = HandshakeError.from_status(
        400,
        b'{"kind":"Status","message":"container \\"db\\" not found in pod \\"web-1\\""}',
        pod="web-1",
        namespace="prod",
        container="db",
    )
    assert handshake.http_status == 400
    assert handshake.server_message == 'container "db" not found in pod "web-1"'
    assert str(handshake).startswith(
        "pod prod/web-1 (container db): exec could not start (HTTP 400)"
    )
    assert "-c" in str(handshake)
    assert (handshake.pod, handshake.namespace, handshake.container) == ("web-1", "prod", "db")
    assert "pods/exec" in str(HandshakeError(pod="p", namespace="n", http_status=403))

    lost = StreamLostError(pod="web-2", namespace="prod", detail="EOF")
    assert "pod prod/web-2: connection lost; the remote command may still be running (EOF)" in str(
        lost
    )


def test_refused_error_says_to_add_yes() -> None:
    protected = RefusedError.protected_context("prod-eu", "*prod*")
    assert "'prod-eu'" in str(protected) and "'*prod*'" in str(protected)
    assert "--yes" in str(protected)
    many = RefusedError.too_many_pods(120, 50)
    assert "120 pods" in str(many) and "50" in str(many) and "--yes" in str(many)


@pytest.mark.parametrize(
    "exc",
    [
        SelectionError("no pods", hint="try -A"),
        ApiError.from_status(403, {"reason": "Forbidden", "message": "no"}, what="list pods"),
        HandshakeError(pod="p", namespace="n", container="c", http_status=404),
        StreamLostError(pod="p", namespace="n"),
        ParseError("bad", fmt="json", pod="p", namespace="n"),
        PodExecError(failed("web-1")),
        PodsFailedError(PodResults([ok("a"), failed("b")])),
        RefusedError.too_many_pods(3, 2),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_errors_pickle_and_copy(exc: PodmagicError) -> None:
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc)):
        assert type(clone) is type(exc)
        assert str(clone) == str(exc)
        assert clone.hint == exc.hint
        assert vars(clone).keys() == vars(exc).keys()


# -- import cost ------------------------------------------------------------------------------


def test_importing_results_does_not_import_pandas() -> None:
    code = (
        "import sys, podmagic._results, podmagic._parsing, podmagic._errors; "
        "heavy = [m for m in ('pandas', 'numpy', 'IPython', 'ipywidgets') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
