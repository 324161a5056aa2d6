"""Container logs: written as the container runtime writes them, served as the kubelet serves them.

Each run of a container's main process (an *instance*) has its own log file, named after the
restart count it started with, in a folder of the pod's outside every container's root
(``<state>/logs/<namespace>_<pod>_<uid>/<container>/<N>.log``, as under ``/var/log/pods``).
Lines are stored in the CRI log format containerd writes::

    2024-05-01T12:00:00.123456789Z stdout F a whole line
    2024-05-01T12:00:00.123456789Z stderr P the first 16 KiB of a longer line...

A file is bounded: past :data:`MAX_FILE_BYTES` it is rotated to ``<N>.log.1`` (the one before
is dropped), so an instance keeps at most twice that on disk, and only the current and the
previous instance of a container are kept (what ``--previous`` reads).

``GET /api/v1/namespaces/{ns}/pods/{name}/log`` picks the instance as the kubelet does
(``validateContainerLogStatus``: the running one, else the last that ended; with
``previous`` the one in ``lastState``) and applies ``tailLines`` (first), then
``sinceSeconds``/``sinceTime``, ``timestamps`` and ``limitBytes``; with ``follow`` it keeps
the response open and sends lines as they are written, until that instance has ended and
its output is all sent, the pod is deleted, or the client goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from aiohttp import web

from . import _status as status
from ._exec import parse_bool, resolve_container
from ._validation import FieldError, ObjectInvalid

if TYPE_CHECKING:
    from ._state import Cluster

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_LINE_BYTES",
    "LogFile",
    "LogLine",
    "format_time",
    "handle_pod_log",
    "read_lines",
]

#: A log file is rotated once it grows past this (the kubelet's containerLogMaxSize is 10 MiB).
MAX_FILE_BYTES = 4 * 1024 * 1024
#: Longer lines are stored in parts ("P" lines), as containerd splits them.
MAX_LINE_BYTES = 16 * 1024
# How often a follow checks that its client is still there while no line arrives.
_CLIENT_CHECK_SECONDS = 1.0

_STREAMS = {1: b"stdout", 2: b"stderr"}


def _file_time(moment: dt.datetime) -> bytes:
    """The CRI log file's timestamp: RFC 3339 with exactly nine fraction digits, UTC."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f").encode() + b"000Z"


def format_time(nanos: int) -> str:
    """A time in nanoseconds since the epoch as Go's ``time.RFC3339Nano`` prints it (UTC):
    trailing zeros of the fraction dropped, and the dot with them when nothing is left."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


_FILE_TIME = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")


def _parse_file_time(raw: bytes) -> int | None:
    match = _FILE_TIME.fullmatch(raw)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    fraction = (match.group(7) or b"").ljust(9, b"0")
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction)


@dataclass(frozen=True)
class LogLine:
    """One line of a log file: when it was written (ns since the epoch) and its bytes as the
    client gets them (a whole line ends with a newline, a part of a long line does not)."""

    nanos: int
    content: bytes


class LogFile:
    """The log of one container instance, written line by line as the process writes output.

    Output is cut into lines per stream; a line is written once its newline arrives (or once
    it reaches :data:`MAX_LINE_BYTES`, as a part), and what is left when the process ends is
    written as a last whole line. Followers wait with :meth:`wait` for more.
    """

    def __init__(self, path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.rotations = 0
        self.ended = False
        # Opened for each write, not held: a thousand quiet containers hold no descriptors.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
        self._size = path.stat().st_size
        self._pending: dict[int, bytes] = {}
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def rotated_path(self) -> Path:
        return self.path.with_name(self.path.name + ".1")

    def write(self, channel: int, data: bytes) -> None:
        """Add output of ``channel`` (1 stdout, 2 stderr) read just now."""
        if self.ended or not data:
            return
        stream = _STREAMS.get(channel, b"stdout")
        buffered = self._pending.pop(channel, b"") + data
        stamp = _file_time(dt.datetime.now(dt.timezone.utc))
        records: list[bytes] = []
        *lines, rest = buffered.split(b"\n")
        for line in lines:
            records += _records(stamp, stream, line, whole=True)
        while len(rest) >= MAX_LINE_BYTES:
            records.append(b"%s %s P %s\n" % (stamp, stream, rest[:MAX_LINE_BYTES]))
            rest = rest[MAX_LINE_BYTES:]
        if rest:
            self._pending[channel] = rest
        self._append(records)

    def end(self) -> None:
        """The instance ended: write what is left of its lines and close the file."""
        if self.ended:
            return
        stamp = _file_time(dt.datetime.now(dt.timezone.utc))
        records: list[bytes] = []
        for channel, rest in sorted(self._pending.items()):
            records += _records(stamp, _STREAMS.get(channel, b"stdout"), rest, whole=True)
        self._pending.clear()
        self._append(records)
        self.ended = True
        self._wake()

    def _append(self, records: list[bytes]) -> None:
        if not records:
            return
        data = b"".join(records)
        if self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        view = memoryview(data)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
        except OSError:
            # A full disk loses log lines, as with a real runtime; the container goes on.
            pass
        self._size += len(data)
        self._wake()

    def _rotate(self) -> None:
        os.replace(self.path, self.rotated_path)
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o640))
        self._size = 0
        self.rotations += 1

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until more is written, the instance ends, or ``timeout`` seconds pass."""
        if self.ended:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            pass


