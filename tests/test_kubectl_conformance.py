"""Real kubectl (1.30–1.33) against the sandbox: listing, selectors, exec, errors."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import re
import struct
import subprocess
import termios

import pytest

from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.kubectl

VERSIONS = ["1.30", "1.31", "1.32", "1.33"]


@pytest.fixture(params=VERSIONS, scope="module")
def kubectl(request: pytest.FixtureRequest, kubectl_factory):  # type: ignore[no-untyped-def]
    return kubectl_factory(request.param)


# kubectl up to 1.33 starts reading the exec WebSocket before it has registered its streams,
# so the empty frame with which servers announce a stream can arrive "too early" and is
# logged and dropped (client-go fixed this in 1.34, commit 2f016580e). Real clusters show
# the same line now and then; it is the client's, not the server's.
_EARLY_FRAME_LOG = re.compile(
    rb"^E\d{4} [^\n]*Unknown stream id \d+, discarding message\n", re.MULTILINE
)


def without_early_frame_logs(stderr: bytes) -> bytes:
    """kubectl's stderr without its log lines about frames it read before its streams existed."""
    return _EARLY_FRAME_LOG.sub(b"", stderr)


def lines(output: bytes) -> list[str]:
    return output.decode().strip().splitlines()


def names_in_table(output: bytes) -> list[str]:
    rows = lines(output)
    return sorted(row.split()[0] for row in rows[1:])


