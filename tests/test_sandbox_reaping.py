"""Pod sandboxes reap what they start: every pause and holder process is waited and its
pipes are closed, even once the sandboxes are closed (no ResourceWarning for a later test)."""

from __future__ import annotations

import subprocess
import threading

from podmagic.sandbox._isolation import POOL_THREAD_PREFIX, PodSandboxes, _reap


def killed_with_a_pipe() -> subprocess.Popen[bytes]:
    popen = subprocess.Popen(
        ["sh", "-c", "echo why >&2; exec sleep 1000"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    popen.kill()
    return popen


def test_reap_waits_for_the_process_and_closes_its_pipes() -> None:
    popen = killed_with_a_pipe()
    _reap(popen)
    assert popen.returncode is not None
    assert popen.stderr is not None and popen.stderr.closed


def pool_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(POOL_THREAD_PREFIX)}


def test_processes_ended_after_close_are_still_reaped_and_the_pool_is_gone() -> None:
    # Other sandboxes of this test process (the session's) keep pools of their own.
    others = pool_threads()
    sandboxes = PodSandboxes(cluster=None, exists=lambda namespace, name, uid: False)
    sandboxes.close()
    popen = killed_with_a_pipe()
    sandboxes._reap_later([popen])  # a pod deleted as the sandbox stops
    assert popen.returncode is not None
    assert popen.stderr is not None and popen.stderr.closed
    assert not pool_threads() - others
