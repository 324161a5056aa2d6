"""The engine without magics: ``Cluster`` runs commands across pods from scripts and async code.

::

    from podmagic import Cluster

    cluster = Cluster(context="staging")            # the context is pinned here
    results = cluster.run("df -h /", selector="app=web", namespace="shop")
    results.check().parse("table")                   # one DataFrame, a ``pod`` column first

    results = await cluster.arun(["cat", "/etc/os-release"], "deploy/api")

Every blocking method runs the same async code on one shared loop thread (:mod:`.portal`), so
it also works inside Jupyter's running loop; Ctrl-C cancels the run within about a second and
returns the partial results.

The guards of ``%pod`` apply here too (:mod:`.safety`): a run in a protected context (default
``*prod*``) or in more than ``confirm_above`` pods (default 50) is refused with a
:class:`~podmagic.RefusedError` until it passes ``yes=True``, and a run that names no
target and no selector is refused unless it says ``all_pods=True`` (or ``selector=""``).
"""

from __future__ import annotations

import contextvars
import difflib
import enum
import functools
import inspect
import io
import numbers
import os
import re
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import IO, TYPE_CHECKING, Any, Final, Literal, TypeVar

import anyio

from ._command import _ENV_NAME, RemoteCommand, build_command
from ._copy import CopyResults, fetch, send
from ._credentials import (
    DEFAULT_KUBECONFIG,
    DEFAULT_PLUGIN_TIMEOUT,
    ClusterCredentials,
    load_credentials,
    noting_credential_waits,
)
from ._engine import (
    DEFAULT_CAPTURE_BUDGET,
    DEFAULT_CAPTURE_LIMIT,
    DEFAULT_CONCURRENCY,
    ExecOptions,
    RunControl,
    run_fanout,
)
from ._errors import ApiError, ConfigError, PodmagicError, SelectionError
from ._events import Event, EventCallback, RunStarted
from ._kubeapi import KubeApi, format_seconds
from ._logs import LogOptions, PodLogs, compile_grep, parse_since, read_logs
from ._natsort import natural_key
from ._portal import run_blocking
from ._provenance import public_server
from ._provenance import record as record_provenance
from ._python import DEFAULT_PYTHON, PythonProgram
from ._query import Target, TargetQuery, quoted
from ._resolve import Selection, SkippedPod, resolve
from ._results import AS_BEFORE, PodResult, PodResults, note_where_ran
from ._safe_text import visible_controls
from ._safety import DEFAULT_CONFIRM_ABOVE, DEFAULT_PROTECTED_CONTEXTS, check_allowed
from ._sessions import LoopSessions

if TYPE_CHECKING:
    from ._many import Clusters

# The credentials Cluster._from_credentials hands to __init__ (None: load them).
_LOADED: contextvars.ContextVar[ClusterCredentials | None] = contextvars.ContextVar(
    "podmagic_loaded_credentials", default=None
)

__all__ = ["CLUSTER_DEFAULT", "Cluster", "StdinSource", "in_callers_words"]

StdinSource = bytes | str | IO[bytes] | IO[str] | None
#: What ``target`` takes in :meth:`Cluster.run` and :meth:`Cluster.select`.
TargetArg = str | PodResult | Sequence[str | PodResult] | None


class _Default(enum.Enum):
    """An argument left out, so that the Cluster's own setting applies."""

    CLUSTER = "the Cluster's setting"

    def __repr__(self) -> str:
        # What help(Cluster.run) shows as the default (not <object object at 0x…>).
        return "<the Cluster's setting>"


#: The default of ``timeout``, ``capture_limit`` and ``capture_budget`` in :meth:`Cluster.run`
#: and :meth:`Cluster.select`: the value given to ``Cluster(...)``. ``None`` cannot mean that,
#: since ``None`` already says "no limit".
CLUSTER_DEFAULT: Final = _Default.CLUSTER
ClusterDefault = Literal[_Default.CLUSTER]

# Explicit keyword arguments, not one options object: help(), completion and type checkers
# then show every option where it is used, and a call reads like subprocess.run or kr8s. The
# texts below are written once and put in each method's docstring by _documented, so run,
# arun, select, aselect and query describe an argument in the same words.
_ARG_DOCS: dict[str, str] = {
    "command": "a shell script (str), run as ``shell -c SCRIPT``; or a list of str, run "
    "directly as that argv (no shell).",
    "target": 'what to run in: a pod name (``"web-1"``, ``"pod/web-1"``), a workload\'s own pods '
    '(``"deploy/web"``, ``"sts/"``, ``"ds/"``, ``"rs/"``, ``"job/"`` + name), or a list of '
    "them. None: the pods ``selector`` matches. Earlier results name their pods too: a "
    "``PodResults`` (``res.failed``), a ``PodResult`` or a list of them (names may join "
    "them): each runs in its own namespace and container (``container``/``all_containers`` "
    "override that; ``namespace`` applies to names only), and all must come from this "
    "Cluster's context.",
    "selector": 'label selector (``"app=web"``, ``"tier in (a,b)"``); ``""`` means every pod '
    "of the namespace, on purpose.",
    "field_selector": 'field selector (``"spec.nodeName=node-1"``); alone it names no pods '
    "(see ``all_pods``).",
    "namespace": "namespace to look in (default: the Cluster's).",
    "all_namespaces": "look in every namespace (``-A``).",
    "include_unready": "also run in Running pods that are not Ready.",
    "one": "one pod only, the most active, as ``kubectl exec deploy/NAME`` picks.",
    "pick": "a random sample of this many eligible pods.",
    "seed": "seed for ``pick``'s sample, to make it repeatable.",
    "container": "container name (default: the only one, the ``kubectl.kubernetes.io/"
    "default-container`` annotation, else the first).",
    "all_containers": "run in every container of each pod (one result each).",
    "env": "environment variables for the command (sent inside the command, never in the "
    "exec URL).",
    "workdir": "working directory for the command.",
    "shell": "the shell that runs a script command (default ``/bin/sh``); for an argv "
    "command, the shell used to set ``env``/``workdir``.",
    "stdin": "sent to the command's standard input: str, bytes, or a file opened for reading.",
    "tty": "allocate a terminal (stderr then joins stdout).",
    "python": "run ``command`` (a str) as a Python program with the pod's own interpreter, no "
    "shell: each pod's value (a ``result`` variable, else the last expression's value) comes "
    "back as JSON in ``PodResult.value`` and ``PodResults.values`` (a DataFrame as "
    "``.frame`` when they are dicts or lists of dicts); ``env``, ``workdir`` and ``stdin`` "
    "apply, ``shell`` and ``tty`` do not. A pod without the interpreter is skipped, and an "
    "exception fails its pod with the traceback's last line as the error.",
    "python_bin": "the interpreter of ``python=True``: a name found on the container's PATH "
    "(default ``python3``) or a path.",
    "timeout": "seconds per pod: connecting, the exec and its output, and each API request "
    "made to find the pods (default: the Cluster's; None: no limit).",
    "deadline": "seconds for the whole call, finding the pods included; execs still running "
    "then end as ``timeout``, queued ones as not started (None: no limit).",
    "max_concurrency": "execs running at once (default: the Cluster's, 50).",
    "retries": "re-runs of an exec after a transient failure (the exec could not start: "
    "throttled, a server error, no answer; or its connection dropped): the command may then "
    "run twice (default 0).",
    "ok_exit": "exit codes that count as success: an int, several (``[0, 1]``, ``range(3)``), "
    'or text (``"0,1"``, ``"0-2"``); ``0`` by default. Those results are ok (``.ok``, '
    "``check()``, the summary, the DataFrame's status) and keep their real ``exit_code``; "
    "a code left out fails, 0 included.",
    "capture_limit": "bytes of stdout and of stderr kept per exec (default: the Cluster's; "
    "None: everything, and then the run-wide budget applies only if given too).",
    "capture_budget": "bytes kept across the whole run, shared among its execs (default: "
    "the Cluster's; None: no budget).",
    "on_event": "called with each :data:`~podmagic.Event` (run started, pod started, output "
    "chunk, pod finished, run finished), on the engine's loop thread; must not block.",
    "control": "a :class:`~podmagic.RunControl` whose ``cancel()`` stops the run; the "
    "results then hold what finished, the rest as cancelled or not started.",
    "selection": "pods already found by :meth:`select`/:meth:`aselect`: run there without "
    "looking again (giving ``target`` or a query argument with it is a ``ValueError``: "
    "pass those to ``select()``).",
    "yes": "confirm a run that a guard refuses: a protected context, or more pods than "
    "``confirm_above``.",
    "all_pods": "run in every pod of the namespace when no target and no selector is named "
    '(a call without either is refused otherwise; ``selector=""`` says the same).',
    "started_at": "for a caller that found the pods itself (``selection``): the "
    ":func:`time.monotonic` time it began, so that ``deadline`` counts from then.",
}

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")


def cancellable(
    start: Callable[[RunControl], Awaitable[_T]], control: RunControl | None = None
) -> _T:
    """Blocking ``start(control)`` on the loop thread (``control``: a new one when None);
    Ctrl-C cancels the run through it, and what the run returns then (the partial results)
    is returned."""
    run_control = control or RunControl()
    return run_blocking(
        lambda: start(run_control), on_interrupt=lambda: run_control.cancel("interrupted")
    )


#: How help() shows the private aliases in the signatures (the default of a ClusterDefault
#: argument already reads ``<the Cluster's setting>``).
_SHOWN_TYPES: Final = (
    (" | ClusterDefault", ""),
    ("StdinSource", "str | bytes | IO[str] | IO[bytes] | None"),
    ("TargetArg", "str | PodResult | Sequence[str | PodResult] | None"),
)