def test_get_pods_shows_ready_and_status_columns(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("get", "pods", "-n", "conf", "-l", "app=web")
    assert result.returncode == 0, result.stderr
    header, *rows = lines(result.stdout)
    assert header.split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert len(rows) == 3
    for row in rows:
        name, ready, status, restarts, _age = row.split()
        assert name.startswith("web-") and len(name.split("-")) == 3
        assert (ready, status, restarts) == ("1/1", "Running", "0")


def test_get_pods_wide_shows_node_and_ip(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("get", "pods", "-n", "conf", "-o", "wide", "-l", "app=db")
    assert result.returncode == 0, result.stderr
    header, *rows = lines(result.stdout)
    assert header.split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert [row.split()[0] for row in rows] == ["db-0", "db-1"]
    assert all(row.split()[6].startswith("sandbox-node-") for row in rows)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("env in (staging)", ["db-0", "db-1"]),
        ("app notin (web,db,multi,batch,flaky),tier", ["solo"]),
        ("app=multi", ["multi", "multi-default"]),
        ("app!=web,app!=db,app!=multi,!tier", ["done", "pending", "unready"]),
        ("tier=backend,env==staging", ["db-0", "db-1"]),
    ],
)
def test_label_selectors(kubectl, selector: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("get", "pods", "-n", "conf", "-l", selector)
    assert result.returncode == 0, result.stderr
    assert names_in_table(result.stdout) == expected


def test_field_selector(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl(
        "get", "pods", "-n", "conf", "--field-selector", "status.phase!=Running,metadata.name!=done"
    )
    assert result.returncode == 0, result.stderr
    assert names_in_table(result.stdout) == ["pending"]


def test_no_match_says_no_resources(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("get", "pods", "-n", "conf", "-l", "app=nothing")
    assert result.returncode == 0
    assert b"No resources found in conf namespace." in result.stderr


def test_bad_selector_is_bad_request(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("get", "pods", "-n", "conf", "-l", "app in (web")
    assert result.returncode == 1
    assert b"Error from server (BadRequest)" in result.stderr


def test_unsupported_field_is_bad_request(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("get", "pods", "-n", "conf", "--field-selector", "spec.image=x")
    assert result.returncode == 1
    assert b"field label not supported: spec.image" in result.stderr


@pytest.mark.parametrize("code", [0, 1, 42])
def test_exec_exit_codes(kubectl, code: int) -> None:  # type: ignore[no-untyped-def]
    result = kubectl(
        "exec", "-n", "conf", "solo", "--", "sh", "-c", f"echo out; echo err >&2; exit {code}"
    )
    assert result.returncode == code, result.stderr
    assert result.stdout == b"out\n"
    assert without_early_frame_logs(result.stderr).startswith(b"err\n")
    if code:
        assert f"command terminated with exit code {code}".encode() in result.stderr


def test_exec_stdin_round_trip_ends_on_eof(kubectl) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(range(256)) * 1000
    result = kubectl("exec", "-i", "-n", "conf", "solo", "--", "cat", input=payload)
    assert result.returncode == 0, result.stderr
    assert result.stdout == payload


def test_exec_sees_pod_identity(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("exec", "-n", "conf", "db-1", "--", "sh", "-c", "echo $HOSTNAME; hostname")
    assert result.returncode == 0, result.stderr
    env_name, *uts = lines(result.stdout)
    assert env_name == "db-1"
    assert uts == ["db-1"]


def test_exec_deployment_picks_one_of_its_pods(kubectl, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    result = kubectl(
        "exec", "-n", "conf", "deploy/web", "--", "sh", "-c", "echo $MY_POD $GREETING; pwd"
    )
    assert result.returncode == 0, result.stderr
    identity, workdir = lines(result.stdout)
    pod, greeting = identity.split()
    assert pod in sandbox.pods("conf") and pod.startswith("web-")
    assert greeting == "hello"
    # Isolated, the container's root is its own; as plain processes, a folder of the host's.
    if sandbox.isolation == "namespaces":
        assert workdir == "/srv"
    else:
        assert workdir.endswith(f"/{pod}/nginx/srv")


def test_exec_multi_container_defaults_to_first(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("exec", "-n", "conf", "multi", "--", "sh", "-c", "echo $CONTAINER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "first"
    assert b'Defaulted container "first" out of: first, second' in result.stderr


def test_exec_multi_container_with_c(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl(
        "exec", "-n", "conf", "multi", "-c", "second", "--", "sh", "-c", "echo $CONTAINER"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "second"


def test_exec_default_container_annotation(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("exec", "-n", "conf", "multi-default", "--", "sh", "-c", "echo $CONTAINER")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().strip() == "second"


def test_exec_missing_container(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("exec", "-n", "conf", "solo", "-c", "nope", "--", "true")
    assert result.returncode == 1
    assert b"container nope is not valid for pod solo" in result.stderr


def test_exec_missing_pod_is_not_found(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("exec", "-n", "conf", "nope", "--", "true")
    assert result.returncode == 1
    assert b'Error from server (NotFound): pods "nope" not found' in result.stderr


def test_exec_completed_pod_is_refused(kubectl) -> None:  # type: ignore[no-untyped-def]
    result = kubectl("exec", "-n", "conf", "done", "--", "true")
    assert result.returncode == 1
    assert b"cannot exec into a container in a completed pod" in result.stderr


def test_exec_tty_with_resize(kubectl_factory) -> None:  # type: ignore[no-untyped-def]
    # kubectl only asks for a tty, and sends its size, when its own stdin/stdout are terminals.
    kubectl = kubectl_factory("1.33")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    process = subprocess.Popen(
        [
            kubectl.binary,
            "exec",
            "-it",
            "-n",
            "conf",
            "solo",
            "--",
            "sh",
            "-c",
            "tty; stty size; echo oops >&2",
        ],
        stdin=follower,
        stdout=follower,
        stderr=subprocess.PIPE,
        env=kubectl.env,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # EIO: the terminal's last user went away
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else b""
    if process.stderr:
        process.stderr.close()
    out = output.decode()
    assert "/dev/pts/" in out
    assert "33 111" in out  # kubectl's terminal size arrived on the resize channel
    assert "oops" in out  # with a tty, stderr travels on stdout


@pytest.mark.slow
def test_large_output_is_byte_exact(kubectl_factory, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    kubectl = kubectl_factory("1.33")
    size = 64 * 1024 * 1024
    script = f"head -c {size} /dev/urandom > blob && sha256sum blob"
    made = kubectl("exec", "-n", "conf", "solo", "--", "sh", "-c", script)
    assert made.returncode == 0, made.stderr
    remote_digest = made.stdout.split()[0].decode()
    result = kubectl("exec", "-n", "conf", "solo", "--", "cat", "blob", timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == size
    assert hashlib.sha256(result.stdout).hexdigest() == remote_digest
    kubectl("exec", "-n", "conf", "solo", "--", "rm", "blob")
