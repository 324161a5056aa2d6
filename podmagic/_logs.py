"""Logs across pods: every selected container's log, read at once, as ordered data.

:func:`read_logs` reads ``pods/NAME/log`` of each target through :meth:`KubeApi.request
<podmagic._kubeapi.KubeApi.request>` (the one REST choke point: credentials, retries, time
limits) with ``timestamps=true``, so that the lines of many pods can be put in time order.
Without ``follow`` at most ``max_concurrency`` logs are read at a time; with ``follow``
every stream stays open until the container's process ends, the timeout passes or the run
is cancelled (Ctrl-C), like ``stern``.

Lines are fed to the live view as the events of a run (:mod:`podmagic._events`): one
``PodStarted``/``PodOutput``/``PodFinished`` sequence per container, so the view that shows
``%pod`` runs shows logs unchanged. The answer is a :class:`PodLogs`: the lines sorted by time
(:class:`LogLine`: bytes kept exact), one :class:`~podmagic.PodResult` per container (``ok``,
or the error that container's log gave: not found, no previous instance, ...), and
``to_dataframe()`` with the columns ``context, namespace, pod, container, timestamp, line``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, overload
from urllib.parse import quote

import aiohttp
import anyio
from yarl import URL

from ._channels import Stream
from ._errors import ApiError, PodmagicError, RequestTimeoutError
from ._events import EventCallback, PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from ._kubeapi import Answer, KubeApi, Reach, Unreachable, parse_retry_after
from ._parsing import _duration
from ._podview import PodView
from ._resolve import PodTarget, Selection
from ._results import ExecStatus, PodResult, PodResults
from ._safe_text import visible_controls

if TYPE_CHECKING:
    import pandas as pd

    from ._engine import RunControl

__all__ = [
    "LogLine",
    "LogOptions",
    "PodLogs",
    "compile_grep",
    "parse_since",
    "read_logs",
]

#: The command the results and the live view name for a log read.
_COMMAND = ("logs",)
#: A line longer than this without a newline is passed on in pieces (bounded memory).
_MAX_LINE = 1024 * 1024
#: Bytes of an error answer kept to word the error.
_MAX_ERROR_BODY = 64 * 1024
#: The timestamp ``timestamps=true`` puts before each line (RFC 3339, UTC, Go's RFC3339Nano).
_STAMP = re.compile(
    rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) "
)


@dataclass(frozen=True)
class LogLine:
    """One line of one container's log.

    ``data`` is the line exactly as the container wrote it, without its newline (bytes: a
    line that is not UTF-8 stays exact); ``text`` shows it safely (invalid bytes as ``\\xNN``).
    ``time_ns`` is when the runtime stored it, in nanoseconds since the epoch (UTC).
    """

    context: str
    namespace: str
    pod: str
    container: str
    time_ns: int
    data: bytes

    @property
    def text(self) -> str:
        """The line decoded as UTF-8; bytes that are not UTF-8 appear as ``\\xNN``."""
        return self.data.decode("utf-8", "backslashreplace")

    @property
    def timestamp(self) -> dt.datetime:
        """When the line was logged, as an aware UTC datetime (microseconds)."""
        seconds, nanos = divmod(self.time_ns, 1_000_000_000)
        return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(
            microsecond=nanos // 1000
        )

    def __str__(self) -> str:
        when = self.timestamp.strftime("%H:%M:%S.%f")[:-3]
        return visible_controls(f"{when} {self.pod} {self.container} {self.text}")


def parse_since(value: str | float | dt.timedelta | None, *, where: str = "since") -> float | None:
    """Seconds from ``10m``, ``1h30m``, ``45s``, a number of seconds or a ``timedelta``;
    ``ValueError`` with one line that says what to write for anything else."""
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        seconds: float | None = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _duration(text)
    else:
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            f"{where} {value!r} is not a duration: write e.g. 10m, 1h30m, 45s or a number of "
            "seconds (more than 0)"
        )
    return seconds


def compile_grep(
    pattern: str | re.Pattern[str] | None, *, where: str = "grep"
) -> re.Pattern[str] | None:
    """The regular expression lines are filtered with; ``ValueError`` with one line for a bad
    one (the position and what is wrong, as Python's ``re`` says it)."""
    if pattern is None or isinstance(pattern, re.Pattern):
        return pattern
    try:
        return re.compile(pattern)
    except re.error as error:
        at = f" at position {error.pos}" if error.pos is not None else ""
        raise ValueError(
            f"{where} {pattern!r} is not a valid Python regular expression: {error.msg}{at}; "
            "escape special characters with \\ (e.g. \\[ or \\.)"
        ) from None


@dataclass(frozen=True)
class LogOptions:
    """What to read of each container's log (the ``pods/log`` query, and the client's own
    filter and limits)."""

    since_seconds: float | None = None
    since_time: dt.datetime | None = None
    tail: int | None = None
    grep: re.Pattern[str] | None = None
    follow: bool = False
    previous: bool = False
    limit_bytes: int | None = None
    timeout: float | None = None
    max_concurrency: int = 50

    def __post_init__(self) -> None:
        if self.tail is not None and (isinstance(self.tail, bool) or self.tail < 0):
            raise ValueError(f"tail must be 0 or more lines, got {self.tail}")
        if self.limit_bytes is not None and self.limit_bytes <= 0:
            raise ValueError(f"limit_bytes must be more than 0, got {self.limit_bytes}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout}")
        if self.max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {self.max_concurrency}")
        if self.since_seconds is not None and self.since_time is not None:
            raise ValueError("give since or since_time, not both")

    def query(self, container: str) -> dict[str, str]:
        """The ``pods/log`` query for one container (always with timestamps)."""
        params = {"container": container, "timestamps": "true"}
        if self.follow:
            params["follow"] = "true"
        if self.previous:
            params["previous"] = "true"
        if self.tail is not None:
            params["tailLines"] = str(self.tail)
        if self.since_seconds is not None:
            # The API takes whole seconds: round up, so that nothing asked for is left out.
            params["sinceSeconds"] = str(max(1, math.ceil(self.since_seconds)))
        if self.since_time is not None:
            moment = self.since_time
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
            params["sinceTime"] = moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.limit_bytes is not None:
            params["limitBytes"] = str(self.limit_bytes)
        return params

    def describe(self) -> str:
        """The options in a few words, for the live view's header ("logs --tail 10")."""
        words = ["logs"]
        if self.previous:
            words.append("--previous")
        if self.since_seconds is not None:
            words.append(f"--since {self.since_seconds:g}s")
        if self.since_time is not None:
            words.append(f"--since-time {self.since_time.isoformat()}")
        if self.tail is not None:
            words.append(f"--tail {self.tail}")
        if self.grep is not None:
            words.append(f"--grep {self.grep.pattern!r}")
        if self.follow:
            words.append("--follow")
        return " ".join(words)


def _time_ns(match: re.Match[bytes]) -> int:
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = match.group(7) or b""
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    zone = match.group(8)
    if zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + nanos


class _Reader:
    """Splits one container's log answer into timestamped lines, as the pieces arrive."""

    def __init__(
        self,
        context: str,
        target: PodTarget,
        grep: re.Pattern[str] | None,
        emit: Callable[[LogLine], None],
    ) -> None:
        self.context = context
        self.target = target
        self.grep = grep
        self.emit = emit
        self.buffer = bytearray()
        self.last_ns = 0
        self.count = 0

    def feed(self, piece: bytes) -> None:
        self.buffer += piece
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end < 0:
                break
            self._line(bytes(self.buffer[start:end]))
            start = end + 1
        del self.buffer[:start]
        if len(self.buffer) > _MAX_LINE:
            # A line this long is passed on in pieces: memory stays bounded.
            self._line(bytes(self.buffer))
            self.buffer.clear()

    def close(self) -> None:
        if self.buffer:
            self._line(bytes(self.buffer))
            self.buffer.clear()

    def _line(self, raw: bytes) -> None:
        match = _STAMP.match(raw)
        if match is not None:
            self.last_ns = _time_ns(match)
            data = raw[match.end() :]
        else:
            # A piece of a long line, or a server that sent no time: it follows the last one.
            data = raw
        if (
            self.grep is not None
            and self.grep.search(data.decode("utf-8", "backslashreplace")) is None
        ):
            return
        self.count += 1
        target = self.target
        self.emit(
            LogLine(
                self.context, target.namespace, target.pod, target.container, self.last_ns, data
            )
        )


class PodLogs(Sequence[LogLine]):
    """The logs of a run across pods: the lines of every container, sorted by time.

    Indexing gives :class:`LogLine`\\ s; ``results`` has one :class:`~podmagic.PodResult` per
    container read (``ok``, or ``error``/``timeout``/``skipped`` with the reason in
    ``error``), ``errors`` those that are not ok. ``to_dataframe()`` gives one row per line.
    """

    def __init__(
        self, lines: Sequence[LogLine], results: PodResults, description: str = ""
    ) -> None:
        order = sorted(range(len(lines)), key=lambda i: lines[i].time_ns)
        self._lines = tuple(lines[i] for i in order)
        self.results = results
        self.description = description

    @overload
    def __getitem__(self, index: int) -> LogLine: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LogLine]: ...
    def __getitem__(self, index: int | slice) -> LogLine | Sequence[LogLine]:
        return self._lines[index]

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[LogLine]:
        return iter(self._lines)

    @property
    def errors(self) -> PodResults:
        """The containers whose log could not be read (or was skipped), with the reason."""
        return PodResults(r for r in self.results if r.status is not ExecStatus.OK)

    def text(self) -> str:
        """Every line as ``TIME POD CONTAINER LINE``, in time order, shown safely."""
        return "\n".join(str(line) for line in self._lines)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per line: ``context, namespace, pod, container, timestamp`` (datetime64,
        UTC, nanoseconds) and ``line`` (text; bytes that are not UTF-8 as ``\\xNN``), sorted
        by time."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "context": [line.context for line in self._lines],
                "namespace": [line.namespace for line in self._lines],
                "pod": [line.pod for line in self._lines],
                "container": [line.container for line in self._lines],
                "timestamp": pd.to_datetime(
                    [line.time_ns for line in self._lines], unit="ns", utc=True
                ),
                "line": [line.text for line in self._lines],
            }
        )
        return frame

    def summary(self) -> str:
        """One line: how many lines from how many containers, and what failed."""
        read = sum(1 for r in self.results if r.status is ExecStatus.OK)
        pods = len({(r.context, r.namespace, r.pod) for r in self.results})
        words = f"{len(self._lines)} lines from {read} container(s) of {pods} pod(s)"
        failed = self.errors
        if failed:
            words += f"; {len(failed)} not read: " + "; ".join(
                f"{r.namespace}/{r.pod} [{r.container}]: {r.error or r.status}" for r in failed
            )
        return visible_controls(words)

    def __repr__(self) -> str:
        shown = self._lines[-20:]
        head = f"PodLogs({self.summary()})"
        if not shown:
            return head
        more = (
            f"\n... {len(self._lines) - len(shown)} earlier lines" if len(self._lines) > 20 else ""
        )
        return head + more + "\n" + "\n".join(str(line) for line in shown)


