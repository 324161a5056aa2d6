"""What goes wrong, and what a person sees then: the fault matrix, end to end.

Every case runs through the engine (``podmagic._client.Cluster``) against the sandbox and,
where it shows, through ``%pod`` in a real ``InteractiveShell``. The pods live in the namespace
``faults`` (tests/manifests/faults.yaml), added to the session's sandbox for these modules and
removed afterwards. Cases 20–23 are in ``test_faults_security.py``.

===  ===========================================================  ==================================================
 #   case                                                         tests
===  ===========================================================  ==================================================
 1   exit codes 0, 1, 42, 126, 127, 137 exact; 126/127 explained   test_01_* here; test_engine.py::test_exit_codes
                                                                  (0, 1, 42, 137), ::test_command_not_found_explains
 2   stream drops without a status                                test_02_*; test_engine.py::test_dropped_stream_is_never_success
 3   pod deleted / replaced / restarted mid-exec                  test_03_*; test_engine.py::test_pod_deleted_mid_exec_is_reported
 4   handshake 401, 403, 404, 500                                 test_04_*; 403: test_faults_security.py::test_23_*;
                                                                  404: test_12_*
 5   429 + Retry-After on list and on exec                        test_05_*
 6   keep-alive pings through an idle-cutting proxy               test_06_*
 7   a background process keeps stdout open                       test_07_*
 8   100 MB of output                                             test_08_* (slow)
 9   expired exec-plugin token refreshed                          test_09_*
10   API server unreachable / TLS not trusted                     test_10_*
11   one pod hangs, the others finish on time                     test_11_*; test_engine.py::test_one_hung_pod_does_not_hold_up_the_others
12   pod gone between listing and exec                            test_12_*; test_engine.py::test_pod_vanishing_between_listing_and_exec
13   Pending / not ready / Terminating / completed pods            test_13_*; test_engine.py::test_skipped_pods_carry_reasons
14   container missing in some pods                               test_14_*; test_engine.py::test_missing_container_is_a_per_pod_error
15   interrupt during a 200-pod fan-out                           test_15_16_* (slow)
16   concurrency limit                                            test_15_16_* (high-water mark 50);
                                                                  test_engine.py::test_concurrency_limit_is_respected
17   bad input: one line, nothing executed                        test_17_*
18   binary and invalid UTF-8 output                              test_18_*
19   a 1 MB script travels over stdin, not the URL                test_19_*
20   interpolated values cannot break out of their quoting        test_faults_security.py::test_20_*; test_magic_properties.py
21   no token, key, kubeconfig secret or --env value leaks        test_faults_security.py::test_21_*
22   protected contexts and large fan-outs need --yes; --dry-run  test_faults_security.py::test_22_*;
                                                                  test_magics.py::test_*_needs_yes, ::test_dry_run_runs_nothing
23   RBAC: exec forbidden                                         test_faults_security.py::test_23_*
===  ===========================================================  ==================================================

Case 4, 401: an API server that rejects the credentials rejects the pod listing too, so a
wrong token is one error *before anything runs* (``ApiError``, one line in the magic), not one
error per pod. Only credentials that stop working between the listing and the execs (a
revoked token) give a 401 per pod — after one retry with a refreshed token (test_04 and
test_09 show both).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from _waiting import assert_ended_before, wait_until
from IPython.core.interactiveshell import InteractiveShell

from podmagic import _transport as transport
from podmagic._client import Cluster
from podmagic._engine import RunControl
from podmagic._errors import ApiError, ConfigError, PodsFailedError, SelectionError
from podmagic._events import PodFinished, PodOutput
from podmagic._kubeapi import RetryPolicy
from podmagic._portal import THREAD_NAME, get_portal
from podmagic._results import ExecStatus, PodResults
from podmagic.sandbox import Sandbox
from podmagic.sandbox._isolation import POOL_SIZE, POOL_THREAD_PREFIX

MANIFESTS = Path(__file__).parent / "manifests"
NS = "faults"


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(faults: Sandbox) -> Cluster:
    return Cluster(kubeconfig=faults.kubeconfig, namespace=NS)


@pytest.fixture(scope="module")
def ip(faults: Sandbox) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    magic = shell.magics_manager.registry["PodMagic"]
    saved = {name: getattr(magic, name) for name in ("kubeconfig", "context", "namespace", "quiet")}
    magic.kubeconfig, magic.context, magic.namespace, magic.quiet = (
        str(faults.kubeconfig),
        None,
        NS,
        True,
    )
    yield shell
    for name, value in saved.items():
        setattr(magic, name, value)


def by_pod(results: PodResults) -> dict[str, Any]:
    return {result.pod: result for result in results}


def record_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the client chooses before its retries, in order (in seconds)."""
    waits: list[float] = []
    choose = RetryPolicy.delay

    def recording(policy: RetryPolicy, retry: int, retry_after: float | None = None) -> float:
        waits.append(choose(policy, retry, retry_after))
        return waits[-1]

    monkeypatch.setattr(RetryPolicy, "delay", recording)
    return waits


def exec_requests(sandbox: Sandbox, pod: str | None = None) -> list[str]:
    """The exec requests the sandbox received (paths with their query)."""
    paths = [r.path_qs for r in sandbox.requests() if r.path_qs.split("?")[0].endswith("/exec")]
    return [p for p in paths if pod is None or f"/pods/{pod}/exec" in p]


