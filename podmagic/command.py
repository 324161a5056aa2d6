"""The remote command: what goes in the exec URL and what travels over stdin.

The exec URL ends up in the API server's audit log, so nothing secret may be in it. A short
script without ``--env`` runs as ``sh -c SCRIPT`` (transparent in the audit log, like
``kubectl exec``). With environment variables, or a script too long for a URL, the script and
its ``export`` lines travel over stdin instead, read by a fixed loader::

    sh -c 'IFS= read -r __podmagic_script || exit 125; eval "$(printf %b "$__podmagic_script")"'

The script is sent as the first line of stdin, with ``\\`` doubled and newlines written as
``\\n`` so ``printf %b`` restores it exactly. ``read`` takes one byte at a time from a pipe,
so whatever follows that line is left for the script itself: the user's own stdin still works.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["INLINE_SCRIPT_LIMIT", "LOADER", "RemoteCommand", "build_command"]

#: Scripts longer than this (bytes, UTF-8) go over stdin rather than in the URL.
INLINE_SCRIPT_LIMIT = 4096

_SCRIPT_VARIABLE = "__podmagic_script"
LOADER = (
    f"IFS= read -r {_SCRIPT_VARIABLE} || exit 125; "
    f'eval "$(printf %b "${_SCRIPT_VARIABLE}")"'
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class RemoteCommand:
    """A command ready for the exec call.

    ``argv`` goes in the URL; ``stdin`` (if not None) is written to the command's stdin and
    then closed. ``display`` is what to show people: the script or argv, never env values.
    """

    argv: tuple[str, ...]
    stdin: bytes | None
    display: str
    env_names: tuple[str, ...] = field(default=())

    @property
    def via_stdin(self) -> bool:
        """Whether the script travels over stdin (env values or a long script)."""
        return self.argv[-1:] == (LOADER,)


def _encode_line(script: str) -> bytes:
    """One line that ``printf %b`` turns back into ``script``."""
    return script.replace("\\", "\\\\").replace("\n", "\\n").encode() + b"\n"


def _check_env(env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ValueError(
                f"invalid environment variable name {name!r}: use letters, digits and _ "
                "(not starting with a digit)"
            )
        if "\x00" in value:
            raise ValueError(f"environment variable {name} contains a NUL byte, which a shell cannot hold")


def build_command(
    *,
    script: str | None = None,
    argv: Sequence[str] | None = None,
    shell: str = "/bin/sh",
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    stdin: bytes | None = None,
    inline_limit: int = INLINE_SCRIPT_LIMIT,
) -> RemoteCommand:
    """Build the remote command for a shell ``script`` or a direct ``argv`` (no shell).

    Raises ValueError for an empty command, both forms at once, a bad env name, or a NUL
    byte in the script.
    """
    if (script is None) == (argv is None):
        raise ValueError("give either a shell script or an argv list, not both and not neither")
    env = dict(env or {})
    _check_env(env)
    if argv is not None:
        argv = tuple(argv)
        if not argv or not argv[0]:
            raise ValueError("empty command: give the program to run")
        display = shlex.join(argv)
        if not env and workdir is None:
            return RemoteCommand(argv=argv, stdin=stdin, display=display)
        # Env values must not reach the URL: a shell sets them up, then execs the program.
        script = "exec " + shlex.join(argv)
    else:
        assert script is not None
        if not script.strip():
            raise ValueError("empty command: the script has nothing to run")
        display = script
    if "\x00" in script:
        raise ValueError("the script contains a NUL byte, which a shell cannot run")

    prelude = ""
    if workdir is not None:
        prelude += f"cd -- {shlex.quote(workdir)} || exit 1\n"
    if not env and len(script.encode()) <= inline_limit:
        return RemoteCommand(argv=(shell, "-c", prelude + script), stdin=stdin, display=display)

    lines = [f"unset {_SCRIPT_VARIABLE}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    if stdin is None:
        # Nothing more will come on stdin; over v4 it cannot even be closed. Don't let the
        # script wait for it.
        lines.append("exec </dev/null")
    full = "\n".join(lines) + "\n" + prelude + script
    payload = _encode_line(full) + (stdin or b"")
    return RemoteCommand(argv=(shell, "-c", LOADER), stdin=payload, display=display,
                         env_names=tuple(env))
