r"""Python in pods: ``%%pod TARGET --python`` and ``Cluster.run(program, python=True)``.

The cell body is a Python program run by the pod's own interpreter (``python3``, or the one
``--python-bin`` / ``python_bin=`` names). What it gives back travels as JSON, one value per
pod: a variable named ``result`` when the program sets one, otherwise the value of its last
statement when that is an expression (as Jupyter shows ``Out[]``), otherwise ``None``.
``PodResult.value`` holds it, ``PodResults.values`` maps each pod to it, and
:func:`values_frame` makes one DataFrame of values that are dicts or lists of dicts.

Delivery. Nothing of the program, its values or its environment is in the exec URL (which
the API server's audit log keeps): the URL holds ``PYTHON -c BOOTSTRAP``, a short fixed loader
(:data:`BOOTSTRAP`, about 1 KiB once percent-encoded) that reads from stdin, each part
length-first, the runner (:data:`RUNNER`) and one JSON header (the program, env, working
directory and result mark), and then leaves the rest of stdin to the program (``--stdin``
data) or puts ``/dev/null`` there. No shell is involved, so images without one (distroless)
work, and a program of any size goes (stdin has no URL limit).

The result. The runner flushes the program's output and then writes, last on stdout,
``MARK + JSON + "\n"``, where ``MARK`` is 128 random bits made for this run and sent only over
stdin: the program's own output cannot contain it by chance, and what it prints cannot pose
as a value. The mark and the JSON are taken out of the stream before the live view sees it
and out of ``stdout`` before the results keep it, at whatever offset they arrive (also past
the capture cap, which counts and keeps only the program's own bytes). Values JSON cannot hold
come back as their ``repr()`` text, and the pod's stderr says which types those were;
sets become lists, dates and times ISO 8601 text, NumPy values their Python equivalents.

Outcomes per pod: the program ran to its end → its status as for any command (exit 0, or what
``sys.exit()`` gave, judged by ``ok_exit``) with its value; it raised → ``failed`` (exit 1,
whatever ``ok_exit`` says), the traceback on stderr and its last line, with the cell's line
number, as the result's ``error``; no interpreter at ``--python-bin`` → ``skipped``, saying
so; the interpreter ended without a value (``os._exit``, a signal, an interpreter that is no
Python) → ``failed``, whatever its exit code: every run sends a value (``None`` included), so
one that never came is never ``ok``. The value travels on a copy of stdout made before the
program starts (a program that closes or replaces fd 1 still sends it), and only from the
process that started the program (a child of ``os.fork()`` that falls through sends none).

``{{expr}}`` in the program (:func:`substitute`) puts a notebook value in as a Python literal:
``str``, ``int``, ``float``, ``bool``, ``None``, ``bytes``, and lists, tuples, sets and dicts
of them, written by podmagic itself (never by an object's own ``__repr__``) and parenthesised,
so a value can only ever be that value. A placeholder must stand where an expression may:
inside a string, an f-string or a comment, as an assignment target, an attribute, a keyword or
an imported name it is refused before anything is evaluated. Any other type is an error that
names the placeholder, never its value; so is ``{{expr|raw}}``, which has no place in a
program. ``\{{`` is a literal ``{{``, as in shell cells.
"""

from __future__ import annotations

import ast
import io
import json
import math
import re
import secrets
import tokenize
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._channels import Stream
from ._command import RemoteCommand
from ._events import Event, EventCallback, PodFinished, PodOutput, PodStarted, RunFinished
from ._interpolation import (
    InterpolationError,
    Placeholder,
    _compile_or_raise,
    _location,
    _tokenize,
    _user_code,
)
from ._results import FRAME_MARK, NO_VALUE, ExecStatus, PodResult, PodResults, _Rows

if TYPE_CHECKING:
    import pandas as pd

    from ._resolve import PodTarget

__all__ = [
    "BOOTSTRAP",
    "DEFAULT_PYTHON",
    "RUNNER",
    "PythonProgram",
    "frame_or_values",
    "python_literal",
    "substitute",
    "values_frame",
]

