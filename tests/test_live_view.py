"""The front-end live view (podmagic._render._live), Python side: what goes over the wire,
when anything is displayed, the saved-notebook fallback, late views, and the pod colours."""

from __future__ import annotations

import itertools
import json
import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _waiting import wait_until
from test_render import (
    GARBAGE,
    FakeDisplay,
    fake_display,
    feed,
    out,
    result,
    run_started,
    simple_run,
    target,
)

from podmagic._events import PodFinished, PodStarted, RunFinished
from podmagic._render import LiveRenderer, RenderLimits, WidgetRenderer, choose_renderer
from podmagic._render._live import (
    LIVE_ERROR_COLOURS,
    LIVE_PALETTES,
    THEME_BACKGROUNDS,
    _widget_class,
)
from podmagic._results import PodResults

#: test_render's fixture, used here by name.
FIXTURES = (fake_display,)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: What a Jupyter message adds around a custom message's content (header, parent header,
#: metadata, comm id, signature), measured on ipykernel 7.4: 585 bytes.
ENVELOPE_BYTES = 600


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every custom message the live views send, in order: its content, and its binary
    buffers under ``"buffers"``."""
    messages: list[dict[str, Any]] = []
    cls = _widget_class()
    original = cls.send

    def send(self: Any, content: dict[str, Any], buffers: Any = None) -> None:
        messages.append({**content, "buffers": [bytes(b) for b in buffers or []]})
        original(self, content, buffers)

    monkeypatch.setattr(cls, "send", send)
    yield messages


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every comm message of the live views, as ``(kind, bytes)``: ``open`` (the model's
    whole state, the view's code included), ``update`` / ``custom`` (JSON content plus binary
    buffers) and ``close``; each also costs a Jupyter envelope (ENVELOPE_BYTES)."""
    from ipywidgets.widgets import widget as ipywidget

    messages: list[tuple[str, int]] = []
    cls = _widget_class()
    send, close, create_comm = cls._send, cls.close, ipywidget.comm.create_comm

    def size(data: Any, buffers: Any) -> int:
        body = len(json.dumps(data, ensure_ascii=False).encode())
        return body + sum(len(bytes(b)) for b in buffers or [])

    def record_send(self: Any, msg: dict[str, Any], buffers: Any = None) -> None:
        if self.comm is not None:  # a model being built sends nothing yet
            messages.append((msg["method"], size(msg, buffers)))
        send(self, msg, buffers)

    def record_open(**args: Any) -> Any:
        if args.get("target_name") == "jupyter.widget":
            messages.append(("open", size(args.get("data"), args.get("buffers"))))
        return create_comm(**args)

    def record_close(self: Any) -> None:
        if self.comm is not None:
            messages.append(("close", 0))
        close(self)

    monkeypatch.setattr(cls, "_send", record_send)
    monkeypatch.setattr(cls, "close", record_close)
    monkeypatch.setattr(ipywidget.comm, "create_comm", record_open)
    yield messages


def lines_of(message: dict[str, Any]) -> list[tuple[int, int, str]]:
    """A batch or snapshot message's lines: ``g`` counts the lines of each run of one pod
    and stream, the first buffer holds their texts joined by newlines."""
    index = message.get("g", [])
    if not index:
        return []
    texts = iter(message["buffers"][0].decode().split("\n"))
    return [
        (pod, stream, next(texts))
        for pod, stream, count in zip(index[0::3], index[1::3], index[2::3], strict=True)
        for _ in range(count)
    ]


def in_a_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython

    class ZMQInteractiveShell:  # the name is what counts
        pass

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())


