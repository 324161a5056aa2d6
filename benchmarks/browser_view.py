"""The live view in a real browser: what it costs the wire, the kernel and the page.

    .venv/bin/python -m benchmarks.browser_view              # 3 repetitions (about 15 minutes)
    .venv/bin/python -m benchmarks.browser_view --reps 1 --sizes 3x2000

JupyterLab on 127.0.0.1 and Debian's Chromium through Playwright, as the browser suite drives
them (``tests/browser/browser_harness.py``; needs the ``[browser]`` extra and
``/usr/bin/chromium``). It runs 3 pods × 2,000 lines and 20 pods × 5,000 lines (each pod
printing ``line 1`` … ``line N``, a 50 ms pause every 50 lines), each three ways: ``%pod``
(the live view), ``%pod -q`` (no view) and plain ``%%bash`` printing the same lines at the
same pace (one background loop per pod). Every run has a page and a kernel of its own, so a
page that falls behind holds up no other run. For each it measures

* **widget bytes per output byte**: every kernel → page WebSocket frame of a widget message
  (``comm_open``, ``comm_msg``, ``comm_close``) answering that cell, over the bytes the pods
  printed; also all the frames of the cell (display data, streams, replies);
* **kernel CPU**: the kernel process's user + system time over the run (``os.times()`` in the
  cell); the live view's rendering costs the difference from ``-q``;
* **browser lag**: from the kernel finishing the cell (``time.time()`` it writes to a file
  last) to the page showing the cell done (its prompt shows a number: a MutationObserver in
  the page calls back into the benchmark). A page that has not shown it ``--deadline``
  seconds (default 120) after the kernel finished is given up on: the run is reported as
  "did not finish within N s" (itself a finding) and its page closed.

Prints a table of medians and writes it with every measurement to
``benchmarks/results/browser-view.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Error, sync_playwright

from tests.browser.browser_harness import (  # the repository on the path first
    CHROMIUM,
    CHROMIUM_ARGS,
    ConsoleLog,
    NotebookPage,
    start_server,
    write_notebook,
)

#: (pods, lines per pod, deployment) of each scenario (``--sizes`` picks some).
SIZES = [(3, 2000, "three"), (20, 5000, "twenty")]
DEPLOYMENTS = {3: "three", 20: "twenty"}
MODES = ["%pod", "%pod -q", "%%bash"]

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata: {name: bench}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: three, namespace: bench}
spec:
  replicas: 3
  selector: {matchLabels: {app: three}}
  template:
    metadata: {labels: {app: three}}
    spec:
      containers: [{name: main, image: busybox}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: twenty, namespace: bench}
spec:
  replicas: 20
  selector: {matchLabels: {app: twenty}}
  template:
    metadata: {labels: {app: twenty}}
    spec:
      containers: [{name: main, image: busybox}]
"""

SETUP_CELL = "%load_ext podmagic\nsandbox = %pod_sandbox start --manifest bench.yaml"

#: Calls ``window.__podmagicDone(Date.now())`` (page clock, ms since the epoch) once cell
#: ``index``'s prompt shows a number. A call back, not a value read later: a page that is
#: far behind may not answer an evaluate for minutes.
WATCH_DONE_JS = """
(index) => {
  let told = false;
  const check = () => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[index];
    const prompt = cell?.querySelector('.jp-InputPrompt')?.textContent.trim() ?? '';
    if (!told && /^\\[\\d+\\]:?$/.test(prompt)) {
      told = true;
      window.__podmagicDone(Date.now());
    }
  };
  new MutationObserver(check).observe(document.body,
    {subtree: true, childList: true, characterData: true});
}
"""


def run_cell(mode: str, pods: int, lines: int, deployment: str, figures: str) -> str:
    """A cell that runs one measurement and writes to ``figures`` (JSON) when the kernel
    finished it and the kernel CPU it took."""
    # A pause every 50 lines: output that streams for seconds, as a live view is for (a run
    # under 250 ms shows no view at all).
    loop = (
        f"for i in $(seq 1 {lines}); do echo line $i; "
        "[ $((i % 50)) -eq 0 ] && sleep 0.05; done; true"
    )
    if mode == "%%bash":
        # The pods' loops side by side, as %pod runs them: the same lines at the same pace.
        script = f"for p in $(seq 1 {pods}); do ( {loop} ) & done; wait"
        run = f'get_ipython().run_cell_magic("bash", "", {script!r})'
    else:
        run = f"{mode} deploy/{deployment} -n bench -- sh -c '{loop}'"
    return (
        "import json, os, time\n"
        "time.sleep(2)  # the page has settled after the cell before\n"
        "_c0 = os.times()\n"
        f"{run}\n"
        "_c1 = os.times()\n"
        "_cpu = _c1.user + _c1.system - _c0.user - _c0.system\n"
        f"with open({figures!r}, 'w') as _f:\n"
        "    json.dump({'kernel_done': time.time(), 'cpu': _cpu}, _f)"
    )


