"""What a pod prints never acts on the user's terminal: text views show control characters.

A hostile or careless pod can print terminal escapes: OSC 52 (write the clipboard), OSC 0 (the
window title), clear-screen, OSC 8 (hyperlinks), cursor moves, C1 controls, ``\\r`` and
backspace overwrites, BEL, NUL. The live text view, ``str(results)`` and the summary must show
them as visible text (``^[``), never pass them raw; podmagic's own colours are the only escape
sequences a text view writes. The results' bytes stay exact.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest

from podmagic._client import Cluster
from podmagic._errors import ApiError, PodExecError
from podmagic._events import PodFinished, PodOutput, PodStarted, RunStarted
from podmagic._render import TextRenderer, WidgetRenderer
from podmagic._render._base import ANSI_ERROR, ANSI_RESET, PALETTE, ansi_colour
from podmagic._resolve import PodTarget, Selection
from podmagic._results import ExecStatus, PodResult, PodResults
from podmagic._safe_text import visible_controls
from podmagic.sandbox import Sandbox

#: Each hostile sequence and how the text view must show it.
HOSTILE = {
    "OSC 52 clipboard write": (b"\x1b]52;c;cm0gLXJmIC8K\x07", "^[]52;c;cm0gLXJmIC8K^G"),
    "OSC 0 window title": (b"\x1b]0;PWNED\x07", "^[]0;PWNED^G"),
    "OSC 0 title, ST-terminated": (b"\x1b]0;PWNED\x1b\\", "^[]0;PWNED^[\\"),
    "clear screen and home": (b"\x1b[2J\x1b[H", "^[[2J^[[H"),
    "OSC 8 hyperlink": (
        b"\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\",
        "^[]8;;https://evil.example/^[\\click^[]8;;^[\\",
    ),
    "SGR colour": (b"\x1b[31mred", "^[[31mred"),
    "C1 CSI (U+009B) clear": ("\u009b2J".encode(), "<U+009B>2J"),
    "C1 OSC (U+009D) title": ("\u009d0;PWNED\u009c".encode(), "<U+009D>0;PWNED<U+009C>"),
    "bell": (b"ding\x07", "ding^G"),
    "NUL": (b"a\x00b", "a^@b"),
    "backspace overwrite": (
        b"rm -rf /\x08\x08\x08\x08\x08\x08\x08\x08ok",
        "rm -rf /^H^H^H^H^H^H^H^Hok",
    ),
    "lone carriage return overwrite": (b"rm -rf /\rok      ", "rm -rf /^Mok      "),
    "DEL": (b"a\x7fb", "a^?b"),
    "bidi override": ("\u202eevil".encode(), "<U+202E>evil"),
}

#: podmagic's own escape sequences: pod colours, the error red, the reset.
_OWN = re.compile(
    "|".join(
        re.escape(code)
        for code in (ANSI_RESET, ANSI_ERROR, *(ansi_colour(f"pod-{i}") for i in range(200)))
    )
)
# ansi_colour() maps names onto the palette; 200 names cover all its colours.
assert len({ansi_colour(f"pod-{i}") for i in range(200)}) == len(PALETTE)

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def raw_controls(text: str) -> list[str]:
    """The control characters in ``text`` other than newlines, tabs and podmagic's colours."""
    return _CONTROL.findall(_OWN.sub("", text))


@pytest.fixture(scope="module")
def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(kubeconfig=sandbox.kubeconfig, namespace="conf")


def printf_script(data: bytes) -> str:
    """A shell script printing exactly ``data`` (octal escapes, so the script is plain text)."""
    return "printf '" + "".join(f"\\{byte:03o}" for byte in data) + "'"


# -- the live text view and str(results), end to end -------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE))
def test_text_view_shows_pod_escape_sequences_as_visible_text(cluster: Cluster, name: str) -> None:
    data, shown = HOSTILE[name]
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=True)
    try:
        results = cluster.run(
            printf_script(b"<" + data + b">\n") + " >&2; " + printf_script(data),
            "solo",
            on_event=renderer.handle_event,
        )
    finally:
        renderer.close()
    text = stream.getvalue()
    assert raw_controls(text) == []
    assert f"<{shown}>" in text  # the stderr line, in the live view
    assert results[0].stdout == data  # the data stays exact: only the display changes
    assert results[0].stderr == b"<" + data + b">\n"
    summary = str(results)
    assert raw_controls(summary) == []
    assert f"<{shown}>" in summary


