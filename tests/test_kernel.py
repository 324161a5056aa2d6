"""%pod / %%pod through a real Jupyter kernel, and through terminal IPython.

One kernel for the module (jupyter_client's ``KernelManager``), started with the ``python3``
kernelspec, i.e. the interpreter running pytest (``scripts/test-compat`` runs this file again on
ipykernel 6 / IPython 8). The sandbox runs inside the kernel, started the way a notebook does:
``sandbox = %pod_sandbox start`` (the demo cluster: namespace ``demo``, ``app=web`` has three
pods, ``app=db`` two).

Every IOPub message is kept with its arrival time and its parent header, so each test can say
which cell a message belongs to and when it came.

The live view (podmagic/_render/_live.py) as the kernel shows it: nothing for a run under
250 ms (a fast ``%pod`` outputs only its summary); past that, two display slots in the cell,
the widget's (anywidget's mime bundle, ``text/plain`` empty) and a snapshot's (``text/plain``
+ ``text/html``) after it. A blocking run displays them when the view shows; a ``--bg`` run
reserves them, empty, in its cell at once and shows the widget by an update. Output lines go
to the widget as custom comm messages, ``{"k": "batch", "s": first line, "g": [pod, stream,
count, ...]}`` with the lines' texts joined by newlines as one binary buffer, in batches at
most ~10 a second; at the end the view's slot shows the summary.
"""

from __future__ import annotations

import json
import math
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
    buffers: list[bytes]

    @property
    def display_id(self) -> str | None:
        return (self.content.get("transient") or {}).get("display_id")

    @property
    def size(self) -> int:
        return len(json.dumps(self.content)) + sum(len(b) for b in self.buffers)

    @property
    def lines(self) -> list[str] | None:
        """The output lines of a live view's line batch; None for any other message."""
        data = self.content.get("data", {})
        if self.type != "comm_msg" or data.get("method") != "custom":
            return None
        if data["content"].get("k") != "batch" or "g" not in data["content"]:
            return None
        return self.buffers[0].decode("utf-8").split("\n")


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
            buffers = [bytes(b) for b in msg.get("buffers") or []]
            self.log.append(
                Message(time.monotonic(), msg["msg_type"], parent, msg["content"], buffers)
            )
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


def slot_ids(kernel: Kernel, cell: Cell) -> list[str]:
    """The display ids of the cell's display_data outputs, in order."""
    ids = [m.display_id for m in kernel.messages(cell, "display_data")]
    assert all(ids), ids
    return [i for i in ids if i]


def shown_in(kernel: Kernel, display_id: str) -> list[dict[str, Any]]:
    """What a display slot showed, in order: its display_data, then each update."""
    return [
        m.content["data"]
        for m in kernel.log
        if m.type in ("display_data", "update_display_data") and m.display_id == display_id
    ]


def widget_slot(kernel: Kernel, cell: Cell) -> str:
    """The display id of the cell's live view: the one slot that ever showed the widget."""
    slots = [
        i for i in slot_ids(kernel, cell) if any(WIDGET_VIEW in d for d in shown_in(kernel, i))
    ]
    assert len(slots) == 1, [shown_in(kernel, i) for i in slot_ids(kernel, cell)]
    widget = [d for d in shown_in(kernel, slots[0]) if WIDGET_VIEW in d]
    assert len(widget) == 1  # shown once: every update of a widget's output re-renders it
    assert widget[0]["text/plain"] == ""  # not the widget's repr
    return slots[0]


def live_lines(kernel: Kernel, since: float = 0.0, until: float = math.inf) -> list[str]:
    """The output lines the kernel sent to live views (custom comm messages) in that time."""
    lines: list[str] = []
    for m in kernel.log:
        if since <= m.at <= until:
            lines += m.lines or []
    return lines


