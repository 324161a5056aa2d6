"""Run pod processes for the sandbox's exec endpoint.

Each exec becomes a local process that looks from the inside, as far as that is cheap, like
one started in a container by a runtime such as runc:

* ``argv[0]`` is looked up in the *given* environment's ``PATH`` (not ours), and a failed
  lookup is reported with runc's wording (:class:`ExecutableNotFound`);
* the environment is exactly the one given; nothing of the sandbox's own leaks in;
* the process runs in its own session and process group, so :meth:`RunningProcess.kill`
  also reaches whatever it started;
* where the kernel lets us (root), it gets a private UTS namespace whose hostname is the
  pod's name;
* optionally it runs on a pseudo-terminal that is its controlling terminal, so ``^C``,
  window-size changes and ``tty`` behave as with ``kubectl exec -it``.

The module knows nothing about HTTP, WebSockets or Kubernetes objects. It is built on the
event loop's readiness callbacks over raw file descriptors rather than on asyncio's
subprocess transports: that gives exact control over chunk sizes, back-pressure and the
order in which descriptors are unregistered and closed, and avoids one waiting thread per
child (the Python 3.11 default child watcher).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import dataclasses
import errno
import fcntl
import functools
import logging
import os
import signal
import socket
import stat
import struct
import subprocess
import termios
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Output channel numbers, as on the Kubernetes exec streams.
from .._channels import STDERR, STDOUT

__all__ = [
    "CHUNK_SIZE",
    "STDERR",
    "STDOUT",
    "ExecutableNotFound",
    "Isolation",
    "ProcessSpec",
    "RunningProcess",
    "entered_namespaces",
    "forget_group",
    "kill_unreaped",
    "new_namespaces",
    "own_group",
    "start_process",
    "uts_namespaces_available",
]

logger = logging.getLogger(__name__)

#: Largest chunk :meth:`RunningProcess.read_output` yields (the default pipe capacity).
CHUNK_SIZE = 64 * 1024

# Output read but not yet taken by the consumer. Above the high mark the process's pipes are
# no longer watched, so the kernel pipe fills up and the process blocks in write(): memory
# stays bounded however slow the consumer is. Reading resumes below the low mark.
_HIGH_WATER = 4 * CHUNK_SIZE
_LOW_WATER = CHUNK_SIZE

# Kubernetes pod host names are cut to 63 characters by the kubelet (HOST_NAME_MAX is 64).
_MAX_HOSTNAME = 63

_CLONE_NEWUTS = 0x04000000


@dataclass(frozen=True)
class Isolation:
    """Where a process runs when its pod has namespaces of its own (see :mod:`._isolation`).

    ``namespaces`` are open descriptors of the pod's namespaces, which the spawning thread
    enters for the spawn only; ``root`` is the container's root folder as the host sees it
    (``argv[0]`` is looked up under it); ``prefix`` is put before ``argv`` to enter the
    container's mount namespace, root and working folder (``nsenter``, which then execs).
    """

    namespaces: Sequence[int]
    root: Path
    prefix: Sequence[str]


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how.

    ``argv`` is executed directly (no shell is added); ``argv[0]`` is looked up in
    ``env["PATH"]`` relative to ``cwd`` like a container runtime does. ``env`` is the
    complete environment of the process. ``cwd`` must be an existing directory. With
    ``hostname`` set, the process gets its own UTS namespace with that host name when the
    kernel allows it (see :func:`uts_namespaces_available`); otherwise it sees the host's.
    With ``tty``, it runs on a new pseudo-terminal of ``width`` x ``height`` characters and
    its stdout and stderr are merged on it. With ``isolation``, ``cwd`` is a path inside the
    container and the process is born in the pod's namespaces (``hostname`` is then the
    pod's own already).
    """

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    hostname: str | None = None
    tty: bool = False
    width: int = 80
    height: int = 24
    isolation: Isolation | None = None


class ExecutableNotFound(Exception):
    """``argv[0]`` could not be executed: not found in ``$PATH``, not executable, ...

    The message follows runc's, e.g. ``exec: "nope": executable file not found in $PATH``
    or ``exec: "/x": permission denied``.
    """

    def __init__(self, executable: str, reason: str) -> None:
        super().__init__(f'exec: "{executable}": {reason}')
        self.executable = executable
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Looking up the executable
# --------------------------------------------------------------------------------------------


