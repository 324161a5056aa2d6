"""Pods in their own Linux namespaces, the way a container runtime isolates them.

This is the sandbox's default wherever it works (Linux, ``bwrap`` from bubblewrap and
``nsenter``/``unshare`` from util-linux installed, user and mount namespaces allowed: probed
once per process). Elsewhere, or with ``PODMAGIC_SANDBOX_ISOLATION=processes``, pods run as
plain host processes, and the sandbox says so loudly (:func:`isolation_warning`, at start, in
``%pod_sandbox`` and in the run header: :func:`isolation_marker`).

Each pod gets its own UTS (host name = pod name), IPC and network (loopback only)
namespaces. Run as root, a worker thread makes them with ``unshare`` and keeps descriptors of
them (the kernel keeps a namespace while a descriptor names it), with no process: a pod costs
no start of its own. Otherwise, and for a pod with ``shareProcessNamespace`` (whose PID
namespace needs a first process), a *pause* process holds them (bubblewrap running ``sleep``,
like the kubelet's pause container). Each container gets a *holder* process started inside
those namespaces by bubblewrap, with a PID namespace of its own (Kubernetes gives each
container one unless the pod shares them) and a mount namespace whose root is the container's
folder under the sandbox's state folder:

* ``/usr``, ``/bin``, ``/lib*``, ``/sbin`` are the host's, read-only;
* ``/etc`` is the container's own and writable: an overlay whose lower layer is the host's
  ``/etc`` (so the host's tools find their configuration: ``ld.so.cache``, alternatives,
  CA certificates, users) and whose upper layer is the container's, seeded with the files
  the kubelet writes (``hosts``, ``hostname``, ``resolv.conf``) and with ``shadow`` and
  ``gshadow`` without their password hashes. Where overlay mounts are not allowed the host's
  ``/etc`` is copied instead (about 25 ms a container instead of under 1 ms);
* ``/tmp``, ``/var``, ``/root``, ``/run`` and the working folder are the container's own;
* volumes (:mod:`._volumes`), among them the service account token at
  ``/var/run/secrets/kubernetes.io/serviceaccount``.

An exec joins the container like ``runc exec``: the event loop's thread enters the pod's
namespaces and the container's PID namespace just for the spawn (as :mod:`._runner` already
does for the host name), so the process is born there, and ``nsenter`` puts it into the
container's mount namespace and root without a fork of its own.
:func:`container_placement` is that recipe for any process of a container (an exec, a main
process); :func:`pod_socket` opens a socket inside a pod's network namespace (port-forward).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import fcntl
import functools
import json
import logging
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._runner import Isolation, entered_namespaces, forget_group, new_namespaces, own_group
from ._volumes import forget_pod, mount_arguments

__all__ = [
    "ISOLATION_VARIABLE",
    "ContainerSandbox",
    "PodSandbox",
    "PodSandboxes",
    "acontainer_placement",
    "container_ended",
    "container_isolation",
    "container_placement",
    "describe_isolation",
    "isolation_marker",
    "isolation_mode",
    "isolation_problem",
    "isolation_warning",
    "pod_sandboxes",
    "pod_socket",
]

log = logging.getLogger(__name__)

#: ``processes`` runs pods as plain host processes; unset (or ``namespaces``): isolated.
ISOLATION_VARIABLE = "PODMAGIC_SANDBOX_ISOLATION"
_PROCESSES = ("processes", "none")  # "none": the variable's former spelling

# The pod's namespaces every process of it joins, in the order they are entered.
_POD_NAMESPACES = ("net", "uts", "ipc")
# Host folders every container sees read-only; on merged-/usr systems the ones that are
# symlinks to usr/... become the same symlinks in the container's root.
_SYSTEM_FOLDERS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# The container's own folders, made in its root before it starts (mode as on a fresh system).
_OWN_FOLDERS = {
    "etc": 0o755,
    "tmp": 0o1777,
    "var": 0o755,
    "var/tmp": 0o1777,
    "root": 0o700,
    "run": 0o755,
}
# /etc files that hold password hashes: the container gets them with the hashes blanked.
_HASHED = ("shadow", "gshadow")
_IDLE = ("sleep", "infinity")
# What a holder process runs as its PID namespace's init (bwrap --as-pid-1), as a
# container's own first process is: SIGKILL and other unhandled signals sent from inside the
# namespace (``kill -9 -1``) never reach it, so the namespace outlives whatever a process in it
# kills. It prints a line (the holder's "the root is ready"), then waits on an idle child,
# started again should it be killed, and ``wait`` reaps the orphans the namespace's processes
# leave to it, as an init must.
_INIT = (
    "sh",
    "-c",
    'echo; exec >/dev/null 2>&1; while :; do "$@" & wait; done',
    "sh",
    *_IDLE,
)
# The capabilities a container runtime (containerd, Docker) gives a container's processes by
# default, less MKNOD: with no device cgroup here, a device node would reach the host's disks.
_CAPABILITIES = (
    "chown",
    "dac_override",
    "fsetid",
    "fowner",
    "net_raw",
    "setgid",
    "setuid",
    "setfcap",
    "setpcap",
    "net_bind_service",
    "sys_chroot",
    "kill",
    "audit_write",
)
_INSTALL_HINT = (
    "apt install bubblewrap (Debian, Ubuntu), dnf install bubblewrap (Fedora), "
    "apk add bubblewrap (Alpine)"
)


def _tool(name: str) -> str | None:
    return _which(name)


@functools.cache
def _which(name: str) -> str | None:
    # Looked up once per process: every pod and exec names these tools.
    return shutil.which(name, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """Why pods cannot get namespaces here (None: they can); tried once per process."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform}); bubblewrap needs Linux namespaces"
    bwrap = _tool("bwrap")
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed; to isolate pods: {_INSTALL_HINT}"
    for name in ("nsenter", "unshare", "setpriv"):
        if _tool(name) is None:
            return f"{name} is not installed; it comes with util-linux (apt install util-linux)"
    try:
        result = subprocess.run(
            [bwrap, *_pod_namespace_flags("probe"), *_system_binds(), "--", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap could not run ({error})"
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        return (
            "bwrap cannot make user and mount namespaces here "
            f"({reason[-1] if reason else result.returncode}); a container or a sysctl such as "
            "kernel.unprivileged_userns_clone=0 forbids them"
        )
    return None


@functools.lru_cache(maxsize=1)
def _overlay_works() -> bool:
    """Whether a container's /etc can be an overlay over the host's (else it is a copy)."""
    with tempfile.TemporaryDirectory(prefix="podmagic-overlay-") as folder:
        base = Path(folder)
        for name in ("upper", "work", "merged"):
            (base / name).mkdir()
        try:
            result = subprocess.run(
                [
                    *_mount_namespace_prefix(),
                    _tool("sh") or "sh",
                    "-c",
                    'mount -t overlay overlay -o "$1" "$2"',
                    "sh",
                    _overlay_options(base / "upper", base / "work"),
                    str(base / "merged"),
                ],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0


def _mount_namespace_prefix() -> list[str]:
    """A new mount namespace in which the next command may mount (root, or a user namespace)."""
    unshare = _tool("unshare") or "unshare"
    user = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
    return [unshare, *user, "--mount", "--propagation", "private", "--"]


def _overlay_options(upper: Path, work: Path) -> str:
    return f"lowerdir=/etc,upperdir={upper},workdir={work}"


def _chosen() -> str:
    return os.environ.get(ISOLATION_VARIABLE, "").strip()


def isolation_problem() -> str | None:
    """Why pods run as plain processes (None: each pod gets its own namespaces)."""
    chosen = _chosen()
    if chosen.lower() in _PROCESSES:
        return f"{ISOLATION_VARIABLE}={chosen} chose plain processes"
    if chosen.lower() not in ("", "namespaces"):
        return (
            f"{ISOLATION_VARIABLE}={chosen!r} is neither namespaces nor processes; "
            "unset it to isolate pods"
        )
    return _probe()


def isolation_warning() -> str | None:
    """What to say at start when pods run as plain processes (None: they are isolated)."""
    problem = isolation_problem()
    if problem is None:
        return None
    return (
        "sandbox pods are NOT isolated: they run as plain processes of this host and can see "
        f"and change its files and processes ({problem})"
    )


def isolation_mode() -> str:
    """``"namespaces"``, or ``"processes (<why>)"`` when pods run as plain host processes."""
    problem = isolation_problem()
    return "namespaces" if problem is None else f"processes ({problem})"


def describe_isolation(mode: str) -> str:
    """One line for a person about :func:`isolation_mode`'s ``mode`` (CLI, ``%pod_sandbox``)."""
    if mode == "namespaces":
        return "pods isolated: each in its own namespaces, with its own root, /etc and /tmp"
    return f"WARNING: pods NOT isolated, they are plain processes of this host: {mode}"


def isolation_marker(context: str) -> str:
    """What a run header adds after the context name when it is a sandbox of this process
    whose pods are not isolated (``""`` otherwise); each context of a sandbox serving several
    is one (``podmagic-sandbox``, ``podmagic-sandbox-2``…)."""
    if not any(sandbox.context == context for sandbox in list(_running_unisolated)):
        return ""
    return " [sandbox pods NOT isolated: plain host processes]"


# Sandboxes of this process that serve with pods as plain processes (for isolation_marker).
_running_unisolated: weakref.WeakSet[Any] = weakref.WeakSet()


def note_started(sandbox: Any) -> str | None:
    """Record that ``sandbox`` serves in the mode of :func:`isolation_mode`; the warning to
    say (None when pods are isolated)."""
    warning = isolation_warning()
    if warning is not None:
        _running_unisolated.add(sandbox)
    return warning


def note_stopped(sandbox: Any) -> None:
    """``sandbox`` no longer serves."""
    _running_unisolated.discard(sandbox)


def _pod_namespace_flags(hostname: str) -> list[str]:
    return [
        # Should the sandbox die without stopping (SIGKILL), its pods go with it.
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-uts",
        "--unshare-ipc",
        "--unshare-net",
        "--hostname",
        hostname,
    ]


@functools.lru_cache(maxsize=1)
def _system_binds() -> tuple[str, ...]:
    """bwrap arguments mounting the host's system folders read-only."""
    arguments: list[str] = []
    for name in _SYSTEM_FOLDERS:
        host = Path("/") / name
        if host.is_symlink():
            arguments += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            arguments += ["--ro-bind", str(host), f"/{name}"]
    return tuple(arguments)


def _system_binds_into(root: Path) -> list[str]:
    """:func:`_system_binds` for a container whose root folder is ``root``: without the
    symlinks an earlier start left there already (bubblewrap refuses to make a symlink where
    one exists, so a container started again, after its processes ended, would not start)."""
    binds = _system_binds()
    arguments: list[str] = []
    for index in range(0, len(binds), 3):
        flag, source, target = binds[index : index + 3]
        if flag == "--symlink":
            there = root / target.lstrip("/")
            if there.is_symlink() and os.readlink(there) == source:
                continue
        arguments += [flag, source, target]
    return arguments


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH22x"  # struct ifreq: the interface name, then ifr_flags in a 24-byte union


def _loopback_up() -> None:
    """Bring up ``lo`` in the calling thread's network namespace (a new one has it down;
    once up, it has 127.0.0.1 and ::1), as bubblewrap does for ``--unshare-net``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0))
        flags = struct.unpack(_IFREQ, request)[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


@functools.lru_cache(maxsize=1)
def _namespaces_without_process() -> bool:
    """Whether this process may make a pod's namespaces itself (root, no seccomp profile
    forbidding ``unshare``): tried once, in a thread that goes back to its own at once."""
    try:
        with new_namespaces(_POD_NAMESPACES):
            pass
    except OSError:
        return False
    return True


def _held_namespaces(hostname: str) -> tuple[int, ...]:
    """A pod's new net, UTS and IPC namespaces (in :data:`_POD_NAMESPACES`' order), made by
    the calling thread and held by the descriptors returned, with no process in them."""
    fds: list[int] = []
    with new_namespaces(_POD_NAMESPACES):
        try:
            socket.sethostname(hostname)
            _loopback_up()
            for kind in _POD_NAMESPACES:
                fds.append(os.open(f"/proc/thread-self/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
    return tuple(fds)


def _pod_hostname(pod: Mapping[str, Any]) -> str:
    """The pod's host name: ``spec.hostname`` or its name, cut as the kubelet cuts it (63
    bytes, no "-." end)."""
    name = str((pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"])
    encoded = name.encode()
    return name if len(encoded) <= 63 else encoded[:63].decode(errors="ignore").rstrip("-.")


def _kubelet_hosts(pod: Mapping[str, Any]) -> str:
    """``/etc/hosts`` as the kubelet writes it for a pod without hostNetwork."""
    spec = pod.get("spec") or {}
    hostname = _pod_hostname(pod)
    lines = [
        "# Kubernetes-managed hosts file.",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "fe00::0\tip6-mcastprefix",
        "fe00::1\tip6-allnodes",
        "fe00::2\tip6-allrouters",
    ]
    pod_ip = (pod.get("status") or {}).get("podIP")
    if pod_ip:
        subdomain = spec.get("subdomain")
        if subdomain:
            namespace = pod["metadata"]["namespace"]
            fqdn = f"{hostname}.{subdomain}.{namespace}.svc.cluster.local"
            lines.append(f"{pod_ip}\t{fqdn}\t{hostname}")
        else:
            lines.append(f"{pod_ip}\t{hostname}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        for alias in aliases:
            lines.append(f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []))
    return "\n".join(lines) + "\n"


def _kubelet_resolv_conf(namespace: str) -> str:
    return (
        f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )


def _without_hashes(path: Path) -> str:
    """A shadow-style file with every password field made ``*`` (no login by password)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    lines = []
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) > 1 and fields[1] not in ("", "*", "!", "!*"):
            fields[1] = "*"
        lines.append(":".join(fields))
    return "\n".join(lines) + ("\n" if lines else "")


