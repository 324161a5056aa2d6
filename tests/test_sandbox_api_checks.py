"""The sandbox's Python API refuses what it cannot honour, in one line, and leaves nothing behind:
a stale kubeconfig someone edited is theirs, a refused path makes no folder, ``throttle`` and
``annotate`` check their arguments, and its errors are public names."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import test_sandbox_safety as safety
from test_sandbox_safety import dead_pid, small

import podmagic.sandbox
from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.timeout(120)

# The fixtures of the safety tests: a HOME of the test's own, the demo cluster.
home = safety.home
demo = safety.demo

PRECIOUS = "apiVersion: v1\nkind: Config\n# precious: the user's own\n"


# -- a stale kubeconfig is replaced only if it still holds what a sandbox wrote ------------------


def test_start_refuses_a_stale_kubeconfig_someone_edited(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "live.kc"
    with small(path):
        path.write_text(path.read_text() + "# my note\n")
    edited = path.read_text()
    assert "# my note" in edited  # stop() kept it: it is no longer the sandbox's
    # What a new process sees: the writer of the marker line has ended.
    stale = edited.replace(f"pid {os.getpid()}:", f"pid {dead_pid()}:", 1)
    path.write_text(stale)
    with pytest.raises(ValueError, match=r"it exists and the sandbox did not write it") as error:
        small(path).start()
    assert "\n" not in str(error.value)
    assert path.read_text() == stale


def test_start_refuses_a_stale_kubeconfig_with_a_changed_value(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    with small(path):
        written = path.read_text()
    assert "namespace: default" in written
    edited = written.replace(f"pid {os.getpid()}:", f"pid {dead_pid()}:", 1).replace(
        "namespace: default", "namespace: prod", 1
    )
    path.write_text(edited)
    with pytest.raises(ValueError, match=r"the sandbox did not write it"):
        small(path).start()
    assert path.read_text() == edited


# -- a refused or removed kubeconfig leaves no folder --------------------------------------------


def test_a_refused_kubeconfig_path_creates_no_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real.txt").write_text(PRECIOUS)
    with pytest.raises(ValueError, match=r"it exists and the sandbox did not write it"):
        Sandbox([], kubeconfig="sub/../real.txt", tls=False, auth=False).start()
    assert not (tmp_path / "sub").exists()
    assert (tmp_path / "real.txt").read_text() == PRECIOUS


def test_stop_removes_the_folders_it_made_for_the_kubeconfig(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with Sandbox([], kubeconfig="nodir/deeper/x.kc", tls=False, auth=False) as sandbox:
        assert sandbox.kubeconfig is not None and sandbox.kubeconfig.is_file()
    assert sorted(os.listdir(tmp_path)) == ["home"]


def test_stop_keeps_a_folder_it_made_that_is_no_longer_empty(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "made"
    with small(folder / "x.kc"):
        (folder / "theirs.txt").write_text("kept\n")
    assert os.listdir(folder) == ["theirs.txt"]


def test_stop_keeps_a_folder_that_was_there_before(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "existing"
    folder.mkdir()
    with small(folder / "x.kc"):
        pass
    assert folder.is_dir() and os.listdir(folder) == []


# -- throttle() and annotate() check their arguments ---------------------------------------------


@pytest.mark.parametrize(
    ("requests", "retry_after", "wrong"),
    [
        (-1, 1.0, r"requests: expected a whole number from 0 to 2147483647, got -1"),
        (2**31, 1.0, r"requests: expected a whole number from 0 to 2147483647, got 2147483648"),
        (2.5, 1.0, r"requests: expected a whole number from 0 to 2147483647, got 2\.5"),
        (True, 1.0, r"requests: expected a whole number from 0 to 2147483647, got True"),
        (2, math.nan, r"retry_after: expected seconds from 0 to 3600, got nan"),
        (2, math.inf, r"retry_after: expected seconds from 0 to 3600, got inf"),
        (0, -5, r"retry_after: expected seconds from 0 to 3600, got -5"),
        (2, "1", r"retry_after: expected seconds from 0 to 3600, got '1'"),
    ],
)
def test_throttle_refuses_bad_arguments_in_one_line(
    demo: Sandbox, requests: object, retry_after: object, wrong: str
) -> None:
    with pytest.raises(ValueError, match=rf"^throttle\(\) {wrong}$"):
        demo.throttle(requests, retry_after=retry_after)  # type: ignore[arg-type]
    assert demo.cluster is not None
    assert (demo.cluster.throttle_left, demo.cluster.throttle_retry_after) == (0, 1.0)


def test_throttle_takes_good_arguments(demo: Sandbox) -> None:
    assert demo.cluster is not None
    demo.throttle(0, retry_after=0)
    assert (demo.cluster.throttle_left, demo.cluster.throttle_retry_after) == (0, 0)
    demo.throttle(1, retry_after=2)
    assert (demo.cluster.throttle_left, demo.cluster.throttle_retry_after) == (1, 2.0)
    demo.throttle(0, retry_after=1.0)
    assert demo.pods("demo")  # not throttled any more


@pytest.mark.parametrize("value", [False, 1, 0.5, b"false"])
def test_annotate_refuses_a_value_that_is_not_a_string(demo: Sandbox, value: object) -> None:
    key = "sandbox.podmagic.io/ready"
    with pytest.raises(TypeError) as error:
        demo.annotate("db-0", {key: value}, namespace="demo")  # type: ignore[dict-item]
    assert str(error.value) == (
        f"annotation {key!r}: expected a string (or None to remove it), got {value!r}"
    )
    assert demo.cluster is not None
    pod = demo.cluster.pods[("demo", "db-0")].pod
    assert key not in pod["metadata"].get("annotations", {})
    assert pod["status"]["containerStatuses"][0]["ready"] is True


def test_annotate_refuses_a_key_that_is_not_a_string(demo: Sandbox) -> None:
    with pytest.raises(TypeError, match=r"^annotation 1: expected a string key, got int$"):
        demo.annotate("db-0", {1: "x"}, namespace="demo")  # type: ignore[dict-item]


def test_annotate_still_sets_and_removes(demo: Sandbox) -> None:
    assert demo.cluster is not None
    key = "sandbox.podmagic.io/ready"
    demo.annotate("db-0", {key: "false"}, namespace="demo")
    pod = demo.cluster.pods[("demo", "db-0")].pod
    assert pod["status"]["containerStatuses"][0]["ready"] is False
    demo.annotate("db-0", {key: None}, namespace="demo")
    pod = demo.cluster.pods[("demo", "db-0")].pod
    assert key not in pod["metadata"].get("annotations", {})
    assert pod["status"]["containerStatuses"][0]["ready"] is True


# -- public error names --------------------------------------------------------------------------


def test_a_bad_fault_raises_the_public_behaviour_error(demo: Sandbox) -> None:
    with pytest.raises(podmagic.sandbox.BehaviourError) as error:
        demo.set_fault("db-1", "bogus", namespace="demo")
    assert type(error.value).__module__ == "podmagic.sandbox._behaviour"
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)
    assert "BehaviourError" in podmagic.sandbox.__all__
    assert "BehaviourError" in dir(podmagic.sandbox)


def test_sandbox_docs_name_no_private_module() -> None:
    assert podmagic.sandbox.__doc__ is not None
    assert "._" not in podmagic.sandbox.__doc__
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "podmagic._transport.PING_INTERVAL" not in readme
    assert "podmagic.sandbox._validation.MAX_REPLICAS" not in readme
