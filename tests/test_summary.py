"""The summary's presentation (podmagic/_render/_summary.py): previews, HTML layout, colours,
and the short reprs of results and groups. Built by hand, no cluster."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from test_results import failed, ok, result, skipped, timeout

from podmagic._render._summary import MAX_PREVIEW_LINE_CHARS
from podmagic._results import ExecStatus, PodResults

# Page backgrounds the summary is shown on: JupyterLab/nbconvert light (white, the grey of
# code cells), JupyterLab dark (#111111, #212121), VS Code dark (#1e1e1e), GitHub dark.
LIGHT_PAGES = ("#ffffff", "#f7f7f7")
DARK_PAGES = ("#111111", "#1e1e1e", "#212121", "#0d1117")


def luminance(colour: str) -> float:
    """WCAG 2 relative luminance of ``#rrggbb``."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(int(colour[i : i + 2], 16)) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


class Styles(HTMLParser):
    """Every element's tag and parsed inline style."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        style = dict(attrs).get("style") or ""
        declarations = (part.split(":", 1) for part in style.split(";") if ":" in part)
        self.found.append((tag, {k.strip(): v.strip() for k, v in declarations}))


def styles(page: str) -> list[tuple[str, dict[str, str]]]:
    parser = Styles()
    parser.feed(page)
    return parser.found


def every_status() -> PodResults:
    return PodResults(
        [
            ok("web-1"),
            failed("web-2", stderr=b"boom\n"),
            timeout("web-3"),
            skipped("web-4"),
            result("web-5", ExecStatus.ERROR, None, error="connection refused"),
            result("web-6", ExecStatus.CANCELLED, None, stdout=b"half"),
            result("web-7", ExecStatus.NOT_STARTED, None, error="deadline"),
            ok("web-8", stdout=b"x" * 10, stdout_dropped=100, stdout_dropped_digest=b"d"),
        ]
    )


# -- previews -------------------------------------------------------------------------------


def test_each_group_shows_its_first_and_its_last_lines() -> None:
    lines = [f"line {i}" for i in range(1, 101)]
    lines[-1] = "Error: disk full"
    results = PodResults([failed("web-1", stderr="\n".join(lines).encode() + b"\n")])
    text = str(results)
    shown = text[text.index("  stderr:") :].splitlines()[1:]
    assert shown == [
        *(f"    line {i}" for i in range(1, 6)),
        "    … 90 lines hidden …",
        *(f"    line {i}" for i in range(96, 100)),
        "    Error: disk full",
    ]
    page = results._repr_html_()
    assert "line 5\n… 90 lines hidden …\nline 96" in page
    assert "Error: disk full</pre>" in page


def test_a_long_line_in_the_summary_says_how_much_was_cut() -> None:
    results = PodResults([ok("web-1", stdout=b"A" * 3_000_000 + b"\n")])
    marker = f"A … [{3_000_000 - MAX_PREVIEW_LINE_CHARS} more characters cut]"
    assert marker in str(results)
    assert marker in results._repr_html_()


def test_a_short_output_is_shown_whole() -> None:
    for count in (10, 11):  # 11: a marker would hide one line in its own place
        out = "".join(f"{i}\n" for i in range(count)).encode()
        text = str(PodResults([ok("web-1", stdout=out)]))
        assert "hidden" not in text
        assert all(f"\n  {i}\n" in text + "\n" for i in range(count))


# -- HTML layout ----------------------------------------------------------------------------


def test_html_text_columns_are_left_aligned_and_numbers_right_aligned() -> None:
    page = every_status()._repr_html_()
    cells = [(tag, style) for tag, style in styles(page) if tag in ("th", "td")]
    columns = ["pod", "container", "exit", "status", "duration", "node", "not kept", "error"]
    assert len(cells) == len(columns) * (1 + len(every_status()))
    for index, (_, style) in enumerate(cells):
        name = columns[index % len(columns)]
        expected = "right" if name in ("exit", "duration", "not kept") else "left"
        # JupyterLab's stylesheet right-aligns every cell: only an explicit style overrides it.
        assert style.get("text-align") == expected, (name, style)


def test_html_output_is_in_a_monospace_font() -> None:
    pres = [style for tag, style in styles(every_status()._repr_html_()) if tag == "pre"]
    assert len(pres) >= 2  # stdout and stderr
    for style in pres:
        assert style.get("font-family", "").endswith("monospace"), style


def nine_outputs() -> PodResults:
    """Nine distinct outputs: four pods agree, one fails, seven say something of their own."""
    return PodResults(
        [ok(f"web-{i}", stdout=b"ready\n") for i in range(4)]
        + [failed("web-4", stderr=b"Error: disk full\n")]
        + [ok(f"job-{i}", stdout=f"done {i}\n".encode()) for i in range(7)]
    )


def test_html_opens_the_three_largest_groups_and_closes_the_rest() -> None:
    page = nine_outputs()._repr_html_()
    details = re.findall(r"<details( open)?[^>]*><summary[^>]*><span[^>]*>([^<]*)</span>", page)
    assert len(details) == 9
    assert [bool(opened) for opened, _ in details] == [True] * 3 + [False] * 6
    # The majority's output first, then the failure, then the others (largest first, then
    # by name: the groups' own order).
    assert details[0][1].startswith("web-0, web-1, web-2, web-3 — 4 pods")
    assert details[1][1].startswith("web-4 — 1 pod, exit 1")
    assert [label.split(" ")[0] for _, label in details[2:]] == [f"job-{i}" for i in range(7)]


def test_without_a_majority_the_failures_come_first() -> None:
    results = PodResults([ok("web-0", stdout=b"a\n"), ok("web-1", stdout=b"b\n"), failed("web-2")])
    text = str(results)
    assert text.index("web-2 — 1 pod") < text.index("web-0 — 1 pod") < text.index("web-1 — 1 pod")


def test_the_whole_html_summary_is_in_a_monospace_font_with_inline_styles_only() -> None:
    page = nine_outputs()._repr_html_()
    assert "<style" not in page  # GitHub's renderer drops <style> elements
    found = styles(page)
    fonts = {tag: style.get("font-family", "") for tag, style in found if "font-family" in style}
    for tag in ("div", "table", "pre"):
        assert fonts.get(tag, "").endswith("monospace"), (tag, fonts)
    assert found[0][0] == "div" and found[0][1]["font-family"].endswith("monospace")


def test_html_rules_take_the_themes_colours_with_a_plain_fallback() -> None:
    page = nine_outputs()._repr_html_()
    borders = [
        value
        for _, style in styles(page)
        for name, value in style.items()
        if name in ("border-bottom", "border-left")
    ]
    assert borders  # the table's header rule and the outputs' margins
    for value in borders:
        assert re.search(r"var\(--jp-[\w-]+, #[0-9a-f]{6}\)", value), value


def worst_contrast(style: dict[str, str]) -> float:
    """The text's contrast where it is shown: on its own background if it sets one, else on
    the worst of the pages."""
    text = style["color"]
    if "background-color" in style:
        return contrast(text, style["background-color"])
    return min(contrast(text, page) for page in LIGHT_PAGES + DARK_PAGES)


def test_html_colours_reach_4_5_to_1_on_light_and_dark_pages() -> None:
    page = every_status()._repr_html_()
    coloured = [style for _, style in styles(page) if "color" in style]
    assert len(coloured) >= 1 + len(every_status())  # stderr and every status
    for style in coloured:
        assert worst_contrast(style) >= 4.5, style
    assert any(tag == "pre" and "color" in style for tag, style in styles(page))  # stderr
    # ok's green is not failed's red.
    colours = {
        status: {
            (s["color"], s.get("background-color"))
            for _, s in styles(
                PodResults([result("p", status, 0 if status is ExecStatus.OK else 1)])._repr_html_()
            )
            if "color" in s
        }
        for status in (ExecStatus.OK, ExecStatus.FAILED)
    }
    assert colours[ExecStatus.OK] and colours[ExecStatus.FAILED]
    assert not colours[ExecStatus.OK] & colours[ExecStatus.FAILED]


def test_html_agrees_with_text_line_for_line() -> None:
    results = every_status()
    page = results._repr_html_()
    text = str(results)
    plain = re.sub(r"<[^>]+>", "", page)
    for line in text.splitlines()[len(results) + 2 :]:
        line = line.strip()
        if line and not line.startswith("stderr:") and not line.startswith("["):
            assert line.replace("'", "&#x27;") in plain, line


# -- reprs ----------------------------------------------------------------------------------


def test_output_group_repr_is_short_and_readable() -> None:
    results = PodResults([ok(f"web-{i}", stdout=b"ok\n") for i in range(3)])
    assert [repr(g) for g in results.groups()] == [
        r"<OutputGroup 3 pods (web-0, web-1, web-2): exit 0, stdout 'ok\n'>"
    ]
    many = PodResults(
        [ok(f"web-{i}", stdout=b"v" * 500, stdout_dropped=10, stdout_dropped_digest=b"d")
         for i in range(5)]
        + [failed("db-0", stderr=b"boom\n"), skipped("db-1")]
    )  # fmt: skip
    assert [repr(g) for g in many.groups()] == [
        (
            "<OutputGroup 5 pods (web-0, web-1, web-2 and 2 more): exit 0, stdout "
            f"{'v' * 40!r}…(500 bytes), truncated>"
        ),
        r"<OutputGroup 1 pod (db-0): exit 1, stderr 'boom\n'>",
        "<OutputGroup 1 pod (db-1): skipped, no output>",
    ]


def test_output_group_repr_shows_control_characters_never_obeys_them() -> None:
    hostile = "\x1b]0;owned\x07\x1b[2J\rok\u202e\n".encode()
    [group] = PodResults([ok("web-1", stdout=hostile)]).groups()
    shown = repr(group)
    assert not any(ch in shown for ch in "\x1b\x07\r\u202e\n")
    assert r"\x1b]0;owned\x07\x1b[2J\rok\u202e\n" in shown
