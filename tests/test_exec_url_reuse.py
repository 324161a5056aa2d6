"""A fan-out builds the exec URL once per command and container, not once per pod, and
every pod still gets exactly the URL :meth:`KubeApi.exec_url` would give it."""

from __future__ import annotations

from typing import Any, cast

import pytest

from podmagic import _transport
from podmagic._kubeapi import KubeApi
from podmagic._transport import ExecSpec, LoaderInput


class _Credentials:
    """What KubeApi reads of ClusterCredentials to build URLs."""

    proxy_url = None
    tls_server_name = None

    def __init__(self, server: str) -> None:
        self.server = server

    def ssl_context(self) -> bool:
        return False


def _expected(api: KubeApi, spec: ExecSpec, exec_url: Any) -> str:
    return str(
        exec_url(
            api,
            spec.namespace,
            spec.pod,
            container=spec.container,
            command=spec.command,
            stdin=spec.stdin is not None,
            stdout=True,
            stderr=not spec.tty,
            tty=spec.tty,
        )
    )


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], Any]:
    """The pods :meth:`KubeApi.exec_url` was asked for, and the method itself."""
    real = KubeApi.exec_url
    asked: list[str] = []

    def counting(self: KubeApi, namespace: str, pod: str, **options: Any) -> str:
        asked.append(pod)
        return real(self, namespace, pod, **options)

    monkeypatch.setattr(KubeApi, "exec_url", counting)
    monkeypatch.setattr(_transport, "_URL_AROUND_POD", {})
    return asked, real


def test_the_exec_url_is_built_once_per_command_and_fits_every_pod(
    built: tuple[list[str], Any],
) -> None:
    asked, exec_url = built
    api = KubeApi(cast(Any, _Credentials("https://api.example:6443/k8s/clusters/c-1")))
    command = ("sh", "-c", "echo 'a b&c' # ü")
    pods = ["web-1", "db 0", "a/b", "ü%20", "x?y#z"]
    for pod in pods:
        spec = ExecSpec("team a", pod, "main", command, stdin=b"in")
        assert _transport._exec_url(api, spec) == _expected(api, spec, exec_url)
    assert len(asked) == 1  # one URL for five pods

    # Another container, tty or stdin is another URL, built once too.
    for pod in pods:
        spec = ExecSpec("team a", pod, "side", command, tty=True, stdin=LoaderInput(b"x"))
        assert _transport._exec_url(api, spec) == _expected(api, spec, exec_url)
    assert len(asked) == 2


def test_a_command_that_holds_the_pod_mark_gets_its_own_url(
    built: tuple[list[str], Any],
) -> None:
    _, exec_url = built
    api = KubeApi(cast(Any, _Credentials("https://api.example:6443")))
    spec = ExecSpec("ns", "web-1", "main", ("echo", _transport._POD_MARK))
    url = _transport._exec_url(api, spec)
    assert url == _expected(api, spec, exec_url)
    assert "/pods/web-1/exec?" in url and url.count(_transport._POD_MARK) == 1
