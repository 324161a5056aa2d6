"""Every code block of README.md works when pasted, against sandbox clusters.

The blocks are read from README.md itself, so a changed or added snippet is tested as it
stands. Each fenced block with a language is one of:

* a notebook snippet (``python`` with a ``%`` magic or a top-level ``await``): pasted as one
  cell into one real kernel, in README order, so the sandbox that the first one starts
  (``%pod_sandbox start``) serves the next;
* a Python script (``python`` otherwise): run by ``python -c`` in a fresh process;
* a shell snippet with a runner in :data:`SHELL_RUNNERS`;
* excluded in :data:`EXCLUDED`, with the reason.

A block that is none of these fails :func:`test_every_readme_block_is_run_or_excluded`. Blocks
without a language (diagrams) are not code. Everything runs with its own ``HOME`` and in a
folder holding the ``cluster.yaml`` a snippet may name (the demo cluster's manifest, the only
one the README shows); ``KUBECONFIG`` holds a context
``staging`` (a second sandbox with namespace ``shop``), the cluster the engine snippet names.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyter_client.manager import KernelManager

from podmagic.sandbox import Sandbox, demo_manifest

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

#: Blocks not run, by how their first line starts, and why.
EXCLUDED = {
    "scripts/quickstart": (
        "creates .venv and runs the whole quickstart or test suite: tests/test_quickstart.py "
        "runs what scripts/quickstart runs, and scripts/test is this suite"
    ),
    ".venv/bin/python -m benchmarks.run": (
        "benchmark runs of minutes; every scenario in miniature is tests/test_benchmarks_smoke.py"
    ),
    ".venv/bin/python -m benchmarks.profile_fanout": (
        "profiles a fan-out over 500 pods, several contenders, for minutes; the block is its "
        "usage line (options in brackets), not a command to paste"
    ),
    "papermill notebooks/runbook-example.ipynb": (
        "names a cluster the reader has (prod-eu): tests/test_provenance.py runs the runbook "
        "with papermill -p context/namespace against a sandbox's context"
    ),
}

#: The cluster.yaml a snippet may name (``Sandbox("cluster.yaml")``, ``--manifest cluster.yaml``):
#: the README shows no cluster.yaml of its own and points at the demo cluster, so a reader's is
#: the demo's. (A made-up one with other pods once hid a snippet naming a pod the demo lacks.)
CLUSTER_YAML = demo_manifest()

#: The cluster behind the context ``staging``: app=web in namespace shop, deploy/api in default.
STAGING_YAML = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: python}]}
"""


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int  # README line of the opening fence

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.language}) {self.first_line[:50]}"

    @property
    def is_notebook(self) -> bool:
        return self.language == "python" and any(
            line.startswith(("%", "await ")) or re.match(r"\w+ = %", line)
            for line in self.code.splitlines()
        )


def readme_blocks() -> list[Block]:
    """The fenced code blocks of README.md that name a language, in order."""
    blocks: list[Block] = []
    lines = README.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = re.match(r"^```(\S*)\s*$", lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].rstrip() != "```":
            end += 1
        if opening.group(1):
            blocks.append(Block(opening.group(1), "\n".join(lines[index + 1 : end]), index + 1))
        index = end + 1
    return blocks


def exclusion(block: Block) -> str | None:
    return next(
        (reason for start, reason in EXCLUDED.items() if block.first_line.startswith(start)), None
    )


# -- the environment the snippets are pasted into ------------------------------------------------


@dataclass
class Environment:
    folder: Path  # the working folder: holds cluster.yaml
    env: dict[str, str] = field(repr=False)  # os.environ's copy: never in a failure report


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "cluster.yaml").write_text(CLUSTER_YAML)
    home = folder.parent / f"{folder.name}-home"
    home.mkdir()
    with Sandbox(STAGING_YAML) as staging:
        assert staging.kubeconfig is not None
        config = yaml.safe_load(staging.kubeconfig.read_text())
        config["contexts"][0]["name"] = config["current-context"] = "staging"
        kubeconfig = home / "staging.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        kubeconfig.chmod(0o600)
        env = {
            **os.environ,
            "HOME": str(home),
            "KUBECONFIG": str(kubeconfig),
            "JUPYTER_PLATFORM_DIRS": "1",
            # `python` in a shell snippet is this environment's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        yield Environment(folder, env)


# -- notebook snippets: one kernel, README order -------------------------------------------------


def run_cell(client: Any, code: str, timeout: float = 90) -> tuple[str, list[str]]:
    """Run one cell; its reply status and the text of its outputs (errors as their lines)."""
    texts: list[str] = []

    def keep(message: dict[str, Any]) -> None:
        content = message["content"]
        kind = message["msg_type"]
        if kind == "stream":
            texts.append(content["text"])
        elif kind in ("display_data", "execute_result", "update_display_data"):
            texts.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            texts.append(f"{content['ename']}: {content['evalue']}")

    reply = client.execute_interactive(code, timeout=timeout, output_hook=keep)
    return str(reply["content"]["status"]), texts


#: A run's summary header: "3 pods in context C, namespace N: 2 ok, 1 skipped".
SUMMARY = re.compile(r"^\d+ pods? in context .*?: (?P<counts>.+)$", re.MULTILINE)


def failed_runs(text: str) -> list[str]:
    """Summary headers that count pods other than ok or skipped."""
    return [
        match.group(0)
        for match in SUMMARY.finditer(text)
        if not all(
            re.fullmatch(r"\d+ (ok|skipped)", part.strip())
            for part in match.group("counts").split(",")
        )
    ]


def test_notebook_snippets_run_in_one_kernel_in_readme_order(environment: Environment) -> None:
    blocks = [block for block in readme_blocks() if block.is_notebook and not exclusion(block)]
    assert blocks, "README.md has no notebook snippets?"
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(environment.folder), env=environment.env)
    client = manager.client()
    client.start_channels()
    problems: list[str] = []
    try:
        client.wait_for_ready(timeout=60)
        for block in blocks:
            status, texts = run_cell(client, block.code)
            output = "\n".join(texts)
            if status != "ok":
                problems.append(f"{block.name}: {status}\n{output}")
                continue
            runs = len(SUMMARY.findall(output))
            magics = len(re.findall(r"^(?:\w+ = )?%%?pod ", block.code, re.MULTILINE))
            if runs < magics:  # results shown by Python code have summaries too
                problems.append(f"{block.name}: {magics} %pod runs but {runs} summaries\n{output}")
            problems.extend(f"{block.name}: {line}" for line in failed_runs(output))
        run_cell(client, "%pod_sandbox stop")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=False)
    assert not problems, "\n\n".join(problems)


