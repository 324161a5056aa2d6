"""``%pod`` / ``%%pod``: parse the options, interpolate values, pick a renderer, and wire them
to the engine. Nothing else happens here.

    %pod TARGET... [options] -- COMMAND        one command line
    %%pod TARGET... [options]                  the cell body is a shell script
    %pod {{res.failed}} [options] -- COMMAND   earlier results (or a list of names) as targets
    %pod --rerun RESULTS [options]             the run that made RESULTS, again in their pods
    %pod_target TARGET... [options]            the target of every %pod that names none

Settings a user sets once are traitlets (``%config PodMagic.namespace = "prod"``).
"""

from __future__ import annotations

import difflib
import keyword
import shlex
import sys
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from traitlets import Bool, Float, Int, List, TraitError, Unicode, validate

from ._background import BackgroundRun, wait_unattended
from ._client import (
    Cluster,
    _RunOrigin,
    brace_hint,
    env_name_start,
    in_callers_words,
    ok_exit_codes,
    option_in_flag_words,
)
from ._command import _ENV_NAME
from ._credentials import DEFAULT_PLUGIN_TIMEOUT, load_credentials
from ._engine import (
    DEFAULT_CAPTURE_BUDGET,
    DEFAULT_CAPTURE_LIMIT,
    DEFAULT_CONCURRENCY,
    ExecOptions,
    RunControl,
)
from ._errors import ConfigError, PodmagicError, PodsFailedError, SelectionError
from ._events import Event, EventCallback
from ._interpolation import (
    NOT_ONE_PLACEHOLDER,
    InterpolationError,
    find_placeholders,
    interpolate,
    placeholder_value,
    raised_line,
)
from ._many import Clusters, ClustersSelection, _ManyOrigin, context_names, is_glob
from ._parsing import get_format, parser_for
from ._portal import get_portal, run_blocking
from ._python import DEFAULT_PYTHON, PythonProgram, frame_or_values, substitute
from ._query import Target, TargetQuery, check_query
from ._render import NullRenderer, RenderLimits, choose_renderer
from ._resolve import Selection
from ._results import ExecStatus, PodResult, PodResults, check_parsed, parse_problems
from ._safe_text import visible_controls
from ._safety import DEFAULT_CONFIRM_ABOVE, DEFAULT_PROTECTED_CONTEXTS, check_allowed, names_no_pods

__all__ = ["PodMagic", "RunInterrupted"]

# The sandbox each shell's ``%pod_sandbox start`` started and ``%pod_sandbox stop`` did not stop
# yet. ``%reload_ext podmagic`` makes a new PodMagic (only the package's __init__ is reloaded,
# not this module): it carries on with that sandbox instead of forgetting one that still serves.
_started_sandboxes: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


_Magic = TypeVar("_Magic", bound=Callable[..., Any])


def _cluster_arguments(magic: _Magic, *, many_contexts: bool = False) -> _Magic:
    """The options that say where pods are looked for, as every magic reaching pods takes them:
    ``-n``, ``-A``, ``--context`` and ``--kubeconfig`` (shown in that order in its help).
    ``many_contexts``: ``--context`` may be repeated, or a glob (``%pod``: one run across
    the contexts); else it is kept as given all the same, for :meth:`PodMagic._one_context`
    to refuse several in one line instead of keeping the last."""
    context = (
        argument(
            "--context",
            action="append",
            help="kubeconfig context; repeat it, or give a glob ('staging-*'), to run in "
            "several contexts at once",
        )
        if many_contexts
        else argument("--context", action="append", help="kubeconfig context")
    )
    where = [
        argument(
            "-n", "--namespace", help="namespace (default: PodMagic.namespace, else the context's)"
        ),
        argument("-A", "--all-namespaces", action="store_true", help="look in every namespace"),
        context,
        argument("--kubeconfig", help="kubeconfig file"),
    ]
    # Applied as stacked decorators are, the last first, so the help keeps this order.
    for option in reversed(where):
        magic = option(magic)
    return magic


def _in_one_line(magic: Callable[[str], Any], line: str) -> Any:
    """Run ``magic(line)``; a bad option value (``ValueError``) becomes one ``UsageError``
    line, its control characters shown, never obeyed."""
    try:
        return magic(line)
    except (UsageError, ValueError) as error:
        if isinstance(error, PodmagicError):
            raise
        raise UsageError(visible_controls(str(error))) from None


class RunInterrupted(KeyboardInterrupt):
    """A blocking ``%pod`` run was interrupted (the kernel's stop button, Ctrl-C).

    Raised after the run was cancelled and its partial results shown (and stored with
    ``-o NAME``), so that the cell ends as interrupted and "Run All" stops there instead of
    going on with the next cell. Shown as one line; ``results`` holds the partial results.
    """

    def __init__(self, results: PodResults, out: str | None) -> None:
        self.results = results
        counts = {status: sum(1 for r in results if r.status is status) for status in ExecStatus}
        cancelled = counts[ExecStatus.CANCELLED]
        parts = [f"{cancelled} exec{'' if cancelled == 1 else 's'} cancelled"]
        if counts[ExecStatus.NOT_STARTED]:
            parts.append(f"{counts[ExecStatus.NOT_STARTED]} not started")
        finished = (
            len(results) - cancelled - counts[ExecStatus.NOT_STARTED] - counts[ExecStatus.SKIPPED]
        )
        if finished:
            parts.append(f"{finished} finished")
        where = f"the partial results are in {out}" if out else "-o NAME keeps the partial results"
        super().__init__(f"the run was interrupted: {', '.join(parts)}; {where}")

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class _ShownResults(PodResults):
    """Results whose summary the live view already put on screen in this cell.

    Returned by a bare ``%pod`` as the cell's value: IPython's Out[] would show the same
    summary twice, so the first display in that same execution is skipped; later ones
    (``r`` in another cell) display normally.
    """

    _shown_in: int | None = None

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
        if shell is not None and self._shown_in == shell.execution_count:
            self._shown_in = None
            return
        display(PodResults(self))


class _PromptlessOnce:
    """``sys.displayhook`` until it is next called: ``value`` is displayed without the
    ``Out[n]:`` prompt, anything else as usual; then IPython's own hook is back."""

    def __init__(self, hook: Any, value: object) -> None:
        self.hook = hook
        self.value = value

    def __call__(self, result: object = None) -> None:
        sys.displayhook = self.hook
        if result is not self.value:
            self.hook(result)
            return
        self.hook.write_output_prompt = lambda: None  # this one call only
        try:
            self.hook(result)
        finally:
            del self.hook.write_output_prompt


def _hide_output_prompt(shell: Any, value: object) -> None:
    """Leave ``Out[n]:`` out when the displayhook shows ``value`` in this cell.

    A bare ``%pod`` has already displayed its summary, and its value displays as nothing in
    that same cell (``_ShownResults``); terminal IPython writes the ``Out[n]:`` prompt before
    it asks the value, so an empty ``Out[n]:`` line would follow. The value still becomes
    ``_`` and ``Out[n]``. Only inside a cell, where IPython's display trap has put its hook
    in ``sys.displayhook`` (and puts back the previous one when the cell ends).
    """
    current: Any = sys.displayhook
    if isinstance(current, _PromptlessOnce):  # an earlier %pod in the same cell
        current = current.hook
    if current is None or current is not getattr(shell, "displayhook", None):
        return
    sys.displayhook = _PromptlessOnce(current, value)


