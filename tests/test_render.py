"""Renderers: text prefixing and caps, widget throttling and the persisted summary."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _waiting import wait_until

from podmagic._events import Event, PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from podmagic._render import (
    PALETTE,
    LiveRenderer,
    NullRenderer,
    Renderer,
    RenderLimits,
    TextRenderer,
    WidgetRenderer,
    ansi_colour,
    choose_renderer,
    pod_colour,
)
from podmagic._resolve import PodTarget, Selection, SkippedPod
from podmagic._results import ExecStatus, PodResult, PodResults

CONTEXT = "sandbox"
NAMESPACE = "demo"


# -- building events by hand -------------------------------------------------------------------


def target(
    pod: str,
    container: str = "app",
    *,
    namespace: str = NAMESPACE,
    containers: Sequence[str] | None = None,
) -> PodTarget:
    return PodTarget(
        namespace=namespace,
        pod=pod,
        container=container,
        node="node-a",
        containers=tuple(containers or (container,)),
        pod_uid=f"uid-{pod}",
        restarts=0,
    )


def run_started(
    targets: Sequence[PodTarget],
    skipped: Sequence[SkippedPod] = (),
    command: str = "uptime",
    description: str = "app=web in namespace demo",
) -> RunStarted:
    selection = Selection(run=tuple(targets), skipped=tuple(skipped), description=description)
    return RunStarted(context=CONTEXT, selection=selection, command=command)


def result(
    t: PodTarget,
    *,
    status: ExecStatus = ExecStatus.OK,
    exit_code: int | None = 0,
    stdout: bytes = b"",
    stderr: bytes = b"",
    error: str | None = None,
) -> PodResult:
    return PodResult(
        context=CONTEXT,
        namespace=t.namespace,
        pod=t.pod,
        container=t.container,
        node=t.node,
        command=("sh", "-c", "uptime"),
        status=status,
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        duration=0.25,
        error=error,
    )


def out(t: PodTarget, data: bytes, stream: int = 1) -> PodOutput:
    return PodOutput(t, stream, data)


def text_run(events: Sequence[Event], **kwargs: Any) -> list[str]:
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=kwargs.pop("colour", False), **kwargs)
    for event in events:
        renderer.handle_event(event)
    renderer.close()
    return stream.getvalue().splitlines()


def feed(renderer: Renderer, events: Sequence[Event]) -> None:
    for event in events:
        renderer.handle_event(event)


def simple_run(t: PodTarget, *chunks: bytes, stream: int = 1) -> list[Event]:
    return [
        run_started([t]),
        PodStarted(t),
        *(out(t, c, stream) for c in chunks),
        PodFinished(result(t, stdout=b"".join(chunks))),
    ]


# -- text ---------------------------------------------------------------------------------------


def test_text_lines_are_prefixed_and_padded_to_the_longest_pod() -> None:
    a, b = target("web-1"), target("web-10")
    lines = text_run(
        [
            run_started([a, b]),
            PodStarted(a),
            PodStarted(b),
            out(a, b"hello\n"),
            out(b, b"hi\nthere\n"),
            PodFinished(result(a)),
            PodFinished(result(b)),
        ],
        show_summary=False,
    )
    assert lines[1:] == ["web-1  | hello", "web-10 | hi", "web-10 | there"]


def test_text_stderr_lines_are_marked() -> None:
    t = target("web-1")
    lines = text_run(
        [run_started([t]), out(t, b"fine\n"), out(t, b"oops\n", stream=2), PodFinished(result(t))],
        show_summary=False,
    )
    assert lines[1:] == ["web-1 | fine", "web-1 ! oops"]


def test_text_names_containers_when_a_pod_runs_several() -> None:
    app = target("web-1", "app", containers=("app", "sidecar"))
    side = target("web-1", "sidecar", containers=("app", "sidecar"))
    lines = text_run(
        [run_started([app, side]), out(app, b"a\n"), out(side, b"s\n")], show_summary=False
    )
    assert lines[0].endswith("2 containers in 1 pod · $ uptime")
    assert lines[1:] == ["web-1 [app]     | a", "web-1 [sidecar] | s"]


def test_live_views_and_summary_name_a_pods_containers_the_same_way(
    fake_display: FakeDisplay,
) -> None:
    app = target("web-1", "app", namespace="prod", containers=("app", "sidecar"))
    side = target("web-1", "sidecar", namespace="prod", containers=("app", "sidecar"))
    other = target("web-2", "app", namespace="staging")
    results = PodResults([result(app, stdout=b"a\n"), result(side), result(other)])
    events = [
        run_started([app, side, other]),
        out(app, b"a\n"),
        *(PodFinished(r) for r in results),
        RunFinished(results),
    ]
    names = ["prod/web-1 [app]", "prod/web-1 [sidecar]", "staging/web-2 [app]"]
    assert results.labels == names

    lines = text_run(events)
    assert lines[1] == "prod/web-1 [app]     | a"
    summary = str(results)
    assert all(f"\n{name} " in summary for name in names)  # table rows
    assert "\nprod/web-1 [app] — " in summary  # group label
    assert all(f">{name}</td>" in results._repr_html_() for name in names)

    widget = WidgetRenderer()
    feed(widget, events[:-1])
    widget.close()
    assert list(widget.pod_views) == names
    assert '">prod/web-1 [app]    </span> | a' in widget._stream_view.value


def test_text_names_namespaces_when_the_run_spans_several() -> None:
    a, b = target("web-1", namespace="prod"), target("web-1", namespace="staging")
    lines = text_run([run_started([a, b]), out(a, b"p\n"), out(b, b"s\n")], show_summary=False)
    assert lines[1:] == ["prod/web-1    | p", "staging/web-1 | s"]


def test_partial_lines_are_joined_across_chunks_and_flushed_at_the_end() -> None:
    t = target("web-1")
    lines = text_run(
        simple_run(t, b"hel", b"lo\nwor", b"ld\nno newline", b" at the end"), show_summary=False
    )
    assert lines[1:] == ["web-1 | hello", "web-1 | world", "web-1 | no newline at the end"]


def test_partial_lines_are_kept_per_stream() -> None:
    t = target("web-1")
    lines = text_run(
        [run_started([t]), out(t, b"std"), out(t, b"err", 2), out(t, b"out\n"), out(t, b"or\n", 2)],
        show_summary=False,
    )
    assert lines[1:] == ["web-1 | stdout", "web-1 ! error"]


def test_a_utf8_character_split_across_chunks_survives() -> None:
    t = target("web-1")
    euro, smile = "€".encode(), "😀".encode()
    lines = text_run(
        simple_run(
            t,
            b"caf\xc3",
            b"\xa9 " + euro[:1],
            euro[1:2],
            euro[2:] + smile[:3],
            smile[3:] + b"\n",
            b"bad \xff byte\n",
        ),
        show_summary=False,
    )
    assert lines[1:] == ["web-1 | café €😀", "web-1 | bad \ufffd byte"]


def test_crlf_ends_a_line_and_a_lone_carriage_return_is_shown() -> None:
    t = target("web-1")
    lines = text_run(simple_run(t, b"tty line\r\n", b"10%\r50%\r100%\n"), show_summary=False)
    # A lone \r would let a line hide what came before it: the terminal view shows it.
    assert lines[1:] == ["web-1 | tty line", "web-1 | 10%^M50%^M100%"]


def test_per_pod_cap_keeps_head_and_tail_and_counts_the_middle() -> None:
    a, b = target("web-1"), target("web-2")
    limits = RenderLimits(head_lines=3, tail_lines=2)
    body = b"".join(b"line %d\n" % i for i in range(10))
    lines = text_run(
        [
            run_started([a, b]),
            out(a, body),
            out(b, b"other\n"),
            PodFinished(result(a)),
            PodFinished(result(b)),
        ],
        limits=limits,
        show_summary=False,
    )
    assert lines[1:] == [
        "web-1 | line 0",
        "web-1 | line 1",
        "web-1 | line 2",
        "web-2 | other",
        # the tail comes when the pod finishes
        "web-1 | … 5 lines hidden …",
        "web-1 | line 8",
        "web-1 | line 9",
    ]


def test_per_pod_cap_without_hidden_lines_prints_the_tail_without_a_marker() -> None:
    t = target("web-1")
    lines = text_run(
        simple_run(t, b"1\n2\n3\n4\n"),
        limits=RenderLimits(head_lines=2, tail_lines=2),
        show_summary=False,
    )
    assert lines[1:] == ["web-1 | 1", "web-1 | 2", "web-1 | 3", "web-1 | 4"]


def test_long_lines_are_cut_with_a_marker() -> None:
    t = target("web-1")
    limits = RenderLimits(max_line_length=10)
    lines = text_run(
        simple_run(t, b"x" * 25 + b"\n", b"y" * 8, b"y" * 8, b"y" * 8 + b"\nshort\n"),
        limits=limits,
        show_summary=False,
    )
    assert lines[1:] == [
        "web-1 | xxxxxxxxxx … [15 more characters cut]",
        "web-1 | yyyyyyyyyy … [14 more characters cut]",
        "web-1 | short",
    ]


def test_a_line_without_end_uses_bounded_memory() -> None:
    from podmagic._render._base import LineSplitter

    splitter = LineSplitter(100)
    for _ in range(1000):
        assert splitter.feed(b"z" * 10_000) == []
    assert sum(len(part) for part in splitter._partial) == 100
    (line,) = splitter.finish()
    assert line == "z" * 100 + f" … [{10_000_000 - 100} more characters cut]"


def test_header_names_context_target_command_and_counts() -> None:
    a, b, c = target("web-1"), target("web-2"), target("web-3")
    skipped = SkippedPod(NAMESPACE, "web-4", "app", None, "not ready")
    lines = text_run(
        [run_started([a, b, c], [skipped], command="df -h\necho done")], show_summary=False
    )
    assert lines == [
        "context sandbox · app=web in namespace demo · 3 pods (1 skipped) · $ df -h … (+1 lines)"
    ]
    assert text_run([run_started([a])], show_header=False, show_summary=False) == []


def test_summary_at_the_end_is_the_results_text() -> None:
    a, b = target("web-1"), target("web-2")
    results = PodResults(
        [
            result(a, stdout=b"ok\n"),
            result(b, status=ExecStatus.FAILED, exit_code=2, stderr=b"bad\n"),
        ]
    )
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=False)
    feed(
        renderer,
        [
            run_started([a, b]),
            out(a, b"ok\n"),
            out(b, b"bad\n", 2),
            PodFinished(results[0]),
            PodFinished(results[1]),
            RunFinished(results),
        ],
    )
    renderer.close()
    text = stream.getvalue()
    assert text.endswith("\n" + str(results) + "\n")
    assert "web-2 ✗ exit 2\n" in text  # a failure is reported as it happens


def test_close_without_results_flushes_and_summarises_what_finished() -> None:
    a, b = target("web-1"), target("web-2")
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=False)
    feed(
        renderer,
        [
            run_started([a, b]),
            out(a, b"done"),
            PodFinished(result(a, stdout=b"done")),
            out(b, b"half a line"),
        ],
    )
    renderer.close()
    renderer.close()  # idempotent
    renderer.handle_event(out(b, b"late\n"))  # ignored after close
    text = stream.getvalue()
    assert "web-2 | half a line\n" in text
    assert "The run ended without its final results; 1 of 2 execs had finished." in text
    assert "late" not in text
    assert text.count("1 pod in context sandbox") == 1


def test_text_colour_prefixes_with_the_pods_colour() -> None:
    t = target("web-1")
    lines = text_run(simple_run(t, b"hi\n", b"\x1b[31mred\n"), colour=True, show_summary=False)
    assert lines[1] == f"{ansi_colour('web-1')}web-1\x1b[0m | hi"
    assert lines[2] == f"{ansi_colour('web-1')}web-1\x1b[0m | ^[[31mred"  # shown, not obeyed


# -- colours ----------------------------------------------------------------------------------------


def test_pod_colours_are_stable_and_agree_between_html_and_ansi() -> None:
    pods = [f"web-{i}" for i in range(50)]
    colours = [pod_colour(p) for p in pods]
    assert colours == [pod_colour(p) for p in pods]
    assert set(colours) <= set(PALETTE) and len(set(colours)) >= 8
    assert len(PALETTE) == 12
    for pod in pods:
        index = PALETTE.index(pod_colour(pod))
        code = int(ansi_colour(pod).removeprefix("\x1b[38;5;").removesuffix("m"))
        r, g, b = (code - 16) // 36, (code - 16) // 6 % 6, (code - 16) % 6
        levels = (0x00, 0x5F, 0x87, 0xAF, 0xD7, 0xFF)
        assert PALETTE[index] == f"#{levels[r]:02x}{levels[g]:02x}{levels[b]:02x}"


def test_pod_colours_do_not_depend_on_the_process() -> None:
    script = "from podmagic._render import pod_colour; print(pod_colour('api-7c9d8-x2k4p'))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert seen == {pod_colour("api-7c9d8-x2k4p")}


def test_pod_colours_are_the_same_across_renderer_instances(fake_display: FakeDisplay) -> None:
    t = target("web-1")
    first, second = WidgetRenderer(), WidgetRenderer()
    for renderer in (first, second):
        for event in simple_run(t, b"hi\n"):
            renderer.handle_event(event)
        renderer.close()
        assert f'<span style="color: {pod_colour("web-1")}">web-1</span> | hi' in (
            renderer._stream_view.value
        )


# -- widgets ----------------------------------------------------------------------------------------


@dataclass
class FakeHandle:
    display_id: str
    updates: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)

    def update(self, obj: Any, **kwargs: Any) -> None:
        self.updates.append((obj, kwargs))


@dataclass
class FakeDisplay:
    calls: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)
    handles: list[FakeHandle] = field(default_factory=list)

    def __call__(self, obj: Any, **kwargs: Any) -> FakeHandle:
        self.calls.append((obj, kwargs))
        handle = FakeHandle(f"display-{len(self.handles)}")
        self.handles.append(handle)
        return handle


@pytest.fixture
def fake_display(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDisplay]:
    """Captures ``IPython.display.display`` and the handle's updates; checks no flush
    thread outlives the test."""
    import IPython.display

    fake = FakeDisplay()
    monkeypatch.setattr(IPython.display, "display", fake)
    yield fake
    wait_until(lambda: _flush_threads() == [], what="no render flush thread is left")


def _flush_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "podmagic-render-flush"]


def test_widget_displays_once_with_a_display_id(fake_display: FakeDisplay) -> None:
    renderer = WidgetRenderer()
    assert len(fake_display.calls) == 1
    obj, kwargs = fake_display.calls[0]
    assert kwargs == {"raw": True, "display_id": True}
    assert obj["application/vnd.jupyter.widget-view+json"]["model_id"] == renderer.widget.model_id
    assert obj["text/plain"] == ""  # no "VBox(...)" in a notebook saved without widget state
    assert renderer.display_handle is fake_display.handles[0]  # type: ignore[comparison-overlap]
    renderer.close()
    assert WidgetRenderer(display=False).display_handle is None
    assert len(fake_display.calls) == 1


def test_widget_throttles_100000_lines_and_shows_the_last_ones(fake_display: FakeDisplay) -> None:
    pods = [target(f"pod-{i:02d}") for i in range(20)]
    renderer = WidgetRenderer()
    per_pod, per_chunk = 5000, 50
    chunks = [
        (
            t,
            b"".join(
                b"%s line %d\n" % (t.pod.encode(), n) for n in range(start, start + per_chunk)
            ),
        )
        for start in range(0, per_pod, per_chunk)
        for t in pods
    ]

    def engine() -> None:  # plays the engine's loop thread
        renderer.handle_event(run_started(pods))
        for t in pods:
            renderer.handle_event(PodStarted(t))
        for index, (t, data) in enumerate(chunks):
            renderer.handle_event(out(t, data))
            if index % 100 == 99:
                time.sleep(0.05)  # spread the 100,000 lines over about a second
        for t in pods:
            renderer.handle_event(PodFinished(result(t)))

    began = time.monotonic()
    thread = threading.Thread(target=engine)
    thread.start()
    thread.join()
    renderer.close()
    elapsed = time.monotonic() - began

    assert renderer.lines_received == 100_000
    assert renderer.bytes_received == sum(len(data) for _, data in chunks)
    assert renderer.updates_sent <= 12 * max(elapsed, 1.0) + 1, (renderer.updates_sent, elapsed)
    assert renderer.updates_sent >= 2  # it did update while running
    shown = renderer._stream_view.value
    assert "pod-19 line 4999" in shown and "pod-00 line 4999" in shown
    assert "95000 earlier lines not shown" in shown
    assert shown.count("\n") <= RenderLimits().max_total_lines + 1
    assert renderer._progress.value.startswith("20 / 20 done")


def test_widget_per_pod_view_shows_only_that_pods_lines_capped(fake_display: FakeDisplay) -> None:
    a, b = target("web-1"), target("web-2")
    renderer = WidgetRenderer(limits=RenderLimits(head_lines=3, tail_lines=2))
    feed(
        renderer,
        [
            run_started([a, b]),
            PodStarted(a),
            PodStarted(b),
            out(a, b"".join(b"a%d\n" % i for i in range(10))),
            out(b, b"b-only\n"),
            out(b, b"b-err <tag>\n", 2),
        ],
    )
    wait_until(
        lambda: "b-err" in renderer.pod_views.get("web-2", _NoValue).value,
        what="web-2's view shows its stderr",
    )
    view_a = renderer.pod_views["web-1"].value
    view_b = renderer.pod_views["web-2"].value
    assert "b-only" not in view_a and "a0" not in view_b
    for kept in ("a0", "a1", "a2", "… 5 lines hidden …", "a8", "a9"):
        assert kept in view_a
    assert "a5" not in view_a
    assert "b-err &lt;tag&gt;" in view_b  # escaped
    assert "running" in view_a
    assert renderer._picker.options == ("web-1", "web-2")
    assert len(renderer._stack.children) == 2
    renderer.close()


class _NoValue:
    value = ""


def test_widget_progress_counts_and_turns_red_on_failure(fake_display: FakeDisplay) -> None:
    a, b, c = target("web-1"), target("web-2"), target("web-3")
    renderer = WidgetRenderer()
    renderer.handle_event(run_started([a, b, c]))
    renderer.handle_event(PodFinished(result(a)))
    wait_until(lambda: renderer._progress.value.startswith("1 / 3 done"), what="1 / 3 done")
    assert renderer._bar.bar_style == "" and renderer._bar.value == 1 and renderer._bar.max == 3
    renderer.handle_event(PodFinished(result(b, status=ExecStatus.FAILED, exit_code=1)))
    wait_until(lambda: renderer._progress.value.startswith("2 / 3 done"), what="2 / 3 done")
    assert "1 failed" in renderer._progress.value
    assert renderer._bar.bar_style == "danger"
    assert "exit 1" in renderer.pod_views["web-2"].value
    renderer.close()


def test_widget_bar_is_green_when_all_succeed(fake_display: FakeDisplay) -> None:
    t = target("web-1")
    renderer = WidgetRenderer(display=False)
    for event in simple_run(t, b"x\n"):
        renderer.handle_event(event)
    renderer.handle_event(RunFinished(PodResults([result(t, stdout=b"x\n")])))
    renderer.close()
    assert renderer._bar.bar_style == "success"
    assert renderer._progress.value.startswith("1 / 1 done")


def test_widget_header(fake_display: FakeDisplay) -> None:
    a = target("web-1")
    renderer = WidgetRenderer()
    skipped = SkippedPod(NAMESPACE, "web-2", "app", None, "not ready")
    renderer.handle_event(run_started([a], [skipped], command="echo <hi>"))
    wait_until(lambda: "echo" in renderer._header.value, what="the header names the command")
    header = renderer._header.value
    for part in (
        "<b>sandbox</b>",
        "app=web in namespace demo",
        "1 pod (1 skipped)",
        "$ echo &lt;hi&gt;",
    ):
        assert part in header
    renderer.close()


def test_widget_close_replaces_the_slot_with_the_summary(fake_display: FakeDisplay) -> None:
    a, b = target("web-1"), target("web-2")
    results = PodResults([result(a, stdout=b"same\n"), result(b, stdout=b"same\n")])
    renderer = WidgetRenderer()
    feed(
        renderer,
        [
            run_started([a, b]),
            out(a, b"same\n"),
            out(b, b"same\n"),
            PodFinished(results[0]),
            PodFinished(results[1]),
            RunFinished(results),
        ],
    )
    handle = fake_display.handles[0]
    # RunFinished alone puts the summary up.
    wait_until(lambda: handle.updates, what="the summary replaced the live view")
    renderer.close()
    renderer.close()
    assert len(handle.updates) == 1
    bundle, kwargs = handle.updates[0]
    assert kwargs == {"raw": True}
    assert bundle == {"text/plain": str(results), "text/html": results._repr_html_()}
    assert "web-1, web-2 — 2 pods, exit 0" in bundle["text/plain"]
    assert renderer.widget.comm is None  # the live view's widgets are closed
    renderer.handle_event(out(a, b"late\n"))
    assert renderer.lines_received == 2


def test_widget_close_without_results_summarises_what_finished(fake_display: FakeDisplay) -> None:
    a, b = target("web-1"), target("web-2")
    renderer = WidgetRenderer()
    feed(
        renderer,
        [
            run_started([a, b]),
            out(a, b"x"),
            PodFinished(result(a, stdout=b"x")),
            out(b, b"partial"),
        ],
    )
    renderer.close()
    bundle, _ = fake_display.handles[0].updates[0]
    assert bundle["text/plain"].startswith(
        "The run ended without its final results; 1 of 2 execs had finished.\n1 pod"
    )
    assert "partial" in renderer._stream_view.value


def test_widget_without_summary_empties_the_slot(fake_display: FakeDisplay) -> None:
    t = target("web-1")
    renderer = WidgetRenderer(show_summary=False)
    for event in simple_run(t, b"x\n"):
        renderer.handle_event(event)
    renderer.handle_event(RunFinished(PodResults([result(t)])))
    renderer.close()
    assert fake_display.handles[0].updates == [({"text/plain": ""}, {"raw": True})]


def test_widget_retry_restarts_the_pod(fake_display: FakeDisplay) -> None:
    t = target("web-1")
    renderer = WidgetRenderer(display=False)
    renderer.handle_event(run_started([t]))
    renderer.handle_event(PodStarted(t))
    renderer.handle_event(
        PodFinished(result(t, status=ExecStatus.ERROR, exit_code=None, error="connection lost"))
    )
    renderer.handle_event(PodStarted(t))
    renderer.handle_event(out(t, b"second try\n"))
    wait_until(lambda: "second try" in renderer._stream_view.value, what="the second try shown")
    wait_until(lambda: renderer._progress.value.startswith("0 / 1 done"), what="0 / 1 done")
    assert "↻ retrying" in renderer.pod_views["web-1"].value
    renderer.close()


GARBAGE: list[Any] = [
    None,
    "text",
    42,
    object(),
    PodOutput(None, 1, b"x\n"),  # type: ignore[arg-type]
    PodOutput(target("web-1"), 1, None),  # type: ignore[arg-type]
    PodOutput(target("web-1"), 7, b"unknown stream\n"),
    PodStarted(None),  # type: ignore[arg-type]
    PodFinished(None),  # type: ignore[arg-type]
    RunStarted(context=CONTEXT, selection=None, command="x"),  # type: ignore[arg-type]
    RunFinished(None),  # type: ignore[arg-type]
]


def test_handle_event_never_raises_text(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=False)
    with caplog.at_level(logging.ERROR, logger="podmagic.render"):
        for event in GARBAGE:
            renderer.handle_event(event)
        t = target("web-2")
        for event in simple_run(t, b"still works\n"):
            renderer.handle_event(event)
        renderer.close()
    assert "web-2 | still works" in stream.getvalue()
    assert any(r.name == "podmagic.render" for r in caplog.records)
    assert len(caplog.records) <= 4  # the first few in full, then one line


def test_handle_event_never_raises_widget(
    fake_display: FakeDisplay, caplog: pytest.LogCaptureFixture
) -> None:
    renderer = WidgetRenderer()
    with caplog.at_level(logging.ERROR, logger="podmagic.render"):
        for event in GARBAGE:
            renderer.handle_event(event)
        t = target("web-2")
        for event in simple_run(t, b"still works\n"):
            renderer.handle_event(event)
        renderer.close()
    assert any(r.name == "podmagic.render" for r in caplog.records)
    assert fake_display.handles[0].updates  # closed properly despite the garbage


def test_null_renderer_and_protocol() -> None:
    null = NullRenderer()
    null.handle_event(None)  # type: ignore[arg-type]
    null.close()
    for renderer in (null, TextRenderer(io.StringIO())):
        assert isinstance(renderer, Renderer)


def test_choose_renderer_outside_a_kernel_is_text() -> None:
    stream = io.StringIO()
    renderer = choose_renderer(stream=stream, display=True)
    assert isinstance(renderer, TextRenderer)
    with pytest.raises(TypeError, match="unexpected arguments: nope"):
        choose_renderer(nope=1)


def test_choose_renderer_in_a_kernel_is_widgets(
    monkeypatch: pytest.MonkeyPatch, fake_display: FakeDisplay
) -> None:
    import IPython

    class ZMQInteractiveShell:  # the name is what counts
        pass

    monkeypatch.setattr(IPython, "get_ipython", lambda: ZMQInteractiveShell())
    renderer = choose_renderer(stream=io.StringIO(), limits=RenderLimits(head_lines=1))
    assert isinstance(renderer, LiveRenderer)  # the front-end widget view
    assert renderer.limits.head_lines == 1
    renderer.close()


def test_render_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_updates_per_second"):
        RenderLimits(max_updates_per_second=0)
    with pytest.raises(ValueError, match="head_lines"):
        RenderLimits(head_lines=-1)


# -- a real kernel ---------------------------------------------------------------------------------

_NOTEBOOK_SETUP = """
import threading
from podmagic._events import PodFinished, PodOutput, PodStarted, RunFinished, RunStarted
from podmagic._render import WidgetRenderer
from podmagic._results import ExecStatus, PodResult, PodResults
from podmagic._resolve import PodTarget, Selection