def kubeconfig_variant(
    sandbox: Sandbox,
    path: Path,
    *,
    server: str | None = None,
    token: str | None = None,
    drop_ca: bool = False,
    user: dict[str, Any] | None = None,
) -> Path:
    """A copy of the sandbox's kubeconfig with one thing changed."""
    assert sandbox.kubeconfig is not None
    document = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    config = copy.deepcopy(document)
    if server is not None:
        config["clusters"][0]["cluster"]["server"] = server
    if drop_ca:
        del config["clusters"][0]["cluster"]["certificate-authority-data"]
    if token is not None:
        config["users"][0]["user"]["token"] = token
    if user is not None:
        config["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(config))
    return path


def run_cell(
    ip: InteractiveShell, capsys: pytest.CaptureFixture[str], cell: str
) -> tuple[Any, str]:
    """Run a cell; returns (its ExecutionResult, everything it printed)."""
    capsys.readouterr()
    result = ip.run_cell(cell)
    captured = capsys.readouterr()
    return result, captured.out + captured.err


def assert_one_line_error(result: Any, printed: str) -> str:
    """The cell failed and said so in one line, without a traceback."""
    assert not result.success
    text = printed.strip()
    assert "Traceback" not in text and "most recent call" not in text
    assert len(text.splitlines()) == 1, text
    return text


# -- 1. exit codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "code", "words"),
    [
        ("printf '' > tool; chmod 644 tool; ./tool", 126, "not executable"),
        ("no-such-tool --version", 127, "command not found"),
    ],
)
def test_01_exit_126_and_127_explain_and_hint_at_images_without_a_shell(
    cluster: Cluster, script: str, code: int, words: str
) -> None:
    [result] = cluster.run(script, "pool-0")
    assert (result.status, result.exit_code) == (ExecStatus.FAILED, code)
    assert words in (result.error or "") and "--no-shell" in (result.error or "")


def test_01_every_exit_code_reaches_the_magic_summary_exactly(ip: InteractiveShell) -> None:
    script = 'case "$HOSTNAME" in pool-0) exit 0;; pool-1) exit 42;; pool-2) kill -9 $$;; esac'
    results = ip.run_line_magic("pod", f"-l app=pool -- {script}")
    assert {r.pod: r.exit_code for r in results} == {"pool-0": 0, "pool-1": 42, "pool-2": 137}
    assert results.worst_exit_code == 137
    shown = str(results)
    assert "2 failed" in shown and "exit 137: killed" in shown
    rows = [line.split()[:4] for line in shown.splitlines()]
    assert ["pool-1", "main", "42", "failed"] in rows and [
        "pool-2",
        "main",
        "137",
        "failed",
    ] in rows


# -- 2. the stream drops without a status --------------------------------------------------------


def test_02_stream_drop_keeps_output_and_says_may_still_run(
    cluster: Cluster, ip: InteractiveShell
) -> None:
    # Reported when it drops (after "partial"), not at the command's end ("never").
    [result] = cluster.run("echo partial; sleep 5; echo never", "cut")
    assert result.status is ExecStatus.ERROR and result.exit_code is None and not result.ok
    assert result.stdout == b"partial\n"
    assert "connection lost" in (result.error or "")
    assert "may still be running" in (result.error or "")
    with pytest.raises(PodsFailedError, match="cut"):
        PodResults([result]).check()
    shown = ip.run_line_magic("pod", "cut -- echo partial; sleep 5")
    assert "may still be running" in str(shown) and "partial" in str(shown)


# -- 3. the pod is deleted, replaced or restarted mid-exec --------------------------------------


@pytest.mark.parametrize(
    ("pod", "words"),
    [
        ("doomed", "the pod was deleted while the command ran"),
        ("replaced", "the pod was replaced (new uid) while the command ran"),
        ("rebooted", "the container restarted while the command ran"),
    ],
)
def test_03_pod_deleted_replaced_or_restarted_mid_exec_is_reported_as_such(
    cluster: Cluster, pod: str, words: str
) -> None:
    [result] = cluster.run("echo before; sleep 5", pod)
    assert result.status in (ExecStatus.FAILED, ExecStatus.ERROR) and not result.ok
    assert result.stdout == b"before\n"
    assert words in (result.error or "")
    assert "out of memory" not in (result.error or ""), "the cause is known: no guessing"


# -- 4. the handshake is refused ----------------------------------------------------------------


