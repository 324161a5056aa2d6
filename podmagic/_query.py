"""What the user asked for, parsed: the target grammar and the query a run resolves.

A :class:`Target` is one pod or workload named as kubectl names it (``web-1``, ``pod/web-1``,
``deploy/web``, ``sts/db`` ...). A :class:`TargetQuery` holds everything a run's target is
made of: targets, a label selector (``-l``), a field selector, the namespace or ``-A``, and
the choices about which pods and containers to use (``--include-unready``, ``--one``,
``--pick N``, ``-c``, ``--all-containers``). This module checks what was typed and turns it
into these values and into parsed selectors, each mistake as one
:class:`~podmagic.SelectionError` line that says what to do; it sends no request
(:mod:`podmagic._resolve` does that).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Final

from ._errors import SelectionError
from ._kinds import ALIASES, KINDS, WORKLOAD_KINDS
from ._selectors import FieldSelector, LabelSelector, SelectorError

__all__ = [
    "Target",
    "TargetQuery",
    "check_query",
    "kind_word",
    "one_line",
    "parse_field_selector",
    "parse_label_selector",
    "quoted",
    "shown",
]

_SHORT_PREFIXES: Final = ", ".join(f"{kind.short}/" for kind in KINDS.values())

_NAME_MAX: Final = 253
_NAME_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAMESPACE_MAX: Final = 63
_NAMESPACE_RE: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

_LABEL_EXAMPLE: Final = "e.g. -l 'app=web,tier in (a,b)'"
_FIELD_EXAMPLE: Final = "e.g. --field-selector spec.nodeName=node-1,status.phase=Running"


def quoted(text: str) -> str:
    """Double-quoted and escaped, so that whatever the user typed stays on one line."""
    return json.dumps(text, ensure_ascii=False)


def shown(text: str, limit: int = 60) -> str:
    """:func:`quoted`, cut to ``limit`` characters."""
    return quoted(text if len(text) <= limit else text[:limit] + "…")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) as one space."""
    return " ".join(text.split())


def kind_word(kind: str) -> str:
    """The kind as messages name it: ``pod``, ``deployment``."""
    return kind.lower()


# -- what the user named ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """One pod or workload the user named: ``kind`` is ``"Pod"`` or a workload kind."""

    kind: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SelectionError(
                f"unknown target kind {quoted(self.kind)}", hint=f"use one of {', '.join(KINDS)}"
            )

    @classmethod
    def parse(cls, text: str) -> Target:
        """Parse ``NAME``, ``pod/NAME`` or ``KIND/NAME`` (``deploy/web``, ``sts/db``, ...).

        Raise :class:`SelectionError` for an unknown kind prefix (listing the accepted ones)
        and for a name that is not a valid Kubernetes object name (RFC 1123 subdomain).
        """
        stripped = text.strip()
        if not stripped:
            raise SelectionError(
                "empty target", hint="give a pod name, KIND/NAME such as deploy/web, or -l"
            )
        prefix, slash, name = stripped.partition("/")
        if not slash:
            kind, name = "Pod", stripped
        else:
            found = ALIASES.get(prefix.lower())
            if found is None:
                raise SelectionError(
                    f"unknown kind {shown(prefix)} in {shown(stripped)}",
                    hint=f"use one of {_SHORT_PREFIXES} (long forms such as deployment/ and "
                    "deployments.apps/ work too)",
                )
            kind = found
            if not name:
                raise SelectionError(
                    f"no name after {quoted(prefix + '/')}", hint=f"e.g. {prefix}/web"
                )
        _check_name(kind, name, typed=stripped)
        return cls(kind, name)

    @property
    def is_pod(self) -> bool:
        """Whether it names a pod (else a workload)."""
        return self.kind not in WORKLOAD_KINDS

    def __str__(self) -> str:
        return f"{KINDS[self.kind].short}/{self.name}"


def _check_name(kind: str, name: str, *, typed: str) -> None:
    what = f"invalid {kind_word(kind)} name {shown(name)}"
    if len(name) > _NAME_MAX:
        raise SelectionError(f"{what}: longer than {_NAME_MAX} characters")
    if not _NAME_RE.fullmatch(name):
        looks_like_selector = any(char in name for char in "=!,() ")
        raise SelectionError(
            f"{what}: names are lowercase letters, digits, '-' and '.', and start and end with a "
            "letter or digit",
            hint=f"for a label selector use -l {typed}" if looks_like_selector else None,
        )