def _read_info(fd: int) -> dict[str, Any]:
    """bwrap's ``--info-fd`` JSON (read to EOF: bwrap closes it once written)."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    info: dict[str, Any] = json.loads(data or b"{}")
    return info


def _signal_kill(popen: subprocess.Popen[bytes]) -> None:
    """SIGKILL a pause or holder process and its group (reaped by :func:`_reap`)."""
    forget_group(popen.pid)
    if popen.returncode is not None:
        return
    for send in (os.killpg, os.kill):
        try:
            send(popen.pid, signal.SIGKILL)
        except OSError:
            pass


# Killed processes that did not end within _reap's wait: kept (and polled by later reaps)
# so that their Popen is never collected "still running".
_stragglers: list[subprocess.Popen[bytes]] = []
_stragglers_lock = threading.Lock()


def _reap(popen: subprocess.Popen[bytes]) -> None:
    """Wait for a killed pause or holder process and close its pipes."""
    # Its exit can take a while: the kernel tears down the mount namespace, syncing the
    # overlay's upper layer. Hence off the event loop when a pod ends (PodSandboxes.end).
    try:
        popen.wait(timeout=30)
    except subprocess.TimeoutExpired:
        log.warning("pod sandbox process %d did not end after SIGKILL", popen.pid)
        with _stragglers_lock:
            _stragglers.append(popen)
    finally:
        for pipe in (popen.stdin, popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
    with _stragglers_lock:
        _stragglers[:] = [other for other in _stragglers if other.poll() is None]


def _kill(popen: subprocess.Popen[bytes]) -> None:
    _signal_kill(popen)
    _reap(popen)


@dataclass
class ContainerSandbox:
    """One container: its holder process and the way a process enters it."""

    holder: subprocess.Popen[bytes]
    proc: str  # /proc/<holder's pid>: the holder, seen from the host
    pid_fd: int  # the container's PID namespace (the pod's when it shares one)

    def alive(self) -> bool:
        """Whether its namespaces still hold processes (else a process cannot enter them:
        the container is started again)."""
        if self.holder.poll() is not None:
            return False
        try:  # the holder's init is gone (a zombie's namespaces are) before bwrap is
            os.readlink(f"{self.proc}/ns/mnt")
        except OSError:
            return False
        return True

    @property
    def root(self) -> Path:
        """The container's root folder as seen from the host."""
        return Path(self.proc, "root")

    def isolation(self, pod: PodSandbox, cwd: str) -> Isolation:
        """How :func:`._runner.start_process` puts a process into this container at ``cwd``."""
        nsenter = _tool("nsenter") or "nsenter"
        prefix = (
            nsenter,
            "-F",
            f"--mount={self.proc}/ns/mnt",
            f"--root={self.root}",
            f"--wd={self.root}{cwd}",
            "--",
            # Spawned by the sandbox, the process would hold all of root's capabilities
            # (mount, load modules, make device nodes): only a runtime's default set is kept.
            _tool("setpriv") or "setpriv",
            "--bounding-set",
            "-all," + ",".join(f"+{name}" for name in _CAPABILITIES),
            "--inh-caps",
            "-all",
            "--",
        )
        # pid last: it only changes where children are born.
        return Isolation(
            namespaces=(*pod.namespace_fds, self.pid_fd), root=self.root, prefix=prefix
        )

    def kill(self) -> list[subprocess.Popen[bytes]]:
        """SIGKILL its processes and close its descriptor; the processes to reap."""
        _signal_kill(self.holder)
        os.close(self.pid_fd)
        return [self.holder]

    def close(self) -> None:
        for popen in self.kill():
            _reap(popen)