def test_04_wrong_token_is_one_error_before_anything_runs(
    faults: Sandbox, ip: InteractiveShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = kubeconfig_variant(faults, tmp_path / "wrong", token="wrong-token-4711")
    faults.clear_requests()
    with pytest.raises(ApiError) as info:
        Cluster(kubeconfig=wrong, namespace=NS).run("true", selector="app=pool")
    assert info.value.status == 401 and "credentials were rejected" in str(info.value)
    result, printed = run_cell(ip, capsys, f"%pod -l app=pool --kubeconfig {wrong} -- true")
    line = assert_one_line_error(result, printed)
    assert line.startswith("ApiError:") and "401" in line and "wrong-token-4711" not in line
    assert exec_requests(faults) == []


def test_04_token_rejected_at_the_exec_is_a_per_pod_401(
    faults: Sandbox, cluster: Cluster, tmp_path: Path
) -> None:
    selection = cluster.select(selector="app=pool")
    revoked = Cluster(
        kubeconfig=kubeconfig_variant(faults, tmp_path / "revoked", token="revoked"), namespace=NS
    )
    faults.clear_requests()
    results = revoked.run("true", selection=selection)
    assert [r.status for r in results] == [ExecStatus.ERROR] * 3
    for result in results:
        assert f"pod {NS}/{result.pod}" in (result.error or "")
        assert "HTTP 401" in (result.error or "") and "Unauthorized" in (result.error or "")
        assert "credentials were rejected" in (result.error or "")
        # One retry with a refreshed token, then the error: a 401 is not worth more.
        assert len(exec_requests(faults, result.pod)) == 2


def test_04_server_error_on_the_upgrade_is_retried_then_reported_per_pod(
    faults: Sandbox, cluster: Cluster
) -> None:
    faults.clear_requests()
    results = by_pod(cluster.run("true", selector="app in (broken, pool)"))
    broken = results.pop("broken")
    assert broken.status is ExecStatus.ERROR and broken.started_at is None
    assert "HTTP 500" in (broken.error or "") and "error dialing backend" in (broken.error or "")
    assert len(exec_requests(faults, "broken")) == 5  # every attempt of the retry policy
    assert all(r.ok for r in results.values())


# -- 5. 429 and Retry-After -----------------------------------------------------------------------


def test_05_throttled_listing_is_retried_after_retry_after(
    faults: Sandbox, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = record_backoff(monkeypatch)
    faults.throttle(2, retry_after=1)
    results = cluster.run("true", selector="app=pool", deadline=10)
    assert results.ok and len(results) == 3
    assert len(waits) == 2 and min(waits) >= 1, f"two waits of Retry-After: 1, not {waits}"


def test_05_throttled_exec_is_retried_with_backoff(
    faults: Sandbox, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = record_backoff(monkeypatch)
    faults.annotate(
        "pool-1",
        {"sandbox.podmagic.io/throttle": "2", "sandbox.podmagic.io/retry-after": "1"},
        namespace=NS,
    )
    faults.clear_requests()
    results = by_pod(cluster.run("echo ok", selector="app=pool", deadline=10))
    assert all(r.stdout == b"ok\n" for r in results.values())
    assert len(exec_requests(faults, "pool-1")) == 3 and len(exec_requests(faults, "pool-0")) == 1
    assert len(waits) == 2 and min(waits) >= 1, f"two waits of Retry-After: 1, not {waits}"
    # The other pods did not wait for the throttled one: pool-0 was done before pool-1 began.
    fast, throttled = results["pool-0"], results["pool-1"]
    assert fast.started_at and fast.duration is not None and throttled.started_at
    assert fast.started_at + timedelta(seconds=fast.duration) <= throttled.started_at


def test_05_retry_after_beyond_the_deadline_is_not_waited_for(
    faults: Sandbox, cluster: Cluster
) -> None:
    faults.annotate(
        "pool-1",
        {"sandbox.podmagic.io/throttle": "50", "sandbox.podmagic.io/retry-after": "30"},
        namespace=NS,
    )
    faults.clear_requests()
    try:
        results = by_pod(cluster.run("true", selector="app=pool", deadline=3))
    finally:
        faults.annotate("pool-1", {"sandbox.podmagic.io/throttle": "0"}, namespace=NS)
    # One try, then the error: a wait past the deadline is not begun (had it been, the
    # deadline would have cut it, and the pod would show the deadline instead of the 429).
    assert len(exec_requests(faults, "pool-1")) == 1
    throttled = results.pop("pool-1")
    assert throttled.status is ExecStatus.ERROR and "HTTP 429" in (throttled.error or "")
    assert "throttling" in (throttled.error or "")
    assert all(r.ok for r in results.values())


# -- 6. keep-alive pings and proxies that cut idle connections ----------------------------------


class CuttingProxy:
    """A TCP proxy in front of the sandbox that cuts connections the way proxies and load
    balancers do: after ``idle_cut`` seconds without a byte in either direction (WebSocket
    pings and pongs are bytes), after ``cut_after`` seconds whatever flows, or — silently —
    forwarding nothing more after ``blackhole_after`` seconds while keeping the sockets open.
    """

    def __init__(
        self,
        port: int,
        *,
        idle_cut: float | None = None,
        cut_after: float | None = None,
        blackhole_after: float | None = None,
    ) -> None:
        self.upstream = port
        self.idle_cut, self.cut_after, self.blackhole_after = idle_cut, cut_after, blackhole_after
        self.cuts = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-cutting-proxy", daemon=True
        )
        self._writers: set[Any] = set()
        self._server: Any = None

    def __enter__(self) -> CuttingProxy:  # noqa: PYI034
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        async def stop() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(self, reader: Any, writer: Any) -> None:
        loop = asyncio.get_running_loop()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers |= {writer, up_writer}
        opened = loop.time()
        last = [opened]

        async def pipe(source: Any, sink: Any) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    if (
                        self.blackhole_after is not None
                        and loop.time() - opened > self.blackhole_after
                    ):
                        continue  # swallowed: the peer hears nothing, not even a close
                    last[0] = loop.time()
                    sink.write(data)
                    await sink.drain()

        tasks = [
            asyncio.create_task(pipe(reader, up_writer)),
            asyncio.create_task(pipe(up_reader, writer)),
        ]
        try:
            while not any(task.done() for task in tasks):
                await asyncio.sleep(0.05)
                now = loop.time()
                if (self.idle_cut is not None and now - last[0] > self.idle_cut) or (
                    self.cut_after is not None and now - opened > self.cut_after
                ):
                    self.cuts += 1
                    break
        finally:
            for task in tasks:
                task.cancel()
            for each in (writer, up_writer):
                each.close()
                self._writers.discard(each)


@pytest.fixture
def via_proxy(faults: Sandbox, cluster: Cluster, tmp_path: Path) -> Any:
    """``via_proxy(**cuts)`` → (proxy, cluster through it, selection of pool-0 made directly).

    The selection is resolved without the proxy, so the exec's WebSocket is the only
    connection through it while the command runs.
    """
    stack = contextlib.ExitStack()

    def make(**cuts: float) -> tuple[CuttingProxy, Cluster, Any]:
        proxy = stack.enter_context(CuttingProxy(faults.port, **cuts))
        config = kubeconfig_variant(
            faults, tmp_path / f"proxy-{proxy.port}", server=f"https://127.0.0.1:{proxy.port}"
        )
        return proxy, Cluster(kubeconfig=config, namespace=NS), cluster.select("pool-0")

    with stack:
        yield make


def test_06_keepalive_pings_keep_a_silent_exec_open_through_an_idle_cutting_proxy(
    via_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "PING_INTERVAL", 0.3)
    proxy, through, selection = via_proxy(idle_cut=1.0)
    [result] = through.run("sleep 2.5; echo done", selection=selection)
    assert result.ok and result.stdout == b"done\n"
    assert proxy.cuts == 0


def test_06_idle_cut_without_pings_is_reported_as_a_lost_connection(
    via_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "PING_INTERVAL", None)
    proxy, through, selection = via_proxy(idle_cut=1.0)
    [result] = through.run("echo start; sleep 3; echo never", selection=selection)
    assert proxy.cuts == 1
    assert result.status is ExecStatus.ERROR and result.stdout == b"start\n"
    error = result.error or ""
    assert "connection lost" in error and "may still be running" in error
    assert "nothing had arrived for" in error and "idle" in error


@pytest.mark.parametrize(
    "cut", [{"cut_after": 1.0}, {"blackhole_after": 1.0}], ids=["closed", "blackholed"]
)
def test_06_proxy_cutting_regardless_of_traffic_is_an_error_not_success(
    via_proxy: Any, monkeypatch: pytest.MonkeyPatch, cut: dict[str, float]
) -> None:
    monkeypatch.setattr(transport, "PING_INTERVAL", 0.3)
    monkeypatch.setattr(transport, "PING_TIMEOUT", 0.6)
    _, through, selection = via_proxy(**cut)
    everything = b"".join(f"{i}\n".encode() for i in range(1, 41))
    # The per-pod timeout only bounds a hang: were the cut not noticed, the status would be a
    # timeout rather than the lost connection.
    [result] = through.run(
        "for i in $(seq 40); do echo $i; sleep 0.1; done", selection=selection, timeout=30
    )
    assert result.status is ExecStatus.ERROR and result.exit_code is None
    assert "connection lost" in (result.error or "")
    assert result.stdout.startswith(b"1\n") and everything.startswith(result.stdout)
    assert result.stdout != everything


# -- 7. a background process holds stdout open ---------------------------------------------------


def test_07_background_process_holding_stdout_times_out_with_a_hint(
    faults: Sandbox, cluster: Cluster
) -> None:
    started = time.monotonic()
    [held] = cluster.run("sleep 1000 &", "pool-0", timeout=1)
    assert_ended_before(started, 15, "timeout=1 with a background `sleep 1000` holding stdout")
    assert held.status is ExecStatus.TIMEOUT and held.started_at is not None
    assert "background process" in (held.error or "") and ">/dev/null 2>&1 &" in (held.error or "")
    # The hint is right: redirected, the same command returns (ok, not a timeout).
    [fixed] = cluster.run("sleep 1000 >/dev/null 2>&1 &", "pool-0", timeout=30)
    assert fixed.ok
    wait_until(lambda: faults.exec_stats()["active"] == 0, what="both execs ended")


# -- 8. 100 MB of output ----------------------------------------------------------------------------

HUNDRED_MB = 100_000_000
BIG_OUTPUT = f"head -c {HUNDRED_MB} /dev/urandom > blob; cat blob; sha256sum blob >&2; rm blob"


class PeakRss:
    """The process's peak resident memory while the block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.baseline = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="test-rss-sampler", daemon=True)

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/self/status")

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRss:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@pytest.mark.slow
def test_08_hundred_megabytes_uncapped_are_hash_exact(cluster: Cluster) -> None:
    [result] = cluster.run(BIG_OUTPUT, "pool-2", capture_limit=None, timeout=60)
    assert result.ok and len(result.stdout) == HUNDRED_MB and result.stdout_dropped == 0
    assert hashlib.sha256(result.stdout).hexdigest() == result.stderr.split()[0].decode()


@pytest.mark.slow
def test_08_hundred_megabytes_capped_keep_memory_bounded(cluster: Cluster) -> None:
    with PeakRss() as memory:
        [result] = cluster.run(BIG_OUTPUT, "pool-2", capture_limit=1_000_000, timeout=60)
    assert result.ok and len(result.stdout) == 1_000_000
    assert result.stdout_dropped == HUNDRED_MB - 1_000_000
    assert len(result.stderr.split()[0]) == 64  # the hash line came through too
    assert memory.growth < 40_000_000, f"peak RSS grew by {memory.growth / 1e6:.0f} MB"


# -- 9. an exec-plugin token the server expires -------------------------------------------------

PLUGIN = r"""
import json, os, pathlib, ssl, urllib.request

count = pathlib.Path(os.environ["PLUGIN_COUNT"])
count.write_text(str(int(count.read_text() or 0) + 1) if count.exists() else "1")
admin = pathlib.Path(os.environ["SANDBOX_ADMIN_TOKEN_FILE"]).read_text().strip()
ttl = os.environ.get("TOKEN_TTL")
request = urllib.request.Request(
    os.environ["SANDBOX_TOKENS_URL"], method="POST",
    data=json.dumps({"ttl": float(ttl)} if ttl else {}).encode(),
    headers={"Authorization": "Bearer " + admin, "Content-Type": "application/json"},
)
context = ssl.create_default_context(cafile=os.environ["SANDBOX_CA"])
with urllib.request.urlopen(request, context=context, timeout=10) as response:
    issued = json.load(response)
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
# No expirationTimestamp: the client learns that the token expired from a 401.
print(json.dumps({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
                  "status": {"token": issued["token"]}}))
"""


@pytest.fixture
def plugin_cluster(faults: Sandbox, tmp_path: Path) -> Any:
    """``plugin_cluster(**env)`` → (Cluster whose user is an exec credential plugin that asks
    the sandbox for a token, function returning how often the plugin ran)."""
    script = tmp_path / "token-plugin.py"
    script.write_text(PLUGIN)
    assert faults.ca_pem is not None and faults.token is not None
    (tmp_path / "ca.pem").write_bytes(faults.ca_pem)
    (tmp_path / "admin-token").write_text(faults.token)
    count = tmp_path / "plugin-runs"

    def make(**env: str) -> tuple[Cluster, Any]:
        variables = {
            "PLUGIN_COUNT": str(count),
            "SANDBOX_TOKENS_URL": faults.tokens_url,
            "SANDBOX_CA": str(tmp_path / "ca.pem"),
            "SANDBOX_ADMIN_TOKEN_FILE": str(tmp_path / "admin-token"),
            **env,
        }
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(script)],
                "interactiveMode": "Never",
                "env": [{"name": k, "value": v} for k, v in variables.items()],
            }
        }
        config = kubeconfig_variant(faults, tmp_path / "plugin-kubeconfig", user=user)
        return Cluster(
            kubeconfig=config, namespace=NS
        ), lambda: int(count.read_text()) if count.exists() else 0

    return make


def test_09_sandbox_issues_and_expires_tokens(faults: Sandbox) -> None:
    import ssl
    import urllib.error
    import urllib.request

    assert faults.ca_pem is not None
    context = ssl.create_default_context(cadata=faults.ca_pem.decode())

    def call(path: str, token: str, *, method: str = "GET", body: bytes | None = None) -> int:
        request = urllib.request.Request(
            faults.url + path,
            method=method,
            data=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code

    issued = faults.issue_token()
    assert call(f"/api/v1/namespaces/{NS}/pods", issued) == 200
    # Only the sandbox's own token may ask for tokens; an issued one may not.
    assert call("/sandbox/tokens", issued, method="POST", body=b"{}") == 401
    assert call("/sandbox/tokens", faults.token or "", method="POST", body=b'{"ttl": -1}') == 400
    assert faults.expire_tokens() >= 1
    assert call(f"/api/v1/namespaces/{NS}/pods", issued) == 401
    assert call(f"/api/v1/namespaces/{NS}/pods", faults.token or "") == 200
    short = faults.issue_token(ttl=2)
    assert call(f"/api/v1/namespaces/{NS}/pods", short) == 200
    wait_until(
        lambda: call(f"/api/v1/namespaces/{NS}/pods", short) == 401,
        what="a token issued with ttl=2 was refused",
    )


def test_09_expired_token_is_refreshed_through_the_plugin_and_the_run_succeeds(
    faults: Sandbox, plugin_cluster: Any
) -> None:
    cluster, runs = plugin_cluster()
    assert cluster.credentials.auth_method == "exec"
    assert cluster.run("echo one", selector="app=pool").ok
    assert runs() == 1
    faults.expire_tokens()
    results = cluster.run("echo two", selector="app=pool")
    assert results.ok and [r.stdout for r in results] == [b"two\n"] * 3
    assert runs() == 2


def test_09_token_expiring_between_listing_and_exec_is_refreshed_once_for_every_pod(
    faults: Sandbox, plugin_cluster: Any
) -> None:
    cluster, runs = plugin_cluster()
    selection = cluster.select(selector="app=pool")
    assert runs() == 1
    faults.expire_tokens()
    faults.clear_requests()
    results = cluster.run("echo fresh", selection=selection)
    assert results.ok and [r.stdout for r in results] == [b"fresh\n"] * 3
    assert runs() == 2, "three execs rejected at once share one refresh"
    for pod in ("pool-0", "pool-1", "pool-2"):
        assert len(exec_requests(faults, pod)) == 2  # 401, then the retry with the new token


def test_09_token_with_a_ttl_the_sandbox_enforces(plugin_cluster: Any) -> None:
    cluster, runs = plugin_cluster(TOKEN_TTL="0.5")
    assert cluster.run("true", "pool-0").ok
    time.sleep(0.7)  # the scenario: the token's 0.5 s pass before the next run
    assert cluster.run("true", "pool-0").ok
    assert runs() == 2


# -- 10. API server unreachable, or its certificate not trusted ----------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(params=["unreachable", "untrusted"])
def broken_kubeconfig(
    request: pytest.FixtureRequest, faults: Sandbox, tmp_path: Path
) -> tuple[Path, str]:
    if request.param == "unreachable":
        path = kubeconfig_variant(
            faults, tmp_path / "kc", server=f"https://127.0.0.1:{_closed_port()}"
        )
        return path, "connection refused"
    return kubeconfig_variant(faults, tmp_path / "kc", drop_ca=True), "certificate verify failed"


def test_10_unreachable_or_untrusted_server_is_one_error_before_any_exec(
    faults: Sandbox,
    ip: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    broken_kubeconfig: tuple[Path, str],
) -> None:
    path, words = broken_kubeconfig
    faults.clear_requests()
    with pytest.raises(ConfigError, match=words) as info:
        Cluster(kubeconfig=path, namespace=NS).run("true", selector="app=pool")
    assert "kubeconfig" in str(info.value)  # says what to check
    result, printed = run_cell(ip, capsys, f"%pod -l app=pool --kubeconfig {path} -- true")
    line = assert_one_line_error(result, printed)
    assert line.startswith("ConfigError:") and words in line
    assert exec_requests(faults) == []


# -- 11. one pod hangs ----------------------------------------------------------------------------


def test_11_one_hung_pod_does_not_delay_the_others_results(cluster: Cluster) -> None:
    finished: dict[str, tuple[float, ExecStatus]] = {}
    started = time.monotonic()

    def on_event(event: object) -> None:
        if isinstance(event, PodFinished):
            finished[event.result.pod] = (time.monotonic() - started, event.result.status)

    script = 'case "$HOSTNAME" in pool-0) sleep 30;; esac; echo done'
    results = by_pod(cluster.run(script, selector="app=pool", timeout=2, on_event=on_event))
    assert finished["pool-1"][0] < 1.0 and finished["pool-2"][0] < 1.0, "reported as they finish"
    assert finished["pool-0"][1] is ExecStatus.TIMEOUT and 2.0 <= finished["pool-0"][0] < 3.5
    assert results["pool-1"].stdout == results["pool-2"].stdout == b"done\n"


# -- 12. a pod vanishes between listing and exec -------------------------------------------------


def test_12_pod_gone_between_listing_and_exec_is_gone_404_for_that_pod_only(
    faults: Sandbox, cluster: Cluster
) -> None:
    selection = cluster.select(selector="app=brief")
    faults.delete_pod("brief-a", namespace=NS)
    results = by_pod(cluster.run("echo here", selection=selection))
    assert results["brief-b"].ok and results["brief-b"].stdout == b"here\n"
    gone = results["brief-a"]
    assert gone.status is ExecStatus.ERROR and gone.error is not None
    assert gone.error.startswith("gone (404)") and "brief-a" in gone.error


# -- 13. pods that cannot run ---------------------------------------------------------------------


def test_13_pods_that_cannot_run_are_skipped_with_reasons_or_included_on_request(
    cluster: Cluster, ip: InteractiveShell
) -> None:
    results = ip.run_line_magic("pod", "-l app=states -- echo ran")
    outcome = {r.pod: (r.status.value, r.error) for r in results}
    assert outcome == {
        "state-failed": ("skipped", "failed (Failed)"),
        "state-pending": ("skipped", "Pending"),
        "state-running": ("ok", None),
        "state-succeeded": ("skipped", "completed (Succeeded)"),
        "state-terminating": ("skipped", "terminating"),
        "state-unready": ("skipped", "not ready"),
    }
    shown = str(results)
    for reason in (
        "failed (Failed)",
        "Pending",
        "completed (Succeeded)",
        "terminating",
        "not ready",
    ):
        assert reason in shown
    included = by_pod(cluster.run("echo ran", selector="app=states", include_unready=True))
    assert {pod for pod, r in included.items() if r.ok} == {
        "state-running",
        "state-unready",
        "state-terminating",
    }
    assert included["state-pending"].status is ExecStatus.SKIPPED  # exec cannot reach these
    assert included["state-succeeded"].status is ExecStatus.SKIPPED


# -- 14. a container some pods lack ------------------------------------------------------------------


def test_14_container_missing_in_some_pods_is_a_per_pod_error(ip: InteractiveShell) -> None:
    results = by_pod(ip.run_line_magic("pod", "-l app=mixed -c sidecar -- echo here"))
    assert results["with-sidecar"].ok and results["with-sidecar"].stdout == b"here\n"
    missing = results["without-sidecar"]
    assert missing.status is ExecStatus.ERROR
    assert missing.error == 'container "sidecar" not found (containers: main)'


# -- 15 and 16. interrupting a 200-pod fan-out, and the concurrency limit ----------------------------


FLEET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: fleet}
spec:
  replicas: 200
  selector: {matchLabels: {app: fleet}}
  template:
    metadata: {labels: {app: fleet}}
    spec: {containers: [{name: app, image: busybox}]}
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(FLEET, kubeconfig=tmp_path_factory.mktemp("fleet") / "kubeconfig") as running:
        yield running


def _socket_inodes() -> set[str]:
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{name}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def client_connections(port: int) -> int:
    """Open sockets of this process connected *to* ``port`` (the client side only: the
    sandbox's own ends of the same connections have ``port`` as their local port)."""
    inodes = _socket_inodes()
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    count += 1
    return count


def portal_tasks() -> int:
    return int(get_portal().call(lambda: len(asyncio.all_tasks())))


@pytest.mark.slow
@pytest.mark.usefixtures("python_sigint")
def test_15_16_interrupting_a_200_pod_fan_out_keeps_partial_results_and_leaves_nothing(
    fleet: Sandbox,
) -> None:
    cluster = Cluster(kubeconfig=fleet.kubeconfig)
    assert cluster.run("true", ["fleet-0", "fleet-1"]).ok  # the loop thread and pools exist
    threads_before = sorted(t.name for t in threading.enumerate())
    tasks_before = portal_tasks()
    # The Cluster keeps its REST connections for the next run (one per GET made at once);
    # exec connections are never kept.
    pooled = client_connections(fleet.port)
    assert pooled <= 2
    fleet.reset_exec_stats()

    control = RunControl()
    fired: list[float] = []
    busy: list[tuple[int, int]] = []
    in_main = threading.current_thread() is threading.main_thread()
    ups: list[PodOutput] = []

    def count_ups(event: object) -> None:
        if isinstance(event, PodOutput) and event.data == b"up\n":
            ups.append(event)

    def interrupt_when_busy() -> None:
        # The 20 fast pods are done and the 50 slow ones at once have each printed "up".
        wait_until(lambda: len(ups) >= 50, what="50 commands printed up", timeout=60)
        busy.append((client_connections(fleet.port), portal_tasks()))
        fired.append(time.monotonic())
        if in_main:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as in a terminal or a notebook
        else:
            control.cancel("interrupted")

    script = 'n=${HOSTNAME##*-}; if [ "$n" -lt 20 ]; then echo fast; else echo up; sleep 60; fi'
    trigger = threading.Thread(target=interrupt_when_busy, name="test-interrupter")
    trigger.start()
    results = cluster.run(
        script, "sts/fleet", max_concurrency=50, control=control, yes=True, on_event=count_ups
    )  # 200 pods
    trigger.join()
    # The slow commands sleep 60 s: the run ended because of the interrupt, not with them.
    assert_ended_before(fired[0], 30, "a run interrupted while 50 commands sleep 60 s")
    # While it ran, the counters below saw the open execs (so they can see leftovers).
    assert busy[0][0] >= 50 and busy[0][1] >= tasks_before + 50

    statuses = [r.status for r in results]
    assert len(results) == 200
    assert statuses.count(ExecStatus.OK) == 20
    assert statuses.count(ExecStatus.CANCELLED) == 50
    assert statuses.count(ExecStatus.NOT_STARTED) == 130
    assert all(r.stdout == b"fast\n" for r in results if r.ok)
    assert all(
        r.stdout == b"up\n" and r.error == "interrupted"
        for r in results
        if r.status is ExecStatus.CANCELLED
    )
    assert all(
        r.error == "not started: interrupted" and r.started_at is None
        for r in results
        if r.status is ExecStatus.NOT_STARTED
    )
    # 16: never more than -P execs at once, and the limit was reached.
    assert fleet.exec_stats()["high_water"] == 50

    # Nothing is left behind: execs, sockets, tasks, threads.
    wait_until(lambda: fleet.exec_stats()["active"] == 0, what="no exec is left in the sandbox")
    wait_until(
        lambda: client_connections(fleet.port) == pooled, what="no exec connection is left open"
    )
    wait_until(lambda: portal_tasks() == tasks_before, what="no task is left on the loop")
    threads_after = sorted(t.name for t in threading.enumerate())
    assert threads_after.count(THREAD_NAME) == 1

    # Isolated pods are started by each sandbox's own pool, bounded, kept while the sandbox
    # runs (a bubblewrap process dies with the thread that started it) and ended with it.
    # Other sandboxes of this test process have pools of their own: count what this run added.
    def pool_of(names: list[str]) -> list[str]:
        return [n for n in names if n.startswith(POOL_THREAD_PREFIX + "_")]

    pool = pool_of(threads_after)
    assert len(pool) - len(pool_of(threads_before)) <= POOL_SIZE, pool
    new_threads = [n for n in threads_after if n not in threads_before and n not in pool]
    # asyncio's resolver pool (getaddrinfo for each connection) may grow to its fixed size.
    assert all(n.startswith("asyncio_") for n in new_threads), new_threads

    # The next run works.
    again = cluster.run("echo again", selector="app=fleet", pick=5, max_concurrency=50)
    assert (
        again.ok
        and [r.stdout for r in again if r.status is not ExecStatus.SKIPPED] == [b"again\n"] * 5
    )
    cluster.close()
    wait_until(lambda: client_connections(fleet.port) == 0, what="close() closed every connection")


# -- 17. bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("-l 'app in (pool' -- touch CANARY", "invalid label selector"),
        ("-l app=pool --field-selector spec.nope=x -- touch CANARY", "field"),
        ("-n nope pool-0 -- touch CANARY", 'namespace "nope" not found'),
        ("--context nope pool-0 -- touch CANARY", 'context "nope" not found'),
        ("pol-0 -- touch CANARY", "did you mean pool-0"),
        ("deploy/pool -- touch CANARY", "deployment"),
        ("-l '' -- touch CANARY", "add --yes"),
        ("pool-0 -c nope -- touch CANARY", 'container "nope" not found'),
        ("pool-0 --timeout -1 -- touch CANARY", "timeout"),
        ("pool-0 --timeout abc -- touch CANARY", "timeout"),
        ("pool-0 --deadline 0 -- touch CANARY", "deadline"),
        ("pool-0 -P 0 -- touch CANARY", "-P/--max-concurrency"),
        ("pool-0 --retries -2 -- touch CANARY", "retries"),
        ("-l app=pool --pick 0 -- touch CANARY", "pick"),
        ("pool-0 --parse nope -- touch CANARY", "unknown output format"),
        ("pool-0 --parse regex -- touch CANARY", "pattern"),
        ("pool-0 -e NOEQUALS -- touch CANARY", "NAME=VALUE"),
        ("pool-0 --bogus -- touch CANARY", "unrecognized arguments"),
        ("pool-0 -- touch CANARY {{undefined_name}}", "undefined_name"),
        ("pool-0", "no command"),
    ],
)
def test_17_bad_input_is_one_line_and_nothing_runs(
    faults: Sandbox,
    ip: InteractiveShell,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    line: str,
    words: str,
) -> None:
    canary = tmp_path / "ran"  # sandbox pods are local processes: this file appears if one ran
    faults.clear_requests()
    before = faults.exec_stats()["total"]
    result, printed = run_cell(ip, capsys, f"%pod {line.replace('CANARY', str(canary))}")
    assert words in assert_one_line_error(result, printed)
    assert exec_requests(faults) == [] and faults.exec_stats()["total"] == before
    assert not canary.exists()


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (
            lambda c: c.run("true", selector="app in (pool"),
            SelectionError,
            "invalid label selector",
        ),
        (
            lambda c: c.run("true", "pool-0", namespace="nope"),
            SelectionError,
            'namespace "nope" not found',
        ),
        (lambda c: c.run("true", "pol-0"), SelectionError, "did you mean pool-0"),
        (lambda c: c.run("true", "pool-0", container="nope"), SelectionError, "not found"),
        (lambda c: c.run("true", "pool-0", timeout=-1), ValueError, "timeout"),
        (lambda c: c.run("true", "pool-0", retries=-1), ValueError, "retries"),
        (lambda c: c.run("true", "pool-0", env={"A B": "x"}), ValueError, "not a variable name"),
    ],
)
def test_17_bad_input_to_the_engine_raises_before_any_exec(
    faults: Sandbox, cluster: Cluster, call: Any, error: type[Exception], words: str
) -> None:
    faults.clear_requests()
    with pytest.raises(error, match=words):
        call(cluster)
    assert exec_requests(faults) == []


