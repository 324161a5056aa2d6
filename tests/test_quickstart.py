"""What ``scripts/quickstart`` runs after the install: ``python -m podmagic._quickstart``.

It says what it is doing before the kernel starts and as the cells run (each cell printed as it
finishes), and ends with the next steps: your own cluster, the notebooks, the docs — whose
README sections and notebooks exist.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from podmagic._quickstart import NEXT_STEPS, README_SECTIONS

pytestmark = pytest.mark.timeout(180)

REPO = Path(__file__).resolve().parent.parent


def test_quickstart_prints_its_phases_the_cells_and_the_next_steps(tmp_path: Path) -> None:
    output = tmp_path / "quickstart.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "podmagic._quickstart", "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    phases = [line for line in lines if line.startswith("==> ")]
    assert phases[0] == "==> starting a Jupyter kernel for quickstart.ipynb"
    assert "%pod_sandbox start" in phases[1]
    assert phases[-1].startswith("==> quickstart ran in ") and str(output) in phases[-1]
    # The cells come between the phases, each with its output.
    start = lines.index(">>> sandbox = %pod_sandbox start")
    assert lines.index(phases[1]) < start < lines.index(phases[-1])
    assert any(line.startswith("1 pod in context podmagic-sandbox") for line in lines[start:])
    assert done.stdout.endswith(NEXT_STEPS)
    assert "Kernel is running over TCP" not in done.stderr
    assert output.is_file()


def test_the_next_steps_name_the_way_to_your_cluster_and_what_exists() -> None:
    text = " ".join(NEXT_STEPS.split())
    for needed in ("--context", "--kubeconfig", "KUBECONFIG", "%config PodMagic.context"):
        assert needed in text
    headings = re.findall(r"^## (.+)$", (REPO / "README.md").read_text(), re.MULTILINE)
    for section in README_SECTIONS:
        assert f'"{section}"' in text and section in headings, section
    for notebook in re.findall(r"([\w-]+\.ipynb)", NEXT_STEPS):
        assert (REPO / "notebooks" / notebook).is_file(), notebook