def _records(stamp: bytes, stream: bytes, line: bytes, *, whole: bool) -> list[bytes]:
    records = []
    while len(line) > MAX_LINE_BYTES:
        records.append(b"%s %s P %s\n" % (stamp, stream, line[:MAX_LINE_BYTES]))
        line = line[MAX_LINE_BYTES:]
    records.append(b"%s %s %s %s\n" % (stamp, stream, b"F" if whole else b"P", line))
    return records


def _parse(data: bytes) -> list[LogLine]:
    """The lines of (whole lines of) a CRI log file; malformed lines are skipped."""
    lines = []
    for record in data.split(b"\n"):
        parts = record.split(b" ", 3)
        if len(parts) < 3:
            continue
        nanos = _parse_file_time(parts[0])
        if nanos is None:
            continue
        content = parts[3] if len(parts) == 4 else b""
        lines.append(LogLine(nanos, content + b"\n" if parts[2] == b"F" else content))
    return lines


def read_lines(path: Path) -> list[LogLine]:
    """Every line kept for the instance whose log is ``path`` (its rotated part first)."""
    return _snapshot(path)[0]


# --------------------------------------------------------------------------------------------
# The pods/log endpoint
# --------------------------------------------------------------------------------------------


@dataclass
class LogOptions:
    """``PodLogOptions`` as the query gives them."""

    container: str | None = None
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: int | None = None  # ns since the epoch
    limit_bytes: int | None = None
    problems: list[FieldError] = field(default_factory=list)
    forbidden: str | None = None


def _int_param(request: web.Request, name: str) -> int | None:
    """An int64 query parameter, None when absent (400 in the apiserver's words when bad)."""
    from ._api import _int_query  # here: that module builds the routes to this one

    return _int_query(request, name, 0) if request.query.get(name) else None


def _time_param(raw: str) -> int:
    """``sinceTime``: an RFC 3339 time (to the second, as ``metav1.Time`` reads it)."""
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise status.bad_request(
            f'parsing time "{raw}" as "2006-01-02T15:04:05Z07:00": cannot parse '
            f'"{raw}" as "2006" (query parameter sinceTime)'
        )
    return int(moment.timestamp()) * 1_000_000_000