@dataclass
class PodSandbox:
    """One pod's namespaces (held by their descriptors, or by a pause process) and its
    containers."""

    pause: subprocess.Popen[bytes] | None  # None: the descriptors alone hold the namespaces
    namespace_fds: tuple[int, ...]  # net, uts, ipc
    pid_fd: int  # the pause process's PID namespace: the pod's, if it shares one (else -1)
    share_pid: bool
    folder: Path
    containers: dict[str, ContainerSandbox] = field(default_factory=dict)

    def kill(self) -> list[subprocess.Popen[bytes]]:
        """SIGKILL every process of the pod (ending a PID namespace ends all of its
        processes) and close its descriptors at once; returns the processes to reap."""
        killed: list[subprocess.Popen[bytes]] = []
        for container in self.containers.values():
            killed += container.kill()
        if self.pause is not None:
            _signal_kill(self.pause)
            killed.append(self.pause)
        for fd in (*self.namespace_fds, self.pid_fd):
            if fd >= 0:
                os.close(fd)
        self.containers.clear()
        return killed

    def close(self) -> None:
        """Kill every process of the pod and wait until they are gone."""
        for popen in self.kill():
            _reap(popen)


def _start_pod(pod: Mapping[str, Any], folder: Path) -> PodSandbox:
    metadata = pod["metadata"]
    hostname = _pod_hostname(pod)
    share_pid = bool((pod.get("spec") or {}).get("shareProcessNamespace"))
    folder.mkdir(parents=True, exist_ok=True)
    if not share_pid and _namespaces_without_process():
        return PodSandbox(
            pause=None,
            namespace_fds=_held_namespaces(hostname),
            pid_fd=-1,
            share_pid=False,
            folder=folder,
        )
    bwrap = _tool("bwrap") or "bwrap"
    read, write = os.pipe()
    try:
        pause = subprocess.Popen(
            [
                bwrap,
                *_pod_namespace_flags(hostname),
                *_system_binds(),
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--info-fd",
                str(write),
                # Not _INIT: a container joining a PID namespace whose init is a shell at times
                # does not start. A pause ended by a kill from inside is started again with
                # the pod's containers (PodSandboxes._known).
                "--",
                *_IDLE,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(write,),
            start_new_session=True,
        )
        os.close(write)
        write = -1
        own_group(pause.pid)
        try:
            info = _read_info(read)
        except BaseException:
            _kill(pause)
            raise
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)
    pid = int(info.get("child-pid", 0))
    if not pid:
        _kill(pause)
        raise OSError(f"the pod sandbox for {metadata['name']} did not start")
    fds: list[int] = []
    try:
        for kind in (*_POD_NAMESPACES, "pid"):
            fds.append(os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        _kill(pause)
        raise
    return PodSandbox(
        pause=pause,
        namespace_fds=tuple(fds[:-1]),
        pid_fd=fds[-1],
        share_pid=share_pid,
        folder=folder,
    )


def _prepare_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, mode in _OWN_FOLDERS.items():
        folder = root / name
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(mode)
    run = root / "var" / "run"  # as on Debian and most images: /var/run is /run
    if not run.exists() and not run.is_symlink():
        run.symlink_to("../run")  # relative: bwrap resolves it under the new root


def _kubelet_files(pod: Mapping[str, Any]) -> dict[str, str]:
    """The /etc files the kubelet writes into a container, and shadow files without hashes."""
    files = {
        "hosts": _kubelet_hosts(pod),
        "hostname": _pod_hostname(pod) + "\n",
        "resolv.conf": _kubelet_resolv_conf(pod["metadata"]["namespace"]),
    }
    for name in _HASHED:
        if Path("/etc", name).is_file():
            files[name] = _without_hashes(Path("/etc", name))
    return files


def _own_etc(files: Mapping[str, str], pod_folder: Path, name: str, root: Path) -> list[str]:
    """Make the container's /etc (``files``: :func:`_kubelet_files`); the command prefix
    that mounts it (overlay) or ``[]``."""
    etc = root / "etc"
    if _overlay_works() and not any(c in str(pod_folder) for c in ",:\\"):
        layers = pod_folder / ".etc" / name
        upper, work = layers / "upper", layers / "work"
        if not upper.is_dir():
            upper.mkdir(parents=True)
            work.mkdir(parents=True, exist_ok=True)
            # What the pod's files annotation put into etc/ wins over the host's.
            shutil.copytree(etc, upper, symlinks=True, dirs_exist_ok=True)
            _write_etc_files(upper, files)
        return [
            *_mount_namespace_prefix(),
            _tool("sh") or "sh",
            "-c",
            'mount -t overlay overlay -o "$1" "$2" && shift 2 && exec "$@"',
            "sh",
            _overlay_options(upper, work),
            str(etc),
        ]
    copied = pod_folder / ".etc" / f"{name}.copied"
    if not copied.exists():
        shutil.copytree(
            "/etc",
            etc,
            symlinks=True,
            ignore=lambda folder, names: [n for n in names if folder == "/etc" and n in _HASHED],
            ignore_dangling_symlinks=True,
            dirs_exist_ok=True,
        )
        _write_etc_files(etc, files)
        copied.parent.mkdir(parents=True, exist_ok=True)
        copied.touch()
    return []


def _write_etc_files(etc: Path, files: Mapping[str, str]) -> None:
    for file, text in files.items():
        path = etc / file
        if path.is_symlink():  # the host's resolv.conf often is one
            path.unlink()
        path.write_text(text)
        path.chmod(0o640 if file in _HASHED else 0o644)


def _prepare_container(
    cluster: Any,
    pod_spec: Mapping[str, Any],
    pod: PodSandbox,
    container: Mapping[str, Any],
    env: Mapping[str, str],
) -> _ContainerPlan:
    """What :func:`_spawn_container` needs, taken from the pod and the cluster's objects (on
    the loop: it reads them); the file work is left to :func:`_spawn_container`, in a
    worker thread, so that many pods' containers are set up at once."""
    return _ContainerPlan(
        name=str(container["name"]),
        etc_files=_kubelet_files(pod_spec),
        volumes=mount_arguments(cluster, pod_spec, pod.folder, container, env),
    )


@dataclass(frozen=True)
class _ContainerPlan:
    name: str
    etc_files: Mapping[str, str]
    volumes: list[str]


def _spawn_container(pod: PodSandbox, root: Path, plan: _ContainerPlan) -> ContainerSandbox:
    """Make the container's root and /etc and start its holder process (in any thread: it
    touches no shared state, only this container's folders)."""
    _prepare_root(root)
    prefix = _own_etc(plan.etc_files, pod.folder, plan.name, root)
    volumes = plan.volumes
    bwrap = _tool("bwrap") or "bwrap"
    # Its own PID namespace, whose init is the holder's: see _INIT.
    pid = ["--pidns", str(pod.pid_fd)] if pod.share_pid else ["--unshare-pid", "--as-pid-1"]
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        # bwrap enters (or makes) the PID namespace itself: entered by the spawning thread too,
        # bwrap hangs.
        with entered_namespaces(pod.namespace_fds):
            holder = subprocess.Popen(
                [
                    *prefix,
                    bwrap,
                    "--die-with-parent",
                    "--bind",
                    str(root),
                    "/",
                    *_system_binds_into(root),
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    *volumes,
                    "--info-fd",
                    str(write),
                    *pid,
                    "--",
                    # Its first line tells that the root is ready (bwrap writes its info
                    # before that).
                    *_INIT,
                ],
                stdin=subprocess.DEVNULL,
                stdout=ready_write,
                stderr=subprocess.PIPE,
                pass_fds=(write, pod.pid_fd) if pod.share_pid else (write,),
                cwd="/",
                # A group of its own, killed with the pod sandboxes when the sandbox stops.
                start_new_session=True,
            )
        own_group(holder.pid)
        os.close(write)
        os.close(ready_write)
        write = ready_write = -1
        try:
            info = _read_info(read)
            os.read(ready_read, 1)
        except BaseException:
            _kill(holder)  # closes its stderr too
            raise
    finally:
        for fd in (read, write, ready_read, ready_write):
            if fd >= 0:
                os.close(fd)
    child = int(info.get("child-pid", 0))
    if not child or holder.poll() is not None:
        _signal_kill(holder)
        problem = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
        _reap(holder)
        raise OSError(f"the container's holder process did not start: {problem[-300:]}")
    if holder.stderr is not None:
        holder.stderr.close()  # only needed to say why a start failed
    try:
        pid_fd = os.open(f"/proc/{child}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        _kill(holder)
        raise
    # bwrap runs in the host's PID namespace, so it reports the holder's pid there.
    return ContainerSandbox(holder=holder, proc=f"/proc/{child}", pid_fd=pid_fd)


# The threads that start (and reap) pod sandboxes: at most POOL_SIZE per running sandbox,
# named POOL_THREAD_PREFIX + "_N", kept while it runs and ended when it stops. A container's
# start is mostly waiting (for bubblewrap's processes and the kernel's mount work, hundreds
# of milliseconds on a busy machine for a few of CPU), so many run at once: with 1,000 pods
# starting their main processes, 16 threads did so in 34 s where 4 took 52 s (2 cores).
POOL_SIZE = 16
POOL_THREAD_PREFIX = "podmagic-pod-sandboxes"


class PodSandboxes:
    """The pod sandboxes of one cluster, made at first need and ended with their pods.

    Starting a pod's or a container's processes waits for bubblewrap to set up namespaces
    and mounts (tens of milliseconds, more on a busy machine), so the event loop hands that
    to worker threads of its own (:meth:`acontainer`): other requests go on being served,
    and many pods start at once. The threads live as long as the sandboxes, because
    ``--die-with-parent`` ties each bubblewrap process to the thread that started it.
    """

    def __init__(self, cluster: Any, exists: Callable[[str, str, str], bool]) -> None:
        self._cluster = cluster
        self._exists = exists
        self._pods: dict[tuple[str, str], tuple[str, PodSandbox]] = {}
        # Starts under way (a pod: (namespace, name); a container: (namespace, name, container)).
        self._starting: dict[tuple[str, ...], asyncio.Future[None]] = {}
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=POOL_SIZE, thread_name_prefix=POOL_THREAD_PREFIX
        )

    def _known(self, pod: Mapping[str, Any]) -> tuple[tuple[str, str], str, PodSandbox | None]:
        metadata = pod["metadata"]
        key, uid = (metadata["namespace"], metadata["name"]), str(metadata.get("uid", ""))
        known = self._pods.get(key)
        if known is not None and (
            known[0] != uid  # a new pod under the same name
            or (known[1].pause is not None and known[1].pause.poll() is not None)  # it ended
        ):
            self.end(*key)
            known = None
        return key, uid, known[1] if known is not None else None

    def pod(self, pod: Mapping[str, Any], folder: Path) -> PodSandbox:
        """The sandbox of ``pod`` (folder: the pod's state folder), started at first need."""
        key, uid, sandbox = self._known(pod)
        if sandbox is None:
            sandbox = _start_pod(pod, folder)
            if sandbox.pause is not None:
                own_group(sandbox.pause.pid)
            self._pods[key] = (uid, sandbox)
        return sandbox

    def container(
        self,
        pod: Mapping[str, Any],
        folder: Path,
        container: Mapping[str, Any],
        root: Path,
        env: Mapping[str, str] | None = None,
    ) -> tuple[PodSandbox, ContainerSandbox]:
        """The sandbox of ``pod`` and of its ``container`` (whose root folder is ``root``;
        ``env``: its environment, for ``subPathExpr``), started here and now if need be."""
        sandbox = self.pod(pod, folder)
        name = str(container["name"])
        entered = sandbox.containers.get(name)
        if entered is None or not entered.alive():
            plan = _prepare_container(self._cluster, pod, sandbox, container, env or {})
            entered = self._adopt(sandbox, name, _spawn_container(sandbox, root, plan))
        return sandbox, entered

    def _adopt(self, sandbox: PodSandbox, name: str, entered: ContainerSandbox) -> ContainerSandbox:
        own_group(entered.holder.pid)
        old = sandbox.containers.get(name)
        if old is not None:
            self._reap_later(old.kill())
        sandbox.containers[name] = entered
        return entered

    async def acontainer(
        self,
        pod: Mapping[str, Any],
        folder: Path,
        container: Mapping[str, Any],
        root: Path,
        env: Mapping[str, str] | None = None,
    ) -> tuple[PodSandbox, ContainerSandbox]:
        """:meth:`container` without blocking the event loop while processes start."""
        loop = asyncio.get_running_loop()
        name = str(container["name"])
        while True:
            key, uid, sandbox = self._known(pod)
            if sandbox is not None:
                entered = sandbox.containers.get(name)
                if entered is not None and entered.alive():
                    return sandbox, entered
            starting_key = key if sandbox is None else (*key, name)
            starting = self._starting.get(starting_key)
            if starting is not None:  # another request is starting it: wait, then look again
                await asyncio.shield(starting)
                continue
            done: asyncio.Future[None] = loop.create_future()
            self._starting[starting_key] = done
            try:
                if sandbox is None:
                    started = await loop.run_in_executor(self._executor, _start_pod, pod, folder)
                    if started.pause is not None:
                        own_group(started.pause.pid)
                    if not self._exists(*key, uid):  # deleted while it started
                        self._reap_later(started.kill())
                        raise OSError(f"pod {key[1]} was deleted while it started")
                    self._pods[key] = (uid, started)
                    continue
                plan = _prepare_container(self._cluster, pod, sandbox, container, env or {})
                held = await loop.run_in_executor(
                    self._executor, _spawn_container, sandbox, root, plan
                )
                if self._pods.get(key, (None, None))[1] is not sandbox:  # the pod ended
                    own_group(held.holder.pid)
                    self._reap_later(held.kill())
                    raise OSError(f"pod {key[1]} ended while its container started")
                return sandbox, self._adopt(sandbox, name, held)
            finally:
                del self._starting[starting_key]
                done.set_result(None)

    def _reap_later(self, processes: list[subprocess.Popen[bytes]]) -> None:
        for popen in processes:
            try:
                self._executor.submit(_reap, popen)
            except RuntimeError:  # the sandboxes are closed (close() shut the pool down)
                _reap(popen)

    def find(self, namespace: str, name: str) -> PodSandbox | None:
        """The running sandbox of a pod, if it has one."""
        known = self._pods.get((namespace, name))
        return known[1] if known is not None else None

    def end(self, namespace: str, name: str) -> None:
        """Kill the pod's processes (its pod was deleted); they are reaped in the background."""
        known = self._pods.pop((namespace, name), None)
        if known is not None:
            self._reap_later(known[1].kill())
            forget_pod(self._cluster, known[0])

    def end_gone(self) -> None:
        """End the sandboxes of pods that no longer exist."""
        for (namespace, name), (uid, _) in list(self._pods.items()):
            if not self._exists(namespace, name, uid):
                self.end(namespace, name)

    def close(self) -> None:
        """Kill every pod's processes and wait until they are gone (the sandbox stops)."""
        killed: list[subprocess.Popen[bytes]] = []
        for key in list(self._pods):
            uid, sandbox = self._pods.pop(key)
            killed += sandbox.kill()
            forget_pod(self._cluster, uid)
        for popen in killed:
            _reap(popen)
        self._executor.shutdown(wait=True)


_registry: weakref.WeakKeyDictionary[object, PodSandboxes] = weakref.WeakKeyDictionary()


def pod_sandboxes(cluster: Any) -> PodSandboxes:
    """The :class:`PodSandboxes` of ``cluster`` (a :class:`._state.Cluster`), made at first use.

    A watcher that never queues anything ends a pod's sandbox when the pod is deleted: the
    cluster tells its watchers of every change, and this keeps the cluster unaware of it.
    """
    sandboxes = _registry.get(cluster)
    if sandboxes is None:

        def exists(namespace: str, name: str, uid: str) -> bool:
            entry = cluster.pods.get((namespace, name))
            return entry is not None and str(entry.pod["metadata"].get("uid", "")) == uid

        sandboxes = PodSandboxes(cluster, exists)
        _registry[cluster] = sandboxes
        from ._state import Watcher

        def on_change(pod: dict[str, Any]) -> bool:
            if "deletionTimestamp" in pod["metadata"]:
                sandboxes.end_gone()
            return False

        cluster.watchers.add(Watcher(namespace=None, matches=on_change))
    return sandboxes


def close_pod_sandboxes(cluster: Any) -> None:
    """Kill the processes of every pod of ``cluster`` (the sandbox stops)."""
    sandboxes = _registry.pop(cluster, None)
    if sandboxes is not None:
        sandboxes.close()


def _pod_folder(cluster: Any, namespace: str, name: str) -> Path:
    return Path(cluster.state_dir) / "pods" / namespace / name


def container_isolation(
    cluster: Any, entry: Any, container: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Isolation | None:
    """Where a process of ``container`` of pod ``entry`` runs: None for a plain host process.

    Makes the pod's and the container's sandboxes at first need; ``cluster.working_dir``
    has made (and checked) the working folder inside the container's root already.
    """
    if isolation_problem() is not None:
        return None
    from ._validation import normalised_working_dir

    namespace, name = entry.namespace, entry.name
    root = cluster.container_root(namespace, name, container["name"])
    folder = _pod_folder(cluster, namespace, name)
    pod, held = pod_sandboxes(cluster).container(entry.pod, folder, container, root, env)
    return held.isolation(pod, normalised_working_dir(container.get("workingDir")))


def container_ended(cluster: Any, namespace: str, name: str, container: str) -> bool:
    """Whether the container's namespaces are gone (its processes ended since a process was
    placed in it): then nothing can enter it until it starts again, which the next
    :func:`acontainer_placement` does."""
    pod = pod_sandboxes(cluster).find(namespace, name) if isolation_problem() is None else None
    held = pod.containers.get(container) if pod is not None else None
    return held is not None and not held.alive()


def container_placement(
    cluster: Any, entry: Any, container: Mapping[str, Any], env: MutableMapping[str, str]
) -> tuple[Isolation | None, Path]:
    """Where any process of ``container`` (an exec, its main process) runs.

    Returns the :class:`._runner.Isolation` for :class:`._runner.ProcessSpec` (None: a plain
    host process) and the ``cwd`` to give it: the working folder inside the container, or
    its folder on the host. For an isolated container ``env["HOME"]`` becomes ``/root``, as
    in a container running as root. Raises :class:`._state.ManifestError` (a ``workingDir``
    leading out of the container; a volume that cannot be set up, in the kubelet's words).
    """
    workdir = cluster.working_dir(entry, container)
    isolation = container_isolation(cluster, entry, container, env)
    if isolation is None:
        return None, workdir
    from ._validation import normalised_working_dir

    env["HOME"] = "/root"
    return isolation, Path(normalised_working_dir(container.get("workingDir")))


async def acontainer_placement(
    cluster: Any, entry: Any, container: Mapping[str, Any], env: MutableMapping[str, str]
) -> tuple[Isolation | None, Path]:
    """:func:`container_placement` for code on the event loop: the pod's and container's
    processes start in worker threads, so the loop goes on serving meanwhile. Spawn right
    after it returns (no ``await`` between): the namespaces it names stay open until then."""
    workdir = cluster.working_dir(entry, container)
    if isolation_problem() is not None:
        return None, workdir
    from ._validation import normalised_working_dir

    namespace, name = entry.namespace, entry.name
    root = cluster.container_root(namespace, name, container["name"])
    folder = _pod_folder(cluster, namespace, name)
    pod, held = await pod_sandboxes(cluster).acontainer(entry.pod, folder, container, root, env)
    env["HOME"] = "/root"
    cwd = normalised_working_dir(container.get("workingDir"))
    return held.isolation(pod, cwd), Path(cwd)


def pod_socket(
    cluster: Any,
    namespace: str,
    name: str,
    family: int = socket.AF_INET,
    kind: int = socket.SOCK_STREAM,
) -> socket.socket | None:
    """A new socket inside a pod's network namespace (connect it to ``127.0.0.1:PORT`` to
    reach the pod's port, as port-forward does); None when pods are not isolated (then the
    pod's ports are this host's) or there is no such pod. A socket keeps the namespace it
    was made in, so only its creation needs the namespace entered."""
    if isolation_problem() is not None:
        return None
    entry = cluster.pods.get((namespace, name))
    if entry is None:
        return None
    pod = pod_sandboxes(cluster).pod(entry.pod, _pod_folder(cluster, namespace, name))
    with entered_namespaces(pod.namespace_fds[:1]):
        return socket.socket(family, kind)