def _readable(annotation: Any) -> Any:
    if not isinstance(annotation, str):
        return annotation
    for alias, shown in _SHOWN_TYPES:
        annotation = annotation.replace(alias, shown)
    return annotation


def _documented(method: _F) -> _F:
    """Append an ``Args:`` section for each of ``method``'s parameters, from ``_ARG_DOCS``."""
    names = [name for name in inspect.signature(method).parameters if name != "self"]
    missing = [name for name in names if name not in _ARG_DOCS]
    if missing:  # a new argument must be documented before the module even imports
        raise TypeError(f"{method.__qualname__}: no _ARG_DOCS text for {', '.join(missing)}")
    entries = [
        textwrap.fill(
            f"{name}: {_ARG_DOCS[name]}",
            width=92,
            initial_indent="    ",
            subsequent_indent="        ",
            break_on_hyphens=False,
        )
        for name in names
    ]
    method.__doc__ = inspect.cleandoc(method.__doc__ or "") + "\n\nArgs:\n" + "\n".join(entries)
    return _shown_readably(method)


def _shown_readably(method: _F) -> _F:
    """``help(method)`` shows public types, not the private aliases of its annotations."""
    signature = inspect.signature(method)
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=_readable(p.annotation)) for p in signature.parameters.values()
        ]
    )
    return method


def _stdin_bytes(stdin: StdinSource) -> bytes | None:
    if stdin is None or isinstance(stdin, bytes):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode()
    if isinstance(stdin, (bytearray, memoryview)):
        return bytes(stdin)
    read = getattr(stdin, "read", None)
    if not callable(read):
        raise TypeError(
            f"stdin must be str, bytes or a file opened for reading, not {_kind(stdin)}"
        )
    data = read()
    if isinstance(data, str):
        return data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"stdin's read() returned {_kind(data)}; it must return str or bytes")
    return bytes(data)


def _deadline_at(deadline: float | None, started_at: float | None = None) -> float | None:
    """When ``deadline`` seconds pass, on :func:`anyio.current_time`'s clock, counted from
    ``started_at`` (a :func:`time.monotonic` time) or from now. The one place a deadline
    becomes a time: finding the pods and the execs then share what is left of it."""
    if deadline is None:
        return None
    now = anyio.current_time()
    # anyio's clock on asyncio is the loop's, which need not be time.monotonic().
    begun = now if started_at is None else started_at + (now - time.monotonic())
    return begun + deadline


# -- configuration errors in the caller's words ----------------------------------------------
# The credential loader speaks kubectl's flags (--kubeconfig, --context), which are the
# magic's too; a Python caller passes keyword arguments instead.

_START_A_SANDBOX = {
    True: "or start the embedded sandbox cluster: %pod_sandbox start",
    False: "or start a local sandbox cluster: sandbox = podmagic.sandbox.Sandbox().start(), "
    "then Cluster(kubeconfig=sandbox.kubeconfig)",
}


def _no_kubeconfig_anywhere(kubeconfig: str | os.PathLike[str] | None) -> bool:
    """No kubeconfig was given and none exists where kubectl looks (KUBECONFIG, ~/.kube)."""
    if kubeconfig is not None:
        return False
    listed = os.environ.get("KUBECONFIG", "")
    paths = [p for p in listed.split(os.pathsep) if p] if listed else [DEFAULT_KUBECONFIG]
    return not any(os.path.exists(os.path.expanduser(path)) for path in paths)


# Every other message is written once, in the magic's flags (-A, -n, --pick 3, --timeout):
# the engine's modules are shared by both callers. A Python caller reads them as the keyword
# arguments it passes instead. Only the words podmagic wrote are rewritten: a kubectl command
# line in a hint ("kubectl get pods -A") keeps kubectl's own flags.
_KUBECTL_COMMAND = re.compile(r"kubectl [^,;()]*")
_BOTH_WORDS = re.compile(r"(--[a-z][\w-]*) \((\w+=\.\.\.)\)")  # "--timeout (timeout=...)"
_BOOL_FLAGS = {
    "-A": "all_namespaces=True",
    "--all-namespaces": "all_namespaces=True",
    "--one": "one=True",
    "--all-containers": "all_containers=True",
    "--include-unready": "include_unready=True",
    "--yes": "yes=True",
}
_VALUE_FLAGS = {
    "-n": "namespace=",
    "--namespace": "namespace=",
    "-l": "selector=",
    "-c/--container": "container=",
    "-c": "container=",
    "-P/--max-concurrency": "max_concurrency=",
    "-P": "max_concurrency=",
    "--max-concurrency": "max_concurrency=",
    "--field-selector": "field_selector=",
    "--pick": "pick=",
    "--timeout": "timeout=",
    "--deadline": "deadline=",
    "--retries": "retries=",
    "--ok-exit": "ok_exit=",
    "--context": "context=",
    "--kubeconfig": "kubeconfig=",
}
_ANY_FLAG = re.compile(
    r"(?<![\w/-])("
    + "|".join(re.escape(flag) for flag in sorted({*_BOOL_FLAGS, *_VALUE_FLAGS}, key=len)[::-1])
    + r")(?![\w/-])(?: ('[^'\n]*'|NAME|N|-?\d+(?:\.\d+)?(?![\w-])|[\w./]+=[^\s;)]+))?"
)


# The engine checks its options in keyword words ("timeout must be a positive number of
# seconds, got -5.0"); the magic reads them back as the flag that set the value.
_OPTION_PROBLEM = re.compile(r"(\w+) (must .*), got (\S+)\Z")


def _flag_of(keyword: str) -> str | None:
    """The magic's flag for a keyword argument, both spellings where it has two
    (``max_concurrency`` → ``-P/--max-concurrency``)."""
    flags = [flag for flag, argument in _VALUE_FLAGS.items() if argument == f"{keyword}="]
    return max(flags, key=len) if flags else None


def _as_typed(value: object) -> str:
    """A number as a user types it: ``-5``, not the ``-5.0`` argparse made of it."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def option_in_flag_words(error: ValueError, given: Mapping[str, object]) -> str:
    """An option check's message in the magic's words: the flag and the value typed for
    it (``-P/--max-concurrency must be at least 1, got 0``). ``given`` holds the values
    the flags gave; a message about anything else is returned as it was."""
    text = str(error)
    match = _OPTION_PROBLEM.match(text)
    flag = _flag_of(match.group(1)) if match else None
    if match is None or flag is None or match.group(1) not in given:
        return text
    return f"{flag} {match.group(2)}, got {_as_typed(given[match.group(1)])}"


def _flag_as_argument(match: re.Match[str]) -> str:
    flag, value = match.group(1), match.group(2)
    if flag in _BOOL_FLAGS:
        return _BOOL_FLAGS[flag] + (f" {value}" if value else "")
    argument = _VALUE_FLAGS[flag]
    if value is None:
        return argument
    if value.startswith("'"):  # quoted for the shell-like line: -l 'tier in (a,b)'
        return f'{argument}"{value[1:-1]}"'
    if value == "NAME" or "=" in value:
        return f'{argument}"{value}"'
    return argument + value


def _as_python_words(text: str) -> str:
    """``text`` with the magic's flags as keyword arguments (``-A`` → ``all_namespaces=True``,
    ``--pick 0`` → ``pick=0``), kubectl command lines left alone."""
    text = _BOTH_WORDS.sub(r"\2", text)
    out, last = [], 0
    for command in _KUBECTL_COMMAND.finditer(text):
        out.append(_ANY_FLAG.sub(_flag_as_argument, text[last : command.start()]))
        out.append(command.group())
        last = command.end()
    out.append(_ANY_FLAG.sub(_flag_as_argument, text[last:]))
    return "".join(out)


def _as_magic_words(text: str) -> str:
    """``text`` with the flag alone where a message names both (``--timeout (timeout=...)``)."""
    return _BOTH_WORDS.sub(r"\1", text)


def in_words_of(error: PodmagicError, *, magic: bool) -> PodmagicError:
    """``error`` (changed in place: its type and fields stay) in its caller's words: the
    magic's flags from ``%pod``, keyword arguments from Python."""
    reword = _as_magic_words if magic else _as_python_words
    text = str(error)
    new_text = reword(text)
    if new_text != text:
        error.args = (new_text, *error.args[1:])
        if error.hint:
            error.hint = reword(error.hint)
    return error


def _also_all_pods(error: PodmagicError) -> PodmagicError:
    """``error`` (changed in place) with ``try all_namespaces=True`` completed as a call
    that names no pods needs it: ``all_namespaces=True, all_pods=True``."""
    old, new = "try all_namespaces=True", "try all_namespaces=True, all_pods=True"
    text = str(error)
    if old in text:
        error.args = (text.replace(old, new), *error.args[1:])
        if error.hint:
            error.hint = error.hint.replace(old, new)
    return error


def in_callers_words(
    error: ConfigError, kubeconfig: str | os.PathLike[str] | None, *, magic: bool
) -> ConfigError:
    """``error`` as its caller should read it: ``--kubeconfig``/``--context`` from ``%pod``,
    ``kubeconfig=``/``context=`` from Python; and where no kubeconfig exists at all, how to
    get a cluster to try podmagic on (``%pod_sandbox start``, or ``Sandbox`` in Python)."""
    hint = error.hint
    text, tail = str(error), f"; {visible_controls(hint)}" if hint else ""
    message = text[: len(text) - len(tail)] if tail and text.endswith(tail) else text
    if not magic:
        message = _as_python_words(message)
        hint = _as_python_words(hint) if hint else hint
    if _no_kubeconfig_anywhere(kubeconfig):
        hint = f"{hint}, {_START_A_SANDBOX[magic]}" if hint else _START_A_SANDBOX[magic]
    return ConfigError(message, hint=hint)


