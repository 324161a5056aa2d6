"""Files across pods: copy a local file or folder to every pod, or fetch one from every pod.

As ``kubectl cp`` does, the bytes travel as a tar archive through an exec: ``tar cf -`` in the
pod to fetch, ``tar xf -`` to send (a pod without ``tar`` is that pod's error, saying so).
A fetched archive streams to a temporary file beside the destination as it arrives (the exec
keeps none of it in memory), then is unpacked member by member into
``LOCAL_DIR/<context>/<namespace>/<pod>/``, file contents copied in chunks and hashed on the
way. Those three names come from the kubeconfig and the cluster, not from the user's line: each
is percent-encoded into one folder name (:func:`path_part`), so that a context named ``../x``
or ``/tmp/x`` stays inside ``LOCAL_DIR``. A pod's archive that cannot be written locally
(a member's name too long, a full disk: any ``OSError``) is that pod's error; the other pods'
copies stand. Unpacking refuses what could write outside that folder — absolute names, ``..``,
symbolic or hard links that point out of it, devices — and never writes through a link (each
write's real parent folder must lie inside it): the holes ``kubectl cp`` had
(CVE-2018-1002100, CVE-2019-1002101, CVE-2019-11246, CVE-2019-11249) stay closed.

Every file copied is reported with its size and SHA-256 (:class:`CopiedFile`), per pod
(:class:`CopyResult`); ``CopyResults.to_dataframe()`` has one row per file.

The copy's execs feed the live view that shows ``%pod`` runs (``on_event``), as one run
whatever the copy takes (one exec per pod, or one per part of a large archive): the header
says what is copied where, each pod's chip its state, and each pod's lines say how far it
got — bytes received every ``PROGRESS_EVERY``, a part sent, the archive done — never the
archive's bytes themselves. A progress line per pod rather than a bar: the view shows lines
and chips already, and a fetched archive's size is not known before it ends.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, overload

from ._channels import Stream
from ._events import (
    Event,
    EventCallback,
    PodFinished,
    PodOutput,
    PodStarted,
    RunFinished,
    RunStarted,
)
from ._results import ExecStatus, PodResult, PodResults
from ._safe_text import visible_controls

if TYPE_CHECKING:
    import pandas as pd

    from ._client import Cluster
    from ._resolve import PodTarget, Selection

__all__ = [
    "PROGRESS_EVERY",
    "CopiedFile",
    "CopyResult",
    "CopyResults",
    "extract_safely",
    "fetch",
    "path_part",
    "send",
]

_CHUNK = 1024 * 1024
#: An archive larger than this is sent in parts of this size, one exec each, into a staging
#: file in the pod: exec stdin is sent from memory, so this bounds the memory a copy takes.
_PART = 8 * 1024 * 1024
#: The last bytes of tar's stderr kept per pod, to say why it failed.
_STDERR_KEPT = 4096
#: A fetch says how much each pod has sent every time this many more bytes arrived.
PROGRESS_EVERY = 8 * 1024 * 1024
#: The keyword arguments that say where to copy (the rest are the run's own).
_PLACE = ("target", "selector", "namespace", "all_namespaces", "container")
#: The hint when the pod has no tar (exec: not found; sh: exit 127).
_NO_TAR = (
    "no tar in the container (copying goes through tar, as kubectl cp does): "
    "use an image with tar, or copy through a sidecar container that has it (-c NAME)"
)


@dataclass(frozen=True)
class CopiedFile:
    """One regular file copied: its path inside the copy (``/``-separated), bytes, SHA-256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class CopyResult:
    """The copy to or from one container: the files copied, or why it did not happen.

    ``local`` is the local file or folder (for a fetch: the pod's own folder
    ``LOCAL_DIR/<context>/<namespace>/<pod>``); ``refused`` lists the archive members that
    were not written because they would have landed outside it.
    """

    context: str
    namespace: str
    pod: str
    container: str | None
    direction: str
    remote: str
    local: str
    files: tuple[CopiedFile, ...] = ()
    refused: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the copy happened and nothing in it was refused."""
        return self.error is None and not self.refused

    @property
    def size(self) -> int:
        """Bytes copied (the files' contents)."""
        return sum(f.size for f in self.files)


class CopyResults(Sequence[CopyResult]):
    """One :class:`CopyResult` per container: ``ok``, ``failed``, ``to_dataframe()``."""

    def __init__(self, results: Sequence[CopyResult]) -> None:
        self._results = tuple(results)

    @overload
    def __getitem__(self, index: int) -> CopyResult: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CopyResult]: ...
    def __getitem__(self, index: int | slice) -> CopyResult | Sequence[CopyResult]:
        return self._results[index]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[CopyResult]:
        return iter(self._results)

    @property
    def ok(self) -> bool:
        """True when every copy succeeded."""
        return all(r.ok for r in self._results)

    @property
    def failed(self) -> list[CopyResult]:
        """The copies that did not happen or refused part of an archive."""
        return [r for r in self._results if not r.ok]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per file copied (``context, namespace, pod, container, direction, remote,
        local, path, size, sha256, error``); a copy that failed is one row with its error."""
        import pandas as pd

        rows: list[dict[str, Any]] = []
        for r in self._results:
            base = {
                "context": r.context,
                "namespace": r.namespace,
                "pod": r.pod,
                "container": r.container,
                "direction": r.direction,
                "remote": r.remote,
                "local": r.local,
            }
            problem = r.error or (
                "refused (outside the destination): " + ", ".join(r.refused) if r.refused else None
            )
            if not r.files:
                rows.append({**base, "path": None, "size": None, "sha256": None, "error": problem})
            for f in r.files:
                rows.append(
                    {**base, "path": f.path, "size": f.size, "sha256": f.sha256, "error": problem}
                )
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """One line: how many copies, files and bytes; which failed and why."""
        done = [r for r in self._results if r.ok]
        files = sum(len(r.files) for r in self._results)
        size = sum(r.size for r in self._results)
        words = f"{len(done)} of {len(self._results)} copies ok, {files} files, {size:,} bytes"
        for r in self.failed:
            why = r.error or "refused: " + ", ".join(r.refused)
            words += f"; {r.namespace}/{r.pod}: {why}"
        # Errors quote the pod's tar: shown, never obeyed, in a terminal.
        return visible_controls(words)

    def __repr__(self) -> str:
        return f"CopyResults({self.summary()})"


# -- unpacking safely ---------------------------------------------------------------------------


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


#: A folder name's most bytes on common file systems (NAME_MAX), with room to spare.
_PART_MAX = 200


def path_part(name: str) -> str:
    """``name`` (a context, namespace, pod or container name: from a kubeconfig or a cluster,
    not from the user's line) as one folder name that stays where it is put.

    Percent-encoded, as in a URL: ``%``, ``/``, ``\\``, NUL and other control characters
    become ``%XX`` (UTF-8 bytes), ``.`` and ``..`` become ``%2E`` and ``%2E%2E``, an empty
    name ``%``; every other name (every valid Kubernetes name) is kept as it is. A name that
    would be longer than ``_PART_MAX`` bytes keeps its start and ends in ``%~`` and 16 hex
    digits of its SHA-256, so that two long names stay apart. Encoding rather than refusing:
    a kubeconfig may name a context anything, and its pods' files must still come back.
    """
    if name in ("", ".", ".."):
        return name.replace(".", "%2E") or "%"
    encoded = "".join(
        "".join(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
        if char in "%/\\" or not char.isprintable()
        else char
        for char in name
    )
    if len(encoded.encode("utf-8", "surrogatepass")) <= _PART_MAX:
        return encoded
    tag = "%~" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    room = _PART_MAX - len(tag)
    cut = encoded.encode("utf-8", "surrogatepass")[:room].decode("utf-8", "ignore")
    return re.sub(r"%[0-9A-F]?$", "", cut) + tag  # never half of a %XX


def _copy_hashed(source: IO[bytes], target: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class _UnpackError(OSError):
    """A member could not be written locally (a name too long, a full disk, no permission):
    says which and why; ``files`` and ``refused`` are what was done before it."""

    def __init__(self, text: str, files: list[CopiedFile], refused: list[str]) -> None:
        super().__init__(text)
        self.files = files
        self.refused = refused

    def __str__(self) -> str:
        return str(self.args[0])


def extract_safely(archive: IO[bytes], dest: Path) -> tuple[list[CopiedFile], list[str]]:
    """Unpack a tar stream into ``dest`` (made if missing): the files written, with sizes and
    SHA-256, and the member names refused because they would land outside ``dest``
    (absolute, ``..``, links pointing out, writes through a link, special files).

    A member that cannot be written here (``OSError``: a name too long, a full disk) stops
    the unpacking with an ``OSError`` whose one line names the member and why, and whose
    ``files`` and ``refused`` say what was done before it."""
    files: list[CopiedFile] = []
    refused: list[str] = []
    at: list[str] = []  # the member being written, for the message
    try:
        dest.mkdir(parents=True, exist_ok=True)
        return _extract(archive, os.path.realpath(dest), files, refused, at)
    except OSError as problem:
        why = problem.strerror or type(problem).__name__
        name = at[-1] if at else ""
        what = f'"{name if len(name) <= 80 else name[:79] + "…"}"' if name else str(dest)
        raise _UnpackError(
            f"could not write {what} here ({why}); what came before it was kept",
            files,
            refused,
        ) from None


def _extract(
    archive: IO[bytes], root: str, files: list[CopiedFile], refused: list[str], at: list[str]
) -> tuple[list[CopiedFile], list[str]]:
    # "r|": a stream, read once front to back; nothing of it is held but the current block.
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            name = member.name
            at[:] = [name]
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or ".." in parts or not parts:
                if parts:
                    refused.append(name)
                continue
            relative = "/".join(parts)
            target = Path(root, *parts)
            parent = os.path.realpath(target.parent)
            if not _inside(root, parent) or os.path.islink(target):
                refused.append(name)  # a write through a link, or over one
                continue
            if member.isdir():
                if target.exists() and not target.is_dir():
                    refused.append(name)
                    continue
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                Path(parent).mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                size, digest = _copy_hashed(source, target)
                os.chmod(target, member.mode & 0o755 | 0o600)
                files.append(CopiedFile(relative, size, digest))
            elif member.issym():
                link = member.linkname
                pointed = os.path.normpath(os.path.join(parent, link))
                if os.path.isabs(link) or not _inside(root, os.path.realpath(pointed)):
                    refused.append(name)
                    continue
                os.symlink(link, target)
            elif member.islnk():
                # A hard link names another member: only one already written inside.
                linked = Path(root, *[p for p in member.linkname.split("/") if p not in ("", ".")])
                real = os.path.realpath(linked)
                if (
                    ".." in member.linkname.split("/")
                    or not _inside(root, real)
                    or not linked.is_file()
                ):
                    refused.append(name)
                    continue
                shutil.copyfile(real, target)
                with open(target, "rb") as written:
                    size, digest = _copy_hashed_read(written)
                files.append(CopiedFile(relative, size, digest))
            else:
                refused.append(name)  # devices, fifos: never made
    return files, refused


def _copy_hashed_read(source: IO[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


# -- the live view ------------------------------------------------------------------------------

_Key = tuple[str, str, "str | None"]


class _Progress:
    """The events of a copy's execs as the live view shows them: one run, a line per step.

    ``describe`` heads the run; the tar stream (stdout of a fetch) never reaches the view,
    only how much of it arrived; tar's stderr does. A copy made of several runs (a large
    archive sent in parts: ``steps`` > 1) shows as one: one header, one start per pod, a
    line per part, and the pod's end once its last step is done or a step failed.
    """

    def __init__(self, caller: EventCallback | None, describe: str, *, steps: int = 1) -> None:
        self.caller = caller
        self.describe = describe
        self.steps = steps
        #: The step (run) under way, from 1.
        self.step = 1
        self.targets: dict[_Key, PodTarget] = {}
        self.received: dict[_Key, int] = {}
        self.started_run = False
        #: What a pod's line says when its exec (the last step's) ends well.
        self.done_line: Callable[[_Key], str] = lambda key: "done"

    def _tell(self, target: PodTarget, text: str) -> None:
        if self.caller is not None:
            self.caller(PodOutput(target, Stream.STDOUT, text.encode() + b"\n"))

    def next_step(self) -> None:
        """The step under way is done: the next run (part) begins."""
        self.step += 1

    def received_bytes(self, target: PodTarget, data: bytes) -> None:
        """A fetch's archive bytes arrived: a line each time another PROGRESS_EVERY did."""
        key = (target.namespace, target.pod, target.container)
        before = self.received.get(key, 0)
        after = self.received[key] = before + len(data)
        if after // PROGRESS_EVERY > before // PROGRESS_EVERY:
            self._tell(target, f"{_size(after)} received")

    def __call__(self, event: Event) -> None:
        if self.caller is None:
            return
        if isinstance(event, RunStarted):
            if not self.started_run:
                self.started_run = True
                self.caller(replace(event, command=self.describe))
        elif isinstance(event, PodStarted):
            started: _Key = (event.target.namespace, event.target.pod, event.target.container)
            if started not in self.targets:
                self.targets[started] = event.target
                self.caller(event)
        elif isinstance(event, PodFinished):
            result = event.result
            key: _Key = (result.namespace, result.pod, result.container)
            target = self.targets.get(key)
            last = self.step >= self.steps
            if result.status is ExecStatus.OK and target is not None:
                said = self.done_line(key) if last else f"part {self.step} of {self.steps - 1} sent"
                self._tell(target, said)
            if last or result.status is not ExecStatus.OK:
                self.caller(event)
        elif isinstance(event, RunFinished):
            if self.steps == 1:
                self.caller(event)
        else:
            self.caller(event)

    def finished(self, results: PodResults) -> None:
        """The end of a copy made of several runs."""
        if self.caller is not None and self.steps > 1:
            self.caller(RunFinished(results))


