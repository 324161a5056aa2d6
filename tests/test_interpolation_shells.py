"""A value never executes, under dash, bash, busybox ash, mksh and zsh.

Every test here runs the interpolated text with the real shells (Debian's packages) in a
fresh folder and looks for a canary file that only a value that ran could create. The
property test builds scripts from a grammar of shell contexts (arithmetic, quoting forms,
here-documents, eval-like builtins, assignments, tests ...) with a placeholder somewhere and
a hostile value, and asserts: refused with a one-line reason that does not quote the value,
or run by every shell without a canary. The named tests are the reproductions from issue 9.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import missing_tool
from hypothesis import given, settings
from hypothesis import strategies as st

from podmagic._client import Cluster
from podmagic._interpolation import InterpolationError, interpolate
from podmagic.sandbox import Sandbox

CANARY = "CANARY"
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def _shells() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in ("dash", "bash", "mksh", "zsh"):
        path = shutil.which(name)
        if path:
            found[name] = [path]
    busybox = shutil.which("busybox")
    if busybox:
        found["ash"] = [busybox, "sh"]
    return found


SHELLS = _shells()


@pytest.fixture(scope="module", autouse=True)
def all_five_shells() -> None:
    missing = sorted({"dash", "bash", "ash", "mksh", "zsh"} - SHELLS.keys())
    if missing:
        missing_tool(f"shells {missing} not installed (apt-get install dash bash busybox mksh zsh)")


def ran_in(script: str) -> list[str]:
    """The shells in which ``script`` created the canary (each in a fresh folder)."""
    ran = []
    for name, argv in SHELLS.items():
        with tempfile.TemporaryDirectory() as folder:
            # A file to match, so that zsh glob qualifiers and bash patterns have something.
            Path(folder, "file").write_text("x\n")
            try:
                subprocess.run(
                    [*argv, "-c", script],
                    cwd=folder,
                    env=ENV,
                    timeout=20,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} did not finish within 20 s: {script!r}")
            if Path(folder, CANARY).exists():
                ran.append(name)
    return ran


def refused_or_harmless(template: str, value: Any) -> str | None:
    """The refusal message, or None after checking that no shell runs the value."""
    try:
        text = interpolate(template, {"x": value})
    except InterpolationError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert CANARY not in message, message  # the template is quoted, never the value
        assert "{{" in message, message  # it names the placeholder
        return message
    assert ran_in(text) == [], (template, value, text)
    return None


SUBSTITUTION = f"$(touch {CANARY})"
SUBSCRIPT = f"a[$(touch {CANARY})]"
CODE = f"touch {CANARY}"

# Each one ran the value on main before this change (the shells named in the comment).
REPRODUCTIONS = {
    "dash_has_no_dollar_single_quotes": ("echo $'\\'' {{x}} '", f";{CODE};"),  # dash
    "case_pattern_paren_inside_quoted_substitution": (
        'echo "$(case a in a) echo " {{x}} ";; esac)"',
        SUBSTITUTION,
    ),  # all five
    "bash_dollar_bracket_arithmetic": ("echo $[1+{{x}}]", SUBSCRIPT),  # bash, zsh
    "array_subscript_in_expansion": ("echo ${a[{{x}}]}", SUBSCRIPT),  # bash, mksh, zsh
    "double_bracket_eq": ("[[ {{x}} -eq 1 ]]", SUBSCRIPT),  # bash, mksh
    "let": ("let n={{x}}", SUBSCRIPT),  # bash, mksh
    "declare_i": ("declare -i n={{x}}", SUBSCRIPT),  # bash
    "typeset_i": ("typeset -i n={{x}}", SUBSCRIPT),  # bash, mksh
    "local_i_in_function": ("f() { local -i n={{x}}; }; f", SUBSCRIPT),  # bash, mksh
    "printf_v": ("printf -v {{x}} %s 1", SUBSCRIPT),  # bash, zsh
    "eval": ("eval {{x}}", CODE),  # all five
    "eval_reparses_quoted_value": ('eval "echo "{{x}}', f";{CODE}"),  # all five
    "command_eval": ("command eval {{x}}", CODE),  # dash, bash, ash, mksh
    "trap": ("trap {{x}} EXIT", CODE),  # all five
    "sh_c": ("sh -c {{x}}", CODE),  # all five
    "kubectl_exec_sh_c": ("exec sh -c {{x}}", CODE),  # all five
    "substring_offset": ("v=abc; echo ${v:{{x}}}", SUBSCRIPT),  # bash, zsh
    "substring_length": ("v=abc; echo ${v:1:{{x}}}", SUBSCRIPT),  # mksh, zsh
    "default_assign_to_integer": ("declare -i y; echo ${y:={{x}}}", SUBSCRIPT),  # bash
    "assign_after_declare_i": ("declare -i n; n={{x}}", SUBSCRIPT),  # bash
    "export_after_declare_i": ("declare -i n; export n={{x}}", SUBSCRIPT),  # bash
    "assign_after_integer": ("integer n; n={{x}}", SUBSCRIPT),  # mksh
    "assign_to_RANDOM": ("RANDOM={{x}}", SUBSCRIPT),  # bash, mksh
    "assign_to_SECONDS": ("export SECONDS={{x}}", SUBSCRIPT),  # mksh
    "for_over_integer_variable": ("for OPTIND in {{x}}; do :; done", SUBSCRIPT),  # bash, mksh
    "test_eq": ("test {{x}} -eq 1", SUBSCRIPT),  # mksh
    "bracket_eq": ("[ {{x}} -eq 1 ]", SUBSCRIPT),  # mksh
    "bracket_v": ("[ -v {{x}} ]", SUBSCRIPT),  # bash, mksh
    "test_with_split_substitution": ("[ $(echo {{x}}) ]", f"-v {SUBSCRIPT}"),  # bash, mksh
    "read": ("read {{x}} <<< 1", SUBSCRIPT),  # bash, mksh, zsh
    "read_timeout": ("read -t {{x}} v </dev/null", SUBSCRIPT),  # zsh
    "getopts": ("getopts a {{x}}", SUBSCRIPT),  # mksh
    "unset": ("unset {{x}}", SUBSCRIPT),  # mksh
    "shift": ("shift {{x}}", SUBSCRIPT),  # mksh
    "ulimit": ("ulimit -t {{x}}", SUBSCRIPT),  # mksh
    "typeset_Z_width": ("typeset -Z {{x}} v", SUBSCRIPT),  # mksh, zsh
    "mapfile_callback": ("mapfile -C {{x}} -c 1 arr <<< a", CODE),  # bash
    "compgen_wordlist": ("compgen -W {{x}}", SUBSTITUTION),  # bash
    "zsh_emulate_c": ("emulate sh -c {{x}}", CODE),  # zsh
    "prompt_variable": ("PS4={{x}}; set -x; echo", SUBSTITUTION),  # bash, mksh
    "bash_env": ("BASH_ENV={{x}} bash -c :", SUBSTITUTION),  # all five
    "arithmetic_of_substitution": ("echo $(( $(echo {{x}}) ))", SUBSCRIPT),  # bash, mksh, zsh
    "eval_of_substitution": ('eval "$(echo {{x}})"', CODE),  # all five
    "list_as_assignment_value": ("v={{x}}", ["a", "eval", CODE]),  # all five
    "list_as_redirection_target": ("read v < {{x}}", ["/dev/null", SUBSCRIPT]),  # bash, mksh
    "compound_array_subscript_expands_twice": ("x={{x}}; a+=([$x]=1)", SUBSTITUTION),  # bash
    "compound_array_subscript_backticks": ("x={{x}}; a=([$x]=1)", f"`touch {CANARY}`"),  # bash
    "after_a_paren_inside_an_array_assignment": ("s=(a ( {{x}} ) )", f"\n{CODE}\n"),  # bash
    # Backslash-newline joins lines before the shell reads words, comments and delimiters.
    "continued_eval": ("ev\\\nal {{x}}", CODE),  # all five
    "continued_trap": ("tr\\\nap {{x}} EXIT", CODE),  # all five
    "continued_sh_c": ("s\\\nh -c {{x}}", CODE),  # all five
    "continued_command_eval": ("command ev\\\nal {{x}}", CODE),  # dash, bash, ash, mksh
    "continuation_before_eval": ("\\\neval {{x}}", CODE),  # all five
    "continuation_after_eval": ("eval\\\n {{x}}", CODE),  # all five
    "continuation_then_comment": ("echo hi \\\n#{{x}}", f"\n{CODE}\n#"),  # all five
    "continued_heredoc_delimiter_is_no_end": (
        "cat <<EOF\nhi \\\nEOF\necho {{x}}\nEOF",
        SUBSTITUTION,
    ),  # all five
    "continued_heredoc_delimiter_strip_tabs": (
        "cat <<-EOF\nhi \\\n\tEOF\necho {{x}}\nEOF",
        SUBSTITUTION,
    ),  # all five
    "continued_heredoc_end_line": (  # bash, mksh, zsh end it there; dash, busybox do not
        "cat <<EOF\nhi\nEO\\\nF\necho {{x}}\nEOF",
        SUBSTITUTION,
    ),
    "two_heredocs_one_continued": (
        "cat <<A <<B\na\nA\nb \\\nB\necho {{x}}\nB",
        SUBSTITUTION,
    ),  # all five
    "continued_declare_i": ("dec\\\nlare -i n; n={{x}}", SUBSCRIPT),  # bash
    "continued_typeset_option": ("typeset -\\\ni n; n={{x}}", SUBSCRIPT),  # bash, mksh
    # busybox runs its applets: busybox sh is sh.
    "busybox_sh_c": ("busybox sh -c {{x}}", CODE),  # all five
    "busybox_ash_c": ("busybox ash -c {{x}}", CODE),  # all five
    "busybox_path_sh_c": ("/usr/bin/busybox sh -c {{x}}", CODE),  # all five
    "busybox_env_sh_c": ("busybox env sh -c {{x}}", CODE),  # all five
    # mksh's own integer variables.
    **{
        f"assign_to_{name}": (f"{name}={{{{x}}}}", SUBSCRIPT)  # mksh
        for name in ("KSHUID", "KSHGID", "KSHEGID", "PGRP", "BASHPID", "PIPESTATUS")
    },
    "export_KSHUID": ("export KSHUID={{x}}", SUBSCRIPT),  # mksh
    "zsh_ARGC": ("ARGC={{x}}", SUBSCRIPT),  # zsh
    "zsh_FUNCNEST": ("FUNCNEST={{x}}", SUBSCRIPT),  # zsh
    # Commands that take a variable name or run code.
    "wait_p": ("sleep 0 & wait -p {{x}}", SUBSCRIPT),  # bash
    "wait_value_as_option": ("sleep 0 & wait {{x}} {{x}}", ["-p", SUBSCRIPT]),  # bash
    "script_c": ("script -qc {{x}} /dev/null", CODE),  # util-linux script
    "env_split_string": ("env -S {{x}}", CODE),  # coreutils env
    "env_split_string_long": ("env --split-string={{x}}", CODE),  # coreutils env
    "env_value_as_option": ("env {{x}}", f"-S{CODE}"),  # coreutils env
    # A command whose name is an expansion may be eval.
    "name_from_default_expansion": ("${E:-eval} {{x}}", CODE),  # all five
    "name_from_variable": ("e=eval; $e {{x}}", CODE),  # all five
    "name_from_quoted_variable": ('cmd=eval; "$cmd" {{x}}', CODE),  # all five
    # A value on a shell's standard input is code.
    "here_string_into_sh": ("sh <<< {{x}}", CODE),  # bash, mksh, zsh
    "here_string_into_source": (". /dev/stdin <<< {{x}}", CODE),  # bash, mksh, zsh
    "pipe_into_sh": ("echo {{x}} | sh", CODE),  # all five
    "pipe_into_bash_from_printf": ("printf '%s\\n' {{x}} | bash", CODE),  # all five
    "pipe_into_busybox_sh": ("echo {{x}} | busybox sh", CODE),  # all five
    "pipe_into_source": ("echo {{x}} | . /dev/stdin", CODE),  # bash (lastpipe off: zsh, ksh)
}


@pytest.mark.parametrize(("template", "value"), REPRODUCTIONS.values(), ids=REPRODUCTIONS.keys())
def test_reproduction_is_refused(template: str, value: Any) -> None:
    assert refused_or_harmless(template, value) is not None


# What works today keeps working, in every shell: (template, value, expected output).
COMMON = [
    ("printf '[%s]' {{x}}", "a'b $(id)", "[a'b $(id)]"),
    ("grep -c {{x}} file", "x", "1\n"),
    ("printf '[%s]' --flag={{x}}", "v v", "[--flag=v v]"),
    ("printf '[%s]' {{x}}", ["a b", "c"], "[a b][c]"),
    ('export NS={{x}}; printf %s "$NS"', f"{SUBSCRIPT}", SUBSCRIPT),
    ('v={{x}}; printf %s "$v"', SUBSTITUTION, SUBSTITUTION),
    ("for p in {{x}}; do printf '[%s]' \"$p\"; done", ["p 1", "p2"], "[p 1][p2]"),
    ("printf %s $(cat {{x}})", "file", "x"),
    ("case {{x}} in a*) echo A;; *) echo other;; esac", "ab", "A\n"),
    ('x=$(case {{x}} in (a) echo one;; b|c) echo two;; esac); echo "$x"', "c", "two\n"),
    ("cat <<EOF\nbody\nEOF\nprintf %s {{x}}", "$(id)", "body\n$(id)"),
    ("printf %s {{x|raw}}", "'raw'", "raw"),
    ("[ -n {{x}} ] && echo yes", "-eq", "yes\n"),
    ("[ {{x}} = b ] || echo no", SUBSCRIPT, "no\n"),
    ("sh -c 'printf %s \"$1\"' sh {{x}}", SUBSTITUTION, SUBSTITUTION),
    ("printf %s $(( {{x}} + 1 ))", 41, "42"),
    ("f() { printf '[%s]' \"$@\"; }; f {{x}}", SUBSCRIPT, f"[{SUBSCRIPT}]"),
]


# Continued lines keep working, quoted and not, and so do values on a plain command's stdin.
COMMON += [
    ("printf '[%s]' \\\n  {{x}} \\\n  end", "a b", "[a b][end]"),
    ("printf '[%s]' \\\n  -n={{x}}", SUBSTITUTION, f"[-n={SUBSTITUTION}]"),
    ("cat <<EOF\nhi \\\nthere\nEOF\nprintf %s {{x}}", SUBSTITUTION, f"hi there\n{SUBSTITUTION}"),
    ("printf %s {{x}} | cat", SUBSTITUTION, SUBSTITUTION),
    ("cat < {{x}}", "file", "x\n"),
]


@pytest.mark.parametrize(("template", "value", "expected"), COMMON)
def test_common_cases_still_work_in_every_shell(template: str, value: Any, expected: str) -> None:
    text = interpolate(template, {"x": value})
    for name, argv in SHELLS.items():
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "file").write_text("x\n")
            out = subprocess.run(
                [*argv, "-c", text],
                cwd=folder,
                env=ENV,
                timeout=20,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
        assert (out.returncode, out.stdout.decode()) == (0, expected), (name, text, out.stderr)


def test_an_integer_is_inserted_as_digits_where_only_arithmetic_may_stand() -> None:
    assert interpolate("echo $(( {{n}} + 1 )) ${a[{{n}}]}", {"n": 7}) == "echo $(( 7 + 1 )) ${a[7]}"
    assert interpolate("let n={{n}}", {"n": -3}) == "let n=-3"
    assert interpolate("echo ${v:{{n}}:2}", {"n": 2}) == "echo ${v:2:2}"
    for value in ("7", 7.0, True, [7]):
        message = str(
            pytest.raises(InterpolationError, interpolate, "let n={{n}}", {"n": value}).value
        )
        assert message.startswith(
            "{{n}} is an argument of let, which is arithmetic, and its value"
            f" is a {type(value).__name__}, not an int (column 7); give an int"
        )


def test_refusals_say_how_to_pass_the_value_instead() -> None:
    def message(template: str) -> str:
        return str(pytest.raises(InterpolationError, interpolate, template, {"x": "v"}).value)

    assert message("eval {{x}}") == (
        "{{x}} is an argument of eval, which the shell reads as code, a variable name or "
        "arithmetic (column 6); pass it as an environment value instead: -e V={{x}}, then "
        '"$V" in the command'
    )
    assert message("bash -c {{x}}").endswith(
        "pass it after the code, as an argument: bash -c 'echo \"$1\"' bash {{x}}; or as an "
        'environment value: -e V={{x}}, then "$V" in the code'
    )
    assert message("printf {{x}}").endswith(
        "put a literal argument or -- before it (printf '%s' {{x}}, set -- {{x}})"
    )


def test_a_known_shell_is_read_in_its_own_dialect_only() -> None:
    # dash reads (( j <<= 2 )) as subshells around a here-document: refused for /bin/sh,
    # which may be dash; fine for bash, which reads arithmetic.
    template = "(( j <<= 2 ))\necho {{x}}"
    with pytest.raises(InterpolationError, match="in a here-document"):
        interpolate(template, {"x": "v"}, shell="/bin/sh")
    assert interpolate(template, {"x": "v"}, shell="/usr/bin/bash") == "(( j <<= 2 ))\necho v"


# A value kept in a variable (or a positional parameter) that the script then evaluates as
# arithmetic or as a name: bash, mksh and zsh run the $(...) of a subscript in it, quoted or not.
# Each ran the value on main before this change (the shells named in the comment).
STORED_REPRODUCTIONS = {
    "assignment_then_dollar_arithmetic": "x={{x}}; echo $((x))",  # bash, mksh
    "assignment_then_sum": "x={{x}}; echo $(( x + 1 ))",  # bash, mksh
    "assignment_then_double_parens": "x={{x}}; (( x > 1 ))",  # bash, mksh
    "assignment_then_let": "x={{x}}; let y=x",  # bash, mksh
    "assignment_then_double_bracket_eq": "x={{x}}; [[ $x -eq 1 ]]",  # bash, mksh
    "assignment_then_bracket_eq": 'x={{x}}; [ "$x" -eq 1 ]',  # mksh
    "assignment_then_subscript": "a=(1 2); x={{x}}; echo ${a[x]}",  # bash, mksh, zsh
    "assignment_then_substring_offset": "s=abc; x={{x}}; echo ${s:x}",  # bash, mksh
    "for_list_then_arithmetic": "for p in {{x}}; do echo $((p)); done",  # bash, mksh
    "export_then_arithmetic": "export N={{x}}; echo $((N))",  # bash, mksh
    "sh_c_positional_arithmetic": "bash -c 'echo $(($1))' bash {{x}}",  # all five (bash runs it)
    "set_positional_arithmetic": "set -- {{x}}; echo $(($1))",  # bash, mksh
    "subscript_written_around_the_value": "s=a[{{x}}]=1; echo $((s))",  # bash, mksh, zsh
    "function_argument_arithmetic": "f() { echo $(($1)); }; f {{x}}",  # bash, mksh
    "read_here_string_then_arithmetic": "read -r n <<< {{x}}; echo $((n))",  # bash, mksh
    "pipe_into_read_then_arithmetic": "echo {{x}} | { read -r n; echo $((n)); }",  # bash, mksh
    "captured_output_then_arithmetic": "n=$(echo {{x}}); echo $((n))",  # bash, mksh
    "zsh_array_subscript_of_variable": "a=(1 2); x={{x}}; echo $a[x]",  # zsh
    "indirect_expansion": "x={{x}}; echo ${!x}",  # bash
    "nameref": "x={{x}}; typeset -n r=$x; echo $r",  # bash, mksh
    "variable_as_name_of_read": 'x={{x}}; read "$x" <<< 1',  # bash, mksh, zsh
    "variable_as_read_timeout": 'x={{x}}; read -t "$x" y </dev/null',  # zsh
    "variable_as_shift_count": 'x={{x}}; shift "$x"',  # mksh
    "variable_as_test_v": "x={{x}}; [[ -v $x ]]",  # bash, mksh
    "variable_as_printf_v": 'x={{x}}; printf -v "$x" %s 1',  # bash, zsh
    "variable_in_assignment_subscript": "x={{x}}; a[x]=1",  # bash, mksh, zsh
    "positional_slice": 'set -- a b; x={{x}}; echo "${@:x}"',  # bash
    "compound_array_assignment": "x={{x}}; a=([x]=1)",  # bash, zsh
    "nameref_assigned_later": "x={{x}}; declare -n r; r=$x; echo $r",  # bash
}


@pytest.mark.parametrize("template", STORED_REPRODUCTIONS.values(), ids=STORED_REPRODUCTIONS.keys())
def test_value_stored_then_used_in_arithmetic_is_refused(template: str) -> None:
    for value in (SUBSCRIPT, f"1+{SUBSCRIPT}", [SUBSCRIPT]):
        assert refused_or_harmless(template, value) is not None, template


# Values that flow into arithmetic and are safe there still work: (template, value, output).
STORED_COMMON = [
    ("x={{x}}; echo $((x + 1))", 41, "42\n"),
    ("x={{x}}; echo $((x + 1))", "41", "42\n"),
    ("for p in {{x}}; do printf %s $((p * 2)); done", [1, 2, "3"], "246"),
    ("sh -c 'echo $(($1 + 1))' sh {{x}}", 1, "2\n"),
    ("set -- {{x}}; echo $(($1 + $2))", [2, 3], "5\n"),
    ('x={{x}}; [ "$x" -eq 7 ] && echo seven', 7, "seven\n"),
    ('x={{x}}; printf %s "$x"; echo $((1 + 1))', "$(id) `id` ${u:=x}", "$(id) `id` ${u:=x}2\n"),
]


@pytest.mark.parametrize(("template", "value", "expected"), STORED_COMMON)
def test_values_without_a_subscript_still_reach_arithmetic(
    template: str, value: Any, expected: str
) -> None:
    text = interpolate(template, {"x": value})
    for name, argv in SHELLS.items():
        out = subprocess.run(
            [*argv, "-c", text],
            env=ENV,
            timeout=20,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        assert (out.returncode, out.stdout.decode()) == (0, expected), (name, text, out.stderr)


# -- the property test ----------------------------------------------------------------------

PAYLOADS = [
    SUBSTITUTION,
    f"`touch {CANARY}`",
    SUBSCRIPT,
    f"1+{SUBSCRIPT}",
    CODE,
    f";{CODE};",
    f"';{CODE};'",
    f'";{CODE};"',
    f"\n{CODE}\n",
    f")\n{CODE}\n",
    f"esac\n{CODE}\n",
    f"$'\\x27';{CODE}",
    f"EOF\n{CODE}\n",
    f"\\'; {CODE} #",
    f"-v {SUBSCRIPT}",
    "-v",
    "'",
    '"',
    "\\",
    "",
    3,
    f"\\\n{CODE}",
    f"\n{CODE}\n#",
    f"EOF\n{CODE}\nEOF",
    [SUBSCRIPT, CODE],
    ["-v", SUBSCRIPT],
    ["x", "eval", CODE],
    f"a[1]+{SUBSCRIPT}",
    f"{SUBSCRIPT}=1",
    f"a[{SUBSTITUTION}",
    [1, SUBSCRIPT],
    "7",
]

# Contexts: "W" is where the inner snippet (eventually the placeholder) goes.
CONTEXTS = [
    # arithmetic
    "echo $((1+W))",
    "echo $[1+W]",
    "((W))",
    "let n=W",
    "declare -i n=W",
    "typeset -i n=W",
    "f() { local -i n=W; }; f",
    "[[ W -eq 1 ]]",
    "[ W -eq 1 ]",
    "test W -gt 0",
    "echo ${a[W]}",
    "a[W]=1",
    "printf -v W %s 1",
    "read W <<< 1",
    "v=abc; echo ${v:W}",
    "declare -i n; n=W",
    "for ((i=W;i<1;i++)); do :; done",
    "[ -v W ]",
    "RANDOM=W",
    "integer n; n=W",
    # quoting forms
    "echo 'W'",
    'echo "W"',
    "echo $'W'",
    'echo $"W"',
    "echo $'\\'' W '",
    'echo "$(W)"',
    "echo $(W)",
    'echo "$(case a in a) echo W;; esac)"',
    'echo "$(case a in (a) echo " W ";; esac)"',
    "echo `echo W`",
    "echo ${u:-W}",
    'echo "${u:-W}"',
    "echo ${u:=W}",
    # here-documents and here-strings
    "cat <<EOF\nW\nEOF",
    "cat <<'EOF'\nW\nEOF",
    "cat <<< W",
    "cat <<W\nx\nW",
    # code
    "eval W",
    'eval "echo "W',
    "trap W EXIT",
    "alias a=W\na",
    "source W",
    ". W",
    "sh -c W",
    "bash -c W",
    "command eval W",
    "builtin eval W",
    "exec sh -c W",
    "env sh -c W",
    "sh -c 'echo \"$1\"' sh W",
    "xargs sh -c W </dev/null",
    "emulate sh -c W",
    "PS4=W; set -x; :",
    # process substitution, plain words, assignments
    "cat <(echo W)",
    "echo W",
    'x=W; echo "$x"',
    "export N=W",
    "case W in *) echo;; esac",
    'for p in W; do echo "$p"; done',
    "printf '%s' W",
    "echo W | cat",
    "[ W = b ]",
    "ls *(W)",
    # line continuations, busybox applets, stdin of a shell, names from expansions, wait -p
    "ev\\\nal W",
    "s\\\nh -c W",
    "echo hi \\\n#W",
    "cat <<EOF\nhi \\\nEOF\nW\nEOF",
    "cat <<'EOF'\nhi \\\nEOF\nW",
    "echo 'a\\\n' W",
    "echo \\\n W",
    "busybox sh -c W",
    "busybox env sh -c W",
    "sh <<< W",
    "echo W | sh",
    "${E:-eval} W",
    "e=eval; $e W",
    "sleep 0 & wait -p W",
    "typeset -\\\ni n; n=W",
]


def _wrap(context: str, inner: str) -> str:
    return context.replace("W", inner)


SNIPPETS = st.recursive(
    st.just("{{x}}"),
    lambda inner: st.builds(_wrap, st.sampled_from(CONTEXTS), inner),
    max_leaves=3,
)
# A value flows into a variable (S: how it gets there, "W" the value's place, "U" the use) and
# the variable flows into arithmetic or a name (U, over the variable s).
STORES = [
    "s=W; U",
    "export s=W; U",
    "for s in W; do U; done",
    "set -- W; s=$1; U",
    "f() { s=$1; U; }; f W",
    "read -r s <<< W; U",
    "s=$(echo W); U",
    "echo W | { read -r s; U; }",
    "s=${u:-W}; U",
    "sh -c 's=$1; U' sh W",
    "bash -c 's=$1; U' bash W",
    "mksh -c 's=$1; U' mksh W",
    "set -- W; echo $(($1))",
    "bash -c 'echo $(($1))' bash W",
    "f() { echo $(($1)); }; f W",
]
USES = [
    "echo $((s))",
    "echo $(( s + 1 ))",
    "(( s > 1 ))",
    "let y=s",
    "[[ $s -eq 1 ]]",
    '[ "$s" -eq 1 ]',
    'test "$s" -gt 0',
    "a=(1 2); echo ${a[s]}",
    "echo ${a[$s]}",
    "v=abc; echo ${v:s}",
    "echo $[s]",
    "typeset -i n; n=$s",
    "integer n=s",
    "a[s]=1",
    "a[$s]=1",
    "echo ${!s}",
    "typeset -n r=$s",
    'read "$s" <<< 1',
    'unset "$s"',
    "[[ -v $s ]]",
    '[ -v "$s" ]',
    'printf -v "$s" %s 1',
    'export "$s"=1',
    'shift "$s"',
    'ulimit -t "$s"',
    'typeset -Z "$s" q',
    'read -t "$s" y </dev/null',
    'getopts a "$s"',
    "a=(1 2); echo $a[s]",
    "for ((i=s;i<1;i++)); do :; done",
    "a=([s]=1)",
    "a+=([$s]=1)",
    "declare -n r; r=$s; echo $r",
    "a=(1); echo ${a[@]:s}",
]


def _flow(store: str, use: str, inner: str) -> str:
    return store.replace("U", use).replace("W", inner)


FLOWS = st.builds(_flow, st.sampled_from(STORES), st.sampled_from(USES), SNIPPETS)
SCRIPTS = st.lists(st.one_of(SNIPPETS, FLOWS), min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from(["; ", "\n"]).map(lambda sep: sep.join(parts))
)


@settings(max_examples=300, deadline=None)
@given(script=SCRIPTS, value=st.sampled_from(PAYLOADS))
def test_no_shell_context_runs_a_value(script: str, value: Any) -> None:
    refused_or_harmless(script, value)


# The flows on their own: mixed into SCRIPTS, most examples hold some refused context.
FLOW_SCRIPTS = st.builds(
    _flow,
    st.sampled_from(STORES),
    st.sampled_from(USES),
    st.sampled_from(["{{x}}", '"$(echo {{x}})"', "$(printf %s {{x}})"]),
)


@settings(max_examples=300, deadline=None)
@given(script=FLOW_SCRIPTS, value=st.sampled_from(PAYLOADS))
def test_no_value_that_flows_into_arithmetic_through_a_variable_runs(
    script: str, value: Any
) -> None:
    refused_or_harmless(script, value)


# -- the same in pods ---------------------------------------------------------------------

NAMESPACE = "interp"
MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
---
apiVersion: v1
kind: Pod
metadata:
  name: box
  namespace: {NAMESPACE}
spec:
  containers:
    - name: main
      image: busybox:1.36
"""


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Iterator[Cluster]:
    sandbox.apply(MANIFEST)
    yield Cluster(kubeconfig=sandbox.kubeconfig, namespace=NAMESPACE)
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