def widget_models(kernel: Kernel) -> int:
    """How many widget models (comms) the kernel holds."""
    return int(kernel.value("len(__import__('ipywidgets').widgets.widget._instances)"))


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
    # The run outlives its cell: the view's slot and the snapshot's are reserved there at once.
    assert [m.content["data"] for m in kernel.messages(first, "display_data")] == [
        {"text/plain": ""},
        {"text/plain": ""},
    ]
    slot, snapshot_slot = slot_ids(kernel, first)

    def summary_shown() -> bool:
        kernel.pump()
        return any("text/html" in data for data in shown_in(kernel, slot))

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
        wait_until(summary_shown, what="the run's summary arrived")
    finally:
        gate.touch()
    second = kernel.wait(second_id, second_sent)
    assert second.status == "ok", second.reply

    # Cell 1 returned at once with a handle; its live view is its widget slot.
    assert first.idle - first.sent < 2.0
    assert [m.type for m in kernel.outputs(first)] == ["display_data", "display_data"]
    assert widget_slot(kernel, first) == slot

    # While cell 2 ran, the run went on streaming into cell 1's widget ...
    assert "tick 3" in live_lines(kernel, second.sent, second.idle)
    # ... and put its summary up in cell 1's slot, by display id: the widget, then the summary,
    updates = kernel.updates_of(slot)
    assert len(updates) == 2 and WIDGET_VIEW in updates[0].content["data"]
    summary = updates[1]
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
    assert not {slot, snapshot_slot} & shown_in_second
    # The snapshot slot showed the run while it went on, and is empty now (the summary says it).
    snapshots = shown_in(kernel, snapshot_slot)
    assert any("$ for i in 1 2 3" in data.get("text/plain", "") for data in snapshots)
    assert snapshots[-1] == {"text/plain": ""}

    third = kernel.ok("r3 = h.result(timeout=10)\nprint(repr(h))")
    assert kernel.stdout(third).startswith(
        "<BackgroundRun app=web in namespace demo: done, 3/3 done"
    )
    assert kernel.value("[r3.ok, len(r3), sorted({x.stdout.decode() for x in r3})]") == [
        True,
        3,
        ["tick 1\ntick 2\ntick 3\n"],
    ]
    # Nothing arrived in the slot after the run ended.
    assert len(kernel.updates_of(slot)) == 2
    assert {(m.type, m.content.get("name")) for m in kernel.outputs(third)} == {
        ("stream", "stdout")
    }