def log_options(request: web.Request) -> LogOptions:
    """Read and check the query as ``ValidatePodLogOptions`` does."""
    query = request.query
    options = LogOptions(
        container=query.get("container") or None,
        follow=parse_bool(query.get("follow"), "follow"),
        previous=parse_bool(query.get("previous"), "previous"),
        timestamps=parse_bool(query.get("timestamps"), "timestamps"),
        tail_lines=_int_param(request, "tailLines"),
        since_seconds=_int_param(request, "sinceSeconds"),
        limit_bytes=_int_param(request, "limitBytes"),
    )
    if query.get("sinceTime"):
        options.since_time = _time_param(query["sinceTime"])
    if options.tail_lines is not None and options.tail_lines < 0:
        options.problems.append(
            FieldError(
                "tailLines", "Invalid", options.tail_lines, "must be greater than or equal to 0"
            )
        )
    if options.limit_bytes is not None and options.limit_bytes < 1:
        options.problems.append(
            FieldError("limitBytes", "Invalid", options.limit_bytes, "must be greater than 0")
        )
    if options.since_seconds is not None and options.since_time is not None:
        options.forbidden = "at most one of `sinceTime` or `sinceSeconds` may be specified"
    elif options.since_seconds is not None and options.since_seconds < 1:
        options.problems.append(
            FieldError("sinceSeconds", "Invalid", options.since_seconds, "must be greater than 0")
        )
    return options


def _refuse_invalid(name: str, options: LogOptions) -> None:
    if options.forbidden is not None:
        # field.Forbidden(field.NewPath(""), ...): an empty field path, as the apiserver says.
        message = f'PodLogOptions "{name}" is invalid: : Forbidden: {options.forbidden}'
        cause = {"reason": "FieldValueForbidden", "message": f"Forbidden: {options.forbidden}"}
        raise status.ApiFailure(
            422, "Invalid", message, {"name": name, "kind": "PodLogOptions", "causes": [cause]}
        )
    if options.problems:
        invalid = ObjectInvalid("PodLogOptions", name, options.problems)
        raise status.ApiFailure(422, "Invalid", invalid.message, invalid.details())


def chosen_container_id(pod: Mapping[str, Any], container: str, previous: bool) -> str:
    """The container ID whose log is asked for, as the kubelet's ``validateContainerLogStatus``
    picks it; its wording (a 400) when there is none."""
    name = pod["metadata"]["name"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    found = next((s for s in statuses if s.get("name") == container), None)
    if found is None:
        raise status.bad_request(f'container "{container}" in pod "{name}" is not available')
    last = (found.get("lastState") or {}).get("terminated")
    state = found.get("state") or {}
    waiting, running, terminated = (
        state.get("waiting"),
        state.get("running"),
        state.get("terminated"),
    )
    if previous:
        if not last or not last.get("containerID"):
            raise status.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        return str(last["containerID"])
    if running is not None:
        return str(found.get("containerID", ""))
    if terminated is not None:
        if terminated.get("containerID"):
            return str(terminated["containerID"])
        if last and last.get("containerID"):
            return str(last["containerID"])
        raise status.bad_request(f'container "{container}" in pod "{name}" is terminated')
    if last is not None:
        if not last.get("containerID"):
            raise status.bad_request(f'container "{container}" in pod "{name}" is terminated')
        return str(last["containerID"])
    if waiting is not None:
        raise status.bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: '
            f"{waiting.get('reason', '')}"
        )
    raise status.bad_request(
        f'container "{container}" in pod "{name}" is waiting to start - no logs yet'
    )


def _select(lines: Iterable[LogLine], options: LogOptions, since: int | None) -> list[LogLine]:
    chosen = list(lines)
    if options.tail_lines is not None:
        # Counted in whole lines; the parts of a long line belong to the line they end.
        whole = 0
        start = len(chosen)
        for index in range(len(chosen) - 1, -1, -1):
            if chosen[index].content.endswith(b"\n"):
                if whole == options.tail_lines:
                    break
                whole += 1
            start = index
        chosen = chosen[start:] if options.tail_lines else []
    if since is not None:
        chosen = [line for line in chosen if line.nanos >= since]
    return chosen