@pytest.mark.parametrize("shell", ["dash", "bash", "mksh", "zsh"])
def test_values_reach_pods_as_plain_words_under_each_shell(cluster: Cluster, shell: str) -> None:
    path = shutil.which(shell)
    assert path is not None
    # The canary goes to the pod's working folder; the script reports whether it exists.
    for template, value in [
        ("printf '[%s]' {{x}}", SUBSCRIPT),
        ('v={{x}}; echo "$v"', SUBSTITUTION),
        ('export N={{x}}; printf %s "$N"', SUBSCRIPT),
    ]:
        script = (
            interpolate(template, {"x": value}, shell=path)
            + f"\nif [ -e {CANARY} ]; then echo RAN; fi"
        )
        (result,) = list(cluster.run(script, "box", shell=path, timeout=60))
        assert result.exit_code == 0, (shell, template, result.stderr)
        assert b"RAN" not in result.stdout and value.encode() in result.stdout, (shell, template)
    # $[...] is plain text to dash, arithmetic to the others.
    refused = ["let n={{x}}", "printf -v {{x}} %s 1", "[[ {{x}} -eq 1 ]]"]
    for template in refused + ([] if shell == "dash" else ["echo $[1+{{x}}]"]):
        with pytest.raises(InterpolationError):
            interpolate(template, {"x": SUBSCRIPT}, shell=path)


def test_a_continuation_the_shells_keep_refuses_the_placeholders_after_it() -> None:
    # Inside a quoted-delimiter here-document the backslash-newline stays, so the line after
    # it may end the document; which reading is right is not decided here: refused, one line.
    template = "cat <<'EOF'\nhi \\\nEOF\nprintf %s {{x}}"
    message = str(pytest.raises(InterpolationError, interpolate, template, {"x": "v"}).value)
    assert message.startswith("{{x}} is after a backslash-newline inside a # comment, a quoted"), (
        message
    )
    assert "\n" not in message
    comment = "# note \\\necho '\n{{x}}\n'"  # the shells: a command opening a quote
    assert "backslash-newline" in str(
        pytest.raises(InterpolationError, interpolate, comment, {"x": "v"}).value
    )
    assert interpolate("awk '{ print \\\n $1 }' {{x}}", {"x": "f"}).endswith("}' f")


def test_stdin_of_a_shell_refusal_names_the_shell() -> None:
    message = str(
        pytest.raises(InterpolationError, interpolate, "echo {{x}} | bash", {"x": "v"}).value
    )
    assert message.startswith(
        "{{x}} is on the standard input of bash, which reads it as shell code"
    )
