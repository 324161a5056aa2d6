r"""``{{expr}}`` interpolation: one quoted word per value, checked against real shells."""

from __future__ import annotations

import copy
import os
import pickle
import re
import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path, PurePosixPath
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from podmagic._errors import PodmagicError
from podmagic._interpolation import (
    InterpolationError,
    Placeholder,
    find_placeholders,
    interpolate,
    quote_word,
)

SHELLS = [sh for sh in ("/bin/sh", "/usr/bin/bash", "/usr/bin/dash") if os.path.exists(sh)]
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def run(shell: str, script: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [shell, "-c", script], capture_output=True, env=ENV, cwd=cwd, timeout=30, check=False
    )


def error(template: str, namespace: dict[str, Any] | None = None) -> str:
    with pytest.raises(InterpolationError) as info:
        interpolate(template, namespace or {})
    return str(info.value)


# -- shell text passes through untouched ----------------------------------------------------

SHELL_CONSTRUCTS = [
    "echo $VAR",
    "echo ${VAR}",
    "echo ${VAR:-x} ${VAR:=y} ${VAR:+z} ${VAR:?unset}",
    "echo ${VAR#prefix} ${VAR%suffix} ${VAR##*/} ${VAR%%.*}",
    'echo ${#VAR} ${#arr[@]} ${arr[0]} "${arr[@]}"',
    "echo ${VAR/a/b} ${VAR//a/b} ${VAR:1:2}",
    "echo $(hostname) $(cat /etc/hostname | tr a-z A-Z)",
    "echo $(echo $(echo nested))",
    "echo `hostname` `echo \\`date\\``",
    "echo $((1+2)) $(( (3 * 4) % 5 )) $((x<<2))",
    "(( i += 1 )); (( j <<= 2 ))",
    "awk '{print $1}' /etc/passwd",
    "awk -F: '{ sum += $3 } END { print sum }' /etc/passwd",
    "find . -name '*.log' -exec rm {} \\;",
    "find . -type f -exec grep -l x {} +",
    "echo {a,b,c} file.{txt,md} {1..10}",
    "{ echo grouped; echo again; }",
    "( cd /tmp && ls )",
    "echo $$ $# $? $! $- $@ $* $0 $1",
    "echo 'single $VAR' \"double $VAR\" $'ansi\\n\\t'",
    "echo \"it's\" 'say \"hi\"' \"a\\\"b\" 'x'\\''y'",
    "echo a # a comment with 'quotes' and \"more",
    "echo a#b c# d",
    'x=1; y="$x"; export Z=${y:-0}',
    "ls | grep x | wc -l && echo ok || echo no",
    "cmd > out 2>&1 < in >> log 2>/dev/null",
    "cat <<< 'here string'",
    'while read -r line; do echo "$line"; done < file',
    'for f in *.txt; do echo "$f"; done',
    "case $x in a) echo a;; b|c) echo bc;; *) echo other;; esac",
    'if [ -n "$x" ]; then echo yes; elif [[ $x == a* ]]; then echo a; else :; fi',
    "f() { local v=$1; return 0; }; f arg",
    "arr=(one two three); echo ${arr[1]}",
    "trap 'echo bye' EXIT",
    "printf '%s\\n' \"$@\"",
    "kubectl get pods -o jsonpath='{.items[*].metadata.name}'",
    "kubectl get pods -o jsonpath='{range .items[*]}{.metadata.name}{\"\\n\"}{end}'",
    "echo }} and } and { and {x} and { {",
    "sed -e 's/{/(/g' -e 's/}/)/g'",
    "python3 -c 'print({\"a\": 1})'",
    "echo a\\\nb",
    "echo ${VAR:-$(echo default)}",
    'echo "$(echo "inner $VAR")"',
]

MULTILINE_CONSTRUCTS = [
    "cat <<EOF\nHello $USER, it's $(date)\n{not a placeholder}\nEOF",
    "cat <<'EOF'\n$literal 'quote\nEOF",
    'cat <<"END"\n"unbalanced\nEND',
    "cat <<-EOF\n\tindented it's\n\tEOF",
    "cat <<A <<B\nfirst '\nA\nsecond \"\nB",
    "cat <<EOF | grep x\nbody `\nEOF",
    "# comment with don't\n# another \"one",
    "for i in 1 2 3\ndo\n  echo $i\ndone",
    "x=$(cat <<EOF\nnested '\nEOF\n)",
    "echo 'multi\nline single quotes'",
    'echo "multi\nline double quotes"',
]


@pytest.mark.parametrize("text", SHELL_CONSTRUCTS + MULTILINE_CONSTRUCTS)
def test_shell_text_without_placeholders_passes_through(text: str) -> None:
    assert interpolate(text, {}) == text
    assert find_placeholders(text) == []


@pytest.mark.parametrize("text", SHELL_CONSTRUCTS)
def test_after_shell_constructs_a_placeholder_is_still_unquoted_text(text: str) -> None:
    # The quote tracker must come back to plain shell text after each construct. (( )) is
    # arithmetic only in bash-like shells: dash reads `(( j <<= 2 ))` as subshells around a
    # here-document, so that one is checked for bash.
    shell = "/bin/bash" if "((" in text.replace("$((", "") else None
    out = interpolate(text + "\nprintf %s {{v}}", {"v": "a b"}, shell=shell)
    assert out == text + "\nprintf %s 'a b'"