def test_str_results_shows_control_characters_visibly() -> None:
    clipboard = b"\x1b]52;c;cm0gLXJmIC8K\x07 title \x1b]0;PWNED\x07 \x1b[2J\x9b \xc2\x9b end\n"
    r = PodResult(
        context="ctx",
        namespace="ns",
        pod="web-1",
        status=ExecStatus.OK,
        exit_code=0,
        stdout=clipboard,
        stderr=b"warn \x1b[31mred\x1b[0m\x07\n",
    )
    text = str(PodResults([r]))
    assert raw_controls(text) == []
    assert "^[]52;c;cm0gLXJmIC8K^G title ^[]0;PWNED^G ^[[2J\ufffd <U+009B> end" in text
    assert "warn ^[[31mred^[[0m^G" in text
    assert r.stdout == clipboard


def test_summary_shows_a_lone_carriage_return_instead_of_breaking_the_line() -> None:
    r = PodResult(
        context="ctx",
        namespace="ns",
        pod="web-1",
        status=ExecStatus.OK,
        exit_code=0,
        stdout=b"rm -rf /\rok\r\nsecond\r\n",
    )
    text = str(PodResults([r]))
    assert "  rm -rf /^Mok\n  second" in text


def test_error_messages_and_names_in_the_summary_are_shown_visibly() -> None:
    # Error messages come from the API server: a hostile one must not act on the terminal.
    r = PodResult(
        context="ctx\x1b]0;t\x07",
        namespace="ns",
        pod="web-1",
        node="n\x1b[2J",
        status=ExecStatus.ERROR,
        error="HTTP 500: \x1b]52;c;eA==\x07boom",
    )
    text = str(PodResults([r]))
    assert raw_controls(text) == []
    assert "HTTP 500: ^[]52;c;eA==^Gboom" in text
    assert "context ctx^[]0;t^G" in text


def test_html_summary_shows_control_characters_visibly() -> None:
    r = PodResult(
        context="ctx",
        namespace="ns",
        pod="web-1",
        status=ExecStatus.OK,
        exit_code=0,
        stdout=b"<script>x</script> \x1b]0;PWNED\x07\n",
    )
    markup = PodResults([r])._repr_html_()
    assert "\x1b" not in markup and "\x07" not in markup
    assert "&lt;script&gt;x&lt;/script&gt; ^[]0;PWNED^G" in markup


def test_pod_result_repr_shows_bytes_escaped() -> None:
    r = PodResult(
        context="ctx",
        namespace="ns",
        pod="web-1",
        status=ExecStatus.OK,
        exit_code=0,
        stdout=b"\x1b]0;PWNED\x07",
        stderr=b"\x9b2J",
        error=None,
    )
    assert raw_controls(repr(r)) == []
    assert raw_controls(repr(PodResults([r]))) == []


def test_exception_messages_show_pod_output_visibly() -> None:
    # PodExecError quotes the pod's last stderr line; IPython prints it in the terminal.
    r = PodResult(
        context="ctx",
        namespace="ns",
        pod="web-1",
        status=ExecStatus.FAILED,
        exit_code=1,
        stderr=b"fatal: \x1b]52;c;cm0gLXJmIC8K\x07\x1b[2J",
    )
    with pytest.raises(PodExecError) as caught:
        r.check_returncode()
    assert raw_controls(str(caught.value)) == []
    assert "fatal: ^[]52;c;cm0gLXJmIC8K^G^[[2J" in str(caught.value)
    assert raw_controls("".join(caught.value._render_traceback_())) == []
    assert caught.value.stderr == b"fatal: \x1b]52;c;cm0gLXJmIC8K\x07\x1b[2J"
    error = ApiError(500, "the server said \x1b]0;PWNED\x07")
    assert raw_controls(str(error)) == []


