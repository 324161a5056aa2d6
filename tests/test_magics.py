"""%pod and %%pod through a real InteractiveShell, against the sandbox."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _waiting import wait_until
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic._background import BackgroundRun
from podmagic._errors import ParseError, PodsFailedError, RefusedError, SelectionError
from podmagic._resolve import Selection
from podmagic._results import ExecStatus, PodResults
from podmagic.sandbox import Sandbox


def test_line_magic_runs_in_one_pod(ip: InteractiveShell) -> None:
    results = ip.run_line_magic("pod", "solo -- echo $HOSTNAME")
    assert isinstance(results, PodResults)
    assert results.stdout == b"solo\n"


def test_cell_magic_runs_the_script(ip: InteractiveShell) -> None:
    results = ip.run_cell_magic("pod", "-l app=db", 'x=$(hostname)\necho "host=$x"\n')
    assert sorted(r.stdout for r in results) == [b"host=db-0\n", b"host=db-1\n"]


def test_interpolation_quotes_each_value(ip: InteractiveShell) -> None:
    ip.user_ns["payload"] = "a'b; echo INJECTED $(id)"
    ip.user_ns["words"] = ["one two", "three"]
    results = ip.run_line_magic("pod", "solo -- printf '[%s]' {{payload}} {{words}}")
    assert results.stdout == b"[a'b; echo INJECTED $(id)][one two][three]"


def test_shell_syntax_passes_through(ip: InteractiveShell) -> None:
    script = "X=5; echo ${X} $((X+1)) $(echo sub) | awk '{print $1, $3}'"
    results = ip.run_cell_magic("pod", "solo", script)
    assert results.stdout == b"5 sub\n"


def test_undefined_name_is_a_usage_error(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="podd"):
        ip.run_line_magic("pod", "solo -- echo {{podd}}")


def test_options_take_values_from_python(ip: InteractiveShell) -> None:
    ip.user_ns["app_name"] = "db"
    results = ip.run_line_magic("pod", "-l app={{app_name}} -- true")
    assert [r.pod for r in results] == ["db-0", "db-1"]
    results = ip.run_line_magic("pod", "-l app={{ app_name |raw}} -e V={{ 'a b' }} -- printenv V")
    assert [r.stdout for r in results] == [b"a b\n", b"a b\n"]


def test_env_workdir_and_stdin(ip: InteractiveShell, sandbox: Sandbox) -> None:
    ip.user_ns["data"] = b"from-python"
    sandbox.clear_requests()
    results = ip.run_line_magic(
        "pod", "solo -e TOKEN=t0p-s3cret -w /tmp --stdin data -- printenv TOKEN | wc -c; pwd; cat"
    )
    assert results.stdout == b"11\n/tmp\nfrom-python"
    assert not any("t0p-s3cret" in r.path_qs for r in sandbox.requests())


def test_out_stores_the_result(ip: InteractiveShell) -> None:
    assert ip.run_line_magic("pod", "-l app=db -o dbres -- true") is None
    assert isinstance(ip.user_ns["dbres"], PodResults) and len(ip.user_ns["dbres"]) == 2


def test_parse_returns_one_dataframe(ip: InteractiveShell) -> None:
    frame = ip.run_line_magic("pod", "-l app=db --parse kv -- echo host=$HOSTNAME; echo n=1")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["pod"]) == ["db-0", "db-1"] and list(frame["host"]) == ["db-0", "db-1"]


def test_check_raises_with_every_result(ip: InteractiveShell) -> None:
    with pytest.raises(PodsFailedError) as info:
        ip.run_line_magic("pod", '-l app=db --check -- [ "$HOSTNAME" = db-0 ]')
    assert len(info.value.results) == 2
    assert [r.pod for r in info.value.failed] == ["db-1"]


def test_dry_run_runs_nothing(ip: InteractiveShell, sandbox: Sandbox) -> None:
    before = sandbox.exec_stats()["total"]
    assert ip.run_line_magic("pod", "-l 'app in (batch,db)' --dry-run -o sel -- rm -rf /") is None
    selection = ip.user_ns["sel"]
    assert isinstance(selection, Selection)
    assert [t.pod for t in selection.run] == ["db-0", "db-1"]
    assert sandbox.exec_stats()["total"] == before


def test_empty_selector_needs_yes(ip: InteractiveShell) -> None:
    with pytest.raises(RefusedError, match="every pod"):
        ip.run_line_magic("pod", "-l '' -- true")
    results = ip.run_line_magic("pod", "-l '' --yes -- true")
    assert len(results) > 5


def test_empty_selector_refusal_counts_pods_in_plain_words(ip: InteractiveShell) -> None:
    with pytest.raises(RefusedError) as caught:
        ip.run_line_magic("pod", "-l '' -- true")
    message = str(caught.value)
    assert re.search(r"selects every pod \(\d+ pods in namespace conf\)", message), message
    assert "in all pods" not in message


def test_stdin_expression_that_lost_its_quotes_says_to_quote_it(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("pod", "solo --stdin open('/tmp/f.txt') -- cat")
    message = str(caught.value)
    assert message.startswith("--stdin open(/tmp/f.txt): not a Python expression")
    assert "quote the whole expression" in message
    assert "e.g. --stdin \"open('/tmp/f.txt')\"" in message


def test_large_fan_out_needs_yes(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "PodMagic.confirm_above = 2")
    try:
        with pytest.raises(RefusedError, match="3 pods is more than the 2"):
            ip.run_line_magic("pod", "deploy/web -- true")
        assert len(ip.run_line_magic("pod", "deploy/web --yes -- true")) == 3
    finally:
        ip.run_line_magic("config", "PodMagic.confirm_above = 50")


def test_protected_context_needs_yes(ip: InteractiveShell) -> None:
    ip.run_line_magic("config", "PodMagic.protected_contexts = ['*sandbox*']")
    try:
        with pytest.raises(RefusedError, match="protected"):
            ip.run_line_magic("pod", "solo -- true")
        assert ip.run_line_magic("pod", "solo --yes -- true").ok
    finally:
        ip.run_line_magic("config", "PodMagic.protected_contexts = ['*prod*']")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("solo", "no command"),
        ("-- echo hi", "no target"),
        ("solo --timeout abc -- true", "timeout"),
        ("solo -e NOEQUALS -- true", "NAME=VALUE"),
        ("solo --pick 0 -- true", "pick"),
    ],
)
def test_bad_input_is_one_line(ip: InteractiveShell, line: str, message: str) -> None:
    with pytest.raises((UsageError, SelectionError), match=message):
        ip.run_line_magic("pod", line)


def test_misspelt_pod_suggests(ip: InteractiveShell) -> None:
    with pytest.raises(SelectionError, match="did you mean solo"):
        ip.run_line_magic("pod", "slo -- true")


def pod_gate(tmp_path: Path) -> str:
    """A file name the pods' commands wait for, made only by :func:`open_pod_gate`: "running"
    is certain, not a race. It lives in each pod's own working folder (a relative name), which
    isolated pods and pods run as plain processes both have, so a host path is not needed."""
    return f"gate-{tmp_path.name}"


def open_pod_gate(ip: InteractiveShell, target: str, gate: str) -> None:
    """Make ``gate`` in every pod of ``target``, from a second (foreground) run."""
    opened = ip.run_line_magic("pod", f"{target} -q -- touch {gate}")
    assert opened.ok, opened


def test_background_run(ip: InteractiveShell, tmp_path: Path) -> None:
    gate = pod_gate(tmp_path)  # the commands wait for it: "running" is certain, not a race
    handle = ip.run_line_magic(
        "pod",
        f"-l app=db --bg -o bgres -- until [ -e {gate} ]; do sleep 0.05; done; echo done",
    )
    assert isinstance(handle, BackgroundRun)
    assert "running" in repr(handle)
    open_pod_gate(ip, "-l app=db", gate)
    results = handle.result(timeout=20)
    assert [r.stdout for r in results] == [b"done\n", b"done\n"]
    assert handle.state == "done" and "2/2 done" in repr(handle)
    assert ip.user_ns["bgres"] is results


def test_background_cancel_keeps_partial(ip: InteractiveShell) -> None:
    handle = ip.run_line_magic("pod", "-l app=db --bg -- echo up; sleep 30")
    # Cancel once both commands are running (their execs connected), not after a guess.
    wait_until(lambda: handle.started_count == 2, what="both execs started")
    handle.cancel()
    results = handle.result(timeout=10)
    assert {r.status for r in results} == {ExecStatus.CANCELLED}
    assert handle.state == "cancelled"


def test_cancel_after_the_run_finished_changes_nothing(ip: InteractiveShell) -> None:
    handle = ip.run_line_magic("pod", "-l app=db --bg -- echo hi")
    results = handle.result(timeout=30)
    assert handle.cancel() is False
    assert handle.state == "done" and "done" in repr(handle)
    assert handle.result() is results and results.ok


def test_cancel_of_a_running_background_run_says_it_stops_it(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    handle = ip.run_line_magic("pod", f"solo --bg -- until [ -e {gate} ]; do sleep 0.05; done")
    assert handle.cancel() is True
    handle.result(timeout=30)
    assert handle.state == "cancelled"


def test_result_timeout_on_a_running_background_run_is_one_clear_line(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    gate = pod_gate(tmp_path)
    handle = ip.run_line_magic(
        "pod", f"solo --bg -- until [ -e {gate} ]; do sleep 0.05; done; echo done"
    )
    with pytest.raises(TimeoutError) as info:
        handle.result(timeout=0.5)
    assert str(info.value) == (
        "the background run is still going after 0.5 s; "
        "call result() again to wait longer, or cancel() to stop it"
    )
    assert info.value._render_traceback_() == [f"BackgroundRunTimeout: {info.value}"]
    open_pod_gate(ip, "solo", gate)
    assert handle.result(timeout=30).ok  # the run went on


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("timeout", "-5", "PodMagic.timeout must be a positive number of seconds"),
        ("timeout", "0", "PodMagic.timeout must be a positive number of seconds"),
        ("deadline", "-1", "PodMagic.deadline must be a positive number of seconds"),
        ("plugin_timeout", "0", "PodMagic.plugin_timeout must be a positive number of seconds"),
        ("capture_limit", "-1", "PodMagic.capture_limit must be 0 or more bytes, got -1"),
        ("capture_budget", "-1", "PodMagic.capture_budget must be 0 or more bytes, got -1"),
        ("confirm_above", "-1", "PodMagic.confirm_above must be 0 or more pods, got -1"),
        ("tail_lines", "-1", "PodMagic.tail_lines must be 0 or more lines, got -1"),
        ("max_updates_per_second", "0", "PodMagic.max_updates_per_second must be a positive"),
    ],
)
def test_a_bad_setting_is_refused_when_set_naming_it(
    ip: InteractiveShell, setting: str, value: str, message: str
) -> None:
    from traitlets import TraitError

    magic = ip.magics_manager.registry["PodMagic"]
    before = getattr(magic, setting)
    with pytest.raises(TraitError, match=re.escape(message)):
        setattr(magic, setting, int(value))
    assert getattr(magic, setting) == before
    ip.run_line_magic("pod", "solo -q -- true")  # later runs are unaffected


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("default_shell", "", "PodMagic.default_shell must be one shell, a path or a name"),
        ("default_shell", "bash -x", "PodMagic.default_shell must be one shell"),
        ("context", "", "PodMagic.context must be a context name from the kubeconfig, or None"),
        ("context", "  ", "PodMagic.context must be a context name"),
    ],
)
def test_a_bad_text_setting_is_refused_when_set_naming_it(
    ip: InteractiveShell, setting: str, value: str, message: str
) -> None:
    from traitlets import TraitError

    magic = ip.magics_manager.registry["PodMagic"]
    before = getattr(magic, setting)
    with pytest.raises(TraitError, match=re.escape(message)):
        setattr(magic, setting, value)
    assert getattr(magic, setting) == before
    ip.run_line_magic("pod", "solo -q -- true")  # later runs are unaffected


def test_no_shell_runs_argv(ip: InteractiveShell) -> None:
    results = ip.run_line_magic("pod", "solo --no-shell -- printf %s|%s 'a b' c")
    assert results.stdout == b"a b|c"


def test_help_is_complete(ip: InteractiveShell) -> None:
    doc = ip.find_line_magic("pod").__doc__ or ""
    for option in (
        "--selector",
        "--all-namespaces",
        "--bg",
        "--check",
        "--parse",
        "--dry-run",
        "--yes",
        "{{expr}}",
    ):
        assert option in doc


def test_pod_sandbox_start_with_a_bad_manifest_is_one_usage_error(
    ip: InteractiveShell, tmp_path: object
) -> None:
    from pathlib import Path

    manifest = Path(str(tmp_path)) / "bad.yaml"
    manifest.write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: -1\n  selector: {matchLabels: {app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: c, image: x}]}\n"
    )
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("pod_sandbox", f"start --manifest {manifest}")
    message = str(caught.value)
    assert "\n" not in message
    assert "bad.yaml" in message and "spec.replicas" in message
    with pytest.raises(UsageError, match="manifest not found"):
        ip.run_line_magic("pod_sandbox", f"start --manifest {manifest}.missing")


# -- error messages and -o NAME ------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "solo --bogus\x1b]0;PWN\x07 -- true",
        "solo --stdin x\x1b]0;PWN2\x07 -- true",
        "solo -- echo {{undefined\x1b]0;PWN3\x07}}",
    ],
)
def test_usage_errors_show_control_characters_from_the_line_as_text(
    ip: InteractiveShell, line: str
) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("pod", line)
    message = str(caught.value)
    assert "\x1b" not in message and "\x07" not in message
    assert "^[]0;PWN" in message


def test_pod_sandbox_usage_errors_show_control_characters_as_text(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("pod_sandbox", "start --manifest /nonexistent/x\x1b]0;PWN\x07.yaml")
    assert "\x1b" not in str(caught.value) and "^[]0;PWN^G" in str(caught.value)


@pytest.mark.parametrize("name", ["'not valid-name'", "1x", "class", "a.b", "'x\x1b[2J'"])
def test_out_name_must_be_a_python_identifier(
    ip: InteractiveShell, sandbox: Sandbox, name: str
) -> None:
    before = sandbox.exec_stats()["total"]
    keys = set(ip.user_ns)
    with pytest.raises(UsageError, match="not a Python variable name") as caught:
        ip.run_line_magic("pod", f"solo -o {name} -- true")
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)
    assert sandbox.exec_stats()["total"] == before
    assert set(ip.user_ns) == keys


# -- foreground and --bg finish the same way ------------------------------------------------------


def finished_value(ip: InteractiveShell, options: str, command: str, *, bg: bool) -> Any:
    """Run ``%pod -l app=db OPTIONS -o NAME -- COMMAND`` blocking or with --bg; the stored value."""
    name = "bg_value" if bg else "fg_value"
    ip.user_ns.pop(name, None)
    line = f"-l app=db {'--bg ' if bg else ''}{options} -o {name} -- {command}"
    handle = ip.run_line_magic("pod", line)
    if bg:
        assert isinstance(handle, BackgroundRun)
        handle.result(timeout=30)
    else:
        assert handle is None  # -o NAME: the value is stored, not returned
    return ip.user_ns[name]


def outcome(value: Any) -> Any:
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records"), value.attrs.get("errors")
    assert isinstance(value, PodResults)
    rows = [(r.pod, r.status, r.exit_code, r.stdout, r.stderr) for r in value]
    return rows, None if value.frame is None else outcome(value.frame)


@pytest.mark.parametrize(
    ("options", "command"),
    [
        ("--parse regex --pattern '(?P<host>db-\\d+) (?P<n>\\d+)'", "echo $HOSTNAME 7"),
        ("--parse kv", "echo host=$HOSTNAME"),
        ("--parse json", "echo '{\"a\": 1}'"),
        ("--parse lines --check", "echo one; echo two"),
        ("", "echo out; echo err >&2"),
        ("--retries 1 -P 1 --timeout 20", "hostname"),
    ],
    ids=["regex-pattern", "kv", "json", "lines-check", "plain", "limits"],
)
def test_background_stores_what_the_blocking_run_stores(
    ip: InteractiveShell, options: str, command: str
) -> None:
    foreground = finished_value(ip, options, command, bg=False)
    background = finished_value(ip, options, command, bg=True)
    assert type(background) is type(foreground)
    assert outcome(background) == outcome(foreground)


def test_background_parse_regex_uses_the_pattern(ip: InteractiveShell) -> None:
    value = finished_value(
        ip, "--parse regex --pattern 'n=(?P<n>\\d+)'", "echo n=1; echo n=2", bg=True
    )
    # -o NAME --parse stores the results, the parsed frame at .frame (issue 13).
    assert list(value.frame["n"]) == [1, 2, 1, 2]


def test_background_check_raises_from_the_handle_like_the_blocking_run(
    ip: InteractiveShell,
) -> None:
    command = '[ "$HOSTNAME" = db-0 ]'
    with pytest.raises(PodsFailedError) as blocking:
        ip.run_line_magic("pod", f"-l app=db --check -o fg_failed -- {command}")
    handle = ip.run_line_magic("pod", f"-l app=db --bg --check -o bg_failed -- {command}")
    with pytest.raises(PodsFailedError) as background:
        handle.result(timeout=30)
    assert str(background.value) == str(blocking.value)
    assert outcome(ip.user_ns["bg_failed"]) == outcome(ip.user_ns["fg_failed"])


def test_background_parse_problems_are_on_the_handle(ip: InteractiveShell) -> None:
    handle = ip.run_line_magic("pod", "-l app=db --bg --parse json -- echo not-json")
    handle.result(timeout=30)
    assert handle.problems is not None and "db-0" in handle.problems
    assert "not parsed" in repr(handle)


def test_pattern_without_parse_is_a_usage_error(ip: InteractiveShell, sandbox: Sandbox) -> None:
    before = sandbox.exec_stats()["total"]
    with pytest.raises(UsageError, match="--pattern goes with --parse regex"):
        ip.run_line_magic("pod", "solo --pattern x -- true")
    assert sandbox.exec_stats()["total"] == before


@pytest.mark.parametrize("pattern", ["'('", "'(?P<a>x)(?P<a>y)'"])
@pytest.mark.parametrize("bg", [False, True], ids=["fg", "bg"])
def test_a_bad_pattern_is_a_usage_error_before_anything_runs(
    ip: InteractiveShell, sandbox: Sandbox, tmp_path: Path, pattern: str, bg: bool
) -> None:
    marker = tmp_path / "ran.txt"
    before = sandbox.exec_stats()["total"]
    ip.user_ns.pop("bad_pattern_out", None)
    with pytest.raises(UsageError, match="invalid pattern"):
        ip.run_line_magic(
            "pod",
            f"solo -q {'--bg ' if bg else ''}-o bad_pattern_out --parse regex --pattern {pattern} "
            f"-- echo ran > {marker}; echo ran",
        )
    assert sandbox.exec_stats()["total"] == before
    assert not marker.exists()
    assert "bad_pattern_out" not in ip.user_ns


def test_parse_regex_without_pattern_names_the_flag(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="--parse regex needs --pattern RE"):
        ip.run_line_magic("pod", "solo --parse regex -- true")


# -- --stdin leaves the user's namespace alone -----------------------------------------------------


def test_stdin_expression_leaves_the_user_namespace_unchanged(ip: InteractiveShell) -> None:
    ip.user_ns["stdin_source"] = "payload"
    before = dict(ip.user_ns)
    results = ip.run_line_magic("pod", "solo --stdin \"stdin_source + '!'\" -- cat")
    assert results.stdout == b"payload!"
    assert ip.user_ns.keys() == before.keys()
    assert all(ip.user_ns[name] is value for name, value in before.items())


def test_stdin_value_never_adds_builtins_to_a_namespace() -> None:
    from podmagic._magics import _stdin_value

    namespace: dict[str, Any] = {"x": "a"}
    assert _stdin_value("x * 2", namespace) == "aa"
    assert namespace == {"x": "a"}


# -- %pod? names real settings ----------------------------------------------------------------------


def test_help_names_only_real_settings(ip: InteractiveShell) -> None:
    from podmagic import _magics

    magic = _magics.PodMagic
    traits = magic.class_traits(config=True)
    texts = [
        ip.find_line_magic("pod").__doc__ or "",  # %pod? : the docstring and every option
        ip.find_line_magic("pod_sandbox").__doc__ or "",
        magic.__doc__ or "",
        _magics.__doc__ or "",
        *(str(trait.help) for trait in traits.values()),
    ]
    named = {name for text in texts for name in re.findall(r"PodMagic\.(\w+)", text)}
    assert named, "the help names no settings at all"
    assert named <= set(traits), sorted(named - set(traits))
    assert "PodMagic.default_shell" in texts[0]


# -- a bare %pod in terminal IPython ----------------------------------------------------------------


def test_terminal_ipython_shows_a_bare_pod_summary_once_with_no_empty_out(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    import pexpect

    env = {
        **os.environ,
        "TERM": "dumb",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    ipython = Path(sys.executable).with_name("ipython")
    child = pexpect.spawn(
        str(ipython),
        ["--no-banner", "--colors=nocolor", "--simple-prompt", "--no-confirm-exit"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(50, 200),
    )
    try:
        cells = [
            "%load_ext podmagic",
            f"%config PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}",
            "%pod -l app=db -n conf -- echo hi",
            "import podmagic; print(isinstance(_, podmagic.PodResults), len(_))",
            "1 + 1",
            # Two bare runs in one cell: the last one's value is the one displayed.
            "; ".join(["get_ipython().run_line_magic('pod', 'solo -n conf -- true')"] * 2),
        ]
        screens = []
        for number, cell in enumerate(cells, start=1):
            child.expect_exact(f"In [{number}]: ")
            child.sendline(cell)
            screens.append(child.before)
        child.expect_exact(f"In [{len(cells) + 1}]: ")
        screens.append(child.before)
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    bare, underscore, plain, twice = screens[3], screens[4], screens[5], screens[6]
    assert bare.count("2 pods in context") == 1, bare  # the summary, once
    assert "Out[" not in bare, bare  # and no empty Out[3]: after it
    assert "True 2" in underscore  # the value is still _ (and Out[3])
    assert "Out[5]: 2" in plain  # other values keep their prompt
    assert twice.count(" in context ") == 2 and "Out[" not in twice, twice


def test_cancel_twice_says_only_the_first_stops_the_run(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    handle = ip.run_line_magic("pod", f"solo --bg -- until [ -e {gate} ]; do sleep 0.05; done")
    assert handle.cancel() is True
    assert handle.cancel() is False
    handle.result(timeout=30)
    assert handle.cancel() is False


def test_a_cancelled_background_run_is_counted_as_the_summary_counts_it(
    ip: InteractiveShell, tmp_path: Path
) -> None:
    gate = tmp_path / "never"
    handle = ip.run_line_magic("pod", f"solo --bg -- until [ -e {gate} ]; do sleep 0.05; done")
    wait_until(lambda: handle.started_count == 1, what="the exec started")
    handle.cancel()
    results = handle.result(timeout=30)
    assert "1 cancelled" in str(results)
    assert "1/1 done, 1 cancelled" in repr(handle)
    assert "failed" not in repr(handle)


def test_background_parse_problems_say_what_they_are(ip: InteractiveShell) -> None:
    command = 'echo "{\\"a\\": 1}"; [ "$HOSTNAME" != db-0 ] || exit 4'
    handle = ip.run_line_magic("pod", f"-l app=db --bg --parse json -- {command}")
    frame = handle.result(timeout=30)
    assert len(frame) == 2  # every pod parsed
    assert "1 pod failed (see .problems)" in repr(handle)
    assert "not parsed" not in repr(handle)


@pytest.mark.parametrize("bg", [False, True], ids=["blocking", "bg"])
def test_parse_check_with_a_failed_pod_is_one_parse_error(ip: InteractiveShell, bg: bool) -> None:
    command = 'echo "{\\"a\\": 1}"; [ "$HOSTNAME" != db-0 ] || exit 4'
    line = f"-l app=db --parse json --check {'--bg ' if bg else ''}-- {command}"
    with pytest.raises(ParseError, match=r": 1 pod failed: db-0 \(exit 4\)"):
        value = ip.run_line_magic("pod", line)
        if bg:
            value.result(timeout=30)