def output_bytes(pods: int, lines: int) -> int:
    return pods * sum(len(f"line {i}\n") for i in range(1, lines + 1))


class Frames:
    """Kernel → page WebSocket frames, by the execute request (cell) they answer."""

    WIDGET = frozenset({"comm_open", "comm_msg", "comm_close"})

    def __init__(self) -> None:
        self.code_of: dict[str, str] = {}  # execute_request msg_id -> code
        self.widget: dict[str, int] = defaultdict(int)
        self.opened: dict[str, int] = defaultdict(int)  # comm_open: the view's code, once a run
        self.total: dict[str, int] = defaultdict(int)

    def attach(self, page: Any) -> None:
        def on_socket(socket: Any) -> None:
            if "/channels" not in socket.url:
                return
            socket.on("framesent", self._sent)
            socket.on("framereceived", self._received)

        page.on("websocket", on_socket)

    @staticmethod
    def _parse(payload: str | bytes) -> tuple[dict[str, Any], dict[str, Any], Any]:
        if isinstance(payload, str):
            message = json.loads(payload)
            return message["header"], message["parent_header"], message.get("content")
        from jupyter_server.services.kernels.connection.base import (
            deserialize_msg_from_ws_v1,
        )

        _channel, parts = deserialize_msg_from_ws_v1(payload)
        return json.loads(parts[0]), json.loads(parts[1]), json.loads(parts[3])

    def _sent(self, payload: str | bytes) -> None:
        header, _parent, content = self._parse(payload)
        if header.get("msg_type") == "execute_request":
            self.code_of[header["msg_id"]] = content.get("code", "")

    def _received(self, payload: str | bytes) -> None:
        header, parent, _content = self._parse(payload)
        request = parent.get("msg_id", "")
        size = len(payload.encode() if isinstance(payload, str) else payload)
        self.total[request] += size
        if header.get("msg_type") in self.WIDGET:
            self.widget[request] += size
        if header.get("msg_type") == "comm_open":
            self.opened[request] += size

    def for_code(self, code: str) -> tuple[int, int, int]:
        for request, sent in self.code_of.items():
            if sent == code:
                return self.widget[request], self.opened[request], self.total[request]
        raise AssertionError(f"no execute request seen for {code[:60]!r}")