@dataclass
class _Collected:
    lines: list[LogLine] = field(default_factory=list)
    results: list[PodResult] = field(default_factory=list)


def _logs_path(target: PodTarget) -> str:
    return (
        f"/api/v1/namespaces/{quote(target.namespace, safe='')}/pods/"
        f"{quote(target.pod, safe='')}/log"
    )


def _result(
    context: str,
    target: PodTarget,
    status: ExecStatus,
    started: dt.datetime | None,
    began: float | None,
    *,
    error: str | None = None,
) -> PodResult:
    return PodResult(
        context=context,
        namespace=target.namespace,
        pod=target.pod,
        container=target.container,
        node=target.node,
        command=_COMMAND,
        status=status,
        exit_code=0 if status is ExecStatus.OK else None,
        started_at=started,
        duration=None if began is None else anyio.current_time() - began,
        error=error,
    )


async def _read_one(
    api: KubeApi,
    context: str,
    target: PodTarget,
    options: LogOptions,
    collected: _Collected,
    on_event: EventCallback | None,
) -> None:
    """Read one container's log, feeding its lines to ``collected`` and ``on_event``."""
    what = f"read the log of {target.namespace}/{target.pod} [{target.container}]"
    url = URL(api.url(_logs_path(target), options.query(target.container)), encoded=True)

    def emit(line: LogLine) -> None:
        collected.lines.append(line)
        if on_event is not None:
            on_event(PodOutput(target, Stream.STDOUT, line.data + b"\n"))

    reader = _Reader(context, target, options.grep, emit)
    started = dt.datetime.now(dt.timezone.utc)
    began = anyio.current_time()
    streamed: list[bool] = []

    async def attempt(headers: Mapping[str, str], reach: Reach) -> Answer[str]:
        session = api._get_session()
        try:
            async with session.get(
                url,
                headers=headers,
                proxy=api.proxy,
                allow_redirects=False,
                server_hostname=api.server_hostname,
                trace_request_ctx=reach,
            ) as response:
                reach.advance("body")
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if response.status >= 300:
                    body = await response.content.read(_MAX_ERROR_BODY)
                    return Answer(response.status, body, retry_after)
                if on_event is not None and not streamed:
                    on_event(PodStarted(target))
                streamed.append(True)
                try:
                    async for piece in response.content.iter_any():
                        reach.progress()
                        reader.feed(piece)
                except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                    if isinstance(exc, TimeoutError):
                        raise
                    # Lines already went out: a retry would repeat them. Say where it broke.
                    reader.close()
                    return Answer(
                        200, None, value=f"the log stream broke off: {type(exc).__name__}"
                    )
                reader.close()
                return Answer(200, None)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if isinstance(exc, TimeoutError):
                raise
            raise Unreachable(exc) from exc

    # A follow may be quiet for long: no idle or total limit, only reaching the server has
    # one (the run's own timeout and Ctrl-C end it).
    reach = (
        Reach(api.connect_timeout, math.inf, None)
        if options.follow
        else Reach(api.connect_timeout, api.read_timeout, api.request_timeout)
    )
    try:
        answer = await api.request(what, attempt, reach=reach)
    except RequestTimeoutError as error:
        result = _result(context, target, ExecStatus.TIMEOUT, started, began, error=str(error))
    except PodmagicError as error:
        result = _result(context, target, ExecStatus.ERROR, started, began, error=str(error))
    except anyio.get_cancelled_exc_class():
        # Stopped (Ctrl-C, the follow's timeout): what was read is the result.
        reader.close()
        status = ExecStatus.OK if options.follow and streamed else ExecStatus.CANCELLED
        result = _result(context, target, status, started, began)
        collected.results.append(result)
        if on_event is not None:
            on_event(PodFinished(result))
        raise
    else:
        if answer.status >= 300:
            refused = ApiError.from_status(answer.status, answer.body, what=what)
            result = _result(context, target, ExecStatus.ERROR, started, began, error=str(refused))
        elif answer.value is not None:
            result = _result(context, target, ExecStatus.ERROR, started, began, error=answer.value)
        else:
            result = _result(context, target, ExecStatus.OK, started, began)
    collected.results.append(result)
    if on_event is not None:
        on_event(PodFinished(result))


