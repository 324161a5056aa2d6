"""Fan-out: one remote command run in every selected pod, concurrently, with limits.

An anyio task group runs ``max_concurrency`` workers that take the (pod, container) targets in
order, one exec at a time each (no task, limiter or event per queued pod: a fan-out over 500
pods costs what its 50 workers cost). Each target ends as a :class:`~podmagic.PodResult`
whatever happens — ok, failed, error, timeout, cancelled, not started — so one slow, broken or
vanished pod never hides the others. Cancellation (``RunControl.cancel()``, or the overall
deadline) cancels the task group; the running execs record their partial results on the way
out, those never started are recorded as not started, and the run returns them all.

Nothing is built for a listener that is not there: events are made only with an
``on_event`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import random
import threading
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.lowlevel import EventLoopToken

from ._channels import STDOUT, Stream
from ._command import RemoteCommand
from ._errors import HandshakeError, PodmagicError, StreamLostError
from ._events import (
    Event,
    EventCallback,
    PodFinished,
    PodOutput,
    PodStarted,
    RunFinished,
    RunStarted,
)
from ._kubeapi import KubeApi, Reach, RetryPolicy, describe_timeout, format_seconds
from ._natsort import natural_key
from ._podview import PodView
from ._resolve import PodTarget, Selection, SkippedPod
from ._results import ExecStatus, PodResult, PodResults
from ._transport import ExecOutcome, ExecSpec, run_exec

__all__ = [
    "DEFAULT_CAPTURE_BUDGET",
    "DEFAULT_CAPTURE_LIMIT",
    "DEFAULT_CONCURRENCY",
    "ExecOptions",
    "RunControl",
    "run_fanout",
]

DEFAULT_CONCURRENCY = 50
DEFAULT_CAPTURE_LIMIT = 16 * 1024 * 1024
DEFAULT_CAPTURE_BUDGET = 128 * 1024 * 1024
MIN_CAPTURE_SHARE = 16 * 1024


@dataclass(frozen=True)
class ExecOptions:
    """How to run: limits, timeouts and retries. Seconds throughout; None = no limit."""

    timeout: float | None = None
    deadline: float | None = None
    connect_timeout: float = 10.0
    max_concurrency: int = DEFAULT_CONCURRENCY
    retries: int = 0
    retry_delay: float = 0.5
    capture_limit: int | None = DEFAULT_CAPTURE_LIMIT
    capture_budget: int | None = DEFAULT_CAPTURE_BUDGET
    tty: bool = False
    width: int = 80
    height: int = 24
    #: Exit codes that count as success (``--ok-exit 0,1``); the result keeps the real code.
    ok_exit: frozenset[int] = frozenset({0})

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        for name in ("timeout", "deadline"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if not self.ok_exit or any(not 0 <= code <= 255 for code in self.ok_exit):
            codes = sorted(self.ok_exit)
            raise ValueError(f"ok_exit must be exit codes from 0 to 255, got {codes}")
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries}")
        if self.capture_limit is not None and self.capture_limit < 0:
            raise ValueError(f"capture_limit must be 0 or more bytes, got {self.capture_limit}")
        if self.capture_budget is not None and self.capture_budget < 0:
            raise ValueError(f"capture_budget must be 0 or more bytes, got {self.capture_budget}")

    def capture_share(self, execs: int) -> int | None:
        """Bytes kept per stream of each exec: the per-pod limit, within the run's budget.

        A fan-out over 1,000 pods must not keep 1,000 × 16 MiB: the budget is shared among
        the execs (never below 16 KiB each), and what is dropped is counted in each result.
        """
        if self.capture_budget is None or execs == 0:
            return self.capture_limit
        share = max(MIN_CAPTURE_SHARE, self.capture_budget // (2 * execs))
        return share if self.capture_limit is None else min(self.capture_limit, share)


@dataclass
class RunControl:
    """A handle to cancel a run, from its own loop or from any other thread."""

    _scope: anyio.CancelScope | None = None
    _reason: str | None = None
    _token: EventLoopToken | None = None
    _loop_thread: int | None = None
    cancel_requested: bool = False

    def cancel(self, reason: str = "cancelled") -> None:
        """Stop the run: running execs end as cancelled, queued ones as not started."""
        self.cancel_requested = True
        if self._reason is None:
            self._reason = reason
        scope, token = self._scope, self._token
        if scope is None:
            return
        if self._loop_thread == threading.get_ident() or token is None:
            scope.cancel()
        else:
            # A cancel scope belongs to its loop: hand the call over rather than poke it here.
            with contextlib.suppress(RuntimeError):
                anyio.from_thread.run_sync(scope.cancel, token=token)

    def _attach(self, scope: anyio.CancelScope) -> None:
        self._scope = scope
        self._token = anyio.lowlevel.current_token()
        self._loop_thread = threading.get_ident()
        if self.cancel_requested:
            scope.cancel()

    def _detach(self) -> None:
        self._scope = None
        self._token = None


class _Capture:
    """The first ``limit`` bytes of a stream, and a count and SHA-256 digest of the rest.

    The digest lets results tell outputs apart past the limit (two pods that print the same
    first 64 KiB and differ after it are not the same output). Only dropped bytes are hashed:
    output within the limit costs nothing extra, and the kept bytes are compared as they are.
    """

    __slots__ = ("chunks", "dropped", "hasher", "kept", "limit")

    def __init__(self, limit: int | None) -> None:
        self.chunks: list[bytes] = []
        self.kept = 0
        self.dropped = 0
        self.limit = limit
        self.hasher: Any = None

    def add(self, data: bytes) -> None:
        room = len(data) if self.limit is None else max(0, self.limit - self.kept)
        if room >= len(data):
            self.chunks.append(data)
            self.kept += len(data)
        else:
            if room:
                self.chunks.append(data[:room])
                self.kept += room
            self.dropped += len(data) - room
            if self.hasher is None:
                self.hasher = hashlib.sha256()
            self.hasher.update(memoryview(data)[room:] if room else data)

    def digest(self) -> bytes | None:
        """SHA-256 of the dropped bytes; None when nothing was dropped."""
        return None if self.hasher is None else bytes(self.hasher.digest())

    def value(self) -> bytes:
        # Joined once; the chunks go, so the output is not held twice.
        joined = b"".join(self.chunks)
        self.chunks = [joined]
        return joined


#: Seconds without output before a lost connection is worth calling a possible idle cut.
_IDLE_NOTE_AFTER = 1.0

_NO_SHELL_HINT = "images without a shell need a direct argv: --no-shell"

#: Added to a timeout after the start, where the script starts a job with ``&``: a finished
#: command whose job keeps stdout/stderr open gets no exit status either, and nothing tells
#: the two apart from here (the server says nothing until every writer has closed).
_BACKGROUND_HINT = (
    "; or it finished but a background process it started with & keeps "
    "stdout/stderr open, which holds the exec (redirect its output: "
    "cmd >/dev/null 2>&1 &)"
)


def _starts_background_job(command: Sequence[str]) -> bool:
    """Whether a shell script (``sh -c SCRIPT``) starts a background job: an unquoted ``&``
    that is not part of ``&&``, ``|&``, ``>&``, ``<&`` or ``&>``. A heuristic (a ``&`` in a
    here-document or an arithmetic expression counts too), used only to word a hint."""
    if len(command) < 3 or command[-2] != "-c":
        return False
    script = command[-1]
    quote: str | None = None
    index, size = 0, len(script)
    while index < size:
        char = script[index]
        if quote == "'":
            if char == "'":
                quote = None
        elif char == "\\":
            index += 1  # the next character is literal
        elif quote == '"':
            if char == '"':
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or script[index - 1] in " \t\n;&|()"):
            newline = script.find("\n", index)
            index = size if newline < 0 else newline
            continue
        elif char == "&":
            before = script[index - 1] if index else ""
            after = script[index + 1] if index + 1 < size else ""
            if after == "&":
                index += 2
                continue
            if before not in ("|", ">", "<") and after != ">":
                return True
        index += 1
    return False


def _exit_hint(code: int, direct: bool = False) -> str | None:
    """Words for an exit code; ``direct``: the command was a direct argv, so advice to run
    one (``--no-shell``) would not fit."""
    if code == 126:
        return "exit 126: command found but not executable (permissions, or a directory)" + (
            "" if direct else f"; {_NO_SHELL_HINT}"
        )
    if code == 127:
        return "exit 127: command not found in the container; check the image has it" + (
            "" if direct else f" ({_NO_SHELL_HINT})"
        )
    if code == 137:
        return "exit 137: killed (SIGKILL: out of memory, or the container stopped)"
    return None


class _PodRun:
    """One (pod, container) exec with its capture buffers, retries and final result."""

    def __init__(self, fanout: _Fanout, target: PodTarget) -> None:
        self.fanout = fanout
        self.target = target
        self.stdout = _Capture(fanout.capture_limit)
        self.stderr = _Capture(fanout.capture_limit)
        self.started_at: dt.datetime | None = None
        self.started_clock: float | None = None
        self.output_clock: float | None = None
        self.result: PodResult | None = None

    def _on_output(self, channel: int, data: bytes) -> None:
        (self.stdout if channel == STDOUT else self.stderr).add(data)
        # The loop's own clock (anyio.current_time() looks the async library up every call).
        self.output_clock = self.fanout.clock()
        on_event = self.fanout.on_event
        if on_event is not None:
            on_event(
                PodOutput(self.target, Stream.STDOUT if channel == STDOUT else Stream.STDERR, data)
            )

    def _on_started(self) -> None:
        if self.started_at is None:
            self.started_at = dt.datetime.now(dt.timezone.utc)
            self.started_clock = self.fanout.clock()
            on_event = self.fanout.on_event
            if on_event is not None:
                on_event(PodStarted(self.target))

    def finish(
        self, status: ExecStatus, *, exit_code: int | None = None, error: str | None = None
    ) -> PodResult:
        duration = None
        if self.started_clock is not None:
            duration = self.fanout.clock() - self.started_clock
        target = self.target
        self.result = PodResult(
            context=self.fanout.context,
            namespace=target.namespace,
            pod=target.pod,
            container=target.container,
            node=target.node,
            command=self.fanout.command_args,
            status=status,
            exit_code=exit_code,
            stdout=self.stdout.value(),
            stderr=self.stderr.value(),
            started_at=self.started_at,
            duration=duration,
            error=error,
            stdout_dropped=self.stdout.dropped,
            stderr_dropped=self.stderr.dropped,
            stdout_dropped_digest=self.stdout.digest(),
            stderr_dropped_digest=self.stderr.digest(),
        )
        on_event = self.fanout.on_event
        if on_event is not None:
            on_event(PodFinished(self.result))
        return self.result

    async def run(self) -> None:
        fanout = self.fanout
        try:
            await self._attempts()
        except Exception as error:  # noqa: BLE001 - one pod's surprise must not sink the others
            self.finish(
                ExecStatus.ERROR, error=f"unexpected error: {type(error).__name__}: {error}"
            )
        except anyio.get_cancelled_exc_class():
            # Recording the partial result is synchronous: nothing here can be cancelled.
            reason = fanout.control._reason or "cancelled"
            if self.started_at is None:
                self.not_started()
            elif reason.startswith("overall deadline"):
                if _starts_background_job(fanout.command_args):
                    reason += _BACKGROUND_HINT
                self.finish(ExecStatus.TIMEOUT, error=reason)
            else:
                self.finish(ExecStatus.CANCELLED, error=reason)
            raise

    def not_started(self) -> None:
        """Record that the run was stopped before this exec started."""
        reason = self.fanout.control._reason or "cancelled"
        self.finish(ExecStatus.NOT_STARTED, error=f"not started: {reason}")

    async def _attempts(self) -> None:
        options = self.fanout.options
        attempt = 0
        while True:
            retry = await self._once()
            if not retry or attempt >= options.retries:
                return
            attempt += 1
            delay = options.retry_delay * (2 ** (attempt - 1)) * (0.5 + random.random())
            await anyio.sleep(min(delay, 10.0))
            self.stdout = _Capture(self.fanout.capture_limit)
            self.stderr = _Capture(self.fanout.capture_limit)
            self.started_at = None
            self.started_clock = None
            self.output_clock = None

    def _handshake_policy(self, timeout: float | None) -> RetryPolicy:
        """The API client's retry policy, bounded by this attempt's timeout and the run's
        deadline: a Retry-After that would end past either is not waited for."""
        policy = self.fanout.api.retry
        limits = [t for t in (policy.deadline, self.fanout.deadline_at) if t is not None]
        if timeout:
            limits.append(anyio.current_time() + timeout)
        return replace(policy, deadline=min(limits)) if limits else policy

    async def _once(self) -> bool:
        """Run one attempt; returns True if it failed in a way a retry may fix."""
        fanout, target, options = self.fanout, self.target, self.fanout.options
        spec = ExecSpec(
            namespace=target.namespace,
            pod=target.pod,
            container=target.container,
            command=fanout.command.argv,
            stdin=fanout.command.stdin,
            tty=options.tty,
            width=options.width,
            height=options.height,
            capture_limit=0,
            connect_timeout=options.connect_timeout,
        )
        timeout = options.timeout
        reach = Reach()
        try:
            # The per-pod timeout covers the whole exec: credentials, connecting, the upgrade,
            # the command, and the close (which then only sends its close frame).
            with anyio.fail_after(timeout) if timeout else nullcontext():
                outcome: ExecOutcome = await run_exec(
                    fanout.api,
                    spec,
                    on_output=self._on_output,
                    on_started=self._on_started,
                    retry=self._handshake_policy(timeout),
                    reach=reach,
                )
        except TimeoutError:
            assert timeout is not None
            self.finish(ExecStatus.TIMEOUT, error=self._timeout_message(timeout, reach))
            return False
        except HandshakeError as error:
            message: str | None = str(error)
            if error.http_status == 404:
                message = await self._explain_gone(message)
            self.finish(ExecStatus.ERROR, error=message)
            return error.http_status in (0, 429, 500, 502, 503, 504)
        except StreamLostError as error:
            message = str(error)
            note = await self._interruption()
            if note:
                message += f"; {note}"
            else:
                last = self.output_clock or self.started_clock
                silent = anyio.current_time() - last if last is not None else 0.0
                if silent >= _IDLE_NOTE_AFTER:
                    message += (
                        f"; nothing had arrived for {silent:.1f}s before it dropped (a proxy "
                        "or load balancer that cuts idle connections can do this)"
                    )
            self.finish(ExecStatus.ERROR, error=message)
            return True
        if outcome.exit_code is not None and outcome.exit_code in options.ok_exit:
            # The real code is kept: --ok-exit 0,1 makes grep's "no match" ok, not exit 0.
            self.finish(ExecStatus.OK, exit_code=outcome.exit_code)
            return False
        if outcome.exit_code is not None:
            message = _exit_hint(outcome.exit_code, self.fanout.command.direct)
            if outcome.exit_code >= 128:
                note = await self._interruption()
                if note:
                    message = f"exit {outcome.exit_code}: killed: {note}"
            self.finish(ExecStatus.FAILED, exit_code=outcome.exit_code, error=message)
            return False
        error_text = outcome.error or "the exec failed without an exit code"
        if "executable file not found" in error_text or "no such file or directory" in error_text:
            if self.fanout.command.direct:
                # The program itself is missing: no shell was involved to blame.
                error_text += (
                    "; the command ran as a direct argv (no shell): check the program's "
                    "name, or give its full path"
                )
            else:
                error_text += (
                    "; if the image has no shell, run a direct argv (--no-shell), "
                    "or choose one with --shell"
                )
        self.finish(ExecStatus.ERROR, error=error_text)
        return False

    def _timeout_message(self, timeout: float, reach: Reach) -> str:
        """What the per-pod timeout cut, in words that say only what is known."""
        api = self.fanout.api
        if self.started_at is None:
            step = reach.stalled_step() if reach.step != "done" else "answer"
            what, _ = describe_timeout(
                api.server,
                step,
                None,
                what="exec upgrade",
                proxy=bool(api.proxy),
                https=api.server.startswith("https:"),
            )
            if step == "credentials":
                # Still logging in: name what was waited for (a plugin is stopped by the cut).
                what = f"still waiting for the {api.credentials.credential_source()}, which was stopped"
            message = (
                f"the exec did not start within the {format_seconds(timeout)}s timeout: {what}"
            )
            if reach.last_failure and step == "tcp":
                message += f" (the attempt before: {reach.last_failure})"
            return message
        message = (
            f"no exit status within the {format_seconds(timeout)}s timeout; the command "
            "may still be running"
        )
        if _starts_background_job(self.fanout.command_args):
            message += _BACKGROUND_HINT  # only where the script starts a job with `&`
        return message

    async def _current_pod(self) -> tuple[bool, dict[str, Any] | None]:
        """``(known, pod)``: the pod as the API server has it now (``None``: gone).

        ``known`` is False when the look-up itself failed or took too long: an explanation is
        a bonus, and must never replace the error it was meant to explain.
        """
        with anyio.move_on_after(5):
            try:
                return True, await self.fanout.api.get_pod(self.target.namespace, self.target.pod)
            except PodmagicError:
                pass
        return False, None

    async def _explain_gone(self, message: str | None) -> str | None:
        known, pod = await self._current_pod()
        if known and pod is None:
            return f"gone (404): pod {self.target.pod} was deleted after it was selected"
        return message

    async def _interruption(self) -> str | None:
        """Why an exec broke off, when the pod says: deleted, replaced or restarted mid-exec."""
        target = self.target
        known, pod = await self._current_pod()
        if not known:
            return None
        if pod is None:
            return "the pod was deleted while the command ran"
        now = PodView(pod)
        if now.uid != target.pod_uid:
            return "the pod was replaced (new uid) while the command ran"
        if now.restart_count(target.container) > target.restarts:
            return "the container restarted while the command ran"
        return None


@dataclass
class _Fanout:
    api: KubeApi
    context: str
    command: RemoteCommand
    options: ExecOptions
    control: RunControl
    on_event: EventCallback | None
    shell_display: tuple[str, ...] = field(default=())
    #: When the overall deadline passes, on :func:`anyio.current_time`'s clock.
    deadline_at: float | None = None
    #: Bytes kept per stream of each exec (the per-pod limit within the run's budget).
    capture_limit: int | None = None
    #: The clock of :func:`anyio.current_time`, read without looking the async library up.
    clock: Callable[[], float] = anyio.current_time

    @property
    def command_args(self) -> tuple[str, ...]:
        return self.shell_display

    def emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)


def _skipped_result(context: str, skipped: SkippedPod, command: tuple[str, ...]) -> PodResult:
    return PodResult(
        context=context,
        namespace=skipped.namespace,
        pod=skipped.pod,
        container=skipped.container,
        node=skipped.node,
        command=command,
        status=ExecStatus.ERROR if skipped.is_error else ExecStatus.SKIPPED,
        error=skipped.reason,
    )


async def run_fanout(
    api: KubeApi,
    selection: Selection,
    command: RemoteCommand,
    options: ExecOptions,
    *,
    context: str,
    command_args: Sequence[str] | None = None,
    control: RunControl | None = None,
    on_event: EventCallback | None = None,
    deadline_at: float | None = None,
) -> PodResults:
    """Run ``command`` in every pod of ``selection``; always returns one result per target.

    ``command_args`` is what results show as their command (default: the argv sent).
    ``deadline_at`` is when ``options.deadline`` passes, on :func:`anyio.current_time`'s
    clock (default: that many seconds from now); a caller that spent part of the deadline
    finding the pods passes it, and messages still show the deadline as it was asked.
    """
    control = control or RunControl()
    if deadline_at is None and options.deadline is not None:
        deadline_at = anyio.current_time() + options.deadline
    fanout = _Fanout(
        api=api,
        context=context,
        command=command,
        options=options,
        control=control,
        on_event=on_event,
        shell_display=tuple(command_args or command.argv),
        deadline_at=deadline_at,
        capture_limit=options.capture_share(len(selection.run)),
    )
    with contextlib.suppress(RuntimeError):  # on asyncio, what anyio.current_time() reads
        fanout.clock = asyncio.get_running_loop().time
    fanout.emit(RunStarted(context=context, selection=selection, command=command.display))
    runs = [_PodRun(fanout, target) for target in selection.run]
    queue = iter(runs)

    async def worker() -> None:
        # Each worker takes the next target once its exec is done: at most max_concurrency
        # execs at once, started in the selection's order.
        for run in queue:
            await run.run()

    async def watchdog(until: float, asked: float) -> None:
        await anyio.sleep_until(until)
        # Set the reason before cancelling, so every task records "timeout", not "cancelled".
        control.cancel(f"overall deadline of {format_seconds(asked)}s reached")

    with anyio.CancelScope() as scope:
        control._attach(scope)
        try:
            async with anyio.create_task_group() as outer:
                if deadline_at is not None and options.deadline is not None:
                    outer.start_soon(watchdog, deadline_at, options.deadline)
                async with anyio.create_task_group() as group:
                    for _ in range(min(options.max_concurrency, len(runs))):
                        group.start_soon(worker)
                outer.cancel_scope.cancel()
        finally:
            control._detach()
            for run in runs:
                if run.result is None:  # still queued when the run was stopped
                    run.not_started()
    results = [run.result for run in runs if run.result is not None]
    results += [
        _skipped_result(context, skipped, fanout.command_args) for skipped in selection.skipped
    ]
    results.sort(key=lambda r: (r.namespace, natural_key(r.pod), r.container or ""))
    collection = PodResults(results)
    fanout.emit(RunFinished(collection))
    return collection