def _size(count: int) -> str:
    """Bytes in words for a progress line: ``812 bytes``, ``16.0 MiB``."""
    if count < 1024 * 1024:
        return f"{count:,} bytes"
    return f"{count / (1024 * 1024):,.1f} MiB"


# -- the two directions -------------------------------------------------------------------------


def _tar_error(result: PodResult, stderr: bytes | None = None) -> str | None:
    """Why a tar exec did not give a whole archive, in words; None when it did. ``stderr``:
    what the exec wrote there, when the run kept none of it."""
    if result.status is ExecStatus.OK:
        return None
    if stderr is None:
        stderr = result.stderr
    text = f"{result.error or ''} {stderr.decode('utf-8', 'replace')}"
    if result.exit_code == 127 or "executable file not found" in text or "tar: not found" in text:
        return _NO_TAR
    if result.error:
        return result.error
    detail = stderr.decode("utf-8", "replace").strip().splitlines()
    # The first line says why (GNU tar ends with "Exiting with failure status ...").
    return f"tar exited {result.exit_code}" + (f": {detail[0]}" if detail else "")


def fetch(
    cluster: Cluster, remote: str, local_dir: str | os.PathLike[str], **run: Any
) -> CopyResults:
    """Fetch ``remote`` (a file or folder) from every pod ``run`` selects into
    ``local_dir/<context>/<namespace>/<pod>/`` (each name as :func:`path_part` encodes it)."""
    if not remote or not remote.strip():
        raise ValueError("the path in the pod is empty: write TARGET:/path/in/pod")
    base = Path(local_dir)
    base.mkdir(parents=True, exist_ok=True)
    clean = posixpath.normpath(remote)
    folder, name = posixpath.split(clean.rstrip("/") or "/")
    spools: dict[tuple[str, str, str], IO[bytes]] = {}
    spool_dir = tempfile.mkdtemp(prefix=".podmagic-cp-", dir=base)
    progress = _Progress(
        run.pop("on_event", None),
        f"copy {remote} from each pod into {base}{os.sep}<context>{os.sep}<namespace>{os.sep}<pod>",
    )
    progress.done_line = lambda key: (
        f"tar archive of {progress.received.get(key, 0):,} bytes received"
    )

    # The run keeps no output (the archive can be large); tar's complaints are kept here.
    errors: dict[tuple[str, str, str], bytearray] = {}
    #: Pods whose archive could not be kept locally while it arrived, and why.
    unkept: dict[tuple[str, str, str], str] = {}

    def on_event(event: Event) -> None:
        if isinstance(event, PodOutput) and event.stream is Stream.STDERR:
            key = (event.target.namespace, event.target.pod, event.target.container)
            said = errors.setdefault(key, bytearray())
            said += event.data
            del said[:-_STDERR_KEPT]
            progress(event)  # tar's complaints show in the live view
        elif isinstance(event, PodOutput):
            key = (event.target.namespace, event.target.pod, event.target.container)
            if key in unkept:
                return
            try:
                spool = spools.get(key)
                if spool is None:
                    spool = spools[key] = tempfile.TemporaryFile(dir=spool_dir)  # noqa: SIM115 - closed in finally
                spool.write(event.data)
            except OSError as problem:
                # A full disk: this pod's archive is lost, the other pods' go on.
                unkept[key] = problem.strerror or type(problem).__name__
                return
            progress.received_bytes(event.target, event.data)  # the archive itself: never shown
        else:
            progress(event)

    try:
        results: PodResults = cluster.run(
            ["tar", "cf", "-", "-C", folder or "/", name or "."],
            shell=None,
            capture_limit=0,
            on_event=on_event,
            **run,
        )
        copies: list[CopyResult] = []
        for result in results:
            key = (result.namespace, result.pod, result.container or "")
            # Names from the kubeconfig and the cluster, encoded: never a way out of base.
            where = base.joinpath(*map(path_part, (result.context, result.namespace, result.pod)))
            made = partial(
                CopyResult,
                result.context,
                result.namespace,
                result.pod,
                result.container,
                "from",
                remote,
                str(where),
            )
            error = _tar_error(result, bytes(errors.get(key, b"")))
            if error is not None:
                copies.append(made(error=error))
                continue
            if key in unkept:
                copies.append(made(error=f"could not keep the archive here ({unkept[key]})"))
                continue
            spool = spools.get(key)
            if spool is None:
                copies.append(made(error="tar sent nothing"))
                continue
            spool.seek(0)
            try:
                files, refused = extract_safely(spool, where)
            except tarfile.TarError as problem:
                copies.append(made(error=f"not a tar archive: {problem}"))
                continue
            except _UnpackError as problem:
                # This pod's archive only: the other pods' copies stand.
                files, refused = problem.files, problem.refused
                copies.append(made(files=tuple(files), refused=tuple(refused), error=str(problem)))
                continue
            copies.append(made(files=tuple(files), refused=tuple(refused)))
        return CopyResults(copies)
    finally:
        for spool in spools.values():
            spool.close()
        shutil.rmtree(spool_dir, ignore_errors=True)


