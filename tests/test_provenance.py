"""Runbooks with provenance (issue 13, item 10): every run records where its results came from
— context, server, kubeconfig user *name*, namespaces, target and selector as written, the pods
with their uids, command, options, start and end, podmagic version — in ``res.provenance``,
in the summary's one-line footer (text and HTML), in the display's metadata and in a Parquet
file's metadata; never a token. Against the sandbox."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import timezone
from pathlib import Path

import pytest
import yaml
from IPython.core.interactiveshell import InteractiveShell

import podmagic
from podmagic import Cluster, PodResults, Provenance, read_provenance
from podmagic._provenance import public_server
from podmagic._results import ExecStatus, PodResult
from podmagic.sandbox import Sandbox


def kubeconfig_user(sandbox: Sandbox) -> tuple[str, str]:
    """(user name, token) of the sandbox's kubeconfig."""
    document = yaml.safe_load(Path(sandbox.kubeconfig).read_text())
    user = document["users"][0]
    return user["name"], user["user"]["token"]


def test_a_run_records_where_its_results_came_from(cluster: Cluster, sandbox: Sandbox) -> None:
    selection = cluster.select(selector="app=db")
    results = cluster.run("echo hi", selector="app=db", timeout=30, ok_exit="0,1")
    prov = results.provenance
    assert isinstance(prov, Provenance)
    assert prov.context == cluster.context == "podmagic-sandbox"
    assert prov.server == sandbox.url
    assert prov.user == kubeconfig_user(sandbox)[0]
    assert prov.namespaces == ("conf",)
    assert prov.selector == "app=db" and prov.target == ""
    assert "app=db in namespace conf" in prov.description
    assert [(p.pod, p.uid) for p in prov.pods] == [(t.pod, t.pod_uid) for t in selection.run], (
        "the resolved pods with their uids"
    )
    assert all(p.uid for p in prov.pods)
    assert prov.command == ("/bin/sh", "-c", "echo hi")
    assert dict(prov.options)["timeout"] == "30" and dict(prov.options)["ok_exit"] == "0,1"
    assert prov.started_at <= prov.ended_at
    assert prov.started_at.tzinfo is not None and prov.ended_at.tzinfo is not None
    assert prov.podmagic_version == podmagic.__version__
    # Parts of the run (failed, slices) and copies keep it; pickles carry it as data.
    assert results[:1].provenance is prov and results.failed.provenance is prov
    assert pickle.loads(pickle.dumps(results)).provenance == prov
    assert copy.deepcopy(results).provenance == prov
    assert Provenance.from_dict(json.loads(prov.to_json())) == prov


def test_a_named_target_is_recorded_as_written(cluster: Cluster) -> None:
    results = cluster.run("true", "deploy/web", env={"SECRET_VALUE": "s3cr3t-env"})
    prov = results.provenance
    assert prov is not None
    assert prov.target == "deploy/web" and prov.selector == ""
    assert len(prov.pods) == 3 and {p.namespace for p in prov.pods} == {"conf"}
    assert dict(prov.options)["env"] == "SECRET_VALUE", "env names only"
    assert "s3cr3t-env" not in prov.to_json()


def test_the_summary_ends_with_a_provenance_footer_and_the_display_carries_it(
    cluster: Cluster, sandbox: Sandbox
) -> None:
    results = cluster.run("echo hi", selector="app=db")
    text = str(results)
    footer = text.splitlines()[-1]
    assert footer.startswith("Provenance: context podmagic-sandbox (https://127.0.0.1:")
    assert f"as user {kubeconfig_user(sandbox)[0]}" in footer
    assert "2 execs in conf" in footer and f"podmagic {podmagic.__version__}" in footer
    assert 'class="podmagic-provenance"' in results._repr_html_()
    assert "Provenance: context podmagic-sandbox" in results._repr_html_()
    # What a saved notebook keeps: the display's metadata, next to the summary.
    data, metadata = InteractiveShell.instance().display_formatter.format(results)
    assert "text/html" in data and "text/plain" in data
    saved = metadata["podmagic"]["provenance"]
    assert saved["context"] == "podmagic-sandbox" and saved["selector"] == "app=db"
    assert [p["pod"] for p in saved["pods"]] == ["db-0", "db-1"]
    json.dumps(metadata)  # notebook metadata is JSON


def test_results_made_by_hand_have_no_provenance_and_no_footer() -> None:
    made = PodResults([PodResult(context="c", namespace="n", pod="p", status=ExecStatus.OK)])
    assert made.provenance is None
    assert "Provenance:" not in str(made) and "podmagic-provenance" not in made._repr_html_()
    assert made._repr_mimebundle_() == ({}, {})


