"""Properties of %pod's interpolation, end to end: whatever text a Python value holds, it
reaches the process in the pod byte for byte, as the words it was meant to be, and never as
shell code.

Each example goes through the whole path: the magic's option splitting, ``{{expr}}``
interpolation, the remote command (exec URL, or stdin for env values and long scripts), the
sandbox's exec WebSocket and a real ``/bin/sh`` running ``printf`` in pod ``conf/solo``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from podmagic._results import ExecStatus
from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.timeout(300)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Shell-significant fragments, so that generated text hits them far more often than chance.
NASTY = [
    "'",
    '"',
    "\\",
    "`",
    "$",
    "$(id)",
    "${HOME}",
    "$((1+1))",
    "`id`",
    "; rm -rf /",
    '"; rm -rf /',
    "'; rm -rf / #",
    "\n",
    "\r",
    "\t",
    " ",
    "  ",
    "*",
    "?",
    "[a-z]",
    "~",
    "!",
    "!!",
    "#",
    "&&",
    "||",
    "|",
    "&",
    ">",
    "<",
    "<<EOF",
    "(",
    ")",
    "{",
    "}",
    "{{",
    "}}",
    "-",
    "--",
    "-n",
    "-e",
    "--help",
    "%s",
    "%b",
    "\\0",
    "\\n",
    "\\\\",
    "é",
    "ß",
    "€",
    "😀",
    "\u200b",
    "\u2028",
    "\x7f",
    "\x1b[31m",
    "\x01",
]
#: Any text a shell word may hold: everything but NUL (and lone surrogates, which are not text
#: that UTF-8 can carry).
CHARACTERS = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
WORD = st.one_of(
    st.text(CHARACTERS),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(CHARACTERS, max_size=3)), max_size=8).map(
        "".join
    ),
)
MARKER = "pwned"
#: Ways a value could try to run a command if it were not quoted as one word.
INJECTIONS = [
    "; touch {m}",
    "'; touch {m}; '",
    '"; touch {m}; "',
    "$(touch {m})",
    "`touch {m}`",
    "\ntouch {m}\n",
    "&& touch {m}",
    "|| touch {m}",
    "| touch {m}",
    "& touch {m} &",
    "> {m}",
    "$(touch${{IFS}}{m})",
    "'$(touch {m})'",
    "\\'; touch {m}; \\'",
    '\\"; touch {m}; "',
    "'\"'\"'; touch {m}; '\"'\"'",
    "\r\ntouch {m}",
    "x' 'y; touch {m}",
]


@pytest.fixture(scope="module")
def ip(sandbox: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}")
    shell.run_line_magic("config", "PodMagic.quiet = True")
    yield shell
    shell.run_line_magic("config", "PodMagic.quiet = False")
    for name in ("v", "words"):
        shell.user_ns.pop(name, None)


def run(ip: InteractiveShell, line: str) -> bytes:
    results = ip.run_line_magic("pod", line)
    assert len(results) == 1
    result = results[0]
    assert result.status is ExecStatus.OK, (result.status, result.error, result.stderr)
    return bytes(result.stdout)


def nul_separated(*words: str) -> bytes:
    return b"".join(word.encode() + b"\0" for word in words)


@SETTINGS
@given(value=WORD)
@example(value="")
@example(value='"; rm -rf /')
@example(value="$(id) `id` ${HOME} \\ \n '")
@example(value="-n")
@example(value="x" * 5000)  # a script over 4 KiB travels over stdin, not in the exec URL
def test_a_value_arrives_as_one_exact_word(ip: InteractiveShell, value: str) -> None:
    ip.user_ns["v"] = value
    assert run(ip, "solo -n conf -- printf '%s\\0' {{v}}") == nul_separated(value)


@SETTINGS
@given(value=WORD)
@example(value="")
@example(value="'; touch pwned #")
def test_a_value_arrives_exactly_in_a_cell_and_without_a_shell(
    ip: InteractiveShell, value: str
) -> None:
    ip.user_ns["v"] = value
    results = ip.run_cell_magic("pod", "solo -n conf", "printf '%s\\0' {{v}}\n")
    assert results.stdout == nul_separated(value)
    # --no-shell: the quoted word is split back into exactly that argv entry.
    assert run(ip, "solo -n conf --no-shell -- printf '%s\\0' {{v}}") == nul_separated(value)


@SETTINGS
@given(value=WORD)
@example(value="")
@example(value="a\nb=c\n")
def test_an_env_value_arrives_exactly(ip: InteractiveShell, value: str) -> None:
    # -e values travel over stdin, never in the exec URL.
    ip.user_ns["v"] = value
    assert run(ip, "solo -n conf -e V={{v}} -- printf '%s\\0' \"$V\"") == nul_separated(value)


@SETTINGS
@given(words=st.lists(WORD, max_size=6))
@example(words=[])
@example(words=[""])
@example(words=["a b", "", "'", "-n", "$(id)"])
def test_a_list_arrives_as_exactly_those_words(ip: InteractiveShell, words: list[str]) -> None:
    ip.user_ns["words"] = words
    # The fixed first and last words show that an empty list adds no word, not an empty one.
    got = run(ip, "solo -n conf -- printf '%s\\0' first {{words}} last")
    assert got == nul_separated("first", *words, "last")
    ip.user_ns["words"] = tuple(words)
    assert run(ip, "solo -n conf -- printf '%s\\0' first {{words}} last") == got


@SETTINGS
@given(template=st.sampled_from(INJECTIONS), before=WORD, after=WORD)
def test_an_injection_payload_never_runs(
    ip: InteractiveShell, template: str, before: str, after: str
) -> None:
    value = before + template.format(m=MARKER) + after
    ip.user_ns["v"] = value
    assert run(ip, "solo -n conf -- printf '%s\\0' {{v}}") == nul_separated(value)
    ip.user_ns["words"] = [value, template.format(m=MARKER)]
    assert run(ip, "solo -n conf -- printf '%s\\0' {{words}}") == nul_separated(
        value, template.format(m=MARKER)
    )
    # No marker file appeared in the pod's working directory (its own folder).
    listing = run(ip, "solo -n conf -- ls -A").decode().split("\n")
    assert not [name for name in listing if MARKER in name]


def test_the_marker_check_can_see_a_marker(ip: InteractiveShell) -> None:
    # The check above would notice: with |raw the payload is shell code, and it runs.
    ip.user_ns["v"] = f"; touch {MARKER}-raw"
    try:
        run(ip, "solo -n conf -- printf '%s\\0' {{v|raw}}")
        assert f"{MARKER}-raw" in run(ip, "solo -n conf -- ls -A").decode().split("\n")
    finally:
        run(ip, f"solo -n conf -- rm -f {MARKER}-raw")
