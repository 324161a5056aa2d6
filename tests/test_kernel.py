"""%pod / %%pod through a real Jupyter kernel, and through terminal IPython.

One kernel for the module (jupyter_client's ``KernelManager``), started with the ``python3``
kernelspec, i.e. the interpreter running pytest (``scripts/test-compat`` runs this file again on
ipykernel 6 / IPython 8). The sandbox runs inside the kernel, started the way a notebook does:
``sandbox = %pod_sandbox start`` (the demo cluster: namespace ``demo``, ``app=web`` has three
pods, ``app=db`` two).

Every IOPub message is kept with its arrival time and its parent header, so each test can say
which cell a message belongs to and when it came.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipykernel
import IPython
import pytest
from _waiting import wait_until
from jupyter_client.manager import KernelManager

from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.timeout(120)

#: What reaches a cell's output area (comm traffic goes to widget models, not to a cell).
OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error", "clear_output")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass
class Message:
    at: float  # time.monotonic() when received
    type: str
    parent: str | None
    content: dict[str, Any]

    @property
    def display_id(self) -> str | None:
        return (self.content.get("transient") or {}).get("display_id")

    @property
    def size(self) -> int:
        return len(json.dumps(self.content))


@dataclass
class Cell:
    msg_id: str
    sent: float
    reply: dict[str, Any]
    idle: float  # when the kernel reported idle for this cell

    @property
    def status(self) -> str:
        return str(self.reply["status"])


class Kernel:
    """A kernel client that records every IOPub message."""

    def __init__(self, manager: Any, client: Any) -> None:
        self.manager = manager
        self.client = client
        self.log: list[Message] = []
        self._replies: dict[str, dict[str, Any]] = {}
        self._idle: dict[str, float] = {}

    def send(self, code: str) -> str:
        return str(self.client.execute(code))

    def pump(self, timeout: float = 0.05) -> None:
        """Take what has arrived on IOPub and on the shell channel."""
        try:
            msg = self.client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            pass
        else:
            parent = msg["parent_header"].get("msg_id")
            self.log.append(Message(time.monotonic(), msg["msg_type"], parent, msg["content"]))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                self._idle[parent] = time.monotonic()
        while True:
            try:
                reply = self.client.get_shell_msg(timeout=0)
            except queue.Empty:
                break
            self._replies[reply["parent_header"]["msg_id"]] = reply["content"]

    def wait(self, msg_id: str, sent: float, timeout: float = 30) -> Cell:
        """Wait until the cell's reply arrived and the kernel went idle after it."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._idle or msg_id not in self._replies:
            if time.monotonic() > deadline:
                raise AssertionError(f"the cell did not finish within {timeout} s")
            self.pump()
        return Cell(msg_id, sent, self._replies[msg_id], self._idle[msg_id])

    def run(self, code: str, timeout: float = 30) -> Cell:
        sent = time.monotonic()
        return self.wait(self.send(code), sent, timeout)

    def ok(self, code: str, timeout: float = 30) -> Cell:
        cell = self.run(code, timeout)
        assert cell.status == "ok", (code, cell.reply)
        return cell

    def value(self, expression: str) -> Any:
        """A JSON-able expression evaluated in the kernel."""
        cell = self.ok(f"import json as _json\nprint(_json.dumps({expression}))")
        return json.loads(self.stdout(cell))

    def messages(self, cell: Cell | str, *types: str) -> list[Message]:
        """The messages whose parent is ``cell``, optionally of these types only."""
        msg_id = cell.msg_id if isinstance(cell, Cell) else cell
        return [m for m in self.log if m.parent == msg_id and (not types or m.type in types)]

    def outputs(self, cell: Cell | str) -> list[Message]:
        return self.messages(cell, *OUTPUT_TYPES)

    def stdout(self, cell: Cell) -> str:
        return "".join(
            m.content["text"]
            for m in self.messages(cell, "stream")
            if m.content["name"] == "stdout"
        )

    def updates_of(self, display_id: str) -> list[Message]:
        """Every ``update_display_data`` for this display slot, whatever its parent header."""
        return [
            m for m in self.log if m.type == "update_display_data" and m.display_id == display_id
        ]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        manager = KernelManager(kernel_name="python3")
        manager.start_kernel(cwd=str(tmp_path_factory.mktemp("kernel")))
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            kernel = Kernel(manager, client)
            kernel.ok("%load_ext podmagic\nsandbox = %pod_sandbox start")
            yield kernel
            kernel.ok("%pod_sandbox stop")
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=False)


