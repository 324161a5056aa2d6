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
  ``json.dumps`` it). Results of a run (``PodResult``, ``PodResults``): an error that says to
  write ``{{[r.pod for r in res]}}``, or to give them as ``%pod``'s target. Text containing a NUL character: an error, as no shell word can hold one.

Where a quoted placeholder may stand
------------------------------------
The pod's ``/bin/sh`` may be dash, bash (RHEL's), busybox ash, mksh or zsh, so the template is
read as each would read it (dash has no ``$'...'``, ``$[...]``, ``[[`` or ``((``; the others
do), unless ``shell=`` names bash, zsh, mksh, ksh or dash. A ``{{expr}}`` must be a plain word
in every reading, and in a place where the command takes plain text; otherwise it is an
error, before anything is evaluated:

- Quotes and comments: inside ``'...'``, ``"..."``, ``$'...'``, ``$"..."``, backticks, a ``#``
  comment, a here-document body or delimiter, or right after a ``$``: the quotes podmagic adds
  would be literal there (``echo "{{x}}"`` with ``x = "$(reboot)"`` would run ``reboot``).
  Close the quotes around it instead (``"pod "{{pod}}" is up"``).
- Arithmetic: ``$((...))``, ``((...))``, ``$[...]``, ``let``, array subscripts (``a[...]=``,
  ``${a[...]}``), ``${v:offset:length}``, test operands next to ``-eq``/``-lt``/``-v`` and the
  like (in ``[[ ]]``, ``test`` and ``[``), assignments to integer variables (any assignment when
  the script has ``declare -i``/``typeset -i``/``local -i``/``integer``/``float``, and the
  shells' own ``RANDOM``, ``SECONDS``, ``OPTIND`` ...), also through a ``$(...)`` whose output
  lands there. Bash, mksh and zsh evaluate subscripts inside arithmetic, running a ``$(...)``
  in the value even when it is quoted. Here an ``int`` value (not ``bool``) is inserted as its
  digits (``$(( {{n}} + 1 ))``); any other value is an error.
- Commands that read an argument as code, a variable name or a number: ``eval``, ``trap``,
  ``alias``, ``source``/``.``, ``read``, ``getopts``, ``unset``, ``shift``, ``ulimit``,
  ``mapfile``, ``compgen``, ``emulate``, ``select``/``for`` variable names, ``printf -v``,
  the names (not the values) of ``export``/``declare``/``local``/``readonly``, and every other
  builtin of the five shells but the plain-text ones (``echo``, ``printf``, ``cd``, ``cat``,
  ``test`` ...), also behind ``command``, ``builtin``, ``exec``, ``env``; the code or options of
  ``sh -c``, ``bash -c`` and the other shells wherever they appear (``kubectl exec p -- sh -c``,
  ``xargs sh -c``), and any argument of ``ssh`` or ``watch``, which join their arguments into a
  command line. A value may follow the code: ``sh -c 'echo "$1"' sh {{x}}``. ``printf``,
  ``print`` and ``set`` take values only after a literal argument or ``--`` (a value could be
  ``-v``); ``test``/``[`` not beside another value or a ``$(...)``; no argument of a command
  whose name is a value or an expansion (``$cmd``), or an alias the script defines. The error
  says how to pass the value instead, usually as an environment value: ``-e V={{x}}``, then
  ``"$V"``.
- Assignments to ``PS1``-``PS4``, ``PROMPT_COMMAND``, ``BASH_ENV``, ``ENV`` (run as code).
- After a ``(`` inside an array assignment (``a=( ( ...``): bash reports the syntax error and
  reads on at the next line, which may lie inside a quoted value.
- Standard input of a shell, ``source``/``.`` or ``eval`` (``sh <<< {{x}}``, ``sh < {{f}}``),
  and every placeholder before a pipe into one (``echo {{x}} | sh``): it is read as code.
  Also ``wait -p``, ``script`` and ``env -S``, and ``busybox APPLET`` is read as ``APPLET``.
- Backslash-newline: removed before the rest is read, as the shells do (``ev\<newline>al``
  is ``eval``). The shells keep it in a ``#`` comment and a quoted-delimiter here-document, and
  there the next line is read differently: placeholders after one are refused.
- A list where one word must stand (an assignment, a redirection target, a command name, a
  test operand) is an error: its other items would become arguments or commands.

Still fine: plain arguments (``kubectl logs {{pod}}``, ``grep -r {{pattern}} /etc``,
``--flag={{v}}``, lists), ``export NS={{ns}}``, ``x={{v}}; echo "$x"``,
``for p in {{pods}}; do``, ``$(cat {{file}})``, ``case {{x}} in``, ``cat <<< {{x}}``,
``{{x|raw}}`` anywhere.

A value that contains ``[`` is refused when the template anywhere (quoted code and
here-documents included) evaluates a variable as arithmetic or as a name: ``$((``, ``((``,
``$[``, ``let``, ``-eq``/``-lt`` and the like, ``[ -v``, ``${a[``, ``${s:offset}``, ``${!x}``,
``a[...]=``, integer declarations, ``nameref``/``typeset -n``, ``shift``, ``ulimit``, ``getopts``,
``unset``, ``printf -v``, ``read``/``export``/``declare`` with a ``$`` in their arguments. Bash,
mksh and zsh evaluate a variable's value recursively there, so ``x={{v}}; echo $((x))`` with
``v = "a[$(cmd)]"`` runs ``cmd``; a subscript is the only way in (a ``$(...)``, backticks or
``${...}`` in a value are not run by any of the five), and which variables a value reaches
(assignments, loops, ``set --``, ``sh -c`` arguments, ``read``, ``$(...)``, pipes) is not known,
so every placeholder of such a template is checked. ``int`` values and text without ``[`` pass,
except where bash expands a compound assignment's subscript twice (``a=([$x]=1)``): there a
``$`` or a backtick in a value is refused too.
Environment values (``-e N=...``) are not checked: a script that does arithmetic on ``$N`` runs
a subscript in it, so check them in Python first. Otherwise what the script does with a
variable is its own business: ``eval "$x"`` or ``xargs sh -c '... {}'`` runs it, exactly as for
an environment value; compute numbers in Python (``{{ int(n) }}``). Programs that take code
of their own (``python -c``, ``awk``, ``sed``'s ``e``) and options that a program runs
(``ssh -oProxyCommand=``) are not shells' business either. Functions defined in a sourced file
and integer declarations made there are not seen.

Errors are :class:`InterpolationError` (a :class:`~podmagic.PodmagicError` and a
:class:`ValueError`), one line that names the placeholder and says what to do, e.g.
``name 'podd' is not defined (in {{podd}}); define it in the notebook, or write \{{ for a
literal {{``. They quote the template, never a value.

API: :func:`interpolate` (template and namespace to shell text), :func:`find_placeholders`
(where the placeholders are, without evaluating), :func:`quote_word` (one value, one word),
:func:`placeholder_value` (the value of a text that is one placeholder, as data: ``%pod``'s
targets take a list of names or results that way, one target per item, never as text).
"""

from __future__ import annotations

import bisect
import itertools
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import CodeType
from typing import Any, NamedTuple

from ._errors import PodmagicError
from ._results import PodResult

__all__ = [
    "NOT_ONE_PLACEHOLDER",
    "InterpolationError",
    "Placeholder",
    "find_placeholders",
    "interpolate",
    "placeholder_value",
    "quote_word",
]


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


def interpolate(template: str, namespace: Mapping[str, Any], *, shell: str | None = None) -> str:
    """The shell text of ``template``, with each placeholder replaced by its value's words.

    ``shell`` is the program that will run the text. ``bash``, ``zsh``, ``mksh`` or ``ksh``
    (any path) is read in its own dialect and ``dash`` in the POSIX one; anything else,
    including ``/bin/sh`` (which may be any of them) and None, in both.
    """
    tokens = _tokenize(template)
    if not tokens:
        return template
    placeholders = [t.placeholder for t in tokens if t.placeholder is not None]
    # Check everything before evaluating anything: expressions may have side effects.
    codes = [_compile_or_raise(template, p) for p in placeholders]
    contexts = _shell_contexts(template, tokens, _dialects(shell))
    for p in placeholders:
        where = contexts.get(p.start)
        if not p.raw and where is not None and any(k not in _NUMERIC for k in where.kinds):
            raise _context_error(template, p, where)

    scope = dict(namespace)
    # Also with continuations joined: le\<newline>t is let to the shells.
    arithmetic = _variable_arithmetic(template) or _variable_arithmetic(
        _join_continuations(template)[0]
    )
    values = iter(codes)
    out: list[str] = []
    pos = 0
    for token in tokens:
        out.append(template[pos : token.start])
        if token.placeholder is None:
            out.append("{{")
        else:
            placeholder = token.placeholder
            out.append(
                _render(
                    template,
                    placeholder,
                    next(values),
                    scope,
                    contexts.get(placeholder.start),
                    arithmetic,
                )
            )
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
#
# The pod's /bin/sh may be dash, bash (RHEL's /bin/sh), busybox ash, mksh or zsh, and they
# read the same text differently: dash has no $'...', $[...], [[ or ((, the others do. So the
# template is read twice, once per dialect, and a placeholder must be a plain word in both.
# A plain word is still not enough where the shell reads a word as code, as a variable name
# or as arithmetic (bash, mksh and zsh evaluate array subscripts inside arithmetic, and a
# subscript may hold $(...)): those positions are found per command, below.

# After one of these (or at the very start), a ``#`` begins a comment.
_WORD_BREAK = " \t\n;&|()<>"
# ``$`` followed by one of these is a special parameter such as ``$$`` or ``$#``.
_SPECIAL_PARAMETERS = "$#?!-@*0123456789"
_DIALECTS = ("extended", "posix")  # the extended reading first: its messages are more precise
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Where only an integer is safe: the text is evaluated as arithmetic. An ``int`` value is
# inserted there as its digits, anything else is refused.
_NUMERIC = frozenset({"arith", "subscript", "offset", "cond-arith", "assign-int", "let"})

# Words that start a compound command or prefix a command: the next word is in command position.
_RESERVED = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "do",
        "done",
        "while",
        "until",
        "{",
        "}",
        "!",
        "time",
        "function",
        "coproc",
        "noglob",
        "nocorrect",
        "-",
        "esac",
    }
)
# Builtins that run another command, with options of their own: command eval ..., exec read ...
_PREFIXES = frozenset({"command", "builtin", "exec", "nohup", "nice", "env"})
# Builtins of dash, bash, busybox ash, mksh and zsh (and their keywords) whose arguments are
# only ever plain text, as long as the rules in _check_command hold (printf without -v...).
_SAFE_BUILTINS = frozenset(
    {
        "echo",
        "printf",
        "print",
        "cat",
        "sleep",
        "cd",
        "chdir",
        "pwd",
        ":",
        "true",
        "false",
        "kill",
        "exit",
        "return",
        "break",
        "continue",
        "type",
        "whence",
        "where",
        "which",
        "hash",
        "realpath",
        "umask",
        "times",
        "set",
        "test",
        "[",
        "[[",
    }
)
# Every other builtin (or keyword) of the five shells: an argument may be read as code (eval,
# trap, alias, source, emulate -c, mapfile -C, compgen -W), as a variable name (read, getopts,
# unset, printf -v), as a number evaluated as arithmetic (let, shift, ulimit, read -t in zsh,
# typeset -Z), or be reused later (alias, bind, complete). Refused as a whole.
_BUILTINS = frozenset(
    [
        ".",
        "alias",
        "autoload",
        "bg",
        "bind",
        "bindkey",
        "bye",
        "caller",
        "compgen",
        "complete",
        "compopt",
        "declare",
        "dirs",
        "disable",
        "disown",
        "emulate",
        "enable",
        "eval",
        "export",
        "fc",
        "fg",
        "float",
        "functions",
        "getln",
        "getopts",
        "global",
        "help",
        "history",
        "integer",
        "jobs",
        "let",
        "limit",
        "local",
        "log",
        "logout",
        "mapfile",
        "popd",
        "private",
        "pushd",
        "pushln",
        "r",
        "read",
        "readarray",
        "readonly",
        "rehash",
        "rename",
        "repeat",
        "sched",
        "select",
        "setopt",
        "shift",
        "shopt",
        "source",
        "suspend",
        "trap",
        "ttyctl",
        "typeset",
        "ulimit",
        "unalias",
        "unfunction",
        "unhash",
        "unlimit",
        "unset",
        "unsetopt",
        "vared",
        "zcompile",
        "zformat",
        "zle",
        "zmodload",
        "zparseopts",
        "zregexparse",
        "zstyle",
        "zpty",
        "ztcp",
        "zsocket",
        "foreach",
    ]
)
# Builtins whose ``NAME=value`` arguments are assignments (the value part is a plain word).
_DECLARE = frozenset(
    {"declare", "typeset", "local", "export", "readonly", "integer", "float", "private", "global"}
)
# Shells: their -c argument is code, and so is a value read as one of their options.
_SHELLS = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "ash",
        "zsh",
        "mksh",
        "lksh",
        "ksh",
        "ksh93",
        "pdksh",
        "yash",
        "posh",
        "rbash",
        "busybox",
        "fish",
        "csh",
        "tcsh",
        "su",
        "runuser",
    }
)
# Programs that join their arguments into one command line for a shell.
_JOINERS = frozenset({"ssh", "watch"})
# Test operators that evaluate their operands as arithmetic (mksh and zsh in test/[, bash in
# [[ ]] and test) or as a variable name with a subscript (-v).
_TEST_ARITHMETIC = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v"})
# Variables that some shell treats as integers (assignments are arithmetic) or runs as code.
_INTEGER_VARIABLES = frozenset(
    [
        "RANDOM",
        "SECONDS",
        "OPTIND",
        "HISTCMD",
        "COLUMNS",
        "LINES",
        "TMOUT",
        "PPID",
        "USER_ID",
        "LINENO",
        "HISTSIZE",
        "SHLVL",
        "EPOCHSECONDS",
        "KEYTIMEOUT",
        "LISTMAX",
        "SAVEHIST",
        "ERRNO",
        "TRY_BLOCK_ERROR",
        "TRY_BLOCK_INTERRUPT",
        "UID",
        "EUID",
        "GID",
        "EGID",
        "TTYIDLE",
        "DIRSTACKSIZE",
        "MAILCHECK",
        "PERIOD",
        "OPTERR",
        "HISTFILESIZE",
        "COMP_CWORD",
        "COMP_POINT",
        "COMP_TYPE",
        "COMP_KEY",
        "BASH_XTRACEFD",
        "BASH_SUBSHELL",
        "SRANDOM",
        "LOGCHECK",
        # mksh (typeset -i lists them), and zsh's ARGC, FUNCNEST, ZSH_SUBSHELL
        "KSHUID",
        "KSHGID",
        "KSHEGID",
        "PGRP",
        "BASHPID",
        "PIPESTATUS",
        "ARGC",
        "FUNCNEST",
        "ZSH_SUBSHELL",
    ]
)
_CODE_VARIABLES = frozenset(
    [
        "PS1",
        "PS2",
        "PS3",
        "PS4",
        "PROMPT",
        "PROMPT2",
        "PROMPT3",
        "PROMPT4",
        "RPROMPT",
        "RPROMPT2",
        "RPS1",
        "RPS2",
        "SPROMPT",
        "PROMPT_COMMAND",
        "BASH_ENV",
        "ENV",
        "FPATH",
        "fpath",
    ]
)
# A script that declares integer variables (declare -i n, typeset -i, integer, float; also
# -E/-F floats in zsh) makes every assignment to them arithmetic. Which assignments reach them
# is not known statically (loops, functions), so then every assignment counts.
_INTEGER_DECLARATION = re.compile(
    r"(?<![\w./-])(?:integer|float)(?![\w.-])"
    r"|(?<![\w./-])(?:declare|typeset|local|readonly|export|private)"
    r"(?:[ \t]+[-+][A-Za-z]*)*[ \t]+[-+][A-Za-z]*[iEF]"
)
_ALIAS_DEFINITION = re.compile(r"(?<![\w./-])alias[ \t]+(?:-\S*[ \t]+)*([^\s=;&|()<>'\"]+)=")

# Where a script evaluates a variable's value as arithmetic or as a variable name, which bash,
# mksh and zsh do recursively: x='a[$(cmd)]'; echo $((x)) runs cmd, and so do ${a[x]}, ${s:x},
# [[ $x -eq 1 ]], [ "$x" -eq 1 ] (mksh), let, ${!x}, declare -n r=$x, read "$x", shift "$x"
# (mksh), read -t "$x" (zsh) ... A subscript is the only way in: a value with no "[" runs
# nothing there (checked for $(...), `...` and ${y:=$(...)} in each shell). Which variables a
# value reaches is not known statically (assignments, loops, set --, sh -c, read, $(...), pipes),
# so the whole template is searched, quoted text and here-documents too (sh -c '... $(($1))').
# a=([$x]=1): bash expands the subscript and then expands the result again, so there a
# $(...) or `...` in a value runs too, not only a subscript.
_COMPOUND_SUBSCRIPT = re.compile(r"(?<![^\s(])\[[^\]\n]*\]\+?=")
_NAME_BUILTINS = r"(?:read|readarray|mapfile|declare|typeset|local|export|readonly|private|global)"
_VARIABLE_ARITHMETIC = re.compile(
    r"\(\(|\$\["  # $((...)), ((...)), for ((...)), $[...]
    r"|(?<![\w./-])(?:let|shift|ulimit|getopts|unset|integer|float|nameref)(?![\w.-])"
    r"|(?<![\w-])-(?:eq|ne|lt|le|gt|ge)(?![\w-])"  # test, [ and [[ comparisons
    r"|(?:\[|(?<![\w./-])test(?![\w.-]))[^\n;&|\]]*?(?<![\w-])-[vR](?![\w-])"  # [ -v "$x" ]
    r"|(?<![\w./-])printf?(?![\w.-])[^\n;&|]*?(?<![\w-])-v(?![\w-])"  # printf -v "$x"
    r"|(?<![\w./-])"
    + _NAME_BUILTINS
    + r"(?![\w.-])[^\n;&|]*?[$`]"  # read "$x", export "$x"=
    + r"|\$\{[#!]?(?:\w+|[@*])(?:\[|:(?![-=+?]))"  # ${a[x]}, ${#a[x]}, ${s:x}, ${@:x}
    r"|\$\{[!(]"  # ${!x} (bash), ${(P)x} and the other zsh flags
    r"|\$\w+\["  # zsh: $a[x]
    r"|(?<![\w$])[A-Za-z_]\w*\[[^\]\n]*\]\+?="  # a[x]=1
    r"|(?<![\w./-])(?:declare|typeset|local|readonly|export|private|global)"
    r"(?:[ \t]+[-+][A-Za-z]*)*[ \t]+[-+][A-Za-z]*n"  # declare -n r; r=$x
    + r"|"
    + _COMPOUND_SUBSCRIPT.pattern
    + r"|(?<![\w$])(?:"
    + "|".join(sorted(_INTEGER_VARIABLES))
    + r")\+?="
    r"|(?<![\w./-])for[ \t]+(?:" + "|".join(sorted(_INTEGER_VARIABLES)) + r")(?!\w)"
)


_PIPE_INTO_SHELL = re.compile(
    r"(?<!\|)\|&?(?!\|)[ \t\n]*"
    r"(?:(?:command|builtin|exec|nohup|nice|env|busybox|time|!)[ \t]+(?:-\S*[ \t]+)*)*"
    r"((?:[^\s;&|()<>]*/)?(?:" + "|".join(sorted(_SHELLS)) + r"|source|eval|\.))(?=[\s;&|)]|\Z)"
)


def _variable_arithmetic(template: str) -> re.Match[str] | None:
    """Where ``template`` first evaluates some variable as arithmetic or a name, if it does."""
    matches = (_VARIABLE_ARITHMETIC.search(template), _INTEGER_DECLARATION.search(template))
    found = [m for m in matches if m is not None]
    return min(found, key=lambda m: m.start()) if found else None


class _Where(NamedTuple):
    """Why a placeholder is not free: the kinds of position it stands in, in order found."""

    kinds: tuple[str, ...]
    one_word: bool  # a list there would put words where the shell reads names or commands


@dataclass
class _Word:
    start: int
    holes: list[int] = field(default_factory=list)  # placeholders in it, also in its $(...)
    direct: list[int] = field(default_factory=list)  # placeholders in it, not in a $(...)
    dynamic: bool = False  # it holds $, ` or a placeholder: its text is not known here
    end: int = -1


@dataclass
class _Frame:
    # cmd (unquoted, also $(...) and <(...)), param (${...}), arith ($((...)), ((...)), $[...]),
    # subscript (a[...]), array (a=(...)), glob (*(...) and the like), sq ('...'), dq ("..."),
    # ansi ($'...'), bq (`...`), comment, heredoc (a here-document body)
    kind: str
    depth: int = 0  # unclosed "(" (or "[" in $[...]): a subshell's ")" closes no frame
    heredocs: list[tuple[str, bool, bool]] = field(default_factory=list)  # bodies due next
    delimiter: str = ""  # heredoc: the line that ends the body
    strip_tabs: bool = False  # heredoc from <<-: the delimiter line may start with tabs
    quoted: bool = False  # heredoc with a quoted delimiter: the body is kept as it is
    close: str = ""  # arith: "))" or "]"
    # cmd frames: the simple command being read
    words: list[_Word] = field(default_factory=list)
    word: _Word | None = None
    target: bool = False  # the next word is a redirection target, not an argument
    input: bool = False  # ... of an input redirection (<, <<<, <&): what the command reads
    stdin: list[int] = field(default_factory=list)  # placeholders in input redirections
    cond: bool = False  # inside [[ ... ]]
    skip: int = 0  # words to drop: the name after "function"
    cases: list[str] = field(default_factory=list)  # per open case: subject, in, pattern, body
    # param frames
    part: str = "name"  # name, offset, assign, word
    name_end: int = -1


class _Reader:
    """One reading of a template in one dialect: where each placeholder stands."""

    def __init__(
        self, template: str, at: Mapping[int, _Token], dialect: str, origin: list[int] | None = None
    ) -> None:
        self.t = template
        # Where a backslash-newline was removed: just before these indices of the joined text.
        origin = origin or list(range(len(template) + 1))
        self.joins = {j for j in range(1, len(template) + 1) if origin[j] - origin[j - 1] > 1}
        if origin[:1] and origin[0] > 0:
            self.joins.add(0)
        self.join_list = sorted(self.joins)
        self.continued = False  # a continuation the shell keeps was removed: reading is unsure
        self.stdin_holes: list[int] = []  # of the command being checked
        self.at = at
        self.extended = dialect == "extended"
        self.kinds: dict[int, list[str]] = {}
        self.one_word: set[int] = set()
        self.integers = _INTEGER_DECLARATION.search(template) is not None
        self.aliases = set(_ALIAS_DEFINITION.findall(template))
        self.stack = [_Frame("cmd")]
        self.broken = False  # a syntax error that bash recovers from was read

    def refuse(self, hole: int, kind: str) -> None:
        self.kinds.setdefault(hole, []).append(kind)

    # -- words and commands ---------------------------------------------------------------

    def start_word(self, frame: _Frame, i: int) -> _Word:
        if frame.word is None:
            frame.word = _Word(i)
        return frame.word

    def plain(self, word: _Word) -> str | None:
        """The word's text with quotes removed, or None when it is not known here."""
        if word.dynamic:
            return None
        text, out, i = self.t[word.start : word.end], [], 0
        while i < len(text):
            ch = text[i]
            if ch in "'\"":
                close = text.find(ch, i + 1)
                close = len(text) if close < 0 else close
                out.append(text[i + 1 : close])
                i = close + 1
            elif ch == "\\":
                out.append(text[i + 1 : i + 2])
                i += 2
            else:
                out.append(ch)
                i += 1
        return "".join(out)

    def end_word(self, frame: _Frame, i: int) -> None:
        word, frame.word = frame.word, None
        if word is None:
            return
        word.end = i
        if frame.target:
            # A redirection target: a file name, but a list there would add arguments.
            frame.target = False
            self.one_word.update(word.direct)
            if frame.input:
                frame.stdin.extend(word.holes)
            return
        if self.t[i : i + 1] in ("<", ">") and re.fullmatch(
            r"[0-9]+|\{\w+\}", self.t[word.start : i]
        ):
            return  # the 2 of 2>&1: an IO number, not a word
        text = self.plain(word)
        if frame.cases and frame.cases[-1] != "body":
            state = frame.cases[-1]
            if state == "subject":
                frame.cases[-1] = "in"
            elif state == "in":
                frame.cases[-1] = "pattern"
            elif text == "esac" and not frame.words:
                frame.cases.pop()
            return  # the subject and the patterns are plain words, never arguments
        if not frame.words and not frame.cond:
            if text == "case":
                frame.cases.append("subject")
                return
            if text == "esac" and frame.cases:
                frame.cases.pop()
                return
            if text in _RESERVED:
                top_skip = text == "function"
                frame.skip = 1 if top_skip else 0
                return
            if frame.skip:
                frame.skip = 0  # the name after "function"
                return
            if text == "[[" and self.extended:
                frame.cond = True
        frame.words.append(word)
        if frame.cond and text == "]]":
            self.end_command(frame)

    def end_command(self, frame: _Frame) -> None:
        words, cond = frame.words, frame.cond
        frame.words, frame.cond, frame.target = [], False, False
        self.stdin_holes, frame.stdin = frame.stdin, []
        if words:
            self.check_command(words, cond)

    def assignment_value(self, name: str, word: _Word, value_start: int, integer: bool) -> None:
        for hole in word.holes:
            if hole < value_start:
                continue
            self.one_word.add(hole)
            if name in _CODE_VARIABLES:
                self.refuse(hole, f"assign-code:{name}")
            elif integer or self.integers or name in _INTEGER_VARIABLES:
                self.refuse(hole, "assign-int")

    def assignment(self, word: _Word) -> re.Match[str] | None:
        return _ASSIGNMENT.match(self.t, word.start, word.end)

    def assignable(self, frame: _Frame) -> bool:
        """Whether a word starting now may be an assignment (whose a[...] is arithmetic)."""
        for w in frame.words:
            if self.assignment(w) is None:
                return self.plain(w) in _DECLARE
        return True

    def check_command(self, words: list[_Word], cond: bool) -> None:
        plain = [self.plain(w) for w in words]
        i, n = 0, len(words)
        while i < n and (match := self.assignment(words[i])) is not None:
            self.assignment_value(match.group(1), words[i], match.end(), integer=False)
            i += 1
        if i == n:
            return
        if cond:  # [[ ... ]]
            self.check_test(words[i + 1 :], plain[i + 1 :], single=False)
            return
        while i < n and plain[i] in _PREFIXES:
            prefix = plain[i]
            i += 1
            while i < n and (plain[i] or "").startswith("-") and plain[i] != "-":
                if prefix == "command" and plain[i] in ("-v", "-V"):
                    return  # only looks the name up
                if prefix == "env" and re.match(r"-[^-]*S|--split-string", plain[i] or ""):
                    # env -S 'cmd args': env splits the text into a command line of its own
                    for hole in [h for w in words[i:] for h in w.holes]:
                        self.refuse(hole, "runner:env -S")
                    return
                i += 2 if prefix == "exec" and plain[i] == "-a" else 1
            if prefix == "env" and i < n and plain[i] is None:
                # env {{x}}: a value may be -S, which makes the next words a command line
                for hole in [h for w in words[i:] for h in w.holes]:
                    self.refuse(hole, "runner:env")
                return
            # env NAME=value cmd: the assignments are plain arguments for env
            while prefix == "env" and i < n and self.assignment(words[i]) is not None:
                i += 1
        if i >= n:
            return
        name, args, arg_plain = plain[i], words[i + 1 :], plain[i + 1 :]
        if any(c in self.t[words[i].start : words[i].end] for c in "$`"):
            name = None  # "$cmd": an expansion inside quotes is an expansion still
        holes = [h for w in args for h in w.holes]

        def refuse_all(kind: str, among: list[int] = holes) -> None:
            for hole in among:
                self.refuse(hole, kind)

        base = name.rsplit("/", 1)[-1] if name is not None else None
        if base is None or base in _SHELLS or base in (".", "source", "eval"):
            # A shell (or source, eval) reads its standard input as code: sh <<< {{x}}.
            for hole in self.stdin_holes:
                self.refuse(hole, f"stdin:{plain[i] or 'a command named by an expansion'}")
        if name is None:
            # The command's name is an expansion (${E:-eval}, $e, "$cmd", a value): it may be
            # eval or sh, so how it reads its arguments is not known.
            self.one_word.update(words[i].direct)
            refuse_all("dynamic", holes if words[i].direct else words[i].holes + holes)
        elif name in self.aliases:
            refuse_all(f"alias:{name}")
        elif name in ("test", "[") or name == "[[":  # [[ here: the posix reading (busybox's test)
            self.check_test(args, arg_plain, single=True)
        elif name in ("printf", "print", "set"):
            self.check_options(name, args, arg_plain)
        elif name == "wait":
            self.check_wait(args, arg_plain)
        elif name in _SAFE_BUILTINS:
            pass
        elif name in _DECLARE:
            self.check_declare(name, args, arg_plain)
        elif name in ("for", "select"):
            self.check_for(args, arg_plain)
        elif name == "let":
            refuse_all("let")
        elif name in _BUILTINS:
            refuse_all(f"builtin:{name}")
        else:
            self.check_program(words[i:], plain[i:])

    def check_options(self, name: str, args: list[_Word], plain: list[str | None]) -> None:
        """printf, print, set: a value before the first literal operand could be an option
        (printf -v NAME, print -u N, set -o NAME), so values may only follow one."""
        print_options = {"-r", "-n", "-l", "-N", "-R", "-e", "-E"}
        operand = False
        for word, text in zip(args, plain, strict=True):
            if operand:
                continue
            if word.holes:
                for hole in word.holes:
                    self.refuse(hole, f"option:{name}")
                continue
            assert text is not None
            if text == "--":
                operand = True
            elif text[:1] in "-+" and len(text) > 1:
                if name != "set" and (
                    text == "-v" or (name == "print" and text not in print_options)
                ):
                    for hole in [h for w in args for h in w.holes]:
                        self.refuse(hole, f"builtin:{name} {text}")
                    return
            else:
                operand = True

    def check_wait(self, args: list[_Word], plain: list[str | None]) -> None:
        """wait: bash's ``-p NAME`` assigns to a variable, whose subscript is arithmetic; a
        value could be that -p, taking the next word (another value) as the name."""
        holes = [h for w in args for h in w.holes]
        named = any(t is not None and re.fullmatch(r"-[a-z]*p[a-z]*", t) for t in plain)
        chained = any(a.holes and b.dynamic for a, b in itertools.pairwise(args))
        if named or chained:
            for hole in holes:
                self.refuse(hole, "builtin:wait -p")

    def check_test(self, args: list[_Word], plain: list[str | None], single: bool) -> None:
        if any(text in _TEST_ARITHMETIC for text in plain):
            for word in args:
                for hole in word.holes:
                    self.refuse(hole, "cond-arith")
            return
        if not single:
            return  # [[ ]] reads its operators before expanding, so a value is never one
        previous: _Word | None = None
        for word in args:
            self.one_word.update(word.direct)
            nested = [h for h in word.holes if h not in word.direct]
            if nested or (word.holes and previous is not None and previous.holes):
                # Word splitting of $(...), or two values side by side: a value could become
                # an operator (-eq, -v) with the other as its operand.
                for hole in word.holes + (previous.holes if previous else []):
                    self.refuse(hole, "test-operator")
            previous = word

    def check_declare(self, name: str, args: list[_Word], plain: list[str | None]) -> None:
        integer = name in ("integer", "float")
        options = True
        for word, text in zip(args, plain, strict=True):
            if options and text is not None and text[:1] in "-+" and len(text) > 1:
                if text == "--":
                    options = False
                integer = integer or bool(re.search(r"[iEF]", text))
                continue
            if options and word.holes and self.assignment(word) is None:
                for hole in word.holes:
                    self.refuse(hole, f"option:{name}")
                continue
            options = False
            match = self.assignment(word)
            if match is None:
                for hole in word.holes:
                    self.refuse(hole, "name")
            else:
                self.assignment_value(match.group(1), word, match.end(), integer)

    def check_for(self, args: list[_Word], plain: list[str | None]) -> None:
        if not args:
            return
        for hole in args[0].holes:
            self.refuse(hole, "name")
        variable = plain[0] or ""
        for word in args[1:]:
            for hole in word.holes:
                if variable in _CODE_VARIABLES:
                    self.refuse(hole, f"assign-code:{variable}")
                elif self.integers or variable in _INTEGER_VARIABLES:
                    self.refuse(hole, "assign-int")

    def check_program(self, words: list[_Word], plain: list[str | None]) -> None:
        """An external program: plain arguments, unless it hands them to a shell."""
        for j, text in enumerate(plain):
            base = text.rsplit("/", 1)[-1] if text else None
            if base == "busybox" and j + 1 < len(words):
                # busybox APPLET args runs APPLET: busybox sh -c is sh -c
                self.check_command(words[j + 1 :], cond=False)
                return
            if base == "script":
                # util-linux script runs its -c argument (or a value read as -c) as a command
                for word in words[j + 1 :]:
                    for hole in word.holes:
                        self.refuse(hole, "runner:script")
                return
            if base in _JOINERS:
                for word in words[j + 1 :]:
                    for hole in word.holes:
                        self.refuse(hole, f"joiner:{base}")
                return
            if base in _SHELLS:
                self.check_shell(base, words[j + 1 :], plain[j + 1 :])
                return

    def check_shell(self, shell: str, args: list[_Word], plain: list[str | None]) -> None:
        """sh [options] [code or script] [arguments]: values only among the arguments."""
        takes_value = {"-o", "+o", "-O", "+O", "--rcfile", "--init-file"}
        skip = False
        options = True
        for word, text in zip(args, plain, strict=True):
            if not word.holes and text is not None and options and (skip or text[:1] in "-+"):
                if skip:
                    skip = False
                elif text == "--":
                    options = False
                else:
                    skip = text in takes_value
                continue
            if word.holes:
                for hole in word.holes:
                    self.refuse(hole, f"shell:{shell}")
                continue
            return  # the first literal operand: code or script; what follows is arguments

    # -- the scan -------------------------------------------------------------------------

    def hole(self, i: int, after_dollar: bool) -> None:
        if after_dollar:
            self.refuse(i, "dollar")
        if self.broken:
            self.refuse(i, "broken")
        if self.continued:
            self.refuse(i, "continued")
        crossed = False  # passed a command frame: quotes further out do not apply
        innermost = True  # only param frames so far: their part (name, offset...) applies
        for frame in reversed(self.stack):
            kind = frame.kind
            if kind not in ("param", "array"):
                innermost = False
            if kind == "cmd":
                word = frame.word
                if word is not None:
                    word.holes.append(i)
                    word.dynamic = True
                    if not crossed:
                        word.direct.append(i)
                crossed = True
            elif kind in ("arith", "subscript", "glob"):
                self.refuse(i, kind)  # even through $(...): its output is evaluated there
            elif kind == "param":
                if innermost and frame.part in ("name", "offset"):
                    self.refuse(i, "param-name" if frame.part == "name" else "offset")
                elif innermost and frame.part == "assign":
                    name = self.t[self.param_name_start(frame) : max(frame.name_end, 0)]
                    self.one_word.add(i)
                    if name in _CODE_VARIABLES:
                        self.refuse(i, f"assign-code:{name}")
                    elif self.integers or name in _INTEGER_VARIABLES:
                        self.refuse(i, "assign-int")
            elif kind == "array":
                pass
            elif not crossed:
                self.refuse(i, kind)

    def param_name_start(self, frame: _Frame) -> int:
        start = frame.name_end
        while start > 0 and (self.t[start - 1].isalnum() or self.t[start - 1] == "_"):
            start -= 1
        return start

    def run(self) -> None:
        t, at, n = self.t, self.at, len(self.t)
        stack = self.stack
        after_dollar = -1
        i = 0
        while i < n:
            top = stack[-1]
            if i in self.joins and (
                top.kind == "comment" or (top.kind == "heredoc" and top.quoted)
            ):
                # The shell keeps this backslash-newline, which this reading removed, and then
                # reads the next line differently. (Inside '...' and $'...' it keeps it too,
                # but there removing it changes no quote: awk '{ ... \<newline> ... }' is fine.)
                self.continued = True
            if top.kind == "heredoc" and (i == 0 or t[i - 1] == "\n"):
                eol = t.find("\n", i)
                eol = n if eol < 0 else eol
                line = t[i:eol]
                # a join inside this line (sorted list: long scripts stay linear)
                k = bisect.bisect_right(self.join_list, i)
                continued = k < len(self.join_list) and self.join_list[k] <= eol
                if top.quoted and continued:
                    self.continued = True
                if (line.lstrip("\t") if top.strip_tabs else line) == top.delimiter:
                    if continued:
                        # EO\<newline>F: bash, mksh and zsh end the document there, dash and
                        # busybox do not.
                        self.continued = True
                    stack.pop()
                    i = eol + 1
                    continue
            token = at.get(i)
            if token is not None:
                if top.kind == "cmd":
                    self.start_word(top, i)
                if token.placeholder is not None:
                    self.hole(i, i == after_dollar)
                i = token.end
                continue
            i = self.step(i, top)
            if i < 0:  # "$" right before a placeholder
                after_dollar = i = -i
        while len(stack) > 1:
            frame = stack.pop()
            if frame.kind == "cmd":
                self.end_word(frame, n)
                self.end_command(frame)
        self.end_word(stack[0], n)
        self.end_command(stack[0])

    def step(self, i: int, top: _Frame) -> int:
        """Read the character at ``i``; the next index (negated: a placeholder follows a $)."""
        t, stack, kind, ch = self.t, self.stack, top.kind, self.t[i]
        if kind == "heredoc":
            return i + 1
        if kind == "comment":
            if ch == "\n":
                stack.pop()  # the newline itself is read again: it may start here-doc bodies
                return i
            return i + 1
        if kind == "sq":
            if ch == "'":
                stack.pop()
            return i + 1
        if kind == "cmd" and ch == "#" and top.word is None and not top.cond:
            stack.append(_Frame("comment"))
            return i + 1
        if kind == "cmd" and ch not in _WORD_BREAK:
            word = self.start_word(top, i)
            if ch in "$`":
                word.dynamic = True
        if ch == "\\":
            # An escaped character is not special; but never swallow the start of a token.
            return i + 1 if i + 1 in self.at else i + 2
        if kind in ("ansi", "bq"):
            if ch == ("'" if kind == "ansi" else "`"):
                stack.pop()
            return i + 1
        if ch == "$":
            nxt = t[i + 1 : i + 2]
            if i + 1 in self.at:
                return -(i + 1)
            if t.startswith("((", i + 1):
                stack.append(_Frame("arith", close="))"))
                return i + 3
            if nxt == "[" and self.extended:
                stack.append(_Frame("arith", close="]"))
                return i + 2
            if nxt == "(":
                stack.append(_Frame("cmd"))
                return i + 2
            if nxt == "{":
                stack.append(_Frame("param", name_end=-1))
                return self.param_start(i + 2)
            if nxt == "'" and kind != "dq" and self.extended:
                stack.append(_Frame("ansi"))
                return i + 2
            return i + 2 if nxt and nxt in _SPECIAL_PARAMETERS else i + 1
        if ch == "`":
            stack.append(_Frame("bq"))
            return i + 1
        if kind == "dq":
            if ch == '"':
                stack.pop()
            return i + 1
        # unquoted: cmd, param, arith, subscript, array, glob
        if ch in "'\"":
            stack.append(_Frame("sq" if ch == "'" else "dq"))
            return i + 1
        if kind == "param":
            return self.param_step(i, top)
        if kind == "arith" or kind == "subscript":
            opening, closing = ("[", "]") if top.close == "]" or kind == "subscript" else ("(", ")")
            if ch == opening:
                top.depth += 1
            elif ch == closing and top.depth:
                top.depth -= 1
            elif ch == closing and (kind == "subscript" or top.close == "]"):
                stack.pop()
            elif ch == ")" and t.startswith("))", i):
                stack.pop()
                return i + 2
            return i + 1
        if kind in ("array", "glob"):
            if ch == "(":
                top.depth += 1
                if kind == "array":
                    # a=( ( ...: a syntax error, after which bash skips to the end of the line
                    # and reads on, so a newline inside a later quoted value starts a command.
                    self.broken = True
            elif ch == ")" and top.depth:
                top.depth -= 1
            elif ch == ")":
                stack.pop()
            return i + 1
        return self.cmd_step(i, top)

    def param_start(self, i: int) -> int:
        """Just after ``${``: skip the name part; a placeholder there is caught by hole()."""
        t = self.t
        if t[i : i + 1] in ("!", "#") and t[i + 1 : i + 2] not in ("}", ""):
            i += 1
        if t[i : i + 1] == "(" and self.extended:  # zsh flags: ${(e)name}
            close = t.find(")", i)
            i = len(t) if close < 0 else close + 1
        return i

    def param_step(self, i: int, top: _Frame) -> int:
        t, ch = self.t, self.t[i]
        if ch == "}":
            self.stack.pop()
            return i + 1
        if top.part == "name":
            if ch.isalnum() or ch == "_" or (ch in _SPECIAL_PARAMETERS and top.name_end < 0):
                top.name_end = i + 1
                return i + 1
            if ch == "[":
                top.name_end = max(top.name_end, i)
                self.stack.append(_Frame("subscript"))
                return i + 1
            nxt = t[i + 1 : i + 2]
            if ch == ":" and nxt in ("-", "=", "+", "?"):
                top.part = "assign" if nxt == "=" else "word"
                return i + 2
            if ch == ":":
                top.part = "offset"  # ${v:offset:length}, arithmetic
                return i + 1
            top.part = "assign" if ch == "=" else "name" if ch == "@" else "word"
            return i + 1
        if top.part == "offset" and ch == "(":
            top.depth += 1
        elif top.part == "offset" and ch == ")" and top.depth:
            top.depth -= 1
        return i + 1

    def cmd_step(self, i: int, top: _Frame) -> int:
        t, stack, ch = self.t, self.stack, self.t[i]
        word = top.word
        if ch == "[" and word is not None and not word.dynamic and not top.cond:
            if _IDENTIFIER.match(t[word.start : i]) and self.assignable(top):
                stack.append(_Frame("subscript"))  # a[...]=v: the subscript is arithmetic
            return i + 1
        if ch == "(" and not top.cond and re.match(r"\([ \t]*\)", t[i:]):
            # name() { ...; }: a function definition, not a command with arguments
            self.end_word(top, i)
            top.words = []
            return t.index(")", i) + 1
        if ch == "(" and word is not None and not top.cond:
            text = t[word.start : i]
            stack.append(_Frame("array" if text.endswith("=") else "glob"))
            return i + 1
        if ch not in _WORD_BREAK:
            return i + 1
        if top.cond and ch in "()<>&|!":
            self.end_word(top, i)
            return i + 1
        if top.cond and ch == "\n":
            self.end_word(top, i)
            return i + 1
        self.end_word(top, i)
        pattern = bool(top.cases) and top.cases[-1] == "pattern"
        if ch in " \t":
            return i + 1
        if pattern and ch in "(|":
            return i + 1
        if pattern and ch == ")":
            top.cases[-1] = "body"
            return i + 1
        if ch == "(":
            self.end_command(top)
            if self.extended and t.startswith("((", i) and not top.words:
                stack.append(_Frame("arith", close="))"))
                return i + 2
            top.depth += 1
            return i + 1
        if ch == ")":
            self.end_command(top)
            if top.depth:
                top.depth -= 1
            elif len(stack) > 1:
                stack.pop()
            return i + 1
        if ch in "<>":
            if t.startswith("<<<", i):
                top.target = top.input = True
                return i + 3
            if t.startswith("<<", i):
                strip_tabs = t.startswith("-", i + 2)
                delimiter, j = self.heredoc_word(i + 2 + strip_tabs)
                if delimiter:
                    quoted = any(c in "'\"\\" for c in t[i + 2 + strip_tabs : j])
                    top.heredocs.append((delimiter, strip_tabs, quoted))
                return j
            if t[i + 1 : i + 2] == "(":  # <(...) >(...): a word holding a command
                self.start_word(top, i).dynamic = True
                stack.append(_Frame("cmd"))
                return i + 2
            j = i + 1
            while j < len(t) and t[j] in "<>&|":
                j += 1
            top.target = True
            top.input = ch == "<"
            return j
        if ch == "&" and t[i + 1 : i + 2] == ">":  # &> and &>>: redirections
            return i + 1
        # ; & | and newline end a command
        self.end_command(top)
        if (
            top.cases
            and top.cases[-1] == "body"
            and (t.startswith(";;", i) or t.startswith(";&", i) or t.startswith(";|", i))
        ):
            top.cases[-1] = "pattern"
            j = i + 2
            while j < len(t) and t[j] in ";&":
                j += 1
            return j
        if ch == "\n" and top.heredocs:
            # Bodies follow one another, the first here-document's first.
            for delimiter, strip_tabs, quoted in reversed(top.heredocs):
                stack.append(
                    _Frame("heredoc", delimiter=delimiter, strip_tabs=strip_tabs, quoted=quoted)
                )
            top.heredocs.clear()
        return i + 1

    def heredoc_word(self, i: int) -> tuple[str, int]:
        """The delimiter of a here-document whose ``<<`` ends just before ``i``, quotes removed."""
        t = self.t
        while i < len(t) and t[i] in " \t":
            i += 1
        word: list[str] = []
        while i < len(t) and t[i] not in _WORD_BREAK:
            if i in self.at:
                token = self.at[i]
                if token.placeholder is not None:
                    self.refuse(i, "delimiter")
                # A delimiter made from a placeholder is unknown here: no line ends the body,
                # so every later {{expr}} counts as inside it. Refusing beats guessing.
                return "\n", token.end
            ch = t[i]
            if ch in "'\"":
                close = t.find(ch, i + 1)
                close = len(t) if close < 0 else close
                word.append(t[i + 1 : close])
                i = close + 1
            elif ch == "\\" and i + 1 < len(t):
                word.append(t[i + 1])
                i += 2
            else:
                word.append(ch)
                i += 1
        return "".join(word), i


def _join_continuations(template: str) -> tuple[str, list[int]]:
    r"""``template`` with every backslash-newline removed, and where each character came from.

    The shells remove a backslash-newline before they split words, so ``ev\<newline>al`` is
    ``eval`` and a continued line is no here-document delimiter. They keep it inside '...',
    $'...' (where removing it changes no quote), a comment and a quoted-delimiter
    here-document; the reader refuses placeholders after a continuation in those two. ``origin[j]`` is the index in
    ``template`` of the joined text's character ``j`` (``origin[len(joined)]`` its end).
    """
    out: list[str] = []
    origin: list[int] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "\\" and template[i + 1 : i + 2] == "\n":
            i += 2
            continue
        out.append(ch)
        origin.append(i)
        if ch == "\\" and i + 1 < n:  # an escaped character (an escaped backslash included)
            out.append(template[i + 1])
            origin.append(i + 1)
            i += 1
        i += 1
    origin.append(n)
    return "".join(out), origin


def _dialects(shell: str | None) -> tuple[str, ...]:
    name = (shell or "").rsplit("/", 1)[-1]
    if name in ("bash", "zsh", "mksh", "lksh", "ksh", "ksh93"):
        return ("extended",)
    if name == "dash":
        return ("posix",)
    return _DIALECTS


def _shell_contexts(
    template: str, tokens: list[_Token], dialects: tuple[str, ...] = ("extended", "posix")
) -> dict[int, _Where]:
    """For each placeholder not free in every dialect: its start → where it stands."""
    joined, origin = _join_continuations(template)
    joined_at = {o: j for j, o in enumerate(origin)}
    at: dict[int, _Token] = {}
    for t in tokens:  # tokens never hold a newline, so none holds a continuation either
        start = joined_at[t.start]
        at[start] = _Token(start, start + t.end - t.start, t.placeholder)
    kinds: dict[int, list[str]] = {}
    one_word: set[int] = set()
    for dialect in dialects:
        reader = _Reader(joined, at, dialect, origin)
        reader.run()
        for hole, found in reader.kinds.items():
            start = origin[hole]
            kinds.setdefault(start, []).extend(k for k in found if k not in kinds.get(start, []))
        one_word |= {origin[hole] for hole in reader.one_word}
    # A pipe into a shell (echo {{x}} | sh): what goes down it is read as code. Which earlier
    # command writes into it (a { ...; } group, a loop) is not followed: every placeholder
    # before such a pipe is refused.
    for pipe in _PIPE_INTO_SHELL.finditer(joined):
        for hole, token in at.items():
            if hole < pipe.start() and token.placeholder is not None:
                start = origin[hole]
                kind = "stdin:" + pipe.group(1)
                if kind not in kinds.setdefault(start, []):
                    kinds[start].append(kind)
    return {
        start: _Where(tuple(kinds.get(start, ())), start in one_word)
        for start in kinds.keys() | one_word
    }


# Why a quoted word is unsafe in each place, and what to write instead (%-formatted, since
# the texts are full of braces). %(cmd)s is the command or variable a kind names.
_REOPEN = "close the quotes before it and reopen them after: %(quotes)s"
_ENV = 'pass it as an environment value instead: -e V=%(text)s, then "$V" in the command'
_INTEGER = "give an int (%(int)s is inserted as digits), or compute the number in Python"
_CONTEXTS: dict[str, tuple[str, str]] = {
    "sq": ("inside '...' quotes", _REOPEN),
    "dq": ('inside "..." quotes', _REOPEN),
    "ansi": ("inside $'...' quotes", _REOPEN),
    "bq": ("inside `...`", "use $(...) instead of backticks"),
    "arith": (
        (
            "inside $((...)), ((...)) or $[...], arithmetic that runs a $(...) in the value even "
            "within quotes"
        ),
        _INTEGER,
    ),
    "subscript": (
        "in an array subscript, arithmetic that runs a $(...) in the value even within quotes",
        _INTEGER,
    ),
    "offset": ("in a ${var:offset:length}, which is arithmetic", _INTEGER),
    "let": ("an argument of let, which is arithmetic", _INTEGER),
    "cond-arith": (
        (
            "an operand of a test with -eq, -lt, -v or the like, which bash, mksh and zsh evaluate "
            "as arithmetic (running a $(...) in the value)"
        ),
        _INTEGER,
    ),
    "assign-int": (
        (
            "assigned to a variable that may be an integer (declare -i, typeset -i, integer, or a "
            "shell's own such as RANDOM), and such assignments are arithmetic"
        ),
        _INTEGER + "; or drop the integer declaration",
    ),
    "assign-code": (
        "assigned to %(cmd)s, which the shell runs as code",
        "set %(cmd)s to text written in the template, or use %(raw)s for trusted text",
    ),
    "broken": (
        (
            "after a ( inside an array assignment (a=( ( ...), a syntax error after which bash "
            "reads on at the next line, which may be inside the value"
        ),
        "remove or quote that (, or use %(raw)s for trusted text",
    ),
    "continued": (
        (
            "after a backslash-newline inside a # comment, a quoted here-document or a "
            "here-document's end line, where the shells differ on joining the lines"
        ),
        "remove that backslash-newline, or use %(raw)s for trusted text",
    ),
    "comment": (
        "in a # comment, which a newline in the value would end",
        "take it out of the comment, or use %(raw)s for trusted text",
    ),
    "heredoc": (
        "in a here-document, where quotes are plain text",
        "set a variable before it (v=%(text)s) and write $v inside, or use %(raw)s",
    ),
    "delimiter": (
        "a here-document delimiter, which decides where the document ends",
        "write the delimiter in the template, or use %(raw)s for trusted text",
    ),
    "dollar": (
        "right after a $, which would change how the shell reads it",
        "put a space or quotes between them, or use $%(raw)s for a trusted variable name",
    ),
    "param-name": (
        "where ${...} expects a variable name (a name with a subscript runs a $(...) in it)",
        "write the name in the template, or use %(raw)s for a trusted name",
    ),
    "name": (
        "where the shell expects a variable name (a name with a subscript runs a $(...) in it)",
        "write the name in the template; values go after NAME=",
    ),
    "option": (
        "where %(cmd)s may read it as an option (-v NAME, -o ...)",
        "put a literal argument or -- before it (printf '%%s' %(text)s, set -- %(text)s)",
    ),
    "builtin": (
        "an argument of %(cmd)s, which the shell reads as code, a variable name or arithmetic",
        _ENV,
    ),
    "alias": (
        "an argument of %(cmd)s, an alias the script defines, so what reads it is not known",
        "call the command itself, or " + _ENV[0].lower() + _ENV[1:],
    ),
    "shell": (
        "the code or an option of %(cmd)s, which would run the value as shell code",
        (
            "pass it after the code, as an argument: %(cmd)s -c 'echo \"$1\"' %(cmd)s %(text)s; "
            'or as an environment value: -e V=%(text)s, then "$V" in the code'
        ),
    ),
    "runner": (
        "an argument of %(cmd)s, which may run it as a command line",
        'pass it as an environment value instead: -e V=%(text)s, then "$V" in the command line',
    ),
    "stdin": (
        "on the standard input of %(cmd)s, which reads it as shell code",
        'pass it as an environment value instead: -e V=%(text)s, then "$V" in the code',
    ),
    "joiner": (
        "an argument of %(cmd)s, which joins its arguments into a command line for a shell",
        "podmagic cannot quote for that shell; use %(raw)s with text you have checked",
    ),
    "test-operator": (
        (
            "an operand of test or [ next to another value or $(...), where a value could be read "
            "as an operator (-eq, -v) acting on the other"
        ),
        'use [[ ... ]], or put a literal operator between them: [ %(text)s = "$y" ]',
    ),
    "dynamic": (
        "an argument of a command whose name is a value, so how it reads it is not known",
        "write the command's name in the template",
    ),
    "glob": (
        "inside a pattern's (...), where zsh reads glob qualifiers that run code",
        "match the pattern in Python, or use %(raw)s for trusted text",
    ),
}


def _context_error(template: str, p: Placeholder, where: _Where) -> InterpolationError:
    # The first kind that no value can satisfy, else the first (an integer would do).
    kind = next((k for k in where.kinds if k not in _NUMERIC), where.kinds[0])
    return _error(template, p, kind)


def _error(template: str, p: Placeholder, kind: str, extra: str = "") -> InterpolationError:
    text = template[p.start : p.end]
    raw = "{{" + p.expr + "|raw}}"
    quotes = f'the value is quoted for you, as in "pod "{text}" is up"; or use {raw}'
    base, _, cmd = kind.partition(":")
    where, hint = _CONTEXTS[base]
    values = {
        "text": text,
        "raw": raw,
        "quotes": quotes,
        "cmd": cmd,
        "int": "{{ int(" + p.expr + ") }}",
    }
    return InterpolationError(
        f"{text} is {where % values}{extra} ({_location(template, p.start)})",
        hint=hint % values,
    )


def _check_words(
    template: str, p: Placeholder, where: _Where | None, words: list[str], value: Any
) -> str | None:
    """The text for a placeholder that must be an integer or one word; None when it is free."""
    if where is None or p.raw:
        return None
    if where.kinds:  # every kind is numeric here: only an int is safe
        if type(value) is not int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise _error(
                template,
                p,
                where.kinds[0],
                f", and its value is a {type(value).__name__}, not an int",
            )
        return str(int(value))
    if len(words) != 1:
        text = template[p.start : p.end]
        raise InterpolationError(
            f"{text} gives {len(words)} words where only one may stand (an assignment, a "
            f"redirection, a command name or a test operand: the others would become "
            f"arguments or commands) ({_location(template, p.start)})",
            hint="pick one item, or join them into one word: {{ ' '.join(" + p.expr + ") }}",
        )
    return None


# -- values to words ------------------------------------------------------------------------


def _render(
    template: str,
    p: Placeholder,
    code: CodeType,
    scope: dict[str, Any],
    where: _Where | None,
    arithmetic: re.Match[str] | None,
) -> str:
    text = template[p.start : p.end]
    with _user_code(text):
        # Iterating a generator runs user code too, so it belongs inside.
        value = eval(code, scope)
        words = list(_words(value, text))
    checked = _check_words(template, p, where, words, value)
    if checked is not None:
        return checked
    if arithmetic is not None and not p.raw:
        compound = _COMPOUND_SUBSCRIPT.search(template) or _COMPOUND_SUBSCRIPT.search(
            _join_continuations(template)[0]
        )
        if any("[" in word for word in words):
            raise _subscript_error(template, p, arithmetic)
        if compound is not None and any("$" in word or "`" in word for word in words):
            raise _subscript_error(template, p, compound, "a $ or `")
        line_start = template.rfind("\n", 0, p.start) + 1
        bracket = template.rfind("[", line_start, p.start)
        if (
            bracket >= 0
            and "]" not in template[bracket : p.start]
            and any("$" in word or "`" in word for word in words)
        ):
            # s=a[{{x}}]: the template writes the subscript around the value, and an
            # arithmetic use of $s later evaluates it, running a $(...) in the value.
            raise _subscript_error(template, p, arithmetic, "a $ or ` inside [...]")
    return " ".join(words if p.raw else map(shlex.quote, words))


@contextmanager
def _user_code(text: str) -> Iterator[None]:
    """What the user's expression ``text`` raises, as one :class:`InterpolationError` line."""
    try:
        yield
    except InterpolationError:
        raise
    except NameError as exc:
        if exc.name is None:  # raised by hand, without a name: report it like any other error
            raise InterpolationError(f"{text} {raised_line(exc)}") from None
        raise InterpolationError(
            f"name {exc.name!r} is not defined (in {text})",
            hint=f"define it in the notebook, or {_ESCAPE_HINT}",
        ) from exc
    except Exception as exc:  # noqa: BLE001 - the user's expression may raise anything
        raise InterpolationError(f"{text} {raised_line(exc)}") from None


#: What :func:`placeholder_value` returns for text that is not one placeholder.
NOT_ONE_PLACEHOLDER: Any = object()


def placeholder_value(text: str, namespace: Mapping[str, Any]) -> Any:
    """The Python value of ``text`` when it is exactly one ``{{expr}}`` (not ``|raw``),
    evaluated as :func:`interpolate` evaluates (in a copy of ``namespace``, errors as one
    line); :data:`NOT_ONE_PLACEHOLDER` for any other text.

    For places that take values as data rather than as shell words, such as ``%pod``'s
    targets (``%pod {{res.failed}} -- cmd``): the value is never turned into text to read.
    """
    stripped = text.strip()
    tokens = _tokenize(stripped)
    if len(tokens) != 1 or tokens[0].placeholder is None:
        return NOT_ONE_PLACEHOLDER
    p = tokens[0].placeholder
    if p.raw or p.start != 0 or p.end != len(stripped):
        return NOT_ONE_PLACEHOLDER
    code = _compile_or_raise(stripped, p)
    with _user_code(stripped):
        return eval(code, dict(namespace))


def _subscript_error(
    template: str, p: Placeholder, use: re.Match[str], holding: str = "'['"
) -> InterpolationError:
    text = template[p.start : p.end]
    found = use.string  # the template, or the template with its continuations joined
    start = use.start() - (found[use.start() - 1 : use.start()] == "$")
    construct = found[start : use.end()].split()[0]
    return InterpolationError(
        f"{text} gives a value with {holding} and the script evaluates variables as arithmetic or "
        f"names ('{construct}' at {_location(found, start)}), where bash, mksh and zsh "
        f"run a $(...) in a subscript of a value that reaches them through a variable "
        f"({_location(template, p.start)})",
        hint=(
            "give an int ({{ int(" + p.expr + ") }}) if it is a number; otherwise check the "
            f"value and leave the {holding} out, or do the arithmetic in a separate command"
        ),
    )


def raised_line(exc: BaseException) -> str:
    """``raised ValueError ...``: what a user's expression raised, by type only.

    An exception's message may quote the value it failed on (``int(secret)`` gives
    ``invalid literal for int() with base 10: 'hunter2'``), so it never reaches an error
    line, and the exception is not chained either (a traceback would print it).
    """
    return (
        f"raised {type(exc).__name__} (its message is left out, as it may quote a value; "
        "evaluate the expression in a cell to see it)"
    )


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
    if isinstance(value, PodResult):
        # Its text is a summary, not a word: {{res.failed}} in a command would spread that
        # over the command line. Targets take results as they are (%pod {{res}} -- ...).
        raise InterpolationError(
            f"{where} is a PodResult (results of a run), not a word",
            hint="for the pod names write {{[r.pod for r in results]}}; to run in those pods, "
            "put the results before the ` -- `: %pod {{results}} -- COMMAND",
        )
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
    try:
        text.encode()
    except UnicodeEncodeError:
        # Said of the value here: left to the script's own check, it would blame the script.
        raise InterpolationError(
            f"{where} is not valid Unicode text (it holds a lone surrogate)",
            hint="decode it with errors='replace' first, or send binary data with --stdin",
        ) from None
    return text