#: The interpreter a ``--python`` run uses unless told otherwise.
DEFAULT_PYTHON = "python3"
#: The bootstrap's exit code when the program could not be handed over; nothing of it ran.
BOOTSTRAP_EXIT = 125
#: The cell's file name in the pod's tracebacks.
CELL_NAME = "<cell>"
#: Bytes of a result's JSON kept; a larger value is that pod's error, not a cut-off value.
MAX_VALUE_BYTES = 64 * 1024 * 1024

# Runs in the pod as `PYTHON -c BOOTSTRAP`: the exec URL (and the audit log) shows this, so it
# is short (a URL over 8 KiB is refused by many servers). It reads RUNNER, length first, from
# stdin and runs it. Python 2 syntax too, so that a Python 2 interpreter says what is wrong.
BOOTSTRAP = (
    "import os, sys\n"
    "def read(size):\n"
    " data = b''\n"
    " while len(data) < size:\n"
    "  chunk = os.read(0, size - len(data))\n"
    "  if not chunk:\n"
    "   sys.stderr.write('podmagic: the program did not arrive whole over stdin; "
    "nothing of it ran\\n'); os._exit(125)\n"
    "  data += chunk\n"
    " return data\n"
    "def sized():\n"
    " line = b''\n"
    " while not line.endswith(b'\\n') and len(line) < 20: line += read(1)\n"
    " return read(int(line))\n"
    "if sys.version_info[0] < 3:\n"
    " sys.stderr.write('podmagic: --python needs Python 3, and %s is Python %s; choose "
    "another with --python-bin\\n' % (sys.executable, sys.version.split()[0])); "
    "sys.exit(125)\n"
    "exec(compile(sized(), '<podmagic>', 'exec'))\n"
)

# Runs in the pod, in BOOTSTRAP's globals (read, sized): reads the header (the program, env,
# working directory, result mark), runs the program, and writes the mark and the value last on
# stdout. Python 3.6+: no f-strings, no walrus.
RUNNER = r"""def _podmagic():
    import json, ast, types, traceback, linecache
    head = json.loads(sized().decode("utf-8"))
    mark, source, name = head["mark"].encode("ascii"), head["program"], head["name"]
    # The value goes to a copy of stdout made now (not inherited by what the program
    # starts): a program that closes or replaces its fd 1 still sends it, and only the
    # process that started the program sends one (a fork's child falls through without).
    out, main_pid = os.dup(1), os.getpid()
    if not head["stdin"]:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    os.environ.update(head["env"])
    try:
        sys.stdout.reconfigure(line_buffering=True)
    except Exception:
        pass
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    ns = main.__dict__
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    outcome, code = {}, 0
    try:
        if head["workdir"] is not None:
            os.chdir(head["workdir"])
        tree = ast.parse(source, name)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, name, "exec"), ns)
        value = eval(compile(last, name, "eval"), ns) if last is not None else None
        outcome["value"] = ns["result"] if "result" in ns else value
    except SystemExit as stop:
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            sys.stderr.write(str(stop.code) + "\n")
            code = 1
        outcome["value"] = ns.get("result")
    except BaseException as error:
        tb, at = sys.exc_info()[2], None
        while tb is not None and tb.tb_frame.f_code.co_filename != name:
            tb = tb.tb_next
        first = tb
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == name:
                at = tb.tb_lineno
            tb = tb.tb_next
        if isinstance(error, SyntaxError) and error.filename == name:
            at = error.lineno
        traceback.print_exception(type(error), error, first)
        text = traceback.format_exception_only(type(error), error)[-1].strip()
        if isinstance(error, OSError) and at is None and head["workdir"] is not None:
            text = "cannot change to the working directory: " + text
        outcome = {"error": text + (" (line %d)" % at if at else "")}
        code = 1
    notes = []
    def plain(value, seen):
        if value is None or type(value) in (bool, str):
            return value
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if id(value) in seen:
            notes.append("a value that contains itself")
            return "..."
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                out = {}
                for key, item in value.items():
                    if not (key is None or isinstance(key, (str, int, float, bool))):
                        notes.append(type(key).__name__ + " (as a key)")
                        key = repr(key)
                    out[key] = plain(item, seen)
                return out
            if isinstance(value, (list, tuple)):
                return [plain(item, seen) for item in value]
            if isinstance(value, (set, frozenset)):
                items = [plain(item, seen) for item in value]
                try:
                    return sorted(items)
                except TypeError:
                    return sorted(items, key=repr)
            if hasattr(value, "isoformat") and type(value).__module__ == "datetime":
                return value.isoformat()
            if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
                return plain(value.tolist(), seen)
        finally:
            seen.discard(id(value))
        notes.append(type(value).__name__)
        return repr(value)
    try:
        if "value" in outcome:
            outcome["value"] = plain(outcome["value"], set())
        payload = json.dumps(outcome, ensure_ascii=True, allow_nan=True)
    except Exception as error:
        outcome = {"error": "the value could not be sent as JSON: " + traceback.format_exception_only(type(error), error)[-1].strip()}
        payload = json.dumps(outcome)
        code = code or 1
    if notes:
        sys.stderr.write("podmagic: JSON cannot hold %s: sent as repr() text\n" % ", ".join(sorted(set(notes))))
    payload = (payload + "\n").encode("ascii")
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:
            pass
    if os.getpid() != main_pid:
        return code
    data = mark + payload
    while data:
        data = data[os.write(out, data):]
    return code
sys.exit(_podmagic())
"""