@dataclass(frozen=True)
class _Finish:
    """What ``-o``, ``--parse``/``--pattern`` and ``--check`` ask done with a run's results.

    One description and one :meth:`apply`, so that a blocking run and a ``--bg`` run store,
    parse and check the same way.
    """

    out: str | None = None
    parse: str | None = None
    parse_options: Mapping[str, Any] = field(default_factory=dict)
    check: bool = False
    raw: bool = False
    diff: bool = False
    #: A --python run: the cell's value is the values' frame, else the values.
    python: bool = False

    @classmethod
    def from_args(cls, args: Any) -> _Finish:
        """From the parsed options; a bad format or parse option is a ``ValueError`` now,
        before anything contacts the cluster."""
        options = {"pattern": args.pattern} if args.pattern else {}
        if args.parse:
            if get_format(args.parse).name == "regex" and not args.pattern:
                raise ValueError(
                    "--parse regex needs --pattern RE, whose named groups become the columns "
                    "(e.g. --pattern '(?P<key>\\w+)=(?P<value>.*)')"
                )
            # Checked here, before anything runs: a pattern that does not compile must not
            # surface only after the command ran in every pod.
            parser_for(args.parse, **options)
        elif options:
            raise ValueError("--pattern goes with --parse regex")
        if args.raw and not args.parse:
            raise ValueError("--raw goes with --parse FORMAT (it keeps converted columns' text)")
        if args.python_bin is not None and not args.python:
            raise ValueError("--python-bin goes with --python (the interpreter of a Python cell)")
        if args.python_bin is not None and not args.python_bin.strip():
            raise ValueError("--python-bin takes the interpreter's name or path, e.g. python3")
        clash = [
            flag
            for flag, given in (
                ("-t", args.tty),
                ("--shell", args.shell is not None),
                ("--no-shell", args.no_shell),
                ("--parse", args.parse is not None),
            )
            if given and args.python
        ]
        if clash:
            raise ValueError(
                f"--python runs the cell with the pod's Python, without a shell or a terminal, "
                f"and gives back values (res.values, res.frame): leave out {', '.join(clash)}"
            )
        if args.diff and args.bg:
            # The diff follows the summary in the cell; a --bg run ends after the cell did.
            raise ValueError(
                "--diff shows after a blocking run's summary; with --bg, use h.result().diff()"
            )
        return cls(
            out=args.out,
            parse=args.parse,
            parse_options=options,
            check=args.check,
            raw=args.raw,
            diff=args.diff,
            python=args.python,
        )

    def apply(
        self,
        results: PodResults,
        namespace: dict[str, Any],
        show: Callable[[str], None],
    ) -> Any:
        """Parse, store under ``-o NAME``, then check; the value (results or DataFrame).

        ``-o NAME`` stores the results, with the parsed DataFrame as ``NAME.frame``; the
        cell's value with ``--parse`` is the DataFrame. ``show`` gets the pods missing from
        the parsed rows, in words: they never pass in silence, ``-q`` or not.
        """
        value: Any = results
        stored: Any = results
        if self.parse:
            value = results.parse(self.parse, raw=self.raw, **self.parse_options)
            stored = results.with_frame(value)
            problems = parse_problems(value)
            if problems:
                show(visible_controls(problems))
        if self.out:
            namespace[self.out] = stored
        elif self.python:
            value = results.frame if results.frame is not None else frame_or_values(results)
            if results.frame is None and not isinstance(value, dict):
                stored = results.with_frame(value)  # e.g. merged from several contexts
        if self.check and self.parse:
            # One ParseError line for the frame's pods, a failed command among them (as
            # check_parsed() raises it); PodsFailedError only for what it leaves out.
            check_parsed(value)
        if self.check and not results.ok:
            raise PodsFailedError(results)
        return value


async def _as_written(run: Awaitable[PodResults], written: tuple[str, str, str]) -> PodResults:
    """The results of ``run``, their provenance naming the target, the selector and the field
    selector as the cell wrote them."""
    results = await run
    if results.provenance is not None:
        target, selector, fields = written
        results._provenance = replace(
            results.provenance, target=target, selector=selector, field_selector=fields
        )
    return results


def _show_diffs(results: PodResults) -> None:
    """``--diff``: stdout's diff, and stderr's where the pods' stderr differ."""
    from IPython.display import display

    display(results.diff())
    stderr = results.diff("stderr")
    if len(stderr):
        display(stderr)


def _show_text(text: str) -> None:
    from IPython.display import display

    display({"text/plain": text}, raw=True)


def _split_line(line: str) -> tuple[str, str | None]:
    """Options before `` -- ``, the command after it (kept verbatim), or no command."""
    padded = f" {line} "
    index = padded.find(" -- ")
    if index < 0:
        return line.strip(), None
    return padded[:index].strip(), padded[index + 4 :].strip()


def _split_options(text: str) -> list[str]:
    """Split options like a POSIX shell, keeping each ``{{expr}}`` whole.

    So `-l 'app in (a,b)'`, `-l ''` and `-e NAME={{ 'a b' }}` mean what they look like.
    """
    placeholders = find_placeholders(text)
    masked, last, saved = [], 0, {}
    for index, placeholder in enumerate(placeholders):
        token = f"\x00{index}\x00"
        saved[token] = text[placeholder.start : placeholder.end]
        masked.append(text[last : placeholder.start] + token)
        last = placeholder.end
    masked.append(text[last:])
    try:
        words = shlex.split("".join(masked))
    except ValueError as error:
        raise UsageError(f"cannot read the options: {error} (check the quotes)") from None
    for token, original in saved.items():
        words = [word.replace(token, original) for word in words]
    return words


# -- errors that teach ---------------------------------------------------------------------------
# A mistake at the prompt should end in a line that shows the fix: the forgotten ` -- `, the
# option as it is spelt, {{var}} for the {var} that IPython expands elsewhere but not here.


def _word_spans(text: str) -> list[tuple[int, int]]:
    """Where each word of an option line begins and ends, split as :func:`_split_options`
    splits it (quotes and ``{{expr}}`` stay inside their word)."""
    holes = {p.start: p.end for p in find_placeholders(text)}
    spans: list[tuple[int, int]] = []
    start: int | None = None
    quote, i = "", 0
    while i < len(text):
        char = text[i]
        if not quote and i in holes:
            start = i if start is None else start
            i = holes[i]
            continue
        if not quote and char.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        else:
            start = i if start is None else start
            if char == "\\" and quote != "'":
                i += 1
            elif quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
        i += 1
    if start is not None:
        spans.append((start, len(text)))
    return spans


def _option_action(parser: Any, word: str) -> tuple[bool, bool]:
    """``(known, takes_next)``: whether ``word`` is one of the parser's options (exactly, an
    unambiguous ``--`` prefix, ``--opt=value``, ``-xVALUE`` or joined short flags), and
    whether it takes the next word as its value."""
    table: dict[str, Any] = parser._option_string_actions
    name, equals, _ = word.partition("=")
    if word.startswith("--"):
        found = table.get(name)
        if found is None:  # argparse takes an unambiguous prefix: --pars for --parse
            matches = [o for o in table if o.startswith("--") and o.startswith(name)]
            found = table[matches[0]] if len(matches) == 1 else None
        return found is not None, bool(found is not None and found.nargs != 0 and not equals)
    first = table.get(word[:2])
    if first is None:
        return False, False
    if len(word) == 2:
        return True, first.nargs != 0
    if first.nargs != 0:
        return True, False  # -n demo written -ndemo
    # Joined flags (-qA): each one must be a flag that takes no value, but the last.
    flags = [table.get(f"-{char}") for char in word[1:]]
    if any(flag is None for flag in flags):
        return False, False
    return True, flags[-1] is not None and flags[-1].nargs != 0


def _misspelt(parser: Any, text: str) -> str | None:
    """``unknown option --timout: did you mean --timeout?`` for the first option of ``text``
    that the parser does not know and that is close to one it knows; else None."""
    longs = [o for o in parser._option_string_actions if o.startswith("--")]
    words = [text[s:e] for s, e in _word_spans(text)]
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if not word.startswith("-") or word == "-":
            continue
        known, skip = _option_action(parser, word)
        name = word.lstrip("-").partition("=")[0]
        if known or len(name) < 3:  # -a, -la: a command's flags, not a misspelling
            continue
        close = difflib.get_close_matches(f"--{name}", longs, n=1, cutoff=0.8)
        if close:
            return f"unknown option {word}: did you mean {close[0]}?"
    return None


def _forgotten_separator(parser: Any, text: str, *, default: bool, magic: str) -> str | None:
    """The line ``text`` with the `` -- `` it seems to lack, where the command begins: at an
    option the parser does not know after a target, else at the second word that is not an
    option (the first with a default target); None when nothing there looks like a command."""
    spans = _word_spans(text)
    positionals = 0
    skip = False
    for start, end in spans:
        word = text[start:end]
        if skip:
            skip = False
            continue
        if word.startswith("-") and word != "-":
            known, skip = _option_action(parser, word)
            if known or not (positionals or default):
                continue
        else:
            positionals += 1
            if positionals < (1 if default else 2):
                continue
        before = text[:start].strip()
        return f"{magic} {before} -- {text[start:].strip()}".replace("  ", " ")
    return None


def _without_comment(line: str) -> str:
    """``line`` up to a shell comment: a ``#`` that begins an unquoted word, as in sh.

    IPython hands a line magic the rest of its line, comments included, so without this
    ``%pod_sandbox start  # note`` would read ``# note`` as arguments. ``a#b`` and ``'#'``
    stay as they are, as in a shell.
    """
    quote, escaped, word_start = "", False, True
    for index, char in enumerate(line):
        if escaped:  # a backslash-escaped character, space or # included, is word text
            escaped, word_start = False, False
            continue
        if char == "#" and word_start:
            return line[:index]
        if char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        word_start = not quote and char.isspace()
    return line