def widget_slot(kernel: Kernel, cell: Cell) -> str:
    """The display id of the cell's live view (its one widget display)."""
    slots = [m for m in kernel.messages(cell, "display_data") if WIDGET_VIEW in m.content["data"]]
    assert len(slots) == 1, [m.content for m in kernel.messages(cell, "display_data")]
    assert slots[0].content["data"]["text/plain"] == ""
    display_id = slots[0].display_id
    assert display_id
    return display_id


# -- the kernel is the one of this environment -----------------------------------------------------


def test_the_kernel_runs_this_environments_ipykernel_and_ipython(kernel: Kernel) -> None:
    # scripts/test-compat relies on this: its kernels must be .venv-compat's ipykernel 6.
    remote = kernel.value(
        "[__import__('ipykernel').__version__, __import__('IPython').__version__,"
        " __import__('sys').prefix]"
    )
    assert remote == [ipykernel.__version__, IPython.__version__, sys.prefix]


# -- a. --bg: the run outlives its cell and stays in its own display slot -------------------------


def test_background_run_stays_in_its_own_slot(kernel: Kernel, tmp_path: Path) -> None:
    first = kernel.ok(
        "h = %pod -l app=web -n demo --bg -- for i in 1 2 3; do echo tick $i; sleep 0.3; done"
    )
    slot = widget_slot(kernel, first)
    # Cell 2 stays busy until the run's summary has arrived (the test then opens the gate),
    # so the run ends while a later cell runs, however slow the machine.
    gate = tmp_path / "summary-arrived"
    second_sent = time.monotonic()
    second_id = kernel.send(
        'print("second")\nimport os, time\ndeadline = time.monotonic() + 60\n'
        f"while not os.path.exists({str(gate)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.02)"
    )
    try:
        wait_until(
            lambda: kernel.pump() or kernel.updates_of(slot), what="the run's summary arrived"
        )
    finally:
        gate.touch()
    second = kernel.wait(second_id, second_sent)
    assert second.status == "ok", second.reply

    # Cell 1 returned at once with a handle; its live view is one widget display.
    assert first.idle - first.sent < 2.0
    assert [m.type for m in kernel.outputs(first)] == ["display_data"]

    # While cell 2 ran, the run went on streaming into cell 1's widgets ...
    live = [m for m in kernel.log if m.type == "comm_msg" and second.sent <= m.at <= second.idle]
    assert any("tick 3" in json.dumps(m.content) for m in live)
    # ... and put its summary up in cell 1's slot, by display id,
    updates = kernel.updates_of(slot)
    assert len(updates) == 1
    summary = updates[0]
    assert second.sent < summary.at < second.idle
    assert set(summary.content["data"]) == {"text/plain", "text/html"}
    text = summary.content["data"]["text/plain"]
    assert text.startswith("3 pods in context podmagic-sandbox, namespace demo: 3 ok")
    assert text.count("web-") >= 3 and " ok " in text
    assert "— 3 pods, exit 0" in text
    # ... while nothing of it reached cell 2's output: only its own print.
    assert [(m.type, m.content.get("text")) for m in kernel.outputs(second)] == [
        ("stream", "second\n")
    ]
    # An update can only rewrite an existing slot: none for a slot cell 2 never showed.
    shown_in_second = {m.display_id for m in kernel.messages(second, "display_data")}
    assert slot not in shown_in_second

    third = kernel.ok("r3 = h.result(timeout=10)\nprint(repr(h))")
    assert kernel.stdout(third).startswith(
        "<BackgroundRun app=web in namespace demo: done, 3/3 done"
    )
    assert kernel.value("[r3.ok, len(r3), sorted({x.stdout.decode() for x in r3})]") == [
        True,
        3,
        ["tick 1\ntick 2\ntick 3\n"],
    ]
    # The slot was updated exactly once: nothing arrived after the run ended.
    assert len(kernel.updates_of(slot)) == 1
    assert {(m.type, m.content.get("name")) for m in kernel.outputs(third)} == {
        ("stream", "stdout")
    }


# -- b. interrupting a blocking fan-out ----------------------------------------------------------


