"""The summary of a run with nine distinct outputs, as a person sees it in JupyterLab 4 and
Notebook 7 (light and dark): it fits on a screen, the majority's output first and open, the failure open next,
the rest one line each; all in a monospace font; readable status colours."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .browser_harness import ConsoleLog, JupyterServer, NotebookPage
from .colour_checks import low_contrast_text

OpenNotebook = Callable[..., tuple[NotebookPage, ConsoleLog]]
Servers = Callable[..., JupyterServer]

#: Twelve pods named grid-0 … grid-11.
TWELVE_NAMED_PODS = """\
apiVersion: v1
kind: Namespace
metadata: {name: nine}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: grid, namespace: nine}
spec:
  replicas: 12
  serviceName: grid
  selector: {matchLabels: {app: grid}}
  template:
    metadata: {labels: {app: grid}}
    spec:
      containers: [{name: main, image: busybox}]
"""

#: Nine distinct outputs from twelve pods: grid-0 … grid-3 agree (30 lines: the summary
#: shows the first and the last ones), grid-5 fails, the seven others each say their own.
NINE_OUTPUTS = """\
%%pod sts/grid -n nine
n=${HOSTNAME##*-}
if [ "$n" -lt 4 ]; then for i in $(seq 1 30); do echo "ready $i"; done
elif [ "$n" = 5 ]; then echo "Error: disk full" >&2; exit 1
else printf 'shard %s\\n%-10s %6s\\n' "$n" /data "${n}0%"; fi"""


#: The page's font for each part of the summary: table cells, group titles, outputs.
FONTS = """(root) => {
  const fonts = {};
  for (const [name, selector] of [["cell", "td"], ["title", "summary"], ["output", "pre"]]) {
    const element = root.querySelector(selector);
    fonts[name] = element ? getComputedStyle(element).fontFamily : null;
  }
  return fonts;
}"""


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_a_summary_of_nine_distinct_outputs_fits_on_a_screen(
    kind: str, theme: str, servers: Servers, open_notebook: OpenNotebook
) -> None:
    server = servers(kind, theme=theme)
    (server.root / "nine.yaml").write_text(TWELVE_NAMED_PODS)
    notebook, console = open_notebook(
        server,
        ["%load_ext podmagic\nsandbox = %pod_sandbox start --manifest nine.yaml", NINE_OUTPUTS],
        sandbox=False,
    )
    notebook.run_all()
    notebook.wait_cell_done(1, limit=90)
    text = notebook.wait_output(1, r"12 pods in context podmagic-sandbox", limit=30)
    assert "11 ok" in text and "1 failed" in text, text[:2000]
    slug = theme.split()[-1].lower()
    notebook.screenshot(f"nine-outputs-{slug}")
    output = notebook.output(1)
    notebook.screenshot(f"nine-outputs-{slug}-cell", output)

    groups = output.locator(".podmagic-results details")
    assert groups.count() == 9
    opened = [groups.nth(i).get_attribute("open") is not None for i in range(9)]
    assert opened == [True] * 3 + [False] * 6
    titles = [groups.nth(i).locator("summary").inner_text() for i in range(3)]
    assert titles[0].startswith("grid-0, grid-1, grid-2, grid-3"), titles
    assert "grid-5" in titles[1] and "exit 1" in titles[1], titles
    # The first and the last lines of the majority's output, around the marker.
    assert "ready 1\n" in text and "lines hidden" in text and "ready 30" in text

    height = output.bounding_box()
    assert height is not None
    viewport = notebook.page.viewport_size
    assert viewport is not None
    assert height["height"] <= viewport["height"], (height, viewport)

    fonts = output.locator(".podmagic-results").first.evaluate(FONTS)
    for part, family in fonts.items():
        assert family and "mono" in family.lower(), (part, fonts)
    low = low_contrast_text(output)
    assert low == [], f"text below 4.5:1 on {theme}:\n" + "\n".join(low)
    assert console.unexpected() == []
