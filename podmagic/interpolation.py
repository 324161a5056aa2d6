r"""Python values in shell commands: ``{{expr}}``.

A command or cell body is shell text. The only thing podmagic changes in it is a placeholder;
everything else reaches the pod byte for byte (``$VAR``, ``${VAR:-x}``, ``$(cmd)``, backticks,
``$((1+2))``, awk's ``'{print $1}'``, ``find . -exec {} \;``, ``{a,b}``, here-documents...).

Syntax
------
``{{expr}}``
    The value of the Python expression ``expr``, evaluated in the notebook's namespace, as
    exactly **one** shell word, single-quoted like :func:`shlex.quote` (``''`` for the empty
    string). ``kubectl logs {{pod}}`` stays one argument whatever ``pod`` holds: spaces,
    quotes, ``$(...)``, backticks, newlines, a leading ``-``.
``{{expr}}`` with a list, tuple, set, range, generator (any iterable but str, bytes, mapping)
    **Several** words, each quoted; an empty list gives nothing at all. Sets are sorted (by
    value, or by text when the values do not compare) so a command is the same on every run;
    nested iterables are flattened, so ``{{ [("-n", ns), "-A"] }}`` gives ``-n prod -A``. Glued
    to other text, a list behaves like bash's ``"${arr[@]}"``: ``--x={{ ["a", "b"] }}`` gives
    ``--x='a' 'b'``.
``{{expr|raw}}``
    ``str(value)`` inserted as it is, unquoted: the escape hatch for trusted shell fragments
    (``{{flags|raw}}`` with ``flags = "-o wide"``). A list is joined by single spaces. The text
    is not checked in any way, so never use it for values that come from outside.
``\{{``
    A literal ``{{``, anywhere, for Go templates:
    ``kubectl get pods -o go-template='\{{range .items}}\{{.metadata.name}} \{{end}}'``.
    (``\\{{`` is therefore a backslash followed by a literal ``{{``.) A lone ``}}`` is literal.

Whitespace inside the braces is ignored: ``{{ pod }}``, ``{{ flags | raw }}``. A placeholder
ends at the first ``}}`` on its line that closes a valid expression, so ``}}`` may appear
inside it (``{{ {"a": {"b": 1}}["a"] }}``); it cannot span lines. A trailing ``|raw`` is always
the filter, never Python's ``|`` operator.

Expressions are any Python expressions (names, attributes, subscripts, calls, f-strings):
the notebook is the user's own code. They are evaluated left to right with the namespace as
globals (a copy: ``:=`` and ``eval``'s ``__builtins__`` do not leak into the caller's dict),
and only after the whole template has been checked, so a mistake in the last placeholder
runs no expression at all.

Values
------
- ``str``: the text itself. ``int``, ``float``, ``bool``, ``Decimal``, ``Path``, ``UUID`` and
  any other object: ``str(value)``.
- ``bytes``: decoded as UTF-8; other bytes are an error (send binary data with ``--stdin``).
- ``None``: an error, never the word ``None``. A mapping: an error (pick a key, or
  ``json.dumps`` it). Text containing a NUL character: an error, as no shell word can hold one.

Where a quoted placeholder may stand
------------------------------------
A single-quoted word is one word only where the shell reads quotes: unquoted text, including
inside ``$(...)`` and an unquoted ``${...}``. Elsewhere the quotes podmagic adds would be
literal characters, and the value could escape them (``echo "{{x}}"`` with
``x = "$(reboot)"`` would run ``reboot``). So ``{{expr}}`` is an error, before anything is
evaluated, when it stands inside ``'...'``, ``"..."``, ``$'...'``, backticks, ``$((...))``, a
``#`` comment or a here-document body, or right after a ``$``. Close the quotes around it
instead (``"pod "{{pod}}" is up"``), or use ``|raw`` for trusted text. This check reads the
shell text the way a POSIX shell does, without being a full parser (``case`` patterns inside
``$(...)`` can confuse it); when in doubt it refuses rather than guesses.

Errors are :class:`InterpolationError` (a :class:`~podmagic.errors.PodmagicError` and a
:class:`ValueError`), one line that names the placeholder and says what to do, e.g.
``name 'podd' is not defined (in {{podd}}); define it in the notebook, or write \{{ for a
literal {{``. They quote the template, never a value.

API: :func:`interpolate` (template and namespace to shell text), :func:`find_placeholders`
(where the placeholders are, without evaluating), :func:`quote_word` (one value, one word).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, NamedTuple

from .errors import PodmagicError

__all__ = ["InterpolationError", "Placeholder", "find_placeholders", "interpolate", "quote_word"]


class InterpolationError(PodmagicError, ValueError):
    """A placeholder cannot be turned into shell text.

    Raised for an undefined name, an expression that is not Python or that raised, a value
    that is not a word (``None``, a mapping, text with NUL, bytes that are not UTF-8), an
    unterminated ``{{``, and a ``{{expr}}`` where the shell would not read it as one word.
    """


class Placeholder(NamedTuple):
    """One ``{{...}}`` in a template: ``template[start:end]`` is its text."""

    start: int
    end: int
    expr: str  # the Python expression, without the braces, the |raw filter or the whitespace
    raw: bool


def interpolate(template: str, namespace: Mapping[str, Any]) -> str:
    """The shell text of ``template``, with each placeholder replaced by its value's words."""
    tokens = _tokenize(template)
    if not tokens:
        return template
    placeholders = [t.placeholder for t in tokens if t.placeholder is not None]
    # Check everything before evaluating anything: expressions may have side effects.
    codes = [_compile_or_raise(template, p) for p in placeholders]
    contexts = _shell_contexts(template, tokens)
    for p in placeholders:
        if not p.raw and p.start in contexts:
            raise _context_error(template, p, contexts[p.start])

    scope = dict(namespace)
    values = iter(codes)
    out: list[str] = []
    pos = 0
    for token in tokens:
        out.append(template[pos : token.start])
        if token.placeholder is None:
            out.append("{{")
        else:
            out.append(_render(template, token.placeholder, next(values), scope))
        pos = token.end
    out.append(template[pos:])
    return "".join(out)


def find_placeholders(template: str) -> list[Placeholder]:
    """The placeholders of ``template`` in order (``\\{{`` escapes excluded), unevaluated.

    Raises :class:`InterpolationError` only for an unterminated ``{{``.
    """
    return [t.placeholder for t in _tokenize(template) if t.placeholder is not None]


def quote_word(value: Any) -> str:
    """``value`` as exactly one quoted shell word, by the rules of ``{{expr}}``.

    An iterable (several words) is an error here; quote its items one by one.
    """
    if _is_several(value):
        raise InterpolationError(
            f"the value is a {type(value).__name__}, which makes several words, not one",
            hint="quote each item, or use {{expr}} in a template, where it becomes several words",
        )
    return shlex.quote(_text(value, "the value"))


# -- finding placeholders -------------------------------------------------------------------

_RAW_FILTER = re.compile(r"\|\s*raw\s*\Z")
_ESCAPE_HINT = r"write \{{ for a literal {{"


class _Token(NamedTuple):
    """A ``{{...}}`` placeholder, or a ``\\{{`` escape (``placeholder`` None)."""

    start: int
    end: int
    placeholder: Placeholder | None


def _split_raw(inner: str) -> tuple[str, bool]:
    match = _RAW_FILTER.search(inner)
    if match:
        return inner[: match.start()].strip(), True
    return inner.strip(), False


def _compile(expr: str) -> CodeType:
    # dont_inherit: this module's ``from __future__`` flags must not change user expressions.
    return compile(expr, "<podmagic>", "eval", dont_inherit=True)


def _closing(template: str, start: int, stop: int) -> int | None:
    """Index of the ``}}`` that ends a placeholder whose text begins at ``start``.

    The first ``}}`` that leaves a valid expression wins, so ``}}`` inside a dict literal or
    a string is no end; when none does, the first one, so the syntax error names that text.
    """
    first = end = template.find("}}", start, stop)
    while end >= 0:
        try:
            _compile(_split_raw(template[start:end])[0])
        except (SyntaxError, ValueError):
            end = template.find("}}", end + 1, stop)
        else:
            return end
    return first if first >= 0 else None


def _tokenize(template: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while (j := template.find("{{", i)) >= 0:
        if j > i and template[j - 1] == "\\":
            tokens.append(_Token(j - 1, j + 2, None))
            i = j + 2
            continue
        eol = template.find("\n", j)
        end = _closing(template, j + 2, len(template) if eol < 0 else eol)
        if end is None:
            raise InterpolationError(
                f"unterminated {{{{ at {_location(template, j)}: no }}}} closes it on that line",
                hint=f"close it with }}}}, or {_ESCAPE_HINT}",
            )
        expr, raw = _split_raw(template[j + 2 : end])
        tokens.append(_Token(j, end + 2, Placeholder(j, end + 2, expr, raw)))
        i = end + 2
    return tokens


def _location(template: str, index: int) -> str:
    column = index - template.rfind("\n", 0, index)
    if "\n" not in template:
        return f"column {column}"
    line = template.count("\n", 0, index) + 1
    return f"line {line}, column {column}"


def _compile_or_raise(template: str, p: Placeholder) -> CodeType:
    try:
        return _compile(p.expr)
    except (SyntaxError, ValueError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise InterpolationError(
            f"{template[p.start : p.end]} is not a Python expression ({reason}, at "
            f"{_location(template, p.start)})",
            hint=f"{_ESCAPE_HINT} (a Go template, for instance)",
        ) from None


# -- where placeholders stand, as the shell reads it ----------------------------------------

# After one of these (or at the very start), a ``#`` begins a comment.
_WORD_BREAK = " \t\n;&|()<>"
# ``$`` followed by one of these is a special parameter such as ``$$`` or ``$#``.
_SPECIAL_PARAMETERS = "$#?!-@*0123456789"


@dataclass
class _Frame:
    # cmd (unquoted, also $(...)), param (${...}), arith ($((...)) or ((...))), sq ('...'),
    # dq ("..."), ansi ($'...'), bq (`...`), comment, heredoc (a here-document body)
    kind: str
    depth: int = 0  # unclosed "(" in cmd and arith frames: a subshell's ")" closes no frame
    heredocs: list[tuple[str, bool]] = field(default_factory=list)  # bodies due after newline
    delimiter: str = ""  # heredoc: the line that ends the body
    strip_tabs: bool = False  # heredoc from <<-: the delimiter line may start with tabs


def _heredoc_word(template: str, i: int, tokens: Mapping[int, _Token]) -> tuple[str, int]:
    """The delimiter of a here-document whose ``<<`` ends just before ``i``, quotes removed."""
    while i < len(template) and template[i] in " \t":
        i += 1
    word: list[str] = []
    while i < len(template) and template[i] not in _WORD_BREAK:
        if i in tokens:
            # A delimiter made from a placeholder is unknown here: no line ends the body, so
            # every later {{expr}} counts as inside it. Refusing beats guessing.
            return "\n", i
        ch = template[i]
        if ch in "'\"":
            close = template.find(ch, i + 1)
            close = len(template) if close < 0 else close
            word.append(template[i + 1 : close])
            i = close + 1
        elif ch == "\\" and i + 1 < len(template):
            word.append(template[i + 1])
            i += 2
        else:
            word.append(ch)
            i += 1
    return "".join(word), i


def _shell_contexts(template: str, tokens: list[_Token]) -> dict[int, str]:
    """For each placeholder not in plain unquoted shell text: its start → the frame kind."""
    at = {t.start: t for t in tokens}
    found: dict[int, str] = {}
    stack = [_Frame("cmd")]
    after_dollar = -1  # a placeholder starting here follows an active "$"
    i, n = 0, len(template)

    def word_start(k: int) -> bool:
        return k == 0 or template[k - 1] in _WORD_BREAK

    while i < n:
        top = stack[-1]
        if top.kind == "heredoc" and (i == 0 or template[i - 1] == "\n"):
            eol = template.find("\n", i)
            eol = n if eol < 0 else eol
            line = template[i:eol]
            if (line.lstrip("\t") if top.strip_tabs else line) == top.delimiter:
                stack.pop()
                i = eol + 1
                continue
        token = at.get(i)
        if token is not None:
            if token.placeholder is not None:
                kind = "dollar" if i == after_dollar else _innermost(stack)
                if kind is not None:
                    found[i] = kind
            i = token.end
            continue

        ch, kind = template[i], top.kind
        if kind == "heredoc":
            i += 1
        elif kind == "comment":
            if ch == "\n":
                stack.pop()  # the newline itself is read again: it may start here-doc bodies
            else:
                i += 1
        elif kind == "sq":
            if ch == "'":
                stack.pop()
            i += 1
        elif ch == "\\":
            # An escaped character is not special; but never swallow the start of a token.
            i += 1 if i + 1 in at else 2
        elif kind in ("ansi", "bq"):
            if ch == ("'" if kind == "ansi" else "`"):
                stack.pop()
            i += 1
        elif ch == "$":
            nxt = template[i + 1 : i + 2]
            if i + 1 in at:
                after_dollar, i = i + 1, i + 1
            elif template.startswith("((", i + 1):
                stack.append(_Frame("arith"))
                i += 3
            elif nxt in ("(", "{") or (nxt == "'" and kind != "dq"):
                stack.append(_Frame({"(": "cmd", "{": "param", "'": "ansi"}[nxt]))
                i += 2
            else:
                i += 2 if nxt and nxt in _SPECIAL_PARAMETERS else 1
        elif ch == "`":
            stack.append(_Frame("bq"))
            i += 1
        elif kind == "dq":
            if ch == '"':
                stack.pop()
            i += 1
        else:  # unquoted: cmd, param or arith
            if ch in "'\"":
                stack.append(_Frame("sq" if ch == "'" else "dq"))
            elif ch == "}" and kind == "param":
                stack.pop()
            elif ch == "(" and kind == "cmd" and template.startswith("((", i) and word_start(i):
                stack.append(_Frame("arith"))
                i += 1
            elif ch == "(":
                top.depth += 1
            elif ch == ")":
                if top.depth:
                    top.depth -= 1
                elif kind == "arith" and template.startswith("))", i):
                    stack.pop()
                    i += 1
                elif kind == "cmd" and len(stack) > 1:
                    stack.pop()
            elif kind == "cmd" and ch == "#" and word_start(i):
                stack.append(_Frame("comment"))
            elif kind == "cmd" and template.startswith("<<<", i):
                i += 2  # a bash here-string: an ordinary word follows
            elif kind == "cmd" and template.startswith("<<", i):
                strip_tabs = template.startswith("-", i + 2)
                delimiter, i = _heredoc_word(template, i + 2 + strip_tabs, at)
                if delimiter:
                    top.heredocs.append((delimiter, strip_tabs))
                continue
            elif kind == "cmd" and ch == "\n" and top.heredocs:
                # Bodies follow one another, the first here-document's first.
                for delimiter, strip_tabs in reversed(top.heredocs):
                    stack.append(_Frame("heredoc", delimiter=delimiter, strip_tabs=strip_tabs))
                top.heredocs.clear()
            i += 1
    return found


def _innermost(stack: list[_Frame]) -> str | None:
    # ${...} is as quoted as the text around it: ${f%{{sfx}}} is fine, "${f%{{sfx}}}" is not.
    for frame in reversed(stack):
        if frame.kind != "param":
            return None if frame.kind == "cmd" else frame.kind
    return None


# Why a quoted word is unsafe in each place, and what to write instead (%-formatted, since
# the texts are full of braces).
_REOPEN = "close the quotes before it and reopen them after: %(quotes)s"
_CONTEXTS: dict[str, tuple[str, str]] = {
    "sq": ("inside '...' quotes", _REOPEN),
    "dq": ('inside "..." quotes', _REOPEN),
    "ansi": ("inside $'...' quotes", _REOPEN),
    "bq": ("inside `...`", "use $(...) instead of backticks"),
    "arith": (
        "inside $((...)), which expands $(...) even within quotes",
        "compute the number in Python, outside $((...)), or use %(raw)s for a number you trust",
    ),
    "comment": (
        "in a # comment, which a newline in the value would end",
        "take it out of the comment, or use %(raw)s for trusted text",
    ),
    "heredoc": (
        "in a here-document, where quotes are plain text",
        "set a variable before it (v=%(text)s) and write $v inside, or use %(raw)s",
    ),
    "dollar": (
        "right after a $, which would change how the shell reads it",
        "put a space or quotes between them, or use $%(raw)s for a trusted variable name",
    ),
}


def _context_error(template: str, p: Placeholder, kind: str) -> InterpolationError:
    text = template[p.start : p.end]
    raw = "{{" + p.expr + "|raw}}"
    quotes = f'the value is quoted for you, as in "pod "{text}" is up"; or use {raw}'
    where, hint = _CONTEXTS[kind]
    return InterpolationError(
        f"{text} is {where} ({_location(template, p.start)})",
        hint=hint % {"text": text, "raw": raw, "quotes": quotes},
    )


# -- values to words ------------------------------------------------------------------------


def _render(template: str, p: Placeholder, code: CodeType, scope: dict[str, Any]) -> str:
    text = template[p.start : p.end]
    try:
        # Iterating a generator runs user code too, so it belongs inside the try.
        words = list(_words(eval(code, scope), text))
    except InterpolationError:
        raise
    except NameError as exc:
        if exc.name is None:  # raised by hand, without a name: report it like any other error
            raise InterpolationError(f"{text} raised {_one_line(exc)}") from exc
        raise InterpolationError(
            f"name {exc.name!r} is not defined (in {text})",
            hint=f"define it in the notebook, or {_ESCAPE_HINT}",
        ) from exc
    except Exception as exc:
        raise InterpolationError(f"{text} raised {_one_line(exc)}") from exc
    return " ".join(words if p.raw else map(shlex.quote, words))


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _is_several(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(
        value, (str, bytes, bytearray, memoryview, Mapping)
    )


def _words(value: Any, where: str) -> Iterator[str]:
    if not _is_several(value):
        yield _text(value, where)
        return
    items: Iterable[Any] = value
    if isinstance(value, (set, frozenset)):
        try:
            items = sorted(value)
        except TypeError:  # values that do not compare, like 1 and "a": sort by their text
            items = sorted(value, key=str)
    for item in items:
        yield from _words(item, f"an item of {where}")


def _text(value: Any, where: str) -> str:
    if value is None:
        raise InterpolationError(
            f"{where} is None",
            hint="give it a value, or leave the word out with a list: [x] if x is not None else []",
        )
    if isinstance(value, Mapping):
        raise InterpolationError(
            f"{where} is a {type(value).__name__}, not a word",
            hint="pick a key (d['key']), or send it as JSON with json.dumps(d)",
        )
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InterpolationError(
                f"{where} is bytes that are not valid UTF-8",
                hint="decode them yourself, or send binary data with --stdin",
            ) from None
    elif isinstance(value, str):
        text = str.__str__(value)  # the text itself, even for a str subclass with its own __str__
    else:
        text = str(value)
    if "\0" in text:
        raise InterpolationError(
            f"{where} contains a NUL character, which no shell word can hold",
            hint="remove it, or send binary data with --stdin",
        )
    return text
