"""Cluster credentials, resolved the way kubectl resolves them, for an aiohttp client.

:func:`load_credentials` picks the kubeconfig like kubectl (``--kubeconfig``, else the
``KUBECONFIG`` list merged with first-wins rules, else ``~/.kube/config``; with none of them
and a pod's service account available, the in-cluster configuration), resolves one context
and pins it: the returned :class:`ClusterCredentials` keeps that context's server, namespace,
TLS material and authentication whatever later happens to the kubeconfig's
``current-context``.

The pinned context is loaded by the ``kubernetes`` package's public loader
(``kubernetes.config.load_kube_config_from_dict`` into a private ``Configuration``): ``-data``
fields, static tokens, basic auth and the ``oidc``/``gcp`` auth providers come from there.
What podmagic adds on top, one module each:

* ``_kubeconfig``: finding, reading, checking and merging the files (kubectl's first-wins
  ``current-context``), resolving the context, one-line errors;
* ``_official_loader``: the one call into the package's loader, and auth-provider renewals;
* ``_exec_plugin``: exec credential plugins with a time limit, ``interactiveMode`` and
  ``KUBERNETES_EXEC_INFO``, stopped with what they started;
* ``_refresh``: refreshes off the event loop, shared by concurrent callers, ``tokenFile``
  re-reads;
* ``_tls``: the ``ssl.SSLContext`` for aiohttp and websockets;
* ``_incluster``: a pod's service account;
* ``_redact``: nothing secret (tokens, passwords, keys, certificate data, a plugin's
  environment or output) in an error message, a log line or a ``repr``;
* ``_cluster``: :class:`ClusterCredentials`, the handle the rest of podmagic uses.
"""

from __future__ import annotations

import os

from podmagic._errors import ConfigError

from ._cluster import ClusterCredentials, noting_credential_waits
from ._exec_plugin import DEFAULT_PLUGIN_TIMEOUT
from ._incluster import (
    IN_CLUSTER_CONTEXT,
    SERVICE_ACCOUNT_DIR,
    in_cluster_possible,
    load_in_cluster,
    why_not_in_cluster,
)
from ._kubeconfig import (
    DEFAULT_KUBECONFIG,
    defines_context,
    kubeconfig_candidates,
    load_from_kubeconfig,
    read_kubeconfig,
)

__all__ = [
    "DEFAULT_KUBECONFIG",
    "DEFAULT_PLUGIN_TIMEOUT",
    "IN_CLUSTER_CONTEXT",
    "SERVICE_ACCOUNT_DIR",
    "ClusterCredentials",
    "load_credentials",
    "noting_credential_waits",
]


def load_credentials(
    *,
    context: str | None = None,
    kubeconfig: str | os.PathLike[str] | None = None,
    service_account_dir: str | os.PathLike[str] = SERVICE_ACCOUNT_DIR,
    plugin_timeout: float | None = DEFAULT_PLUGIN_TIMEOUT,
) -> ClusterCredentials:
    """Resolve the cluster credentials kubectl would use and pin them.

    ``plugin_timeout`` is how many seconds an exec credential plugin may run before it is
    stopped and the request fails naming it (``None``: no limit).

    ``kubeconfig`` is one file (kubectl's ``--kubeconfig``); without it, ``KUBECONFIG`` (a
    ``os.pathsep``-separated list whose files are merged: the first file that defines a name
    or sets ``current-context`` wins) or else ``~/.kube/config``. When none of those files
    exists and the process runs in a pod (``KUBERNETES_SERVICE_HOST``/``_PORT`` set and a
    service-account token in ``service_account_dir``), the in-cluster configuration is used;
    ``context="in-cluster"`` asks for it explicitly.

    Raises :class:`~podmagic.ConfigError` with a one-line message saying what to do.
    """
    explicit = kubeconfig is not None
    candidates, looked = kubeconfig_candidates(kubeconfig)
    documents = [
        (p, doc)
        for p in candidates
        if os.path.exists(p)
        for doc in [read_kubeconfig(p)]
        if doc is not None
    ]
    has_contexts = any(doc.get("contexts") for _, doc in documents)
    sa_dir = os.fspath(service_account_dir)

    if context == IN_CLUSTER_CONTEXT and not defines_context(documents, context):
        return load_in_cluster(sa_dir)
    if not has_contexts and not explicit:
        if context is None and in_cluster_possible(sa_dir):
            return load_in_cluster(sa_dir)
        found = (
            "no contexts in " + ", ".join(p for p, _ in documents)
            if documents
            else (f"no kubeconfig found (looked at {looked})")
        )
        prefix = f'context "{context}" not found: ' if context else ""
        raise ConfigError(
            f"{prefix}{found} and not running inside a cluster ({why_not_in_cluster(sa_dir)})",
            hint="set KUBECONFIG or pass --kubeconfig",
        )
    if not documents or not has_contexts:
        raise ConfigError(
            f"kubeconfig {', '.join(candidates)} defines no contexts",
            hint="pass a kubeconfig that does, or set KUBECONFIG",
        )
    return load_from_kubeconfig(documents, context, plugin_timeout)
