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
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import IO, Any

import anyio

from .command import RemoteCommand, build_command
from .credentials import ClusterCredentials, load_credentials
from .engine import (
    DEFAULT_CAPTURE_BUDGET,
    DEFAULT_CAPTURE_LIMIT,
    DEFAULT_CONCURRENCY,
    ExecOptions,
    RunControl,
    run_fanout,
)
from .errors import SelectionError
from .events import EventCallback
from .kubeapi import KubeApi
from .portal import run_blocking
from .results import PodResults
from .targets import Selection, Target, TargetQuery, resolve

__all__ = ["Cluster", "StdinSource"]

StdinSource = bytes | str | IO[bytes] | IO[str] | None

_UNSET: Any = object()


def _stdin_bytes(stdin: StdinSource) -> bytes | None:
    if stdin is None or isinstance(stdin, bytes):
        return stdin
    if isinstance(stdin, str):
        return stdin.encode()
    data = stdin.read()
    return data.encode() if isinstance(data, str) else bytes(data)


def _targets(target: str | Sequence[str] | None) -> tuple[Target, ...]:
    if target is None:
        return ()
    names = [target] if isinstance(target, str) else list(target)
    return tuple(Target.parse(name) for name in names)


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
    """

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
        credentials: ClusterCredentials | None = None,
    ) -> None:
        self.credentials = credentials or load_credentials(context=context, kubeconfig=kubeconfig)
        self.namespace = namespace or self.credentials.namespace
        self.defaults = ExecOptions(max_concurrency=max_concurrency, timeout=timeout,
                                    capture_limit=capture_limit, capture_budget=capture_budget)

    @property
    def context(self) -> str:
        """The pinned context name."""
        return self.credentials.context

    def __repr__(self) -> str:
        return f"<Cluster context={self.context!r} namespace={self.namespace!r} server={self.credentials.server}>"

    # -- selection ---------------------------------------------------------------------------

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
        """A :class:`TargetQuery` from the familiar arguments (validates the target syntax)."""
        return TargetQuery(
            targets=_targets(target), label_selector=selector, field_selector=field_selector,
            namespace=namespace, all_namespaces=all_namespaces, include_unready=include_unready,
            one=one, pick=pick, container=container, all_containers=all_containers, seed=seed,
        )

    async def aselect(self, target: str | Sequence[str] | None = None, *,
                      deadline: float | None = None, **query: Any) -> Selection:
        """Resolve a target to the pods it would run in (nothing is executed).

        With ``deadline`` (seconds), finding the pods — throttled retries included — gives up
        with a :class:`SelectionError` once it has passed.
        """
        async with KubeApi(self.credentials) as api:
            return await self._resolve(api, self.query(target, **query), deadline)

    async def _resolve(self, api: KubeApi, query: TargetQuery, deadline: float | None) -> Selection:
        if deadline is None:
            return await resolve(api, query, default_namespace=self.namespace)
        with anyio.move_on_after(deadline):
            return await resolve(api, query, default_namespace=self.namespace)
        raise SelectionError(
            f"the overall deadline of {deadline:g}s passed while finding the pods "
            f"({query.describe(self.namespace)})",
            hint="the API server is slow or throttling requests; allow more time with --deadline",
        )

    def select(self, target: str | Sequence[str] | None = None, **query: Any) -> Selection:
        """Blocking :meth:`aselect`."""
        return run_blocking(lambda: self.aselect(target, **query))

    # -- running -----------------------------------------------------------------------------

    def command(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        shell: str | None = "/bin/sh",
        stdin: StdinSource = None,
    ) -> RemoteCommand:
        """Build the remote command: a string is a shell script, a sequence a direct argv."""
        data = _stdin_bytes(stdin)
        if isinstance(command, str):
            if shell is None:
                raise ValueError("a shell script needs a shell; pass the command as a list to run it directly")
            return build_command(script=command, shell=shell, env=env, workdir=workdir, stdin=data)
        return build_command(argv=list(command), shell=shell or "/bin/sh", env=env, workdir=workdir, stdin=data)

    async def arun(
        self,
        command: str | Sequence[str],
        target: str | Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        shell: str | None = "/bin/sh",
        stdin: StdinSource = None,
        tty: bool = False,
        timeout: float | None = _UNSET,
        deadline: float | None = None,
        max_concurrency: int | None = None,
        retries: int = 0,
        capture_limit: int | None = _UNSET,
        capture_budget: int | None = _UNSET,
        on_event: EventCallback | None = None,
        control: RunControl | None = None,
        selection: Selection | None = None,
        **query: Any,
    ) -> PodResults:
        """Run ``command`` in every pod the target names; one result per pod × container.

        Query arguments (``selector``, ``namespace``, ``all_namespaces``, ``container``,
        ``one``, ``pick`` ...) are those of :meth:`query`. Pass ``selection`` to run in pods
        already resolved by :meth:`aselect`. An explicit ``capture_limit`` (``None``: keep
        everything) is taken as asked: the run-wide budget then applies only if given too.
        """
        remote = self.command(command, env=env, workdir=workdir, shell=shell, stdin=stdin)
        options = replace(
            self.defaults,
            tty=tty,
            deadline=deadline,
            retries=retries,
            max_concurrency=max_concurrency or self.defaults.max_concurrency,
            timeout=self.defaults.timeout if timeout is _UNSET else timeout,
            capture_limit=self.defaults.capture_limit if capture_limit is _UNSET else capture_limit,
            capture_budget=(
                capture_budget if capture_budget is not _UNSET
                else self.defaults.capture_budget if capture_limit is _UNSET
                else None
            ),
        )
        shown = (shell or "/bin/sh", "-c", command) if isinstance(command, str) else tuple(command)
        async with KubeApi(self.credentials) as api:
            if selection is None:
                # The overall deadline covers finding the pods too; the execs get what is left.
                started = anyio.current_time()
                selection = await self._resolve(api, self.query(target, **query), deadline)
                if deadline is not None:
                    left = deadline - (anyio.current_time() - started)
                    options = replace(options, deadline=max(left, 0.001))
            return await run_fanout(api, selection, remote, options, context=self.context,
                                    command_args=shown, control=control, on_event=on_event)

    def run(self, command: str | Sequence[str], target: str | Sequence[str] | None = None,
            **kwargs: Any) -> PodResults:
        """Blocking :meth:`arun`; works inside Jupyter. Ctrl-C returns the partial results."""
        control: RunControl = kwargs.pop("control", None) or RunControl()
        return run_blocking(lambda: self.arun(command, target, control=control, **kwargs),
                            on_interrupt=lambda: control.cancel("interrupted"))