# {name} or {a.b} as IPython's expansion (and an f-string) writes it; not {{…}}, ${VAR}, \{.
IPYTHON_BRACES: Final = re.compile(r"(?<![{$\\])\{([A-Za-z_]\w*(?:\.\w+)*)\}(?!\})")


def brace_hint(values: Iterable[object], *, magic: bool) -> str | None:
    """How to write the first ``{var}`` found in ``values`` (option texts) so that it gives
    the variable's value: ``{{var}}`` in ``%pod``, an f-string in Python; None if none."""
    for value in values:
        match = IPYTHON_BRACES.search(value) if isinstance(value, str) else None
        if match is None:
            continue
        name = match.group(1)
        if magic:
            return (
                f"{match.group()} is IPython's expansion, which %pod options do not do: write "
                f"{{{{{name}}}}} for the value of {name}"
            )
        return f'{match.group()} is text here; for the value of {name}, write an f-string: f"…{{{name}}}…"'
    return None


def _suggesting(method: _F) -> _F:
    """A misspelt keyword argument to ``method`` is a ``TypeError`` that names the one
    meant (``timout`` → ``did you mean timeout=?``), raised when called, as Python's own."""
    signature = inspect.signature(method)
    names = [name for name in signature.parameters if name != "self"]
    where = method.__qualname__.replace("__init__", "").rstrip(".")

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for key in kwargs:
            if key not in signature.parameters:
                close = difflib.get_close_matches(key, names, n=1, cutoff=0.75)
                raise TypeError(
                    f"{where}() got an unexpected keyword argument {key!r}"
                    + (f"; did you mean {close[0]}=?" if close else f"; help({where}) lists them")
                )
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


_HINTED_ARGUMENTS: Final = ("target", "selector", "field_selector", "namespace", "container")


