"""Guards before a run: protected contexts, large fan-outs, and "every pod" selections."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from .errors import RefusedError
from .targets import Selection

__all__ = ["check_allowed", "matches_protected"]

_LISTED = 10


def matches_protected(context: str, patterns: Sequence[str]) -> str | None:
    """The first pattern (shell-style, case-insensitive) that ``context`` matches, if any."""
    for pattern in patterns:
        if fnmatch.fnmatch(context.lower(), pattern.lower()):
            return pattern
    return None


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
    confirm_above: int,
    everything: bool,
    confirmed: bool,
) -> None:
    """Raise :class:`RefusedError` unless this run may go ahead without ``--yes``."""
    if confirmed:
        return
    count = len(selection.run)
    pattern = matches_protected(context, protected)
    if pattern is not None:
        raise RefusedError(
            f'context "{context}" is protected (matches {pattern!r}); it would run in {count} '
            f"pod{'s' if count != 1 else ''}: {_targets_listing(selection)}",
            hint="add --yes to run anyway, or --dry-run to list the targets",
        )
    if everything:
        raise RefusedError(
            f"an empty selector selects every pod ({count} in {selection.description})",
            hint="add --yes to run in all of them, or name a target",
        )
    if count > confirm_above:
        raise RefusedError(
            f"{count} pods is more than the {confirm_above} allowed without confirmation: "
            f"{_targets_listing(selection)}",
            hint="add --yes to run anyway (or raise PodMagic.confirm_above)",
        )
