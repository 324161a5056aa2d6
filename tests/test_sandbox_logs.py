"""Container logs: the main processes' output, written as containerd writes it and served by
``pods/log`` as the kubelet serves it, read with kubectl 1.30 and 1.33, the official client
and kr8s."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _waiting import await_until, wait_until
from conftest import KubectlRunner, missing_tool
from sandbox_client import api_client

from podmagic.sandbox import Sandbox
from podmagic.sandbox._logs import MAX_LINE_BYTES, LogFile, format_time, read_lines

pytestmark = pytest.mark.anyio

NAMESPACE = "logs"
MANIFEST = f"""
apiVersion: v1
kind: Pod
metadata: {{name: counter, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c]
    args: ['echo "hello $(WHO)"; echo "to stderr" >&2; sleep 0.2; i=0; while [ $i -lt 5 ]; do echo "line $i"; i=$((i+1)); done; echo ready > /tmp/done; sleep 3600']
    env: [{{name: WHO, value: logs}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: pair, namespace: {NAMESPACE}}}
spec:
  containers:
  - {{name: first, image: busybox, command: [sh, -c, 'echo from-first; sleep 3600']}}
  - {{name: second, image: busybox, command: [sh, -c, 'echo from-second; sleep 3600']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ticker, namespace: {NAMESPACE}}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done']
---
apiVersion: v1
kind: Pod
metadata:
  name: crasher
  namespace: {NAMESPACE}
  annotations: {{sandbox.podmagic.io/restart-backoff: "0.2"}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c, 'echo "run $(date +%s%N)"; sleep 0.3; exit 2']
---
apiVersion: v1
kind: Pod
metadata: {{name: once, namespace: {NAMESPACE}}}
spec:
  restartPolicy: Never
  containers:
  - {{name: main, image: busybox, command: [sh, -c, 'printf "no newline at the end"']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: idle, namespace: {NAMESPACE}}}
spec:
  containers: [{{name: main, image: registry.k8s.io/pause:3.10}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: escapes, namespace: {NAMESPACE}}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "echo '$(A)|$$(A)|$(B)|$(UNSET)|$$$$|$x|$('"]
    env: [{{name: A, value: "x$(B)"}}, {{name: B, value: "b=$(A)"}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {NAMESPACE}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: logs-web}}}}
  template:
    metadata: {{labels: {{app: logs-web}}}}
    spec:
      containers:
      - {{name: web, image: busybox, command: [sh, -c, 'echo "serving on $(hostname)"; sleep 3600']}}
"""


@pytest.fixture(scope="module")
def logs(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with this module's pods (namespace ``logs``)."""
    sandbox.apply(MANIFEST)
    wait_until(
        lambda: _status(sandbox, "crasher")["containerStatuses"][0]["restartCount"] >= 2,
        what="the crashing pod restarted twice",
    )
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _status(sandbox: Sandbox, pod: str) -> Any:
    assert sandbox.cluster is not None
    entry = sandbox.call(sandbox.cluster.get_pod, NAMESPACE, pod)
    return json.loads(json.dumps(entry.pod["status"]))


async def _get(sandbox: Sandbox, pod: str, **query: Any) -> tuple[int, bytes]:
    params = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in query.items()
    }
    async with (
        api_client(sandbox) as session,
        session.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/log", params=params) as response,
    ):
        return response.status, await response.read()


def _log_of(sandbox: Sandbox, pod: str, **query: Any) -> bytes:
    status, body = asyncio.run(_get(sandbox, pod, **query))
    assert status == 200, body
    return body


# -- the log file ------------------------------------------------------------------------------