@pytest.mark.parametrize("text", MULTILINE_CONSTRUCTS)
def test_after_multiline_constructs_a_placeholder_is_still_unquoted_text(text: str) -> None:
    assert interpolate(text + "\necho {{v}}", {"v": "$x"}) == text + "\necho '$x'"


def test_shell_constructs_survive_interpolation_in_a_real_shell() -> None:
    script = "x=5; awk 'BEGIN { print \"\\{{\" }'; echo ${x:-0} $((x+1)) {{v}} $(echo {{w}})"
    out = interpolate(script, {"v": "a  b", "w": "it's"})
    assert out == (
        "x=5; awk 'BEGIN { print \"{{\" }'; echo ${x:-0} $((x+1)) 'a  b' $(echo 'it'\"'\"'s')"
    )
    for shell in SHELLS:
        assert run(shell, out).stdout == b"{{\n5 6 a  b it's\n"


def test_escaped_braces_in_awk_text_and_real_output() -> None:
    for shell in SHELLS:
        script = interpolate("awk 'BEGIN { print \"\\{{\" }'; printf '%s\\n' {{v}}", {"v": "x"})
        assert run(shell, script).stdout == b"{{\nx\n"


# -- escapes ----------------------------------------------------------------------------------

ESCAPES = [
    ("\\{{", "{{"),
    ("\\{{x}}", "{{x}}"),
    ("-o go-template=\\{{.metadata.name}}", "-o go-template={{.metadata.name}}"),
    (
        "kubectl get pods -o go-template='\\{{range .items}}\\{{.metadata.name}} \\{{end}}'",
        "kubectl get pods -o go-template='{{range .items}}{{.metadata.name}} {{end}}'",
    ),
    ("echo }}", "echo }}"),
    ("echo }} }}}", "echo }} }}}"),
    ("echo \\\\{{x}}", "echo \\{{x}}"),  # a backslash, then the escape
    ("echo \\{{{x}}", "echo {{{x}}"),
    ("echo \\{{ and {{v}}", "echo {{ and 'a b'"),
    ("echo {{v}}\\{{v}}", "echo 'a b'{{v}}"),
    ("echo \\{x} \\{ \\}}", "echo \\{x} \\{ \\}}"),
]


@pytest.mark.parametrize(("template", "expected"), ESCAPES)
def test_escapes(template: str, expected: str) -> None:
    assert interpolate(template, {"v": "a b"}) == expected


def test_escapes_are_not_placeholders() -> None:
    assert find_placeholders("\\{{x}} {{y}}") == [Placeholder(7, 12, "y", False)]


def test_a_go_template_without_escape_says_how_to_escape() -> None:
    message = error("kubectl get pods -o go-template={{.metadata.name}}")
    assert message == (
        "{{.metadata.name}} is not a Python expression (invalid syntax, at column 33); "
        "write \\{{ for a literal {{ (a Go template, for instance)"
    )


# -- values -----------------------------------------------------------------------------------

UID = uuid.UUID("12345678-1234-5678-1234-567812345678")

VALUES: list[tuple[Any, str]] = [
    ("web-1", "web-1"),
    ("a b", "'a b'"),
    ("", "''"),
    ("it's", "'it'\"'\"'s'"),
    ('say "hi"', "'say \"hi\"'"),
    ("$(id)", "'$(id)'"),
    ("`id`", "'`id`'"),
    ("$HOME", "'$HOME'"),
    ("a\nb", "'a\nb'"),
    ("back\\slash", "'back\\slash'"),
    ("-rf", "-rf"),
    ("*", "'*'"),
    ("~", "'~'"),
    ("é ü", "'é ü'"),
    ("; rm -rf /", "'; rm -rf /'"),
    (42, "42"),
    (-1, "-1"),
    (1.5, "1.5"),
    (True, "True"),
    (False, "False"),
    (Decimal("1.10"), "1.10"),
    (Path("/var/log/app log"), "'/var/log/app log'"),
    (PurePosixPath("a/b"), "a/b"),
    (UID, "12345678-1234-5678-1234-567812345678"),
    (b"bytes ok", "'bytes ok'"),
    (bytearray(b"ba"), "ba"),
    ("caf\u00e9".encode(), "'café'"),
]


@pytest.mark.parametrize(("value", "word"), VALUES)
def test_values_become_one_quoted_word(value: Any, word: str) -> None:
    assert interpolate("cmd {{v}} end", {"v": value}) == f"cmd {word} end"
    assert quote_word(value) == word


def test_str_subclass_gives_its_text_not_its_str() -> None:
    class Shouty(str):
        def __str__(self) -> str:
            return "SHOUT"

    assert interpolate("echo {{v}}", {"v": Shouty("quiet")}) == "echo quiet"


def test_other_objects_use_str() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    assert interpolate("echo {{v}}", {"v": Thing()}) == "echo 'a thing'"


# -- lists --------------------------------------------------------------------------------