class _NoLiteral(Exception):
    """A value (or part of one) that has no Python literal: ``what`` says which part."""

    def __init__(self, what: str, kind: str) -> None:
        super().__init__(what)
        self.what = what
        self.kind = kind


class _TooDeep(Exception):
    """A value nested deeper than :data:`MAX_LITERAL_DEPTH`."""


_LITERAL_TYPES = "str, int, float, bool, None, bytes, or a list, tuple, set or dict of them"
#: Containers nested in one ``{{expr}}`` value at most. Python's parser reads 200 nested
#: brackets in a whole program (3.9+; older parsers fewer): the rest is the cell's own.
MAX_LITERAL_DEPTH = 80
_TOO_DEEP = (
    f"is nested more than {MAX_LITERAL_DEPTH} containers deep, deeper than a Python literal may be"
)


def python_literal(value: Any) -> str:
    """``value`` as Python source that evaluates to an equal value, parenthesised: what
    ``{{expr}}`` puts in a ``%%pod --python`` cell, for programs built in Python::

        cluster.run(f"limit = {python_literal(limit)}\n...", "deploy/web", python=True)

    ``str``, ``int``, ``float``, ``bool``, ``None``, ``bytes``, and lists, tuples, sets and
    dicts of them. Written from the value's data (a ``str`` subclass's own ``__repr__`` is
    never called), so the text is a literal and nothing else. Raises ``ValueError`` for a
    type without a literal (naming the type, never the value).
    """
    try:
        return f"({_literal(value, 'the value', set())})"
    except _TooDeep:
        raise ValueError(
            f"the value {_TOO_DEEP}; send it as JSON text and json.loads() it in the program"
        ) from None
    except _NoLiteral as error:
        raise ValueError(
            f"{error.what} is {error.kind}, which has no Python literal; give {_LITERAL_TYPES}"
        ) from None


