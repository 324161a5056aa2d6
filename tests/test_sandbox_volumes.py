"""Volumes of isolated pods, made and mounted as the kubelet makes and mounts them.

ConfigMap, Secret, downward-API and projected volumes (``items``, ``mode``/``defaultMode``,
``optional``, ``subPath``, the ``..data`` symlink of the kubelet's atomic writer, updates
reaching mounted volumes), through kubectl 1.33 against a sandbox of this module's own.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from _waiting import wait_until
from conftest import kubectl_folder, missing_tool

from podmagic.sandbox import Sandbox
from podmagic.sandbox._isolation import ISOLATION_VARIABLE, isolation_problem
from podmagic.sandbox._volumes import pod_volumes, write_atomically

SECRET = base64.b64encode(b"s3cret\n").decode()

MANIFEST = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: vol}}
data: {{app.conf: "level=info\\n", other: "two\\n"}}
binaryData: {{blob: {base64.b64encode(bytes([0, 1, 2])).decode()}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds, namespace: vol}}
data: {{password: {SECRET}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: user
  namespace: vol
  labels: {{app: web, tier: front}}
  annotations: {{note: 'say "hi"'}}
spec:
  containers:
  - name: main
    image: busybox
    resources: {{limits: {{memory: 64Mi}}}}
    volumeMounts:
    - {{name: config, mountPath: /config}}
    - {{name: picked, mountPath: /picked}}
    - {{name: secret, mountPath: /secret}}
    - {{name: info, mountPath: /info}}
    - {{name: all, mountPath: /all}}
    - {{name: config, mountPath: /etc/app.conf, subPath: app.conf}}
    - {{name: maybe, mountPath: /maybe}}
    - {{name: scratch, mountPath: /scratch}}
  - name: reader
    image: busybox
    volumeMounts:
    - {{name: scratch, mountPath: /scratch, readOnly: true}}
  volumes:
  - {{name: config, configMap: {{name: settings}}}}
  - name: picked
    configMap:
      name: settings
      defaultMode: 0400
      items: [{{key: app.conf, path: sub/renamed.conf}}, {{key: other, path: other, mode: 0600}}]
  - {{name: secret, secret: {{secretName: creds}}}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: memory, resourceFieldRef: {{containerName: main, resource: limits.memory, divisor: 1Mi}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: settings, items: [{{key: other, path: cm/other}}]}}
      - secret: {{name: creds}}
      - serviceAccountToken: {{path: my-token, expirationSeconds: 3600}}
      - downwardAPI: {{items: [{{path: ns, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
  - {{name: maybe, configMap: {{name: not-there, optional: true}}}}
  - {{name: scratch, emptyDir: {{}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: broken, namespace: vol}}
spec:
  containers:
  - name: main
    image: busybox
    volumeMounts: [{{name: gone, mountPath: /gone}}]
  volumes:
  - {{name: gone, configMap: {{name: not-there}}}}
"""


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ISOLATION_VARIABLE, raising=False)
        problem = isolation_problem()
        if problem is not None:
            missing_tool(f"pods cannot be isolated here: {problem}")
        with Sandbox(MANIFEST, state_dir=tmp_path_factory.mktemp("vol-state")) as sandbox:
            yield sandbox


@pytest.fixture(scope="module")
def kubectl(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = kubectl_folder()
    binary = folder / "kubectl.1.33" if folder else None
    if binary is None or not os.access(binary, os.X_OK):
        missing_tool("kubectl.1.33 not found beside `kubectl` on PATH")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path_factory.mktemp("vol-kubecache")),
        "KUBECONFIG": str(sandbox.kubeconfig),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary), "-n", "vol", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run


def sh(
    kubectl, script: str, pod: str = "user", container: str = "main"
) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return kubectl("exec", pod, "-c", container, "--", "sh", "-c", script)  # type: ignore[no-any-return]


def test_a_config_map_volume_holds_every_key_behind_the_atomic_writers_symlinks(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "cat /config/app.conf").stdout == "level=info\n"
    assert sh(kubectl, "od -An -tu1 /config/blob").stdout.split() == ["0", "1", "2"]
    listing = sh(kubectl, "ls -a /config").stdout.split()
    stamped = [
        name for name in listing if re.fullmatch(r"\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+", name)
    ]
    assert len(stamped) == 1 and {"..data", "app.conf", "other", "blob"} <= set(listing)
    links = sh(kubectl, "readlink /config/..data /config/app.conf").stdout.split()
    assert links == [stamped[0], "..data/app.conf"]
    assert sh(kubectl, "stat -Lc %a /config/app.conf").stdout == "644\n"


def test_items_pick_keys_paths_and_modes(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "cat /picked/sub/renamed.conf").stdout == "level=info\n"
    assert sh(kubectl, "test -e /picked/app.conf").returncode == 1
    modes = sh(kubectl, "stat -Lc %a /picked/sub/renamed.conf /picked/other").stdout.split()
    assert modes == ["400", "600"]


def test_a_secret_volume_holds_the_decoded_values(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "cat /secret/password").stdout == "s3cret\n"