LISTS: list[tuple[Any, str]] = [
    ([], "cmd  end"),
    ((), "cmd  end"),
    (["one"], "cmd one end"),
    (["a", "b c", "", "$(id)"], "cmd a 'b c' '' '$(id)' end"),
    (("x", "y z"), "cmd x 'y z' end"),
    ([("-n", "prod"), "-A"], "cmd -n prod -A end"),
    ([["a", ("b", ["c d"])]], "cmd a b 'c d' end"),
    (range(3), "cmd 0 1 2 end"),
    ({"b", "a", "c d"}, "cmd a b 'c d' end"),
    (frozenset({3, 10, 2}), "cmd 2 3 10 end"),  # by value, not by text
    ({1, "a"}, "cmd 1 a end"),  # values that do not compare: by text
    ({"k": 1}.keys(), "cmd k end"),
    ([b"x", 1, Path("p q")], "cmd x 1 'p q' end"),
]


@pytest.mark.parametrize(("value", "expected"), LISTS)
def test_lists_become_several_words(value: Any, expected: str) -> None:
    assert interpolate("cmd {{v}} end", {"v": value}) == expected


def test_generators_become_several_words() -> None:
    ns = {"pods": ["web-1", "web 2"]}
    assert interpolate("rm {{ (p + '.log' for p in pods) }}", ns) == "rm web-1.log 'web 2.log'"
    assert interpolate("echo {{ iter([]) }}", {}) == "echo "


def test_a_list_glued_to_text_behaves_like_bash_arrays() -> None:
    assert interpolate("cmd --x={{v}}", {"v": ["a", "b c"]}) == "cmd --x=a 'b c'"
    assert interpolate("cmd --x={{v}}", {"v": []}) == "cmd --x="


def test_sets_are_sorted_whatever_the_insertion_order() -> None:
    names = [f"pod-{i}" for i in range(50)]
    expected = "echo " + " ".join(sorted(names))
    assert interpolate("echo {{ set(names) }}", {"names": names}) == expected
    assert interpolate("echo {{ set(names) }}", {"names": names[::-1]}) == expected


def test_quote_word_refuses_several_words() -> None:
    with pytest.raises(InterpolationError, match="several words, not one"):
        quote_word(["a", "b"])


# -- raw --------------------------------------------------------------------------------------

RAW: list[tuple[str, Any, str]] = [
    ("kubectl get pods {{v|raw}}", "-o wide", "kubectl get pods -o wide"),
    ("x {{ v | raw }} y", "$HOME", "x $HOME y"),
    ("x {{v  |raw}} y", "a'b", "x a'b y"),
    ("x {{v|raw}} y", ["-n", "kube-system", "-o wide"], "x -n kube-system -o wide y"),
    ("x {{v|raw}} y", [], "x  y"),
    ("x {{v|raw}} y", 3, "x 3 y"),
    ("x {{v|raw}} y", b"bytes", "x bytes y"),
    ("x {{v|raw}} y", {"b", "a"}, "x a b y"),
    ("x {{v|raw}} y", "", "x  y"),
]


@pytest.mark.parametrize(("template", "value", "expected"), RAW)
def test_raw_inserts_text_verbatim(template: str, value: Any, expected: str) -> None:
    assert interpolate(template, {"v": value}) == expected


def test_raw_is_allowed_where_a_quoted_word_is_refused() -> None:
    ns = {"v": "x", "n": 3}
    assert interpolate("echo \"{{v|raw}}\" '{{v|raw}}' $(( {{n|raw}} + 1 ))", ns) == (
        "echo \"x\" 'x' $(( 3 + 1 ))"
    )
    assert interpolate("cat <<EOF\n{{v|raw}}\nEOF", ns) == "cat <<EOF\nx\nEOF"


def test_raw_keeps_the_value_checks() -> None:
    assert error("{{v|raw}}", {"v": None}).startswith("{{v|raw}} is None")
    assert "NUL" in error("{{v|raw}}", {"v": "a\0b"})


def test_raw_runs_in_a_real_shell() -> None:
    for shell in SHELLS:
        out = run(shell, interpolate("printf '%s,' {{v|raw}}", {"v": "a 'b c' $((1+1))"}))
        assert out.stdout == b"a,b c,2,"


# -- expressions ------------------------------------------------------------------------------

EXPRESSIONS = [
    ("{{ pod }}", "web-1"),
    ("{{pod.upper()}}", "WEB-1"),
    ("{{ obj.name }}", "'my pod'"),
    ("{{ obj.tags[1] }}", "b"),
    ("{{ cfg['ns'] }}", "prod"),
    ('{{ cfg["ns"] }}', "prod"),
    ("{{ f'{pod}-{n:03d}' }}", "web-1-007"),
    ("{{ f\"{cfg['ns']}\" }}", "prod"),
    ("{{ n * 6 }}", "42"),
    ("{{ len(obj.tags) }}", "2"),
    ("{{ ' '.join(obj.tags) }}", "'a b'"),
    ("echo {{ [t.upper() for t in obj.tags] }}", "echo A B"),
    ("{{ pod if n > 1 else 'none' }}", "web-1"),
    ("{{ (lambda x: x + '!')(pod) }}", "'web-1!'"),
    ("{{ {'a': {'b': 'deep'}}['a']['b'] }}", "deep"),
    ("{{ '}}' }}", "'}}'"),
    ('{{ "{{" }}', "'{{'"),
    ("{{ {'k': 'v'}['k'] | raw }}", "v"),
    ("{{\tpod\t}}", "web-1"),
    ("{{ n | 8 }}", "15"),  # Python's | when the right side is not the word raw
    ("{{ __name__ }}", "notebook"),
]