def _literal(value: Any, what: str, seen: set[int], depth: int = 0, root: str | None = None) -> str:
    """``value``'s literal; ``what`` names it in errors, ``depth`` counts the containers
    around it, ``root`` names the whole value."""
    if value is None or value is True or value is False:  # bool has no subclasses
        return repr(value)
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:  # more digits than int-to-str conversion allows (Python 3.11+)
            return hex(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "1e999-1e999"  # nan, without a name the program could have rebound
        if math.isinf(value):
            return "1e999" if value > 0 else "-1e999"
        return float.__repr__(value)
    if isinstance(value, str):
        return str.__repr__(value)
    if isinstance(value, bytes):
        return bytes.__repr__(value)
    if not isinstance(value, (list, tuple, dict, set)):
        raise _NoLiteral(what, _a(type(value).__name__))
    if id(value) in seen:
        raise _NoLiteral(what, "a container that holds itself")
    if depth >= MAX_LITERAL_DEPTH:
        raise _TooDeep
    seen.add(id(value))
    # Parts named by where they are: "an item of an item of {{x}}", deeper "an item 3
    # levels into {{x}}" (never a chain of "of" as long as the value is deep).
    top = root or what
    within = f"of {what}" if depth < 2 else f"{depth + 1} levels into {top}"
    key, item = f"a key {within}", f"an item {within}"
    try:
        if isinstance(value, dict):
            pairs = [
                f"{_literal(k, key, seen, depth + 1, top)}: {_literal(v, item, seen, depth + 1, top)}"
                for k, v in dict.items(value)
            ]
            return "{" + ", ".join(pairs) + "}"
        items = [_literal(element, item, seen, depth + 1, top) for element in value]
        if isinstance(value, tuple):
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, set):
            return "{" + ", ".join(sorted(items)) + "}" if items else "{*()}"
        return "[" + ", ".join(items) + "]"
    except RecursionError:
        raise _NoLiteral(what, "nested too deeply") from None
    finally:
        seen.discard(id(value))


def _a(name: str) -> str:
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


# -- {{expr}} in a program -------------------------------------------------------------------

_VALUE_HINT = "a value goes where an expression may, e.g. limit = {{limit}}"
_ESCAPE_HINT = r"write \{{ for a literal {{"


def substitute(source: str, namespace: Mapping[str, Any]) -> str:
    """``source`` with each ``{{expr}}`` replaced by its value as a Python literal.

    Every placeholder is checked to stand where an expression may before any is evaluated;
    expressions are then evaluated left to right in a copy of ``namespace``. Errors are one
    :class:`~podmagic._interpolation.InterpolationError` line naming the placeholder.
    """
    tokens = _tokenize(source)
    if not tokens:
        return source
    placeholders = [t.placeholder for t in tokens if t.placeholder is not None]
    for p in placeholders:
        if p.raw:
            raise InterpolationError(
                f"{source[p.start : p.end]} has no place in a Python program: |raw would make "
                f"the value code ({_location(source, p.start)})",
                hint="values go in as Python literals: write {{" + p.expr + "}}",
            )
    codes = [_compile_or_raise(source, p) for p in placeholders]
    _check_positions(source, tokens, placeholders)
    scope = dict(namespace)
    literals = []
    for p, code in zip(placeholders, codes):
        text = source[p.start : p.end]
        with _user_code(text):
            value = eval(code, scope)
        try:
            literals.append(f"({_literal(value, text, set())})")
        except _TooDeep:
            raise InterpolationError(
                f"{text} {_TOO_DEEP} ({_location(source, p.start)})",
                hint=f"send it as JSON text: json.loads({{{{ json.dumps({p.expr}) }}}})",
            ) from None
        except _NoLiteral as error:
            raise InterpolationError(
                f"{error.what} is {error.kind}, which has no Python literal "
                f"({_location(source, p.start)})",
                hint=f"give {_LITERAL_TYPES}; convert it, e.g. {{{{ str({p.expr}) }}}}",
            ) from None
    out, pos, values = [], 0, iter(literals)
    for token in tokens:
        out.append(source[pos : token.start])
        out.append("{{" if token.placeholder is None else next(values))
        pos = token.end
    out.append(source[pos:])
    return "".join(out)