def _pack(local: Path, name: str, archive: IO[bytes]) -> list[CopiedFile]:
    """Write ``local`` (a file or folder) into ``archive`` as ``name``; the files, hashed."""
    files: list[CopiedFile] = []
    with tarfile.open(fileobj=archive, mode="w|") as tar:
        paths = [local] if local.is_file() else [local, *sorted(local.rglob("*"))]
        for path in paths:
            relative = path.relative_to(local).as_posix() if path != local else ""
            arcname = name if not relative else f"{name}/{relative}"
            if path.is_symlink():
                continue  # links are not followed out of what was named
            info = tar.gettarinfo(str(path), arcname=arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if path.is_file():
                with open(path, "rb") as source:
                    size, digest = _copy_hashed_read(source)
                with open(path, "rb") as source:
                    tar.addfile(info, source)
                files.append(CopiedFile(arcname, size, digest))
            elif path.is_dir():
                tar.addfile(info)
    return files


def send(cluster: Cluster, local: str | os.PathLike[str], remote: str, **run: Any) -> CopyResults:
    """Copy ``local`` (a file or folder) to ``remote`` in every pod ``run`` selects (as
    ``kubectl cp``: ``remote`` is the new name; its folder is made if missing)."""
    source = Path(local)
    if not source.exists():
        raise ValueError(f"{str(local)!r} does not exist here: give a local file or folder")
    if not remote or not remote.strip():
        raise ValueError("the path in the pod is empty: write TARGET:/path/in/pod")
    clean = posixpath.normpath(remote)
    folder, name = posixpath.split(clean)
    if not name or name == "..":
        raise ValueError(f"{remote!r}: name the file or folder to write, e.g. TARGET:/tmp/x")
    place = {key: run.pop(key) for key in _PLACE if key in run}
    caller = run.pop("on_event", None)
    selection = cluster.select(place.pop("target", None), timeout=run.get("timeout"), **place)
    folder = folder or "/"
    with tempfile.TemporaryFile() as archive:
        files = _pack(source, name, archive)
        size = archive.tell()
        archive.seek(0)
        parts = -(-size // _PART)
        progress = _Progress(
            caller,
            f"copy {source} to {remote} in each pod",
            steps=1 if size <= _PART else parts + 1,
        )
        content = sum(f.size for f in files)
        progress.done_line = lambda key: (
            f"{len(files)} file{'s' if len(files) != 1 else ''} ({_size(content)}) written "
            f"to {remote}"
        )
        if size <= _PART:
            results: PodResults = cluster.run(
                ["sh", "-c", 'mkdir -p "$1" && exec tar xf - -C "$1"', "sh", folder],
                shell=None,
                stdin=archive.read(),
                selection=selection,
                on_event=progress,
                **run,
            )
        else:
            results = _send_in_parts(cluster, archive, folder, selection, run, progress)
            progress.finished(results)
    copies = [
        CopyResult(
            context=r.context,
            namespace=r.namespace,
            pod=r.pod,
            container=r.container,
            direction="to",
            remote=remote,
            local=str(source),
            files=tuple(files) if _tar_error(r) is None else (),
            error=_tar_error(r),
        )
        for r in results
    ]
    return CopyResults(copies)


def _send_in_parts(
    cluster: Cluster,
    archive: IO[bytes],
    folder: str,
    selection: Selection,
    run: dict[str, Any],
    progress: _Progress,
) -> PodResults:
    """Send a large archive in parts (``cat >`` then ``cat >>`` a staging file in the pod's
    ``/tmp``), then unpack it there; a pod that fails a step is left out of the next ones and
    its result is that failure. ``progress`` shows the steps as one run."""
    # The pod's name in the file's too: where pods share a /tmp (a plain-process sandbox), two
    # pods never write one staging file.
    staging = f"/tmp/.podmagic-cp-{uuid.uuid4().hex}"
    failed: dict[tuple[str, str, str | None], PodResult] = {}
    first = True
    while part := archive.read(_PART):
        left = replace(
            selection,
            run=tuple(t for t in selection.run if (t.namespace, t.pod, t.container) not in failed),
        )
        if not left.run:
            break
        step = 'cat > "$1.$HOSTNAME.tar"' if first else 'cat >> "$1.$HOSTNAME.tar"'
        first = False
        for result in cluster.run(
            ["sh", "-c", step, "sh", staging],
            shell=None,
            stdin=part,
            selection=left,
            on_event=progress,
            **run,
        ):
            if result.status is not ExecStatus.OK:
                failed[(result.namespace, result.pod, result.container)] = result
        progress.next_step()
    left = replace(
        selection,
        run=tuple(t for t in selection.run if (t.namespace, t.pod, t.container) not in failed),
    )
    unpack = (
        'f="$1.$HOSTNAME.tar"; mkdir -p "$2" && tar xf "$f" -C "$2"; status=$?; rm -f "$f"; '
        "exit $status"
    )
    done: list[PodResult] = []
    if left.run:
        progress.step = progress.steps  # the last step, whichever part the loop ended at
        done = list(
            cluster.run(
                ["sh", "-c", unpack, "sh", staging, folder],
                shell=None,
                selection=left,
                on_event=progress,
                **run,
            )
        )
    return PodResults([*failed.values(), *done])