def _resolve_executable(name: str, search_path: str, cwd: Path, root: Path | None = None) -> str:
    """Return the path to execute for ``name``, the way runc (Go's ``exec.LookPath``) does.

    Resolving before spawning gives runc's error messages, and it keeps our own ``PATH``
    out of the picture (``subprocess`` would otherwise consult the parent's). With ``root``
    (a container's root as the host sees it), absolute paths are taken inside it.
    """

    def inside(path: str) -> Path:
        if root is not None and path.startswith("/"):
            return root / path.lstrip("/")
        return cwd / path

    if "/" in name:
        # Relative names are relative to the process's working directory, not ours.
        candidate = inside(name)
        problem = _why_not_executable(candidate, shown=name)
        if problem is not None:
            raise ExecutableNotFound(name, problem)
        return str(candidate)
    for directory in search_path.split(os.pathsep):
        candidate = inside(directory or ".") / name  # an empty entry means "."
        if _why_not_executable(candidate, shown=name) is None:
            return str(candidate)
    raise ExecutableNotFound(name, "executable file not found in $PATH")


def _why_not_executable(path: Path, shown: str) -> str | None:
    """None if ``path`` can be executed, else Go's description of why not."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        return f"stat {shown}: {_go_strerror(error.errno)}"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not os.access(path, os.X_OK):
        return "permission denied"
    return None


def _go_strerror(number: int | None) -> str:
    """``os.strerror`` in Go's spelling: lower case ("no such file or directory")."""
    if number is None:
        return "unknown error"
    text = os.strerror(number)
    return text[:1].lower() + text[1:]


# --------------------------------------------------------------------------------------------
# Host name: a private UTS namespace per process
# --------------------------------------------------------------------------------------------
#
# Namespaces belong to threads, not processes, and a child inherits those of the thread that
# forked it. So instead of a preexec_fn (which makes subprocess fork() and run Python in the
# child, about 4x the cost of a start), the spawning thread (the event loop's: spawning is
# synchronous) briefly enters a fresh UTS namespace, sets the host name, spawns with the
# fast vfork() path, and returns to its own namespace. Only UTS is involved, which unshare()
# and setns() allow in a multi-threaded process; other threads never notice.

_uts_supported: bool | None = None
_libc: ctypes.CDLL | None = None


