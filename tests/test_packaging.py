"""What `pip install podmagic[...]` promises: the extras, the console script, and one line that
says what to install when the sandbox's extra is missing.

The missing extra is simulated in a child interpreter with ``sys.modules["cryptography"] = None``
(so ``import cryptography`` fails as if it were not installed), never by uninstalling anything.
"""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd
from test_sandbox_cli import environment, wait_for_kubeconfig

from podmagic import PodResult, PodResults

HINT = "pip install 'podmagic[sandbox]'"
MISSING = f"the podmagic sandbox needs the 'cryptography' package, which is not installed: {HINT}"
WITHOUT_SANDBOX_EXTRA = "import sys\nsys.modules['cryptography'] = None\n"


def run_without_sandbox_extra(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child interpreter where ``import cryptography`` fails."""
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SANDBOX_EXTRA + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment(tmp_path / "home"),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def requirements_by_extra() -> dict[str | None, set[str]]:
    """The installed distribution's requirements: extra name (None for the base) → names."""
    found: dict[str | None, set[str]] = {}
    for line in metadata.requires("podmagic") or []:
        requirement, _, marker = line.partition(";")
        name = requirement.split("[")[0]
        for separator in (">", "<", "=", "!", "~", " "):
            name = name.split(separator)[0]
        extra = None
        if "extra ==" in marker:
            extra = marker.split("extra ==")[1].strip().strip("\"'")
        found.setdefault(extra, set()).add(name.strip().lower())
    return found


# -- extras ----------------------------------------------------------------------------------


def test_extras_split_the_sandbox_parquet_and_dev_tools_from_the_base_install() -> None:
    extras = requirements_by_extra()
    assert "cryptography" not in extras[None]
    assert "cryptography" in extras["sandbox"]
    assert "pyarrow" in extras["parquet"]
    assert {"ruff", "mypy", "build"} <= extras["dev"]
    assert {"pytest", "podmagic"} <= extras["test"]  # the tests run against the sandbox
    # The engine and the magics need these whatever the use.
    assert {"kubernetes", "ipython", "ipywidgets", "pandas", "aiohttp", "pyyaml"} <= extras[None]


def test_engine_and_magics_work_without_the_sandbox_extra(tmp_path: Path) -> None:
    done = run_without_sandbox_extra(
        """
        import podmagic
        for name in podmagic.__all__:
            getattr(podmagic, name)
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "podmagic")
        assert "pod" in shell.magics_manager.magics["line"]
        import podmagic.sandbox  # the package itself imports; only the server needs the extra
        print("base install ok")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "base install ok"


def test_sandbox_from_python_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    done = run_without_sandbox_extra(
        """
        try:
            from podmagic.sandbox import Sandbox
        except ModuleNotFoundError as error:
            print(type(error).__name__, error.name)
            print(error)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    kind, message = done.stdout.splitlines()
    assert kind == "MissingExtraError cryptography"
    assert message == MISSING


def test_module_command_without_the_extra_is_one_line(tmp_path: Path) -> None:
    done = run_without_sandbox_extra(
        f"""
        import runpy
        sys.argv = ["podmagic-sandbox", "serve", "--kubeconfig", {str(tmp_path / "kc")!r}]
        runpy.run_module("podmagic.sandbox", run_name="__main__")
        """,
        tmp_path,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"error: {MISSING}"]
    assert not (tmp_path / "kc").exists()


def test_pod_sandbox_start_without_the_extra_is_one_line(tmp_path: Path) -> None:
    done = run_without_sandbox_extra(
        """
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "podmagic")
        print("---")
        sys.stdout.flush()
        first = shell.run_cell("%pod_sandbox start")
        print("---")
        sys.stdout.flush()
        second = shell.run_cell("from podmagic.sandbox import Sandbox\\nSandbox()")
        print("---")
        print(first.success, second.success)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    _, magic, python, outcome = done.stdout.split("---\n")
    line = f"MissingExtraError: {MISSING}"
    assert magic.splitlines() == [line]
    assert python.splitlines() == [line]
    assert outcome.split() == ["False", "False"]


# -- the console script ----------------------------------------------------------------------


def console_script() -> Path:
    """The installed ``podmagic-sandbox`` entry point, beside this interpreter."""
    (entry,) = [
        entry
        for entry in metadata.entry_points(group="console_scripts")
        if entry.name == "podmagic-sandbox"
    ]
    assert entry.value == "podmagic.sandbox.__main__:main"
    path = Path(sys.executable).parent / "podmagic-sandbox"
    assert path.is_file(), f"{path} is not installed; run scripts/bootstrap"
    return path


def test_console_script_help_names_itself(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(console_script()), "serve", "--help"],
        capture_output=True,
        text=True,
        env=environment(tmp_path / "home"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: podmagic-sandbox serve ")
    assert "--kubeconfig" in done.stdout


def test_console_script_serves_the_demo_cluster_until_signalled(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [str(console_script()), "serve", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(tmp_path / "home"),
        cwd=tmp_path,  # not the repository: the installed entry point, whatever the directory
    )
    try:
        config = wait_for_kubeconfig(kubeconfig, process, timeout=60)
        assert config["current-context"] == "podmagic-sandbox"
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    first, last = stdout.splitlines()[0], stdout.splitlines()[-1]
    assert first.startswith("podmagic sandbox serving https://127.0.0.1:")
    assert "with 12 pods" in first
    assert last == "podmagic sandbox stopped"
    assert not kubeconfig.exists()


# -- the parquet extra -----------------------------------------------------------------------


def test_frames_round_trip_through_parquet_with_their_attrs() -> None:
    started = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    results = PodResults(
        [
            PodResult(
                context="c",
                namespace="n",
                pod="a",
                container="app",
                status="ok",
                exit_code=0,
                stdout=b"x=1\ny=2\n",
                started_at=started,
                duration=0.5,
            ),
            PodResult(context="c", namespace="n", pod="b", status="failed", exit_code=1),
            PodResult(context="c", namespace="n", pod="c", status="skipped", error="not ready"),
        ]
    )
    for frame in (results.to_dataframe(), results.parse("kv")):
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        buffer.seek(0)
        back = pd.read_parquet(buffer)
        pd.testing.assert_frame_equal(back, frame, check_dtype=False)
        assert back.attrs == frame.attrs
    assert back.attrs["skipped"] == {"c": "not ready"}
