"""Where a run's results came from: :class:`Provenance`, recorded by every run.

A runbook notebook, once saved, must say which cluster, which pods and when: the context and
API server, the namespaces, the target and selector as written, the pods it ran in (with their
uids, so that a pod recreated under the same name is told apart), the command, the options,
the start and end times, the podmagic version and the kubeconfig user's *name*.

Never a secret: no token, certificate, key or password is read here — the user is the name of
the kubeconfig entry, the server loses any ``user:password@`` and query string, env values
and stdin are left out (env names only). ``PodResults.provenance`` holds it; the summary shows
:meth:`Provenance.footer` and puts :meth:`Provenance.as_dict` in the display's metadata;
``PodResults.to_parquet`` writes it into the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "MANY_METADATA_KEY",
    "METADATA_KEY",
    "PodProvenance",
    "Provenance",
    "public_server",
    "read_provenance",
    "record",
    "write_parquet",
]

#: The key under which the provenance is stored: in a display's metadata
#: (``{"podmagic": {"provenance": {...}}}``) and in a Parquet file's metadata
#: (``b"podmagic.provenance"``, JSON).
METADATA_KEY = "podmagic.provenance"
#: The key of a Parquet file written from a run across contexts: a JSON object of each
#: context's provenance, by context name.
MANY_METADATA_KEY = "podmagic.provenances"


def public_server(server: str) -> str:
    """The API server's address without what may be secret in a URL: any
    ``user:password@`` and any query string or fragment."""
    parts = urlsplit(server)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True)
class PodProvenance:
    """One exec of the run: where it ran (the pod's uid tells a pod recreated under the
    same name apart)."""

    context: str
    namespace: str
    pod: str
    container: str | None
    uid: str | None
    node: str | None = None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


@dataclass(frozen=True)
class Provenance:
    """How one run's results came to be; frozen, and free of secrets.

    ``target`` and ``selector`` / ``field_selector`` are as the run was asked
    (``deploy/web``, ``app=web``; empty when not given); ``description`` is where the pods
    were looked for, in words (``app=web in namespace shop``). ``pods`` are the execs that
    were to run, with the pod uids; ``not_started`` how many of them never started (the
    ``--deadline`` passed first, or the run was cancelled). ``command`` is the command as shown (``('/bin/sh', '-c',
    'df -h')``); ``options`` the run's options as text (timeout, deadline, concurrency,
    retries, ok_exit, shell, workdir, env *names*...). ``started_at`` / ``ended_at`` are UTC.
    ``user`` is the kubeconfig user entry's name (None in-cluster or anonymous): never its
    token or certificate.
    """

    context: str
    server: str
    namespaces: tuple[str, ...]
    target: str
    selector: str
    field_selector: str
    description: str
    pods: tuple[PodProvenance, ...]
    command: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    started_at: datetime
    ended_at: datetime
    podmagic_version: str
    user: str | None = None
    skipped: tuple[tuple[str, str], ...] = field(default=())
    """Pods that matched but did not run, as (namespace/pod, why)."""
    not_started: int = 0
    """How many of ``pods`` never started (status ``not started``)."""

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return (self.ended_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        """The provenance as JSON-ready data (times as ISO 8601 UTC)."""
        return {
            "context": self.context,
            "server": self.server,
            "user": self.user,
            "namespaces": list(self.namespaces),
            "target": self.target,
            "selector": self.selector,
            "field_selector": self.field_selector,
            "description": self.description,
            "pods": [
                {
                    "context": p.context,
                    "namespace": p.namespace,
                    "pod": p.pod,
                    "container": p.container,
                    "uid": p.uid,
                    "node": p.node,
                }
                for p in self.pods
            ],
            "skipped": [{"pod": name, "reason": why} for name, why in self.skipped],
            "not_started": self.not_started,
            "command": list(self.command),
            "options": dict(self.options),
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "podmagic_version": self.podmagic_version,
        }

    def to_json(self) -> str:
        """:meth:`as_dict` as one JSON text."""
        return json.dumps(self.as_dict(), sort_keys=True)

    def footer(self) -> str:
        """One line for the foot of the summary: ``context kind (https://...) as user
        admin · 3 execs in shop · 2026-11-30 09:41:05 UTC, 1.2 s · podmagic 0.1.0``.

        The execs counted are those that started; the ones that never did are named apart
        (``15 execs in shop (45 not started)``), as in the summary's title.
        """
        where = f"context {self.context} ({self.server})"
        if self.user:
            where += f" as user {self.user}"
        count = len(self.pods) - self.not_started
        pods = f"{count} exec{'' if count == 1 else 's'}"
        if self.namespaces:
            pods += f" in {', '.join(self.namespaces)}"
        if self.not_started:
            pods += f" ({self.not_started} not started)"
        started = self.started_at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return (
            f"Provenance: {where} · {pods} · {started}, {self.duration:.1f} s · "
            f"podmagic {self.podmagic_version}"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Back from :meth:`as_dict` (e.g. read from a Parquet file's metadata)."""
        return cls(
            context=data["context"],
            server=data["server"],
            user=data.get("user"),
            namespaces=tuple(data["namespaces"]),
            target=data["target"],
            selector=data["selector"],
            field_selector=data["field_selector"],
            description=data["description"],
            pods=tuple(PodProvenance(**pod) for pod in data["pods"]),
            skipped=tuple((item["pod"], item["reason"]) for item in data.get("skipped", ())),
            not_started=int(data.get("not_started", 0)),
            command=tuple(data["command"]),
            options=tuple(sorted(data["options"].items())),
            started_at=datetime.fromisoformat(data["started_at"]),
            ended_at=datetime.fromisoformat(data["ended_at"]),
            podmagic_version=data["podmagic_version"],
        )


def option_items(values: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """Options as sorted (name, text) pairs, leaving out those not set (None, empty)."""
    items = []
    for name, value in values.items():
        if value is None or value == () or value == "":
            continue
        if isinstance(value, (frozenset, set)):
            value = ",".join(str(v) for v in sorted(value))
        elif isinstance(value, (tuple, list)):
            value = ",".join(str(v) for v in value)
        items.append((name, str(value)))
    return tuple(sorted(items))


def namespaces_of(pods: Iterable[PodProvenance]) -> tuple[str, ...]:
    """The namespaces the pods are in, sorted, each once."""
    return tuple(sorted({p.namespace for p in pods}))


def record(
    *,
    context: str,
    server: str,
    user: str | None,
    selection: Any,
    target: str,
    selector: str | None,
    field_selector: str | None,
    command: Iterable[str],
    options: Mapping[str, object],
    started_at: datetime,
    ended_at: datetime,
    results: Iterable[Any] = (),
) -> Provenance:
    """The provenance of a run in ``selection`` (a :class:`~podmagic.Selection`) that gave
    ``results`` (its :class:`~podmagic.PodResult`\\ s: which of them never started)."""
    from . import __version__
    from ._results import ExecStatus

    pods = tuple(
        PodProvenance(
            context=context,
            namespace=t.namespace,
            pod=t.pod,
            container=t.container,
            uid=t.pod_uid or None,
            node=t.node,
        )
        for t in selection.run
    )
    skipped = tuple((f"{s.namespace}/{s.pod}", s.reason) for s in selection.skipped)
    namespaces = namespaces_of(pods) or tuple(sorted({s.namespace for s in selection.skipped}))
    return Provenance(
        context=context,
        server=public_server(server),
        user=user,
        namespaces=namespaces,
        target=target,
        selector=selector or "",
        field_selector=field_selector or "",
        description=selection.description,
        pods=pods,
        skipped=skipped,
        not_started=sum(r.status is ExecStatus.NOT_STARTED for r in results),
        command=tuple(command),
        options=option_items(options),
        started_at=started_at,
        ended_at=ended_at,
        podmagic_version=__version__,
    )


def write_parquet(frame: Any, path: Any, provenances: Mapping[str, Provenance]) -> None:
    """``frame`` to a Parquet file at ``path``, the provenance (JSON) in its metadata: one
    context's under ``METADATA_KEY``, several contexts' (a run across contexts) as one JSON
    object by context name under ``MANY_METADATA_KEY``."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("to_parquet needs pyarrow: pip install 'podmagic[parquet]'") from None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    if len(provenances) == 1:
        (provenance,) = provenances.values()
        metadata[METADATA_KEY.encode()] = provenance.to_json().encode()
    elif provenances:
        many = {
            context: json.loads(provenances[context].to_json()) for context in sorted(provenances)
        }
        metadata[MANY_METADATA_KEY.encode()] = json.dumps(many).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)


def read_provenance(path: Any, context: str | None = None) -> Provenance | None:
    """The provenance a :meth:`PodResults.to_parquet` file holds; None when it has none.

    A file written from a run across contexts holds one per context: name the one you want
    (``context=``); without it that is a ``ValueError`` listing them. ``context`` naming a
    context the file does not hold is None.
    """
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "read_provenance needs pyarrow: pip install 'podmagic[parquet]'"
        ) from None
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(METADATA_KEY.encode())
    if raw is not None:
        provenance = Provenance.from_dict(json.loads(raw))
        return provenance if context in (None, provenance.context) else None
    many_raw = metadata.get(MANY_METADATA_KEY.encode())
    if many_raw is None:
        return None
    many = json.loads(many_raw)
    if context is None:
        raise ValueError(
            f"this file holds the provenance of {len(many)} contexts ({', '.join(many)}): "
            f"name one, e.g. read_provenance(path, context={next(iter(many))!r})"
        )
    return Provenance.from_dict(many[context]) if context in many else None