def test_interrupt_cancels_keeps_partial_results_and_stops_the_queue(kernel: Kernel) -> None:
    sent = time.monotonic()
    running = kernel.send("%pod -l app=web -n demo -o r -- echo up; sleep 30")
    # Queued behind it, as "Run All" queues the rest of a notebook.
    queued_sent = time.monotonic()
    queued = kernel.send('print("the next cell ran")')

    # Interrupt once every pod has printed "up" (the live view shows it), ~1.5 s in.
    deadline = sent + 15
    while not any(
        m.type == "comm_msg" and m.at > sent and json.dumps(m.content).count("| up") >= 3
        for m in kernel.log
    ):
        assert time.monotonic() < deadline, "the pods never printed up"
        kernel.pump()
    while time.monotonic() < sent + 1.5:
        kernel.pump()
    interrupted_at = time.monotonic()
    kernel.manager.interrupt_kernel()
    cell = kernel.wait(running, sent)
    assert cell.idle - interrupted_at < 3.0

    # The cell ends with a one-line error, so a "Run All" stops here ...
    assert cell.status == "error"
    assert cell.reply["ename"] == "RunInterrupted"
    assert cell.reply["traceback"] == [f"RunInterrupted: {cell.reply['evalue']}"]
    assert "3 execs cancelled" in cell.reply["evalue"]
    assert "partial results are in r" in cell.reply["evalue"]
    # ... and the cell queued behind it did not run.
    next_cell = kernel.wait(queued, queued_sent)
    assert next_cell.status == "aborted"
    assert kernel.outputs(next_cell) == []

    # The live view gave way to the summary of the partial results, in the cell itself.
    slot = widget_slot(kernel, cell)
    assert [m.content["data"] for m in kernel.updates_of(slot)] == [{"text/plain": ""}]
    summaries = [
        m.content["data"]
        for m in kernel.messages(cell, "display_data")
        if WIDGET_VIEW not in m.content["data"]
    ]
    assert len(summaries) == 1
    assert summaries[0]["text/plain"].startswith(
        "3 pods in context podmagic-sandbox, namespace demo: 3 cancelled"
    )
    errors = kernel.messages(cell, "error")
    assert len(errors) == 1 and errors[0].content["traceback"] == cell.reply["traceback"]

    # r holds the partial results.
    assert (
        kernel.value("[(x.status.value, x.stdout.decode()) for x in r]")
        == [["cancelled", "up\n"]] * 3
    )
    assert kernel.value("type(r).__name__") == "PodResults"
    # Nothing is left running: no exec in the sandbox, no redraw thread.
    assert kernel.value("sandbox.exec_stats()['active']") == 0
    assert (
        kernel.value(
            "[t.name for t in __import__('threading').enumerate()"
            " if t.name.startswith('podmagic-render')]"
        )
        == []
    )
    # The next run works.
    after = kernel.ok("%pod -l app=web -n demo -- echo ok")
    texts = [m.content["data"]["text/plain"] for m in kernel.messages(after, "display_data")]
    assert any(
        t.startswith("3 pods in context podmagic-sandbox, namespace demo: 3 ok") for t in texts
    )


# -- c. 100,000 lines: throttled redraws, bounded traffic, a static summary at the end -------------


def _comm_updates(kernel: Kernel, cell: Cell) -> list[Message]:
    return [
        m
        for m in kernel.log
        if m.type == "comm_msg"
        and cell.sent <= m.at <= cell.idle
        and m.content["data"].get("method") == "update"
    ]


def test_100000_lines_are_throttled_and_end_in_a_static_summary(kernel: Kernel) -> None:
    cell = kernel.ok("%%pod -l app=web -n demo\nseq 1 34000\n", timeout=60)
    duration = cell.idle - cell.sent
    updates = _comm_updates(kernel, cell)
    per_widget = Counter(m.content["comm_id"] for m in updates)
    assert max(per_widget.values()) <= 12 * max(duration, 1.0) + 2, (per_widget, duration)
    assert sum(m.size for m in updates) < 5_000_000
    # The view did follow the output to its last line.
    assert any("| 34000" in json.dumps(m.content) for m in updates)

    # The cell's outputs: the live view (emptied by id at the end), then the static summary.
    outputs = kernel.outputs(cell)
    assert [m.type for m in outputs] == ["display_data", "display_data"]
    slot = widget_slot(kernel, cell)
    assert [m.content["data"] for m in kernel.updates_of(slot)] == [{"text/plain": ""}]
    summary = outputs[1].content["data"]
    assert set(summary) == {"text/plain", "text/html"}
    assert summary["text/plain"].startswith(
        "3 pods in context podmagic-sandbox, namespace demo: 3 ok"
    )
    assert "<table" in summary["text/html"]
    # The results keep every byte, whatever the view showed.
    assert kernel.value("[len(x.stdout.splitlines()) for x in _]") == [34000] * 3