_Left = tuple[str, str, "str | None", "str | None", str]


async def _finished_pod_targets(
    api: KubeApi, selection: Selection
) -> tuple[list[PodTarget], list[_Left]]:
    """Targets for the pods a run skips but whose logs can be read (completed and failed
    pods: exec cannot reach them, their logs stay), and the skipped pods left."""
    targets: list[PodTarget] = []
    left: list[_Left] = []
    for skipped in selection.skipped:
        readable = skipped.reason.startswith(("completed (", "failed (")) and not skipped.is_error
        if not readable:
            left.append(
                (skipped.namespace, skipped.pod, skipped.container, skipped.node, skipped.reason)
            )
            continue
        raw = await api.get_pod(skipped.namespace, skipped.pod)
        if raw is None:
            left.append(
                (
                    skipped.namespace,
                    skipped.pod,
                    skipped.container,
                    skipped.node,
                    "not found (deleted?)",
                )
            )
            continue
        view = PodView(raw)
        names = view.container_names()
        use = (skipped.container,) if skipped.container is not None else names
        for name in use:
            targets.append(
                PodTarget(
                    namespace=skipped.namespace,
                    pod=skipped.pod,
                    container=name,
                    node=view.node,
                    containers=names,
                    pod_uid=view.uid,
                    restarts=view.restart_count(name),
                )
            )
    return targets, left