@pytest.mark.parametrize(("template", "expected"), EXPRESSIONS)
def test_expressions(template: str, expected: str) -> None:
    ns = {
        "pod": "web-1",
        "n": 7,
        "cfg": {"ns": "prod"},
        "obj": SimpleNamespace(name="my pod", tags=["a", "b"]),
        "__name__": "notebook",
    }
    assert interpolate(template, ns) == expected


def test_whitespace_inside_braces() -> None:
    ns = {"name": "x y"}
    for template in ("{{name}}", "{{ name }}", "{{   name\t}}"):
        assert interpolate(template, ns) == "'x y'"
    for template in ("{{name|raw}}", "{{ name | raw }}", "{{ name|raw }}", "{{name |  raw}}"):
        assert interpolate(template, ns) == "x y"


def test_several_placeholders_on_one_line() -> None:
    ns = {"a": "1 2", "b": ["x", "y"], "c": "$c"}
    assert interpolate("echo {{a}}{{a}} {{b}}-{{c}} {{c|raw}}", ns) == "echo '1 2''1 2' x y-'$c' $c"


def test_placeholders_across_a_multiline_script() -> None:
    script = (
        "set -eu\n"
        "ns={{ns}}\n"
        "for p in {{pods}}; do\n"
        '  kubectl -n "$ns" logs "$p" | awk \'{print $1}\' > {{out}}/"$p".log\n'
        "done\n"
        "echo done {{ len(pods) }}\n"
    )
    ns = {"ns": "prod", "pods": ["web 1", "web-2"], "out": "/tmp/my logs"}
    assert interpolate(script, ns) == (
        "set -eu\n"
        "ns=prod\n"
        "for p in 'web 1' web-2; do\n"
        '  kubectl -n "$ns" logs "$p" | awk \'{print $1}\' > \'/tmp/my logs\'/"$p".log\n'
        "done\n"
        "echo done 2\n"
    )


def test_find_placeholders_does_not_evaluate() -> None:
    template = "a {{x}} \\{{ {{ y | raw }}\n{{ boom() }} {{.go}}"
    assert find_placeholders(template) == [
        Placeholder(2, 7, "x", False),
        Placeholder(12, 25, "y", True),
        Placeholder(26, 38, "boom()", False),
        Placeholder(39, 46, ".go", False),
    ]
    for p in find_placeholders(template):
        assert template[p.start : p.end].startswith("{{")
        assert template[p.start : p.end].endswith("}}")


# -- errors -----------------------------------------------------------------------------------


def test_undefined_name_is_named() -> None:
    assert error("kubectl logs {{podd}}", {"pod": "x"}) == (
        "name 'podd' is not defined (in {{podd}}); define it in the notebook, "
        "or write \\{{ for a literal {{"
    )
    assert error("echo {{ podd | raw }}").startswith(
        "name 'podd' is not defined (in {{ podd | raw }})"
    )
    assert error("echo {{ pod.name + missing }}", {"pod": SimpleNamespace(name="a")}).startswith(
        "name 'missing' is not defined"
    )


def test_builtins_are_available() -> None:
    assert interpolate("echo {{ len('abc') }} {{ sorted({'b', 'a'}) }}", {}) == "echo 3 a b"


def test_value_errors() -> None:
    assert error("echo {{x}}", {"x": None}) == (
        "{{x}} is None; give it a value, or leave the word out with a list: "
        "[x] if x is not None else []"
    )
    assert error("echo {{ d }}", {"d": {"a": 1}}) == (
        "{{ d }} is a dict, not a word; pick a key (d['key']), or send it as JSON with "
        "json.dumps(d)"
    )
    assert error("echo {{d}}", {"d": MappingProxyType({})}).startswith(
        "{{d}} is a mappingproxy, not a word"
    )
    assert error("echo {{x}}", {"x": "a\0b"}) == (
        "{{x}} contains a NUL character, which no shell word can hold; remove it, or send "
        "binary data with --stdin"
    )
    assert error("echo {{x}}", {"x": b"\xff\xfe"}) == (
        "{{x}} is bytes that are not valid UTF-8; decode them yourself, or send binary data "
        "with --stdin"
    )
    assert error("echo {{x}}", {"x": ["a", None]}).startswith("an item of {{x}} is None")
    assert error("echo {{x}}", {"x": [{"a": 1}]}).startswith("an item of {{x}} is a dict")
    assert error("echo {{x}}", {"x": [b"\0"]}).startswith("an item of {{x}} contains a NUL")


def test_error_messages_never_contain_the_value() -> None:
    secret = "hunter2-\0-secret"
    assert "hunter2" not in error("{{s}}", {"s": secret})
    assert "hunter2" not in error("{{s}}", {"s": {"password": "hunter2"}})


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "the value is None"), ({}, "the value is a dict"), ("\0", "the value contains a NUL")],
)
def test_quote_word_errors(value: Any, message: str) -> None:
    with pytest.raises(InterpolationError, match=message):
        quote_word(value)