# -- the live view, event by event -------------------------------------------------------------


def _selection(t: PodTarget) -> Selection:
    return Selection(run=(t,), skipped=(), description="pod web-1 in namespace demo")


def _target(pod: str) -> PodTarget:
    return PodTarget(
        namespace="demo",
        pod=pod,
        container="app",
        node="node-a",
        containers=("app",),
        pod_uid=f"uid-{pod}",
        restarts=0,
    )


def test_live_line_names_the_exit_code_once() -> None:
    t = _target("web-1")
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=False, show_summary=False)
    renderer.handle_event(RunStarted(context="ctx", selection=_selection(t), command="x"))
    renderer.handle_event(PodStarted(t))
    renderer.handle_event(
        PodFinished(
            PodResult(
                context="ctx",
                namespace="demo",
                pod="web-1",
                container="app",
                status=ExecStatus.FAILED,
                exit_code=127,
                error="exit 127: command not found in the container",
            )
        )
    )
    renderer.close()
    assert (
        stream.getvalue().splitlines()[-1] == "web-1 ✗ exit 127: command not found in the container"
    )


def test_live_line_still_names_the_outcome_of_other_errors() -> None:
    t = _target("web-1")
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=False, show_summary=False)
    renderer.handle_event(RunStarted(context="ctx", selection=_selection(t), command="x"))
    renderer.handle_event(
        PodFinished(
            PodResult(
                context="ctx",
                namespace="demo",
                pod="web-1",
                container="app",
                status=ExecStatus.ERROR,
                error="connection lost\x1b]0;t\x07",
            )
        )
    )
    renderer.close()
    assert stream.getvalue().splitlines()[-1] == "web-1 ✗ error: connection lost^[]0;t^G"


def test_only_podmagic_colours_reach_the_terminal_with_colour_on(cluster: Cluster) -> None:
    stream = io.StringIO()
    renderer = TextRenderer(stream, colour=True)
    try:
        cluster.run(
            "printf '\\033[31mred\\033[0m\\n'; printf 'err \\033]0;x\\007\\n' >&2; exit 3",
            "solo",
            on_event=renderer.handle_event,
        )
    finally:
        renderer.close()
    text = stream.getvalue()
    assert "\x1b" in text  # colour is on: podmagic's own prefixes are coloured
    assert raw_controls(text) == []
    assert "^[[31mred^[[0m" in text and "err ^[]0;x^G" in text


# -- the widget (HTML) -------------------------------------------------------------------------


def test_widget_view_escapes_markup_drops_escape_sequences_and_shows_controls() -> None:
    t = _target("web-1")
    renderer = WidgetRenderer(display=False, show_summary=False)
    renderer.handle_event(RunStarted(context="ctx", selection=_selection(t), command="x"))
    renderer.handle_event(PodStarted(t))
    renderer.handle_event(
        PodOutput(t, 1, b"<img src=x onerror=alert(1)> \x1b]0;PWNED\x07 \x1b[2Jok\x07\x00\n")
    )
    renderer.handle_event(
        PodFinished(
            PodResult(
                context="ctx",
                namespace="demo",
                pod="web-1",
                container="app",
                status=ExecStatus.FAILED,
                exit_code=127,
                error="exit 127: command not found",
            )
        )
    )
    renderer.close()
    for markup in (renderer._stream_view.value, renderer.pod_views["web-1"].value):
        assert "<img" not in markup and "&lt;img src=x onerror=alert(1)&gt;" in markup
        assert raw_controls(markup) == []
    assert "ok^G^@" in renderer.pod_views["web-1"].value
    assert "exit 127: exit 127" not in renderer.pod_views["web-1"].value
    assert "— command not found" in renderer.pod_views["web-1"].value


# -- the sanitiser itself ----------------------------------------------------------------------


def test_tabs_newlines_and_ordinary_text_are_unchanged() -> None:
    text = "name\tvalue\ncafé €😀 ^[ is plain text\n"
    assert visible_controls(text) is text


def test_crlf_line_ends_stay_line_ends() -> None:
    assert visible_controls("a\r\nb\r\n") == "a\nb\n"
    assert visible_controls("a\rb\r\n") == "a^Mb\n"


