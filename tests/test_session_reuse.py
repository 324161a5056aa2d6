"""A Cluster keeps one HTTP session per event loop across its runs, and closes it cleanly.

New HTTP sessions and TCP connections are counted through aiohttp's own ``TraceConfig``,
added to every ``aiohttp.ClientSession`` made during a test; no timing is asserted.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from _waiting import await_until, wait_until
from IPython.core.interactiveshell import InteractiveShell

from podmagic._client import Cluster
from podmagic.sandbox import Sandbox

NS = "conf"


@dataclass
class HttpCounts:
    """What aiohttp did during a test: the sessions made and the TCP connections opened."""

    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    connects: int = 0
    reuses: int = 0


@pytest.fixture
def http(monkeypatch: pytest.MonkeyPatch) -> HttpCounts:
    counts = HttpCounts()
    trace = aiohttp.TraceConfig()

    async def created(session: Any, context: Any, params: Any) -> None:
        counts.connects += 1

    async def reused(session: Any, context: Any, params: Any) -> None:
        counts.reuses += 1

    trace.on_connection_create_end.append(created)
    trace.on_connection_reuseconn.append(reused)
    trace.freeze()
    make = aiohttp.ClientSession

    def counting(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        kwargs["trace_configs"] = [*(kwargs.get("trace_configs") or ()), trace]
        session = make(*args, **kwargs)
        counts.sessions.append(session)
        return session

    # A function, not a subclass: aiohttp warns about subclasses of ClientSession.
    monkeypatch.setattr(aiohttp, "ClientSession", counting)
    return counts


@pytest.fixture
def cluster(sandbox: Sandbox) -> Iterator[Cluster]:
    made = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS)
    yield made
    made.close()


def test_a_second_run_on_the_same_cluster_reuses_the_session_and_its_connection(
    cluster: Cluster, http: HttpCounts
) -> None:
    assert cluster.run("echo one", "solo").stdout == b"one\n"
    assert cluster.run("echo two", "solo").stdout == b"two\n"
    assert len(http.sessions) == 1, "the second run made a session of its own"
    assert http.connects == 1, "the second run opened a new connection instead of reusing one"
    assert http.reuses >= 1
    assert not http.sessions[0].closed  # kept open for the next run


def test_select_then_run_share_the_session(cluster: Cluster, http: HttpCounts) -> None:
    selection = cluster.select("solo")
    assert cluster.run("true", selection=selection).ok
    assert cluster.run("true", "solo").ok
    assert len(http.sessions) == 1 and http.connects == 1


def test_percent_pod_selects_and_runs_in_one_session(
    sandbox: Sandbox, http: HttpCounts, tmp_path: Path
) -> None:
    # A kubeconfig of its own: a Cluster no other test has used yet.
    assert sandbox.kubeconfig is not None
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(sandbox.kubeconfig).read_text())
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "podmagic")
    line = f"solo -q --kubeconfig {kubeconfig} -n {NS} -- echo"
    try:
        for word in ("one", "two", "three"):
            assert shell.run_line_magic("pod", f"{line} {word}").stdout == f"{word}\n".encode()
        assert len(http.sessions) == 1, "a %pod made more than one HTTP session"
        assert http.connects == 1
    finally:
        magics = shell.magics_manager.registry["PodMagic"]
        for cluster in magics._clusters.values():
            cluster.close()


def test_a_token_rotated_between_runs_is_used_by_the_next_request(
    sandbox: Sandbox, http: HttpCounts, tmp_path: Path
) -> None:
    assert sandbox.kubeconfig is not None
    token_file = tmp_path / "token"
    token_file.write_text(sandbox.issue_token())
    config = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    config["users"][0]["user"] = {"tokenFile": str(token_file)}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    with Cluster(kubeconfig=kubeconfig, namespace=NS) as cluster:
        assert cluster.run("echo one", "solo").ok
        # Rotate: the old token stops working, the file holds a new one, and the credentials
        # come to re-read it (as after their re-read period).
        sandbox.expire_tokens()
        token_file.write_text(sandbox.issue_token())
        cluster.credentials.invalidate_token()
        sandbox.clear_requests()
        assert cluster.run("echo two", "solo").stdout == b"two\n"
        requests = [r.path_qs.split("?")[0] for r in sandbox.requests()]
    # One GET of the pod and one exec: no 401 and retry, so the new token went first time.
    assert requests == [
        f"/api/v1/namespaces/{NS}/pods/solo",
        f"/api/v1/namespaces/{NS}/pods/solo/exec",
    ]
    assert len(http.sessions) == 1


def test_close_closes_the_session_and_a_later_run_opens_a_new_one(
    cluster: Cluster, http: HttpCounts
) -> None:
    assert cluster.run("true", "solo").ok
    [session] = http.sessions
    assert not session.closed
    cluster.close()
    assert session.closed
    assert cluster.run("true", "solo").ok
    assert len(http.sessions) == 2 and not http.sessions[1].closed


def test_async_with_closes_the_session_on_exit(sandbox: Sandbox, http: HttpCounts) -> None:
    async def main() -> None:
        async with Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS) as cluster:
            assert (await cluster.arun("true", "solo")).ok
            assert (await cluster.arun("true", "solo")).ok
            [session] = http.sessions
            assert not session.closed
        assert session.closed

    asyncio.run(main())


def test_two_event_loops_get_two_sessions_each_closed_with_its_loop(
    cluster: Cluster, http: HttpCounts
) -> None:
    assert cluster.run("true", "solo").ok  # on the portal's loop
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            assert asyncio.run(cluster.arun("true", "solo")).ok  # a loop of its own each time
        gc.collect()
    assert len(http.sessions) == 3 and len(set(map(id, http.sessions))) == 3
    portal, *closed_with_their_loops = http.sessions
    assert all(session.closed for session in closed_with_their_loops)
    assert not portal.closed
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.anyio
async def test_concurrent_runs_on_one_loop_share_the_session(
    cluster: Cluster, http: HttpCounts
) -> None:
    results = await asyncio.gather(*(cluster.arun("true", "solo") for _ in range(3)))
    assert all(r.ok for r in results)
    assert len(http.sessions) == 1
    await cluster.aclose()
    assert http.sessions[0].closed


def test_no_unclosed_session_warning_at_interpreter_exit(sandbox: Sandbox) -> None:
    # The session is left open on purpose: exit must close it with the portal's loop.
    script = textwrap.dedent(
        f"""
        from podmagic import Cluster
        cluster = Cluster(kubeconfig={str(sandbox.kubeconfig)!r}, namespace={NS!r})
        assert cluster.run("true", "solo").ok
        assert cluster.run("true", "solo").ok
        print("ran")
        """
    )
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "always::ResourceWarning", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stderr
    assert "Unclosed" not in done.stderr and "unclosed" not in done.stderr, done.stderr


def test_a_loop_closed_by_hand_leaves_no_unclosed_session_report(
    cluster: Cluster, http: HttpCounts, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(cluster.arun("true", "solo")).ok
    finally:
        loop.close()  # without shutdown_asyncgens(): the session could not close with it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster.close()
        [session] = http.sessions
        assert session.closed
        del session
        http.sessions.clear()
        gc.collect()
    unclosed = [w for w in caught if "Unclosed" in str(w.message)]
    assert not unclosed and "Unclosed" not in caplog.text


def test_a_dropped_cluster_closes_its_session(sandbox: Sandbox, http: HttpCounts) -> None:
    assert Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS).run("true", "solo").ok
    [session] = http.sessions
    # Closed on the portal's loop, which finalizes the Cluster's dropped session keeper.
    wait_until(lambda: session.closed, what="the dropped Cluster's session was closed")


def test_a_cluster_dropped_in_a_reference_cycle_leaves_no_unclosed_session(
    sandbox: Sandbox, http: HttpCounts
) -> None:
    # As when a failed run's traceback holds the Cluster: only the cycle collector frees it.
    cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS)
    assert cluster.run("true", "solo").ok
    cycle: list[Any] = [cluster]
    cycle.append(cycle)
    del cluster
    session = weakref.ref(http.sessions.pop())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del cycle
        gc.collect()
        # The check keeps no reference to the session between polls.
        wait_until(
            lambda: (alive := session()) is None or alive.closed,
            what="the session of a Cluster freed by the cycle collector was closed",
        )
        gc.collect()
    assert not [w for w in caught if "Unclosed" in str(w.message)]
    still = session()
    assert still is None or still.closed


def test_a_blocking_close_inside_the_sessions_running_loop_closes_it_on_that_loop(
    sandbox: Sandbox, http: HttpCounts
) -> None:
    # As in a notebook: `await cluster.arun(...)` in one cell, `cluster.close()` in another,
    # both on the kernel's running loop.
    async def main() -> bool:
        cluster = Cluster(kubeconfig=sandbox.kubeconfig, namespace=NS)
        assert (await cluster.arun("true", "solo")).ok
        [session] = http.sessions
        cluster.close()  # cannot wait here: the close runs on the loop's next turns
        await await_until(lambda: session.closed, what="close() closed the session on its loop")
        return session.closed

    assert asyncio.run(main())
