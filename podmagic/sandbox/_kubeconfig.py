"""Writing the kubeconfig that points clients at a running sandbox.

The file is written atomically (temporary file in the same folder, then ``os.replace``) so a
reader polling for it never sees half a file, and it is only ever the path the caller named:
the user's own ``~/.kube/config`` is never touched.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CONTEXT_NAME", "build_kubeconfig", "write_kubeconfig"]

CONTEXT_NAME = "podmagic-sandbox"


def build_kubeconfig(
    server: str,
    *,
    token: str | None,
    ca_pem: bytes | None,
    namespace: str = "default",
    context: str = CONTEXT_NAME,
) -> dict[str, Any]:
    """The kubeconfig document for one sandbox, as a dict."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    user: dict[str, Any] = {"token": token} if token else {}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
        "current-context": context,
        "preferences": {},
    }


def write_kubeconfig(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write ``document`` to ``path`` atomically with mode 0600 and return the path."""
    target = Path(path).expanduser().absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".kubeconfig-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(document, handle, sort_keys=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