async def read_logs(
    api: KubeApi,
    context: str,
    selection: Selection,
    options: LogOptions,
    *,
    on_event: EventCallback | None = None,
    control: RunControl | None = None,
) -> PodLogs:
    """Read the log of every container ``selection`` names (and of its completed and failed
    pods), concurrently: at most ``options.max_concurrency`` at a time, or every stream at
    once with ``follow``. Errors are per-container results; ``control`` cancels (Ctrl-C):
    what was read is kept."""
    collected = _Collected()
    extra, left = await _finished_pod_targets(api, selection)
    targets = list(selection.run) + extra
    if options.follow and len(targets) > api.limit:
        raise ValueError(
            f"--follow keeps one connection per container open, at most {api.limit}; "
            f"{len(targets)} were selected: narrow the target (-l, -c, --pick N)"
        )
    for namespace, pod, name, node, reason in left:
        status = ExecStatus.ERROR if reason.startswith("container ") else ExecStatus.SKIPPED
        collected.results.append(
            PodResult(
                context=context,
                namespace=namespace,
                pod=pod,
                container=name,
                node=node,
                command=_COMMAND,
                status=status,
                error=reason,
            )
        )
    if on_event is not None:
        # The header counts the completed and failed pods read as pods read, not as skipped.
        read = {(t.namespace, t.pod) for t in extra}
        shown = replace(
            selection,
            run=tuple(targets),
            skipped=tuple(s for s in selection.skipped if (s.namespace, s.pod) not in read),
        )
        on_event(RunStarted(context, shown, options.describe()))
    limit = anyio.CapacityLimiter(len(targets) if options.follow else options.max_concurrency)

    async def one(target: PodTarget) -> None:
        async with limit:
            await _read_one(api, context, target, options, collected, on_event)

    with anyio.CancelScope() as scope:
        if control is not None:
            control._attach(scope)
        if options.follow and options.timeout is not None:
            scope.deadline = anyio.current_time() + options.timeout
        try:
            async with anyio.create_task_group() as group:
                for target in targets:
                    group.start_soon(one, target)
        finally:
            if control is not None:
                control._detach()
    done = {(r.namespace, r.pod, r.container) for r in collected.results}
    for target in targets:
        if (target.namespace, target.pod, target.container) not in done:
            # Never started before the run was stopped.
            collected.results.append(_result(context, target, ExecStatus.NOT_STARTED, None, None))
    order = {(t.namespace, t.pod, t.container): i for i, t in enumerate(targets)}
    results = PodResults(
        sorted(
            collected.results,
            key=lambda r: order.get((r.namespace, r.pod, r.container or ""), len(order)),
        )
    )
    logs = PodLogs(collected.lines, results, selection.description)
    if on_event is not None:
        on_event(RunFinished(results))
    return logs