def test_log_file_is_cri_format_with_nanosecond_times(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "0.log")
    log.write(1, b"one\ntw")
    log.write(2, b"err\n")
    log.write(1, b"o\n")
    log.end()
    records = (tmp_path / "0.log").read_bytes().splitlines()
    assert [r.split(b" ", 1)[1] for r in records] == [
        b"stdout F one",
        b"stderr F err",
        b"stdout F two",
    ]
    assert all(
        re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", r.split(b" ")[0]) for r in records
    )
    assert [line.content for line in read_lines(tmp_path / "0.log")] == [
        b"one\n",
        b"err\n",
        b"two\n",
    ]


def test_a_last_line_without_newline_is_a_whole_line_and_long_lines_come_in_parts(
    tmp_path: Path,
) -> None:
    log = LogFile(tmp_path / "0.log")
    long = b"x" * (MAX_LINE_BYTES * 2 + 10)
    log.write(1, long + b"\nend without newline")
    log.end()
    tags = [r.split(b" ")[2] for r in (tmp_path / "0.log").read_bytes().splitlines()]
    assert tags == [b"P", b"P", b"F", b"F"]
    lines = read_lines(tmp_path / "0.log")
    assert b"".join(line.content for line in lines) == long + b"\nend without newline\n"


def test_log_file_rotates_and_stays_bounded(tmp_path: Path) -> None:
    log = LogFile(tmp_path / "0.log", max_bytes=4096)
    for index in range(400):
        log.write(1, f"line {index:04d}\n".encode())
    log.end()
    assert log.rotations > 1
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert total <= 2 * 4096 + 200
    kept = read_lines(tmp_path / "0.log")
    assert kept[-1].content == b"line 0399\n"
    numbers = [int(line.content.split()[1]) for line in kept]
    assert numbers == list(range(numbers[0], 400))  # a contiguous tail, oldest dropped


