"""Naming pods against selecting them: the contenders of the "named pods" scenario.

The same pods (``p0000`` ... of the benchmark manifest), the same argv, the same concurrency;
only the way the run says which pods differs:

``podmagic-names``     ``Cluster.run(argv, target=[p0000, p0001, ...])``: every pod by name
``podmagic-selector``  ``Cluster.run(argv, selector="s100=y")``: the label selector that
                       matches the same pods
``podmagic-selected``  ``Cluster.run(argv, selection=...)``: pods found by ``Cluster.select``
                       before the timed section, so the run only executes

Each worker reports the figures of :class:`benchmarks.worker.Measure` and ``requests``: the
REST reads (``KubeApi.get_json``: GETs and LIST pages) that one more, untimed, run of the
same call makes — the issue's target is one LIST per namespace for names as for a selector,
not one request per name. ``python -m benchmarks.run --only named`` runs the scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cluster import NAMESPACE, pod_names, selector
from .worker import Measure

#: Contender -> how its run names the pods (the table's titles).
CONTENDERS = {
    "podmagic-names": "podmagic, the pods by name",
    "podmagic-selector": "podmagic, the same pods by label selector",
    "podmagic-selected": "podmagic, the same pods found before (`selection=`)",
}


def run_named(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement of one of :data:`CONTENDERS` (``spec["contender"]``)."""
    from podmagic import Cluster

    cluster = Cluster(kubeconfig=spec["kubeconfig"], namespace=NAMESPACE)
    # Imports, the loop thread and the first connection, untimed, as for every contender.
    cluster.run(["true"], selector=selector(1), max_concurrency=1)
    argv, pods, concurrency = list(spec["argv"]), spec["pods"], spec["concurrency"]
    variant = spec["contender"]
    run: Callable[[], Any]
    if variant == "podmagic-names":
        names = pod_names(pods)

        def run() -> Any:
            return cluster.run(argv, names, yes=True, max_concurrency=concurrency)

    elif variant == "podmagic-selector":
        label = selector(pods)

        def run() -> Any:
            return cluster.run(argv, selector=label, yes=True, max_concurrency=concurrency)

    elif variant == "podmagic-selected":
        selection = cluster.select(selector=selector(pods))

        def run() -> Any:
            return cluster.run(argv, selection=selection, yes=True, max_concurrency=concurrency)

    else:
        raise ValueError(f"not a named-pods contender: {variant} (one of {sorted(CONTENDERS)})")
    with Measure() as measure:
        results = run()
    figures: dict[str, Any] = measure.figures()
    figures["ok"] = sum(1 for result in results if result.exit_code == 0)
    figures["bytes"] = sum(len(result.stdout) + result.stdout_dropped for result in results)
    figures["requests"] = count_reads(run)
    return figures


def count_reads(call: Callable[[], object]) -> int:
    """The REST reads (``KubeApi.get_json`` calls) that ``call()`` makes."""
    from podmagic._kubeapi import KubeApi

    original = KubeApi.get_json
    seen = 0

    async def counted(self: KubeApi, *args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal seen
        seen += 1
        return await original(self, *args, **kwargs)

    KubeApi.get_json = counted  # type: ignore[method-assign]
    try:
        call()
    finally:
        KubeApi.get_json = original  # type: ignore[method-assign]
    return seen
