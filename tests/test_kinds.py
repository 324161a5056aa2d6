"""The one kinds table: the client's paths and spellings and the sandbox's routes agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podmagic._credentials import load_credentials
from podmagic._kinds import ALIASES, KINDS, WORKLOAD_KINDS, kind_named
from podmagic._kubeapi import KubeApi
from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(sandbox: Sandbox) -> AsyncIterator[KubeApi]:
    async with KubeApi(load_credentials(kubeconfig=sandbox.kubeconfig)) as client:
        yield client


def test_pod_first_then_the_workloads_in_message_order() -> None:
    assert list(KINDS) == ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]
    assert list(WORKLOAD_KINDS) == list(KINDS)[1:]


def test_paths_of_the_core_group_and_of_named_groups() -> None:
    assert KINDS["Pod"].path("demo") == "/api/v1/namespaces/demo/pods"
    assert KINDS["Pod"].path() == "/api/v1/pods"
    assert KINDS["Job"].path("demo") == "/apis/batch/v1/namespaces/demo/jobs"
    assert KINDS["StatefulSet"].path() == "/apis/apps/v1/statefulsets"
    assert (KINDS["Pod"].group, KINDS["Deployment"].group) == ("", "apps")


@pytest.mark.parametrize("spelling", ["deploy", "Deployments", "deployment.apps", "DEPLOY"])
def test_every_kubectl_spelling_names_the_kind(spelling: str) -> None:
    found = kind_named(spelling)
    assert found is not None and found.name == "Deployment"
    assert kind_named("cronjob") is None and "cronjobs.batch" not in ALIASES


@pytest.mark.parametrize("kind", list(WORKLOAD_KINDS))
async def test_the_sandbox_serves_every_workload_kind_at_the_clients_path(
    api: KubeApi, kind: str
) -> None:
    listing = await api.get_json(WORKLOAD_KINDS[kind].path("conf"), what=f"list {kind}")
    assert listing["kind"] == f"{kind}List"
    assert listing["apiVersion"] == WORKLOAD_KINDS[kind].api_version


async def test_get_workload_takes_the_same_spellings_as_a_target(api: KubeApi) -> None:
    for spelling in ("deployments.apps", "Deployment", "deploy"):
        deployment = await api.get_workload(spelling, "conf", "web")
        assert deployment is not None and deployment["kind"] == "Deployment", spelling
    statefulset = await api.get_workload("statefulsets.apps", "conf", "db")
    assert statefulset is not None and statefulset["kind"] == "StatefulSet"
    with pytest.raises(ValueError, match="expected one of Deployment, StatefulSet, DaemonSet"):
        await api.get_workload("pod", "conf", "web")