def test_17_unknown_context_in_the_engine(faults: Sandbox) -> None:
    with pytest.raises(ConfigError, match='context "nope" not found.*podmagic-sandbox'):
        Cluster(context="nope", kubeconfig=faults.kubeconfig)


# -- 18. binary output ------------------------------------------------------------------------------


def test_18_binary_and_invalid_utf8_are_exact_bytes_and_replaced_only_for_display(
    cluster: Cluster, ip: InteractiveShell
) -> None:
    every_byte = bytes(range(256)) * 64
    [echoed] = cluster.run("cat", "pool-0", stdin=every_byte)
    assert echoed.ok and echoed.stdout == every_byte
    script = r"printf 'a\377\376b\000c\n'; printf '\303(' >&2"
    results = ip.run_line_magic("pod", f"pool-0 -- {script}")
    [result] = results
    assert result.stdout == b"a\xff\xfeb\x00c\n" and result.stderr == b"\xc3("
    assert result.stdout_text == "a\ufffd\ufffdb\x00c\n" and result.stderr_text == "\ufffd("
    assert "\ufffd" in str(results)
    frame = results.to_dataframe()
    assert frame.loc[0, "stdout"] == "a\ufffd\ufffdb\x00c\n"
    assert result.stdout == b"a\xff\xfeb\x00c\n", "displaying changed nothing"


