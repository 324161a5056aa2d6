"""The remote command: what goes in the exec URL and what travels over stdin.

The exec URL ends up in the API server's audit log, so nothing secret may be in it. A short
script without ``--env`` runs as ``sh -c SCRIPT`` (transparent in the audit log, like
``kubectl exec``). With environment variables, or a script too long for a URL, the script and
its ``export`` lines travel over stdin instead, read by a fixed :data:`LOADER`.

The text to run is sent as lines of at most :data:`CHUNK_CHARS` characters, each with ``\\``
doubled and newlines written as ``\\n`` so ``printf %b`` restores it exactly, and ends with an
empty line. The loader appends each decoded line to one variable (a ``.`` written after
``printf`` and removed again keeps trailing newlines, which ``$(...)`` would strip) and only
``eval``\\ s it once the empty line has arrived: a payload cut short runs nothing (exit 125).
Lines stay far below the 128 KiB a single argument may have, as shells without a ``printf``
builtin (mksh) run ``/usr/bin/printf``. ``read`` takes one byte at a time from a pipe, so
whatever follows the payload is left for the script itself: the user's own stdin still works.

On a terminal (``-t``) the pty would echo the payload back (env values included) and its
line discipline would cut lines at 4095 bytes. So when its stdin is a terminal the loader
first saves the terminal settings and switches off echo and line editing (``stty raw
-echo``), then prints :data:`~podmagic._transport.READY_MARKER`; the client sends the payload
only after seeing it. Once the payload is read the settings are restored but echo stays off
(only podmagic types on that terminal: the payload, the user's ``--stdin`` data, the EOF
character), the marker is printed again, and only then is the user's stdin sent (none given: the terminal's EOF
character, so a read ends at once, as for ``sh -c`` with a terminal and no stdin channel on
the sandbox). The client removes both markers from
the output (see :class:`~podmagic._transport.LoaderInput`). Without ``stty`` in the container
the loader says so on one line and exits 125 before anything of the script runs.

So under ``-t`` a script given stdin data always goes through the loader, even a short one
without env: sent at once to ``sh -c``, the data would reach the terminal while echo is still
on, and come back in the output before the script's ``read -s`` or ``stty -echo`` could switch
it off (a password read with ``read -s`` would be shown). A program that wants echo
(an editor, a REPL) switches it on itself, as it does anyway. A direct argv (no shell) has no
loader to switch echo off: there the terminal echoes the data.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from ._transport import READY_MARKER, LoaderInput

__all__ = [
    "CHUNK_CHARS",
    "INLINE_SCRIPT_LIMIT",
    "INLINE_URL_LIMIT",
    "LOADER",
    "LOADER_EXIT",
    "RemoteCommand",
    "build_command",
]

#: Scripts longer than this (bytes, UTF-8) go over stdin rather than in the URL.
INLINE_SCRIPT_LIMIT = 4096
#: ... and so do scripts longer than this once percent-encoded in the URL (quotes, spaces and
#: non-ASCII take 3 to 12 bytes each there): servers and proxies in front of them commonly
#: refuse request lines over 8 KiB.
INLINE_URL_LIMIT = 6 * 1024
#: Characters of text per payload line: at most 64 KiB once encoded (4 bytes a character).
CHUNK_CHARS = 16 * 1024
#: The loader's exit code when it cannot hand the script over; nothing of the script ran.
LOADER_EXIT = 125

_SCRIPT = "__podmagic_script"
_LINE = "__podmagic_line"
_TERMINAL = "__podmagic_tty"
#: READY_MARKER as a printf format (inside single quotes).
_MARKER_FORMAT = "".join(
    "\\\\"
    if byte == 0x5C
    else "%%"
    if byte == 0x25
    else f"\\{byte:03o}"
    if byte < 0x20 or byte > 0x7E
    else chr(byte)
    for byte in READY_MARKER
)


def _fail(message: str) -> str:
    return f"{{ echo {shlex.quote('podmagic: ' + message)} >&2; exit {LOADER_EXIT}; }}"


LOADER = (
    "if [ -t 0 ]; then "
    "command -v stty >/dev/null 2>&1 || "
    + _fail(
        "-t with --env, --stdin or a script over 4 KiB needs stty in the container; "
        "nothing of the script ran"
    )
    + "; "
    f"{_TERMINAL}=$(stty -g) && stty raw -echo || "
    + _fail("could not switch off terminal echo (stty failed); nothing of the script ran")
    + f"; printf '{_MARKER_FORMAT}'; fi; "
    f"{_SCRIPT}=; "
    f"while IFS= read -r {_LINE} || "
    + _fail("the script did not arrive whole over stdin; nothing of it ran")
    + f'; [ -n "${_LINE}" ]; do '
    f'{_SCRIPT}=${_SCRIPT}$(printf %b "${_LINE}"; echo .); {_SCRIPT}=${{{_SCRIPT}%.}}; done; '
    f"if [ -t 0 ]; then stty \"${_TERMINAL}\" && stty -echo; printf '{_MARKER_FORMAT}'; fi; "
    f'eval "${_SCRIPT}"'
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class RemoteCommand:
    """A command ready for the exec call.

    ``argv`` goes in the URL; ``stdin`` (if not None) is written to the command's stdin and
    then closed; a :class:`~podmagic._transport.LoaderInput` holds the loader's payload and the
    user's own stdin apart, for the terminal handshake. ``display`` is what to show people:
    the script or argv, never env values. ``direct``: the caller gave an argv (no shell of
    theirs), even if a shell sets up its env first; hints about a missing program then do
    not suggest ``--no-shell``.
    """

    argv: tuple[str, ...]
    stdin: bytes | LoaderInput | None
    display: str
    env_names: tuple[str, ...] = field(default=())
    direct: bool = False

    @property
    def via_stdin(self) -> bool:
        """Whether the script travels over stdin (env values or a long script)."""
        return self.argv[-1:] == (LOADER,)

    def __repr__(self) -> str:
        # stdin may carry env values (the loader's payload) or the user's data: sizes only.
        if isinstance(self.stdin, bytes):
            stdin = f"<{len(self.stdin)} bytes>"
        else:
            stdin = repr(self.stdin)
        return (
            f"RemoteCommand(argv={self.argv!r}, stdin={stdin}, display={self.display!r}, "
            f"env_names={self.env_names!r}, direct={self.direct!r})"
        )


def encode_payload(text: str) -> bytes:
    """The lines :data:`LOADER` turns back into ``text``, exactly, ending with an empty line."""
    lines = []
    for start in range(0, len(text), CHUNK_CHARS):
        chunk = text[start : start + CHUNK_CHARS]
        lines.append(chunk.replace("\\", "\\\\").replace("\n", "\\n").encode() + b"\n")
    return b"".join(lines) + b"\n"


def _check_text(what: str, text: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{what} contains a NUL byte, which a shell cannot hold")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError(
            f"{what} is not valid Unicode text (it holds a lone surrogate); "
            "decode it with errors='replace' first"
        ) from None


def _check_env(env: Mapping[str, str]) -> None:
    for name, value in env.items():
        if not _ENV_NAME.match(name):
            raise ValueError(
                f"invalid environment variable name {name!r}: use letters, digits and _ "
                "(not starting with a digit)"
            )
        _check_text(f"environment variable {name}", value)


def build_command(
    *,
    script: str | None = None,
    argv: Sequence[str] | None = None,
    shell: str = "/bin/sh",
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    stdin: bytes | None = None,
    inline_limit: int = INLINE_SCRIPT_LIMIT,
    tty: bool = False,
) -> RemoteCommand:
    """Build the remote command for a shell ``script`` or a direct ``argv`` (no shell).

    Whichever way the script travels (in the URL or over stdin, with or without a terminal),
    the shell runs exactly its text. With ``tty`` and ``stdin`` a script always goes through
    the loader, so the terminal does not echo the data back. Raises ValueError for an empty command, both forms at
    once, a bad env name, or a NUL byte in the script.
    """
    if (script is None) == (argv is None):
        raise ValueError("give either a shell script or an argv list, not both and not neither")
    env = dict(env or {})
    _check_env(env)
    direct = argv is not None
    if argv is not None:
        argv = tuple(argv)
        if not argv or not argv[0]:
            raise ValueError("empty command: give the program to run")
        display = shlex.join(argv)
        if not env and workdir is None:
            return RemoteCommand(argv=argv, stdin=stdin, display=display, direct=True)
        # Env values must not reach the URL: a shell sets them up, then execs the program.
        script = "exec " + shlex.join(argv)
    else:
        assert script is not None
        if not script.strip():
            raise ValueError("empty command: the script has nothing to run")
        display = script
    _check_text("the script", script)

    prelude = ""
    if workdir is not None:
        prelude += f"cd -- {shlex.quote(workdir)} || exit 1\n"
    if (
        not env
        and not (tty and stdin is not None)
        and len(script.encode()) <= inline_limit
        and len(quote(prelude + script, safe="")) <= INLINE_URL_LIMIT
    ):
        return RemoteCommand(
            argv=(shell, "-c", prelude + script), stdin=stdin, display=display, direct=direct
        )

    # The loader's variables go before anything of the user's runs.
    lines = [f"unset {_SCRIPT} {_LINE} {_TERMINAL}"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    if stdin is None:
        # Nothing more will come on stdin; over v4 it cannot even be closed. Don't let the
        # script wait for it. A terminal stays, as it does for `sh -c` with -t (the client
        # types its EOF character after the loader's second marker).
        lines.append("[ -t 0 ] || exec </dev/null")
    full = "\n".join(lines) + "\n" + prelude + script
    return RemoteCommand(
        argv=(shell, "-c", LOADER),
        stdin=LoaderInput(payload=encode_payload(full), rest=stdin),
        display=display,
        env_names=tuple(env),
        direct=direct,
    )
