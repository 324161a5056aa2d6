"""Pods in their own Linux namespaces, the way a container runtime isolates them.

Each pod gets a *pod sandbox* process (bubblewrap running ``sleep``, like the kubelet's pause
container) that holds the pod's PID, UTS (host name = pod name), IPC and network (loopback
only) namespaces. Each container gets a *holder* process started inside those namespaces by a
second bubblewrap, with a mount namespace of its own whose root is the container's folder
under the sandbox's state folder: ``/tmp``, ``/var``, ``/root``, ``/run``, the working folder
and every other path are the container's own, while the host's system folders (``/usr``,
``/bin``, ``/lib*``, ``/sbin``) and ``/etc`` are mounted read-only, with ``/etc/hosts``,
``/etc/hostname`` and ``/etc/resolv.conf`` written per pod as the kubelet writes them.

An exec joins the container like ``runc exec``: the event loop's thread enters the pod's
namespaces just for the spawn (as :mod:`._runner` already does for the host name), so the
process is born in the pod's PID namespace, and ``nsenter`` puts it into the container's mount
namespace and root without a fork of its own. Killing the pod sandbox process ends the PID
namespace, and with it every process of the pod.

Where this is not possible (not Linux, no ``bwrap``/``nsenter``, no namespaces for this user)
the sandbox runs pods as plain processes and says so: :func:`isolation_mode`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._runner import Isolation, forget_group, own_group

__all__ = [
    "ISOLATION_VARIABLE",
    "ContainerSandbox",
    "PodSandbox",
    "PodSandboxes",
    "container_isolation",
    "isolation_mode",
    "isolation_problem",
    "isolation_warning",
    "pod_sandboxes",
]

log = logging.getLogger(__name__)

#: Set to ``namespaces`` to give each pod its own namespaces (``none``: plain processes).
ISOLATION_VARIABLE = "PODMAGIC_SANDBOX_ISOLATION"

# The pod's namespaces an exec joins, in the order they are entered (pid last: it only
# changes where children are born).
_POD_NAMESPACES = ("net", "uts", "ipc", "pid")
# Host folders every container sees read-only; on merged-/usr systems the ones that are
# symlinks to usr/... become the same symlinks in the container's root.
_SYSTEM_FOLDERS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# The container's own folders, made in its root before it starts (mode as on a fresh system).
_OWN_FOLDERS = {"tmp": 0o1777, "var": 0o755, "var/tmp": 0o1777, "root": 0o700, "run": 0o755}
_IDLE = ("sleep", "infinity")


def _tool(name: str) -> str | None:
    return shutil.which(name, path="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """Why pods cannot get namespaces here (None: they can); tried once per process."""
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    bwrap, nsenter = _tool("bwrap"), _tool("nsenter")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed; on Debian: apt-get install bubblewrap"
    if nsenter is None:
        return "nsenter (util-linux) is not installed"
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
        return f"bwrap cannot make namespaces here ({reason[-1] if reason else result.returncode})"
    return None


def isolation_problem() -> str | None:
    """Why pods run as plain processes (None: each pod gets its own namespaces)."""
    if os.environ.get(ISOLATION_VARIABLE, "").strip().lower() != "namespaces":
        return f"turned on by {ISOLATION_VARIABLE}=namespaces"
    return _probe()


def isolation_warning() -> str | None:
    """What to say at start when pods were to be isolated and cannot be (None: all is well)."""
    if os.environ.get(ISOLATION_VARIABLE, "").strip().lower() != "namespaces":
        return None
    problem = _probe()
    if problem is None:
        return None
    return f"sandbox pods are NOT isolated (they see this host's files and processes): {problem}"


def isolation_mode() -> str:
    """``"namespaces"``, or ``"none (<why>)"`` when pods run as plain host processes."""
    problem = isolation_problem()
    return "namespaces" if problem is None else f"none ({problem})"


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


def _kubelet_hosts(pod: Mapping[str, Any], hostname: str) -> str:
    """``/etc/hosts`` as the kubelet writes it for a pod without hostNetwork."""
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
        lines.append(f"{pod_ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def _kubelet_resolv_conf(namespace: str) -> str:
    return (
        f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\noptions ndots:5\n"
    )


def _read_info(fd: int) -> dict[str, Any]:
    """bwrap's ``--info-fd`` JSON (read to EOF: bwrap closes it once written)."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    info: dict[str, Any] = json.loads(data or b"{}")
    return info