def measure(
    browser: Any, server: Any, name: str, size: tuple[int, int, str], mode: str, deadline: float
) -> dict[str, Any]:
    """One run in a page and kernel of its own: its figures (``lag_s`` None when the page
    had not shown the cell done ``deadline`` seconds after the kernel finished)."""
    figures = server.root / f"{name}.json"
    cell = run_cell(mode, *size, figures.name)
    write_notebook(server.root / f"{name}.ipynb", [SETUP_CELL, cell])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        frames = Frames()
        frames.attach(page)
        console = ConsoleLog(server.kind)
        console.attach(page)
        done_at: list[float] = []
        page.expose_function("__podmagicDone", lambda at: done_at.append(at / 1000))
        notebook = NotebookPage(page, server, f"{name}.ipynb", ROOT / "artifacts" / "browser-view")
        notebook.open()
        notebook.shots.mkdir(parents=True, exist_ok=True)
        page.evaluate(WATCH_DONE_JS, 1)
        notebook.run_all()
        # The kernel's side first (a run takes minutes at most), then the page's, bounded.
        limit = time.monotonic() + 900
        while not figures.exists() and time.monotonic() < limit:
            page.wait_for_timeout(200)  # lets the page's call backs in meanwhile
        if not figures.exists():
            raise AssertionError(f"{name}: the kernel did not finish {mode} within 900 s")
        time.sleep(0.2)  # written by now (json.dump of a few bytes)
        kernel = json.loads(figures.read_text())
        while not done_at and time.time() < kernel["kernel_done"] + deadline:
            page.wait_for_timeout(200)
        widget, opened, total = frames.for_code(cell)
        printed = output_bytes(size[0], size[1])
        try:  # a page far behind may not paint within the limit
            page.screenshot(path=str(notebook.shots / f"{name}.png"), timeout=15_000)
        except Error:
            print(f"{name}: no screenshot (the page did not paint within 15 s)", file=sys.stderr)
        if console.unexpected():
            print(f"{name}: console errors:", console.unexpected(), file=sys.stderr)
        return {
            "size": f"{size[0]} × {size[1]:,}",
            "mode": mode,
            "output_bytes": printed,
            "widget_bytes": widget,
            "widget_per_output_byte": round(widget / printed, 3),
            "comm_open_bytes": opened,
            "page_bytes_per_output_byte": round(total / printed, 3),
            "kernel_cpu_s": round(kernel["cpu"], 3),
            "lag_s": round(done_at[0] - kernel["kernel_done"], 3) if done_at else None,
            "deadline_s": deadline,
        }
    finally:
        server.shutdown_notebook(f"{name}.ipynb")  # also a kernel still sending output
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=120.0,
        help="seconds after the kernel finished a run that its page may take to show it done"
        " (default 120); later is reported as 'did not finish within N s'",
    )
    parser.add_argument(
        "--sizes",
        default="3x2000,20x5000",
        help="pods x lines per pod, comma-separated; pods 3 or 20 (default 3x2000,20x5000)",
    )
    args = parser.parse_args()
    sizes = []
    for item in args.sizes.split(","):
        pods, lines = (int(part) for part in item.split("x"))
        if pods not in DEPLOYMENTS:
            parser.error(f"--sizes: {pods} pods; the benchmark's deployments have 3 or 20")
        sizes.append((pods, lines, DEPLOYMENTS[pods]))

    measured: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podmagic-browser-view-") as work:
        server = start_server("lab", Path(work))
        try:
            (server.root / "bench.yaml").write_text(MANIFEST)
            # Every cell in the page: JupyterLab's default leaves those out of view out of
            # the DOM, where neither their prompts nor their outputs can be watched.
            tracker = Path(work, "settings", "@jupyterlab", "notebook-extension")
            tracker.mkdir(parents=True, exist_ok=True)
            (tracker / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    for index in range(args.reps):
                        started = time.monotonic()
                        for size in sizes:
                            for number, mode in enumerate(MODES):
                                name = f"rep{index}-{size[0]}x{size[1]}-{number}"
                                found = measure(browser, server, name, size, mode, args.deadline)
                                print(json.dumps(found, ensure_ascii=False), flush=True)
                                measured.append(found)
                        print(f"repetition {index + 1}: {time.monotonic() - started:.0f} s")
                finally:
                    browser.close()
        finally:
            server.stop()

    rows = []
    header = (
        "| lines | run | widget B / output B | of which comm_open (kB) | all page B / output B "
        "| kernel CPU (s) | lag kernel → page (s) |"
    )
    rows += [header, "|---|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        label = f"{size[0]} × {size[1]:,}"
        for mode in MODES:
            runs = [m for m in measured if m["size"] == label and m["mode"] == mode]

            def median(key: str, runs: list[dict[str, Any]] = runs) -> float:
                return statistics.median(m[key] for m in runs)

            lags = [m["lag_s"] for m in runs if m["lag_s"] is not None]
            lag = f"{statistics.median(lags):.2f}" if lags else ""
            if len(lags) < len(runs):
                late = f"{len(runs) - len(lags)} of {len(runs)} " if len(runs) > 1 else ""
                lag += (" · " if lag else "") + (
                    f"{late}did not finish within {args.deadline:.0f} s"
                )
            rows.append(
                f"| {label} | `{mode}` | {median('widget_per_output_byte'):.2f} "
                f"| {median('comm_open_bytes') / 1000:.1f} "
                f"| {median('page_bytes_per_output_byte'):.2f} | {median('kernel_cpu_s'):.2f} "
                f"| {lag} |"
            )
    table = "\n".join(rows)
    print(table)
    out = ROOT / "benchmarks" / "results" / "browser-view.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"table": table, "measured": measured}, indent=1) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