def _check_positions(source: str, tokens: list[Any], placeholders: list[Placeholder]) -> None:
    """Refuse a placeholder that does not stand where an expression may: each becomes a
    name of its own in a copy of the program, which must then read as that name, loaded, and
    not inside an f-string."""
    while True:
        tag = f"_podmagic_{secrets.token_hex(4)}_"
        if tag not in source:
            break
    names = [f"{tag}{index}" for index in range(len(placeholders))]
    pieces, pos, index = [], 0, 0
    for token in tokens:
        pieces.append(source[pos : token.start])
        if token.placeholder is None:
            pieces.append("{{")
        else:
            pieces.append(names[index])
            index += 1
        pos = token.end
    pieces.append(source[pos:])
    skeleton = "".join(pieces)
    try:
        tree = ast.parse(skeleton, "<cell>")
    except SyntaxError as error:
        first = source[placeholders[0].start : placeholders[0].end]
        raise InterpolationError(
            f"the program is not Python this podmagic can read ({error.msg}, line "
            f"{error.lineno}), so where {first} stands cannot be checked",
            hint="fix the syntax; for syntax newer than this Python, pass the value with "
            "-e NAME=VALUE and read os.environ['NAME'] in the program",
        ) from None

    found: dict[str, tuple[bool, bool]] = {}  # name -> (loaded, inside an f-string)

    def visit(node: ast.AST, in_fstring: bool) -> None:
        if isinstance(node, ast.Name) and node.id.startswith(tag):
            found[node.id] = (isinstance(node.ctx, ast.Load), in_fstring)
        inside = in_fstring or isinstance(node, ast.JoinedStr)
        for child in ast.iter_child_nodes(node):
            visit(child, inside)

    try:
        visit(tree, False)
    except RecursionError:
        raise InterpolationError(
            "the program is nested too deeply to check where its {{...}} stand"
        ) from None
    where = _token_kinds(skeleton, tag)
    for name, p in zip(names, placeholders):
        text = source[p.start : p.end]
        at = _location(source, p.start)
        if name not in found:
            kind = where.get(name, "name")
            place = {
                "string": "inside a string",
                "comment": "in a comment",
            }.get(
                kind,
                "where a name, not a value, must stand (an attribute, a keyword, an "
                "import, a def, a class or a pattern)",
            )
            raise InterpolationError(
                f"{text} stands {place} ({at}): only a whole expression can take a value",
                hint=f"{_VALUE_HINT}; or {_ESCAPE_HINT}",
            )
        loaded, in_fstring = found[name]
        if in_fstring:
            raise InterpolationError(
                f"{text} stands inside an f-string ({at})",
                hint="assign it first, then format it: limit = {{" + p.expr + "}}, f'{limit}'",
            )
        if not loaded:
            raise InterpolationError(
                f"{text} stands where a variable is assigned or deleted ({at})",
                hint=_VALUE_HINT,
            )


def _token_kinds(skeleton: str, tag: str) -> dict[str, str]:
    """Which kind of token holds each placeholder's name (``string``, ``comment``,
    ``name``), for the wording of an error only."""
    kinds: dict[str, str] = {}
    pattern = re.compile(re.escape(tag) + r"\d+")
    try:
        for token in tokenize.generate_tokens(io.StringIO(skeleton).readline):
            kind = tokenize.tok_name.get(token.type, "")
            label = (
                "comment"
                if kind == "COMMENT"
                else "string"
                if kind in ("STRING", "FSTRING_MIDDLE")
                else "name"
            )
            for found in pattern.findall(token.string):
                kinds.setdefault(found, label)
    except (tokenize.TokenError, SyntaxError):
        pass
    return kinds


# -- the run -----------------------------------------------------------------------------------


def _not_found(message: str) -> bool:
    """Whether the container runtime said the program to exec is not there (containerd,
    CRI-O and Docker say one of these; a 404 for a deleted pod is another matter)."""
    message = message.lower()
    return "executable file not found" in message or "no such file or directory" in message