def _kill(popen: subprocess.Popen[bytes]) -> None:
    forget_group(popen.pid)
    for send in (os.killpg, os.kill):
        try:
            send(popen.pid, signal.SIGKILL)
        except OSError:
            pass
    # Reaped by the subprocess module's own bookkeeping once it has exited.
    try:
        popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("pod sandbox process %d did not end after SIGKILL", popen.pid)


@dataclass
class ContainerSandbox:
    """One container: its holder process and the way an exec enters it."""

    holder: subprocess.Popen[bytes]
    proc: str  # /proc/<holder's pid>: the holder, seen from the host

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
        )
        return Isolation(namespaces=pod.namespace_fds, root=self.root, prefix=prefix)


@dataclass
class PodSandbox:
    """One pod's namespaces (held by its pause process) and its containers."""

    pause: subprocess.Popen[bytes]
    pause_pid: int  # host pid of the PID namespace's first process
    namespace_fds: tuple[int, ...]
    folder: Path
    containers: dict[str, ContainerSandbox] = field(default_factory=dict)

    def close(self) -> None:
        """Kill every process of the pod (ending the PID namespace ends them all)."""
        _kill(self.pause)
        for container in self.containers.values():
            _kill(container.holder)
        for fd in self.namespace_fds:
            os.close(fd)
        self.containers.clear()


def _start_pod(pod: Mapping[str, Any], folder: Path) -> PodSandbox:
    metadata = pod["metadata"]
    hostname = _hostname(metadata["name"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".hosts").write_text(_kubelet_hosts(pod, hostname))
    (folder / ".hostname").write_text(hostname + "\n")
    (folder / ".resolv.conf").write_text(_kubelet_resolv_conf(metadata["namespace"]))
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
        info = _read_info(read)
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
        for kind in _POD_NAMESPACES:
            fds.append(os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC))
    except OSError:
        for fd in fds:
            os.close(fd)
        _kill(pause)
        raise
    return PodSandbox(pause=pause, pause_pid=pid, namespace_fds=tuple(fds), folder=folder)


def _hostname(name: str) -> str:
    """A pod name cut to a host name the way the kubelet does (63 bytes, no "-." end)."""
    encoded = name.encode()
    return name if len(encoded) <= 63 else encoded[:63].decode(errors="ignore").rstrip("-.")


def _prepare_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, mode in _OWN_FOLDERS.items():
        folder = root / name
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(mode)


def _volume_binds(
    pod: PodSandbox, spec: Mapping[str, Any], container: Mapping[str, Any]
) -> list[str]:
    """bwrap arguments mounting the container's ``volumeMounts``.

    ``emptyDir`` is a folder of the pod's, shared by the containers that mount it;
    ``hostPath`` is the host's folder or file. Other kinds are not mounted (yet).
    """
    volumes = {volume.get("name"): volume for volume in spec.get("volumes") or []}
    arguments: list[str] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount.get("name")) or {}
        target = str(mount.get("mountPath") or "")
        if not target.startswith("/") or ".." in target.split("/"):
            continue
        if "emptyDir" in volume:
            source = pod.folder / ".volumes" / str(volume["name"])
            source.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in volume:
            host = volume["hostPath"] or {}
            source = Path(str(host.get("path") or "/nonexistent"))
            if host.get("type") == "DirectoryOrCreate":
                source.mkdir(parents=True, exist_ok=True)
        else:
            continue
        subpath = str(mount.get("subPath") or "")
        if subpath and ".." not in subpath.split("/"):
            source = source / subpath.lstrip("/")
        read_only = bool(mount.get("readOnly"))
        arguments += ["--ro-bind" if read_only else "--bind", str(source), target]
    return arguments