def test_times_are_printed_as_go_rfc3339nano() -> None:
    assert format_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert format_time(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert format_time(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"


# -- pods/log ----------------------------------------------------------------------------------


def test_main_process_output_is_the_log_with_env_expanded(logs: Sandbox) -> None:
    wait_until(lambda: b"line 4" in _log_of(logs, "counter"), what="the counter pod logged")
    lines = _log_of(logs, "counter").decode().splitlines()
    # stdout and stderr are two pipes, as in a runtime: each in order, the two interleaved.
    assert "to stderr" in lines
    assert [line for line in lines if line != "to stderr"] == [
        "hello logs",
        *(f"line {i}" for i in range(5)),
    ]


def test_env_references_expand_once_as_the_kubelet_expands_them(logs: Sandbox) -> None:
    # $$ is a literal $, a name not (yet) defined stays as written, and an expanded value is
    # never expanded again: A keeps "$(B)" (B comes later), B gets A's value as it is.
    wait_until(lambda: _log_of(logs, "escapes").strip(), what="the escapes pod logged")
    assert _log_of(logs, "escapes") == b"x$(B)|$(A)|b=x$(B)|$(UNSET)|$$|$x|$(\n"


def test_tail_lines_then_timestamps_then_limit_bytes(logs: Sandbox) -> None:
    wait_until(lambda: b"line 4" in _log_of(logs, "counter"), what="the counter pod logged")
    assert _log_of(logs, "counter", tailLines=2) == b"line 3\nline 4\n"
    assert _log_of(logs, "counter", tailLines=0) == b""
    stamped = _log_of(logs, "counter", tailLines=1, timestamps=True).decode()
    stamp, text = stamped.split(" ", 1)
    assert text == "line 4\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z", stamp)
    day = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    assert stamp[:10] <= day
    assert _log_of(logs, "counter", limitBytes=8) == b"hello lo"
    assert _log_of(logs, "counter", tailLines=2, limitBytes=9) == b"line 3\nli"


def test_since_seconds_and_since_time_select_by_time(logs: Sandbox) -> None:
    wait_until(lambda: b"tick 3" in _log_of(logs, "ticker"), what="the ticker pod logged")
    everything = _log_of(logs, "ticker", timestamps=True).decode().splitlines()
    # Lines from the second to last on: sinceTime is to the second, so take a line's second.
    later = everything[-1].split(" ")[0][:19] + "Z"
    recent = _log_of(logs, "ticker", sinceTime=later).decode().splitlines()
    assert recent and len(recent) < len(everything) + 50
    assert all(line.startswith("tick ") for line in recent)
    assert _log_of(logs, "ticker", sinceTime="2000-01-01T00:00:00Z").startswith(b"tick 0\n")
    assert _log_of(logs, "ticker", sinceSeconds=3600).startswith(b"tick 0\n")


async def test_follow_streams_new_lines_until_the_client_goes(logs: Sandbox) -> None:
    async with (
        api_client(logs) as session,
        session.get(
            f"/api/v1/namespaces/{NAMESPACE}/pods/ticker/log",
            params={"follow": "true", "tailLines": "1"},
        ) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        seen: list[int] = []
        while len(seen) < 4:
            line = await asyncio.wait_for(response.content.readline(), 30)
            seen.append(int(line.split()[1]))
    assert seen == list(range(seen[0], seen[0] + 4))  # consecutive: nothing lost or repeated


async def test_follow_ends_when_the_container_ends(logs: Sandbox) -> None:
    restarts = _status(logs, "crasher")["containerStatuses"][0]["restartCount"]
    async with api_client(logs) as session:
        wait_until(
            lambda: "running" in _status(logs, "crasher")["containerStatuses"][0]["state"],
            what="the crashing pod runs again",
        )
        async with session.get(
            f"/api/v1/namespaces/{NAMESPACE}/pods/crasher/log", params={"follow": "true"}
        ) as response:
            body = await asyncio.wait_for(response.read(), 60)
    assert body.startswith(b"run ") and body.count(b"\n") == 1
    assert _status(logs, "crasher")["containerStatuses"][0]["restartCount"] >= restarts


def test_previous_is_the_run_before_and_absent_before_any_restart(logs: Sandbox) -> None:
    current = _log_of(logs, "crasher")
    previous = _log_of(logs, "crasher", previous=True)
    assert previous.startswith(b"run ") and current.startswith(b"run ")
    status, body = asyncio.run(_get(logs, "counter", previous=True))
    assert status == 400
    assert json.loads(body)["message"] == (
        'previous terminated container "main" in pod "counter" not found'
    )


def test_container_is_required_with_several_and_checked(logs: Sandbox) -> None:
    status, body = asyncio.run(_get(logs, "pair"))
    assert (status, json.loads(body)["message"]) == (
        400,
        "a container name must be specified for pod pair, choose one of: [first second]",
    )
    status, body = asyncio.run(_get(logs, "pair", container="third"))
    assert (status, json.loads(body)["message"]) == (
        400,
        "container third is not valid for pod pair",
    )
    assert _log_of(logs, "pair", container="second") == b"from-second\n"


def test_bad_options_are_refused_in_the_apiservers_words(logs: Sandbox) -> None:
    status, body = asyncio.run(_get(logs, "counter", tailLines=-1))
    assert status == 422
    assert json.loads(body)["message"] == (
        'PodLogOptions "counter" is invalid: tailLines: Invalid value: -1: must be greater '
        "than or equal to 0"
    )
    status, body = asyncio.run(
        _get(logs, "counter", sinceSeconds=5, sinceTime="2024-01-01T00:00:00Z")
    )
    assert (
        status == 422
        and "at most one of `sinceTime` or `sinceSeconds`" in json.loads(body)["message"]
    )
    status, body = asyncio.run(_get(logs, "counter", limitBytes=0))
    assert (
        status == 422
        and "limitBytes: Invalid value: 0: must be greater than 0" in json.loads(body)["message"]
    )
    status, _ = asyncio.run(_get(logs, "nope"))
    assert status == 404


def test_a_last_line_without_newline_and_an_idle_container(logs: Sandbox) -> None:
    wait_until(lambda: _status(logs, "once")["phase"] == "Succeeded", what="the pod succeeded")
    assert _log_of(logs, "once") == b"no newline at the end\n"
    assert _log_of(logs, "idle") == b""


# -- real clients ------------------------------------------------------------------------------


@pytest.fixture(params=["1.30", "1.33"], scope="module")
def kubectl(request: pytest.FixtureRequest, kubectl_factory: Any) -> KubectlRunner:
    runner: KubectlRunner = kubectl_factory(request.param)
    return runner


def _ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_kubectl_logs_with_tail_timestamps_container_and_since(
    logs: Sandbox, kubectl: KubectlRunner
) -> None:
    wait_until(lambda: b"line 4" in _log_of(logs, "counter"), what="the counter pod logged")
    assert _ok(kubectl("logs", "-n", NAMESPACE, "counter")).startswith("hello logs\n")
    assert _ok(kubectl("logs", "-n", NAMESPACE, "counter", "--tail=2")) == "line 3\nline 4\n"
    stamped = _ok(kubectl("logs", "-n", NAMESPACE, "counter", "--tail=1", "--timestamps"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line 4\n", stamped)
    assert _ok(kubectl("logs", "-n", NAMESPACE, "counter", "--since=1h")).startswith("hello logs\n")
    assert _ok(kubectl("logs", "-n", NAMESPACE, "pair", "-c", "second")) == "from-second\n"
    result = kubectl("logs", "-n", NAMESPACE, "pair")
    assert _ok(result) == "from-first\n"  # kubectl picks the first container itself
    assert 'Defaulted container "first" out of: first, second' in result.stderr.decode()


def test_kubectl_logs_previous_and_its_error(logs: Sandbox, kubectl: KubectlRunner) -> None:
    assert _ok(kubectl("logs", "-n", NAMESPACE, "crasher", "--previous")).startswith("run ")
    result = kubectl("logs", "-n", NAMESPACE, "counter", "--previous")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        'Error from server (BadRequest): previous terminated container "main" in pod '
        '"counter" not found'
    )


def test_kubectl_logs_of_a_deployment(logs: Sandbox, kubectl: KubectlRunner) -> None:
    result = kubectl("logs", "-n", NAMESPACE, "deploy/web")
    assert re.fullmatch(r"serving on web-[a-z0-9]+-[a-z0-9]+\n", _ok(result))


def test_kubectl_logs_follow_streams_until_stopped(logs: Sandbox, kubectl: KubectlRunner) -> None:
    process = subprocess.Popen(
        [kubectl.binary, "logs", "-f", "-n", NAMESPACE, "ticker", "--tail=1"],  # type: ignore[attr-defined]
        env=kubectl.env,  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        numbers = [int(process.stdout.readline().split()[1]) for _ in range(3)]
    finally:
        process.kill()
        process.communicate()
    assert numbers == list(range(numbers[0], numbers[0] + 3))


def test_kubectl_logs_follow_ends_with_the_container(logs: Sandbox, kubectl: KubectlRunner) -> None:
    result = kubectl("logs", "-f", "-n", NAMESPACE, "once", timeout=60)
    assert _ok(result) == "no newline at the end\n"


def _required(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        missing_tool(f"the {module} package is not installed (pip install '.[test]')")
        raise


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_official_client_reads_and_follows_logs(logs: Sandbox) -> None:
    kubernetes = _required("kubernetes")
    api_client = kubernetes.config.new_client_from_config(config_file=str(logs.kubeconfig))
    with api_client:
        core = kubernetes.client.CoreV1Api(api_client)
        wait_until(lambda: b"line 4" in _log_of(logs, "counter"), what="the counter pod logged")
        text = core.read_namespaced_pod_log("counter", NAMESPACE, tail_lines=2)
        assert text == "line 3\nline 4\n"
        assert core.read_namespaced_pod_log("pair", NAMESPACE, container="first") == "from-first\n"
        with pytest.raises(kubernetes.client.rest.ApiException) as refused:
            core.read_namespaced_pod_log("counter", NAMESPACE, previous=True)
        assert refused.value.status == 400
        response = core.read_namespaced_pod_log(
            "ticker", NAMESPACE, follow=True, tail_lines=1, _preload_content=False
        )
        try:
            lines = []
            for line in response.stream(amt=None):
                lines += [part for part in line.decode().splitlines() if part]
                if len(lines) >= 3:
                    break
        finally:
            response.release_conn()
        numbers = [int(line.split()[1]) for line in lines[:3]]
        assert numbers == list(range(numbers[0], numbers[0] + 3))


async def test_kr8s_pod_logs(logs: Sandbox) -> None:
    kr8s = _required("kr8s")
    api = await kr8s.asyncio.api(kubeconfig=str(logs.kubeconfig))
    try:
        pod = await kr8s.asyncio.objects.Pod.get("counter", namespace=NAMESPACE, api=api)
        lines = [line async for line in pod.logs(tail_lines=2)]
        assert lines == ["line 3", "line 4"]
        pair = await kr8s.asyncio.objects.Pod.get("pair", namespace=NAMESPACE, api=api)
        assert [line async for line in pair.logs(container="second")] == ["from-second"]
        ticker = await kr8s.asyncio.objects.Pod.get("ticker", namespace=NAMESPACE, api=api)
        followed: list[int] = []
        stream = ticker.logs(follow=True, tail_lines=1)
        try:
            async for line in stream:
                followed.append(int(line.split()[1]))
                if len(followed) == 3:
                    break
        finally:
            await stream.aclose()  # its HTTP stream closed here, in this loop
        assert followed == list(range(followed[0], followed[0] + 3))
    finally:
        if api._session is not None:
            await api._session.aclose()


def test_logs_of_a_deleted_pod_are_removed(logs: Sandbox) -> None:
    assert logs.cluster is not None
    folder = logs.cluster.state_dir / "logs"
    logs.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: short-lived, namespace: {NAMESPACE}}}
spec:
  containers: [{{name: main, image: busybox, command: [sh, -c, 'echo bye; sleep 3600']}}]
"""
    )
    wait_until(lambda: _log_of(logs, "short-lived") == b"bye\n", what="the pod logged")
    assert any(p.name.startswith(f"{NAMESPACE}_short-lived_") for p in folder.iterdir())
    logs.delete_pod("short-lived", namespace=NAMESPACE)
    wait_until(
        lambda: not any(p.name.startswith(f"{NAMESPACE}_short-lived_") for p in folder.iterdir()),
        what="the deleted pod's logs were removed",
    )


class _Collected:
    """A stand-in for the HTTP response and request a follow writes to and checks."""

    def __init__(self) -> None:
        self.data = b""
        self.transport = self

    async def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False


async def test_follow_goes_on_across_a_rotation_without_loss(tmp_path: Path) -> None:
    from podmagic.sandbox._logs import LogOptions, _follow, _Output

    log = LogFile(tmp_path / "0.log", max_bytes=2048)
    log.write(1, b"before\n")
    sink = _Collected()
    handle = (tmp_path / "0.log").open("rb")
    handle.seek(0, 2)
    follower = asyncio.ensure_future(
        _follow(log, handle, log.rotations, _Output(sink, LogOptions()), sink)  # type: ignore[arg-type]
    )
    for index in range(300):
        log.write(1, f"line {index:03d}\n".encode())
        if index % 60 == 59:  # one or two rotations since the follower last read
            last = f"line {index:03d}\n".encode()
            await await_until(
                lambda last=last: sink.data.endswith(last), what="the follower caught up"
            )
    log.end()
    await asyncio.wait_for(follower, 30)
    assert log.rotations >= 2
    assert sink.data == b"".join(f"line {index:03d}\n".encode() for index in range(300))