def test_downward_api_files_are_written_in_the_kubelets_format(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = sh(
        kubectl, "cat /info/labels; echo; cat /info/annotations; echo; cat /info/name /info/memory"
    )
    assert result.stdout == 'app="web"\ntier="front"\nnote="say \\"hi\\""\nuser64'


def test_a_projected_volume_combines_its_sources(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = sh(kubectl, "cat /all/cm/other /all/password /all/ns")
    assert result.stdout == "two\ns3cret\nvol"
    token = sh(kubectl, "cat /all/my-token").stdout
    whoami = kubectl(
        "auth", "whoami", f"--token={token}", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == "system:serviceaccount:vol:default", whoami.stderr


def test_an_optional_volume_of_a_missing_config_map_is_empty(kubectl) -> None:  # type: ignore[no-untyped-def]
    # Mounted (the atomic writer's ..data there) with no key in it.
    assert sh(kubectl, "readlink /maybe/..data && ls /maybe | wc -l").stdout.split()[-1] == "0"


def test_a_missing_config_map_is_the_kubelets_mount_error(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = sh(kubectl, "true", pod="broken")
    assert result.returncode != 0
    assert (
        'MountVolume.SetUp failed for volume "gone" : configmap "not-there" not found'
        in result.stderr
    )


def test_projected_volumes_are_read_only(kubectl) -> None:  # type: ignore[no-untyped-def]
    for path in ("/config/new", "/secret/new", "/info/new"):
        written = sh(kubectl, f"touch {path}")
        assert written.returncode != 0 and "Read-only file system" in written.stderr, path


def test_an_empty_dir_is_shared_and_read_only_where_the_mount_says(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "echo shared > /scratch/file").returncode == 0
    assert sh(kubectl, "cat /scratch/file", container="reader").stdout == "shared\n"
    refused = sh(kubectl, "touch /scratch/other", container="reader")
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_config_map_updates_reach_mounted_volumes_but_not_sub_path_mounts(kubectl) -> None:  # type: ignore[no-untyped-def]
    assert sh(kubectl, "cat /etc/app.conf").stdout == "level=info\n"
    patched = kubectl(
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        '{"data":{"app.conf":"level=debug\\n"}}',
    )
    assert patched.returncode == 0, patched.stderr
    wait_until(
        lambda: sh(kubectl, "cat /config/app.conf").stdout == "level=debug\n",
        what="the ConfigMap's new value in its mounted volume",
    )
    assert sh(kubectl, "cat /picked/sub/renamed.conf").stdout == "level=debug\n"
    # A subPath mount keeps what it had when the container started, as in Kubernetes.
    assert sh(kubectl, "cat /etc/app.conf").stdout == "level=info\n"
    # Only one timestamped folder is left: the old one is removed after the switch.
    listing = sh(kubectl, "ls -a /config").stdout.split()
    assert len([name for name in listing if name.startswith("..20")]) == 1


def test_a_config_map_created_later_fills_an_optional_volume(kubectl) -> None:  # type: ignore[no-untyped-def]
    created = kubectl("create", "configmap", "not-there", "--from-literal=late=yes")
    assert created.returncode == 0, created.stderr
    wait_until(
        lambda: sh(kubectl, "cat /maybe/late").stdout == "yes",
        what="the new ConfigMap's key in the optional volume",
    )


def test_the_atomic_writer_swaps_data_and_removes_what_is_gone(tmp_path: Path) -> None:
    target = tmp_path / "volume"
    assert write_atomically(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    first = os.readlink(target / "..data")
    assert os.readlink(target / "a") == "..data/a" and os.readlink(target / "dir") == "..data/dir"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o600
    assert not write_atomically(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert write_atomically(target, {"a": (b"3", 0o644)})
    second = os.readlink(target / "..data")
    assert second != first and not (target / first).exists()
    assert (target / "a").read_bytes() == b"3" and not (target / "dir").is_symlink()
    assert sorted(p.name for p in target.iterdir()) == sorted(["..data", second, "a"])


def test_service_account_tokens_are_rotated_at_80_percent_of_their_lifetime(
    kubectl,
    sandbox: Sandbox,  # type: ignore[no-untyped-def]
) -> None:
    before = sh(kubectl, "cat /all/my-token").stdout
    entry = sandbox.cluster.pods[("vol", "user")]  # type: ignore[union-attr]

    def rotation() -> float:
        volumes = pod_volumes(sandbox.cluster, entry.pod, Path())
        assert volumes._rotation is not None  # scheduled on the sandbox's loop
        left = volumes._rotation.when() - asyncio.get_running_loop().time()
        volumes.rotate_tokens()
        return left

    left = sandbox.call(rotation)
    # my-token lives 3600 s, the shortest: rotated 2880 s after it was issued.
    assert 2800 < left <= 2880
    after = sh(kubectl, "cat /all/my-token").stdout
    assert after and after != before
    whoami = kubectl(
        "auth", "whoami", f"--token={after}", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == "system:serviceaccount:vol:default", whoami.stderr


def test_a_label_change_reaches_the_downward_api_files(kubectl) -> None:  # type: ignore[no-untyped-def]
    labelled = kubectl("label", "pod", "user", "release=blue")
    assert labelled.returncode == 0, labelled.stderr
    wait_until(
        lambda: 'release="blue"' in sh(kubectl, "cat /info/labels").stdout,
        what="the new label in the downward-API volume",
    )
    assert sh(kubectl, "cat /info/labels").stdout == 'app="web"\nrelease="blue"\ntier="front"'
