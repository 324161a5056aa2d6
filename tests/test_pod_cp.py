"""Files across pods, end to end against the sandbox: a local file or folder copied to every
pod and fetched back from every pod over tar through exec, binary-exact with sizes and
SHA-256; archives that would write outside the destination are refused member by member."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from podmagic import Cluster, _copy
from podmagic._copy import CopyResults, extract_safely
from podmagic._events import Event, PodFinished, PodOutput, RunFinished, RunStarted
from podmagic.sandbox import Sandbox

NAMESPACE = "podcp"
MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: cp-a, namespace: {NAMESPACE}, labels: {{app: cp}}}}
spec:
  containers: [{{name: main, image: busybox}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: cp-b, namespace: {NAMESPACE}, labels: {{app: cp}}}}
spec:
  containers: [{{name: main, image: busybox}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: notar, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: distroless
    env: [{{name: PATH, value: /nowhere}}]
"""

BLOB = bytes(range(256)) * 4096 + b"\x00\xff end"  # 1 MiB and a bit, every byte value


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Iterator[Cluster]:
    sandbox.apply(MANIFEST)
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace=NAMESPACE) as running:
        yield running
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_file_sent_to_every_pod_comes_back_binary_exact(cluster: Cluster, tmp_path: Path) -> None:
    local = tmp_path / "blob.bin"
    local.write_bytes(BLOB)
    sent = cluster.copy_to(local, "/tmp/podcp/blob.bin", selector="app=cp")
    assert sent.ok, sent.summary()
    assert sorted(r.pod for r in sent) == ["cp-a", "cp-b"]
    assert all(r.files[0].sha256 == _sha(BLOB) and r.files[0].size == len(BLOB) for r in sent)
    fetched = cluster.copy_from("/tmp/podcp/blob.bin", tmp_path / "out", selector="app=cp")
    assert fetched.ok, fetched.summary()
    for pod in ("cp-a", "cp-b"):
        copy = tmp_path / "out" / cluster.context / NAMESPACE / pod / "blob.bin"
        assert copy.read_bytes() == BLOB
    frame = fetched.to_dataframe()
    assert set(frame["sha256"]) == {_sha(BLOB)} and set(frame["size"]) == {len(BLOB)}