class _Output:
    """Writes lines to the response with ``timestamps`` and ``limitBytes`` applied."""

    def __init__(self, response: web.StreamResponse, options: LogOptions) -> None:
        self.response = response
        self.timestamps = options.timestamps
        self.left = options.limit_bytes
        self.at_line_start = True

    @property
    def full(self) -> bool:
        return self.left is not None and self.left <= 0

    async def send(self, lines: Iterable[LogLine]) -> None:
        chunks: list[bytes] = []
        for line in lines:
            data = line.content
            if self.timestamps and self.at_line_start:
                data = format_time(line.nanos).encode() + b" " + data
            self.at_line_start = data.endswith(b"\n")
            if self.left is not None:
                data = data[: self.left]
                self.left -= len(data)
            chunks.append(data)
            if self.full:
                break
        if chunks:
            await self.response.write(b"".join(chunks))


def _open(path: Path) -> BinaryIO:
    # A local file of a few MiB at most, read in the loop like the sandbox's other files.
    return open(path, "rb")


async def _follow(
    log: LogFile, handle: BinaryIO, rotations: int, output: _Output, request: web.Request
) -> None:
    """Send what ``log`` gets after ``handle``'s position (in its file when ``rotations``
    rotations were done) until it ends; ``handle`` is closed at the end."""
    try:
        buffered = b""
        while not output.full:
            ended = log.ended
            data = buffered + handle.read()
            cut = data.rfind(b"\n") + 1
            buffered = data[cut:]
            if cut:
                await output.send(_parse(data[:cut]))
                continue
            if log.rotations != rotations:
                # The file was renamed under us and its end is read: go on with the new one,
                # after the one rotated out just before it if that is another (two rotations
                # while the client was slow; any earlier ones are gone, as the disk is bounded).
                rotated = b""
                if log.rotations - rotations >= 2:
                    with contextlib.suppress(OSError):
                        rotated = log.rotated_path.read_bytes()
                rotations = log.rotations
                handle.close()
                handle = _open(log.path)
                buffered = b""
                if rotated:
                    await output.send(_parse(rotated))
                continue
            if ended:
                return
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await log.wait(_CLIENT_CHECK_SECONDS)
    finally:
        handle.close()


async def handle_pod_log(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/namespaces/{namespace}/pods/{name}/log``."""
    from ._api import cluster_of
    from ._containers import instance_log

    cluster: Cluster = cluster_of(request)
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    entry = cluster.get_pod(namespace, name)
    if entry is None:
        raise status.not_found("pods", name)
    options = log_options(request)
    _refuse_invalid(name, options)
    container = str(resolve_container(entry, options.container)["name"])
    container_id = chosen_container_id(entry.pod, container, options.previous)
    log = instance_log(cluster, entry, container, container_id)
    now = dt.datetime.now(dt.timezone.utc)
    since = options.since_time
    if options.since_seconds is not None:
        since = int((now.timestamp() - options.since_seconds) * 1_000_000_000)
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    if options.follow:
        response.enable_chunked_encoding()
    await response.prepare(request)
    output = _Output(response, options)
    if log is None:
        await response.write_eof()
        return response
    path, live = log
    # Read on the loop's thread, which also writes the file: what is read is whole lines, and
    # a follow goes on from the byte after them, missing and repeating nothing.
    lines, offset = _snapshot(path)
    handle, rotations = None, 0
    if options.follow and live is not None:
        handle = _open(path)  # now, before any await: a rotation may follow
        handle.seek(offset)
        rotations = live.rotations
    try:
        await output.send(_select(lines, options, since))
        if handle is not None and live is not None and not output.full:
            await _follow(live, handle, rotations, output, request)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client went away
    finally:
        if handle is not None:
            handle.close()
    return response


def _snapshot(path: Path) -> tuple[list[LogLine], int]:
    """Every line kept for an instance (its rotated part first) and the size of its current
    file."""
    lines: list[LogLine] = []
    size = 0
    for part in (path.with_name(path.name + ".1"), path):
        try:
            data = part.read_bytes()
        except OSError:
            continue
        lines += _parse(data)
        size = len(data) if part == path else size
    return lines, size