def _start_container(
    pod: PodSandbox, root: Path, spec: Mapping[str, Any], container: Mapping[str, Any]
) -> ContainerSandbox:
    from ._runner import entered_namespaces

    _prepare_root(root)
    bwrap = _tool("bwrap") or "bwrap"
    etc = ["--ro-bind", "/etc", "/etc"]
    for name in ("hosts", "hostname", "resolv.conf"):
        target = Path("/etc", name)
        # Only over a plain file: a bind mount cannot be made in the read-only /etc.
        if target.is_file() and not target.is_symlink():
            etc += ["--bind", str(pod.folder / f".{name}"), str(target)]
    pid_fd = pod.namespace_fds[_POD_NAMESPACES.index("pid")]
    read, write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        # Not the PID namespace: bwrap's --pidns enters it (entered twice, bwrap hangs).
        with entered_namespaces(pod.namespace_fds[: _POD_NAMESPACES.index("pid")]):
            holder = subprocess.Popen(
                [
                    bwrap,
                    "--bind",
                    str(root),
                    "/",
                    *_system_binds(),
                    *etc,
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    *_volume_binds(pod, spec, container),
                    "--info-fd",
                    str(write),
                    # Without a PID namespace of its own bwrap would mount the host's /proc.
                    "--pidns",
                    str(pid_fd),
                    "--",
                    # Tells that the root is ready (bwrap writes its info before that).
                    "sh",
                    "-c",
                    'echo; exec "$@" >/dev/null',
                    "sh",
                    *_IDLE,
                ],
                stdin=subprocess.DEVNULL,
                stdout=ready_write,
                stderr=subprocess.DEVNULL,
                pass_fds=(write, pid_fd),
                cwd="/",
            )
        os.close(write)
        os.close(ready_write)
        write = ready_write = -1
        info = _read_info(read)
        os.read(ready_read, 1)
    finally:
        for fd in (read, write, ready_read, ready_write):
            if fd >= 0:
                os.close(fd)
    pid = int(info.get("child-pid", 0))
    if not pid or holder.poll() is not None:
        _kill(holder)
        raise OSError("the container's holder process did not start")
    # bwrap runs in the host's PID namespace, so it reports the holder's pid there.
    return ContainerSandbox(holder=holder, proc=f"/proc/{pid}")


class PodSandboxes:
    """The pod sandboxes of one cluster, made at first need and ended with their pods."""

    def __init__(self, exists: Callable[[str, str, str], bool]) -> None:
        self._exists = exists
        self._pods: dict[tuple[str, str], tuple[str, PodSandbox]] = {}

    def container(
        self, pod: Mapping[str, Any], folder: Path, container: Mapping[str, Any], root: Path
    ) -> tuple[PodSandbox, ContainerSandbox]:
        """The sandbox of ``pod`` (folder: the pod's state folder) and of its ``container``
        (whose root folder is ``root``)."""
        metadata = pod["metadata"]
        key, uid = (metadata["namespace"], metadata["name"]), str(metadata.get("uid", ""))
        known = self._pods.get(key)
        if known is not None and known[0] != uid:  # a new pod under the same name
            self.end(*key)
            known = None
        if known is None:
            known = (uid, _start_pod(pod, folder))
            self._pods[key] = known
        sandbox = known[1]
        name = str(container["name"])
        entered = sandbox.containers.get(name)
        if entered is None or entered.holder.poll() is not None:
            entered = _start_container(sandbox, root, pod.get("spec") or {}, container)
            sandbox.containers[name] = entered
        return sandbox, entered

    def end(self, namespace: str, name: str) -> None:
        """Kill the pod's processes (its pod was deleted)."""
        known = self._pods.pop((namespace, name), None)
        if known is not None:
            known[1].close()

    def end_gone(self) -> None:
        """End the sandboxes of pods that no longer exist."""
        for (namespace, name), (uid, _) in list(self._pods.items()):
            if not self._exists(namespace, name, uid):
                self.end(namespace, name)

    def close(self) -> None:
        for key in list(self._pods):
            self.end(*key)


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

        sandboxes = PodSandboxes(exists)
        _registry[cluster] = sandboxes
        from ._state import Watcher

        def on_change(pod: dict[str, Any]) -> bool:
            if "deletionTimestamp" in pod["metadata"]:
                sandboxes.end_gone()
            return False

        cluster.watchers.add(Watcher(namespace=None, matches=on_change))
    return sandboxes


def container_isolation(cluster: Any, entry: Any, container: Mapping[str, Any]) -> Isolation | None:
    """Where an exec in ``container`` of pod ``entry`` runs: None for a plain host process.

    Makes the pod's and the container's sandboxes at first need; ``cluster.working_dir``
    has made (and checked) the working folder inside the container's root already.
    """
    if isolation_problem() is not None:
        return None
    from ._validation import normalised_working_dir

    namespace, name = entry.namespace, entry.name
    root = cluster.container_root(namespace, name, container["name"])
    folder = cluster.state_dir / "pods" / namespace / name
    pod, held = pod_sandboxes(cluster).container(entry.pod, folder, container, root)
    return held.isolation(pod, normalised_working_dir(container.get("workingDir")))
