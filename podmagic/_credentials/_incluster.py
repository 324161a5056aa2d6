"""The in-cluster configuration: the one job here is a pod's service account as
:class:`ClusterCredentials`.

The package's ``InClusterConfigLoader`` reads the host, CA and token; its own token refresh
is left off because the token is re-read here as it rotates
(:class:`~podmagic._credentials._refresh.FileTokenAuth`, off the event loop), the namespace
comes from ``POD_NAMESPACE`` or the mount as client-go takes it, and errors are one line.
"""

from __future__ import annotations

import os

from kubernetes.client import Configuration
from kubernetes.config import ConfigException, incluster_config

from podmagic._errors import ConfigError

from ._cluster import ClusterCredentials
from ._refresh import FileTokenAuth
from ._tls import TlsState, build_ssl_context

__all__ = [
    "IN_CLUSTER_CONTEXT",
    "SERVICE_ACCOUNT_DIR",
    "in_cluster_possible",
    "load_in_cluster",
    "why_not_in_cluster",
]


#: The context name reported for (and accepted to request) the in-cluster configuration.
IN_CLUSTER_CONTEXT = "in-cluster"
#: The service-account mount a pod gets (``token``, ``ca.crt`` and ``namespace`` inside).
SERVICE_ACCOUNT_DIR = os.path.dirname(incluster_config.SERVICE_TOKEN_FILENAME)


_HOST_ENV = incluster_config.SERVICE_HOST_ENV_NAME  # KUBERNETES_SERVICE_HOST
_PORT_ENV = incluster_config.SERVICE_PORT_ENV_NAME


def _service_env_set() -> bool:
    return bool(os.environ.get(_HOST_ENV) and os.environ.get(_PORT_ENV))


def in_cluster_possible(sa_dir: str) -> bool:
    """Whether this process looks like it runs in a pod with a service account mounted."""
    return _service_env_set() and os.path.isfile(os.path.join(sa_dir, "token"))


def why_not_in_cluster(sa_dir: str) -> str:
    """What is missing for the in-cluster configuration, for messages."""
    if not _service_env_set():
        return f"{_HOST_ENV}/{_PORT_ENV} are not set"
    return f"no service-account token at {os.path.join(sa_dir, 'token')}"


def load_in_cluster(sa_dir: str) -> ClusterCredentials:
    """The credentials of the service account mounted at ``sa_dir``."""
    if not in_cluster_possible(sa_dir):
        raise ConfigError(
            f"not running inside a cluster ({why_not_in_cluster(sa_dir)})",
            hint="set KUBECONFIG or pass --kubeconfig",
        )
    token_path = os.path.join(sa_dir, "token")
    ca_path = os.path.join(sa_dir, "ca.crt")
    cfg = Configuration()
    loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
        token_filename=token_path,
        cert_filename=ca_path,
        try_refresh_token=False,
    )
    try:
        loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise ConfigError(
            f"the in-cluster configuration is incomplete ({str(exc).rstrip('.')}; looked in "
            f"{sa_dir})",
            hint="mount the service account token or use a kubeconfig",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the service account in {sa_dir} "
            f"({getattr(exc, 'strerror', None) or type(exc).__name__})",
            hint="check the mount",
        ) from None
    namespace = os.environ.get("POD_NAMESPACE", "").strip()  # as client-go does
    if not namespace:
        try:
            with open(os.path.join(sa_dir, "namespace"), encoding="utf-8") as handle:
                namespace = handle.read().strip()
        except (OSError, UnicodeDecodeError):
            namespace = ""
    server = str(cfg.host).rstrip("/")
    auth = FileTokenAuth(token_path, "in-cluster", what="the service account")
    tls = build_ssl_context(
        server=server, ca_file=cfg.ssl_ca_cert, what="the in-cluster service account"
    )
    return ClusterCredentials(
        context=IN_CLUSTER_CONTEXT,
        server=server,
        namespace=namespace or "default",
        user=None,
        _auth=auth,
        _tls=TlsState(tls),
    )
