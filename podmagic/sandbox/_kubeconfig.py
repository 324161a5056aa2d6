"""Writing the kubeconfig that points clients at a running sandbox, and removing it again.

The file is written atomically (temporary file in the same folder, then a hard link or
``os.replace``) so a reader polling for it never sees half a file. The sandbox never
overwrites or deletes a file it did not write:

* ``~/.kube/config`` and every file listed in ``$KUBECONFIG`` (kubectl's own configs) are
  refused, whether they exist or not;
* any other existing path is refused unless it is a kubeconfig a sandbox wrote whose writer is
  no longer running — a file left by a sandbox that was killed; that one is replaced. Its first
  line is :data:`MARKER`, with the writer's pid and the SHA-256 of the rest of the file: a file
  edited since (a comment added, a value changed) no longer matches it and is refused, as stop
  keeps it;
* at stop, the file is removed only if it still holds exactly what the sandbox wrote.

Folders missing on the way to the file are made only once the path is accepted, and removed
again (each only if empty) when the file is removed or the write is refused.

Refusals raise :class:`KubeconfigPathError`, one line that says what to do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "CONTEXT_NAME",
    "MARKER",
    "MAX_CONTEXTS",
    "KubeconfigPathError",
    "WrittenKubeconfig",
    "build_kubeconfig",
    "check_kubeconfig_path",
    "combine_kubeconfigs",
    "context_name",
    "write_kubeconfig",
]

CONTEXT_NAME = "podmagic-sandbox"

#: The most contexts one sandbox serves (each its own API server, loop thread and pods).
MAX_CONTEXTS = 16


def context_name(index: int) -> str:
    """The name of a sandbox's ``index``-th context (from 1): ``podmagic-sandbox`` for the
    first, as always, then ``podmagic-sandbox-2``, ``podmagic-sandbox-3``, … so that the glob
    ``podmagic-sandbox*`` names them all."""
    return CONTEXT_NAME if index == 1 else f"{CONTEXT_NAME}-{index}"


#: The first line of every kubeconfig the sandbox writes; ``{pid}`` is the writing process,
#: ``{sha256}`` the hex SHA-256 of the rest of the file (what it wrote after this line).
MARKER = (
    "# podmagic-sandbox kubeconfig, pid {pid}: written by a podmagic sandbox, removed at stop"
    " (sha256 {sha256})"
)
_MARKER_LINE = re.compile(
    r"# podmagic-sandbox kubeconfig, pid ([1-9][0-9]{0,9}): written by a podmagic sandbox, "
    r"removed at stop \(sha256 ([0-9a-f]{64})\)\n"
)
#: A sandbox's kubeconfig is a few KiB (the CA certificate is the bulk): anything larger is not.
_MAX_OWN_SIZE = 64 * 1024


class KubeconfigPathError(ValueError):
    """The sandbox must not write its kubeconfig to this path (it is, or may be, someone's).

    ``reason`` says why without the remedy, so each entry point adds it in its own words
    (``kubeconfig=`` from Python, ``--kubeconfig`` on the command line).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}; pass another kubeconfig= path, or none for a temporary one")

    def _render_traceback_(self) -> list[str]:
        # IPython shows an exception through this hook: the line says what to do, a traceback
        # into the sandbox's internals would only bury it.
        return [f"{type(self).__name__}: {self}"]


def build_kubeconfig(
    server: str,
    *,
    token: str | None,
    ca_pem: bytes | None,
    namespace: str = "default",
    context: str = CONTEXT_NAME,
) -> dict[str, Any]:
    """The kubeconfig document for one sandbox, as a dict."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }


def combine_kubeconfigs(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One kubeconfig holding the clusters, users and contexts of every document, in order;
    the current context is the first document's."""
    combined = dict(documents[0])
    for section in ("clusters", "users", "contexts"):
        combined[section] = [entry for document in documents for entry in document[section]]
    return combined


def _kubectls_own() -> list[Path]:
    """The files kubectl reads as the user's config: ``$KUBECONFIG``'s list, ``~/.kube/config``."""
    listed = [entry for entry in os.environ.get("KUBECONFIG", "").split(os.pathsep) if entry]
    return [Path(entry).expanduser().resolve() for entry in listed] + [
        (Path.home() / ".kube" / "config").resolve()
    ]


def _writer_pid(path: Path) -> int | None:
    """The pid in the marker line when ``path`` is a sandbox's kubeconfig, else ``None``.

    Only a file a sandbox wrote and nobody changed since qualifies: a regular file, small,
    starting with the marker whose hash matches the rest of the file byte for byte (so any
    edit, even a comment, makes it someone's, as :meth:`WrittenKubeconfig.remove` holds), and
    holding only the sandbox's own contexts (``podmagic-sandbox``, then ``podmagic-sandbox-2``…).
    """
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_OWN_SIZE:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    marker = _MARKER_LINE.match(text)
    if marker is None:
        return None
    rest = text[marker.end() :]
    if hashlib.sha256(rest.encode("utf-8")).hexdigest() != marker.group(2):
        return None
    try:
        document = yaml.safe_load(rest)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict):
        return None
    for section in ("clusters", "users", "contexts"):
        entries = document.get(section)
        if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_CONTEXTS:
            return None
        names = [entry.get("name") if isinstance(entry, dict) else None for entry in entries]
        if names != [context_name(index) for index in range(1, len(entries) + 1)]:
            return None
    if document.get("current-context") != CONTEXT_NAME:
        return None
    return int(marker.group(1))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    except OverflowError:  # not a pid this system can have
        return False
    return True


