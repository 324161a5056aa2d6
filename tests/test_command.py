"""The remote command builder: what reaches the URL, and byte-exact delivery over stdin."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from podmagic._command import (
    CHUNK_CHARS,
    INLINE_SCRIPT_LIMIT,
    LOADER,
    LOADER_EXIT,
    RemoteCommand,
    build_command,
    encode_payload,
)
from podmagic._transport import READY_MARKER, LoaderInput

SHELLS = [shell for shell in ("/bin/sh", "/usr/bin/dash", "/usr/bin/bash") if shutil.which(shell)]


def run_locally(
    argv: tuple[str, ...], stdin: bytes | LoaderInput | None
) -> subprocess.CompletedProcess[bytes]:
    data = stdin.data if isinstance(stdin, LoaderInput) else stdin
    return subprocess.run(argv, input=data or b"", capture_output=True, timeout=30, check=False)


def sent(command: RemoteCommand) -> bytes:
    """Everything the command's stdin carries (as sent without a tty)."""
    stdin = command.stdin
    return stdin.data if isinstance(stdin, LoaderInput) else stdin or b""


def test_short_script_without_env_is_inline() -> None:
    command = build_command(script="echo hi")
    assert command.argv == ("/bin/sh", "-c", "echo hi")
    assert command.stdin is None
    assert not command.via_stdin


def test_argv_without_env_runs_directly() -> None:
    command = build_command(argv=["ls", "-l", "a b"])
    assert command.argv == ("ls", "-l", "a b")
    assert command.display == "ls -l 'a b'"


def test_env_values_never_reach_argv() -> None:
    command = build_command(script="echo $TOKEN", env={"TOKEN": "s3cret-value"})
    assert command.argv == ("/bin/sh", "-c", LOADER)
    assert "s3cret-value" not in " ".join(command.argv)
    assert "s3cret-value" not in command.display
    assert command.env_names == ("TOKEN",)
    assert b"s3cret-value" in sent(command)