def test_exceptions_while_evaluating_are_named_by_type_without_their_message() -> None:
    # The message may quote the value: int(secret) says "invalid literal ...: 'hunter2'".
    left_out = (
        " (its message is left out, as it may quote a value; evaluate the expression in a cell "
        "to see it)"
    )
    assert error("{{ 1/0 }}") == "{{ 1/0 }} raised ZeroDivisionError" + left_out
    assert error("{{ d['nope'] }}", {"d": {}}) == "{{ d['nope'] }} raised KeyError" + left_out
    assert error("{{ int(s) }}", {"s": "hunter2"}) == "{{ int(s) }} raised ValueError" + left_out

    def fail() -> None:
        raise RuntimeError("first line\nsecond line")

    assert error("{{ f() }}", {"f": fail}) == "{{ f() }} raised RuntimeError" + left_out

    def items() -> Iterator[str]:
        yield "a"
        raise OSError("gone")

    assert error("{{ g }}", {"g": items()}) == "{{ g }} raised OSError" + left_out
    assert error("{{ e() }}", {"e": lambda: (_ for _ in ()).throw(NameError())}) == (
        "{{ e() }} raised NameError" + left_out
    )


def test_syntax_errors_suggest_the_escape() -> None:
    # The reason in parentheses is Python's own SyntaxError text, which varies by version.
    message = error("echo {{ a b }}")
    assert message.startswith("{{ a b }} is not a Python expression (")
    assert message.endswith(
        ", at column 6); write \\{{ for a literal {{ (a Go template, for instance)"
    )
    message = error("line one\necho {{ x = 1 }}")
    assert message.startswith("{{ x = 1 }} is not a Python expression (")
    assert "at line 2, column 6)" in message
    assert message.endswith("write \\{{ for a literal {{ (a Go template, for instance)")
    assert error("{{}}").startswith("{{}} is not a Python expression")
    assert error("{{ |raw }}").startswith("{{ |raw }} is not a Python expression")


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("echo {{x", "column 6"),
        ("echo {{x}", "column 6"),
        ("echo ok\n  echo {{ x\n}}", "line 2, column 8"),
        ("{{", "column 1"),
        ("echo {{x}} {{y", "column 12"),
    ],
)
def test_unterminated_placeholder_points_at_its_column(template: str, where: str) -> None:
    expected = (
        f"unterminated {{{{ at {where}: no }}}} closes it on that line; close it with }}}}, "
        "or write \\{{ for a literal {{"
    )
    assert error(template, {"x": 1}) == expected
    with pytest.raises(InterpolationError, match="unterminated"):
        find_placeholders(template)


def test_nothing_is_evaluated_when_any_placeholder_is_wrong() -> None:
    calls: list[str] = []

    def f() -> str:
        calls.append("f")
        return "x"

    ns = {"f": f}
    for template in ("{{ f() }} {{ .bad }}", "{{ f() }} '{{ f() }}'", "{{ f() }} {{ oops"):
        with pytest.raises(InterpolationError):
            interpolate(template, ns)
    assert calls == []


def test_interpolation_error_is_a_podmagic_error_and_a_value_error() -> None:
    exc = pytest.raises(InterpolationError, interpolate, "{{nope}}", {}).value
    assert isinstance(exc, PodmagicError)
    assert isinstance(exc, ValueError)
    assert exc.hint == "define it in the notebook, or write \\{{ for a literal {{"
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc)):
        assert type(clone) is InterpolationError
        assert str(clone) == str(exc)
        assert clone.hint == exc.hint


# -- where a quoted word may stand --------------------------------------------------------

REFUSED = [
    ("echo '{{x}}'", "inside '...' quotes (column 7)"),
    ("echo 'a {{x}} b'", "inside '...' quotes"),
    ('echo "{{x}}"', 'inside "..." quotes (column 7)'),
    ('echo "pod: {{x}}"', 'inside "..." quotes'),
    ('echo "${u:-{{x}}}"', 'inside "..." quotes'),
    ("echo $'{{x}}'", "inside $'...' quotes"),
    # dash has no $'...': there the \' ends the quotes and the next ' opens new ones
    ("echo $'it\\'s' {{x}}", "inside '...' quotes"),
    ("echo `echo {{x}}`", "inside `...`"),
    ('echo "`echo {{x}}`"', "inside `...`"),
    ("echo $(( {{x}} + 1 ))", "inside $((...))"),
    ("(( {{x}} > 1 ))", "inside $((...))"),
    ("echo hi # {{x}}", "in a # comment"),
    ("# {{x}}\necho", "in a # comment, which a newline in the value would end (line 1, column 3)"),
    ("cat <<EOF\n{{x}}\nEOF", "in a here-document, where quotes are plain text (line 2, column 1)"),
    ("cat <<'EOF'\nsay {{x}}\nEOF", "in a here-document"),
    ("cat <<-EOF\n\t{{x}}\n\tEOF", "in a here-document"),
    ("cat <<A <<B\nA\n{{x}}\nB", "in a here-document"),
    ("cat <<{{x}}\nbody\n{{x}}", "a here-document delimiter"),
    ("cat <<{{y|raw}}\nbody\n{{x}}", "in a here-document"),  # the delimiter is not known
    ("echo ${{x}}", "right after a $"),
    ('echo "${{x}}"', "right after a $"),
    ('echo "$(echo "{{x}}")"', 'inside "..." quotes'),
    ("echo 'it'\\''s {{x}}'", "inside '...' quotes"),
]


@pytest.mark.parametrize(("template", "where"), REFUSED)
def test_quoted_words_are_refused_where_the_shell_would_not_read_them(
    template: str, where: str
) -> None:
    message = error(template, {"x": "v"})
    assert message.startswith("{{x}} is " + where), message


