"""The remote command builder: what reaches the URL, and byte-exact delivery over stdin."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podmagic.command import INLINE_SCRIPT_LIMIT, LOADER, RemoteCommand, build_command
from podmagic.transport import LoaderInput

SHELLS = [shell for shell in ("/bin/sh", "/usr/bin/dash", "/usr/bin/bash") if shutil.which(shell)]


def run_locally(argv: tuple[str, ...], stdin: bytes | LoaderInput | None) -> subprocess.CompletedProcess[bytes]:
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
    command = build_command(script="cat; echo done", env={"A": "1"}, stdin=b"line1\nline2", shell=shell)
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
    command = build_command(argv=["sh", "-c", 'printf "%s|%s" "$Q" "$(pwd)"'], env={"Q": "z z"},
                            workdir=str(tmp_path))
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


text_without_nul = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


@settings(max_examples=150, deadline=None)
@given(value=text_without_nul, script_tail=text_without_nul)
def test_env_values_arrive_byte_exact(value: str, script_tail: str) -> None:
    comment = "# " + script_tail.replace("\n", " ").replace("\r", " ")
    command = build_command(script='printf "%s" "$V"\n' + comment, env={"V": value})
    result = run_locally(command.argv, command.stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout == value.encode()