@dataclass(frozen=True)
class PythonProgram:
    """A Python program to run in pods: its text (values already substituted), the
    interpreter, env, working directory and stdin. Each :meth:`prepare` makes the command
    for one run, with a result mark of its own."""

    source: str
    python_bin: str = DEFAULT_PYTHON
    env: Mapping[str, str] | None = None
    workdir: str | None = None
    stdin: bytes | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise TypeError(
                f"python=True takes the program as one str, not {type(self.source).__name__}"
            )
        if not isinstance(self.python_bin, str) or not self.python_bin.strip():
            raise TypeError("python_bin must be the interpreter's name or path, a non-empty str")
        if not self.source.strip():
            raise ValueError("empty program: the Python program has nothing to run")
        texts = [("the program", self.source), ("python_bin", self.python_bin)]
        texts += [
            (f"environment variable {name}", value) for name, value in (self.env or {}).items()
        ]
        texts += [("the working directory", self.workdir or "")]
        for what, text in texts:
            if "\x00" in text:
                raise ValueError(f"{what} contains a NUL character, which no program can be given")
        try:
            self.source.encode()
        except UnicodeEncodeError:
            raise ValueError(
                "the program is not valid Unicode text (it holds a lone surrogate)"
            ) from None

    @property
    def shown(self) -> tuple[str, ...]:
        """The command as results and provenance show it."""
        return (self.python_bin, "-c", self.source)

    def command(self, mark: bytes = b"") -> RemoteCommand:
        """The exec: ``PYTHON -c BOOTSTRAP`` in the URL; over stdin the runner, the header
        (program, env, working directory, mark) and then the program's own stdin."""
        header = json.dumps(
            {
                "mark": mark.decode("ascii"),
                "program": self.source,
                "name": CELL_NAME,
                "env": dict(self.env or {}),
                "workdir": self.workdir,
                "stdin": self.stdin is not None,
            },
            ensure_ascii=False,
        ).encode()
        runner = RUNNER.encode()
        data = b"%d\n%s%d\n%s" % (len(runner), runner, len(header), header)
        return RemoteCommand(
            argv=(self.python_bin, "-c", BOOTSTRAP),
            stdin=data + (self.stdin or b""),
            display=self.source,
            env_names=tuple(self.env or {}),
            direct=True,
        )

    def prepare(
        self, on_event: EventCallback | None
    ) -> tuple[RemoteCommand, EventCallback, Callable[[PodResults], PodResults]]:
        """For one run: the command, the ``on_event`` to give the engine (it takes the value
        out of each pod's stdout, then passes the events on to ``on_event``), and the function
        that turns the engine's results into the run's (values in, statuses settled)."""
        mark = b"\x1epodmagic-value-" + secrets.token_hex(16).encode() + b"\x1e"
        watch = _Watch(mark, self.python_bin, on_event)
        return self.command(mark), watch.handle, watch.finish


class _Stream:
    """One exec's stdout as the mark and the value's JSON are taken out of it."""

    __slots__ = ("end", "held", "json", "position", "start", "target", "too_big")

    def __init__(self, target: PodTarget) -> None:
        self.target = target
        self.position = 0  # bytes of the stream received so far
        self.held = b""  # a tail that may be the start of the mark
        self.start: int | None = None  # where the mark began
        self.end: int | None = None  # just after the value's newline
        self.json = bytearray()
        self.too_big = False

    def feed(self, data: bytes, mark: bytes) -> bytes:
        """What of ``data`` is the program's own output."""
        before = self.position
        self.position += len(data)
        if self.end is not None:
            return data
        if self.start is not None:
            return self._value(data, before)
        buffer = self.held + data
        begins = before - len(self.held)
        self.held = b""
        found = buffer.find(mark)
        if found < 0:
            # Hold back the longest tail that could begin the mark (it begins with a byte
            # program output rarely has, so this is seldom more than one find).
            at = buffer.find(mark[:1], max(0, len(buffer) - len(mark) + 1))
            while at >= 0:
                if mark.startswith(buffer[at:]):
                    self.held = buffer[at:]
                    return buffer[:at]
                at = buffer.find(mark[:1], at + 1)
            return buffer
        self.start = begins + found
        rest = buffer[found + len(mark) :]
        return buffer[:found] + self._value(rest, self.start + len(mark))

    def _value(self, data: bytes, at: int) -> bytes:
        newline = data.find(b"\n")
        part = data if newline < 0 else data[:newline]
        if len(self.json) + len(part) > MAX_VALUE_BYTES:
            self.too_big = True
        else:
            self.json += part
        if newline < 0:
            return b""
        self.end = at + newline + 1
        return data[newline + 1 :]

    def flush(self) -> bytes:
        held, self.held = self.held, b""
        return held