def test_refusal_messages_say_what_to_write() -> None:
    assert error('echo "pod {{x}} up"', {"x": 1}) == (
        '{{x}} is inside "..." quotes (column 11); close the quotes before it and reopen them '
        'after: the value is quoted for you, as in "pod "{{x}}" is up"; or use {{x|raw}}'
    )
    assert error("cat <<EOF\n{{ x }}\nEOF").endswith(
        "set a variable before it (v={{ x }}) and write $v inside, or use {{x|raw}}"
    )
    assert error("echo `{{x}}`").endswith("use $(...) instead of backticks")


ALLOWED = [
    ("echo {{x}}", "echo 'a b'"),
    ("echo pre{{x}}post", "echo pre'a b'post"),
    ('echo "pod "{{x}}" up"', 'echo "pod "\'a b\'" up"'),
    ("echo 'a '{{x}}' b'", "echo 'a ''a b'' b'"),
    ('echo "$(echo {{x}})"', "echo \"$(echo 'a b')\""),
    ("echo $(echo $(echo {{x}}))", "echo $(echo $(echo 'a b'))"),
    ("echo $( (echo) ; echo {{x}})", "echo $( (echo) ; echo 'a b')"),
    ("echo ${u:-{{x}}}", "echo ${u:-'a b'}"),
    ("echo ${u%{{x}}}", "echo ${u%'a b'}"),
    ("echo \\'{{x}}", "echo \\''a b'"),
    ("echo 'it\\'{{x}}", "echo 'it\\''a b'"),  # no backslash escapes inside '...'
    ('echo \\"{{x}}', "echo \\\"'a b'"),
    ("echo \\${{x}}", "echo \\$'a b'"),
    ("echo $${{x}}", "echo $$'a b'"),
    ("echo $# {{x}}", "echo $# 'a b'"),
    ("echo a#b {{x}}", "echo a#b 'a b'"),
    ("echo ${#u} {{x}}", "echo ${#u} 'a b'"),
    ("# it's\necho {{x}}", "# it's\necho 'a b'"),
    ("cat <<EOF\nit's\nEOF\necho {{x}}", "cat <<EOF\nit's\nEOF\necho 'a b'"),
    ("cat <<EOF # it's\nx\nEOF\necho {{x}}", "cat <<EOF # it's\nx\nEOF\necho 'a b'"),
    ("cat <<EOF | grep {{x}}\nbody\nEOF", "cat <<EOF | grep 'a b'\nbody\nEOF"),
    ("cat <<< {{x}}", "cat <<< 'a b'"),
    ("echo $((1+2)) {{x}}", "echo $((1+2)) 'a b'"),
    ("(( i <<= 1 )); echo {{x}}", "(( i <<= 1 )); echo 'a b'"),
    ("arr=({{x}} {{x}})", "arr=('a b' 'a b')"),
    ("[[ $y == {{x}} ]]", "[[ $y == 'a b' ]]"),
    ("echo {a,{{x}}}", "echo {a,'a b'}"),
    ("echo `date` {{x}}", "echo `date` 'a b'"),
]


@pytest.mark.parametrize(("template", "expected"), ALLOWED)
def test_quoted_words_are_allowed_where_the_shell_reads_quotes(
    template: str, expected: str
) -> None:
    assert interpolate(template, {"x": "a b"}) == expected


def test_allowed_contexts_give_one_word_in_real_shells() -> None:
    value = 'it\'s "$(id)" `id` ${x} \\ end'
    templates = [
        "printf '%s\\0' {{v}}",
        "printf '%s\\0' \"$(printf '%s' {{v}})\"",
        "unset u; printf '%s\\0' \"${u:-x}\"${u:-{{v}}}",
        "printf '%s\\0' \"\"{{v}}''",
        "# comment with it's\nprintf '%s\\0' {{v}}",
        "cat <<EOF >/dev/null\nit's\nEOF\nprintf '%s\\0' {{v}}",
    ]
    for shell in SHELLS:
        for template in templates:
            out = run(shell, interpolate(template, {"v": value}))
            assert out.stdout.split(b"\0")[-2].endswith(value.encode()), (shell, template)
            assert out.returncode == 0, (shell, template, out.stderr)


# -- the namespace ----------------------------------------------------------------------------


def test_namespace_is_not_mutated() -> None:
    ns: dict[str, Any] = {"x": 1}
    assert interpolate("echo {{ (y := x + 1) }} {{ y }}", ns) == "echo 2 2"
    assert ns == {"x": 1}  # neither y nor __builtins__ leaked


def test_any_mapping_serves_as_namespace() -> None:
    assert interpolate("{{ a }}-{{ b|raw }}", MappingProxyType({"a": "1", "b": "2"})) == "1-2"


ROOT = "root"


def test_functions_see_their_own_globals() -> None:
    def path(name: str) -> str:
        return ROOT + "/" + name  # a global of this module, not of the namespace

    assert interpolate("ls {{ path('a b') }}", {"path": path}) == "ls 'root/a b'"


def test_placeholders_are_evaluated_left_to_right_once() -> None:
    calls: list[int] = []

    def tick() -> int:
        calls.append(len(calls))
        return len(calls)

    template = "echo {{ tick() }} {{ tick() }} {{ tick()|raw }}"
    assert interpolate(template, {"tick": tick}) == "echo 1 2 3"
    assert calls == [0, 1, 2]


