"""Naming many pods costs no more requests than a selector: counted against the sandbox.

Every REST read of :class:`~podmagic._kubeapi.KubeApi` goes through ``get_json``; the tests
wrap it to record the paths the sandbox is asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from podmagic._credentials import load_credentials
from podmagic._errors import SelectionError
from podmagic._kubeapi import KubeApi
from podmagic._query import Target, TargetQuery
from podmagic._resolve import resolve
from podmagic.sandbox import Sandbox

pytestmark = pytest.mark.anyio

NAMESPACE = "named"
COUNT = 100
PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"


def _pod(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"n{index}", "namespace": NAMESPACE, "labels": {"app": "named"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


@pytest.fixture(scope="module")
def named(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The session's sandbox with namespace ``named`` holding pods n0 ... n99, for one module."""
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    sandbox.apply([namespace, *(_pod(index) for index in range(COUNT))])
    yield sandbox
    assert sandbox.cluster is not None
    sandbox.call(sandbox.cluster.delete_namespace, NAMESPACE)


@pytest.fixture
async def api(named: Sandbox) -> AsyncIterator[KubeApi]:
    async with KubeApi(load_credentials(kubeconfig=named.kubeconfig)) as client:
        yield client


@pytest.fixture
def requests(api: KubeApi) -> list[str]:
    """The path of every request ``api`` sends from now on."""
    seen: list[str] = []
    original = api.get_json

    async def counted(path: str, params: Any = None, **kwargs: Any) -> dict[str, Any]:
        seen.append(path)
        return await original(path, params, **kwargs)

    api.get_json = counted  # type: ignore[method-assign]
    return seen


def query(*names: str) -> TargetQuery:
    return TargetQuery(targets=tuple(Target("Pod", name) for name in names), namespace=NAMESPACE)


async def test_a_hundred_names_are_one_list_and_no_get(api: KubeApi, requests: list[str]) -> None:
    names = [f"n{index}" for index in reversed(range(COUNT))]
    selection = await resolve(api, query(*names), default_namespace="default")
    assert requests == [PODS_PATH]
    # Natural name order, as for a selector, whatever order the names were given in.
    assert [target.pod for target in selection.run] == [f"n{index}" for index in range(COUNT)]
    by_selector = await resolve(
        api,
        TargetQuery(label_selector="app=named", namespace=NAMESPACE),
        default_namespace="default",
    )
    assert by_selector.run == selection.run


async def test_one_name_is_one_get(api: KubeApi, requests: list[str]) -> None:
    await resolve(api, query("n7"), default_namespace="default")
    assert requests == [f"{PODS_PATH}/n7"]


async def test_a_missing_name_among_a_hundred_is_reported_as_among_two(
    api: KubeApi, requests: list[str]
) -> None:
    with pytest.raises(SelectionError) as few:
        await resolve(api, query("n1", "n100"), default_namespace="default")
    requests.clear()
    names = [f"n{index}" for index in range(COUNT)] + ["n100", "n101"]
    with pytest.raises(SelectionError) as many:
        await resolve(api, query(*names), default_namespace="default")
    expected = f'pod "n100" not found in namespace "{NAMESPACE}"; did you mean n10, n0 or n1?'
    assert str(many.value) == str(few.value) == expected
    assert not any(path.startswith(f"{PODS_PATH}/") for path in requests)