def _teaching_braces(method: _F) -> _F:
    """A :class:`SelectionError` of ``method`` (``arun``, ``aselect``) that may come from a
    ``{var}`` left in a text argument (a forgotten ``f``) says how to write it."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except SelectionError as error:
            given = signature.bind_partial(*args, **kwargs).arguments
            texts: list[object] = []
            for name in _HINTED_ARGUMENTS:
                value = given.get(name)
                texts.extend(value if isinstance(value, (list, tuple)) else [value])
            hint = brace_hint(texts, magic=bool(getattr(args[0], "_magic_words", False)))
            if hint:
                error.args = (f"{error.args[0]}; {hint}", *error.args[1:])
            raise

    return wrapper  # type: ignore[return-value]


_OK_EXIT_WORD = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def ok_exit_codes(value: object, *, where: str) -> frozenset[int]:
    """The exit codes ``value`` accepts as success: an int, an iterable of ints (``range``
    included), or text of codes and ranges (``"0,1"``, ``"0-2,127"``); one ``ValueError`` line
    starting with ``where`` for anything else. Exit codes are 0 to 255."""
    example = "e.g. 0,1 or 0-2"
    codes: list[int] = []
    if isinstance(value, str):
        for word in value.split(","):
            match = _OK_EXIT_WORD.fullmatch(word)
            if match is None:
                raise ValueError(
                    f"{where} {value!r}: not exit codes; write codes and ranges from 0 to "
                    f"255 separated by commas, {example}"
                )
            low = int(match.group(1))
            high = int(match.group(2)) if match.group(2) else low
            if high < low:
                raise ValueError(f"{where} {value!r}: the range {word.strip()} is backwards")
            if high > 255:
                raise ValueError(f"{where}: exit codes are 0 to 255, got {high} ({example})")
            codes.extend(range(low, high + 1))
    elif _is_int(value):
        codes = [int(value)]  # type: ignore[call-overload]
    elif isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray, Mapping)):
        items = list(value)
        other = next((item for item in items if not _is_int(item)), None)
        if other is not None:
            raise TypeError(f"{where} must hold ints only, not {_kind(other)}")
        codes = [int(item) for item in items]
    else:
        raise TypeError(
            f"{where} must be an int, ints, a range or text such as '0,1', not {_kind(value)}"
        )
    wrong = [code for code in codes if not 0 <= code <= 255]
    if wrong:
        raise ValueError(f"{where}: exit codes are 0 to 255, got {wrong[0]} ({example})")
    if not codes:
        raise ValueError(f"{where} names no exit code ({example})")
    return frozenset(codes)


def _split_targets(target: object, *, where: str) -> tuple[str | list[str] | None, list[PodResult]]:
    """``target`` as names (None when it names none) and earlier results.

    A name is parsed later, as a name; a result is data naming its pod, never text to read.
    Empty results are an error: ``res.failed`` with nothing in it must not mean every pod.
    """
    _check_types(where, {"target": target})
    if target is None or isinstance(target, str):
        return target, []
    if isinstance(target, PodResult):
        return None, [target]
    items = list(target)  # type: ignore[call-overload]
    if not items and isinstance(target, PodResults):
        raise SelectionError(
            "the results given as the target are empty (no pod failed?): nothing to run in"
        )
    names = [item for item in items if isinstance(item, str)]
    results = [item for item in items if isinstance(item, PodResult)]
    if results:
        return names or None, results
    return names, []


def _joined(parts: Sequence[Selection]) -> Selection:
    """Several selections as one: each (pod, container) once, in namespace then natural
    pod-name order, as a single selection lists them."""
    run = {(t.namespace, t.pod, t.container): t for part in parts for t in part.run}
    skipped = {
        (p.namespace, p.pod, p.container): p
        for part in parts
        for p in part.skipped
        if (p.namespace, p.pod, p.container) not in run
    }

    def order(key: tuple[str, str, str | None]) -> tuple[Any, ...]:
        return (key[0], natural_key(key[1]), key[2] or "")

    return Selection(
        run=tuple(run[key] for key in sorted(run, key=order)),
        skipped=tuple(skipped[key] for key in sorted(skipped, key=order)),
        description="; ".join(dict.fromkeys(part.description for part in parts)),
    )


async def _existing_pods(api: KubeApi, namespace: str, names: Sequence[str]) -> set[str]:
    """Which of ``names`` are pods in ``namespace`` now: one LIST (a GET each where RBAC
    grants get but not list)."""
    try:
        listed = await api.list_pods(namespace)
    except ApiError as error:
        if error.status != 403:
            raise
        return {name for name in names if await api.get_pod(namespace, name) is not None}
    return {str((pod.get("metadata") or {}).get("name")) for pod in listed}


def _gone_pods(
    namespace: str, pods: Mapping[str, Sequence[str | None]], there: set[str], reason: str
) -> Selection:
    """The pods of earlier results that no longer exist, as errors (``reason``) of a re-run;
    its header says which."""
    missing = [pod for pod in pods if pod not in there]
    return Selection(
        run=(),
        skipped=tuple(
            SkippedPod(namespace, pod, container, None, reason, is_error=True)
            for pod in missing
            for container in pods[pod]
        ),
        description=f"no longer there: {', '.join(missing)} in namespace {namespace}",
    )


#: A re-run's words for a pod of the results that no longer exists, and for one recreated
#: under its name since (a new uid: a StatefulSet's pod after a delete).
_GONE = "pod no longer exists (deleted, or replaced by new pods since the run)"
_REPLACED = "pod no longer exists (replaced since the run by a new pod of the same name)"


def _without_replaced(
    found: Selection, results: Sequence[PodResult], gone: str | None
) -> Selection:
    """``found`` without the pods recreated under their names since ``results`` ran (their
    uid differs): the results name the pod that ran, not its successor. Each is that pod's
    error in a re-run (``gone``), else a :class:`~podmagic.SelectionError`."""
    uids = {(r.namespace, r.pod): r._ran_at[1] for r in results if r._ran_at and r._ran_at[1]}
    replaced = sorted(
        {
            (t.namespace, t.pod)
            for t in found.run
            if t.pod_uid and uids.get((t.namespace, t.pod), t.pod_uid) != t.pod_uid
        },
        key=lambda key: (key[0], natural_key(key[1])),
    )
    if not replaced:
        return found
    if gone is None:
        namespace, pod = replaced[0]
        more = f" (and {len(replaced) - 1} more)" if len(replaced) > 1 else ""
        raise SelectionError(
            f"pod {quoted(pod)} in namespace {namespace}{more} no longer exists (replaced "
            "since the results' run by a new pod of the same name): the results name the pod "
            f"that ran; to run in the new one, name it ({pod}) instead of the results"
        )
    reason = gone.replace(_GONE, _REPLACED, 1)
    names = ", ".join(f"{namespace}/{pod}" for namespace, pod in replaced)
    return _joined(
        [
            replace(found, run=tuple(t for t in found.run if (t.namespace, t.pod) not in replaced)),
            Selection(
                run=(),
                skipped=tuple(
                    SkippedPod(t.namespace, t.pod, t.container, t.node, reason, is_error=True)
                    for t in found.run
                    if (t.namespace, t.pod) in replaced
                ),
                description=f"replaced since the run: {names}",
            ),
        ]
    )


def _only_containers(found: Selection, pods: Mapping[str, Sequence[str | None]]) -> Selection:
    """``found`` (every container of some pods) cut to the containers ``pods`` wants; a
    container a pod no longer has is an error for that pod, as ``-c`` makes it."""
    run = [t for t in found.run if t.container in pods[t.pod]]
    skipped = [
        replace(pod, container=container)
        for pod in found.skipped
        for container in pods[pod.pod]
        if container is not None
    ]
    for pod, containers in pods.items():
        present = next((t for t in found.run if t.pod == pod), None)
        if present is None:
            continue
        skipped.extend(
            SkippedPod(
                present.namespace,
                pod,
                container,
                present.node,
                f"container {quoted(container)} not found (containers: "
                f"{', '.join(present.containers)})",
                is_error=True,
            )
            for container in containers
            if container is not None and container not in present.containers
        )
    return replace(found, run=tuple(run), skipped=tuple(skipped))


def _targets(target: str | Sequence[str] | None) -> tuple[Target, ...]:
    if target is None:
        return ()
    names = [target] if isinstance(target, str) else list(target)
    return tuple(Target.parse(name) for name in names)


# -- argument types ---------------------------------------------------------------------------
# A wrong type must fail here, in one line naming the argument, and not as a comparison
# TypeError from deep inside the engine (or, worse, run: a str is a Sequence of one-letter
# targets). Messages show types, never values: env and stdin values may be secrets.


def _kind(value: object) -> str:
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_strings(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes, bytearray))
        and all(isinstance(item, str) for item in value)
    )


def _is_targets(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes, bytearray))
        and all(isinstance(item, (str, PodResult)) for item in value)
    )


_CHECKS: dict[str, tuple[Any, str]] = {
    # name: (test, what it must be)
    "context": (lambda v: v is None or isinstance(v, str), "a str or None"),
    "kubeconfig": (lambda v: v is None or isinstance(v, (str, os.PathLike)), "a path or None"),
    "namespace": (lambda v: v is None or isinstance(v, str), "a str or None"),
    "selector": (
        lambda v: v is None or isinstance(v, str),
        'a label selector str such as "app=web", or None',
    ),
    "field_selector": (lambda v: v is None or isinstance(v, str), "a field selector str, or None"),
    "container": (lambda v: v is None or isinstance(v, str), "a container name or None"),
    "workdir": (lambda v: v is None or isinstance(v, str), "a path str or None"),
    "shell": (lambda v: v is None or isinstance(v, str), 'a path str such as "/bin/bash", or None'),
    "timeout": (lambda v: v is None or _is_number(v), "a number of seconds or None"),
    "deadline": (lambda v: v is None or _is_number(v), "a number of seconds or None"),
    "plugin_timeout": (lambda v: v is None or _is_number(v), "a number of seconds or None"),
    "max_concurrency": (lambda v: v is None or _is_int(v), "an int (at least 1) or None"),
    "on_event": (lambda v: v is None or callable(v), "a callable taking one event, or None"),
    "control": (lambda v: v is None or isinstance(v, RunControl), "a RunControl or None"),
    "retries": (_is_int, "an int"),
    "pick": (lambda v: v is None or _is_int(v), "an int or None"),
    "seed": (lambda v: v is None or _is_int(v), "an int or None"),
    "capture_limit": (lambda v: v is None or _is_int(v), "an int (bytes) or None"),
    "capture_budget": (lambda v: v is None or _is_int(v), "an int (bytes) or None"),
    "confirm_above": (lambda v: v is None or _is_int(v), "an int (pods) or None"),
    "protected_contexts": (_is_strings, 'a list of context patterns such as ["*prod*"]'),
    "target": (
        lambda v: v is None or isinstance(v, (str, PodResult)) or _is_targets(v),
        (
            'a pod or workload name ("web-1", "deploy/web"), results (PodResults, PodResult), '
            "a list of them, or None"
        ),
    ),
    "env": (
        lambda v: (
            v is None
            or (
                isinstance(v, Mapping)
                and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
            )
        ),
        "a mapping of str to str (convert numbers with str())",
    ),
    "command": (
        lambda v: isinstance(v, str) or (_is_strings(v) and len(v) > 0),
        "a shell script str, or a non-empty list of str (a direct argv)",
    ),
    **{
        flag: (lambda v: isinstance(v, bool), "True or False")
        for flag in (
            "tty",
            "yes",
            "all_pods",
            "all_namespaces",
            "include_unready",
            "one",
            "all_containers",
        )
    },
}


_NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_]+")


def env_name_start(text: str) -> str | None:
    """What of ``text``, meant as an environment variable name, an error may show: its
    leading name characters when something else follows them (``PASSWORD:hunter2`` gives
    ``PASSWORD``); otherwise nothing, as the whole text may be a value typed on its own."""
    match = _NAME_CHARACTERS.match(text)
    return match.group() if match and match.end() < len(text) else None


def _key_shown(key: str) -> str:
    if _ENV_NAME.match(key):
        return f"env[{key!r}]"
    start = env_name_start(key)
    return "a key" + (f" starting {start!r}" if start else "")


def _env_problem(env: Mapping[Any, Any]) -> str:
    """Which entry of a mapping ``env`` is not str to str: its key when it is a name, and
    the types, never the value (nor a key that is not a name: it may be ``NAME:VALUE``)."""
    for key, value in env.items():
        if not isinstance(key, str):
            return f"a key is {_kind(key)}"
        if not isinstance(value, str):
            return f"{_key_shown(key)} is {_kind(value)}"
    return ""


def _check_env_names(where: str, env: Mapping[str, str] | None) -> None:
    """One ``ValueError`` for a key that is not a variable name, showing no more of it than
    :func:`env_name_start` allows."""
    for key in env or {}:
        if not _ENV_NAME.match(key):
            raise ValueError(
                f"{where}: env has {_key_shown(key)} that is not a variable name (the rest is "
                "not shown, as it may hold a value); use letters, digits and _, not starting "
                'with a digit, e.g. env={"LOG_LEVEL": "debug"}'
            )


def _check_types(where: str, arguments: Mapping[str, Any]) -> None:
    """Raise one ``TypeError`` naming the first argument of the wrong type."""
    for name, value in arguments.items():
        check = _CHECKS.get(name)
        if check is not None and value is not CLUSTER_DEFAULT and not check[0](value):
            if name == "env" and isinstance(value, Mapping):
                raise TypeError(
                    f"{where}: env must be a mapping of str to str, but {_env_problem(value)} "
                    "(convert numbers with str())"
                )
            raise TypeError(f"{where}: {name} must be {check[1]}, not {_kind(value)}")


def _check_stdin(where: str, stdin: object) -> None:
    if stdin is None or isinstance(stdin, (str, bytes, bytearray, memoryview, io.IOBase)):
        return
    if not callable(getattr(stdin, "read", None)):
        raise TypeError(
            f"{where}: stdin must be str, bytes or a file opened for reading, not {_kind(stdin)}"
        )


class Cluster:
    """Run commands in the pods of one cluster context.

    Args:
        context: kubeconfig context to use (default: the current one). It is resolved once
            and pinned: a later ``kubectl config use-context`` elsewhere does not move it.
        kubeconfig: path to a kubeconfig (default: ``KUBECONFIG``, then ``~/.kube/config``,
            then in-cluster credentials).
        namespace: default namespace (default: the context's, else ``default``).
        max_concurrency, timeout: defaults for :meth:`run`.
        capture_limit: bytes of stdout and of stderr kept per exec (default 16 MiB; None: all).
        capture_budget: bytes kept across a whole run (default 128 MiB; None: no budget). A
            fan-out shares it: each exec keeps at most ``budget / (2 × execs)`` bytes per
            stream (at least 16 KiB), so 1,000 pods printing 1 MiB each stay in bounded memory.
            What is dropped is counted in each result's ``stdout_dropped``/``stderr_dropped``.
        protected_contexts: context patterns (shell-style, case-insensitive; default
            ``["*prod*"]``, as ``PodMagic.protected_contexts``) where every run needs
            ``yes=True``. ``[]`` protects none.
        confirm_above: runs in more pods than this (default 50, as ``PodMagic.confirm_above``)
            need ``yes=True``; None sets no limit.
        plugin_timeout: seconds an exec credential plugin (``users[].user.exec`` in the
            kubeconfig) may run before it is stopped and the run fails naming it (default 60;
            None: no limit).

    ``timeout`` bounds more than the command: each API request made to find the pods takes
    at most that long as a whole — an exec credential plugin it waits for included, which is
    stopped then (so a plugin gets the smaller of ``plugin_timeout`` and ``timeout``) —
    and an exec's connecting and upgrade count within its per-pod time. Without it, a request
    may take 10 s to connect, 15 s without a byte of its answer, and 60 s in all.

    A Cluster keeps one HTTP session per event loop across its runs (connections and TLS
    sessions are reused; credentials are still read for every request). A session closes
    with its loop, at interpreter exit, or with :meth:`close` / :meth:`aclose` — also at the
    end of ``with Cluster(...)`` or ``async with Cluster(...)``; a later run opens a new one.
    """

    @classmethod
    def _from_credentials(cls, credentials: ClusterCredentials, **settings: Any) -> Cluster:
        """A Cluster on credentials already loaded: ``%pod`` loads them itself, to word a
        kubeconfig problem with its own flags. Not an argument of ``Cluster()``: the
        credentials handle is no part of the public API."""
        token = _LOADED.set(credentials)
        try:
            return cls(**settings)
        finally:
            _LOADED.reset(token)

    #: Errors in the magic's flags (``--pick 3``) instead of keyword arguments (``pick=3``):
    #: set on the Clusters ``%pod`` makes.
    _magic_words: bool = False

    @_suggesting
    def __init__(
        self,
        context: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        namespace: str | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float | None = None,
        capture_limit: int | None = DEFAULT_CAPTURE_LIMIT,
        capture_budget: int | None = DEFAULT_CAPTURE_BUDGET,
        protected_contexts: Sequence[str] = DEFAULT_PROTECTED_CONTEXTS,
        confirm_above: int | None = DEFAULT_CONFIRM_ABOVE,
        plugin_timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
    ) -> None:
        _check_types(
            "Cluster()",
            {
                "context": context,
                "kubeconfig": kubeconfig,
                "namespace": namespace,
                "max_concurrency": max_concurrency,
                "timeout": timeout,
                "capture_limit": capture_limit,
                "capture_budget": capture_budget,
                "protected_contexts": protected_contexts,
                "confirm_above": confirm_above,
                "plugin_timeout": plugin_timeout,
            },
        )
        if plugin_timeout is not None and not plugin_timeout > 0:
            raise ValueError(
                f"Cluster(): plugin_timeout must be a positive number of seconds, "
                f"got {plugin_timeout}"
            )
        self.protected_contexts: tuple[str, ...] = tuple(protected_contexts)
        self.confirm_above = confirm_above
        credentials = _LOADED.get()
        if credentials is None:
            try:
                credentials = load_credentials(
                    context=context, kubeconfig=kubeconfig, plugin_timeout=plugin_timeout
                )
            except ConfigError as error:
                raise in_callers_words(error, kubeconfig, magic=False) from None
        self.credentials = credentials
        self.namespace = namespace or self.credentials.namespace
        self.defaults = ExecOptions(
            max_concurrency=max_concurrency,
            timeout=timeout,
            capture_limit=capture_limit,
            capture_budget=capture_budget,
        )
        # One HTTP session per event loop, kept across runs (see _sessions.py).
        # Made from the credentials alone: a closure over self would make a reference cycle,
        # and the garbage collector could then finalize a session before it is closed.
        self._sessions = LoopSessions(partial(KubeApi, self.credentials))

    @classmethod
    def many(
        cls,
        contexts: str | Sequence[str],
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> Clusters:
        """Several contexts as one: a :class:`~podmagic.Clusters` whose ``run``/``arun``/
        ``select`` work across all of them at once, the results merged into one
        :class:`~podmagic.PodResults` (with a ``context`` column in every table).

        ``contexts`` is a context name, a glob over the kubeconfig's contexts
        (``"staging-*"``, case-sensitive), or a list of them (each counted once). A glob that
        matches nothing, or a name the kubeconfig lacks, is a :class:`~podmagic.ConfigError`
        listing the contexts. ``settings`` are those of ``Cluster(...)`` and apply to each
        context: ``max_concurrency`` caps each cluster's execs, and every protected context a
        run would reach needs ``yes=True``.
        """
        from ._many import Clusters

        return Clusters(contexts, kubeconfig=kubeconfig, **settings)

    @property
    def context(self) -> str:
        """The pinned context name."""
        return self.credentials.context

    def __repr__(self) -> str:
        return f"<Cluster context={self.context!r} namespace={self.namespace!r} server={self.credentials.server}>"

    # -- selection ---------------------------------------------------------------------------

    @_documented
    @_suggesting
    def query(
        self,
        target: str | Sequence[str] | None = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        include_unready: bool = False,
        one: bool = False,
        pick: int | None = None,
        container: str | None = None,
        all_containers: bool = False,
        seed: int | None = None,
    ) -> TargetQuery:
        """A :class:`~podmagic.TargetQuery` from the familiar arguments; checks the target
        syntax and the argument types, and contacts nothing."""
        _check_types(
            "Cluster.query()",
            {
                "target": target,
                "selector": selector,
                "field_selector": field_selector,
                "namespace": namespace,
                "all_namespaces": all_namespaces,
                "include_unready": include_unready,
                "one": one,
                "pick": pick,
                "container": container,
                "all_containers": all_containers,
                "seed": seed,
            },
        )
        if _split_targets(target, where="Cluster.query()")[1]:
            raise TypeError(
                "Cluster.query(): target must be names here; results are targets of run() and "
                "select(), which look their pods up again"
            )
        try:
            return TargetQuery(
                targets=_targets(target),
                label_selector=selector,
                field_selector=field_selector,
                namespace=namespace,
                all_namespaces=all_namespaces,
                include_unready=include_unready,
                one=one,
                pick=pick,
                container=container,
                all_containers=all_containers,
                seed=seed,
            )
        except PodmagicError as error:
            raise in_words_of(error, magic=self._magic_words) from None

    @_documented
    @_suggesting
    @_teaching_braces
    async def aselect(
        self,
        target: TargetArg = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        include_unready: bool = False,
        one: bool = False,
        pick: int | None = None,
        container: str | None = None,
        all_containers: bool = False,
        seed: int | None = None,
        deadline: float | None = None,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
    ) -> Selection:
        """Find the pods a run would use, and run nothing: a :class:`~podmagic.Selection`
        whose ``run`` and ``skipped`` list them, for ``run(selection=...)``.

        Past ``deadline``, finding the pods (throttled retries included) gives up with a
        :class:`~podmagic.SelectionError`.
        """
        names, results = _split_targets(target, where="Cluster.select()")
        request = self.query(
            names,
            selector=selector,
            field_selector=field_selector,
            namespace=namespace,
            all_namespaces=all_namespaces,
            include_unready=include_unready,
            one=one,
            pick=pick,
            container=container,
            all_containers=all_containers,
            seed=seed,
        )
        _check_types("Cluster.select()", {"deadline": deadline, "timeout": timeout})
        try:
            async with self._api(
                self.defaults.timeout if timeout is CLUSTER_DEFAULT else timeout
            ) as api:
                selection = await self._resolve(
                    api, request, deadline, _deadline_at(deadline), results
                )
        except PodmagicError as error:
            raise in_words_of(error, magic=self._magic_words) from None
        # Remembered for run(selection=...): no target and no label selector is every pod.
        return replace(
            selection,
            untargeted=not request.targets and request.label_selector is None and not results,
        )

    def _api(self, timeout: float | None) -> KubeApi:
        """The API client for one run on the running loop's pooled session, its connect and
        read limits within the per-pod ``timeout`` (closing it keeps the session open)."""
        return self._sessions.borrow(timeout if timeout is not None and timeout > 0 else None)

    # -- the session ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close this Cluster's HTTP connections: the current event loop's at once, other
        loops' on those loops. A later run opens new ones."""
        await self._sessions.aclose()

    def close(self) -> None:
        """Close this Cluster's HTTP connections on every event loop (blocking; a later run
        opens new ones). Sessions also close with their loop, and at interpreter exit."""
        self._sessions.close()

    async def __aenter__(self) -> Cluster:  # noqa: PYI034 - Self needs Python 3.11
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __enter__(self) -> Cluster:  # noqa: PYI034 - Self needs Python 3.11
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _resolve(
        self,
        api: KubeApi,
        query: TargetQuery,
        deadline: float | None,
        until: float | None,
        results: Sequence[PodResult] = (),
        gone: str | None = None,
    ) -> Selection:
        """Find the pods; ``until`` is when ``deadline`` (as asked, for messages) passes;
        ``results``: earlier results named as targets; ``gone``: see :meth:`_find`."""
        if deadline is None or until is None:
            return await self._find(api, query, results, gone)
        with noting_credential_waits() as waits:
            with anyio.move_on_after(until - anyio.current_time()):
                return await self._find(api, query, results, gone)
        asked = format_seconds(deadline)
        if waits:
            # The time ran out during a login, not at the API server: name what was running.
            raise SelectionError(
                f"the overall deadline of {asked}s passed while waiting for the {waits[0]} "
                f"(finding the pods: {query.describe(self.namespace)}); it was stopped",
                hint="run the plugin by hand to see what it waits for (a login, the network); "
                "allow more time with --deadline (deadline=...)",
            )
        raise SelectionError(
            f"the overall deadline of {asked}s passed while finding the pods "
            f"({query.describe(self.namespace)})",
            hint="allow more time with --deadline (deadline=...); if that was ample, the API "
            "server is slow or unreachable",
        )

    async def _find(
        self,
        api: KubeApi,
        query: TargetQuery,
        results: Sequence[PodResult],
        gone: str | None = None,
    ) -> Selection:
        """The pods ``query`` names, and those of ``results``, each looked up again in its
        own namespace, for its own container (``query.container``/``all_containers``
        override that): as for names, one GET per pod up to a few, else one LIST per
        namespace, whatever containers the results name.

        A pod of ``results`` that no longer exists is a :class:`~podmagic.SelectionError`,
        or with ``gone`` (a re-run) that pod's error, ``gone`` its reason: the others run."""
        if not results:
            return await resolve(api, query, default_namespace=self.namespace)
        self._check_results(query, results)
        override = query.container is not None or query.all_containers
        # namespace → pod → the containers wanted (None: the query's choice, or the default)
        wanted: dict[str, dict[str, list[str | None]]] = {}
        for result in results:
            containers = wanted.setdefault(result.namespace, {}).setdefault(result.pod, [])
            container = None if override else result.container
            if container not in containers:
                containers.append(container)
        parts: list[Selection] = []
        if query.targets:
            parts.append(await resolve(api, query, default_namespace=self.namespace))
        for namespace, pods in wanted.items():
            try:
                parts.extend(await self._found_in(api, query, namespace, pods))
            except SelectionError as error:
                if gone is None or " not found" not in str(error):
                    raise
                # Only now (the first look-up said so) find which pods are gone.
                there = await _existing_pods(api, namespace, list(pods))
                left = {pod: wants for pod, wants in pods.items() if pod in there}
                if left:
                    parts.extend(await self._found_in(api, query, namespace, left))
                parts.append(_gone_pods(namespace, pods, there, gone))
        return _without_replaced(_joined(parts), results, gone)

    async def _found_in(
        self,
        api: KubeApi,
        query: TargetQuery,
        namespace: str,
        pods: Mapping[str, Sequence[str | None]],
    ) -> list[Selection]:
        """The pods of earlier results in one namespace (pod → containers wanted, None: the
        query's choice or the default), looked up again by name."""
        parts: list[Selection] = []
        named = [pod for pod, containers in pods.items() if any(containers)]
        chosen = [pod for pod, containers in pods.items() if None in containers]
        if named:
            # Every container of these pods in one look-up, then only those wanted.
            found = await self._find_pods(api, query, namespace, named, all_containers=True)
            parts.append(_only_containers(found, pods))
        if chosen:
            parts.append(
                await self._find_pods(
                    api, query, namespace, chosen, all_containers=query.all_containers
                )
            )
        return parts

    async def _find_pods(
        self,
        api: KubeApi,
        query: TargetQuery,
        namespace: str,
        pods: Sequence[str],
        *,
        all_containers: bool,
    ) -> Selection:
        """The pods of earlier results in ``namespace``, looked up again by name."""
        group = TargetQuery(
            targets=tuple(Target.parse(name) for name in pods),
            field_selector=query.field_selector,
            namespace=namespace,
            include_unready=query.include_unready,
            container=None if all_containers else query.container,
            all_containers=all_containers,
        )
        try:
            return await resolve(api, group, default_namespace=self.namespace)
        except SelectionError as error:
            text = str(error)
            if " not found" not in text:
                raise
            raise SelectionError(
                text.replace(
                    " not found",
                    " not found (a pod of the results given as the target: deleted or "
                    "renamed since?)",
                    1,
                )
            ) from None

    def _check_results(self, query: TargetQuery, results: Sequence[PodResult]) -> None:
        """Refuse results from another context, and choices that do not go with them."""
        if query.label_selector is not None and query.label_selector.strip():
            raise SelectionError("give pods (names or results) or a selector (-l), not both")
        if query.one or query.pick is not None:
            raise SelectionError(
                "--one and --pick N pick among the pods found; results name their pods "
                "already: leave them out, or pass a slice of the results (results[:3])"
            )
        contexts = sorted({r.context for r in results})
        if len(contexts) > 1:
            raise SelectionError(
                f"the results come from {len(contexts)} contexts ({', '.join(contexts)}); a run "
                "is in one context: run each context's own, e.g. "
                f"[r for r in results if r.context == {contexts[0]!r}]"
            )
        if contexts[0] == self.context:
            self._check_server(results)
        else:
            where = (
                f"with --context {contexts[0]}"
                if self._magic_words
                else f"with Cluster({contexts[0]!r})"
            )
            raise SelectionError(
                f"the results come from context {quoted(contexts[0])}, and this run is in "
                f"context {quoted(self.context)}; run them there {where}, or with "
                "results.rerun(), which runs where they came from"
            )

    def _check_server(self, results: Sequence[PodResult]) -> None:
        """Refuse results that ran in another cluster under this context's name (another
        kubeconfig naming its context so): their pods are not this cluster's."""
        here = public_server(self.credentials.server)
        there = sorted({r._ran_at[0] for r in results if r._ran_at is not None} - {here})
        if there:
            name = quoted(self.context)
            again = "--kubeconfig" if self._magic_words else "Cluster(kubeconfig=...)"
            raise SelectionError(
                f"the results come from the API server {there[0]} (context {name} there), and "
                f"context {name} here is at {here}, another cluster: run them there "
                f"(results.rerun(), or {again} with the kubeconfig they came from)"
            )

    @_documented
    @_suggesting
    def select(
        self,
        target: TargetArg = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        include_unready: bool = False,
        one: bool = False,
        pick: int | None = None,
        container: str | None = None,
        all_containers: bool = False,
        seed: int | None = None,
        deadline: float | None = None,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
    ) -> Selection:
        """Blocking :meth:`aselect`: find the pods a run would use, and run nothing."""
        return run_blocking(
            lambda: self.aselect(
                target,
                selector=selector,
                field_selector=field_selector,
                namespace=namespace,
                all_namespaces=all_namespaces,
                include_unready=include_unready,
                one=one,
                pick=pick,
                container=container,
                all_containers=all_containers,
                seed=seed,
                deadline=deadline,
                timeout=timeout,
            )
        )

    # -- files ---------------------------------------------------------------------------------

    def copy_to(
        self,
        local: str | os.PathLike[str],
        remote: str,
        target: TargetArg = None,
        *,
        selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        container: str | None = None,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
        max_concurrency: int | None = None,
        yes: bool = False,
        on_event: EventCallback | None = None,
    ) -> CopyResults:
        """Copy the local file or folder ``local`` to ``remote`` in every pod ``target`` names
        (as :meth:`run` finds them), over tar through exec like ``kubectl cp``: a
        :class:`~podmagic.CopyResults` with each file's size and SHA-256; a pod without
        ``tar`` is that pod's error. ``on_event`` gets the copy as one run's events (each
        pod's progress as its lines; what the live view of ``%pod_cp`` shows)."""
        return send(
            self,
            local,
            remote,
            target=target,
            selector=selector,
            namespace=namespace,
            all_namespaces=all_namespaces,
            container=container,
            timeout=timeout,
            max_concurrency=max_concurrency,
            yes=yes,
            on_event=on_event,
        )

    def copy_from(
        self,
        remote: str,
        local_dir: str | os.PathLike[str],
        target: TargetArg = None,
        *,
        selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        container: str | None = None,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
        max_concurrency: int | None = None,
        yes: bool = False,
        on_event: EventCallback | None = None,
    ) -> CopyResults:
        """Fetch ``remote`` (a file or folder) from every pod ``target`` names into
        ``local_dir/<context>/<namespace>/<pod>/``, binary-exact, streamed to disk; members
        of the archive that would land outside that folder are refused (``refused``).
        ``on_event`` gets the copy as one run's events (how much each pod sent, never the
        archive's bytes)."""
        return fetch(
            self,
            remote,
            local_dir,
            target=target,
            selector=selector,
            namespace=namespace,
            all_namespaces=all_namespaces,
            container=container,
            timeout=timeout,
            max_concurrency=max_concurrency,
            yes=yes,
            on_event=on_event,
        )

    # -- logs ----------------------------------------------------------------------------------

    async def alogs(
        self,
        target: TargetArg = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        container: str | None = None,
        since: str | float | timedelta | None = None,
        since_time: datetime | None = None,
        tail: int | None = None,
        grep: str | re.Pattern[str] | None = None,
        follow: bool = False,
        previous: bool = False,
        limit_bytes: int | None = None,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
        max_concurrency: int | None = None,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
    ) -> PodLogs:
        """Read the logs of the pods ``target`` names (as :meth:`run` finds them: a pod,
        ``deploy/NAME``, a selector, earlier results), every pod at once: a
        :class:`~podmagic.PodLogs`, lines sorted by time, ``to_dataframe()`` one row per line.

        Without ``container``, every container of each pod is read (as stern does); not-ready,
        completed and failed pods are read too (their logs are what is wanted most often).
        ``since`` (``10m``, ``1h30m``, seconds, a ``timedelta``), ``since_time``, ``tail``,
        ``previous`` and ``limit_bytes`` are the ``kubectl logs`` options; ``grep`` keeps the
        lines a Python regular expression finds (client-side). ``follow`` streams until the
        pods' processes end, ``timeout`` seconds pass, or ``control`` cancels; without it
        ``timeout`` bounds each request. A container whose log cannot be read is a result with
        the reason (``PodLogs.errors``), not an exception.
        """
        options = LogOptions(
            since_seconds=parse_since(since),
            since_time=since_time,
            tail=tail,
            grep=compile_grep(grep),
            follow=follow,
            previous=previous,
            limit_bytes=limit_bytes,
            timeout=None if timeout is CLUSTER_DEFAULT else timeout,
            max_concurrency=max_concurrency or self.defaults.max_concurrency,
        )
        request_timeout = self.defaults.timeout if timeout is CLUSTER_DEFAULT else timeout
        selection = await self.aselect(
            target,
            selector=selector,
            field_selector=field_selector,
            namespace=namespace,
            all_namespaces=all_namespaces,
            include_unready=True,
            container=container,
            all_containers=container is None,
            timeout=None if follow else request_timeout,
        )
        async with self._api(None if follow else request_timeout) as api:
            return await read_logs(
                api, self.context, selection, options, on_event=on_event, control=control
            )

    def logs(
        self,
        target: TargetArg = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        container: str | None = None,
        since: str | float | timedelta | None = None,
        since_time: datetime | None = None,
        tail: int | None = None,
        grep: str | re.Pattern[str] | None = None,
        follow: bool = False,
        previous: bool = False,
        limit_bytes: int | None = None,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
        max_concurrency: int | None = None,
        on_event: EventCallback | None = None,
    ) -> PodLogs:
        """Blocking :meth:`alogs`: the logs of every pod ``target`` names, sorted by time.
        Ctrl-C during a ``follow`` stops it and returns what was read."""
        control = RunControl()
        return run_blocking(
            lambda: self.alogs(
                target,
                selector=selector,
                field_selector=field_selector,
                namespace=namespace,
                all_namespaces=all_namespaces,
                container=container,
                since=since,
                since_time=since_time,
                tail=tail,
                grep=grep,
                follow=follow,
                previous=previous,
                limit_bytes=limit_bytes,
                timeout=timeout,
                max_concurrency=max_concurrency,
                on_event=on_event,
                control=control,
            ),
            on_interrupt=lambda: control.cancel("interrupted"),
        )

    # -- running -----------------------------------------------------------------------------

    @_shown_readably
    def command(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        shell: str | None = "/bin/sh",
        stdin: StdinSource = None,
        tty: bool = False,
    ) -> RemoteCommand:
        """Build the remote command: a string is a shell script, a sequence a direct argv.

        ``tty``: the command gets a terminal; a script given ``stdin`` then goes through the
        loader, which keeps the terminal's echo off, so the data is not echoed back.
        """
        _check_types(
            "Cluster.command()",
            {"command": command, "env": env, "workdir": workdir, "shell": shell},
        )
        _check_stdin("Cluster.command()", stdin)
        _check_env_names("Cluster.command()", env)
        data = _stdin_bytes(stdin)
        if isinstance(command, str):
            if shell is None:
                raise ValueError(
                    "a shell script needs a shell; pass the command as a list to run it directly"
                )
            return build_command(
                script=command, shell=shell, env=env, workdir=workdir, stdin=data, tty=tty
            )
        return build_command(
            argv=list(command),
            shell=shell or "/bin/sh",
            env=env,
            workdir=workdir,
            stdin=data,
            tty=tty,
        )

    @_documented
    @_suggesting
    @_teaching_braces
    async def arun(
        self,
        command: str | Sequence[str],
        target: TargetArg = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        include_unready: bool = False,
        one: bool = False,
        pick: int | None = None,
        container: str | None = None,
        all_containers: bool = False,
        seed: int | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        shell: str | None = "/bin/sh",
        stdin: StdinSource = None,
        tty: bool = False,
        python: bool = False,
        python_bin: str = DEFAULT_PYTHON,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
        deadline: float | None = None,
        max_concurrency: int | None = None,
        retries: int = 0,
        ok_exit: int | str | Iterable[int] = 0,
        capture_limit: int | None | ClusterDefault = CLUSTER_DEFAULT,
        capture_budget: int | None | ClusterDefault = CLUSTER_DEFAULT,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
        selection: Selection | None = None,
        yes: bool = False,
        all_pods: bool = False,
        started_at: float | None = None,
    ) -> PodResults:
        """Run ``command`` in every pod the target names; one result per pod × container.

        Returns :class:`~podmagic.PodResults` whatever happens in the pods (failures and
        timeouts are results; ``.check()`` raises for them). Raised before anything runs:
        ``TypeError``/``ValueError`` for bad arguments, :class:`~podmagic.SelectionError`
        when the target finds nothing usable, :class:`~podmagic.RefusedError` from the
        guards — a protected context or more than ``confirm_above`` pods need ``yes=True``;
        naming no target and no selector needs ``all_pods=True`` (or ``selector=""``), since
        running in every pod of the namespace is rarely what a call that forgot its target
        meant.
        """
        _check_types(
            "Cluster.run()",
            {
                "command": command,
                "target": target,
                "env": env,
                "workdir": workdir,
                "shell": shell,
                "tty": tty,
                "timeout": timeout,
                "deadline": deadline,
                "max_concurrency": max_concurrency,
                "retries": retries,
                "capture_limit": capture_limit,
                "capture_budget": capture_budget,
                "yes": yes,
                "all_pods": all_pods,
                "on_event": on_event,
                "control": control,
            },
        )
        query: dict[str, Any] = {
            "selector": selector,
            "field_selector": field_selector,
            "namespace": namespace,
            "all_namespaces": all_namespaces,
            "include_unready": include_unready,
            "one": one,
            "pick": pick,
            "container": container,
            "all_containers": all_containers,
            "seed": seed,
        }
        _check_types("Cluster.run()", query)
        _check_stdin("Cluster.run()", stdin)
        _check_env_names("Cluster.run()", env)
        if selection is not None and not isinstance(selection, Selection):
            raise TypeError(
                f"Cluster.run(): selection must come from Cluster.select(), not {_kind(selection)}"
            )
        names, results = _split_targets(target, where="Cluster.run()")
        request = self.query(names, **query)
        if selection is not None:
            given = [name for name, value in query.items() if value not in (None, False)]
            if target is not None:
                given.insert(0, "target")
            if given:
                raise ValueError(
                    f"Cluster.run(): selection= already holds the pods to run in; drop "
                    f"{', '.join(given)}, or pass {'it' if len(given) == 1 else 'them'} to "
                    "select() instead"
                )
        # A field selector alone names no pods (status.phase=Running is most of them): like
        # %pod, only a target or a label selector does; selector="" says "every pod" on purpose.
        named = bool(request.targets) or selector is not None or bool(results)
        if all_pods and (named or (selection is not None and not selection.untargeted)):
            raise ValueError(
                "Cluster.run(): all_pods=True means every pod of the namespace; "
                "drop it, or drop the target, selector and selection"
            )
        program = None
        if python:
            if tty:
                raise ValueError("Cluster.run(): python=True runs without a terminal; drop tty")
            program = PythonProgram(
                command,  # type: ignore[arg-type]  # PythonProgram says when it is no str
                python_bin,
                env=env,
                workdir=workdir,
                stdin=_stdin_bytes(stdin),
            )
            remote = program.command()
        else:
            remote = self.command(
                command, env=env, workdir=workdir, shell=shell, stdin=stdin, tty=tty
            )
        options = replace(
            self.defaults,
            tty=tty,
            deadline=deadline,
            retries=retries,
            ok_exit=ok_exit_codes(ok_exit, where="Cluster.run(): ok_exit"),
            max_concurrency=self.defaults.max_concurrency
            if max_concurrency is None
            else max_concurrency,
            timeout=self.defaults.timeout if timeout is CLUSTER_DEFAULT else timeout,
            capture_limit=(
                self.defaults.capture_limit if capture_limit is CLUSTER_DEFAULT else capture_limit
            ),
            capture_budget=(
                capture_budget
                if capture_budget is not CLUSTER_DEFAULT
                else self.defaults.capture_budget
                if capture_limit is CLUSTER_DEFAULT
                else None
            ),
        )
        shown = (shell or "/bin/sh", "-c", command) if isinstance(command, str) else tuple(command)
        if program is not None:
            shown = program.shown
        return await self._arun_prepared(
            request,
            results,
            selection,
            _RunOrigin(self, remote, options, shown, program),
            started_at,
            named=named,
            all_pods=all_pods,
            yes=yes,
            control=control,
            on_event=on_event,
        )

    async def _arun_prepared(
        self,
        request: TargetQuery,
        results: Sequence[PodResult],
        selection: Selection | None,
        origin: _RunOrigin,
        started_at: float | None,
        *,
        named: bool,
        all_pods: bool,
        yes: bool,
        control: RunControl | None,
        on_event: EventCallback | None,
        gone: str | None = None,
    ) -> PodResults:
        """:meth:`arun` once the command and options are built (a re-run starts here): find
        the pods (unless given), apply the guards, run; errors in the caller's words, the
        deadline counted from ``started_at``; ``gone``: see :meth:`_find`."""
        options = origin.options
        deadline = options.deadline
        # The overall deadline covers finding the pods too; the execs get what is left.
        deadline_at = _deadline_at(deadline, started_at)
        # Asked before ``selection`` is found below: whether the call itself named no pods.
        named_nothing = not named and selection is None
        began = datetime.now(timezone.utc)
        try:
            async with self._api(options.timeout) as api:
                if selection is None:
                    selection = await self._resolve(
                        api, request, deadline, deadline_at, results, gone
                    )
                    everything = not named and not all_pods
                else:
                    everything = selection.untargeted and not all_pods
                check_allowed(
                    selection,
                    context=self.context,
                    protected=self.protected_contexts,
                    confirm_above=self.confirm_above,
                    everything=everything,
                    confirmed=yes,
                    # A magic's Cluster (%pod_cp's copies) says --yes, not yes=True.
                    api=not self._magic_words,
                )
                remote, events, settle = origin.remote, on_event, None
                if origin.python is not None:
                    # A result mark of this run's own; each pod's value taken out of stdout.
                    remote, events, settle = origin.python.prepare(on_event)
                done = await run_fanout(
                    api,
                    selection,
                    remote,
                    options,
                    context=self.context,
                    command_args=origin.shown,
                    control=control,
                    on_event=events,
                    deadline_at=deadline_at,
                )
                if settle is not None:
                    done = settle(done)
            if not isinstance(origin, _FoundRun) and selection.query is not None:
                # What the run looked for, so that rerun(target=True) can look for it again.
                origin = _FoundRun(origin, selection.query)
            done._origin = origin  # so that done.rerun() repeats exactly this run
            # What a saved runbook says of this run: names and uids, never credentials.
            done._provenance = provenance = record_provenance(
                context=self.context,
                server=self.credentials.server,
                user=self.credentials.user,
                selection=selection,
                target=", ".join(str(t) for t in request.targets)
                or ", ".join(f"{r.namespace}/{r.pod}" for r in results),
                selector=request.label_selector,
                field_selector=request.field_selector,
                command=origin.shown,
                options={
                    "timeout": options.timeout,
                    "deadline": options.deadline,
                    "max_concurrency": options.max_concurrency,
                    "retries": options.retries,
                    "ok_exit": options.ok_exit,
                    "tty": options.tty or None,
                    "capture_limit": options.capture_limit,
                    "env": origin.remote.env_names,
                },
                started_at=began,
                ended_at=datetime.now(timezone.utc),
                results=done,
            )
            # Given as targets later, these results run in this cluster and these pods only.
            note_where_ran(done, provenance)
            return done
        except PodmagicError as error:
            reworded = in_words_of(error, magic=self._magic_words)
            if named_nothing and not self._magic_words:
                # The call named no pods: all_namespaces=True alone would be refused next.
                reworded = _also_all_pods(reworded)
            raise reworded from None

    @_documented
    @_suggesting
    def run(
        self,
        command: str | Sequence[str],
        target: TargetArg = None,
        *,
        selector: str | None = None,
        field_selector: str | None = None,
        namespace: str | None = None,
        all_namespaces: bool = False,
        include_unready: bool = False,
        one: bool = False,
        pick: int | None = None,
        container: str | None = None,
        all_containers: bool = False,
        seed: int | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        shell: str | None = "/bin/sh",
        stdin: StdinSource = None,
        tty: bool = False,
        python: bool = False,
        python_bin: str = DEFAULT_PYTHON,
        timeout: float | None | ClusterDefault = CLUSTER_DEFAULT,
        deadline: float | None = None,
        max_concurrency: int | None = None,
        retries: int = 0,
        ok_exit: int | str | Iterable[int] = 0,
        capture_limit: int | None | ClusterDefault = CLUSTER_DEFAULT,
        capture_budget: int | None | ClusterDefault = CLUSTER_DEFAULT,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
        selection: Selection | None = None,
        yes: bool = False,
        all_pods: bool = False,
        started_at: float | None = None,
    ) -> PodResults:
        """Blocking :meth:`arun`: run ``command`` in every pod the target names.

        Works inside Jupyter's running loop too. Ctrl-C cancels the run within about a second
        and returns the partial results. Errors are those of :meth:`arun`.
        """
        run_control = control or RunControl()
        return run_blocking(
            lambda: self.arun(
                command,
                target,
                selector=selector,
                field_selector=field_selector,
                namespace=namespace,
                all_namespaces=all_namespaces,
                include_unready=include_unready,
                one=one,
                pick=pick,
                container=container,
                all_containers=all_containers,
                seed=seed,
                env=env,
                workdir=workdir,
                shell=shell,
                stdin=stdin,
                tty=tty,
                python=python,
                python_bin=python_bin,
                timeout=timeout,
                deadline=deadline,
                max_concurrency=max_concurrency,
                retries=retries,
                ok_exit=ok_exit,
                capture_limit=capture_limit,
                capture_budget=capture_budget,
                on_event=on_event,
                control=run_control,
                selection=selection,
                yes=yes,
                all_pods=all_pods,
                started_at=started_at,
            ),
            on_interrupt=lambda: run_control.cancel("interrupted"),
        )


class _RunOrigin:
    """A run as :meth:`PodResults.rerun` repeats it: the Cluster, the command as it was
    built (script, env, working directory, stdin bytes) and the options. Its repr shows
    the command and the context, never env values or stdin."""

    __slots__ = ("cluster", "options", "python", "remote", "shown")

    def __init__(
        self,
        cluster: Cluster,
        remote: RemoteCommand,
        options: ExecOptions,
        shown: tuple[str, ...],
        python: PythonProgram | None = None,
    ) -> None:
        self.cluster = cluster
        self.remote = remote
        self.options = options
        self.shown = shown
        #: The program of a ``python=True`` run (each run of it gets a result mark of its own).
        self.python = python

    def __repr__(self) -> str:
        return f"<run of {self.remote.display[:60]!r} in context {self.cluster.context!r}>"

    def with_options(self, **changes: Any) -> _RunOrigin:
        """This run with ``timeout``, ``deadline``, ``max_concurrency``, ``retries`` or
        ``ok_exit`` changed (:data:`~podmagic._results.AS_BEFORE` keeps one as it was)."""
        given = {name: value for name, value in changes.items() if value is not AS_BEFORE}
        _check_types("rerun()", given)
        if "ok_exit" in given:
            given["ok_exit"] = ok_exit_codes(given["ok_exit"], where="rerun(): ok_exit")
        if "max_concurrency" in given and given["max_concurrency"] is None:
            given["max_concurrency"] = self.cluster.defaults.max_concurrency
        if not given:
            return self
        try:
            options = replace(self.options, **given)
        except ValueError as error:
            raise ValueError(f"rerun(): {error}") from None
        return _RunOrigin(self.cluster, self.remote, options, self.shown, self.python)

    @property
    def query(self) -> TargetQuery | None:
        """What the run looked for (its target), None when it was given its pods."""
        return None

    def gone_reason(self, *, magic: bool = False, again: bool = True) -> str:
        """What a re-run says of a pod of the results that no longer exists, and what to do
        (``again=False``: not how to look for the run's target again, for a re-run across
        contexts, which re-runs its pods only)."""
        reason = _GONE
        if self.query is None or not again:
            return reason
        what = self.query.describe(self.cluster.namespace)
        retarget = "%pod --rerun RESULTS --retarget" if magic else "res.rerun(target=True)"
        return f"{reason}; {retarget} runs in the pods of {what} now"

    def found_again(self, include_unready: bool = False) -> TargetQuery:
        """What the run looked for, to look for again (``rerun(target=True)``); a
        ``ValueError`` saying why not when the run was given its pods."""
        if self.query is None:
            raise ValueError(
                "rerun(target=True) looks for the run's target again, and this run was given "
                "its pods (earlier results or a selection): re-run them with rerun(), or run "
                "anew on a workload or a selector"
            )
        if include_unready and not self.query.include_unready:
            return replace(self.query, include_unready=True)
        return self.query

    async def arerun(
        self,
        targets: Sequence[PodResult],
        *,
        yes: bool = False,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
        selection: Selection | None = None,
        include_unready: bool = False,
        started_at: float | None = None,
        target: bool = False,
        **changes: Any,
    ) -> PodResults:
        """Run again in the pods of ``targets`` (or in ``selection``, found already): a pod
        of ``targets`` that no longer exists is that pod's error, saying so. With
        ``target``, in the pods the run's target names now."""
        _check_types("rerun()", {"yes": yes, "on_event": on_event, "control": control})
        if not isinstance(target, bool):
            raise TypeError(f"rerun(): target must be True or False, not {_kind(target)}")
        origin = self.with_options(**changes)
        if target and selection is None:
            return await self.cluster._arun_prepared(
                self.found_again(include_unready),
                (),
                None,
                origin,
                started_at,
                named=True,
                all_pods=False,
                yes=yes,
                control=control,
                on_event=None if on_event is None else _noting_found_again(on_event),
            )
        return await self.cluster._arun_prepared(
            TargetQuery(include_unready=include_unready),
            () if selection is not None else list(targets),
            selection,
            origin,
            started_at,
            named=True,
            all_pods=False,
            yes=yes,
            control=control,
            on_event=on_event,
            gone=self.gone_reason(),
        )

    async def aselect(
        self,
        targets: Sequence[PodResult],
        *,
        target: bool = False,
        include_unready: bool = False,
        gone: str | None = None,
    ) -> Selection:
        """The pods a re-run would use (``%pod --rerun`` finds them first, to show or
        confirm): those of ``targets`` (a pod gone since is that pod's error, ``gone`` its
        reason, else :meth:`gone_reason`), or with ``target`` those the run's target names
        now."""
        cluster, options = self.cluster, self.options
        deadline = options.deadline
        try:
            async with cluster._api(options.timeout) as api:
                if target:
                    found = await cluster._resolve(
                        api, self.found_again(include_unready), deadline, _deadline_at(deadline)
                    )
                    return replace(found, description=_found_again(found.description))
                return await cluster._resolve(
                    api,
                    TargetQuery(include_unready=include_unready),
                    deadline,
                    _deadline_at(deadline),
                    targets,
                    self.gone_reason(magic=True) if gone is None else gone,
                )
        except PodmagicError as error:
            raise in_words_of(error, magic=cluster._magic_words) from None

    def select(
        self, targets: Sequence[PodResult], *, target: bool = False, include_unready: bool = False
    ) -> Selection:
        """Blocking :meth:`aselect`."""
        return run_blocking(
            lambda: self.aselect(targets, target=target, include_unready=include_unready)
        )

    def rerun(
        self,
        targets: Sequence[PodResult],
        *,
        control: RunControl | None = None,
        **options: Any,
    ) -> PodResults:
        """Blocking :meth:`arerun`; Ctrl-C cancels it and returns the partial results."""
        return cancellable(lambda run: self.arerun(targets, control=run, **options), control)


class _FoundRun(_RunOrigin):
    """A run that found its pods from a target (``query``: a workload, names, a selector):
    ``rerun(target=True)`` looks for it again, and a re-run's words for a pod gone since
    name it."""

    __slots__ = ("_query",)

    def __init__(self, origin: _RunOrigin, query: TargetQuery) -> None:
        # Every part of the run as it was (whatever _RunOrigin holds), and the query.
        for name in _RunOrigin.__slots__:
            setattr(self, name, getattr(origin, name))
        self._query = query

    @property
    def query(self) -> TargetQuery | None:
        """What the run looked for."""
        return self._query

    def with_options(self, **changes: Any) -> _RunOrigin:
        """:meth:`_RunOrigin.with_options`, still remembering what the run looked for."""
        changed = super().with_options(**changes)
        return changed if changed is self else _FoundRun(changed, self._query)


def _found_again(description: str) -> str:
    """A re-run's header when it looked for the run's target again."""
    return f"{description} (found again for the re-run)"


def _noting_found_again(on_event: EventCallback) -> EventCallback:
    """``on_event`` with the run's header saying that its target was looked for again."""

    def noted(event: Event) -> None:
        if isinstance(event, RunStarted):
            found = event.selection
            event = replace(
                event, selection=replace(found, description=_found_again(found.description))
            )
        on_event(event)

    return noted