def test_no_token_from_the_kubeconfig_reaches_provenance_or_anything_shown(
    cluster: Cluster, sandbox: Sandbox, tmp_path: Path
) -> None:
    _, token = kubeconfig_user(sandbox)
    assert len(token) > 8
    results = cluster.run("echo hi", selector="app=db")
    prov = results.provenance
    assert prov is not None
    path = tmp_path / "run.parquet"
    results.to_parquet(path)
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata
    shown = [
        repr(prov),
        prov.to_json(),
        prov.footer(),
        str(results),
        repr(results),
        results._repr_html_(),
        json.dumps(InteractiveShell.instance().display_formatter.format(results)[1]),
        repr(metadata),
    ]
    for where in shown:
        assert token not in where
    assert token.encode() not in path.read_bytes()


def test_the_server_loses_userinfo_and_query() -> None:
    assert public_server("https://u:pw@example.test:6443/k8s?token=x#y") == (
        "https://example.test:6443/k8s"
    )


def test_parquet_file_holds_the_provenance(cluster: Cluster, tmp_path: Path) -> None:
    results = cluster.run("echo hi", selector="app=db")
    path = tmp_path / "run.parquet"
    results.to_parquet(path)
    back = read_provenance(path)
    assert back == results.provenance
    assert back is not None and back.started_at.tzinfo == timezone.utc


def test_magic_records_the_target_and_selector_as_the_cell_wrote_them(
    ip: InteractiveShell,
) -> None:
    ip.run_line_magic("pod", "-l app=db -o by_selector -- true")
    prov = ip.user_ns["by_selector"].provenance
    assert prov.selector == "app=db" and prov.target == ""
    assert [p.pod for p in prov.pods] == ["db-0", "db-1"]
    ip.user_ns["names"] = ["db-1"]
    ip.run_line_magic("pod", "{{names}} -o by_names -- true")
    prov = ip.user_ns["by_names"].provenance
    assert prov.target == "{{names}}" and [p.pod for p in prov.pods] == ["db-1"]
    assert prov.command == ("/bin/sh", "-c", "true")


RUNBOOK = Path(__file__).parent.parent / "notebooks" / "runbook-example.ipynb"


def test_the_runbook_takes_papermill_parameters_for_context_and_namespace() -> None:
    import papermill

    found = papermill.inspect_notebook(str(RUNBOOK))
    assert set(found) == {"context", "namespace"}
    assert found["context"]["default"] == "None" and found["namespace"]["default"] == '"demo"'


def test_the_runbook_runs_with_papermill_against_a_named_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the README shows it: ``papermill -p context NAME -p namespace NAME``, here a sandbox
    of the demo cluster reached through its kubeconfig like any other cluster."""
    import nbformat
    import papermill

    kubeconfig = tmp_path / "kubeconfig"
    with Sandbox(kubeconfig=kubeconfig) as demo:
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # the kernel's, as a user's would be
        out = tmp_path / "ran.ipynb"
        papermill.execute_notebook(
            str(RUNBOOK),
            str(out),
            parameters={"context": demo.context, "namespace": "demo"},
            kernel_name="python3",
            cwd=str(RUNBOOK.parent),
            progress_bar=False,
        )
    ran = nbformat.read(out, as_version=4)
    injected = [c for c in ran.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f"context = {demo.context!r}".replace("'", '"') in (
        injected[0].source
    )
    shown = [
        (output.get("data") or {}).get("text/plain", "")
        for cell in ran.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert any(text.startswith(f"('{demo.context}',") and "('demo',)" in text for text in shown)
    footers = [
        line for text in shown for line in text.splitlines() if line.startswith("Provenance:")
    ]
    assert footers and all(f"context {demo.context} (" in line for line in footers)
    # The saved file keeps each summary's provenance in its output metadata.
    saved = [
        output["metadata"]["podmagic"]["provenance"]
        for cell in ran.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if "podmagic" in output.get("metadata", {})
    ]
    assert saved and all(p["context"] == demo.context for p in saved)
    assert {ns for p in saved for ns in p["namespaces"]} == {"demo"}


def test_the_footer_counts_the_execs_that_ran_and_names_those_not_started(
    cluster: Cluster,
) -> None:
    # One at a time, and a deadline the first exec outlives: the others never start.
    results = cluster.run("sleep 30", "deploy/web", max_concurrency=1, deadline=5)
    not_started = sum(r.status is ExecStatus.NOT_STARTED for r in results)
    ran = len(results) - not_started
    assert not_started >= 1, results
    prov = results.provenance
    assert prov is not None and len(prov.pods) == 3
    assert prov.not_started == not_started
    expected = f"{ran} exec{'' if ran == 1 else 's'} in conf ({not_started} not started) · "
    assert expected in prov.footer()
    assert str(results).splitlines()[-1] == prov.footer()
    assert f"{not_started} not started" in str(results).splitlines()[0]
    assert Provenance.from_dict(json.loads(prov.to_json())) == prov