def test_choose_renderer_in_a_kernel_is_the_front_end_view(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    in_a_kernel(monkeypatch)
    renderer = choose_renderer(limits=RenderLimits(max_total_lines=10), show_summary=False)
    assert isinstance(renderer, LiveRenderer)
    assert renderer.limits.max_total_lines == 10 and not renderer.show_summary
    renderer.close()


def test_choose_renderer_without_anywidget_falls_back_to_the_ipywidgets_view(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    in_a_kernel(monkeypatch)
    monkeypatch.setitem(sys.modules, "anywidget", None)  # import anywidget raises ImportError
    renderer = choose_renderer()
    assert isinstance(renderer, WidgetRenderer)
    renderer.close()


def test_a_run_ending_within_250_ms_shows_only_its_summary(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    in_a_kernel(monkeypatch)
    t = target("web-1")
    results = PodResults([result(t, stdout=b"hi\n")])
    renderer = choose_renderer()
    feed(renderer, [*simple_run(t, b"hi\n"), RunFinished(results)])
    renderer.close()
    # One display, the summary: no empty slot, no widget, no "starting…", no snapshot (a
    # saved notebook holds exactly the summary).
    summary = {"text/plain": str(results), "text/html": results._repr_html_()}
    assert fake_display.calls == [(summary, {"raw": True, "display_id": True})]
    assert fake_display.handles[0].updates == []
    assert isinstance(renderer, LiveRenderer) and renderer.widget is None
    # The caller that shows the results itself (a blocking %pod) is told to display them.
    assert not choose_renderer(show_summary=False).replace_view(results)  # type: ignore[attr-defined]


def test_a_short_background_run_shows_its_summary_in_the_slots_reserved_at_once(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    in_a_kernel(monkeypatch)
    t = target("web-1")
    results = PodResults([result(t, stdout=b"hi\n")])
    renderer = choose_renderer(outlives_cell=True)
    # Reserved while the starting cell runs: the run goes on after it has finished.
    assert [obj for obj, _ in fake_display.calls] == [{"text/plain": ""}, {"text/plain": ""}]
    feed(renderer, [*simple_run(t, b"hi\n"), RunFinished(results)])
    renderer.close()
    assert fake_display.handles[0].updates == [
        ({"text/plain": str(results), "text/html": results._repr_html_()}, {"raw": True})
    ]
    assert fake_display.handles[1].updates == []
    assert len(fake_display.calls) == 2 and renderer.widget is None  # type: ignore[attr-defined]


def test_lines_go_in_throttled_batches_of_only_new_lines(
    fake_display: FakeDisplay, sent: list[dict[str, Any]]
) -> None:
    pods = [target(f"web-{i}") for i in range(3)]
    renderer = LiveRenderer()
    chunks = [
        (t, b"".join(b"%s line %d\n" % (t.pod.encode(), n) for n in range(start, start + 20)))
        for start in range(0, 2000, 20)
        for t in pods
    ]

    def engine() -> None:  # plays the engine's loop thread: 6,000 lines in about 1.5 s
        renderer.handle_event(run_started(pods))
        for t in pods:
            renderer.handle_event(PodStarted(t))
        for index, (t, data) in enumerate(chunks):
            renderer.handle_event(out(t, data))
            if index % 20 == 19:
                time.sleep(0.1)
        for t in pods:
            renderer.handle_event(PodFinished(result(t)))

    began = time.monotonic()
    thread = threading.Thread(target=engine)
    thread.start()
    thread.join()
    renderer.close()
    elapsed = time.monotonic() - began

    batches = [m for m in sent if "g" in m]
    # At most 10 a second (one more for the final flush), and more than one: it streamed.
    assert 2 <= len(batches) <= 10 * elapsed + 2, (len(batches), elapsed)
    # Every line exactly once, in order: each batch starts where the previous one ended.
    position = 0
    received: list[str] = []
    for batch in batches:
        assert batch["s"] == position
        lines = lines_of(batch)
        position += len(lines)
        received += [text for _, _, text in lines]
    expected = [line for _, data in chunks for line in data.decode().splitlines()]
    assert received == expected
    # The lines' texts travel as they are (one binary buffer a batch, no JSON escaping).
    output = sum(len(data) for _, data in chunks)
    assert sum(len(m["buffers"][0]) + 1 for m in batches) == output
    assert renderer.bytes_sent <= 1.1 * output


def play_benchmark_run(renderer: LiveRenderer, pods: int, lines: int) -> int:
    """What benchmarks/browser_view.py runs, played as the engine's loop thread would:
    ``pods`` pods each print ``line 1`` … ``line N``, pausing 50 ms every 50 lines (all pods
    at once). The output's size in bytes."""
    targets = [target(f"bench-{i}") for i in range(pods)]
    printed = 0

    def engine() -> None:
        nonlocal printed
        renderer.handle_event(run_started(targets))
        for t in targets:
            renderer.handle_event(PodStarted(t))
        for start in range(1, lines + 1, 50):
            for t in targets:
                data = b"".join(b"line %d\n" % n for n in range(start, min(start + 50, lines + 1)))
                printed += len(data)
                renderer.handle_event(out(t, data))
            time.sleep(0.05)
        results = [result(t) for t in targets]
        for r in results:
            renderer.handle_event(PodFinished(r))
        renderer.handle_event(RunFinished(PodResults(results)))

    thread = threading.Thread(target=engine)
    thread.start()
    thread.join()
    renderer.close()
    return printed


def test_three_pods_of_short_lines_cost_at_most_1_5_widget_bytes_per_output_byte(
    fake_display: FakeDisplay, wire: list[tuple[str, int]]
) -> None:
    # The benchmark's 3 pods x 2,000 lines: every widget message of the run counted, the
    # comm_open with the view's code included, each with its Jupyter envelope.
    printed = play_benchmark_run(LiveRenderer(), 3, 2000)
    kinds = [kind for kind, _ in wire]
    assert kinds[0] == "open" and kinds[-1] == "close" and "custom" in kinds
    total = sum(size + ENVELOPE_BYTES for _, size in wire)
    assert total / printed <= 1.5, (total / printed, wire)


def test_changed_state_rides_in_the_batches_not_in_update_messages(
    fake_display: FakeDisplay, wire: list[tuple[str, int]], sent: list[dict[str, Any]]
) -> None:
    renderer = LiveRenderer()
    play_benchmark_run(renderer, 3, 1000)
    # One message per flush: no ipywidgets "update" beside the batches.
    assert "update" not in [kind for kind, _ in wire]
    changes = [m["st"] for m in sent if "st" in m]
    assert [p[1] for p in changes[-1]["pods"]] == ["ok", "ok", "ok"]
    assert changes[-1]["progress"] == {"done": 3, "total": 3, "failed": 0}
    # The kernel's model holds them too, for a view that connects later.
    assert renderer.widget.pods == changes[-1]["pods"]
    assert renderer.widget.state == "done"
    # Only what changed: the header went with the comm_open, and never again.
    assert all("header" not in change for change in changes)


def test_a_batch_never_holds_more_lines_than_the_view_keeps(
    fake_display: FakeDisplay, sent: list[dict[str, Any]]
) -> None:
    t = target("web-1")
    renderer = LiveRenderer(limits=RenderLimits(max_total_lines=100), show_after=0)
    renderer.handle_event(run_started([t]))
    wait_until(lambda: renderer.widget is not None, what="the widget was built")
    renderer.handle_event(out(t, b"".join(b"line %d\n" % n for n in range(10_000))))
    renderer.close()
    batches = [m for m in sent if "g" in m]
    assert all(len(lines_of(b)) <= 100 for b in batches)
    last = lines_of(batches[-1])
    assert last[-1] == (0, 1, "line 9999")
    assert batches[-1]["s"] + len(last) == 10_000  # the view counts the ones skipped


def test_a_longer_run_shows_the_widget_and_a_snapshot_that_is_refreshed(
    fake_display: FakeDisplay,
) -> None:
    a, b = target("web-1"), target("web-2")
    renderer = LiveRenderer(snapshot_every=0.2)
    assert fake_display.calls == []  # nothing before the run has lasted 250 ms
    feed(renderer, [run_started([a, b]), PodStarted(a), out(a, b"first <line>\n")])
    wait_until(lambda: len(fake_display.calls) == 2, what="the widget and a snapshot are shown")
    handle, snapshots = fake_display.handles
    (bundle, kwargs), (snapshot, snapshot_kwargs) = fake_display.calls
    assert kwargs == snapshot_kwargs == {"raw": True, "display_id": True}
    assert bundle[WIDGET_MIME]["model_id"] == renderer.widget.model_id
    assert bundle["text/plain"] == ""  # not the widget's repr
    # A notebook saved now shows this (the snapshot slot), also where the widget is dead.
    assert WIDGET_MIME not in snapshot
    assert "web-1 | first <line>" in snapshot["text/plain"]
    assert "web-1 | first &lt;line&gt;" in snapshot["text/html"]
    assert 'class="podmagic-snapshot"' in snapshot["text/html"]
    assert "$ uptime" in snapshot["text/plain"]

    renderer.handle_event(out(b, b"later\n", 2))
    wait_until(
        lambda: snapshots.updates and "web-2 ! later" in snapshots.updates[-1][0]["text/plain"],
        what="the snapshot was refreshed with the later line",
    )
    # Refreshed without touching the widget's slot (an update would re-render the view).
    assert handle.updates == []

    results = PodResults([result(a), result(b)])
    feed(renderer, [PodFinished(results[0]), PodFinished(results[1]), RunFinished(results)])
    renderer.close()
    assert handle.updates[-1] == (
        {"text/plain": str(results), "text/html": results._repr_html_()},
        {"raw": True},
    )
    assert snapshots.updates[-1] == ({"text/plain": ""}, {"raw": True})  # the summary says it
    assert renderer.widget.comm is None  # closed: the summary stands alone
    assert len(fake_display.calls) == 2  # the two slots, always updated by their ids


def test_a_saved_snapshot_says_when_it_was_taken_and_does_not_read_as_live(
    fake_display: FakeDisplay,
) -> None:
    a = target("web-1")
    renderer = LiveRenderer(snapshot_every=600, show_after=0)
    feed(renderer, [run_started([a]), PodStarted(a), out(a, b"first\n")])
    wait_until(lambda: len(fake_display.calls) == 2, what="the widget and a snapshot are shown")
    snapshot = fake_display.calls[1][0]
    today = time.strftime("%Y-%m-%d")
    for shown in (snapshot["text/plain"], snapshot["text/html"]):
        assert f"podmagic snapshot taken {today} " in shown
        assert (
            "into a run still going then (not live; it may not have finished): 0 / 1 done" in shown
        )
        assert "podmagic: running" not in shown
    assert "<b>" not in snapshot["text/html"]  # no bold status that looks like a live one
    renderer.close()


def test_a_quiet_run_sends_beats_so_the_view_can_tell_a_gone_kernel(
    fake_display: FakeDisplay, sent: list[dict[str, Any]]
) -> None:
    # No output at all: the view still hears from the kernel every beat_every seconds, and
    # takes it for gone (restarted, dead) after several beats of silence.
    t = target("web-1")
    renderer = LiveRenderer(snapshot_every=0.2, show_after=0)
    feed(renderer, [run_started([t]), PodStarted(t)])
    wait_until(lambda: renderer.widget is not None, what="the widget was built")
    assert renderer.widget.beat_every == 0.2
    wait_until(lambda: sum(m["k"] == "beat" for m in sent) >= 3, what="three beats of a quiet run")
    assert all(m["buffers"] == [] and set(m) == {"k", "buffers"} for m in sent if m["k"] == "beat")
    renderer.close()


def test_the_snapshot_is_first_refreshed_a_second_after_the_view_shows(
    fake_display: FakeDisplay,
) -> None:
    # Saved 3 s into a run, a notebook holds its first lines, not only the empty start.
    t = target("web-1")
    renderer = LiveRenderer(snapshot_every=600, show_after=0)
    feed(renderer, [run_started([t]), PodStarted(t)])
    wait_until(lambda: len(fake_display.calls) == 2, what="the widget and a snapshot are shown")
    snapshots = fake_display.handles[1]
    renderer.handle_event(out(t, b"first line\n"))
    wait_until(
        lambda: any("web-1 | first line" in b["text/plain"] for b, _ in snapshots.updates),
        what="the snapshot refreshed with the first line (long before snapshot_every)",
        timeout=20,
    )
    renderer.close()


def test_a_shown_run_opens_one_widget_model_and_a_finished_one_keeps_none(
    fake_display: FakeDisplay,
) -> None:
    from ipywidgets.widgets import widget as ipywidget

    before = set(ipywidget._instances)
    t = target("web-1")
    short = LiveRenderer()
    feed(short, [*simple_run(t, b"hi\n"), RunFinished(PodResults([result(t)]))])
    short.close()
    assert set(ipywidget._instances) == before  # a run under 250 ms opens no model

    renderer = LiveRenderer(show_after=0)
    feed(renderer, [run_started([t]), PodStarted(t), out(t, b"line\n" * 1000)])
    wait_until(lambda: renderer.widget is not None, what="the widget was built")
    # One model, one comm: the view's (no Layout model beside it).
    assert set(ipywidget._instances) - before == {renderer.widget.model_id}
    results = PodResults([result(t, stdout=b"line\n" * 1000)])
    feed(renderer, [PodFinished(results[0]), RunFinished(results)])
    renderer.close()
    assert set(ipywidget._instances) == before  # closed: the summary stands alone
    # The view keeps neither the lines nor the results once the summary is up (a --bg
    # handle keeps its view alive as long as the user keeps the handle).
    assert len(renderer._tail) == 0 and renderer._pending == []
    assert renderer._results is None and renderer._finished == {}
    renderer.close()  # still idempotent without its buffers


def test_an_interrupted_runs_model_is_closed_when_the_next_cell_starts_not_as_it_ends(
    fake_display: FakeDisplay, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel restart interrupts the run before it shuts the kernel down: a comm_close sent
    # as the run ends reaches a page that has already dropped its comms ("Comm not found").
    import IPython
    from IPython.core.events import EventManager, available_events
    from ipywidgets.widgets import widget as ipywidget

    from podmagic._results import ExecStatus

    shell = type("Shell", (), {})()
    shell.events = EventManager(shell, available_events)
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    before = set(ipywidget._instances)
    t = target("web-1")
    renderer = LiveRenderer(show_after=0)
    feed(renderer, [run_started([t]), PodStarted(t), out(t, b"line\n")])
    wait_until(lambda: renderer.widget is not None, what="the widget was built")
    results = PodResults([result(t, status=ExecStatus.CANCELLED, exit_code=None)])
    feed(renderer, [PodFinished(results[0]), RunFinished(results)])
    renderer.close()
    assert renderer.widget.comm is not None  # still open: the kernel may be restarting
    shell.events.trigger("pre_run_cell", None)
    assert renderer.widget.comm is None
    assert set(ipywidget._instances) == before
    assert shell.events.callbacks["pre_run_cell"] == []  # closed once, then forgotten


def test_the_widget_state_has_header_chips_progress_and_times(fake_display: FakeDisplay) -> None:
    from podmagic._resolve import SkippedPod
    from podmagic._results import ExecStatus

    a, b, c = target("web-1"), target("web-2"), target("web-3")
    skipped = SkippedPod("demo", "web-4", "app", None, "not ready")
    renderer = LiveRenderer(display=False, show_after=0)
    before = time.time()
    feed(
        renderer,
        [
            run_started([a, b, c], [skipped], command="echo hi"),
            PodStarted(a),
            PodStarted(b),
            PodFinished(result(b, status=ExecStatus.FAILED, exit_code=1)),
        ],
    )
    wait_until(
        lambda: renderer.widget is not None and renderer.widget.progress.get("done") == 1,
        what="the widget counts one pod done",
    )
    widget = renderer.widget
    assert widget.header["command"] == "$ echo hi"
    assert "3 pods (1 skipped)" in widget.header["where"]
    # In the run's order: the order gives each pod its colour.
    assert [p[:2] for p in widget.pods] == [
        ["web-1", "running"],
        ["web-2", "failed"],
        ["web-3", "queued"],
        ["web-4", "skipped"],
    ]
    assert widget.pods[1][2].startswith("exit 1") and widget.pods[3][2] == "not ready"
    assert widget.progress == {"done": 1, "total": 3, "failed": 1}
    assert widget.state == "running" and before - 1 <= widget.started <= time.time()
    assert widget.ended == 0  # the browser ticks the elapsed time itself
    assert widget.palette["pods"] == {k: list(v) for k, v in LIVE_PALETTES.items()}
    renderer.close()
    assert widget.state == "ended" and widget.ended >= widget.started


def test_a_late_view_gets_the_newest_lines_on_hello(
    fake_display: FakeDisplay, sent: list[dict[str, Any]]
) -> None:
    t = target("web-1")
    renderer = LiveRenderer(limits=RenderLimits(max_total_lines=50), show_after=0)
    renderer.handle_event(run_started([t]))
    renderer.handle_event(out(t, b"".join(b"line %d\n" % n for n in range(120))))
    wait_until(lambda: any("g" in m for m in sent), what="a batch of lines was sent")
    renderer.widget._handle_custom_msg({"k": "hello"}, [])  # what the JS sends on render
    snapshot = sent[-1]
    assert snapshot["k"] == "snapshot"
    assert snapshot["s"] == 70
    assert [text for _, _, text in lines_of(snapshot)] == [f"line {n}" for n in range(70, 120)]
    assert abs(snapshot["now"] - time.time()) < 60  # for the browser's clock skew
    # And the state sent so far, which batches the view missed may have carried.
    assert snapshot["st"]["pods"] == renderer.widget.pods
    assert snapshot["st"]["header"]["command"] == "$ uptime"
    assert snapshot["st"]["state"] == "running"
    renderer.widget._handle_custom_msg({"k": "something else"}, [])
    assert sent[-1] is snapshot
    renderer.close()


def test_handle_event_never_raises_live(
    fake_display: FakeDisplay, caplog: pytest.LogCaptureFixture
) -> None:
    renderer = LiveRenderer(show_after=0)
    with caplog.at_level(logging.ERROR, logger="podmagic.render"):
        for event in GARBAGE:
            renderer.handle_event(event)
        t = target("web-2")
        feed(renderer, simple_run(t, b"still works\n"))
        renderer.close()
    assert any(r.name == "podmagic.render" for r in caplog.records)
    view = fake_display.handles[0]
    shown = view.updates[-1][0] if view.updates else fake_display.calls[0][0]
    assert shown["text/plain"].startswith("The run ended")


# -- colours ------------------------------------------------------------------------------------


def _rgb(colour: str) -> tuple[float, float, float]:
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return r, g, b


def _linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def _luminance(colour: str) -> float:
    r, g, b = (_linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def oklab(colour: str) -> tuple[float, float, float]:
    r, g, b = (_linear(c) for c in _rgb(colour))
    l_ = (0.4122214708 * r + 0.5363033048 * g + 0.0514459929 * b) ** (1 / 3)
    m_ = (0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b) ** (1 / 3)
    s_ = (0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b) ** (1 / 3)
    return (
        0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
        1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
        0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_,
    )


def test_contrast_helper_matches_known_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_pod_colours_are_readable_on_the_themes_backgrounds(theme: str) -> None:
    for colour in (*LIVE_PALETTES[theme], LIVE_ERROR_COLOURS[theme]):
        for background in THEME_BACKGROUNDS[theme]:
            assert contrast(colour, background) >= 4.5, (theme, colour, background)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_pod_colours_are_pairwise_distinct_and_not_the_error_red(theme: str) -> None:
    palette = LIVE_PALETTES[theme]
    assert len(set(palette)) == len(palette) == 12
    # Distance in OKLab (perceptual); 0.02 is about a just-noticeable difference.
    for first, second in itertools.combinations(palette, 2):
        assert math.dist(oklab(first), oklab(second)) >= 0.11, (first, second)
    for colour in palette:
        assert math.dist(oklab(colour), oklab(LIVE_ERROR_COLOURS[theme])) >= 0.08, colour


# -- terminal IPython ----------------------------------------------------------------------------


def test_terminal_ipython_gets_text_and_never_imports_the_widget_stack() -> None:
    script = (
        "import sys\n"
        "from IPython.terminal.interactiveshell import TerminalInteractiveShell\n"
        "TerminalInteractiveShell.instance()\n"
        "from podmagic._render import choose_renderer\n"
        "renderer = choose_renderer()\n"
        "print(type(renderer).__name__, 'anywidget' in sys.modules, 'ipywidgets' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["TextRenderer", "False", "False"]


# -- a real kernel ---------------------------------------------------------------------------------

_KERNEL_SETUP = """
import threading, time
from podmagic._events import PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from podmagic._render import LiveRenderer
from podmagic._results import ExecStatus, PodResult, PodResults
from podmagic._resolve import PodTarget, Selection

def run(renderer, tag, seconds):
    pods = [PodTarget("demo", f"{tag}-{i}", "app", "node-a", ("app",), "uid", 0) for i in range(3)]
    renderer.handle_event(RunStarted("sandbox", Selection(tuple(pods), (), "all pods"), "hostname"))
    for n in range(10):
        for t in pods:
            renderer.handle_event(PodOutput(t, 1, b"%s line %d\\n" % (t.pod.encode(), n)))
        time.sleep(seconds / 10)
    results = [PodResult(context="sandbox", namespace="demo", pod=t.pod, container="app",
                         status=ExecStatus.OK, exit_code=0, stdout=b"same\\n", duration=0.1)
               for t in pods]
    for r in results:
        renderer.handle_event(PodFinished(r))
    renderer.handle_event(RunFinished(PodResults(results)))
    renderer.close()

background = LiveRenderer(outlives_cell=True)  # a --bg run
feeder = threading.Thread(target=run, args=(background, "bg", 1.0))
feeder.start()
"""


def test_real_kernel_background_run_ends_with_its_summary_in_its_own_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(_KERNEL_SETUP),
        nbformat.v4.new_code_cell('print("second cell")\nfeeder.join()'),
        nbformat.v4.new_code_cell("print(background.batches_sent, background.widget is None)"),
    ]
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    first, second, third = (cell.outputs for cell in notebook.cells)
    # The view's slot: the summary, no widget left; the snapshot's slot: emptied.
    assert [o.output_type for o in first] == ["display_data", "display_data"]
    assert set(first[0].data) == {"text/plain", "text/html"}
    assert "bg-0, bg-1, bg-2 — 3 pods, exit 0" in first[0].data["text/plain"]
    assert first[1].data == {"text/plain": ""}
    assert [(o.output_type, o.get("text")) for o in second] == [("stream", "second cell\n")]
    batches, no_widget = third[0]["text"].split()
    assert int(batches) >= 2 and no_widget == "False"  # it did stream to a widget


def test_every_documented_selector_is_made_by_the_front_end() -> None:
    import re
    from importlib import resources

    from podmagic._render import _live

    documented = set(re.findall(r'\[data-podmagic="([a-z-]+)"\]', _live.__doc__ or ""))
    source = resources.files("podmagic._render").joinpath("static/live.js").read_text()
    made = set(re.findall(r'"data-podmagic": "([a-z-]+)"', source))
    assert {"line", "chip", "follow", "filter-pod", "filter-stream", "elapsed", "status"} <= made
    assert documented <= made, documented - made
    assert made <= documented, made - documented