# -- Python scripts ------------------------------------------------------------------------------


def python_blocks() -> list[Block]:
    return [
        block
        for block in readme_blocks()
        if block.language == "python" and not block.is_notebook and not exclusion(block)
    ]


@pytest.mark.parametrize("block", python_blocks(), ids=lambda block: f"line{block.line}")
def test_python_snippet_runs_as_a_script(block: Block, environment: Environment) -> None:
    done = subprocess.run(
        [sys.executable, "-c", block.code],
        cwd=environment.folder,
        env=environment.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.name}\n{done.stdout}\n{done.stderr}"


# -- shell snippets ------------------------------------------------------------------------------


def run_serve_then_kubectl(block: Block, environment: Environment, tmp_path: Path) -> None:
    """The sandbox CLI: the first line serves (in one terminal) until stopped; the other lines
    run once the kubeconfig it writes exists (in another terminal). The snippet's kubeconfig
    path under /tmp is replaced by one of this test's own, so parallel runs do not meet."""
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH; the snippet runs it")
    lines = [line for line in block.code.splitlines() if line.strip()]
    named = re.search(r"--kubeconfig (\S+)", lines[0])
    assert named, f"{block.name}: the serve line names no --kubeconfig"
    kubeconfig = tmp_path / "sandbox.kubeconfig"
    script = [line.replace(named.group(1), str(kubeconfig)) for line in lines]
    server = subprocess.Popen(
        ["bash", "-c", "exec " + script[0]],
        cwd=environment.folder,
        env=environment.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists():
            if server.poll() is not None:
                pytest.fail(f"{block.name}: the server exited: {server.communicate()[0]}")
            assert time.monotonic() < deadline, f"{block.name}: no kubeconfig within 60 s"
            time.sleep(0.05)
        done = subprocess.run(
            ["bash", "-ec", "\n".join(script[1:])],
            cwd=environment.folder,
            env=environment.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{block.name}\n{done.stdout}\n{done.stderr}"
        assert "db-0" in done.stdout, done.stdout
    finally:
        server.terminate()
        server.communicate(timeout=30)
    assert server.returncode == 0
    assert not kubeconfig.exists()


#: Shell snippets that run, by how their first line starts.
SHELL_RUNNERS: dict[str, Callable[[Block, Environment, Path], None]] = {
    "python -m podmagic.sandbox serve": run_serve_then_kubectl,
    "podmagic-sandbox serve": run_serve_then_kubectl,
}


def shell_runner(block: Block) -> Callable[[Block, Environment, Path], None] | None:
    return next(
        (run for start, run in SHELL_RUNNERS.items() if block.first_line.startswith(start)), None
    )


def shell_blocks() -> list[Block]:
    return [
        block
        for block in readme_blocks()
        if block.language in ("bash", "sh", "shell", "console") and not exclusion(block)
    ]


@pytest.mark.parametrize("block", shell_blocks(), ids=lambda block: f"line{block.line}")
def test_shell_snippet_runs(block: Block, environment: Environment, tmp_path: Path) -> None:
    run = shell_runner(block)
    assert run is not None, f"{block.name}: no runner; add one to SHELL_RUNNERS or EXCLUDED"
    run(block, environment, tmp_path)


def test_every_readme_block_is_run_or_excluded() -> None:
    unknown = [
        block.name
        for block in readme_blocks()
        if not exclusion(block)
        and block.language != "python"
        and not (block.language in ("bash", "sh", "shell", "console") and shell_runner(block))
    ]
    assert not unknown, f"README blocks neither run nor excluded (see EXCLUDED): {unknown}"


@pytest.mark.parametrize(
    ("line", "arguments"),
    [
        ("start   # optional: the embedded cluster", "start   "),
        ("start --manifest a#b.yaml  # a # inside a word is text", "start --manifest a#b.yaml  "),
        ("start --manifest 'x # y.yaml'", "start --manifest 'x # y.yaml'"),
        ('start --manifest "x\\" # y.yaml"', 'start --manifest "x\\" # y.yaml"'),
        ("start --manifest x\\ #y.yaml", "start --manifest x\\ #y.yaml"),
        ("# only a comment", ""),
    ],
)
def test_pod_sandbox_reads_a_comment_as_a_shell_does(line: str, arguments: str) -> None:
    from podmagic._magics import _without_comment

    assert _without_comment(line) == arguments