def test_a_large_archive_goes_in_parts_and_arrives_exact(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parts of 64 KiB: the 1 MiB file crosses many of them (the default is 8 MiB).
    monkeypatch.setattr(_copy, "_PART", 64 * 1024)
    local = tmp_path / "big.bin"
    local.write_bytes(BLOB)
    sent = cluster.copy_to(local, "/tmp/podcp/parts/big.bin", selector="app=cp")
    assert sent.ok, sent.summary()
    fetched = cluster.copy_from("/tmp/podcp/parts", tmp_path / "out", selector="app=cp")
    assert fetched.ok, fetched.summary()
    assert {r.files for r in fetched} == {
        (_copy.CopiedFile("parts/big.bin", len(BLOB), _sha(BLOB)),)
    }
    left = cluster.run("ls -a /tmp | grep -c podmagic-cp || true", selector="app=cp")
    assert {r.stdout for r in left} == {b"0\n"}  # the staging file is gone


def test_a_folder_fetched_from_every_pod_keeps_its_tree(cluster: Cluster, tmp_path: Path) -> None:
    tree = tmp_path / "conf"
    (tree / "sub").mkdir(parents=True)
    (tree / "a.txt").write_text("alpha\n")
    (tree / "sub" / "b.txt").write_text("beta\n")
    assert cluster.copy_to(tree, "/tmp/podcp/conf", selector="app=cp").ok
    fetched = cluster.copy_from("/tmp/podcp/conf", tmp_path / "back", "cp-a")
    assert fetched.ok, fetched.summary()
    where = tmp_path / "back" / cluster.context / NAMESPACE / "cp-a" / "conf"
    assert (where / "a.txt").read_text() == "alpha\n"
    assert (where / "sub" / "b.txt").read_text() == "beta\n"
    assert sorted(f.path for f in fetched[0].files) == ["conf/a.txt", "conf/sub/b.txt"]


def test_a_pod_without_tar_is_its_own_clear_error(cluster: Cluster, tmp_path: Path) -> None:
    fetched = cluster.copy_from("/etc/hostname", tmp_path, ["notar", "cp-a"])
    by_pod = {r.pod: r for r in fetched}
    assert by_pod["cp-a"].ok
    assert not by_pod["notar"].ok
    assert (by_pod["notar"].error or "").startswith("no tar in the container")


def test_a_missing_remote_path_is_that_pods_error(cluster: Cluster, tmp_path: Path) -> None:
    fetched = cluster.copy_from("/no/such/file", tmp_path, "cp-a")
    assert not fetched.ok
    assert (fetched[0].error or "").startswith("tar exited")
    assert "/no/such" in (fetched[0].error or "") or "No such file" in (fetched[0].error or "")


def _archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_members_escaping_the_destination_are_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    archive = _archive(
        (_file("../escaped.txt"), b"x"),
        (_file("/tmp/absolute-podcp.txt"), b"x"),
        (_file("ok/fine.txt"), b"fine"),
        (_link("ok/out", "../../.."), None),
        (_link("ok/abs", "/etc"), None),
        (_link("ok/hard", "../../outside", tarfile.LNKTYPE), None),
        (_link("ok/inner", "fine.txt"), None),
    )
    files, refused = extract_safely(archive, dest)
    assert [f.path for f in files] == ["ok/fine.txt"]
    assert refused == [
        "../escaped.txt",
        "/tmp/absolute-podcp.txt",
        "ok/out",
        "ok/abs",
        "ok/hard",
    ]
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/absolute-podcp.txt").exists()
    assert (dest / "ok" / "inner").read_text() == "fine"


def test_a_write_through_a_link_pointing_out_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    outside = tmp_path / "outside"
    outside.mkdir()
    dest.mkdir()
    (dest / "sneaky").symlink_to(outside)  # left by an earlier copy, or planted
    files, refused = extract_safely(_archive((_file("sneaky/owned.txt"), b"x")), dest)
    assert files == [] and refused == ["sneaky/owned.txt"]
    assert not (outside / "owned.txt").exists()


def test_pod_cp_magic_copies_both_ways(sandbox: Sandbox, cluster: Cluster, tmp_path: Path) -> None:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}")
    shell.run_line_magic("config", f"PodMagic.namespace = {NAMESPACE!r}")
    local = tmp_path / "note.txt"
    local.write_bytes(b"caf\xe9\n")
    sent = shell.run_line_magic("pod_cp", f"{local} :/tmp/podcp/note.txt -l app=cp")
    assert isinstance(sent, CopyResults) and sent.ok and len(sent) == 2
    back = shell.run_line_magic("pod_cp", f"cp-b:/tmp/podcp/note.txt {tmp_path / 'got'}")
    assert back.ok
    got = tmp_path / "got" / cluster.context / NAMESPACE / "cp-b" / "note.txt"
    assert got.read_bytes() == b"caf\xe9\n"
    with pytest.raises(UsageError, match="TARGET:PATH"):
        shell.run_line_magic("pod_cp", f"{local} {tmp_path}")


def _renamed_context(sandbox: Sandbox, folder: Path, name: str) -> Path:
    """A copy of the sandbox's kubeconfig whose (current) context is called ``name``."""
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    config["contexts"][0]["name"] = config["current-context"] = name
    kubeconfig = folder / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    return kubeconfig


@pytest.mark.parametrize(
    ("context", "folder"),
    [
        ("../../../escaped", "..%2F..%2F..%2Fescaped"),
        ("/tmp/absolute", "%2Ftmp%2Fabsolute"),
        ("..", "%2E%2E"),
        ("a\\b\x07c%", "a%5Cb%07c%25"),
    ],
)
def test_a_context_name_never_leads_a_fetch_out_of_the_local_folder(
    sandbox: Sandbox, cluster: Cluster, tmp_path: Path, context: str, folder: str
) -> None:
    kubeconfig = _renamed_context(sandbox, tmp_path, context)
    dest = tmp_path / "one" / "two" / "three" / "dest"
    with Cluster(kubeconfig=kubeconfig, namespace=NAMESPACE) as odd:
        fetched = odd.copy_from("/etc/hostname", dest, "cp-a")
    assert fetched.ok, fetched.summary()
    assert fetched[0].local == str(dest / folder / NAMESPACE / "cp-a")
    assert (dest / folder / NAMESPACE / "cp-a" / "hostname").is_file()
    # nothing anywhere but under dest (the kubeconfig aside)
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - {kubeconfig}
    assert written and all(dest in p.parents for p in written), written