def run(renderer, tag, go=None):
    pods = [PodTarget("demo", f"{tag}-{i}", "app", "node-a", ("app",), "uid", 0) for i in range(3)]
    if go is not None:
        go.wait(60)  # the events start once the next cell runs
    renderer.handle_event(RunStarted("sandbox", Selection(tuple(pods), (), "all pods in namespace demo"), "hostname"))
    results = []
    for t in pods:
        renderer.handle_event(PodStarted(t))
        for n in range(200):
            renderer.handle_event(PodOutput(t, 1, b"%s line %d\\n" % (t.pod.encode(), n)))
        results.append(PodResult(context="sandbox", namespace="demo", pod=t.pod, container="app",
                                  status=ExecStatus.OK, exit_code=0, stdout=b"same\\n", duration=0.1))
        renderer.handle_event(PodFinished(results[-1]))
    renderer.handle_event(RunFinished(PodResults(results)))
    renderer.close()
"""

_NOTEBOOK_CELLS = [
    # A background run: the cell returns at once, the events arrive while the next cell runs.
    _NOTEBOOK_SETUP
    + """
background = WidgetRenderer()
go = threading.Event()
feeder = threading.Thread(target=run, args=(background, "bg", go))
feeder.start()
""",
    """
print("second cell")
go.set()
feeder.join()
""",
    # A blocking run in one cell.
    """
run(WidgetRenderer(), "fg")
""",
]


def test_real_kernel_summary_persists_and_nothing_leaks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in _NOTEBOOK_CELLS]
    client = nbclient.NotebookClient(
        notebook, timeout=30, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # each cell may take 30 s (timeout=30): enough to tell a hang

    first, second, third = (cell.outputs for cell in notebook.cells)
    # The background run's slot was replaced by the summary while the second cell ran.
    assert [o.output_type for o in first] == ["display_data"]
    assert set(first[0].data) == {"text/plain", "text/html"}
    assert first[0].data["text/plain"].startswith("3 pods in context sandbox, namespace demo: 3 ok")
    assert "bg-0, bg-1, bg-2 — 3 pods, exit 0" in first[0].data["text/plain"]
    # ... and nothing of it landed in the cell that happened to be running.
    assert [(o.output_type, o.get("text")) for o in second] == [("stream", "second cell\n")]
    # The blocking run shows its own summary in its own cell.
    assert [o.output_type for o in third] == ["display_data"]
    assert "fg-0, fg-1, fg-2 — 3 pods, exit 0" in third[0].data["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" not in third[0].data
