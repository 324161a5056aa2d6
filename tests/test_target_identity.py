"""Results used as targets run in the cluster and the pods they came from, and nowhere else:
another cluster under the same context name is refused, and a pod recreated under its name
since the run (a StatefulSet's pod after a delete: a new uid) is a pod that no longer exists.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _waiting import wait_until
from conftest import quiet_podmagic_shell

from podmagic import Cluster
from podmagic._errors import SelectionError
from podmagic._results import ExecStatus, PodResult, PodResults
from podmagic.sandbox import Sandbox

NAMESPACE = "identity"
_MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: store, namespace: {NAMESPACE}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: store}}
  template:
    metadata:
      labels: {{app: store}}
    spec:
      containers: [{{name: main, image: busybox}}]
"""


def _uids(cluster: Cluster) -> dict[str, str]:
    """The running pods of ``sts/store`` by name, with their uids (none while one is not)."""
    try:
        found = cluster.select("sts/store")
    except SelectionError:
        return {}
    return {t.pod: t.pod_uid for t in found.run}


@pytest.fixture
def store(sandbox: Sandbox) -> Iterator[Cluster]:
    """A namespace ``identity`` with ``sts/store`` (store-0, store-1), and a Cluster there."""
    sandbox.apply(_MANIFEST)
    with Cluster(kubeconfig=sandbox.kubeconfig, namespace=NAMESPACE) as cluster:
        wait_until(lambda: len(_uids(cluster)) == 2, what="store-0 and store-1 running")
        yield cluster
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


def _recreate(sandbox: Sandbox, cluster: Cluster, pod: str) -> None:
    """Delete ``pod`` and wait until its StatefulSet runs a new pod of the same name."""
    before = _uids(cluster)[pod]
    sandbox.delete_pod(pod, namespace=NAMESPACE)
    wait_until(
        lambda: _uids(cluster).get(pod, before) != before and len(_uids(cluster)) == 2,
        what=f"{pod} recreated by its StatefulSet with a new uid",
    )


REPLACED = "pod no longer exists (replaced since the run by a new pod of the same name)"


def test_a_pod_recreated_under_its_name_is_gone_for_a_rerun_and_refused_as_a_target(
    sandbox: Sandbox, store: Cluster
) -> None:
    first = store.run("hostname", "sts/store")
    assert [r.status for r in first] == [ExecStatus.OK, ExecStatus.OK]
    _recreate(sandbox, store, "store-1")
    for again in (first.rerun(), first[1:].rerun()):
        by_pod = {r.pod: r for r in again}
        assert by_pod["store-1"].status is ExecStatus.ERROR
        assert (by_pod["store-1"].error or "").startswith(REPLACED)
        assert by_pod["store-1"].stdout == b""
    assert again_ok(first.rerun(), "store-0")
    # Given as the target of a new run: refused, naming the pod, in one line.
    for target in (first, list(first), first[1]):
        with pytest.raises(SelectionError) as refused:
            store.run("hostname", target)
        text = str(refused.value)
        assert 'pod "store-1"' in text and "replaced since the results' run" in text
        assert "\n" not in text
    # The magic: {{res}} is refused, --rerun runs store-0 and names store-1 as replaced.
    with quiet_podmagic_shell(sandbox.kubeconfig, NAMESPACE) as ip:
        ip.user_ns["first"] = first
        with pytest.raises(Exception, match="replaced since the results' run"):
            ip.run_line_magic("pod", "{{first}} -o by_name -- hostname")
        ip.run_line_magic("pod", "--rerun first -o again")
        again = ip.user_ns["again"]
        assert [(r.pod, r.status) for r in again] == [
            ("store-0", ExecStatus.OK),
            ("store-1", ExecStatus.ERROR),
        ]
        assert (again[1].error or "").startswith(REPLACED)
        for name in ("first", "again"):  # the shell is shared with later tests
            del ip.user_ns[name]
    # Results that remember no run (made by hand) are taken at their names, as before.
    by_hand = PodResults(
        [PodResult(context=store.context, namespace=NAMESPACE, pod="store-1", status="ok")]
    )
    assert [r.stdout for r in store.run("hostname", by_hand)] == [b"store-1\n"]


def again_ok(results: PodResults, pod: str) -> bool:
    """Whether ``pod`` ran again and said its name."""
    return any(r.pod == pod and r.ok and r.stdout == f"{pod}\n".encode() for r in results)


def _renamed_kubeconfig(two: Sandbox, folder: Path) -> Path:
    """A kubeconfig whose only context is the second cluster, named as the first's context."""
    assert two.kubeconfig is not None
    document: dict[str, Any] = yaml.safe_load(two.kubeconfig.read_text())
    second = next(c for c in document["contexts"] if c["name"] == "podmagic-sandbox-2")
    second["name"] = "podmagic-sandbox"
    document["contexts"] = [second]
    document["current-context"] = "podmagic-sandbox"
    path = folder / "kubeconfig-renamed"
    path.write_text(yaml.safe_dump(document))
    return path


def test_results_from_another_cluster_under_the_same_context_name_are_refused(
    podmagic_sandbox_contexts: Sandbox, tmp_path: Path
) -> None:
    two = podmagic_sandbox_contexts
    renamed = _renamed_kubeconfig(two, tmp_path)
    with Cluster(kubeconfig=renamed, namespace="demo") as elsewhere:
        first = elsewhere.run("hostname", "toolbox")
        assert first.ok and first[0].context == "podmagic-sandbox"
        # Its own re-run stays where it ran.
        assert first.rerun().ok
    with Cluster(kubeconfig=two.kubeconfig, context="podmagic-sandbox", namespace="demo") as here:
        for target in (first, list(first), first[0]):
            with pytest.raises(SelectionError) as refused:
                here.run("hostname", target)
            text = str(refused.value)
            assert "another cluster" in text and "\n" not in text
            assert first.provenance is not None and first.provenance.server in text
    with quiet_podmagic_shell(two.kubeconfig, "demo") as ip:
        ip.user_ns["first"] = first
        with pytest.raises(Exception, match="another cluster"):
            ip.run_line_magic("pod", "{{first}} -- hostname")
        del ip.user_ns["first"]
