"""``python -m podmagic._quickstart``: run the quickstart notebook headlessly.

Executes ``notebooks/quickstart.ipynb`` in a fresh kernel (it starts the embedded sandbox
cluster itself), prints each cell with its text output, and writes the executed notebook to
``out/quickstart.ipynb`` (or ``--output``). Exits non-zero if a cell fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent


def _text_of(output: Any) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename')}: {output.get('evalue')}\n"
    return str(output.get("data", {}).get("text/plain", "")) + "\n"


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

    notebook = nbformat.read(args.notebook, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=args.timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(args.notebook.parent)}},
    )
    started = time.monotonic()
    failed: str | None = None
    try:
        client.execute()
    except CellExecutionError as error:
        failed = str(error).strip().splitlines()[-1]
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        print("\n".join(f">>> {line}" for line in cell.source.splitlines()))
        for output in cell.get("outputs", []):
            print(_text_of(output), end="")
        print()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, args.output)
    elapsed = time.monotonic() - started
    if failed:
        print(
            f"quickstart FAILED after {elapsed:.1f}s: {failed}\nexecuted notebook: {args.output}",
            file=sys.stderr,
        )
        return 1
    print(f"quickstart ran in {elapsed:.1f}s; executed notebook: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
