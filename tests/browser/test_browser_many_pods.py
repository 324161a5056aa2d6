"""A run over many pods keeps its live view usable: past a few dozen pods the status chips are
counts per status (with a control to show every pod's chip, in a strip of bounded height),
so the filters, the follow control and the lines stay in sight."""

from __future__ import annotations

import re
from collections.abc import Callable

from .browser_harness import ConsoleLog, JupyterServer, NotebookPage, wait_until
from .test_browser_live_view import LIVE, wait_live

OpenNotebook = Callable[..., tuple[NotebookPage, ConsoleLog]]
Servers = Callable[..., JupyterServer]

SIXTY_PODS = """\
apiVersion: v1
kind: Namespace
metadata: {name: crowd}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: many, namespace: crowd}
spec:
  replicas: 60
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      containers: [{name: main, image: busybox}]
"""


def test_sixty_pods_show_status_counts_not_a_wall_of_chips(
    servers: Servers, open_notebook: OpenNotebook
) -> None:
    server = servers("lab")
    (server.root / "sixty.yaml").write_text(SIXTY_PODS)
    notebook, console = open_notebook(
        server,
        [
            "%load_ext podmagic\nsandbox = %pod_sandbox start --manifest sixty.yaml",
            "%%pod deploy/many -n crowd --yes -P 20\nfor i in $(seq 1 40); do echo l $i; sleep 0.1; done",
        ],
        sandbox=False,
    )
    notebook.run_all()
    wait_live(notebook, 1)
    live = notebook.output(1).locator(LIVE)
    counts = live.locator('[data-podmagic="chip-count"]')
    wait_until(lambda: counts.count() >= 2, limit=60, what="status counts (running, queued)")
    assert live.locator('[data-podmagic="chip"]').count() == 0
    texts = counts.all_inner_texts()
    assert sum(int(re.match(r"\d+", t).group()) for t in texts) == 60, texts  # type: ignore[union-attr]
    assert any(t.endswith("running") for t in texts), texts
    # The lines are right below: the chips take one row, not the screen.
    chips_box = live.locator('[data-podmagic="chips"]').bounding_box()
    assert chips_box is not None and chips_box["height"] < 60, chips_box
    notebook.expect_visible(live.locator('[data-podmagic="line"]').last, "a line of output")
    notebook.screenshot("counts")

    toggle = live.locator('[data-podmagic="chips-toggle"]')
    assert toggle.inner_text().startswith("all 60 pods")
    toggle.click()
    wait_until(
        lambda: live.locator('[data-podmagic="chip"]').count() == 60,
        limit=10,
        what="every pod's chip once expanded",
    )
    chips_box = live.locator('[data-podmagic="chips"]').bounding_box()
    assert chips_box is not None and chips_box["height"] < 200, chips_box  # a bounded strip
    notebook.screenshot("expanded")
    live.locator('[data-podmagic="chips-toggle"]').click()
    wait_until(lambda: counts.count() >= 1, limit=10, what="the counts again")
    notebook.wait_cell_done(1, limit=120)
    assert console.unexpected() == []