# -- real shells: values arrive byte for byte -----------------------------------------------

TRICKY = [
    "",
    " ",
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    "'\\''",
    '"; rm -rf /',
    "'; rm -rf /; '",
    "$(id)",
    "`id`",
    "${HOME}",
    "$HOME",
    "$'\\x41'",
    "-n",
    "-e",
    "--",
    "-",
    "a\nb",
    "\n",
    "\t",
    "\r\n",
    "*",
    "~",
    "~root",
    "#",
    "!!",
    "{a,b}",
    "a b  c",
    "é😀\u2028\u00a0",
    "\x01\x7f",
    "}} {{",
    "%s%d%%",
    "EOF",
]
SHELL_ALPHABET = st.sampled_from(list("'\"`$\\ \n\t;|&(){}[]*?~#!-=<>%a") + ["é", "😀"])
SHELL_TEXT = st.one_of(
    st.sampled_from(TRICKY),
    st.text(SHELL_ALPHABET),
    st.text(st.characters(codec="utf-8", exclude_characters="\0")),
)


def printed(shell: str, template: str, namespace: dict[str, Any]) -> bytes:
    out = run(shell, interpolate(template, namespace))
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=200, deadline=None)
@given(value=SHELL_TEXT)
def test_a_value_arrives_as_exactly_one_word(shell: str, value: str) -> None:
    assert printed(shell, "printf '%s\\0' {{v}}", {"v": value}) == value.encode() + b"\0"


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=200, deadline=None)
@given(values=st.lists(SHELL_TEXT, max_size=6))
def test_a_list_arrives_as_exactly_its_words(shell: str, values: list[str]) -> None:
    expected = b"".join(w.encode() + b"\0" for w in ["start", *values, "end"])
    assert printed(shell, "printf '%s\\0' start {{vs}} end", {"vs": values}) == expected


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=200, deadline=None)
@given(left=SHELL_TEXT, right=SHELL_TEXT)
def test_glued_values_stay_in_one_word(shell: str, left: str, right: str) -> None:
    out = printed(shell, "printf '%s\\0' x{{a}}-{{b}}y {{b}}", {"a": left, "b": right})
    assert out == f"x{left}-{right}y\0{right}\0".encode()


SAFE_TEXT = st.text(st.sampled_from(list("abz019 \t\n;|&=-/.,:+@%_")))


@settings(max_examples=200, deadline=None)
@given(before=SAFE_TEXT, value=SHELL_TEXT, after=SAFE_TEXT)
def test_text_around_placeholders_is_preserved(before: str, value: str, after: str) -> None:
    template = before + "{{v}}" + after
    try:
        out = interpolate(template, {"v": value})
    except InterpolationError:
        # A position where no text may stand ('. {{v}}' sources the value): refused for a
        # harmless word as well, so the refusal is the template's, not this value's.
        with pytest.raises(InterpolationError):
            interpolate(template, {"v": "word"})
        return
    assert out == before + shlex.quote(value) + after


TEXT_WITHOUT_TOKENS = st.text().filter(lambda t: "{{" not in t and "\\" not in t and "{" != t[-1:])


@settings(max_examples=200, deadline=None)
@given(
    before=TEXT_WITHOUT_TOKENS, value=SHELL_TEXT, after=st.text().filter(lambda t: "{{" not in t)
)
def test_raw_text_around_placeholders_is_preserved(before: str, value: str, after: str) -> None:
    assert interpolate(before + "{{v|raw}}" + after, {"v": value}) == before + value + after


@settings(max_examples=200, deadline=None)
@given(text=st.text().filter(lambda t: "{{" not in t))
def test_text_without_placeholders_is_returned_as_is(text: str) -> None:
    assert interpolate(text, {}) == text


@settings(max_examples=200, deadline=None)
@given(value=SHELL_TEXT)
def test_quote_word_matches_shlex(value: str) -> None:
    assert quote_word(value) == shlex.quote(value)


# -- injection payloads do not run ----------------------------------------------------------


def payloads(marker: Path) -> list[str]:
    touch = f"touch {marker}"
    return [
        f"$({touch})",
        f"`{touch}`",
        f"'; {touch}; '",
        f"'$({touch})'",
        f'"; {touch}; "',
        f"\n{touch}\n",
        f"a'\n{touch}\n'b",
        f"'\\''; {touch} #",
        f"$'\\x27'; {touch}",
        f"${{IFS}}$({touch})",
        f"\\'; {touch}",
        f"x' ; {touch} ; echo '",
        f"\nEOF\n{touch}\n",
    ]


@pytest.mark.parametrize("shell", SHELLS)
def test_injection_payloads_do_not_run(shell: str, tmp_path: Path) -> None:
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    templates = [
        "printf '%s\\0' {{v}}",
        "printf '%s\\0' {{ [v] }}",
        "printf '%s\\0' {{ (v, v, v) }}",
        "v={{v}}; printf '%s\\0' \"$v\"",
        # $(...) drops trailing newlines; the "." keeps them.
        "x=\"$(printf '%s.' {{v}})\"; printf '%s\\0' \"${x%.}\"",
        "printf '%s\\0' {{v}} # trailing comment",
        "cat <<EOF >/dev/null\nbody\nEOF\nprintf '%s\\0' {{v}}",
        "unset u; printf '%s\\0' ${u:-{{v}}}",
    ]
    for payload in payloads(marker):
        for template in templates:
            out = run(shell, interpolate(template, {"v": payload}), cwd=tmp_path)
            assert not marker.exists(), (payload, template)
            assert out.returncode == 0, (payload, template, out.stderr)
            words = out.stdout.split(b"\0")[:-1]
            assert words, (payload, template)
            assert all(w == payload.encode() for w in words), (payload, template)
    assert list(tmp_path.iterdir()) == []


