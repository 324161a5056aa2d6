"""The sandbox never writes over, or deletes, a file it did not write; unknown pod names in its
Python API are one line naming the pods there are; ``%reload_ext podmagic`` keeps its sandbox.

The kubeconfig rules hold from every entry point that takes a path: ``Sandbox(kubeconfig=...)``
and ``podmagic-sandbox serve --kubeconfig``. (``%pod_sandbox start`` takes none: it always writes
into the sandbox's own temporary folder.)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sandbox_cli import run_cli

from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
PRECIOUS = "apiVersion: v1\nkind: Config\n# precious: the user's own\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of the test's own (so the real ~/.kube is never at risk) and no KUBECONFIG."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return folder


def small(kubeconfig: Path) -> Sandbox:
    """A quick sandbox (no pods, plain HTTP) writing its kubeconfig to ``kubeconfig``."""
    return Sandbox([], kubeconfig=kubeconfig, tls=False, auth=False)


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def left_by_a_killed_sandbox(path: Path) -> str:
    """Put at ``path`` what a sandbox killed with SIGKILL leaves: its kubeconfig, its writer
    gone. Returns the text."""
    with small(path) as sandbox:
        text = path.read_text()
        assert str(os.getpid()) in text.splitlines()[0]
        assert sandbox.running
    assert not path.exists()
    text = text.replace(f"pid {os.getpid()}:", f"pid {dead_pid()}:", 1)
    path.write_text(text)
    return text


# -- Sandbox(kubeconfig=...) ---------------------------------------------------------------------


@pytest.mark.parametrize("exists", [True, False])
def test_python_sandbox_refuses_the_users_own_kubeconfig(
    home: Path, tmp_path: Path, exists: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = home / ".kube" / "config"
    if exists:
        own.parent.mkdir()
        own.write_text(PRECIOUS)
    link = tmp_path / "looks-harmless"
    link.symlink_to(own)
    monkeypatch.chdir(home)
    for spelling in ("~/.kube/config", own, str(link), ".kube/../.kube/config"):
        with pytest.raises(
            ValueError, match=r"^refusing to overwrite your own ~/\.kube/config; "
        ) as error:
            Sandbox([], kubeconfig=spelling).start()
        assert "\n" not in str(error.value) and "kubeconfig= path" in str(error.value)
        if exists:
            assert own.read_text() == PRECIOUS
        else:
            assert not own.parent.exists()


def test_python_sandbox_refuses_a_path_listed_in_kubeconfig(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed, missing = tmp_path / "work.yaml", tmp_path / "not-yet.yaml"
    listed.write_text(PRECIOUS)
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(listed), str(missing)]))
    for path in (listed, missing):  # kubectl's own, whether it exists yet or not
        with pytest.raises(ValueError, match=r"it is listed in \$KUBECONFIG") as error:
            small(path).start()
        assert "\n" not in str(error.value)
    assert listed.read_text() == PRECIOUS
    assert not missing.exists()


def test_python_sandbox_refuses_an_existing_file_it_did_not_write(
    home: Path, tmp_path: Path
) -> None:
    existing = tmp_path / "existing.kc"
    existing.write_text("precious2\n")
    with pytest.raises(
        ValueError,
        match=r"^refusing to overwrite .*existing\.kc: it exists and the sandbox did not write it; ",
    ):
        small(existing).start()
    assert existing.read_text() == "precious2\n"


def test_python_sandbox_refuses_a_kubeconfig_with_the_marker_but_more_than_its_own_context(
    home: Path, tmp_path: Path
) -> None:
    # Someone kept the sandbox's file and added a cluster of theirs: it is theirs now.
    path = tmp_path / "kc"
    text = left_by_a_killed_sandbox(path)
    edited = text.replace(
        "clusters:\n", "clusters:\n- name: prod\n  cluster: {server: https://prod}\n", 1
    )
    path.write_text(edited)
    with pytest.raises(ValueError, match="the sandbox did not write it"):
        small(path).start()
    assert path.read_text() == edited


def test_python_sandbox_replaces_a_kubeconfig_left_by_a_sandbox_that_no_longer_runs(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "kc"
    stale = left_by_a_killed_sandbox(path)
    with small(path) as sandbox:
        assert sandbox.kubeconfig == path
        fresh = path.read_text()
        assert fresh != stale and f"pid {os.getpid()}:" in fresh.splitlines()[0]
    assert not path.exists()


def test_python_sandbox_refuses_the_kubeconfig_of_a_sandbox_still_running(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "kc"
    with small(path):
        written = path.read_text()
        with pytest.raises(
            ValueError, match=rf"a sandbox in process {os.getpid()}, which still runs"
        ):
            small(path).start()
        assert path.read_text() == written
    assert not path.exists()


@pytest.mark.parametrize("change", ["edited", "replaced"])
def test_stop_leaves_a_kubeconfig_that_no_longer_holds_what_it_wrote(
    home: Path, tmp_path: Path, change: str
) -> None:
    path = tmp_path / "kc"
    with small(path):
        if change == "edited":
            path.write_text(path.read_text() + "# a note of the user's\n")
        else:
            path.unlink()
            path.write_text(PRECIOUS)
        kept = path.read_text()
    assert path.read_text() == kept


def test_the_kubeconfig_it_writes_says_whose_it_is(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "kc"
    with small(path):
        first = path.read_text().splitlines()[0]
    assert re.fullmatch(r"# podmagic-sandbox kubeconfig, pid \d+: .*", first)


# -- the command line ----------------------------------------------------------------------------


def test_cli_refuses_an_existing_kubeconfig_it_did_not_write(tmp_path: Path) -> None:
    existing = tmp_path / "existing.kc"
    existing.write_text("precious2\n")
    result = run_cli("serve", "--empty", "--kubeconfig", str(existing), home=tmp_path / "home")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"error: refusing to overwrite {existing}: it exists and the sandbox did not write it; "
        "pass another --kubeconfig path\n"
    )
    assert existing.read_text() == "precious2\n"


def test_cli_refuses_a_path_listed_in_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "not-yet.yaml"
    monkeypatch.setenv("KUBECONFIG", str(missing))  # run_cli passes os.environ on
    result = run_cli("serve", "--empty", "--kubeconfig", str(missing), home=tmp_path / "home")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.count("\n") == 1 and "listed in $KUBECONFIG" in result.stderr
    assert result.stderr.endswith("; pass another --kubeconfig path\n")
    assert not missing.exists()


# -- unknown pods in the Python API --------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The demo cluster, as ``Sandbox()`` loads it."""
    with Sandbox(
        kubeconfig=tmp_path_factory.mktemp("demo") / "kc", tls=False, auth=False
    ) as running:
        yield running


