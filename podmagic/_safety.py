"""Guards before a run: protected contexts, large fan-outs, and "every pod" selections.

One implementation for ``%pod`` and for :class:`~podmagic.Cluster`: the magic passes
its traitlets (``PodMagic.protected_contexts``, ``PodMagic.confirm_above``) and ``--yes``; the
Python API its constructor's ``protected_contexts``/``confirm_above`` and ``yes=True``. Both
start from the same defaults, below.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from ._errors import RefusedError
from ._query import TargetQuery
from ._resolve import Selection

__all__ = [
    "DEFAULT_CONFIRM_ABOVE",
    "DEFAULT_PROTECTED_CONTEXTS",
    "check_allowed",
    "matches_protected",
    "names_no_pods",
]

#: Context name patterns (shell-style, case-insensitive) that need confirmation.
DEFAULT_PROTECTED_CONTEXTS: tuple[str, ...] = ("*prod*",)
#: Runs in more pods than this need confirmation.
DEFAULT_CONFIRM_ABOVE = 50

_LISTED = 10


def matches_protected(context: str, patterns: Sequence[str]) -> str | None:
    """The first pattern (shell-style, case-insensitive) that ``context`` matches, if any.

    A pattern always matches its own literal name too: ``x[1]`` protects the context named
    ``x[1]`` (as a glob alone it would match only ``x1``)."""
    for pattern in patterns:
        if context.lower() == pattern.lower() or fnmatch.fnmatch(context.lower(), pattern.lower()):
            return pattern
    return None


def names_no_pods(query: TargetQuery) -> bool:
    """True when ``query`` has no target and no (or an empty) label selector.

    A field selector alone does not narrow a run to chosen pods (``status.phase=Running`` is
    most of them), so it does not count: such a run is one in every pod, and needs saying so.
    """
    return not query.targets and not (query.label_selector or "").strip()


def _how_many(count: int, description: str) -> str:
    """``10 pods in namespace demo`` (not "10 in all pods in namespace demo")."""
    pods = f"{count} pod{'' if count == 1 else 's'}"
    rest = description.removeprefix("all pods ")
    return f"{pods} {rest}" if rest != description else f"{pods}: {description}"


def _targets_listing(selection: Selection) -> str:
    names = [f"{t.namespace}/{t.pod}" for t in selection.run]
    shown = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        shown += f" and {len(names) - _LISTED} more"
    return shown


def check_allowed(
    selection: Selection,
    *,
    context: str,
    protected: Sequence[str],
    confirm_above: int | None,
    everything: bool,
    confirmed: bool,
    api: bool = False,
) -> None:
    """Raise :class:`RefusedError` unless this run may go ahead without confirmation.

    ``everything``: the run names no target and no label selector (a field selector alone
    does not count, see :func:`names_no_pods`), so it selects every pod of the namespace(s). ``confirmed`` is ``--yes`` (``yes=True``), which lifts every refusal
    except, for the Python API (``api=True``), that one: a call that forgot its target is a
    mistake that ``yes=True`` does not mean to confirm; ``all_pods=True`` says it instead.
    ``confirm_above=None`` sets no limit on the number of pods. The hints name the magic's
    options, or with ``api=True`` the Python arguments.
    """
    count = len(selection.run)
    if everything and (api or not confirmed):
        if api:
            raise RefusedError(
                f"no target and no label selector: this would run in every pod "
                f"({_how_many(count, selection.description)}): {_targets_listing(selection)}",
                hint="name a pod or workload, or pass selector=... (a field selector alone "
                'does not count); all_pods=True (or selector="") runs in every pod on purpose',
            )
        raise RefusedError(
            f"an empty selector selects every pod ({_how_many(count, selection.description)})",
            hint="add --yes to run in all of them, or name a target",
        )
    if confirmed:
        return
    confirm = "pass yes=True" if api else "add --yes"
    pattern = matches_protected(context, protected)
    if pattern is not None:
        listing = (
            "--dry-run to list the targets" if not api else "Cluster.select() to list the targets"
        )
        raise RefusedError(
            f'context "{context}" is protected (matches {pattern!r}); it would run in {count} '
            f"pod{'s' if count != 1 else ''}: {_targets_listing(selection)}",
            hint=f"{confirm} to run anyway, or {listing}",
        )
    if confirm_above is not None and count > confirm_above:
        limit = "Cluster(confirm_above=...)" if api else "PodMagic.confirm_above"
        raise RefusedError(
            f"{count} pods is more than the {confirm_above} allowed without confirmation: "
            f"{_targets_listing(selection)}",
            hint=f"{confirm} to run anyway (or raise {limit})",
        )