class _Watch:
    """The events of one ``--python`` run, on their way to the caller's ``on_event``."""

    def __init__(self, mark: bytes, python_bin: str, on_event: EventCallback | None) -> None:
        self.mark = mark
        self.python_bin = python_bin
        self.on_event = on_event
        self.streams: dict[tuple[str, str, str | None], _Stream] = {}
        # The engine's result object -> (it, the run's result): kept alive, so ids stay theirs.
        self.settled: dict[int, tuple[PodResult, PodResult]] = {}

    def handle(self, event: Event) -> None:
        forward = self.on_event
        if isinstance(event, PodStarted):
            key = (event.target.namespace, event.target.pod, event.target.container)
            self.streams[key] = _Stream(event.target)  # a retry starts the stream afresh
        elif isinstance(event, PodOutput) and event.stream == Stream.STDOUT:
            key = (event.target.namespace, event.target.pod, event.target.container)
            stream = self.streams.get(key)
            if stream is None:
                stream = self.streams[key] = _Stream(event.target)
            data = stream.feed(event.data, self.mark)
            if not data:
                return
            if data is not event.data:
                event = PodOutput(event.target, event.stream, data)
        elif isinstance(event, PodFinished):
            result = event.result
            stream = self.streams.pop((result.namespace, result.pod, result.container), None)
            if stream is not None and forward is not None:
                # A tail held back as a possible start of the mark was the program's output.
                held = stream.flush()
                if held:
                    forward(PodOutput(stream.target, Stream.STDOUT, held))
            settled = self._settle(result, stream)
            self.settled[id(result)] = (result, settled)
            event = PodFinished(settled)
        elif isinstance(event, RunFinished):
            event = RunFinished(self._map(event.results))
        if forward is not None:
            forward(event)

    def _map(self, results: PodResults) -> PodResults:
        mapped = PodResults(self.settled[id(r)][1] if id(r) in self.settled else r for r in results)
        mapped._origin = results._origin
        mapped._history = results._history
        mapped._provenance = results._provenance
        return mapped

    def finish(self, results: PodResults) -> PodResults:
        """The run's results: each pod's value taken in, the values' frame attached when
        they are dicts or lists of dicts."""
        mapped = self._map(results)
        value = frame_or_values(mapped)
        return mapped if isinstance(value, dict) else mapped.with_frame(value)

    def _settle(self, result: PodResult, stream: _Stream | None) -> PodResult:
        if stream is not None and stream.start is not None:
            result = _without_value(result, stream)
            if stream.end is None:
                return replace(
                    result,
                    status=ExecStatus.FAILED if result.status is ExecStatus.OK else result.status,
                    error=result.error or "the program's value did not arrive whole",
                )
            if stream.too_big:
                return replace(
                    result,
                    status=ExecStatus.FAILED,
                    error=f"the value is over {MAX_VALUE_BYTES // (1024 * 1024)} MiB of JSON: "
                    "return less (or write it to a file and fetch it with %pod_cp)",
                )
            try:
                document = json.loads(bytes(stream.json))
            except ValueError:
                return replace(
                    result, status=ExecStatus.FAILED, error="the program's value was not JSON"
                )
            if isinstance(document, dict) and "error" in document:
                # An exception is a failure whatever --ok-exit accepts.
                return replace(result, status=ExecStatus.FAILED, error=str(document["error"]))
            if isinstance(document, dict) and "value" in document:
                return replace(result, value=document["value"])
            return result
        # No value: the bootstrap never ran, or the interpreter ended without one.
        said = (result.error or "") if result.status is ExecStatus.ERROR else ""
        if _not_found(said):
            return self._skipped(result, "is not in this container")
        if "exec failed" in said and ("permission denied" in said or "is a directory" in said):
            return self._skipped(result, _NOT_RUNNABLE)
        if result.status in (ExecStatus.OK, ExecStatus.FAILED) and result.exit_code in (126, 127):
            # Runtimes that report a failed exec as an exit code: 127 not found, 126 not
            # runnable (the runner itself always ends with its mark, or with 125).
            output = (result.stderr + result.stdout).decode("utf-8", "replace")
            missing = result.exit_code == 127 or _not_found(output)
            return self._skipped(result, "is not in this container" if missing else _NOT_RUNNABLE)
        if result.status in (ExecStatus.OK, ExecStatus.FAILED):
            # The runner always ends with a value, None included: an exit (even 0) without
            # one is a failure. Only the bootstrap's exit code vouches for a "podmagic: " line.
            lines = [
                line
                for line in result.stderr.decode("utf-8", "replace").splitlines()
                if line.startswith("podmagic: ") and result.exit_code == BOOTSTRAP_EXIT
            ]
            error = (
                lines[-1][len("podmagic: ") :]
                if lines
                else (
                    f"exit {result.exit_code}: {self.python_bin} ended without the program's "
                    "value (os._exit(), a signal, or it is no Python 3 interpreter)"
                )
            )
            return replace(result, status=ExecStatus.FAILED, error=error)
        return result

    def _skipped(self, result: PodResult, how: str) -> PodResult:
        return replace(
            result,
            status=ExecStatus.SKIPPED,
            exit_code=None,
            error=f"no Python: {self.python_bin} {how}; name the interpreter with "
            "--python-bin PATH (python_bin= in Python)",
        )