def test_set_fault_on_an_unknown_pod_names_the_pods_there_are(demo: Sandbox) -> None:
    with pytest.raises(ValueError) as error:
        demo.set_fault("web-0", "drop", namespace="demo", fault_after=0.5)
    message = str(error.value)
    assert message.startswith("no pod 'web-0' in namespace 'demo'; its pods: ")
    assert "db-0" in message and "toolbox" in message and "\n" not in message


def test_annotate_in_the_wrong_namespace_says_which_namespace(demo: Sandbox) -> None:
    with pytest.raises(
        ValueError,
        match=r"^no pod 'db-0' in namespace 'default'; it is in namespace 'demo': pass namespace='demo'$",
    ):
        demo.annotate("db-0", {"sandbox.podmagic.io/ready": "false"})


def test_delete_pod_of_an_unknown_pod_is_one_line(demo: Sandbox) -> None:
    with pytest.raises(ValueError, match=r"^no pod 'nope': namespace 'empty' has no pods; "):
        demo.delete_pod("nope", namespace="empty")
    assert "db-0" in demo.pods("demo")


# -- %reload_ext podmagic ------------------------------------------------------------------------

RELOAD = """
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "podmagic")
sandbox = shell.run_line_magic("pod_sandbox", "start")
shell.run_line_magic("reload_ext", "podmagic")
results = shell.run_line_magic("pod", "-q -n demo db-0 -- echo still here")
print("OUT", results.stdout.decode().strip())
print("SAME", shell.run_line_magic("pod_sandbox", "status") is sandbox)
shell.run_line_magic("pod_sandbox", "stop")
print("STOPPED", sandbox.running, sandbox.kubeconfig)
"""


def test_reload_ext_keeps_using_the_running_sandbox(tmp_path: Path) -> None:
    home = tmp_path / "home"  # no ~/.kube/config, no KUBECONFIG: only the sandbox can serve
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    done = subprocess.run(
        [sys.executable, "-c", RELOAD],
        env={**env, "HOME": str(home)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [
        line for line in done.stdout.splitlines() if line.startswith(("OUT", "SAME", "STOPPED"))
    ]
    assert lines == ["OUT still here", "SAME True", "STOPPED False None"], done.stdout