def test_long_script_goes_over_stdin() -> None:
    script = "true\n" * (INLINE_SCRIPT_LIMIT // 5 + 10) + "echo end"
    command = build_command(script=script)
    assert command.via_stdin
    result = run_locally(command.argv, command.stdin)
    assert (result.returncode, result.stdout) == (0, b"end\n")


@pytest.mark.parametrize("shell", SHELLS)
def test_user_stdin_follows_the_script(shell: str) -> None:
    command = build_command(
        script="cat; echo done", env={"A": "1"}, stdin=b"line1\nline2", shell=shell
    )
    result = run_locally(command.argv, command.stdin)
    assert result.stdout == b"line1\nline2done\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_no_user_stdin_means_eof_for_the_script(shell: str) -> None:
    command = build_command(script="cat; echo after", env={"A": "1"}, shell=shell)
    # Keep the pipe open after the payload: the script must not wait for more.
    process = subprocess.Popen(command.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(sent(command))
    process.stdin.flush()
    assert process.stdout is not None
    out = process.stdout.read()
    process.stdin.close()
    process.stdout.close()
    assert process.wait(timeout=10) == 0
    assert out == b"after\n"


def test_argv_with_env_and_workdir_execs_the_program(tmp_path) -> None:  # type: ignore[no-untyped-def]
    command = build_command(
        argv=["sh", "-c", 'printf "%s|%s" "$Q" "$(pwd)"'], env={"Q": "z z"}, workdir=str(tmp_path)
    )
    assert command.via_stdin
    result = run_locally(command.argv, command.stdin)
    assert result.stdout.decode() == f"z z|{tmp_path}"


def test_exit_code_of_the_script_is_kept() -> None:
    command = build_command(script="exit 42", env={"A": "1"})
    assert run_locally(command.argv, command.stdin).returncode == 42


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "either a shell script or an argv"),
        ({"script": "x", "argv": ["y"]}, "either a shell script or an argv"),
        ({"script": "  "}, "empty command"),
        ({"argv": []}, "empty command"),
        ({"script": "echo", "env": {"1X": "v"}}, "invalid environment variable name '1X'"),
        ({"script": "echo", "env": {"X": "a\x00b"}}, "NUL byte"),
        ({"script": "echo \x00"}, "NUL byte"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        build_command(**kwargs)


text_without_nul = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
)


@settings(max_examples=150, deadline=None)
@given(value=text_without_nul, script_tail=text_without_nul)
def test_env_values_arrive_byte_exact(value: str, script_tail: str) -> None:
    comment = "# " + script_tail.replace("\n", " ").replace("\r", " ")
    command = build_command(script='printf "%s" "$V"\n' + comment, env={"V": value})
    result = run_locally(command.argv, command.stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == value.encode()


ALL_SHELLS = [
    path for path in (shutil.which(name) for name in ("dash", "bash", "mksh", "zsh")) if path
]
if shutil.which("busybox"):
    ALL_SHELLS.append("busybox-ash")


def shell_argv(shell: str, argv: tuple[str, ...]) -> tuple[str, ...]:
    """``argv`` with its shell replaced by ``shell`` (busybox runs its ash as ``busybox ash``)."""
    if shell == "busybox-ash":
        return (str(shutil.which("busybox")), "ash", *argv[1:])
    return (shell, *argv[1:])


@pytest.mark.parametrize("shell", ALL_SHELLS)
@settings(max_examples=40, deadline=None)
@given(
    text=text_without_nul,
    trailing=st.sampled_from(["", "\\", "\\\n", "\n\n\n", "\\\\\n\n", "\r\n"]),
)
@example(text="\\\n\ré" * CHUNK_CHARS, trailing="\\\n")  # several payload lines
def test_loader_hands_over_the_exact_text(shell: str, text: str, trailing: str) -> None:
    # The loader as it is, except that it prints the text it would eval.
    assert LOADER.endswith('eval "$__podmagic_script"')
    printing = LOADER.removesuffix('eval "$__podmagic_script"') + 'printf %s "$__podmagic_script"'
    source = text + trailing
    result = run_locally(shell_argv(shell, ("sh", "-c", printing)), encode_payload(source))
    assert (result.returncode, result.stdout) == (0, source.encode()), result.stderr


@pytest.mark.parametrize("shell", ALL_SHELLS)
def test_a_payload_cut_short_runs_nothing(shell: str) -> None:
    source = "echo ran\n" + "#" + "x" * (2 * CHUNK_CHARS) + "\necho end\n"
    payload = encode_payload(source)
    lines = payload.splitlines(keepends=True)
    assert len(lines) == 4  # three chunks and the empty end line
    for cut in (len(b"".join(lines[:3])), len(b"".join(lines[:1])), 5, 0):
        result = run_locally(shell_argv(shell, ("sh", "-c", LOADER)), payload[:cut])
        assert result.returncode == LOADER_EXIT
        assert result.stdout == b""
        assert result.stderr.endswith(
            b"podmagic: the script did not arrive whole over stdin; nothing of it ran\n"
        )


@pytest.mark.parametrize("shell", ALL_SHELLS)
def test_user_stdin_follows_the_payload_under_every_shell(shell: str) -> None:
    command = build_command(script="cat; echo done", env={"A": "1"}, stdin=b"line1\nline2")
    result = run_locally(shell_argv(shell, command.argv), command.stdin)
    assert result.stdout == b"line1\nline2done\n"


def test_script_too_long_for_a_url_once_encoded_goes_over_stdin() -> None:
    script = "echo '" + "é" * 1200 + "'"  # 2.4 KB, but 7 KB percent-encoded
    assert len(script.encode()) < INLINE_SCRIPT_LIMIT
    assert build_command(script=script).via_stdin
    assert not build_command(script="echo " + "a" * 4000).via_stdin


@pytest.mark.parametrize("where", ["script", "env"])
def test_text_with_a_lone_surrogate_is_a_clear_error(where: str) -> None:
    kwargs = (
        {"script": "echo \udcff"}
        if where == "script"
        else {"script": "true", "env": {"V": "\udcff"}}
    )
    with pytest.raises(ValueError, match="lone surrogate"):
        build_command(**kwargs)  # type: ignore[arg-type]


def test_loader_prints_the_transport_marker() -> None:
    # The format inside the loader must print exactly what the client waits for.
    start = LOADER.index("printf '") + len("printf '")
    fmt = LOADER[start : LOADER.index("'", start)]
    result = subprocess.run(["sh", "-c", f"printf '{fmt}'"], capture_output=True, check=True)
    assert result.stdout == READY_MARKER