def _libc_call(name: str, *args: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _unshare_uts() -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(_CLONE_NEWUTS)
    else:
        _libc_call("unshare", _CLONE_NEWUTS)


def _setns_uts(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, _CLONE_NEWUTS)
    else:
        _libc_call("setns", fd, _CLONE_NEWUTS)


@contextmanager
def _private_uts_namespace(hostname: str) -> Iterator[None]:
    """Run the block with the calling thread in a new UTS namespace named ``hostname``."""
    own = os.open("/proc/thread-self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _unshare_uts()
        try:
            socket.sethostname(hostname)
            yield
        finally:
            # Should this ever fail, the thread would stay in the pod's namespace: stop using
            # namespaces at all so at least no other pod inherits the wrong name.
            try:
                _setns_uts(own)
            except OSError:
                global _uts_supported
                _uts_supported = False
                raise
    finally:
        os.close(own)


def uts_namespaces_available() -> bool:
    """Whether processes can get their own host name here (checked once, then cached).

    Needs CAP_SYS_ADMIN (in practice: root, and no seccomp profile forbidding unshare).
    """
    global _uts_supported
    if _uts_supported is None:
        try:
            with _private_uts_namespace(socket.gethostname()):
                pass
        except (OSError, AttributeError):
            _uts_supported = False
        else:
            _uts_supported = True
    return _uts_supported


def _pod_hostname(name: str) -> str:
    """Cut a pod name to a valid host name the way the kubelet does (63 bytes, no "-." end)."""
    encoded = name.encode()
    if len(encoded) <= _MAX_HOSTNAME:
        return name
    return encoded[:_MAX_HOSTNAME].decode(errors="ignore").rstrip("-.")


@contextmanager
def _hostname_for_children(hostname: str | None) -> Iterator[None]:
    if hostname is None or not uts_namespaces_available():
        yield
    else:
        with _private_uts_namespace(_pod_hostname(hostname)):
            yield


_own_namespaces = threading.local()
# The namespaces a thread moves between, in the order entered_namespaces takes them.
_THREAD_NAMESPACES = ("net", "uts", "ipc", "pid")
_CLONE_FLAGS = {"net": 0x40000000, "uts": _CLONE_NEWUTS, "ipc": 0x08000000}


def _thread_own_namespaces() -> list[int]:
    """Descriptors of the calling thread's own namespaces (opened once per thread)."""
    own: list[int] | None = getattr(_own_namespaces, "fds", None)
    if own is None:
        own = [
            os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
            for kind in _THREAD_NAMESPACES
        ]
        _own_namespaces.fds = own
    return own


@contextmanager
def new_namespaces(kinds: Sequence[str]) -> Iterator[None]:
    """Run the block with the calling thread in new, empty namespaces of ``kinds`` (among
    ``net``, ``uts``, ``ipc``), then put it back into its own.

    A pod's namespaces made without a process of their own (:mod:`._isolation`): open
    ``/proc/thread-self/ns/KIND`` in the block to keep them, as a descriptor keeps a
    namespace alive. Like :func:`entered_namespaces`, none of these needs a single-threaded
    process. Raises ``OSError`` (nothing changed) where the kernel refuses (not root).
    """
    own = _thread_own_namespaces()
    flags = 0
    for kind in kinds:
        flags |= _CLONE_FLAGS[kind]
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(flags)
    else:
        _libc_call("unshare", flags)
    try:
        yield
    finally:
        # As in entered_namespaces: a thread left in a pod's namespaces would put every
        # later process it starts into that pod, so failing here is loud.
        for kind in kinds:
            _setns(own[_THREAD_NAMESPACES.index(kind)])


@contextmanager
def entered_namespaces(fds: Sequence[int]) -> Iterator[None]:
    """Run the block with the calling thread in the namespaces ``fds`` (net, uts, ipc, pid).

    Like :func:`_private_uts_namespace`, for a pod's namespaces (see :mod:`._isolation`):
    processes spawned in the block are born in them (for the PID namespace: children only,
    which is what a spawn makes). None of these needs a single-threaded process.
    """
    own = _thread_own_namespaces()
    entered = 0
    try:
        for fd in fds:
            _setns(fd)
            entered += 1
        yield
    finally:
        # Back to the thread's own, in the same order; a thread stuck in a pod's namespaces
        # would put every later process into that pod, so failing here is loud.
        for fd in own[:entered]:
            _setns(fd)


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, 0)
    else:
        _libc_call("setns", fd, 0)


# Process groups of pod sandbox processes (pid -> the loop that started them), killed with
# the unreaped execs when a sandbox's loop stops.
_groups: dict[int, asyncio.AbstractEventLoop | None] = {}


def own_group(pid: int) -> None:
    """Have :func:`kill_unreaped` also kill process group ``pid`` (started on this loop)."""
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _unreaped_lock:
        _groups[pid] = loop


def forget_group(pid: int) -> None:
    """Undo :func:`own_group` (the group was killed and reaped by its owner)."""
    with _unreaped_lock:
        _groups.pop(pid, None)


# --------------------------------------------------------------------------------------------
# Standard streams of the child
# --------------------------------------------------------------------------------------------


@dataclass
class _Stdio:
    """The descriptors of one spawn: what the child gets, and what we keep."""

    child: tuple[int, int, int]  # becomes the child's 0, 1, 2
    stdin: int  # we write here
    outputs: dict[int, int]  # channel -> descriptor we read
    tty: bool

    def close_child_ends(self) -> None:
        # Our copies of the child's ends must go right after the spawn: a pipe (or pty) only
        # reports EOF once every writer (or slave) is closed, including ours.
        for fd in set(self.child):
            os.close(fd)

    def close_our_ends(self) -> None:
        for fd in {self.stdin, *self.outputs.values()}:
            os.close(fd)


def _pipe_stdio() -> _Stdio:
    fds: list[int] = []
    try:
        for _ in range(3):
            fds.extend(os.pipe())  # non-inheritable: concurrent spawns cannot pick them up
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    stdin_r, stdin_w, out_r, out_w, err_r, err_w = fds
    return _Stdio(
        child=(stdin_r, out_w, err_w),
        stdin=stdin_w,
        outputs={STDOUT: out_r, STDERR: err_r},
        tty=False,
    )


_TIOCSPTLCK = 0x40045431
_TIOCGPTPEER = 0x5441


def _container_openpty(root: Path) -> tuple[int, int]:
    """A pty of the container's own devpts (as a runtime makes it), so that ``tty`` and
    ``/dev/pts/N`` name it inside the container."""
    master = os.open(root / "dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
        slave = fcntl.ioctl(master, _TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    return master, slave


def _pty_stdio(width: int, height: int, root: Path | None = None) -> _Stdio:
    master, slave = os.openpty() if root is None else _container_openpty(root)
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, _winsize(width, height))
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return _Stdio(child=(slave, slave, slave), stdin=master, outputs={STDOUT: master}, tty=True)


def _winsize(width: int, height: int) -> bytes:
    clamp = functools.partial(min, 0xFFFF)
    return struct.pack("HHHH", clamp(max(0, height)), clamp(max(0, width)), 0, 0)


def _ignored_signals() -> tuple[int, ...]:
    """Signals this process ignores; children would inherit that across exec()."""
    return tuple(
        number for number in signal.valid_signals() if signal.getsignal(number) is signal.SIG_IGN
    )


def _setup_terminal_child(ignored: tuple[int, ...]) -> None:
    """preexec_fn for tty processes: controlling terminal and default signal handling.

    subprocess has already called setsid(), so the child is a session leader without a
    terminal; TIOCSCTTY on stdin (the pty slave) makes it its controlling terminal, without
    which ^C and window-size changes would reach nobody. If that fails the process still
    runs on the pty, just without job control.

    A signal ignored here (say SIGINT, when the sandbox was started in the background by a
    shell) would stay ignored after exec(), and ^C would do nothing; a container starts
    with default dispositions, so they are reset. (For pipes there is no preexec_fn to do
    this: a runtime sends SIGINT and friends only through the tty.)
    """
    for number in ignored:
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    try:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    except OSError:
        pass


def _spawn(
    spec: ProcessSpec, argv: list[str], executable: str, stdio: _Stdio
) -> subprocess.Popen[bytes]:
    """Start the child; it runs in its own session, so its pid is also its process group."""
    # A preexec_fn makes subprocess fall back from vfork() to fork(), so it is only paid
    # for where it is needed. The usual danger of running Python in a child forked from a
    # threaded program (a lock held by another thread) does not apply to the few builtin
    # signal and ioctl calls it makes.
    preexec = functools.partial(_setup_terminal_child, _ignored_signals()) if stdio.tty else None
    namespaces = (
        entered_namespaces(spec.isolation.namespaces)
        if spec.isolation is not None
        else _hostname_for_children(spec.hostname)
    )
    try:
        with namespaces:
            return subprocess.Popen(
                argv,
                executable=executable,
                stdin=stdio.child[0],
                stdout=stdio.child[1],
                stderr=stdio.child[2],
                cwd=spec.cwd if spec.isolation is None else "/",
                env=dict(spec.env),
                close_fds=True,
                start_new_session=True,
                restore_signals=True,
                preexec_fn=preexec,  # noqa: PLW1509
            )
    except OSError as error:
        # subprocess names the executable when execve() failed (the file vanished since we
        # looked, or is not a valid executable: ENOEXEC), and the directory when chdir() did.
        if error.filename == executable and error.errno is not None:
            raise ExecutableNotFound(argv[0], _go_strerror(error.errno)) from None
        raise


async def start_process(spec: ProcessSpec, *, off_loop: bool = False) -> RunningProcess:
    """Start ``spec`` and return its handle; the caller must ``aclose()`` it.

    The spawn blocks its thread until the child has exec'd (tens of milliseconds on a busy
    machine, more for an isolated one's ``nsenter``): with ``off_loop`` it happens in a
    thread of the loop's default executor, so that a thousand main processes starting at
    once do not hold up the event loop. Raises :class:`ExecutableNotFound` when ``argv[0]``
    cannot be executed, ``ValueError`` for an empty ``argv`` and
    ``FileNotFoundError``/``NotADirectoryError`` for a bad ``cwd``.
    """
    loop = asyncio.get_running_loop()
    argv = [str(arg) for arg in spec.argv]
    if not argv:
        raise ValueError("argv must not be empty")
    isolation = spec.isolation
    root = isolation.root if isolation is not None else None
    cwd = Path(spec.cwd) if root is None else root / str(spec.cwd).lstrip("/")
    if not cwd.is_dir():
        number = errno.ENOTDIR if cwd.exists() else errno.ENOENT
        raise OSError(number, os.strerror(number), str(spec.cwd))
    executable = _resolve_executable(argv[0], spec.env.get("PATH", ""), cwd, root)
    if isolation is not None:
        # nsenter enters the container and execs argv itself (looked up in the same PATH).
        argv = [*isolation.prefix, *argv]
        executable = argv[0]
    stdio = _pty_stdio(spec.width, spec.height, root) if spec.tty else _pipe_stdio()
    if off_loop:
        popen = await _spawn_off_loop(loop, spec, argv, executable, stdio)
        return RunningProcess(loop, popen, stdio)
    try:
        popen = _spawn(spec, argv, executable, stdio)
    except BaseException:
        stdio.close_our_ends()
        raise
    finally:
        stdio.close_child_ends()
    return RunningProcess(loop, popen, stdio)


# Processes whose start was cancelled while a thread spawned them, being killed and reaped.
_abandoned: set[asyncio.Task[None]] = set()


async def _spawn_off_loop(
    loop: asyncio.AbstractEventLoop,
    spec: ProcessSpec,
    argv: list[str],
    executable: str,
    stdio: _Stdio,
) -> subprocess.Popen[bytes]:
    """:func:`_spawn` in a thread of the loop's default executor. The thread owns the child's
    ends of ``stdio`` and copies of the namespace descriptors: a pod that ends meanwhile
    closes its own, whose numbers could then name another pod's namespaces."""
    held: list[int] = []
    try:
        if spec.isolation is not None:
            for fd in spec.isolation.namespaces:
                held.append(os.dup(fd))
            isolation = dataclasses.replace(spec.isolation, namespaces=tuple(held))
            spec = dataclasses.replace(spec, isolation=isolation)
    except BaseException:
        _close_all(held)
        stdio.close_child_ends()
        stdio.close_our_ends()
        raise

    def spawn() -> subprocess.Popen[bytes]:
        try:
            return _spawn(spec, argv, executable, stdio)
        finally:
            stdio.close_child_ends()
            _close_all(held)

    try:
        future = loop.run_in_executor(None, spawn)
    except RuntimeError:  # the executor is shut down: the loop is closing
        stdio.close_child_ends()
        _close_all(held)
        stdio.close_our_ends()
        raise
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # The thread goes on: what it starts is killed and reaped as soon as it is there.
        future.add_done_callback(functools.partial(_abandon_spawned, loop, stdio))
        raise
    except BaseException:
        stdio.close_our_ends()
        raise


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    fds.clear()


def _abandon_spawned(
    loop: asyncio.AbstractEventLoop, stdio: _Stdio, done: asyncio.Future[subprocess.Popen[bytes]]
) -> None:
    if done.cancelled() or done.exception() is not None:
        stdio.close_our_ends()
        return
    process = RunningProcess(loop, done.result(), stdio)
    task = loop.create_task(process.aclose())
    _abandoned.add(task)
    task.add_done_callback(_abandoned.discard)


# --------------------------------------------------------------------------------------------
# Event-loop plumbing
# --------------------------------------------------------------------------------------------


class _WatchedFd:
    """A non-blocking descriptor that unregisters itself from the loop before closing.

    The selector is keyed by descriptor number: if a still-registered descriptor were closed
    and the number reused for another process's pipe, the old callback would fire for it, and
    a late ``remove_reader`` would silently unregister the new owner. So registrations are
    tracked here and every removal is exact.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd = fd
        self._loop = loop
        self._reading = False
        self._writing = False

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def watch_readable(self, callback: Callable[[], None]) -> None:
        if not self._reading and not self.closed:
            self._loop.add_reader(self.fd, callback)
            self._reading = True

    def unwatch_readable(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def watch_writable(self, callback: Callable[[], None]) -> None:
        if not self._writing and not self.closed:
            self._loop.add_writer(self.fd, callback)
            self._writing = True

    def unwatch_writable(self) -> None:
        if self._writing:
            self._loop.remove_writer(self.fd)
            self._writing = False

    def close(self) -> None:
        if not self.closed:
            self.unwatch_readable()
            self.unwatch_writable()
            os.close(self.fd)
            self.fd = -1


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _OutputPump:
    """Reads the output descriptors into one queue, in arrival order, with back-pressure."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, sources: dict[int, _WatchedFd], close_at_eof: bool
    ) -> None:
        self._loop = loop
        self._sources = dict(sources)  # channels not yet at EOF
        self._close_at_eof = close_at_eof  # a pty master is still needed for stdin
        self._callbacks = {
            channel: functools.partial(self._on_readable, channel) for channel in sources
        }
        self._queue: collections.deque[tuple[int, bytes]] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._watch_all()

    def _watch_all(self) -> None:
        for channel, source in self._sources.items():
            source.watch_readable(self._callbacks[channel])

    def _on_readable(self, channel: int) -> None:
        source = self._sources[channel]
        try:
            data = os.read(source.fd, CHUNK_SIZE)
        except BlockingIOError:
            return
        except OSError as error:
            # A pty master answers EIO once the last slave descriptor is closed: its EOF.
            if error.errno != errno.EIO:
                logger.warning("reading channel %d failed: %s", channel, error)
            data = b""
        if data:
            self._queue.append((channel, data))
            self._buffered += len(data)
            if self._buffered >= _HIGH_WATER:
                self._pause()
        else:
            self._end(channel)
        _wake(self._waiter)

    def _pause(self) -> None:
        self._paused = True
        for source in self._sources.values():
            source.unwatch_readable()

    def _end(self, channel: int) -> None:
        source = self._sources.pop(channel)
        if self._close_at_eof:
            source.close()
        else:
            source.unwatch_readable()

    async def get(self) -> tuple[int, bytes] | None:
        """The next chunk, or None once every channel is at EOF (or closed)."""
        while not self._queue:
            if not self._sources:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk = self._queue.popleft()
        self._buffered -= len(chunk[1])
        if self._paused and self._buffered <= _LOW_WATER:
            self._paused = False
            self._watch_all()
        return chunk

    def close(self) -> None:
        """Stop reading now; already queued chunks are still handed out."""
        for channel in list(self._sources):
            self._end(channel)
        _wake(self._waiter)


# --------------------------------------------------------------------------------------------
# The running process
# --------------------------------------------------------------------------------------------


def _exit_code(info: os.waitid_result) -> int:
    """Exit status as a shell or container runtime reports it: 128+N for signal N."""
    if info.si_code == os.CLD_EXITED:
        return info.si_status
    return 128 + info.si_status


# Started and not reaped yet, for kill_unreaped. Weak: a process that is garbage collected
# unclosed kills its group in __del__.
_unreaped: weakref.WeakSet[RunningProcess] = weakref.WeakSet()
# Loops of several sandboxes add to it from their threads; re-entrant, as a signal handler in
# the main thread may call kill_unreaped while that thread is inside it.
_unreaped_lock = threading.RLock()


def kill_unreaped(loop: asyncio.AbstractEventLoop) -> int:
    """SIGKILL the process group of every process started on ``loop`` and not reaped yet.

    For the owner of a loop that stopped while processes still ran (one being started as the
    sandbox stopped, say): each group dies with whatever it started. Their zombies stay until
    this process ends, as reaping them needs the loop. Returns how many there were.
    """
    with _unreaped_lock:
        processes = [process for process in _unreaped if process._loop is loop]
        groups = [pid for pid, owner in _groups.items() if owner is loop]
    for process in processes:
        process.kill()
    # Pod sandboxes: killing one ends its PID namespace, so every process of the pod.
    for pid in groups:
        for send in (os.killpg, os.kill):
            try:
                send(pid, signal.SIGKILL)
            except OSError:
                pass
        forget_group(pid)
    return len(processes)


class RunningProcess:
    """A started process. Not thread-safe: use it from its event loop only.

    Until :meth:`aclose` the process is never reaped, even after it exited: its zombie keeps
    the pid, and with it the process-group id, from being reused, so :meth:`kill` cannot hit
    a stranger's processes.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes], stdio: _Stdio
    ) -> None:
        self.pid: int = popen.pid
        self._loop = loop
        self._popen = popen  # kept so its __del__ never finds it "still running"
        with _unreaped_lock:
            _unreaped.add(self)
        self._tty = stdio.tty
        self._stdin: _WatchedFd | None = _WatchedFd(loop, stdio.stdin)
        outputs: dict[int, _WatchedFd]
        if stdio.tty:
            # One pty master carries both directions.
            outputs = {STDOUT: self._stdin}
        else:
            outputs = {channel: _WatchedFd(loop, fd) for channel, fd in stdio.outputs.items()}
        self._output = _OutputPump(loop, outputs, close_at_eof=not stdio.tty)
        self._output_taken = False
        self._stdin_lock = asyncio.Lock()
        self._stdin_waiter: asyncio.Future[None] | None = None
        self._stdin_done = False  # closed by us, or the process stopped reading
        self._tty_line_pending = False  # bytes typed since the last end of line
        self._exit: asyncio.Future[int] = loop.create_future()
        self._pidfd: _WatchedFd | None = None
        self._reaped = False
        self._closing = False
        self._closed: asyncio.Future[None] = loop.create_future()
        self._watch_exit()

    def __repr__(self) -> str:
        if self._reaped:
            state = "reaped"
        elif self._exit.done():
            state = f"exited ({self._exit.result()})"
        else:
            state = "running"
        return f"<RunningProcess pid={self.pid} {state}>"

    # ---- exit -------------------------------------------------------------------------------

    def _watch_exit(self) -> None:
        """Learn about the exit without reaping: a pidfd in the loop, else a waiting thread."""
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self._watch_exit_in_thread()
            return
        self._pidfd = _WatchedFd(self._loop, pidfd)
        self._pidfd.watch_readable(self._on_pidfd_readable)

    def _on_pidfd_readable(self) -> None:
        try:
            # WNOWAIT: read the status, leave the zombie (see the class docstring).
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            self._lost()
        else:
            if info is None:
                return  # not exited after all
            self._set_exit(_exit_code(info))
        assert self._pidfd is not None
        self._pidfd.unwatch_readable()

    def _watch_exit_in_thread(self) -> None:
        loop, pid = self._loop, self.pid

        def wait_blocking() -> None:
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
                assert info is not None  # only None with WNOHANG
                deliver: Callable[[], None] = functools.partial(self._set_exit, _exit_code(info))
            except ChildProcessError:
                deliver = self._lost
            try:
                loop.call_soon_threadsafe(deliver)
            except RuntimeError:
                pass  # the loop is closed; nobody is waiting any more

        threading.Thread(target=wait_blocking, name=f"wait-{pid}", daemon=True).start()

    def _lost(self) -> None:
        # Someone else reaped our child (a waitpid(-1) elsewhere in the program). The pid may
        # already belong to another process, so it must never be signalled again.
        logger.warning("process %d was reaped by someone else; exit code unknown", self.pid)
        self._reaped = True
        self._set_exit(255)

    def _set_exit(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)

    async def wait(self) -> int:
        """Wait for the main process to exit; its exit code, or 128+N if killed by signal N."""
        return await asyncio.shield(self._exit)

    # ---- signals ----------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the process group (the process and what it started). Never raises."""
        if self._reaped:
            return
        # The group first; then the leader itself, in case it moved to a group of its own.
        for send in (os.killpg, os.kill):
            try:
                send(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the process itself (SIGTERM when its pod is deleted), as a
        container runtime signals only a container's first process; SIGKILL goes to the
        whole group, as :meth:`kill`. Never raises."""
        if signum == signal.SIGKILL:
            self.kill()
            return
        if self._reaped:
            return
        # Not the group: a process that handles SIGTERM decides what its children get (a
        # shell that traps it keeps its children running), and in an isolated container the
        # group holds the processes that put it there.
        try:
            os.kill(self.pid, signum)
        except OSError:
            pass

    def resize(self, width: int, height: int) -> None:
        """Set the terminal size (the process gets SIGWINCH); a no-op without a tty."""
        if self._tty and self._stdin is not None and not self._stdin.closed:
            try:
                fcntl.ioctl(self._stdin.fd, termios.TIOCSWINSZ, _winsize(width, height))
            except OSError:
                pass

    # ---- stdin ------------------------------------------------------------------------------

    async def write_stdin(self, data: bytes) -> None:
        """Write all of ``data`` to the process, waiting while its input is full.

        As with a container runtime, data is dropped silently once the process has stopped
        reading (closed its stdin or exited), or after :meth:`close_stdin`.
        """
        async with self._stdin_lock:
            await self._write(data)

    async def close_stdin(self) -> None:
        """Signal end of input, after any pending writes.

        For a pipe that is closing it. A pty cannot be closed without hanging up the
        terminal (and losing the output), so, like a typed ^D, the terminal's EOF character
        is sent when it is in canonical mode; a program that put it in raw mode gets nothing.
        """
        async with self._stdin_lock:
            if self._stdin_done or self._stdin is None:
                return
            if self._tty:
                eof = self._tty_eof_bytes()
                if eof:
                    await self._write(eof)
            else:
                self._stdin.close()
                self._stdin = None
            self._stdin_done = True

    def _tty_eof_bytes(self) -> bytes:
        assert self._stdin is not None
        try:
            # Terminal attributes read on the master are those of the slave side.
            attrs = termios.tcgetattr(self._stdin.fd)
        except (termios.error, OSError):
            return b""
        eof: bytes = attrs[6][termios.VEOF]  # one byte in canonical mode
        if not attrs[3] & termios.ICANON or eof == b"\0":  # raw mode, or EOF disabled
            return b""
        # EOF only ends input at the start of a line; after a partial line the first one just
        # hands that line to the reader, and a second is needed.
        return eof * 2 if self._tty_line_pending else eof

    async def _write(self, data: bytes) -> None:
        view = memoryview(data).cast("B")
        while view and not self._stdin_done and self._stdin is not None and not self._stdin.closed:
            try:
                written = os.write(self._stdin.fd, view)
            except BlockingIOError:
                await self._stdin_writable()
                continue
            except OSError as error:
                # EPIPE: the process closed its stdin or exited; EIO: the pty slave is gone.
                if error.errno not in (errno.EPIPE, errno.EIO):
                    raise
                self._stdin_done = True
                return
            if self._tty:
                self._tty_line_pending = bytes(view[written - 1 : written]) not in b"\n\r\x04"
            view = view[written:]

    async def _stdin_writable(self) -> None:
        assert self._stdin is not None
        self._stdin_waiter = waiter = self._loop.create_future()
        self._stdin.watch_writable(functools.partial(_wake, waiter))
        try:
            await waiter
        finally:
            self._stdin_waiter = None
            if self._stdin is not None:  # aclose() may have closed (and unwatched) it
                self._stdin.unwatch_writable()

    # ---- output -----------------------------------------------------------------------------

    async def read_output(self) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(channel, chunk)`` in arrival order until stdout and stderr are at EOF.

        Channel 1 is stdout (with a tty: the terminal), 2 is stderr. Chunks are at most
        :data:`CHUNK_SIZE` bytes. EOF comes when every holder of the stream has closed it,
        which includes background children: ``sh -c 'sleep 1000 &'`` keeps it open, as in a
        container; use :meth:`kill` or :meth:`aclose` to end it. Iterate only once.
        """
        if self._output_taken:
            raise RuntimeError("read_output() can only be iterated once")
        self._output_taken = True
        while (chunk := await self._output.get()) is not None:
            yield chunk

    # ---- shutdown ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Kill the process group, close every descriptor and reap the process. Idempotent.

        Safe while another task iterates :meth:`read_output` (it ends after the chunks read
        so far) or waits in :meth:`write_stdin` (it returns). Processes that are still alive
        in the group, such as background jobs, are killed too.
        """
        if not self._closing:
            self._closing = True
            self.kill()
            self._close_descriptors()
            # Reaping waits for the exit to be observed; as a callback it happens even if
            # this call is cancelled.
            self._exit.add_done_callback(self._reap)
        await asyncio.shield(self._closed)

    def _close_descriptors(self) -> None:
        self._output.close()
        if self._stdin is not None:
            self._stdin.close()
            self._stdin = None
        self._stdin_done = True
        _wake(self._stdin_waiter)

    def _reap(self, _: asyncio.Future[int]) -> None:
        if not self._reaped:
            try:
                os.waitpid(self.pid, 0)  # the exit was observed: a zombie, this cannot block
            except ChildProcessError:
                pass
            self._reaped = True
        with _unreaped_lock:
            _unreaped.discard(self)
        self._popen.returncode = self._exit.result()
        if self._pidfd is not None:
            self._pidfd.close()
        if not self._closed.done():
            self._closed.set_result(None)

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if not getattr(self, "_closing", True):
            _warn(f"unclosed {self!r}", ResourceWarning, source=self)
            self.kill()