def test_visible_controls_is_idempotent() -> None:
    once = visible_controls("\x1b]0;t\x07\x9b\u202e\r\x00")
    assert visible_controls(once) == once == "^[]0;t^G<U+009B><U+202E>^M^@"


def test_invalid_utf8_shows_replacement_characters_in_the_summary() -> None:
    r = PodResult(
        context="ctx",
        namespace="ns",
        pod="web-1",
        status=ExecStatus.OK,
        exit_code=0,
        stdout=b"bad \xff\x9b byte\n",
    )
    assert "bad \ufffd\ufffd byte" in str(PodResults([r]))


def test_dry_run_listing_shows_control_characters_visibly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from podmagic._magics import PodMagic
    from podmagic._resolve import SkippedPod

    magic = PodMagic(shell=InteractiveShell.instance())
    selection = Selection(
        run=(_target("web-1"),),
        skipped=(SkippedPod("demo", "web-2", "app", "node-a", "Pending \x1b]0;PWNED\x07"),),
        description="d",
    )

    class Named:
        context = "ctx"

    magic._show_selection(Named(), selection)  # type: ignore[arg-type]
    shown = capsys.readouterr().out
    assert "skip  demo/web-2: Pending ^[]0;PWNED^G" in shown
    assert raw_controls(shown) == []


# -- invisible format characters ----------------------------------------------------------------


@pytest.mark.parametrize(
    "code", [0xFEFF, 0x200B, 0x200C, 0x200D, 0x2060, 0x00AD, 0x2066, 0x2069, 0xE0041]
)
def test_invisible_format_characters_are_shown_as_code_points(code: int) -> None:
    assert visible_controls(f"ro{chr(code)}ot") == f"ro<U+{code:04X}>ot"


# -- DataFrames that --parse makes, through IPython's formatters ------------------------------


_HOSTILE = "x\x1b]0;PWNED\x07\x1b[2J\u009by\ufeff"


@pytest.fixture
def frame_shell() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    from podmagic import load_ipython_extension

    shell = InteractiveShell.instance()
    load_ipython_extension(shell)
    yield shell


def _parsed(fmt: str, stdout: bytes) -> Any:
    r = PodResult(
        context="ctx",
        namespace="demo",
        pod="db-0",
        status=ExecStatus.OK,
        exit_code=0,
        stdout=stdout,
    )
    return PodResults([r]).parse(fmt)


@pytest.mark.parametrize(
    ("fmt", "stdout"),
    [
        ("lines", _HOSTILE.encode() + b"\n"),
        ("json", b'{"a": "\\u001b]0;JSONPWN\\u0007", "\\u001b[2Jkey": 1}'),
    ],
)
def test_parsed_frame_display_shows_controls_as_text_and_keeps_the_data(
    frame_shell: Any, fmt: str, stdout: bytes
) -> None:
    frame = _parsed(fmt, stdout)
    before = frame.copy()
    shown, _ = frame_shell.display_formatter.format(frame)
    for mime in ("text/plain", "text/html"):
        assert "\x1b" not in shown[mime] and "\x07" not in shown[mime], mime
        assert "\u009b" not in shown[mime] and "\ufeff" not in shown[mime], mime
        assert "^[" in shown[mime], mime
    assert frame.equals(before) and list(frame.columns) == list(before.columns)
    assert "\x1b" in "".join(str(v) for v in frame.iloc[0]) + "".join(map(str, frame.columns))


def test_other_dataframes_display_as_pandas_shows_them(frame_shell: Any) -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": ["x\x1b[1my"]})
    shown, _ = frame_shell.display_formatter.format(frame)
    assert shown["text/plain"] == repr(frame)
    assert shown["text/html"] == frame._repr_html_()


def test_loading_the_extension_twice_keeps_one_safe_formatter(frame_shell: Any) -> None:
    from podmagic import load_ipython_extension

    load_ipython_extension(frame_shell)
    frame = _parsed("lines", b"a\x1b[2Jb\n")
    shown, _ = frame_shell.display_formatter.format(frame)
    assert "a^[[2Jb" in shown["text/plain"]
