r"""Python in pods: ``%%pod TARGET --python`` and ``Cluster.run(program, python=True)``.

Each pod's value comes back as JSON (``PodResult.value``, ``PodResults.values``, a frame for
dicts), ``{{expr}}`` goes in as a Python literal that cannot break out, the program travels
over stdin (never in the exec URL), and what the program prints cannot pose as its value.
End to end against the sandbox, whose pods run the host's ``python3``.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import math
from typing import Any
from urllib.parse import quote

import pytest
from _waiting import wait_until
from conftest import MANIFESTS, quiet_podmagic_shell
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic import (
    NO_VALUE,
    Cluster,
    ExecStatus,
    PodOutput,
    PodResults,
    PodsFailedError,
    SelectionError,
)
from podmagic._command import INLINE_URL_LIMIT
from podmagic._interpolation import InterpolationError, interpolate
from podmagic._python import BOOTSTRAP, PythonProgram, _Stream, python_literal, substitute
from podmagic.sandbox import Sandbox

# -- values into the program --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        'it\'s "quoted"\n$(reboot) `id` \\ \u202e',
        -3,
        2**70,
        1.5,
        -0.0,
        True,
        None,
        b"\x00\xff'",
        [1, "a", [None]],
        (1,),
        (),
        {"k": {"n": [1.0, (2, 3)]}, 4: "four", (1, 2): None},
        {3, 1, 2},
        set(),
    ],
)
def test_a_value_goes_in_as_a_literal_that_evaluates_to_it(value: Any) -> None:
    text = python_literal(value)
    assert text.startswith("(") and text.endswith(")")
    assert "\n" not in text  # one line: the cell's line numbers stay as written
    assert eval(text, {"__builtins__": {}}) == value


def test_non_finite_floats_go_in_without_names_a_program_could_rebind() -> None:
    for value in (math.inf, -math.inf):
        assert eval(python_literal(value), {"__builtins__": {}}) == value
    assert math.isnan(eval(python_literal(math.nan), {"__builtins__": {}}))


def test_python_literal_is_public_and_refuses_a_type_without_a_literal() -> None:
    import podmagic

    assert podmagic.python_literal("a'b") == '("a\'b")'
    with pytest.raises(ValueError, match="the value is a datetime, which has no Python literal"):
        podmagic.python_literal(dt.datetime(2020, 1, 1))


def test_a_str_subclass_goes_in_as_its_text_not_as_its_own_repr() -> None:
    class Sly(str):
        def __repr__(self) -> str:
            return "__import__('os').system('id')"

    assert python_literal(Sly("plain")) == "('plain')"


def test_every_placeholder_becomes_a_parenthesised_literal() -> None:
    namespace = {"name": "x'); import os; os.system('id'); ('", "n": -2, "cfg": {"a": [1]}}
    program = substitute("limit = {{n}}**2\nprint({{name}})\nresult = {{cfg}}['a']", namespace)
    tree = ast.parse(program)
    assert not any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.walk(tree))
    scope: dict[str, Any] = {"print": lambda *a: None}
    exec(program, scope)  # noqa: S102 - running the substituted program is the check
    assert scope["limit"] == 4  # (-2)**2, not -2**2
    assert scope["result"] == [1]


@pytest.mark.parametrize(
    ("program", "words"),
    [
        ("x = 'limit {{n}}'", "inside a string"),
        ('x = """\n{{n}}\n"""', "inside a string"),
        ("x = f'{ {{n}} }'", "inside an f-string"),
        ("x = 1  # {{n}}", "in a comment"),
        ("{{n}} = 3", "assigned or deleted"),
        ("for {{n}} in range(3): pass", "assigned or deleted"),
        ("import {{n}}", "where a name, not a value, must stand"),
        ("x = obj.{{n}}", "where a name, not a value, must stand"),
        ("f({{n}}=1)", "where a name, not a value, must stand"),
    ],
)
def test_a_placeholder_where_no_value_can_stand_is_refused_before_any_is_evaluated(
    program: str, words: str
) -> None:
    evaluated = []
    namespace = {"note": lambda: evaluated.append(1) or 1}
    with pytest.raises(InterpolationError, match=words) as caught:
        substitute("a = {{note()}}\n" + program.replace("{{n}}", "{{note()}}"), namespace)
    assert "{{note()}}" in str(caught.value)
    assert evaluated == []


def test_a_value_without_a_literal_is_one_error_naming_the_placeholder_never_the_value() -> None:
    class Secret:
        def __repr__(self) -> str:
            return "hunter2"

        __str__ = __repr__

    for value, kind in (
        (Secret(), "a Secret"),
        ({"k": [Secret()]}, "a Secret"),
        (dt.date(2020, 1, 2), "a date"),
    ):
        with pytest.raises(InterpolationError) as caught:
            substitute("x = {{value}}", {"value": value})
        message = str(caught.value)
        assert "{{value}}" in message and kind in message and "hunter2" not in message


def test_raw_placeholders_are_refused_and_escaped_braces_stay_literal() -> None:
    with pytest.raises(InterpolationError, match=r"\|raw would make the value code"):
        substitute("x = {{code|raw}}", {"code": "1"})
    assert substitute("x = '\\{{n}}'  # \\{{", {}) == "x = '{{n}}'  # {{"


# -- delivery -----------------------------------------------------------------------------------


def test_the_exec_url_holds_a_short_fixed_bootstrap_and_nothing_of_the_program() -> None:
    program = PythonProgram("token = 's3cr3t-value'\n" * 50_000, env={"API_KEY": "k3y"})
    remote = program.command(b"mark")
    assert remote.argv == ("python3", "-c", BOOTSTRAP)
    assert len(quote(BOOTSTRAP, safe="")) < INLINE_URL_LIMIT
    assert isinstance(remote.stdin, bytes)
    assert b"s3cr3t-value" in remote.stdin and b"k3y" in remote.stdin
    assert "k3y" not in repr(remote) and remote.env_names == ("API_KEY",)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def test_the_value_is_taken_out_of_stdout_wherever_the_chunks_split_it() -> None:
    mark = b"\x1epodmagic-value-" + b"ab" * 16 + b"\x1e"
    output = b"line one\n\x1epodmagic-value-not-the-mark\x1e\npartial"
    stream_bytes = output + mark + b'{"value": [1, 2]}\n' + b"after\n"
    for cut in range(1, len(stream_bytes)):
        for second in (cut + 1, cut + 7, len(stream_bytes) - 1):
            cuts = sorted({c for c in (cut, second) if 0 < c < len(stream_bytes)})
            stream = _Stream(target=None)  # type: ignore[arg-type]
            passed = b"".join(stream.feed(chunk, mark) for chunk in _split(stream_bytes, cuts))
            passed += stream.flush()
            assert passed == output + b"after\n", cuts
            assert bytes(stream.json) == b'{"value": [1, 2]}'
            assert stream.start == len(output)


def test_output_ending_in_what_could_begin_the_mark_is_handed_on_at_the_end() -> None:
    mark = b"\x1epodmagic-value-" + b"cd" * 16 + b"\x1e"
    stream = _Stream(target=None)  # type: ignore[arg-type]
    assert stream.feed(b"abc\x1epodmagic-va", mark) == b"abc"
    assert stream.flush() == b"\x1epodmagic-va" and stream.start is None


def test_a_held_back_tail_reaches_the_live_view_when_the_pod_ends(cluster: Cluster) -> None:
    events: list[Any] = []
    program = "import os, sys\nsys.stdout.write('tail \\x1epodmagic-value-')\nsys.stdout.flush()\nos._exit(0)"
    [r] = cluster.run(program, "solo", python=True, on_event=events.append)
    shown = b"".join(e.data for e in events if isinstance(e, PodOutput))
    assert shown == r.stdout == b"tail \x1epodmagic-value-"
    assert r.value is NO_VALUE and r.status is ExecStatus.FAILED  # os._exit(): no value


def test_a_value_nested_deeper_than_python_reads_is_one_short_line_naming_the_placeholder() -> None:
    def nested(depth: int, inner: Any) -> Any:
        for _ in range(depth):
            inner = [inner]
        return inner

    for depth in (200, 1000):
        with pytest.raises(InterpolationError) as caught:
            substitute("x = {{deep}}", {"deep": nested(depth, 1)})
        message = str(caught.value)
        assert message.startswith("{{deep}} is nested more than 80 containers deep")
        assert "json.dumps(deep)" in message and len(message) < 300 and "\n" not in message
        with pytest.raises(ValueError, match="nested more than 80 containers deep"):
            python_literal(nested(depth, 1))
    # As deep as allowed, inside the cell's own brackets too: Python still reads it.
    program = substitute("x = f([{{deep}}])", {"deep": nested(79, 1)})
    assert ast.parse(program) is not None
    # A part without a literal deep inside is named by its depth, not by a chain of "of".
    with pytest.raises(InterpolationError) as caught:
        substitute("x = {{deep}}", {"deep": nested(60, dt.date(2020, 1, 1))})
    assert str(caught.value).startswith("an item 60 levels into {{deep}} is a date")
    assert len(str(caught.value)) < 300


def test_a_lone_surrogate_in_a_shell_value_is_said_of_the_value_not_the_script() -> None:
    with pytest.raises(InterpolationError) as caught:
        interpolate("echo {{name}}", {"name": "caf\udce9"}, shell="/bin/sh")
    message = str(caught.value)
    assert message.startswith("{{name}} is not valid Unicode text") and "script" not in message


# -- end to end ---------------------------------------------------------------------------------


def test_every_pod_gives_back_its_value_and_one_frame_of_dicts(cluster: Cluster) -> None:
    events: list[Any] = []
    program = (
        "import os, socket\n"
        "print('checking', os.environ['MY_POD'])\n"
        "{'pod': os.environ['MY_POD'], 'greeting': os.environ.get('GREETING'), 'n': 3}\n"
    )
    results = cluster.run(program, "deploy/web", python=True, on_event=events.append)
    assert results.ok and len(results) == 3
    assert set(results.values) == {r.pod for r in results}
    for r in results:
        assert r.value == {"pod": r.pod, "greeting": "hello", "n": 3}
        assert r.stdout == f"checking {r.pod}\n".encode()  # no mark, no JSON
    frame = results.frame
    assert frame is not None
    assert list(frame.columns) == ["pod", "pod_", "greeting", "n"]
    assert sorted(frame["pod"]) == sorted(frame["pod_"])
    shown = b"".join(e.data for e in events if isinstance(e, PodOutput))
    assert b"podmagic-value" not in shown and b"checking" in shown
    assert results.provenance is not None


def test_a_pod_that_raised_has_a_row_saying_why_in_the_values_frame(cluster: Cluster) -> None:
    odd = cluster.run("true", "deploy/web")[1].pod
    program = f"import os\nassert os.environ['MY_POD'] != {python_literal(odd)}, 'odd'\n{{'ok': 1}}"
    results = cluster.run(program, "deploy/web", python=True)
    assert len(results.values) == 2 and odd not in results.values
    frame = results.frame
    assert frame is not None and list(frame.columns) == ["pod", "ok", "error"]
    row = frame[frame["pod"] == odd].iloc[0]
    assert row["error"] == "AssertionError: odd (line 2)" and math.isnan(row["ok"])
    assert frame.attrs["errors"] == {odd: "AssertionError: odd (line 2)"}


def test_a_result_variable_wins_over_the_last_expression(cluster: Cluster) -> None:
    results = cluster.run("result = [{'a': 1}, {'a': 2}]\n'ignored'", "solo", python=True)
    assert results.values == {"solo": [{"a": 1}, {"a": 2}]}
    assert results.frame is not None and list(results.frame["a"]) == [1, 2]
    plain = cluster.run("x = 2\nx * 21", "solo", python=True)
    assert plain.values == {"solo": 42} and plain.frame is None
    nothing = cluster.run("x = 1", "solo", python=True)
    assert nothing.values == {"solo": None}


def test_an_exception_fails_the_pod_with_the_tracebacks_last_line(cluster: Cluster) -> None:
    results = cluster.run("x = 1\n1 / 0\n", "solo", python=True, ok_exit=[0, 1])
    [r] = results
    assert r.status is ExecStatus.FAILED and r.exit_code == 1
    assert r.error == "ZeroDivisionError: division by zero (line 2)"
    assert r.value is NO_VALUE and results.values == {}
    assert b'File "<cell>", line 2' in r.stderr and b"ZeroDivisionError" in r.stderr
    assert b"    1 / 0\n" in r.stderr  # the cell's own line, as Python shows it
    assert "division by zero (line 2)" in str(results)  # the summary's error column


def test_a_pod_without_the_interpreter_is_skipped_saying_so(cluster: Cluster) -> None:
    results = cluster.run("1", "solo", python=True, python_bin="/no/such/python3")
    [r] = results
    assert r.status is ExecStatus.SKIPPED
    assert r.error is not None and "/no/such/python3 is not in this container" in r.error
    assert "--python-bin" in r.error
    assert results.values == {} and not results.ok


def test_an_interpreter_that_cannot_run_is_skipped_and_one_that_is_no_python_fails(
    cluster: Cluster,
) -> None:
    [not_executable] = cluster.run("1", "solo", python=True, python_bin="/etc/hostname")
    assert not_executable.status is ExecStatus.SKIPPED
    assert "/etc/hostname cannot be run in this container" in (not_executable.error or "")
    [shell] = cluster.run("1", "solo", python=True, python_bin="/bin/sh")
    assert shell.status is ExecStatus.FAILED and shell.value is NO_VALUE
    assert (shell.error or "").startswith(f"exit {shell.exit_code}: /bin/sh ended without")


def test_a_program_that_ends_without_its_value_fails_whatever_its_exit_code(
    cluster: Cluster,
) -> None:
    results = cluster.run("import os\nresult = 5\nos._exit(0)", "solo", python=True)
    [r] = results
    assert r.status is ExecStatus.FAILED and r.exit_code == 0 and r.value is NO_VALUE
    assert r.error == (
        "exit 0: python3 ended without the program's value "
        "(os._exit(), a signal, or it is no Python 3 interpreter)"
    )
    assert "ended without the program's value" in str(results)  # the summary's error column
    with pytest.raises(PodsFailedError, match="1 of 1 pods failed: solo"):
        results.check()
    [true] = cluster.run("1", "solo", python=True, python_bin="/bin/true")
    assert true.status is ExecStatus.FAILED and true.value is NO_VALUE
    assert (true.error or "").startswith("exit 0: /bin/true ended without the program's value")


def test_a_program_that_closes_or_replaces_its_stdout_still_sends_its_value(
    cluster: Cluster,
) -> None:
    for program in (
        "import os\nos.close(1)\nresult = 5",
        "import os\nos.dup2(os.open(os.devnull, os.O_WRONLY), 1)\nprint('gone')\nresult = 5",
    ):
        [r] = cluster.run(program, "solo", python=True)
        assert r.status is ExecStatus.OK and r.value == 5 and r.stdout == b""


def test_only_the_process_that_started_the_program_sends_its_value(cluster: Cluster) -> None:
    # The child falls through and ends first (the parent waits for it): its value must not
    # count, and the parent's mark must not land in stdout.
    program = (
        "import os, sys\n"
        "child = os.fork()\n"
        "if child:\n"
        "    os.waitpid(child, 0)\n"
        "print('from', 'child' if not child else 'main')\n"
        "sys.stdout.flush()\n"
        "result = 'child' if not child else 'main'\n"
    )
    [r] = cluster.run(program, "solo", python=True)
    assert r.status is ExecStatus.OK and r.value == "main"
    assert r.stdout == b"from child\nfrom main\n"


def test_what_the_program_prints_cannot_pose_as_its_value(cluster: Cluster) -> None:
    fake = "\\x1epodmagic-value-" + "0" * 32 + '\\x1e{\\"value\\": 666}'
    program = f'print("{fake}")\nprint("{fake}", end="")\n7'
    [r] = cluster.run(program, "solo", python=True)
    assert r.value == 7
    assert r.stdout.count(b'{"value": 666}') == 2


def test_a_large_program_and_output_past_the_capture_cap_keep_the_value(
    cluster: Cluster,
) -> None:
    program = "rows = []\n" + "rows.append(1)\n" * 60_000 + "print('x' * 4999)\nlen(rows)"
    [r] = cluster.run(program, "solo", python=True, capture_limit=1000, capture_budget=None)
    assert r.status is ExecStatus.OK and r.value == 60_000
    assert r.stdout == b"x" * 1000 and r.stdout_dropped == 4000
    assert r.stdout_dropped_digest is None  # it took in the value's bytes, which are not counted


def test_stdin_env_and_workdir_reach_the_program(cluster: Cluster) -> None:
    program = (
        "import os, sys\n{'in': sys.stdin.read(), 'env': os.environ['MODE'], 'cwd': os.getcwd()}"
    )
    [r] = cluster.run(
        program, "solo", python=True, stdin="data\n", env={"MODE": "fast"}, workdir="/tmp"
    )
    assert r.value == {"in": "data\n", "env": "fast", "cwd": "/tmp"}
    [quiet] = cluster.run("import sys\nsys.stdin.read()", "solo", python=True)
    assert quiet.value == ""  # no --stdin: the program reads an empty stdin, never waits


def test_values_json_cannot_hold_come_back_as_their_repr_with_a_note(cluster: Cluster) -> None:
    program = (
        "import datetime, decimal\n[datetime.date(2020, 1, 2), decimal.Decimal('1.5'), {2, 1}]"
    )
    [r] = cluster.run(program, "solo", python=True)
    assert r.value == ["2020-01-02", "Decimal('1.5')", [1, 2]]
    assert b"podmagic: JSON cannot hold Decimal: sent as repr() text" in r.stderr


def test_a_value_too_deep_for_json_fails_its_pod_saying_so(cluster: Cluster) -> None:
    [r] = cluster.run("x = []\nfor _ in range(100_000):\n    x = [x]\nx", "solo", python=True)
    assert r.status is ExecStatus.FAILED and r.value is NO_VALUE
    assert r.error is not None
    assert r.error.startswith("the value could not be sent as JSON: RecursionError")


def test_sys_exit_counts_as_its_exit_code_and_keeps_the_result(cluster: Cluster) -> None:
    [r] = cluster.run("import sys\nresult = 5\nsys.exit(3)", "solo", python=True, ok_exit="0,3")
    assert r.status is ExecStatus.OK and r.exit_code == 3 and r.value == 5


def test_a_rerun_gives_the_values_again(cluster: Cluster) -> None:
    results = cluster.run("import os\nos.environ['MY_POD']", "deploy/web", python=True)
    again = results.rerun()
    assert again.values == results.values and len(again.values) == 3


def test_a_nul_in_an_env_value_is_refused_naming_the_variable_only(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="environment variable TOKEN contains a NUL") as caught:
        cluster.run("1", "solo", python=True, env={"TOKEN": "s3cr3t\x00"})
    assert "s3cr3t" not in str(caught.value)


def test_a_tty_or_a_list_is_refused_for_python(cluster: Cluster) -> None:
    with pytest.raises(ValueError, match="without a terminal"):
        cluster.run("1", "solo", python=True, tty=True)
    with pytest.raises(TypeError, match="one str"):
        cluster.run(["print", "1"], "solo", python=True)


# -- the magic ----------------------------------------------------------------------------------


def test_the_python_cell_takes_notebook_values_as_literals(ip: InteractiveShell) -> None:
    ip.user_ns["needle"] = "'); import os; os.system('touch /tmp/pwned'); ('"
    ip.user_ns["limits"] = {"warn": 80, "crit": 95}
    value = ip.run_cell_magic(
        "pod", "deploy/web --python -o res", "{'needle': {{needle}}, 'crit': {{limits}}['crit']}\n"
    )
    assert value is None
    res = ip.user_ns["res"]
    assert isinstance(res, PodResults) and len(res.values) == 3
    assert all(v == {"needle": ip.user_ns["needle"], "crit": 95} for v in res.values.values())
    frame = ip.run_cell_magic("pod", "solo --python", "{'x': {{limits}}['warn']}\n")
    assert list(frame.columns) == ["pod", "x"] and list(frame["x"]) == [80]
    assert ip.run_line_magic("pod", "solo --python -- 6 * 7") == {"solo": 42}


def test_the_python_cell_refuses_what_does_not_fit(ip: InteractiveShell) -> None:
    ip.user_ns["when"] = dt.datetime(2020, 1, 1)
    for line, cell, words in (
        ("solo --python", "x = 'at {{limit}}'\n", "inside a string"),
        ("solo --python", "x = {{when}}\n", "{{when}} is a datetime"),
        ("solo --python -t", "1\n", "leave out -t"),
        ("solo --python --parse json", "1\n", "leave out --parse"),
        ("solo --python-bin python3", "1\n", "--python-bin goes with --python"),
    ):
        with pytest.raises(UsageError, match=words.replace("{", r"\{")):
            ip.run_cell_magic("pod", line, cell)


def test_an_empty_python_bin_is_refused_in_one_line_as_in_python(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="--python-bin takes the interpreter's name or path"):
        ip.run_cell_magic("pod", "solo --python --python-bin ''", "1\n")


def test_the_python_cell_skips_a_pod_without_the_interpreter(ip: InteractiveShell) -> None:
    ip.run_cell_magic("pod", "solo --python --python-bin /no/python -o res", "1\n")
    [r] = ip.user_ns["res"]
    assert r.status is ExecStatus.SKIPPED and "/no/python is not in this container" in (
        r.error or ""
    )


def test_a_python_cell_in_the_background_and_its_rerun_give_values(ip: InteractiveShell) -> None:
    handle = ip.run_cell_magic("pod", "deploy/web --python --bg", "result = 'bg'\n")
    results = handle.result(timeout=120)
    assert list(results.values.values()) == ["bg", "bg", "bg"]
    ip.user_ns["first"] = results
    again = ip.run_line_magic("pod", "--rerun first")
    assert again == results.values  # the cell's value: the values again, not the summary


def test_the_output_of_a_python_cell_streams_without_the_value(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("config", "PodMagic.quiet = False")  # the text view of a terminal shell
    try:
        capsys.readouterr()
        ip.run_cell_magic("pod", "solo --python", "print('streamed line')\n{'k': 1}\n")
    finally:
        ip.run_line_magic("config", "PodMagic.quiet = True")
    out = capsys.readouterr().out
    assert "streamed line" in out and "podmagic-value" not in out


def test_a_shell_command_has_no_value(cluster: Cluster) -> None:
    results = cluster.run("echo '{\"value\": 1}'", "solo")
    assert results.values == {} and results[0].value is NO_VALUE


def test_a_run_across_contexts_gives_every_pods_value_and_one_frame(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("two-contexts")
    with Sandbox(MANIFESTS / "cluster.yaml", contexts=2, kubeconfig=folder / "kc") as two:
        contexts = list(two.contexts)
        assert two.kubeconfig is not None
        with Cluster.many(contexts, kubeconfig=two.kubeconfig, namespace="conf") as fleet:

            def solo_running() -> bool:
                try:
                    return len(fleet.select("solo").run) == 2
                except SelectionError:
                    return False

            wait_until(solo_running, what="the solo pod running in both contexts")
            results = fleet.run("{'one': 1}", "solo", python=True)
            assert results.values == {f"{c}:conf/solo": {"one": 1} for c in contexts}
            assert results.frame is not None and list(results.frame["one"]) == [1, 1]
        with quiet_podmagic_shell(two.kubeconfig) as shell:
            shell.user_ns["k"] = 2
            frame = shell.run_cell_magic(
                "pod", f"solo --context '{contexts[0]}*' --python", "{'k': {{k}}}\n"
            )
            # -o keeps the same frame, as a one-context run does.
            shell.run_cell_magic(
                "pod", f"solo --context '{contexts[0]}*' --python -o res", "{'k': {{k}}}\n"
            )
            kept = shell.user_ns["res"].frame
            assert kept is not None and list(kept.columns) == ["context", "pod", "k"]
    assert list(frame.columns) == ["context", "pod", "k"]
    assert sorted(frame["context"]) == sorted(contexts) and list(frame["k"]) == [2, 2]