def test_a_notebook_executed_by_nbclient_saves_only_summaries_also_of_a_last_bg_run(
    tmp_path: Path,
) -> None:
    # nbclient (nbconvert --execute, papermill) keeps a cell's output only until the kernel
    # reports the cell done, and shuts the kernel down after the last cell: the last cell must
    # not end before its --bg run has put up its summary. Nobody watches such a run: no live
    # view, so a cell's outputs do not depend on how long its run took (nbval compares them).
    import nbclient
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext podmagic\nsandbox = %pod_sandbox start"),
        nbformat.v4.new_code_cell("%pod -l app=web -n demo -- sleep 1; echo slow"),
        nbformat.v4.new_code_cell(
            "h = %pod -l app=web -n demo --bg -- sleep 2; echo finished\nprint('started')"
        ),
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        client = nbclient.NotebookClient(
            notebook,
            timeout=60,
            kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
    blocking, background = notebook.cells[1].outputs, notebook.cells[2].outputs
    for outputs, printed in ((blocking, "slow"), (background, "finished")):
        assert outputs[0].output_type == "display_data"
        summary = outputs[0].data
        assert set(summary) == {"text/plain", "text/html"}
        assert summary["text/plain"].startswith(
            "3 pods in context podmagic-sandbox, namespace demo: 3 ok"
        )
        assert printed in summary["text/plain"]
    assert len(blocking) == 1
    assert [o.output_type for o in background] == ["display_data", "stream"]
    assert background[1].text == "started\n"


# -- b. interrupting a blocking fan-out ----------------------------------------------------------


def test_interrupt_cancels_keeps_partial_results_and_stops_the_queue(kernel: Kernel) -> None:
    sent = time.monotonic()
    running = kernel.send("%pod -l app=web -n demo -o r -- echo up; sleep 30")
    # Queued behind it, as "Run All" queues the rest of a notebook.
    queued_sent = time.monotonic()
    queued = kernel.send('print("the next cell ran")')

    # Interrupt once every pod has printed "up" (the live view shows it), ~1.5 s in.
    deadline = sent + 15
    while live_lines(kernel, since=sent).count("up") < 3:
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

    # The live view gave way to the summary of the partial results, in its own slot; the
    # snapshot slot after it is empty.
    slot = widget_slot(kernel, cell)
    assert [m.type for m in kernel.outputs(cell)] == ["display_data", "display_data", "error"]
    assert slot_ids(kernel, cell)[0] == slot
    summary = shown_in(kernel, slot)[-1]
    assert set(summary) == {"text/plain", "text/html"}
    assert summary["text/plain"].startswith(
        "3 pods in context podmagic-sandbox, namespace demo: 3 cancelled"
    )
    assert shown_in(kernel, slot_ids(kernel, cell)[1])[-1] == {"text/plain": ""}
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


def test_a_fast_pod_outputs_only_its_summary_and_opens_no_widget(kernel: Kernel) -> None:
    models = widget_models(kernel)
    # "Fast" is a run that ends before the view's show delay; on a loaded machine even `true`
    # can take longer than 0.25 s, so the delay is made long enough to be sure of it here.
    kernel.ok("import podmagic._render._live as _live_view; _live_view.SHOW_AFTER = 60.0")
    try:
        cell = kernel.ok("%pod db-0 -n demo -- true")
    finally:
        kernel.ok("_live_view.SHOW_AFTER = 0.25")
    outputs = kernel.outputs(cell)
    assert [m.type for m in outputs] == ["display_data"]  # no empty slot beside it
    assert set(outputs[0].content["data"]) == {"text/plain", "text/html"}
    assert (
        outputs[0]
        .content["data"]["text/plain"]
        .startswith("1 pod in context podmagic-sandbox, namespace demo: 1 ok")
    )
    assert kernel.messages(cell, "comm_open", "comm_msg", "comm_close") == []
    assert widget_models(kernel) == models


def test_a_shown_view_is_one_widget_model_closed_when_the_run_ends(kernel: Kernel) -> None:
    models = widget_models(kernel)
    cell = kernel.ok("%pod -l app=web -n demo -- echo hi; sleep 1")
    # One model opened per run (the view; no Layout model beside it), closed at the end.
    opened = kernel.messages(cell, "comm_open")
    assert len(opened) == 1
    assert {m.content["comm_id"] for m in kernel.messages(cell, "comm_close")} == {
        opened[0].content["comm_id"]
    }
    assert widget_models(kernel) == models
    # Two outputs: the view's slot (now the summary) and the snapshot's (emptied).
    slot = widget_slot(kernel, cell)
    assert slot_ids(kernel, cell)[0] == slot
    assert shown_in(kernel, slot)[-1]["text/plain"].startswith(
        "3 pods in context podmagic-sandbox, namespace demo: 3 ok"
    )


# -- c. 100,000 lines: throttled redraws, bounded traffic, a static summary at the end -------------


def _comm_messages(kernel: Kernel, cell: Cell) -> list[Message]:
    """Everything sent to widgets while the cell ran: state updates and line batches."""
    return [m for m in kernel.log if m.type == "comm_msg" and cell.sent <= m.at <= cell.idle]


def _redraws(kernel: Kernel, cell: Cell) -> Counter[str]:
    """Line batches sent to each widget while the cell ran (one per flush with new lines)."""
    return Counter(
        m.content["comm_id"] for m in _comm_messages(kernel, cell) if m.lines is not None
    )


def test_100000_lines_are_throttled_and_end_in_a_static_summary(kernel: Kernel) -> None:
    # The sleep: a run that ends within 250 ms shows no live view at all, only its summary.
    cell = kernel.ok("%%pod -l app=web -n demo\nsleep 0.5; seq 1 34000\n", timeout=60)
    duration = cell.idle - cell.sent
    per_widget = _redraws(kernel, cell)
    assert max(per_widget.values()) <= 12 * max(duration, 1.0) + 2, (per_widget, duration)
    assert sum(m.size for m in _comm_messages(kernel, cell)) < 5_000_000
    # The view did follow the output to its last line.
    assert "34000" in live_lines(kernel, cell.sent, cell.idle)

    # The cell's outputs: the live view's slot, which shows the static summary at the end, and
    # the snapshot's slot after it (emptied).
    outputs = kernel.outputs(cell)
    assert [m.type for m in outputs] == ["display_data", "display_data"]
    slot = widget_slot(kernel, cell)
    assert slot_ids(kernel, cell)[0] == slot
    assert shown_in(kernel, slot_ids(kernel, cell)[1])[-1] == {"text/plain": ""}
    summary = shown_in(kernel, slot)[-1]
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
    per_widget = _redraws(kernel, cell)
    redraws = max(per_widget.values())
    assert 5 <= redraws <= 12 * duration + 2, (per_widget, duration)
    assert kernel.value("[x.stdout.count(b'\\n') for x in _]") == [200] * 3


def test_a_long_noisy_run_sends_a_bounded_number_of_bytes_a_second(kernel: Kernel) -> None:
    # The same 102,000 lines, spread over ~2.5 s: the rate limit, not the run's end, sets the
    # pace of the batches, and each carries only lines not sent before (at most the view's
    # 5,000), so the traffic stays within a bounded number of bytes a second.
    script = "for i in $(seq 0 16); do seq $((i*2000+1)) $((i*2000+2000)); sleep 0.15; done\n"
    quiet = kernel.ok("%%pod -l app=web -n demo -q\necho quiet\n")  # -q: no live view at all
    assert kernel.messages(quiet, "comm_open", "comm_msg", "display_data") == []
    cell = kernel.ok(f"%%pod -l app=web -n demo\n{script}", timeout=60)
    duration = cell.idle - cell.sent
    per_widget = _redraws(kernel, cell)
    redraws = max(per_widget.values())
    assert redraws <= 12 * duration + 2, (per_widget, duration)
    assert redraws >= 5  # live while running, not only at the end
    sent_bytes = sum(m.size for m in _comm_messages(kernel, cell))
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