def test_a_names_path_part_is_one_folder_name_that_stays_put() -> None:
    assert _copy.path_part("podmagic-sandbox-2") == "podmagic-sandbox-2"
    assert _copy.path_part("arn:aws:eks:eu-west-1:1:cluster/prod") == (
        "arn:aws:eks:eu-west-1:1:cluster%2Fprod"
    )
    assert _copy.path_part("") == "%"
    assert _copy.path_part(".") == "%2E"
    assert _copy.path_part("nul\x00") == "nul%00"
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    for name in (long_a, "é" * 300, "/" * 300):
        part = _copy.path_part(name)
        assert len(part.encode()) <= 200 and "/" not in part and part not in (".", "..")
    assert _copy.path_part(long_a) != _copy.path_part(long_b)


def test_one_pods_archive_that_cannot_be_unpacked_is_that_pods_error_only(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = "mkdir -p /tmp/podcp/long && echo kept > /tmp/podcp/long/a.txt"
    assert cluster.run(["sh", "-c", script], ["cp-a", "cp-b"]).ok
    # in cp-a, a file 20 folders of 200 bytes deep: fine in the pod (made folder by folder),
    # more than PATH_MAX (4096) under the local folder: ENAMETOOLONG locally
    deep = (
        'cd /tmp/podcp/long && for i in $(seq 20); do mkdir -p "$1" && cd "$1"; done && echo x > f'
    )
    assert cluster.run(["sh", "-c", deep, "sh", "d" * 200], "cp-a").ok
    fetched = cluster.copy_from("/tmp/podcp/long", tmp_path / ("d" * 100), ["cp-a", "cp-b"])
    by_pod = {r.pod: r for r in fetched}
    assert set(by_pod) == {"cp-a", "cp-b"}
    assert by_pod["cp-b"].ok, fetched.summary()
    assert (Path(by_pod["cp-b"].local) / "long" / "a.txt").read_text() == "kept\n"
    bad = by_pod["cp-a"]
    assert not bad.ok
    assert bad.error is not None and "\n" not in bad.error
    assert bad.error.startswith('could not write "long/') and "too long" in bad.error, bad.error
    assert "cp-a: could not write" in fetched.summary()


def test_a_disk_full_while_one_pods_archive_arrives_is_that_pods_error_only(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.BytesIO):
        def write(self, data: Any) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    made: list[object] = []
    real = _copy.tempfile.TemporaryFile

    def spool(*args: Any, **kwargs: Any) -> Any:
        made.append(None)
        return Full() if len(made) == 1 else real(*args, **kwargs)  # the first pod's only

    monkeypatch.setattr(_copy.tempfile, "TemporaryFile", spool)
    fetched = cluster.copy_from("/etc/hostname", tmp_path, ["cp-a", "cp-b"])
    assert len(fetched) == 2
    [full] = fetched.failed
    assert full.error == f"could not keep the archive here ({os.strerror(errno.ENOSPC)})"
    [kept] = [r for r in fetched if r.ok]
    assert (Path(kept.local) / "hostname").is_file()


def test_an_unwritable_member_stops_only_its_archive_with_one_line(tmp_path: Path) -> None:
    archive = _archive((_file("ok.txt"), b"fine"), (_file("z" * 300), b"too long a name"))
    with pytest.raises(OSError, match=r'could not write "z{79}…" here \(File name too long\)'):
        extract_safely(archive, tmp_path / "dest")
    assert (tmp_path / "dest" / "ok.txt").read_bytes() == b"fine"


def test_copy_results_are_public_names() -> None:
    import podmagic

    assert podmagic.CopyResults is CopyResults
    assert {"CopiedFile", "CopyResult", "CopyResults"} <= set(podmagic.__all__)


# -- the live view ---------------------------------------------------------------------------------


def _lines(events: list[Event]) -> dict[str, list[bytes]]:
    """Each pod's lines, as the live view gets them."""
    lines: dict[str, list[bytes]] = {}
    for event in events:
        if isinstance(event, PodOutput):
            lines.setdefault(event.target.pod, []).append(event.data)
    return lines


def _amount(line: bytes) -> float:
    """The bytes a progress line names (``786,432 bytes received``, ``1.0 MiB received``)."""
    found = re.match(rb"([\d,.]+) (bytes|MiB) received", line)
    assert found is not None, line
    number = float(found.group(1).replace(b",", b""))
    return number * (1024 * 1024 if found.group(2) == b"MiB" else 1)


def test_a_copy_shows_as_one_run_with_each_pods_progress_never_the_archive(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "blob.bin"
    local.write_bytes(BLOB)
    sent: list[Event] = []
    assert cluster.copy_to(local, "/tmp/podcp/live.bin", selector="app=cp", on_event=sent.append)
    kinds = [type(event).__name__ for event in sent]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    assert sorted(kinds[1:-1]) == ["PodFinished"] * 2 + ["PodOutput"] * 2 + ["PodStarted"] * 2
    started = sent[0]
    assert isinstance(started, RunStarted)
    assert started.command == f"copy {local} to /tmp/podcp/live.bin in each pod"
    written = f"1 file ({len(BLOB) / 2**20:.1f} MiB) written to /tmp/podcp/live.bin\n".encode()
    assert _lines(sent) == {"cp-a": [written], "cp-b": [written]}

    # A line when another PROGRESS_EVERY bytes arrived (here 256 KiB: the archive of 1 MiB
    # and a bit crosses it four times; a piece may cross two at once), saying how much had
    # come then, and at the end the archive's size; the tar stream itself never shows.
    monkeypatch.setattr(_copy, "PROGRESS_EVERY", 256 * 1024)
    fetched: list[Event] = []
    back = cluster.copy_from(
        "/tmp/podcp/live.bin", tmp_path / "back", "cp-a", on_event=fetched.append
    )
    assert back.ok, back.summary()
    started = fetched[0]
    assert isinstance(started, RunStarted) and started.command.startswith(
        f"copy /tmp/podcp/live.bin from each pod into {tmp_path / 'back'}"
    )
    *progress, total = _lines(fetched)["cp-a"]
    amounts = [_amount(line) for line in progress]
    assert 1 <= len(amounts) <= 4 and amounts == sorted(amounts)
    assert amounts[0] >= 256 * 1024 and amounts[-1] >= 1024 * 1024
    found = re.fullmatch(rb"tar archive of ([\d,]+) bytes received\n", total)
    assert found is not None and _amount(found.group(1) + b" bytes received") > len(BLOB)
    assert isinstance(fetched[-2], PodFinished) and isinstance(fetched[-1], RunFinished)


def test_a_copy_sent_in_parts_shows_as_one_run(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_copy, "_PART", 512 * 1024)  # the archive of 1 MiB and a bit: 3 parts
    local = tmp_path / "big.bin"
    local.write_bytes(BLOB)
    events: list[Event] = []
    assert cluster.copy_to(local, "/tmp/podcp/parts-live.bin", "cp-a", on_event=events.append).ok
    assert [type(e).__name__ for e in events].count("RunStarted") == 1
    assert [type(e).__name__ for e in events].count("PodStarted") == 1
    assert [type(e).__name__ for e in events].count("PodFinished") == 1
    assert isinstance(events[-1], RunFinished) and [r.pod for r in events[-1].results] == ["cp-a"]
    assert _lines(events)["cp-a"] == [
        b"part 1 of 3 sent\n",
        b"part 2 of 3 sent\n",
        b"part 3 of 3 sent\n",
        f"1 file ({len(BLOB) / 2**20:.1f} MiB) written to /tmp/podcp/parts-live.bin\n".encode(),
    ]


class _Recording:
    """A renderer that keeps the events it is given."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def handle_event(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        self.closed = True


def test_pod_cp_magic_feeds_the_live_view(
    sandbox: Sandbox, cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import podmagic._magics

    views: list[_Recording] = []

    def recording(**settings: object) -> _Recording:
        assert settings.get("show_summary") is False  # the magic shows the copy's summary
        views.append(_Recording())
        return views[-1]

    monkeypatch.setattr(podmagic._magics, "choose_renderer", recording)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    shell.run_line_magic("config", f"PodMagic.kubeconfig = {str(sandbox.kubeconfig)!r}")
    shell.run_line_magic("config", f"PodMagic.namespace = {NAMESPACE!r}")
    local = tmp_path / "note.txt"
    local.write_bytes(b"live\n")
    assert shell.run_line_magic("pod_cp", f"{local} cp-a:/tmp/podcp/view.txt").ok
    assert len(views) == 1 and views[0].closed
    kinds = [type(event).__name__ for event in views[0].events]
    assert kinds == ["RunStarted", "PodStarted", "PodOutput", "PodFinished", "RunFinished"]
    assert shell.run_line_magic("pod_cp", f"-q cp-a:/tmp/podcp/view.txt {tmp_path}").ok
    assert len(views) == 1  # -q: no live view