def check_kubeconfig_path(path: str | os.PathLike[str]) -> tuple[Path, bool]:
    """Where the kubeconfig goes (absolute) and whether a stale sandbox kubeconfig is there.

    Raises :class:`KubeconfigPathError` for kubectl's own configs and for an existing file
    that is not a kubeconfig left by a sandbox that no longer runs.
    """
    target = Path(path).expanduser().absolute()
    if ".." in target.parts:
        # "sub/../real.txt" names real.txt once sub exists; checked as written, a missing sub
        # would hide that real.txt exists. The folder resolved, as the system will, says where.
        target = target.parent.resolve() / target.name
    shown = str(path)
    resolved = target.resolve()
    if resolved == (Path.home() / ".kube" / "config").resolve():
        raise KubeconfigPathError("refusing to overwrite your own ~/.kube/config")
    if resolved in _kubectls_own():
        raise KubeconfigPathError(
            f"refusing to write the sandbox's kubeconfig to {shown}: it is listed in "
            "$KUBECONFIG, so kubectl reads it as your own config"
        )
    if not os.path.lexists(target):
        return target, False
    pid = _writer_pid(target)
    if pid is None:
        raise KubeconfigPathError(
            f"refusing to overwrite {shown}: it exists and the sandbox did not write it"
        )
    if _running(pid):
        raise KubeconfigPathError(
            f"refusing to overwrite {shown}: it is the kubeconfig of a sandbox in process {pid}, "
            "which still runs (stop that sandbox, or delete the file if none is serving)"
        )
    return target, True


def _make_folders(folder: Path) -> tuple[Path, ...]:
    """Make ``folder`` and its missing parents; the ones made here, outermost first."""
    missing: list[Path] = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    made: list[Path] = []
    try:
        for each in reversed(missing):
            try:
                each.mkdir()
            except FileExistsError:
                continue  # made by someone else meanwhile: theirs, never removed
            made.append(each)
    except BaseException:
        _remove_folders(tuple(made))
        raise
    return tuple(made)


def _remove_folders(made: tuple[Path, ...]) -> None:
    """Remove the folders :func:`_make_folders` made, innermost first, each only if empty."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            return  # not empty (someone's file), or gone: its parents are not empty either


@dataclass(frozen=True)
class WrittenKubeconfig:
    """A kubeconfig the sandbox wrote: where, exactly what (to remove only that), and the
    folders made for it (removed with it, each only if empty)."""

    path: Path
    content: bytes
    folders: tuple[Path, ...] = ()

    def remove(self) -> bool:
        """Delete the file if it still holds what was written; whether it was deleted."""
        try:
            with self.path.open("rb") as handle:
                current = handle.read(len(self.content) + 1)
        except OSError:
            current = None
        removed = current == self.content  # else changed or replaced: no longer the sandbox's
        if removed:
            self.path.unlink(missing_ok=True)
        _remove_folders(self.folders)
        return removed


def write_kubeconfig(path: str | os.PathLike[str], document: dict[str, Any]) -> WrittenKubeconfig:
    """Write ``document`` to ``path`` atomically with mode 0600, never over someone's file.

    Raises :class:`KubeconfigPathError` as :func:`check_kubeconfig_path` does, also when the
    file appears while it is being written.
    """
    target, stale = check_kubeconfig_path(path)
    body = yaml.safe_dump(document, sort_keys=False)
    marker = MARKER.format(pid=os.getpid(), sha256=hashlib.sha256(body.encode("utf-8")).hexdigest())
    content = (marker + "\n" + body).encode("utf-8")
    folders = _make_folders(target.parent)
    try:
        _write_new(path, target, content, replace=stale)
    except BaseException:
        _remove_folders(folders)
        raise
    return WrittenKubeconfig(target, content, folders)


def _write_new(
    shown: str | os.PathLike[str], target: Path, content: bytes, *, replace: bool
) -> None:
    """Put ``content`` at ``target`` whole: over it when ``replace``, else only if still absent."""
    fd, tmp_name = tempfile.mkstemp(prefix=".kubeconfig-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp_name, target)
        else:
            # A hard link appears whole, like os.replace, but fails instead of replacing a
            # file that appeared since the check.
            try:
                try:
                    os.link(tmp_name, target)
                except FileExistsError:
                    raise
                except OSError:
                    # A filesystem without hard links: create it exclusively, then fill it.
                    created = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(created, "wb") as handle:
                        handle.write(content)
            except FileExistsError:
                raise KubeconfigPathError(
                    f"refusing to overwrite {shown}: it exists and the sandbox did not write it"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
