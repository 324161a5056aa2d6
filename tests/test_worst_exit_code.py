"""``PodResults.worst_exit_code`` is 0 only when every exec that was to run exited 0: an exec
without an exit code (a context that could not run, a timeout...) makes the worst unknown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from podmagic import Cluster
from podmagic._results import ExecStatus, PodResult, PodResults
from podmagic.sandbox import Sandbox


def _result(pod: str, status: ExecStatus, code: int | None, context: str = "a") -> PodResult:
    return PodResult(context=context, namespace="ns", pod=pod, status=status, exit_code=code)


def test_worst_exit_code_is_not_0_when_an_exec_gave_no_exit_code() -> None:
    ran = _result("p", ExecStatus.OK, 0)
    for without in (ExecStatus.ERROR, ExecStatus.TIMEOUT, ExecStatus.NOT_STARTED):
        assert PodResults([ran, _result("q", without, None)]).worst_exit_code is None
    # A code other than 0 is still the worst; skipped pods do not count.
    worse = _result("r", ExecStatus.FAILED, 2)
    assert PodResults([ran, worse, _result("q", ExecStatus.ERROR, None)]).worst_exit_code == 2
    assert PodResults([ran, _result("s", ExecStatus.SKIPPED, None)]).worst_exit_code == 0


def test_a_context_that_could_not_run_leaves_no_worst_exit_code_of_0(
    podmagic_sandbox_contexts: Sandbox, tmp_path: Path
) -> None:
    two = podmagic_sandbox_contexts
    assert two.kubeconfig is not None
    document: dict[str, Any] = yaml.safe_load(two.kubeconfig.read_text())
    second = next(c for c in document["contexts"] if c["name"] == "podmagic-sandbox-2")
    user = next(u for u in document["users"] if u["name"] == second["context"]["user"])
    user["user"] = {"token": "not-a-valid-token"}
    kubeconfig = tmp_path / "kubeconfig-bad-token"
    kubeconfig.write_text(yaml.safe_dump(document))
    clusters = Cluster.many(
        ["podmagic-sandbox", "podmagic-sandbox-2"], kubeconfig=kubeconfig, namespace="demo"
    )
    with clusters:
        results = clusters.run("true", "toolbox")
    by_context = {r.context: r.status for r in results}
    assert by_context == {"podmagic-sandbox": ExecStatus.OK, "podmagic-sandbox-2": ExecStatus.ERROR}
    assert not results.ok
    assert results.worst_exit_code is None
