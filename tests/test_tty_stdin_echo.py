"""With ``-t``, the terminal does not echo ``--stdin`` data back (a password read with
``read -s`` or ``sudo -S`` stays out of the output).

The pod's pseudo-terminal echoes whatever arrives while echo is on. Sent at once to ``sh -c``,
the data arrived before the script could switch echo off, so it came back in the output, the
summary and the saved notebook. A script given stdin under ``-t`` now goes through the loader,
which keeps echo off while podmagic types. Checked under bash, dash and busybox ash, by the
``Cluster`` API and by ``%pod``; run in both sandbox modes (default, and
``PODMAGIC_SANDBOX_ISOLATION=processes``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from conftest import quiet_podmagic_shell

from podmagic._client import Cluster
from podmagic._results import PodResult
from podmagic.sandbox import Sandbox

NAMESPACE = "ttyecho"
PASSWORD = "hunter2-STDIN-SEKRIT-77"
MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
---
apiVersion: v1
kind: Pod
metadata:
  name: box
  namespace: {NAMESPACE}
spec:
  containers:
    - name: main
      image: busybox:1.36
      volumeMounts: [{{name: shells, mountPath: SHELLS}}]
  # The folder of the ash link, at the same path (an isolated pod sees no host folder else).
  volumes: [{{name: shells, hostPath: {{path: SHELLS}}}}]
"""


@pytest.fixture(scope="module")
def shells(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Name → path of bash, dash and busybox's sh (as an ``ash`` link)."""
    found = {name: shutil.which(name) for name in ("bash", "dash")}
    busybox = shutil.which("busybox")
    if busybox:
        link = tmp_path_factory.mktemp("shells") / "ash"
        link.symlink_to(busybox)
        found["ash"] = str(link)
    else:
        found["ash"] = None
    missing = [name for name, path in found.items() if path is None]
    assert not missing, f"install the shells {missing} (Debian packages) to run these tests"
    return {name: str(path) for name, path in found.items()}


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox, shells: dict[str, str]) -> Iterator[Cluster]:
    sandbox.apply(MANIFEST.replace("SHELLS", shells["ash"].rsplit("/", 1)[0]))
    yield Cluster(kubeconfig=sandbox.kubeconfig, namespace=NAMESPACE)
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def one(results: object) -> PodResult:
    [result] = list(results)  # type: ignore[call-overload]
    assert isinstance(result, PodResult)
    return result


def assert_password_not_shown(result: PodResult) -> None:
    for view in (result.stdout, result.stderr, str(result).encode(), repr(result).encode()):
        assert PASSWORD.encode() not in view, view


@pytest.mark.parametrize("env", [{}, {"A": "1"}], ids=["inline", "env"])
@pytest.mark.parametrize("shell", ["bash", "dash", "ash"])
def test_tty_stdin_data_is_not_echoed_and_reaches_the_script(
    cluster: Cluster, shells: dict[str, str], shell: str, env: dict[str, str]
) -> None:
    # A plain `read`: the terminal's echo would show the line before the script prints a thing.
    script = 'read pw; echo "len ${#pw}"; [ "$pw" = "$EXPECTED" ] && echo same'
    result = one(
        cluster.run(
            script.replace("$EXPECTED", PASSWORD),
            "box",
            tty=True,
            stdin=(PASSWORD + "\n").encode(),
            env=env,
            shell=shells[shell],
            timeout=60,
        )
    )
    assert result.ok, result
    assert_password_not_shown(result)
    assert result.stdout == f"len {len(PASSWORD)}\r\nsame\r\n".encode()


def test_read_s_password_under_tty_is_not_shown(cluster: Cluster, shells: dict[str, str]) -> None:
    # The finding's reproduction: the script switches echo off itself, but only once it runs.
    result = one(
        cluster.run(
            """bash -c 'sleep 0.5; read -s -p "Password: " pw; echo; echo "len ${#pw}"'""",
            "box",
            tty=True,
            stdin=(PASSWORD + "\n").encode(),
            timeout=60,
        )
    )
    assert result.ok, result
    assert_password_not_shown(result)
    assert result.stdout == f"Password: \r\nlen {len(PASSWORD)}\r\n".encode()


@pytest.mark.parametrize("shell", ["bash", "dash", "ash"])
def test_tty_stdin_leaves_line_reading_and_eof_working(
    cluster: Cluster, shells: dict[str, str], shell: str
) -> None:
    # Echo is off, line editing is not: read takes lines, cat ends at the end of the data.
    script = 'read first; echo "first[$first]"; cat; echo end'
    result = one(
        cluster.run(
            script,
            "box",
            tty=True,
            stdin=b"one\ntwo\nthree\n",
            shell=shells[shell],
            timeout=60,
        )
    )
    assert result.ok, result
    assert result.stdout == b"first[one]\r\ntwo\r\nthree\r\nend\r\n"


def test_pod_magic_tty_stdin_password_is_not_in_the_result_or_the_summary(
    sandbox: Sandbox, cluster: Cluster
) -> None:
    with quiet_podmagic_shell(sandbox.kubeconfig, NAMESPACE) as ip:
        ip.user_ns["db_password"] = PASSWORD + "\n"
        assert (
            ip.run_line_magic(
                "pod",
                "box -t --stdin db_password -o res -- "
                'bash -c \'sleep 0.5; read -s -p "Password: " pw; echo; echo "len ${#pw}"\'',
            )
            is None
        )
        results = ip.user_ns["res"]
    result = one(results)
    assert result.ok, result
    assert_password_not_shown(result)
    assert result.stdout == f"Password: \r\nlen {len(PASSWORD)}\r\n".encode()
    for text in (results.to_dataframe().to_csv(), results._repr_html_(), str(results)):
        assert PASSWORD not in text