def test_refused_contexts_would_have_run_the_payload(tmp_path: Path) -> None:
    # Why they are refused: naive quoting inside them lets the payload run.
    marker = tmp_path / "pwned"
    for template, value in [
        ('echo "{{v}}"', f"$(touch {marker})"),
        ("echo $(( {{v}} ))", f"$(touch {marker})"),
        ("echo x # {{v}}", f"\ntouch {marker} #"),
        ("cat <<EOF\n{{v}}\nEOF", f"$(touch {marker})"),
    ]:
        with pytest.raises(InterpolationError):
            interpolate(template, {"v": value})
        naive = template.replace("{{v}}", shlex.quote(value))
        run(SHELLS[0], naive, cwd=tmp_path)
        assert marker.exists(), template
        marker.unlink()


# Random scripts built from nested shell constructs, with {{v}} anywhere: whatever the
# composition, interpolate() either refuses it or produces a script that does not run the value.
WORDS = st.recursive(
    st.sampled_from(["{{v}}", "{{v}}", "x", "$u", " ", "\\", "#", ")", "}"]),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        inner.map(lambda w: f'"{w}"'),
        inner.map(lambda w: f"'{w}'"),
        inner.map(lambda w: f"$'{w}'"),
        inner.map(lambda w: f"$(echo {w})"),
        inner.map(lambda w: f"`echo {w}`"),
        inner.map(lambda w: f"${{u:-{w}}}"),
        inner.map(lambda w: f"$(( {w} ))"),
    ),
    max_leaves=8,
)
STATEMENTS = st.lists(
    st.one_of(
        WORDS.map(lambda w: f"echo {w}"),
        WORDS.map(lambda w: f"echo a # {w}"),
        WORDS.map(lambda w: f"(( {w} ))"),
        WORDS.map(lambda w: f"cat <<EOF >/dev/null\n{w}\nEOF"),
        WORDS.map(lambda w: f"cat <<'EOF' >/dev/null\n{w}\nEOF"),
    ),
    min_size=1,
    max_size=4,
).map("\n".join)


@pytest.mark.parametrize("shell", SHELLS)
@settings(max_examples=200, deadline=None)
@given(script=STATEMENTS, which=st.integers(min_value=0, max_value=100))
def test_no_composition_of_shell_constructs_runs_the_value(
    shell: str, script: str, which: int
) -> None:
    # `(( w ))` is arithmetic only in bash; POSIX shells read it as nested subshells, putting
    # `w` in command position, where running the output of $(echo {{v}}) is the script's own
    # doing (like eval), not a way out of the quoting.
    assume(shell.endswith("bash") or not re.search(r"(^|\n)\(\( ", script))
    with tempfile.TemporaryDirectory() as folder:
        marker = Path(folder) / "pwned"
        options = payloads(marker)
        try:
            text = interpolate(script, {"v": options[which % len(options)]})
        except InterpolationError:
            return
        run(shell, text, cwd=Path(folder))
        assert not marker.exists(), text


def test_a_value_with_a_subscript_is_refused_where_the_script_evaluates_variables() -> None:
    value = "a[$(touch CANARY)]"
    message = str(
        pytest.raises(
            InterpolationError, interpolate, "n={{ v }}\necho $((n + 1))", {"v": value}
        ).value
    )
    assert message == (
        "{{ v }} gives a value with '[' and the script evaluates variables as arithmetic or names "
        "('$((' at line 2, column 6), where bash, mksh and zsh run a $(...) in a subscript of a "
        "value that reaches them through a variable (line 1, column 3); give an int "
        "({{ int(v) }}) if it is a number; otherwise check the value and leave the '[' out, or do "
        "the arithmetic in a separate command"
    )
    assert "CANARY" not in message
    # Each word of a list is checked; the construct is found in quoted code too.
    with pytest.raises(InterpolationError, match=r"\('-eq' at column 34\)"):
        interpolate('for p in {{v}}; do sh -c \'[ "$1" -eq 1 ]\' sh "$p"; done', {"v": [1, value]})


def test_values_without_a_subscript_and_scripts_without_arithmetic_are_unchanged() -> None:
    assert interpolate("n={{v}}; echo $((n))", {"v": "$(id) `id` ${u:=x}"}) == (
        "n='$(id) `id` ${u:=x}'; echo $((n))"
    )
    assert interpolate("n={{v}}; echo $((n))", {"v": 7}) == "n=7; echo $((n))"
    assert interpolate("n={{v|raw}}; echo $((n))", {"v": "a[1]"}) == "n=a[1]; echo $((n))"
    for template in (
        "grep -e {{v}} file",
        'x={{v}}; printf %s "$x"',
        "echo ${u:-x} {{v}}",
        "kubectl get pods -o jsonpath='{.items[*]}' -l {{v}}",
        "grep -v {{v}}",
    ):
        assert interpolate(template, {"v": "[a-z]"}) == template.replace("{{v}}", "'[a-z]'")