def _python_value(flag: str, expr: str, namespace: dict[str, Any]) -> Any:
    """The value of ``FLAG EXPR`` (``--stdin``, ``--rerun``), or one ``UsageError`` line.

    Evaluated in a copy of the namespace, like ``{{expr}}``: ``eval`` would otherwise put
    ``__builtins__`` (and ``:=`` names) into the user's own namespace.
    """
    try:
        # eval is the point: the flag takes a Python expression from the user's own notebook.
        return eval(compile(expr, f"<{flag}>", "eval", dont_inherit=True), dict(namespace))
    except SyntaxError as error:
        # The options are split like a shell line: unquoted, open('f.txt') loses its quotes.
        raise UsageError(
            f"{flag} {expr}: not a Python expression ({error.msg}); quote the whole "
            "expression to keep its own quotes, e.g. --stdin \"open('/tmp/f.txt')\""
        ) from None
    except Exception as error:  # noqa: BLE001 - the user's expression may raise anything
        raise UsageError(f"{flag} {expr} {raised_line(error)}") from None


def _stdin_value(expr: str, namespace: dict[str, Any]) -> Any:
    """The value of ``--stdin EXPR``, or one ``UsageError`` line saying what is wrong with it."""
    value = _python_value("--stdin", expr, namespace)
    if (
        value is None
        or isinstance(value, (str, bytes, bytearray, memoryview))
        or callable(getattr(value, "read", None))
    ):
        return value
    raise UsageError(
        f"--stdin {expr} is {type(value).__name__}; it must be str, bytes or a file "
        f"opened for reading (e.g. --stdin \"str(x)\" or --stdin \"open('data.csv', 'rb')\")"
    )


def _check_out_name(name: str | None) -> None:
    """``-o NAME`` must be usable as a variable afterwards: an identifier, not a keyword."""
    if name is None:
        return
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(
            f"-o {name!r}: not a Python variable name; use letters, digits and _, "
            "not starting with a digit (e.g. -o result)"
        )


def _parse_env(items: list[str] | None) -> dict[str, str]:
    """``-e NAME=VALUE`` options as a dict; an error names the argument by its position and
    shows at most its leading name characters: ``-e PASSWORD:hunter2`` must not echo the
    password."""
    env: dict[str, str] = {}
    for number, item in enumerate(items or [], start=1):
        name, sep, value = item.partition("=")
        if not sep or not _ENV_NAME.match(name):
            start = env_name_start(item)
            raise UsageError(
                f"-e argument {number} is not NAME=VALUE with a variable name"
                + (f" (it starts {start!r}; the rest" if start else " (its text")
                + " is not shown, as it may hold a value); use letters, digits and _ before "
                "the =, e.g. -e LOG_LEVEL=debug"
            )
        env[name] = value
    return env


@dataclass(frozen=True)
class _DefaultTarget:
    """What ``%pod_target`` set: the target of every run that names none (``typed`` is the
    line as it was written, for showing)."""

    typed: str
    targets: tuple[str | PodResult, ...] = ()
    selector: str | None = None
    fields: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    context: str | None = None
    container: str | None = None
    all_containers: bool = False
    include_unready: bool = False