_NOT_RUNNABLE = "cannot be run in this container (not an executable file)"


def _without_value(result: PodResult, stream: _Stream) -> PodResult:
    """``result`` with the mark and the value's JSON cut out of its stdout (what the capture
    kept) and out of the count of what it dropped."""
    assert stream.start is not None
    start = stream.start
    end = stream.end if stream.end is not None else stream.position
    kept = len(result.stdout)
    stdout = result.stdout[: min(kept, start)] + (result.stdout[end:] if kept > end else b"")
    dropped_from = kept
    dropped_to = kept + result.stdout_dropped
    overlap = max(0, min(end, dropped_to) - max(start, dropped_from))
    dropped = result.stdout_dropped - overlap
    return replace(
        result,
        stdout=stdout,
        stdout_dropped=dropped,
        # A digest that took in the value's bytes no longer matches what is counted: none
        # then (groups say those dropped bytes were compared by count only).
        stdout_dropped_digest=result.stdout_dropped_digest if dropped and not overlap else None,
    )


# -- values as a table ----------------------------------------------------------------------


def _tabular(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and all(isinstance(item, dict) for item in value)
    )


def frame_or_values(results: PodResults) -> pd.DataFrame | dict[str, Any]:
    """What a ``--python`` cell shows: :func:`values_frame` when every value is a dict or a
    list of dicts (and there is one), else :attr:`PodResults.values`."""
    values = results.values
    if values and all(_tabular(v) for v in values.values()):
        return values_frame(results)
    return values


def values_frame(results: PodResults) -> pd.DataFrame:
    """One DataFrame of the results' values: a row per dict (a list of dicts gives a row per
    item), led by ``pod`` (and ``context``, ``namespace``, ``container`` when those differ
    between results). A pod that ran but gave no value (it failed, timed out, ...) gets a row
    whose ``error`` says why; skipped pods get none (``frame.attrs["skipped"]``), nor do pods
    whose value is an empty list (``frame.attrs["empty"]``). Raises ``ValueError`` when a
    value is not a dict or a list of dicts (``results.values`` holds every value as it is).
    """
    table = _Rows(list(results))
    errors: dict[str, str] = {}
    skipped: dict[str, str] = {}
    empty: list[str] = []
    for r, label in zip(results, results.labels):
        if r.status is ExecStatus.SKIPPED:
            skipped[label] = r.error or "skipped"
            continue
        if r.value is NO_VALUE:
            errors[label] = r.error or f"{r.outcome}: no value"
            table.error(r, errors[label])
            continue
        if not _tabular(r.value):
            raise ValueError(
                f"values_frame(): the value of {label} is {_a(type(r.value).__name__)}, not a "
                "dict or a list of dicts; use results.values for values of other kinds"
            )
        rows = [r.value] if isinstance(r.value, dict) else r.value
        if not rows:
            empty.append(label)
        table.add(r, rows)
    frame = table.frame()
    frame.attrs["errors"] = errors
    frame.attrs["skipped"] = skipped
    frame.attrs["empty"] = empty
    frame.attrs[FRAME_MARK] = True
    return frame