def test_a_steady_trickle_is_redrawn_at_most_about_ten_times_a_second(kernel: Kernel) -> None:
    # Small, frequent output: each pod prints a line every ~10 ms for ~2 s. Redraws are small
    # here, so the rate limit (PodMagic.max_updates_per_second = 10), not the byte budget,
    # is what spaces them.
    script = "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo line $i; sleep 0.01; done\n"
    cell = kernel.ok(f"%%pod -l app=web -n demo\n{script}", timeout=60)
    duration = cell.idle - cell.sent
    per_widget = Counter(m.content["comm_id"] for m in _comm_updates(kernel, cell))
    redraws = max(per_widget.values())
    assert 5 <= redraws <= 12 * duration + 2, (per_widget, duration)
    assert kernel.value("[x.stdout.count(b'\\n') for x in _]") == [200] * 3


def test_a_long_noisy_run_sends_a_bounded_number_of_bytes_a_second(kernel: Kernel) -> None:
    # The same 102,000 lines, spread over ~2.5 s. The live view soon holds its full 5,000
    # lines, so every redraw is large: the byte budget (about 2 MB/s), not the run's end, sets
    # the pace, and the traffic grows with the run's duration, never with its output.
    script = "for i in $(seq 0 16); do seq $((i*2000+1)) $((i*2000+2000)); sleep 0.15; done\n"
    quiet = kernel.ok("%%pod -l app=web -n demo -q\necho quiet\n")  # -q: no live view at all
    assert kernel.messages(quiet, "comm_open", "comm_msg", "display_data") == []
    cell = kernel.ok(f"%%pod -l app=web -n demo\n{script}", timeout=60)
    duration = cell.idle - cell.sent
    updates = _comm_updates(kernel, cell)
    per_widget = Counter(m.content["comm_id"] for m in updates)
    redraws = max(per_widget.values())
    assert redraws <= 12 * duration + 2, (per_widget, duration)
    assert redraws >= 5  # live while running, not only at the end
    sent_bytes = sum(m.size for m in updates)
    assert sent_bytes <= 2_500_000 * duration + 1_000_000, (sent_bytes, duration)


# -- d. errors: one line, no stack ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("dbb-0 -n demo -- true", 'pod "dbb-0" not found in namespace "demo"; did you mean db-0'),
        ("-l 'app in (web' -n demo -- true", 'invalid label selector "app in (web"'),
        ("db-0 -n nope -- true", 'namespace "nope" not found'),
    ],
)
def test_errors_are_one_line_without_a_stack(kernel: Kernel, line: str, message: str) -> None:
    cell = kernel.run(f"%pod {line}")
    assert cell.status == "error"
    assert cell.reply["ename"] == "SelectionError"
    assert message in cell.reply["evalue"]
    assert cell.reply["traceback"] == [f"SelectionError: {cell.reply['evalue']}"]
    assert "\n" not in cell.reply["evalue"]
    # The error output is that one line too, and nothing else was displayed.
    outputs = kernel.outputs(cell)
    assert [m.type for m in outputs] == ["error"]
    assert outputs[0].content["traceback"] == cell.reply["traceback"]


def test_usage_errors_are_one_line_on_stderr(kernel: Kernel) -> None:
    cell = kernel.run("%pod -n demo -- echo hi")
    assert cell.status == "error" and cell.reply["ename"] == "UsageError"
    assert cell.reply["traceback"] == []
    assert [
        (m.type, m.content.get("name"), m.content.get("text")) for m in kernel.outputs(cell)
    ] == [("stream", "stderr", f"UsageError: {cell.reply['evalue']}\n")]


# -- e. terminal IPython ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(kubeconfig=tmp_path_factory.mktemp("demo") / "kubeconfig") as running:
        yield running


def test_terminal_ipython_prints_prefixed_lines_and_the_summary(
    demo_sandbox: Sandbox, tmp_path: Path
) -> None:
    ipython = Path(sys.executable).with_name("ipython")
    script = "\n".join(
        [
            "%load_ext podmagic",
            f"%config PodMagic.kubeconfig = {str(demo_sandbox.kubeconfig)!r}",
            "%pod -l app=db -n demo -- echo hi",
        ]
    )
    env = {
        **os.environ,
        "TERM": "dumb",
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    env.pop("FORCE_COLOR", None)
    done = subprocess.run(
        [str(ipython), "--no-banner", "--colors=nocolor", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == ("context podmagic-sandbox · app=db in namespace demo · 2 pods · $ echo hi")
    assert sorted(lines[1:3]) == ["db-0 | hi", "db-1 | hi"]
    # The summary follows, once (no second copy as the cell's value).
    assert lines[3] == "2 pods in context podmagic-sandbox, namespace demo: 2 ok"
    assert done.stdout.count("2 pods in context") == 1
    assert "db-0, db-1 — 2 pods, exit 0" in done.stdout
    assert "\x1b" not in done.stdout  # not a terminal: no colours
    assert "Traceback" not in done.stderr