@magics_class
class PodMagic(Magics):
    """Run shell commands in Kubernetes pods from IPython."""

    context = Unicode(
        None, allow_none=True, help="kubeconfig context (default: the current one)"
    ).tag(config=True)
    kubeconfig = Unicode(
        None, allow_none=True, help="kubeconfig path (default: KUBECONFIG, ~/.kube/config)"
    ).tag(config=True)
    namespace = Unicode(
        None, allow_none=True, help="default namespace (default: the context's)"
    ).tag(config=True)
    max_concurrency = Int(
        DEFAULT_CONCURRENCY, min=1, help="execs running at once (-P, at least 1)"
    ).tag(config=True)
    timeout = Float(None, allow_none=True, help="per-pod timeout in seconds").tag(config=True)
    deadline = Float(None, allow_none=True, help="overall deadline of a run in seconds").tag(
        config=True
    )
    capture_limit = Int(DEFAULT_CAPTURE_LIMIT, help="bytes of stdout/stderr kept per pod").tag(
        config=True
    )
    capture_budget = Int(
        DEFAULT_CAPTURE_BUDGET,
        allow_none=True,
        help="bytes kept across a whole run, shared among its pods",
    ).tag(config=True)
    default_shell = Unicode("/bin/sh", help="shell that runs %%pod cells and %pod commands").tag(
        config=True
    )
    protected_contexts = List(
        Unicode(),
        default_value=list(DEFAULT_PROTECTED_CONTEXTS),
        help="context patterns that need --yes",
    ).tag(config=True)
    confirm_above = Int(DEFAULT_CONFIRM_ABOVE, help="runs over more pods than this need --yes").tag(
        config=True
    )
    max_updates_per_second = Float(10.0, help="live view refresh rate").tag(config=True)
    head_lines = Int(200, help="lines per pod kept at the start of the live view").tag(config=True)
    tail_lines = Int(200, help="lines per pod kept at the end of the live view").tag(config=True)
    quiet = Bool(False, help="no live view (like -q)").tag(config=True)
    plugin_timeout = Float(
        DEFAULT_PLUGIN_TIMEOUT,
        allow_none=True,
        help="seconds a kubeconfig exec credential plugin may run",
    ).tag(config=True)

    # Checked when set (%config, ipython_config.py), naming the setting: a bad value must not
    # wait to fail every later %pod in words that do not say where it came from.
    @validate("timeout", "deadline", "plugin_timeout", "max_updates_per_second")
    def _positive_seconds(self, proposal: Any) -> Any:
        value = proposal["value"]
        name = proposal["trait"].name
        if value is not None and not value > 0:  # NaN fails too
            unit = "updates a second" if name == "max_updates_per_second" else "seconds"
            none = "" if name == "max_updates_per_second" else " (None: no limit)"
            raise TraitError(
                f"PodMagic.{name} must be a positive number of {unit}{none}, got {value}"
            )
        return value

    @validate("capture_limit", "capture_budget", "confirm_above", "head_lines", "tail_lines")
    def _not_negative(self, proposal: Any) -> Any:
        value = proposal["value"]
        name = proposal["trait"].name
        if value is not None and value < 0:
            unit = {"capture_limit": "bytes", "capture_budget": "bytes", "confirm_above": "pods"}
            raise TraitError(
                f"PodMagic.{name} must be 0 or more {unit.get(name, 'lines')}, got {value}"
            )
        return value

    @validate("default_shell")
    def _one_shell(self, proposal: Any) -> Any:
        value = proposal["value"]
        if not value or any(c.isspace() for c in value):
            raise TraitError(
                f"PodMagic.default_shell must be one shell, a path or a name without spaces "
                f"(e.g. /bin/bash), got {value!r}; for options such as -x, use set -x in the "
                "command"
            )
        return value

    @validate("context")
    def _named_context(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and not value.strip():
            raise TraitError(
                f"PodMagic.context must be a context name from the kubeconfig, or None for its "
                f"current context, got {value!r}"
            )
        return value

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._clusters: dict[tuple[str | None, str | None, float | None], Cluster] = {}
        self.sandbox: Any = None
        #: What ``%pod_target`` set: used by the runs that name no target and no selector.
        self.default_target: _DefaultTarget | None = None
        started = _started_sandboxes.get(shell) if shell is not None else None
        if started is not None and started.running:
            self._use_sandbox(started)
        events = getattr(shell, "events", None)
        if events is not None and wait_unattended not in events.callbacks["post_run_cell"]:
            # nbconvert/papermill: a cell ends only once its --bg runs have put up their summary.
            events.register("post_run_cell", wait_unattended)

    # -- helpers -----------------------------------------------------------------------------

    @property
    def _shell(self) -> Any:
        if self.shell is None:
            raise UsageError("the podmagic magics need an IPython shell")
        return self.shell

    @property
    def _user_ns(self) -> dict[str, Any]:
        return self._shell.user_ns  # type: ignore[no-any-return]

    def _cluster(self, context: str | None, kubeconfig: str | None) -> Cluster:
        key = (context or self.context, kubeconfig or self.kubeconfig, self.plugin_timeout)
        if key not in self._clusters:
            try:
                credentials = load_credentials(
                    context=key[0], kubeconfig=key[1], plugin_timeout=key[2]
                )
            except ConfigError as error:
                # Cluster() would say kubeconfig= and Sandbox(); here it is --kubeconfig.
                raise in_callers_words(error, key[1], magic=True) from None
            # Pinned for the session: later context switches elsewhere do not redirect it.
            cluster = Cluster._from_credentials(credentials, plugin_timeout=key[2])
            cluster._magic_words = True  # its errors name --pick 3, -A, not pick=3
            self._clusters[key] = cluster
        cluster = self._clusters[key]
        # What the cluster judges itself (%pod_cp's copies, with their --yes) uses this
        # magic's guards as they are now (%pod judges its runs here, with the same settings).
        cluster.protected_contexts = tuple(self.protected_contexts)
        cluster.confirm_above = self.confirm_above
        return cluster

    def _many(self, contexts: list[str], kubeconfig: str | None) -> Clusters:
        """A run across ``contexts`` (names or globs), each on this magic's own Cluster of
        that context, judged with this magic's guards (``PodMagic.protected_contexts``,
        ``PodMagic.confirm_above``)."""
        kubeconfig = kubeconfig or self.kubeconfig
        clusters = Clusters(
            contexts,
            kubeconfig=kubeconfig,
            _magic=True,
            _make=lambda context: self._cluster(context, kubeconfig),
        )
        clusters.protected_contexts = tuple(self.protected_contexts)
        clusters.confirm_above = self.confirm_above
        return clusters

    def _contexts(self, given: list[str] | None) -> list[str]:
        """The ``--context`` values (each ``{{expr}}`` expanded), each once; an empty one is
        one ``UsageError`` line (it must not mean the current context unseen)."""
        contexts = list(dict.fromkeys(self._expand(c) or "" for c in given or ()))
        if any(not context.strip() for context in contexts):
            raise UsageError(
                "--context is empty: give a context name from the kubeconfig, or leave "
                "--context out for the current context"
            )
        return contexts

    def _one_context(
        self, given: list[str] | None, kubeconfig: str | None, magic: str
    ) -> str | None:
        """The one context ``--context`` names for a magic that works in one (``%pod_cp``,
        ``%pod_logs``), None without it; repeated or a glob is one ``UsageError`` line."""
        contexts = self._contexts(given)
        known = context_names(kubeconfig or self.kubeconfig) if contexts else []
        if len(contexts) > 1 or any(is_glob(context, known) for context in contexts):
            shown = " ".join(f"--context {shlex.quote(context)}" for context in contexts)
            raise UsageError(
                f"%{magic} runs in one context, not {shown}: give one context name "
                f"(run %{magic} once per context)"
            )
        return contexts[0] if contexts else None

    def _expand(self, text: str | None) -> str | None:
        """``{{expr}}`` in an option value, inserted as plain text (options are not shell)."""
        if text is None or "{{" not in text:
            return text
        # Every placeholder is taken raw: option values are not shell words.
        pieces, last = [], 0
        for placeholder in find_placeholders(text):
            pieces.append(text[last : placeholder.start])
            pieces.append(f"{{{{{placeholder.expr}|raw}}}}")
            last = placeholder.end
        pieces.append(text[last:])
        return interpolate("".join(pieces), self._user_ns)

    def _target_values(self, words: list[str]) -> list[str | PodResult]:
        """The target words, with ``{{expr}}`` values taken as data: a word that is one
        placeholder may give several targets (a list of names, ``PodResults``, a list of
        ``PodResult``), each kept whole; other words are text, as in any option."""
        targets: list[str | PodResult] = []
        for word in words:
            value = placeholder_value(word, self._user_ns)
            if value is NOT_ONE_PLACEHOLDER:
                targets.append(self._expand(word) or "")
            elif isinstance(value, (str, PodResult)):
                targets.append(value)
            elif isinstance(value, (list, tuple, PodResults)):
                items = list(value)
                other = next((i for i in items if not isinstance(i, (str, PodResult))), None)
                if other is not None:
                    raise UsageError(
                        f"{word.strip()} holds {type(other).__name__}; a target list holds pod "
                        "names (str) or results (PodResult, PodResults)"
                    )
                if not items:
                    raise UsageError(
                        f"{word.strip()} is empty (no pod failed?): no target to run in"
                    )
                targets.extend(items)
            else:
                targets.append(self._expand(word) or "")  # str(value), as in other options
        return targets

    def _limits(self) -> RenderLimits:
        return RenderLimits(
            max_updates_per_second=self.max_updates_per_second,
            head_lines=self.head_lines,
            tail_lines=self.tail_lines,
        )

    # -- the magic ---------------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "target",
        nargs="*",
        help="pod name, pod/NAME, deploy/NAME, sts/NAME, ds/NAME, rs/NAME or job/NAME",
    )
    @argument("-l", "--selector", help="label selector, e.g. app=web,tier in (a,b)")
    @argument("--field-selector", help="field selector, e.g. spec.nodeName=node-1")
    @partial(_cluster_arguments, many_contexts=True)
    @argument(
        "--include-unready", action="store_true", help="also run in Running pods that are not Ready"
    )
    @argument("--one", action="store_true", help="one pod only, the most active (as kubectl picks)")
    @argument("--pick", type=int, metavar="N", help="a random sample of N pods")
    @argument(
        "-c",
        "--container",
        help="container name (default: the only one, the default-container annotation, or the first)",
    )
    @argument("--all-containers", action="store_true", help="run in every container of each pod")
    @argument("--timeout", type=float, metavar="SECONDS", help="per-pod timeout")
    @argument("--deadline", type=float, metavar="SECONDS", help="overall deadline")
    @argument("-P", "--max-concurrency", type=int, metavar="N", help="execs at once")
    @argument(
        "--retries",
        type=int,
        metavar="N",
        help="re-run after a transient failure (the command may run twice)",
    )
    @argument(
        "--ok-exit",
        metavar="CODES",
        help="exit codes that count as ok, e.g. 0,1 (grep: no match) or 0-2 (default 0); "
        "results keep the real code",
    )
    @argument(
        "--stdin",
        metavar="EXPR",
        help="Python expression whose value (str, bytes or file) is sent to stdin",
    )
    @argument("-t", "--tty", action="store_true", help="allocate a terminal (stderr joins stdout)")
    @argument("-w", "--workdir", help="working directory for the command")
    @argument(
        "-e",
        "--env",
        action="append",
        metavar="NAME=VALUE",
        help="environment variable (repeatable; never in the exec URL)",
    )
    @argument("--shell", help="shell to run the command with (default: PodMagic.default_shell)")
    @argument(
        "--no-shell", action="store_true", help="run the command as a direct argv, without a shell"
    )
    @argument(
        "--python",
        action="store_true",
        help="the cell is a Python program for the pod's python3 (no shell); each pod's value "
        "(a `result` variable, else the last expression) comes back: res.values, res.frame",
    )
    @argument(
        "--python-bin",
        metavar="PATH",
        help=f"the interpreter for --python (default {DEFAULT_PYTHON}); pods without it are skipped",
    )
    @argument(
        "--parse",
        metavar="FORMAT",
        help="parse every pod's output into one DataFrame: json, jsonl, csv, tsv, lines, table, kv, regex",
    )
    @argument(
        "--pattern", help="the regular expression for --parse regex (named groups become columns)"
    )
    @argument(
        "--raw",
        action="store_true",
        help="with --parse: keep each column turned into numbers (26%%, 252G, 1h2m) as text "
        "too, as NAME_raw",
    )
    @argument(
        "--diff",
        action="store_true",
        help="after the summary, each minority output as a unified diff against the majority's "
        "(stdout; stderr too where it differs)",
    )
    @argument(
        "--rerun",
        metavar="EXPR",
        help="run the command of earlier results again in their pods, with the same options "
        "(--rerun res, --rerun res.failed); --timeout, --deadline, -P, --retries, --ok-exit "
        "may change",
    )
    @argument(
        "--retarget",
        action="store_true",
        help="with --rerun: in the pods the run's target (deploy/web, -l ...) names now, "
        "not in the results' pods (after a rollout replaced them)",
    )
    @argument("-o", "--out", metavar="NAME", help="store the result in this variable")
    @argument(
        "--bg", action="store_true", help="return at once with a handle; output keeps streaming"
    )
    @argument("--check", action="store_true", help="raise if any pod fails")
    @argument(
        "--dry-run",
        action="store_true",
        help="list the target pods; run nothing (-o NAME stores the selection)",
    )
    @argument(
        "--yes", action="store_true", help="confirm a run on a protected context or many pods"
    )
    @argument("-q", "--quiet", action="store_true", help="no live output")
    @no_var_expand  # IPython's own $var / {var} expansion would rewrite shell syntax
    @line_cell_magic
    def pod(self, line: str, cell: str | None = None) -> Any:
        """Run a shell command in Kubernetes pods and return the results.

        Line form ``%pod TARGET [options] -- COMMAND``; cell form ``%%pod TARGET [options]``
        with the cell as the script. ``{{expr}}`` puts a Python value in as one quoted shell
        word (a list as several), ``{{expr|raw}}`` unquoted; ``\\{{`` is a literal ``{{``.
        Shell syntax ($VAR, $(cmd), awk '{print $1}', find -exec {} \\;) is left alone.

        A target that is one ``{{expr}}`` is data: a list of pod names, or earlier results
        (``{{res.failed}}``, a ``PodResult`` or a list of them), each pod in its own
        namespace, container and context. ``--rerun res`` repeats the run that made ``res``
        (the same command, env, stdin and options) in its pods (a pod gone since is that
        pod's error; ``--retarget``: in the pods its target names now); ``--ok-exit 0,1``
        counts those exit codes as ok. With a default target (``%pod_target``) a cell may name none.
        ``--parse FMT`` turns sizes, percentages and durations into numbers (``--raw`` keeps
        their text); ``-o NAME --parse FMT`` stores the results with the table at
        ``NAME.frame``. ``--diff`` shows each minority output as a unified diff against the
        majority's. Every run records its provenance (``res.provenance``, the summary's last
        line).

        ``%%pod TARGET --python`` runs the cell as a Python program with each pod's
        ``python3`` (``--python-bin PATH`` for another; pods without it are skipped): the
        value of its ``result`` variable, else of its last expression, comes back per pod as
        JSON (``res.values``; ``res.frame``, and the cell's value, is one DataFrame when they
        are dicts or lists of dicts). There ``{{expr}}`` puts a value in as a Python literal.

        Interrupting the kernel during a blocking run cancels it within about a second; the
        summary of the partial results is shown, ``-o NAME`` stores them (as ``PodResults``,
        unparsed), and the cell then ends with a one-line :class:`RunInterrupted` (a
        ``KeyboardInterrupt``), so a "Run All" stops there like after any interrupt. A second
        interrupt abandons the run at once. ``--bg`` runs are not affected by interrupts.
        """
        braces = brace_hint([_split_line(line)[0]], magic=True)
        try:
            return self._pod(line, cell)
        except UsageError as error:
            # The message may quote the user's own line (argparse, --stdin): control
            # characters in it are shown, never obeyed, in a terminal.
            text = f"{error}; {braces}" if braces else str(error)
            raise UsageError(visible_controls(text)) from None
        except (SelectionError, ConfigError) as error:
            # An option that did not work as typed: say why it may not have (once: the
            # Cluster says it for the values it was given).
            if braces and braces not in error.args[0]:
                error.args = (f"{error.args[0]}; {braces}", *error.args[1:])
            raise

    def _pod(self, line: str, cell: str | None) -> Any:
        options_text, command_text = _split_line(line)
        argv = _split_options(options_text)
        parser = self.pod.parser
        separator = None
        if cell is None and command_text is None:
            default = self.default_target
            found = _forgotten_separator(
                parser, options_text, default=default is not None, magic="%pod"
            )
            if found is not None:
                separator = f"a ` -- ` missing before the command? did you mean `{found}`"
                if default is not None:
                    separator += f" (the default target: {default.typed})"
        try:
            args = parser.parse_args(argv)
        except UsageError as error:
            taught = _misspelt(parser, options_text)
            if taught is None and separator is not None:
                taught = separator
            raise UsageError(taught or str(error)) from None
        _check_out_name(args.out)
        if cell is not None:
            if command_text is not None:
                raise UsageError(
                    "%%pod takes its command from the cell; remove the ` -- COMMAND` part"
                )
            command_text = cell
        elif command_text is None and not args.dry_run and args.rerun is None:
            if separator is not None:
                raise UsageError(f"no command: {separator}")
            raise UsageError(
                "no command: write %pod TARGET -- COMMAND, or use %%pod with the script as the cell"
            )
        try:
            return self._run(args, command_text)
        except (InterpolationError, ValueError) as error:
            if isinstance(error, PodmagicError) and not isinstance(error, InterpolationError):
                raise
            raise UsageError(str(error)) from None

    def _exec_options(self, args: Any) -> ExecOptions:
        """The options merged with the settings, once; a bad value is a ``ValueError``
        (turned into a ``UsageError`` by the caller) before anything contacts the cluster."""

        def given(value: Any, setting: Any) -> Any:
            return setting if value is None else value

        try:
            return ExecOptions(
                timeout=given(args.timeout, self.timeout),
                deadline=given(args.deadline, self.deadline),
                max_concurrency=given(args.max_concurrency, self.max_concurrency),
                retries=args.retries or 0,
                capture_limit=self.capture_limit,
                capture_budget=self.capture_budget,
                tty=args.tty,
            )
        except ValueError as error:
            # The settings are checked when set: a bad value here came from a flag.
            flags = {
                "timeout": args.timeout,
                "deadline": args.deadline,
                "max_concurrency": args.max_concurrency,
                "retries": args.retries,
            }
            typed = {name: value for name, value in flags.items() if value is not None}
            raise ValueError(option_in_flag_words(error, typed)) from None

    def _run(self, args: Any, command_text: str | None) -> Any:
        options = self._exec_options(args)
        finish = _Finish.from_args(args)
        if args.retarget and args.rerun is None:
            raise UsageError("--retarget goes with --rerun RESULTS: %pod --rerun res --retarget")
        if args.rerun is not None:
            return self._rerun(args, command_text, finish)
        ok_exit = ok_exit_codes(self._expand(args.ok_exit) or "0", where="--ok-exit")
        # Before the cluster is contacted: a bad --stdin must not cost a listing, or run anything.
        stdin = _stdin_value(args.stdin, self._user_ns) if args.stdin else None
        targets = self._target_values(args.target)
        selector = self._expand(args.selector)
        default = None
        if not targets and selector is None:
            default = self.default_target
            if default is None:
                raise UsageError(
                    "no target: name a pod (web-1), a workload (deploy/web) or a selector "
                    "(-l app=web), or set a default target for the cells that name none: "
                    "%pod_target deploy/web -n shop"
                )
            targets, selector = list(default.targets), default.selector
        typed_namespace = self._expand(args.namespace)
        container = self._expand(args.container)
        all_namespaces = args.all_namespaces
        # --context repeated, or a glob: one run across the contexts (Cluster.many).
        contexts = self._contexts(args.context)
        kubeconfig = self._expand(args.kubeconfig)
        field_selector = self._expand(args.field_selector)
        include_unready = args.include_unready
        all_containers = args.all_containers
        if default is not None:
            # What the cell says wins; the default fills in what it leaves out.
            if typed_namespace is None and not all_namespaces:
                typed_namespace, all_namespaces = default.namespace, default.all_namespaces
            if container is None and not all_containers:
                container, all_containers = default.container, default.all_containers
            contexts = contexts or ([default.context] if default.context else [])
            field_selector = field_selector if field_selector is not None else default.fields
            include_unready = include_unready or default.include_unready
        results = [target for target in targets if isinstance(target, PodResult)]
        from_contexts = sorted({result.context for result in results})
        context = contexts[0] if contexts else None
        if context is None and len(from_contexts) == 1:
            context = from_contexts[0]  # results run where they came from
        # Results from several contexts run each in its own: a run across them. A context
        # named x[1] is that context, not a glob.
        globs = [c for c in contexts if is_glob(c)]
        known = context_names(kubeconfig or self.kubeconfig) if globs else []
        many = len(contexts) > 1 or any(is_glob(c, known) for c in globs) or len(from_contexts) > 1
        clusters = self._many(contexts or from_contexts, kubeconfig) if many else None
        cluster = (
            self._cluster(context, kubeconfig)
            if clusters is None
            else next(iter(clusters.clusters.values()))
        )
        runner: Any = cluster if clusters is None else clusters
        query = {
            "selector": selector,
            "field_selector": field_selector,
            "namespace": typed_namespace or self.namespace,
            "all_namespaces": all_namespaces,
            "include_unready": include_unready,
            "one": args.one,
            "pick": args.pick,
            "container": container,
            "all_containers": all_containers,
        }
        # The overall deadline covers finding the pods: the Cluster counts it from here.
        listing_started = time.monotonic()
        selection: Any = runner.select(
            targets or None, deadline=options.deadline, timeout=options.timeout, **query
        )
        names = [target for target in targets if isinstance(target, str)]
        everything = not results and names_no_pods(cluster.query(names or None, **query))
        if default is not None:
            # In every header of a run that the default target chose, until it is changed.
            if clusters is not None:
                selection = replace(selection, note=" (default target)")
            else:
                selection = replace(
                    selection, description=f"{selection.description} (default target)"
                )
        if clusters is not None:
            if self._dry_run_or_check_many(clusters, selection, args, everything=everything):
                return None
        elif self._dry_run_or_check(cluster, selection, args, everything=everything):
            return None

        assert command_text is not None
        # Read in the dialect of the shell that will run it (/bin/sh may be any of them).
        command: str | list[str]
        if args.python:
            # Values go in as Python literals, never as shell words: no shell reads the cell.
            command = substitute(command_text, self._user_ns)
        else:
            script = interpolate(
                command_text, self._user_ns, shell=args.shell or self.default_shell
            )
            command = shlex.split(script) if args.no_shell else script
        env = {name: self._expand(value) or "" for name, value in _parse_env(args.env).items()}
        run_kwargs: dict[str, Any] = {
            "env": env or None,
            "workdir": self._expand(args.workdir),
            "shell": args.shell or self.default_shell,
            "stdin": stdin,
            "tty": options.tty,
            "python": args.python,
            "python_bin": args.python_bin or DEFAULT_PYTHON,
            "retries": options.retries,
            "ok_exit": ok_exit,
            "selection": selection,
            "timeout": options.timeout,
            "deadline": options.deadline,
            "started_at": listing_started,
            "max_concurrency": options.max_concurrency,
            "capture_limit": options.capture_limit,
            "capture_budget": options.capture_budget,
            # check_allowed above applied this magic's own settings (PodMagic.confirm_above …)
            # and --yes; the Cluster's defaults must not judge the same run again.
            "yes": True,
        }
        if args.python:
            PythonProgram(
                str(command), run_kwargs["python_bin"], env=env, workdir=run_kwargs["workdir"]
            )  # validate before anything starts
        else:
            cluster.command(
                command,
                env=run_kwargs["env"],
                workdir=run_kwargs["workdir"],
                shell=run_kwargs["shell"],
                stdin=None,
            )  # validate before anything starts

        # The provenance says what the cell named, as written ({{res.failed}}, deploy/web).
        written = (
            " ".join(args.target)
            or (" ".join(str(t) for t in default.targets) if default is not None else ""),
            args.selector if args.selector is not None else selector or "",
            args.field_selector or field_selector or "",
        )

        def launch(on_event: EventCallback, control: RunControl) -> Awaitable[PodResults]:
            return _as_written(
                runner.arun(command, on_event=on_event, control=control, **run_kwargs), written
            )

        return self._start(launch, finish, selection, quiet=args.quiet or self.quiet, bg=args.bg)

    def _rerun(self, args: Any, command_text: str | None, finish: _Finish) -> Any:
        """``%pod --rerun EXPR``: the run that made the results ``EXPR`` again, in their
        pods, with the same command and options (``--timeout``, ``--deadline``, ``-P``,
        ``--retries`` and ``--ok-exit`` may change)."""
        others = [
            flag
            for flag, given in (
                ("a target", bool(args.target)),
                ("-l", args.selector is not None),
                ("--field-selector", args.field_selector is not None),
                ("-n", args.namespace is not None),
                ("-A", args.all_namespaces),
                ("--context", args.context is not None),
                ("--kubeconfig", args.kubeconfig is not None),
                ("-c", args.container is not None),
                ("--all-containers", args.all_containers),
                ("--one", args.one),
                ("--pick", args.pick is not None),
                ("-e", bool(args.env)),
                ("-w", args.workdir is not None),
                ("--shell", args.shell is not None),
                ("--no-shell", args.no_shell),
                ("--python", args.python),
                ("--stdin", args.stdin is not None),
                ("-t", args.tty),
                ("a command", command_text is not None),
            )
            if given
        ]
        if others:
            raise UsageError(
                f"--rerun runs the same command in the same pods: leave out {', '.join(others)} "
                "(or run anew: %pod {{results}} [options] -- COMMAND)"
            )
        value = _python_value("--rerun", args.rerun, self._user_ns)
        origin = getattr(value, "_origin", None) if isinstance(value, PodResults) else None
        if origin is None:
            raise UsageError(
                f"--rerun {args.rerun} is {type(value).__name__}"
                + (" that does not remember its run" if isinstance(value, PodResults) else "")
                + "; give the results of a %pod or Cluster.run (e.g. --rerun res, or --rerun "
                "res.failed), or run anew: %pod {{results}} -- COMMAND"
            )
        if not value:
            # Nothing failed (--rerun res.failed): nothing runs, and a runbook goes on.
            _show_text(f"--rerun {args.rerun}: the results are empty, nothing to re-run")
            if args.out:
                self._user_ns[args.out] = value
            return None if args.out else value
        given = {
            "timeout": args.timeout,
            "deadline": args.deadline,
            "max_concurrency": args.max_concurrency,
            "retries": args.retries,
            "ok_exit": None
            if args.ok_exit is None
            else ok_exit_codes(self._expand(args.ok_exit), where="--ok-exit"),
        }
        changes = {name: value for name, value in given.items() if value is not None}
        if isinstance(origin, _ManyOrigin):
            return self._rerun_many(value, origin, changes, args, finish)
        rerun: _RunOrigin = origin.with_options(**changes)
        if rerun.python is not None:
            finish = replace(finish, python=True)  # the values again, as the first run gave
        cluster = rerun.cluster
        listing_started = time.monotonic()
        # A pod of the results gone since is that pod's error; --retarget looks for the
        # run's target again.
        selection: Selection = rerun.select(
            list(value), target=args.retarget, include_unready=args.include_unready
        )
        if self._dry_run_or_check(cluster, selection, args, everything=False):
            return None

        def launch(on_event: EventCallback, control: RunControl) -> Awaitable[PodResults]:
            return rerun.arerun(
                (),
                selection=selection,
                on_event=on_event,
                control=control,
                yes=True,  # judged above, with this magic's settings and --yes
                started_at=listing_started,
            )

        return self._start(launch, finish, selection, quiet=args.quiet or self.quiet, bg=args.bg)

    def _rerun_many(
        self,
        results: PodResults,
        origin: _ManyOrigin,
        changes: Mapping[str, Any],
        args: Any,
        finish: _Finish,
    ) -> Any:
        """``--rerun`` of results from a run across contexts: each pod again in its own
        context, the guards judging the contexts together (``--yes``)."""
        if getattr(args, "retarget", False):
            raise UsageError(
                "--retarget looks for one run's target again; results from several contexts "
                "re-run in their own pods only (leave --retarget out)"
            )
        # Judged by the guards as set now (a context protected since is refused), as a
        # one-context --rerun is.
        origin = origin.judged_by(self.protected_contexts, self.confirm_above)
        if args.dry_run:
            selection = origin.clusters.select(list(results))
            self._dry_run_or_check_many(origin.clusters, selection, args, everything=False)
            return None
        contexts = sorted({r.context for r in results})
        shown = Selection(
            run=(),
            skipped=(),
            description=f"the pods of {args.rerun} in {len(contexts)} contexts "
            f"({', '.join(contexts)})",
        )

        def launch(on_event: EventCallback, control: RunControl) -> Awaitable[PodResults]:
            return origin.arerun(
                list(results), yes=args.yes, on_event=on_event, control=control, **changes
            )

        return self._start(launch, finish, shown, quiet=args.quiet or self.quiet, bg=args.bg)

    def _start(
        self,
        launch: Callable[[EventCallback, RunControl], Awaitable[PodResults]],
        finish: _Finish,
        selection: Selection,
        *,
        quiet: bool,
        bg: bool,
    ) -> Any:
        """Run ``launch`` with a live view: in the background (a handle) or blocking (the
        results, or what ``finish`` makes of them)."""
        if bg:
            # The run outlives the cell: the live view puts the summary up in its own slot.
            renderer = (
                NullRenderer()
                if quiet
                else choose_renderer(limits=self._limits(), outlives_cell=True)
            )
            return self._run_background(launch, renderer, finish, selection)
        # A blocking run: the live view clears itself and the summary is displayed here, in
        # the main thread, as an ordinary output of this cell.
        renderer = (
            NullRenderer() if quiet else choose_renderer(limits=self._limits(), show_summary=False)
        )
        control = RunControl()
        interrupted: list[bool] = []

        def on_interrupt() -> None:
            interrupted.append(True)
            control.cancel("interrupted")

        try:
            results = run_blocking(
                lambda: launch(renderer.handle_event, control), on_interrupt=on_interrupt
            )
        finally:
            renderer.close()
        return self._finish(
            results, finish, shown=not quiet, interrupted=bool(interrupted), view=renderer
        )

    def _finish(
        self,
        results: PodResults,
        finish: _Finish,
        *,
        shown: bool,
        interrupted: bool = False,
        view: Any = None,
    ) -> Any:
        """End a blocking run: its summary (in place of the live ``view``, if it showed),
        then :meth:`_Finish.apply`; the cell's value."""
        if shown:
            from IPython.display import display

            replace_view = getattr(view, "replace_view", None)
            if replace_view is None or not replace_view(PodResults(results)):
                display(PodResults(results))
        if finish.diff:
            # Asked for by name: shown even with -q, as the section after the summary.
            _show_diffs(results)
        if interrupted:
            # The cell must end as interrupted: a successful one would let "Run All" go on
            # with the next cell after the user pressed stop.
            if finish.out:
                self._user_ns[finish.out] = PodResults(results)
            raise RunInterrupted(PodResults(results), finish.out)
        value = finish.apply(results, self._user_ns, _show_text)
        if finish.out:
            return None
        if shown and not finish.parse and not finish.python:
            # Already on screen: the cell's value must not show the summary a second time.
            value = _ShownResults(results)
            value._shown_in = self._shell.execution_count
            _hide_output_prompt(self._shell, value)
        return value

    def _run_background(
        self,
        launch: Callable[[EventCallback, RunControl], Awaitable[PodResults]],
        renderer: Any,
        finish: _Finish,
        selection: Selection,
    ) -> BackgroundRun:
        control = RunControl()
        handle = BackgroundRun(selection.description, control)

        def on_event(event: Event) -> None:
            handle.observe(event)
            renderer.handle_event(event)

        async def work() -> PodResults:
            results = await launch(on_event, control)
            renderer.close()
            # The cell has moved on: parse problems go on the handle, not into another
            # cell's output.
            finish.apply(results, self._user_ns, handle.note)
            return results

        future = get_portal().start_task_soon(work)
        handle._attach(future, lambda _done: renderer.close())
        return handle

    def _dry_run_or_check(
        self, cluster: Cluster, selection: Selection, args: Any, *, everything: bool
    ) -> bool:
        """True when ``--dry-run`` asked only to see ``selection``: shown (and stored in
        ``--out``), nothing is to run. Otherwise the guards judge the run with this magic's
        own settings and ``--yes`` (raising when they refuse it), and False: go on."""
        if args.dry_run:
            self._show_selection(cluster, selection)
            if args.out:
                self._user_ns[args.out] = selection
            return True
        check_allowed(
            selection,
            context=cluster.context,
            protected=self.protected_contexts,
            confirm_above=self.confirm_above,
            everything=everything,
            confirmed=args.yes,
        )
        return False

    def _show_selection(self, cluster: Cluster, selection: Selection) -> None:
        from IPython.display import display

        lines = [
            (
                f"context {cluster.context}: {selection.description} — "
                f"{len(selection.run)} to run, {len(selection.skipped)} skipped (dry run: nothing ran)"
            )
        ]
        for target in selection.run:
            lines.append(
                f"  run   {target.namespace}/{target.pod} [{target.container}] on {target.node}"
            )
        for skipped in selection.skipped:
            lines.append(f"  skip  {skipped.namespace}/{skipped.pod}: {skipped.reason}")
        # Skip reasons quote the API server: shown, never obeyed, in a terminal.
        display({"text/plain": visible_controls("\n".join(lines))}, raw=True)

    def _dry_run_or_check_many(
        self, clusters: Clusters, selection: ClustersSelection, args: Any, *, everything: bool
    ) -> bool:
        """:meth:`_dry_run_or_check` of a run across contexts: ``--dry-run`` lists each
        context's pods (and why a context cannot run); else the guards judge the run as a
        whole, naming every protected context it would reach."""
        if args.dry_run:
            for context, part in selection.selections.items():
                self._show_selection(clusters.clusters[context], part)
            for context, reason in selection.errors.items():
                _show_text(visible_controls(f"context {context}: cannot run: {reason}"))
            if args.out:
                self._user_ns[args.out] = selection
            return True
        clusters.check(selection, yes=args.yes, everything=everything)
        return False

    # -- logs across pods --------------------------------------------------------------------

    @magic_arguments()
    @argument("target", nargs="*", help="pod name, deploy/NAME ... or {{results}}, as for %%pod")
    @argument("-l", "--selector", help="label selector, e.g. app=web")
    @argument("--field-selector", help="field selector, e.g. spec.nodeName=node-1")
    @_cluster_arguments
    @argument("-c", "--container", help="this container only (default: every container)")
    @argument("--since", metavar="DURATION", help="lines newer than this, e.g. 10m, 1h30m, 45s")
    @argument("--tail", type=int, metavar="N", help="the last N lines of each container")
    @argument("--grep", metavar="RE", help="keep the lines this Python regular expression finds")
    @argument(
        "-f", "--follow", action="store_true", help="stream until Ctrl-C, --timeout or the pods end"
    )
    @argument("-p", "--previous", action="store_true", help="the previous (crashed) instance's log")
    @argument("--limit-bytes", type=int, metavar="N", help="at most N bytes of each log")
    @argument(
        "--timeout", type=float, metavar="SECONDS", help="with -f: stop then; else per request"
    )
    @argument("-P", "--max-concurrency", type=int, metavar="N", help="logs read at once (not -f)")
    @argument("-o", "--out", metavar="NAME", help="store the logs in this variable")
    @argument("-q", "--quiet", action="store_true", help="no live output")
    @no_var_expand
    @line_magic
    def pod_logs(self, line: str) -> Any:
        """Read the logs of every pod a target names, at once, like stern but as data.

        ``%pod_logs TARGET [-c NAME] [--since 10m] [--tail N] [--grep RE] [-f] [-p]``: the
        target is found as ``%pod`` finds it (a pod, ``deploy/NAME``, ``-l``, ``{{results}}``);
        without ``-c`` every container of each pod is read (as stern does), and completed,
        failed and not-ready pods are read too. Lines stream into the live view; the value is a
        :class:`~podmagic.PodLogs` (lines sorted by time; ``.to_dataframe()``: context,
        namespace, pod, container, timestamp, line). A container whose log cannot be read is a
        result in ``.errors`` with the reason. ``-f`` streams until the pods' processes end,
        ``--timeout`` passes, or the kernel is interrupted (what was read is kept).
        """
        return _in_one_line(self._pod_logs, line)

    def _pod_logs(self, line: str) -> Any:
        args = self.pod_logs.parser.parse_args(_split_options(_without_comment(line)))
        _check_out_name(args.out)
        targets = self._target_values(args.target)
        selector = self._expand(args.selector)
        if not targets and selector is None:
            default = self.default_target
            if default is None:
                raise UsageError(
                    "no target: name a pod (web-1), a workload (deploy/web) or a selector "
                    "(-l app=web), or set a default target: %pod_target deploy/web -n shop"
                )
            targets, selector = list(default.targets), default.selector
        kubeconfig = self._expand(args.kubeconfig)
        context = self._one_context(args.context, kubeconfig, "pod_logs")
        contexts = sorted({t.context for t in targets if isinstance(t, PodResult)})
        if context is None and len(contexts) == 1:
            context = contexts[0]  # results are read where they came from
        cluster = self._cluster(context, kubeconfig)
        timeout = (
            args.timeout if args.timeout is not None else (None if args.follow else self.timeout)
        )
        quiet = args.quiet or self.quiet
        renderer = (
            NullRenderer() if quiet else choose_renderer(limits=self._limits(), show_summary=False)
        )
        control = RunControl()
        try:
            logs = run_blocking(
                lambda: cluster.alogs(
                    targets or None,
                    selector=selector,
                    field_selector=self._expand(args.field_selector),
                    namespace=self._expand(args.namespace) or self.namespace,
                    all_namespaces=args.all_namespaces,
                    container=self._expand(args.container),
                    since=self._expand(args.since),
                    tail=args.tail,
                    grep=self._expand(args.grep),
                    follow=args.follow,
                    previous=args.previous,
                    limit_bytes=args.limit_bytes,
                    timeout=timeout,
                    max_concurrency=args.max_concurrency or self.max_concurrency,
                    on_event=renderer.handle_event,
                    control=control,
                ),
                on_interrupt=lambda: control.cancel("interrupted"),
            )
        finally:
            renderer.close()
        if args.out:
            self._user_ns[args.out] = logs
            if not quiet:
                _show_text(logs.summary())
            return None
        return logs

    # -- files across pods -------------------------------------------------------------------

    @magic_arguments()
    @argument("source", help="LOCAL (a file or folder) or TARGET:PATH")
    @argument("dest", help="TARGET:PATH or LOCAL_DIR")
    @argument("-l", "--selector", help="label selector (write the target as :PATH)")
    @_cluster_arguments
    @argument("-c", "--container", help="container name (default: the pod's default)")
    @argument("--timeout", type=float, metavar="SECONDS", help="per-pod timeout")
    @argument("-P", "--max-concurrency", type=int, metavar="N", help="copies at once")
    @argument("--yes", action="store_true", help="confirm a protected context or many pods")
    @argument("-o", "--out", metavar="NAME", help="store the results in this variable")
    @argument("-q", "--quiet", action="store_true", help="no live view")
    @no_var_expand
    @line_magic
    def pod_cp(self, line: str) -> Any:
        """Copy a file or folder to every pod, or fetch one from every pod, like ``kubectl cp``.

        ``%pod_cp LOCAL TARGET:PATH`` copies to every pod the target names (found as ``%pod``
        finds them; ``:PATH`` with ``-l SEL``); ``%pod_cp TARGET:PATH LOCAL_DIR`` fetches into
        ``LOCAL_DIR/<context>/<namespace>/<pod>/``. Over tar through exec (a pod without tar
        is that pod's error); the value is a :class:`~podmagic.CopyResults` with each file's
        size and SHA-256. Archive members that would land outside the folder are refused.
        The copy shows in the live view of ``%pod`` (each pod's state, and its progress as
        lines: bytes received, parts sent, files written); ``-q`` shows none.
        """
        return _in_one_line(self._pod_cp, line)

    def _pod_cp(self, line: str) -> Any:
        import os

        args = self.pod_cp.parser.parse_args(_split_options(_without_comment(line)))
        _check_out_name(args.out)
        source, dest = self._expand(args.source) or "", self._expand(args.dest) or ""

        def remote(word: str) -> bool:
            # A local path may hold a colon: a word is remote only when no such path exists.
            return ":" in word and not os.path.exists(word)

        if remote(args.source) == remote(args.dest):
            raise UsageError(
                "give one local path and one TARGET:PATH (e.g. %pod_cp ./conf deploy/web:/tmp/conf "
                "or %pod_cp deploy/web:/var/log/app.log ./logs; :PATH with -l app=web)"
            )
        spec = args.source if remote(args.source) else args.dest
        typed_target, _, path = spec.partition(":")
        targets = self._target_values([typed_target]) if typed_target else []
        selector = self._expand(args.selector)
        if not targets and selector is None:
            raise UsageError(
                "no target before the ':' of TARGET:PATH: name a pod, deploy/NAME or "
                "{{results}}, or write :PATH with -l SELECTOR"
            )
        kubeconfig = self._expand(args.kubeconfig)
        context = self._one_context(args.context, kubeconfig, "pod_cp")
        contexts = sorted({t.context for t in targets if isinstance(t, PodResult)})
        if context is None and len(contexts) == 1:
            context = contexts[0]
        # The copy is judged by Cluster.run with this magic's guards (_cluster sets them).
        cluster = self._cluster(context, kubeconfig)
        options = {
            "target": targets or None,
            "selector": selector,
            "namespace": self._expand(args.namespace) or self.namespace,
            "all_namespaces": args.all_namespaces,
            "container": self._expand(args.container),
            "timeout": args.timeout if args.timeout is not None else self.timeout,
            "max_concurrency": args.max_concurrency or self.max_concurrency,
            "yes": args.yes,
        }
        quiet = args.quiet or self.quiet
        renderer = (
            NullRenderer() if quiet else choose_renderer(limits=self._limits(), show_summary=False)
        )
        try:
            if remote(args.source):
                copies = cluster.copy_from(path, dest, on_event=renderer.handle_event, **options)
            else:
                copies = cluster.copy_to(source, path, on_event=renderer.handle_event, **options)
        finally:
            renderer.close()
        if args.out:
            self._user_ns[args.out] = copies
            if not quiet:
                _show_text(copies.summary())
            return None
        return copies

    # -- the default target ------------------------------------------------------------------

    @magic_arguments()
    @argument("target", nargs="*", help="pod name, pod/NAME, deploy/NAME ... or {{results}}")
    @argument("-l", "--selector", help="label selector, e.g. app=web")
    @argument("--field-selector", help="field selector, e.g. spec.nodeName=node-1")
    @argument("-n", "--namespace", help="namespace")
    @argument("-A", "--all-namespaces", action="store_true", help="look in every namespace")
    @argument("--context", help="kubeconfig context")
    @argument("-c", "--container", help="container name")
    @argument("--all-containers", action="store_true", help="every container of each pod")
    @argument("--include-unready", action="store_true", help="also Running pods not Ready")
    @argument("--clear", action="store_true", help="forget the default target")
    @no_var_expand
    @line_magic
    def pod_target(self, line: str) -> None:
        """Set the target of every ``%pod`` / ``%%pod`` that names none, like ``%autopx``.

        ``%pod_target deploy/api -n shop`` sets it (until changed): a cell then needs only
        its script, and every run it chooses says "(default target)" in its header.
        ``%pod_target`` alone shows it; ``%pod_target --clear`` forgets it. A cell that names
        a target or ``-l`` ignores it; other options of the cell (``-n``, ``-c``,
        ``--context`` ...) win over the default's. ``{{expr}}`` values are read now, when
        it is set.
        """
        try:
            self._pod_target(line)
        except (UsageError, PodmagicError, ValueError) as error:
            raise UsageError(visible_controls(str(error))) from None

    def _pod_target(self, line: str) -> None:
        typed = " ".join(_without_comment(line).split())
        parser = self.pod_target.parser
        try:
            args = parser.parse_args(_split_options(typed))
        except UsageError as error:
            raise UsageError(_misspelt(parser, typed) or str(error)) from None
        if args.clear:
            if typed != "--clear":
                raise UsageError("%pod_target --clear takes nothing else")
            self.default_target = None
            print("default target cleared: every %pod names its own target again")
            return
        if not typed:
            if self.default_target is None:
                print(
                    "no default target; set one with %pod_target deploy/web -n shop, and "
                    "cells may then leave the target out"
                )
            else:
                print(f"default target: {self.default_target.typed}")
            return
        targets = self._target_values(args.target)
        selector = self._expand(args.selector)
        if not targets and selector is None:
            raise UsageError("%pod_target needs a target or -l SELECTOR, e.g. deploy/web -n shop")
        default = _DefaultTarget(
            typed=typed,
            targets=tuple(targets),
            selector=selector,
            fields=self._expand(args.field_selector),
            namespace=self._expand(args.namespace),
            all_namespaces=args.all_namespaces,
            context=self._contexts([args.context])[0] if args.context is not None else None,
            container=self._expand(args.container),
            all_containers=args.all_containers,
            include_unready=args.include_unready,
        )
        # Checked now, contacting nothing: a typo must not wait for the next cell.
        names = [target for target in targets if isinstance(target, str)]
        query = TargetQuery(
            targets=tuple(Target.parse(name) for name in names),
            label_selector=selector,
            field_selector=default.fields,
            namespace=default.namespace,
            all_namespaces=default.all_namespaces,
            container=default.container,
            all_containers=default.all_containers,
        )
        check_query(query, None if default.all_namespaces else default.namespace)
        query.selectors()
        self.default_target = default
        print(f"default target: {typed} (for every %pod and %%pod that names none)")

    # -- the embedded sandbox ----------------------------------------------------------------

    @magic_arguments()
    @argument("action", nargs="?", default="status", choices=["start", "stop", "status"])
    @argument("--manifest", help="Kubernetes YAML to load (default: the built-in demo cluster)")
    @argument(
        "--contexts",
        type=int,
        default=1,
        help="serve N separate clusters: contexts podmagic-sandbox, podmagic-sandbox-2, …",
    )
    @line_magic
    def pod_sandbox(self, line: str) -> Any:
        """Start, stop or show the embedded sandbox cluster; %pod then runs against it.

        ``start`` returns the :class:`~podmagic.sandbox.Sandbox` (``sandbox = %pod_sandbox start``)
        for its Python API: faults, throttling, its kubeconfig path.
        """
        try:
            return self._pod_sandbox(line)
        except UsageError as error:
            raise UsageError(visible_controls(str(error))) from None

    def _use_sandbox(self, sandbox: Any) -> None:
        """Run %pod against ``sandbox`` from now on."""
        self.sandbox = sandbox
        self.kubeconfig = str(sandbox.kubeconfig)
        self.context = sandbox.context
        self._clusters.clear()

    def _pod_sandbox(self, line: str) -> Any:
        args = parse_argstring(self.pod_sandbox, _without_comment(line))
        from .sandbox import ManifestError, Sandbox

        if args.action == "start":
            if self.sandbox is not None:
                raise UsageError(
                    f"a sandbox is already running at {self.sandbox.url}; %pod_sandbox stop first"
                )
            try:
                sandbox = Sandbox(args.manifest, contexts=args.contexts)
            except ValueError as error:  # --contexts out of range: one line
                raise UsageError(f"--{error}") from None
            try:
                sandbox.start()
            except ManifestError as error:
                # Already one line naming the file, object and field: no traceback.
                raise UsageError(str(error)) from None
            except OSError as error:
                if args.manifest is None:
                    raise
                if error.strerror is None:  # the sandbox's own one-line message
                    raise UsageError(str(error)) from None
                raise UsageError(
                    f"cannot read the manifest {args.manifest}: {error.strerror}"
                ) from None
            self._use_sandbox(sandbox)
            _started_sandboxes[self._shell] = sandbox
        elif args.action == "stop":
            if self.sandbox is None:
                raise UsageError("no sandbox is running; %pod_sandbox start starts one")
            self.sandbox.stop()
            _started_sandboxes.pop(self._shell, None)
            self.sandbox = None
            self.kubeconfig = None
            self.context = None
            self._clusters.clear()
            return None
        if self.sandbox is None:
            print("no sandbox running; %pod_sandbox start starts one")
            return None
        # One line per context: each is a cluster of its own.
        for context in self.sandbox.contexts:
            each = self.sandbox.in_context(context)
            print(
                f"sandbox {each.url} (context {context}): {len(each.pods())} pods; "
                f"kubeconfig {self.sandbox.kubeconfig}"
            )
        from .sandbox._isolation import describe_isolation

        # Said on every start and status: pods that are plain processes can change this host.
        print(describe_isolation(str(self.sandbox.isolation)))
        return self.sandbox