# -- 19. very long scripts --------------------------------------------------------------------------


def test_19_megabyte_script_travels_over_stdin_not_the_url(
    faults: Sandbox, cluster: Cluster, ip: InteractiveShell
) -> None:
    marker = "LONG-SCRIPT-MARKER"
    body = "".join(f": {marker}-{i:07d} padding padding padding padding\n" for i in range(16_500))
    script = f"echo start\n{body}echo end $((40 + 2))\n"
    assert len(script) > 1_000_000
    faults.clear_requests()
    [result] = cluster.run(script, "pool-0")
    assert result.ok and result.stdout == b"start\nend 42\n"
    [cell] = ip.run_cell_magic("pod", "pool-1", script)
    assert cell.ok and cell.stdout == b"start\nend 42\n"
    urls = exec_requests(faults)
    assert len(urls) == 2
    assert all(len(url) < 2048 and marker not in url for url in urls)
    assert not any(marker in r.path_qs for r in faults.requests())


# -- the README's failure table is kept in step with the matrix -----------------------------------


def test_readme_failure_table_covers_the_matrix() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Failure behaviour", 1)[1].split("\n## ", 1)[0]
    for words in (
        "exit code",
        "may still be running",
        "deleted",
        "401",
        "403",
        "404",
        "429",
        "keep-alive",
        "--timeout",
        "capture_limit",
        "exec credential plugin",
        "unreachable",
        "not ready",
        "--max-concurrency",
        "Ctrl-C",
        "--yes",
        "replacement",
        "stdin",
        "--dry-run",
    ):
        assert words in section, words
