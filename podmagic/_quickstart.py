"""``python -m podmagic._quickstart``: run the quickstart notebook headlessly.

Executes ``notebooks/quickstart.ipynb`` in a fresh kernel (it starts the embedded sandbox
cluster itself), prints each cell with its text output as it finishes, and writes the executed
notebook to ``out/quickstart.ipynb`` (or ``--output``). Ends with the next steps: your own
cluster, the notebooks, the docs. Exits non-zero if a cell fails.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent

#: The README sections :data:`NEXT_STEPS` sends the reader to (a test checks they exist).
README_SECTIONS = (
    "In a notebook",
    "Using the engine from Python",
    "The sandbox cluster",
    "Failure behaviour",
)

NEXT_STEPS = """\
Next steps
  Your own cluster   podmagic reads your kubeconfig as kubectl does ($KUBECONFIG, else
                     ~/.kube/config) and uses its current context. In a notebook or IPython:
                         %load_ext podmagic
                         %pod deploy/NAME -n NAMESPACE -- hostname
                     Another context or file: --context NAME / --kubeconfig PATH on a %pod
                     line, %config PodMagic.context = "NAME" for every one, or from Python
                     Cluster(context="NAME", kubeconfig="PATH"). Contexts named like *prod*
                     ask for --yes.
  The notebooks      notebooks/quickstart.ipynb (the one just run), fanout-diagnostics.ipynb,
                     runbook-example.ipynb. Open them with .venv as the kernel, e.g.
                         .venv/bin/pip install jupyterlab && .venv/bin/jupyter lab notebooks/
                     or try %pod in a terminal: .venv/bin/ipython
  The docs           README.md: "In a notebook" (every %pod option), "Using the engine
                     from Python", "The sandbox cluster", "Failure behaviour". In IPython,
                     %pod? shows the full help.
  The sandbox alone  .venv/bin/python -m podmagic.sandbox serve --kubeconfig /tmp/sandbox.kubeconfig
                     then KUBECONFIG=/tmp/sandbox.kubeconfig kubectl get pods -A
"""


def _phase(text: str) -> None:
    print(f"==> {text}", flush=True)


def _text_of(output: Any) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}\n"
    return str(output.get("data", {}).get("text/plain", "")) + "\n"


def _print_cell(cell: Any, **_: Any) -> None:
    """nbclient's ``on_cell_executed`` hook: show a code cell and its text output."""
    if cell.cell_type != "code":
        return
    print("\n".join(f">>> {line}" for line in cell.source.splitlines()))
    for output in cell.get("outputs", []):
        print(_text_of(output), end="")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podmagic._quickstart", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--notebook", type=Path, default=REPOSITORY / "notebooks" / "quickstart.ipynb"
    )
    parser.add_argument("--output", type=Path, default=REPOSITORY / "out" / "quickstart.ipynb")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = parser.parse_args(argv)
    if not args.notebook.is_file():
        print(
            f"error: {args.notebook} not found; run from a clone of the podmagic repository "
            "or pass --notebook",
            file=sys.stderr,
        )
        return 2

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config

    notebook = nbformat.read(args.notebook, as_version=4)
    started = time.monotonic()
    failed: str | None = None
    _phase(f"starting a Jupyter kernel for {args.notebook.name}")
    with tempfile.TemporaryDirectory(prefix="podmagic-quickstart-") as sockets:
        # Local sockets (IPC) rather than TCP on localhost: nothing listens on the network,
        # and the kernel has no reason to warn about unencrypted TCP.
        config = Config({"KernelManager": {"transport": "ipc", "ip": f"{sockets}/kernel"}})
        client = NotebookClient(
            notebook,
            timeout=args.timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(args.notebook.parent)}},
            config=config,
            on_notebook_start=lambda **_: _phase(
                "running its cells: %pod_sandbox start starts the embedded cluster, "
                "then %pod runs against it"
            ),
            on_cell_executed=_print_cell,
        )
        try:
            client.execute()
        except CellExecutionError as error:
            failed = str(error).strip().splitlines()[-1]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, args.output)
    elapsed = time.monotonic() - started
    if failed:
        print(
            f"quickstart FAILED after {elapsed:.1f}s: {failed}\nexecuted notebook: {args.output}",
            file=sys.stderr,
        )
        return 1
    _phase(f"quickstart ran in {elapsed:.1f}s; executed notebook: {args.output}")
    print()
    print(NEXT_STEPS, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
