"""Naming pods against selecting them: wall time of 100 pod names vs ``-l`` (one sandbox).

``python -m benchmarks.named_pods [--pods 100] [--rounds 15]`` starts a sandbox process with
the benchmark manifest, then times, per round and interleaved: resolving the pods alone
(``Cluster.aselect``) and a whole ``Cluster.run(["true"])``, once with the pod names and once
with the label selector that matches the same pods. It prints the median and best of each and
the HTTP requests a name resolution made. Figures, not assertions: the tests count requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .cluster import NAMESPACE, SandboxProcess, pod_names, selector


def _count_requests(cluster: Any, names: list[str]) -> Counter[str]:
    """GET/LIST requests one resolution of ``names`` sends, by kind of request."""
    from podmagic._kubeapi import KubeApi
    from podmagic._resolve import resolve

    seen: Counter[str] = Counter()

    async def main() -> None:
        async with KubeApi(cluster.credentials) as api:
            original = api.get_json

            async def counted(path: str, params: Any = None, **kwargs: Any) -> Any:
                seen["list" if path.endswith("/pods") else "get"] += 1
                return await original(path, params, **kwargs)

            api.get_json = counted  # type: ignore[method-assign]
            await resolve(api, cluster.query(names), default_namespace=NAMESPACE)

    asyncio.run(main())
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    from podmagic import Cluster

    with SandboxProcess(args.pods) as sandbox:
        cluster = Cluster(kubeconfig=str(sandbox.kubeconfig), namespace=NAMESPACE)
        names = pod_names(args.pods)
        label = selector(args.pods)
        timings: dict[str, list[float]] = {}
        cases: dict[str, Callable[[], object]] = {
            "select by names": lambda: cluster.select(names),
            "select by -l": lambda: cluster.select(selector=label),
            "run by names": lambda: cluster.run(["true"], target=names, yes=True),
            "run by -l": lambda: cluster.run(["true"], selector=label, yes=True),
        }
        for call in cases.values():  # imports, the loop thread, first connections
            call()
        for _ in range(args.rounds):
            for case, call in cases.items():
                began = time.perf_counter()
                call()
                timings.setdefault(case, []).append(time.perf_counter() - began)
        for case, values in timings.items():
            print(
                f"{case:18} median {statistics.median(values) * 1000:7.1f} ms"
                f"   best {min(values) * 1000:7.1f} ms"
            )
        print("requests to resolve the names:", dict(_count_requests(cluster, names)))


if __name__ == "__main__":
    main()