@dataclasses.dataclass(frozen=True)
class TargetQuery:
    """Everything that decides which pods and containers a run uses, as
    :meth:`Cluster.query() <podmagic.Cluster.query>` makes it from the same arguments as
    ``Cluster.run``; checks the syntax and contacts nothing.

    ``namespace`` ``None`` means the Cluster's namespace; ``all_namespaces`` (``-A``)
    overrides it. ``one`` runs
    in one pod, the most active, like ``kubectl exec deploy/NAME``; ``pick`` in a random sample
    of that many eligible pods (``seed`` makes it reproducible). An empty selector string
    counts as no selector.
    """

    targets: tuple[Target, ...] = ()
    label_selector: str | None = None
    field_selector: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    include_unready: bool = False
    one: bool = False
    pick: int | None = None
    container: str | None = None
    all_containers: bool = False
    seed: int | None = None

    def _label_text(self) -> str:
        return (self.label_selector or "").strip()

    def _field_text(self) -> str:
        return (self.field_selector or "").strip()

    def _targets_text(self) -> str:
        unique = list(dict.fromkeys(self.targets))
        pods = [t.name for t in unique if t.is_pod]
        parts = []
        if pods:
            parts.append(("pod " if len(pods) == 1 else "pods ") + ", ".join(pods))
        parts.extend(str(t) for t in unique if not t.is_pod)
        return ", ".join(parts)

    def subject(self) -> str:
        """What was named, without where: ``app=web``, ``deploy/web with status.phase=...``."""
        named = self._targets_text() or self._label_text()
        fields = self._field_text()
        if named and fields:
            return f"{named} with {fields}"
        return named or fields

    def where(self, default_namespace: str, *, error: bool = False) -> str:
        """``in namespace demo``; with ``-A`` ``in all namespaces`` (``in any namespace`` in
        an ``error``)."""
        if self.all_namespaces:
            return "in any namespace" if error else "in all namespaces"
        return f"in namespace {self.namespace or default_namespace}"

    def describe(self, default_namespace: str) -> str:
        """Where pods are looked for, in words.

        ``app=web in namespace prod``, ``deploy/web in namespace demo``,
        ``pods web-1, web-2 in all namespaces``, ``all pods in namespace default``.
        """
        return f"{self.subject() or 'all pods'} {self.where(default_namespace)}"

    @property
    def selects_everything(self) -> bool:
        """True with no targets and no (or empty) selectors: every pod of the namespace(s).

        The caller asks for confirmation before running in that many pods.
        """
        return not self.targets and not self._label_text() and not self._field_text()

    def selectors(self) -> tuple[LabelSelector | None, FieldSelector | None]:
        """The label and field selectors parsed; ``None`` for an absent or empty one.

        Checked here, before any request, so that a typo is one line naming the mistake
        rather than the server's 400.
        """
        return parse_label_selector(self._label_text()), parse_field_selector(self._field_text())


def parse_label_selector(text: str) -> LabelSelector | None:
    """``-l`` text parsed; ``None`` when empty; :class:`SelectionError` when malformed."""
    if not text:
        return None
    try:
        return LabelSelector.parse(text)
    except SelectorError as exc:
        raise SelectionError(
            f"invalid label selector {shown(text)}: {one_line(str(exc))}", hint=_LABEL_EXAMPLE
        ) from None


def parse_field_selector(text: str) -> FieldSelector | None:
    """``--field-selector`` text parsed; ``None`` when empty; :class:`SelectionError` when
    malformed or naming a field pods cannot be selected by."""
    if not text:
        return None
    try:
        return FieldSelector.parse(text)
    except SelectorError as exc:
        raise SelectionError(
            f"invalid field selector {shown(text)}: {one_line(str(exc))}", hint=_FIELD_EXAMPLE
        ) from None


def check_query(query: TargetQuery, namespace: str | None) -> None:
    """Refuse choices that contradict each other and a malformed ``namespace`` (``None``: -A)."""
    if query.targets and query._label_text():
        if all(target.is_pod for target in query.targets):
            raise SelectionError("give pod names or a selector (-l), not both")
        raise SelectionError("give pod or workload names or a selector (-l), not both")
    if query.one and query.pick is not None:
        raise SelectionError("give --one or --pick N, not both")
    if query.pick is not None and query.pick < 1:
        raise SelectionError(
            f"--pick {query.pick}: the sample must hold at least 1 pod", hint="e.g. --pick 3"
        )
    if query.container is not None and query.all_containers:
        raise SelectionError("give -c/--container or --all-containers, not both")
    if query.container is not None and not query.container.strip():
        raise SelectionError("empty container name", hint="give -c NAME")
    if namespace is not None and (
        len(namespace) > _NAMESPACE_MAX or not _NAMESPACE_RE.fullmatch(namespace)
    ):
        raise SelectionError(
            f"invalid namespace {shown(namespace)}: namespaces are at most 63 lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
