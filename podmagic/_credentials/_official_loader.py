"""The bridge to the ``kubernetes`` package's public loader: the one job here is loading one
pinned context through ``kubernetes.config.load_kube_config_from_dict``, and renewing the
``auth-provider`` tokens (oidc, gcp) that loader obtains.

Why not hand it the files: it would run an exec plugin at once and take the last
``current-context``, so it gets a dict holding the one context, loads into a private
``Configuration`` (never the process-wide default), writes its data files into a private
folder that is removed afterwards, and renewed provider tokens are saved to the one file
that defines the user (the package's persister rewrites every merged file from its copy).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes.config
import yaml
from kubernetes.client import Configuration
from kubernetes.config.dateutil import UTC, parse_rfc3339

from podmagic._errors import ConfigError

from ._redact import Redactor, describe_loader_error
from ._refresh import RefreshingAuth

__all__ = [
    "SUPPORTED_AUTH_PROVIDERS",
    "LoadedContext",
    "ProviderAuth",
    "persist_auth_provider_config",
]

log = logging.getLogger(__name__)


SUPPORTED_AUTH_PROVIDERS = ("oidc", "gcp")
# The official loader renews an auth-provider token this long before it expires; a cached
# token is given up exactly then, so that loading again renews it instead of returning it.
_PROVIDER_REFRESH_MARGIN = _dt.timedelta(minutes=5)


_OFFICIAL_LOADER_LOCK = threading.Lock()


@dataclass
class LoadedContext:
    """The pinned context as handed to the official loader, kept for auth-provider renewals."""

    #: One context with its cluster and user: relative paths made absolute, the server
    #: normalised, the exec and tokenFile sections left out (they are handled here).
    document: dict[str, Any]
    context: str
    user: str
    #: The kubeconfig file that defines the user: renewed auth-provider tokens go there.
    source: str | None
    redact: Redactor
    provider_name: str = ""

    @contextlib.contextmanager
    def load(self) -> Iterator[Configuration]:
        """The official loader's result for the context, in a private ``Configuration``.

        The loader writes ``-data`` fields (CA, client certificate and key) to files for
        OpenSSL. They go into a folder of our own, made by ``mkdtemp`` (mode 0700; the loader's
        files in it are ``mkstemp``'s 0600) and removed when the block ends, rather than into
        the system temporary folder, where the loader would leave them until the process exits.
        """
        cfg = Configuration()
        folder = tempfile.mkdtemp(prefix="podmagic-kubeconfig-")
        # One load at a time: the loader shares its data files between loads through a
        # process-wide cache (keyed by content), so another thread's load could be handed a
        # file in this folder just before it is removed, or one not yet written.
        _OFFICIAL_LOADER_LOCK.acquire()
        try:
            kubernetes.config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                self.document,
                context=self.context,
                client_configuration=cfg,
                # Renewed tokens are saved by save_provider_config: the package's persister
                # rewrites every merged file from the copy it read, undoing others' edits.
                persist_config=False,
                temp_file_path=os.path.join(folder, "data"),
            )
            yield cfg
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            _OFFICIAL_LOADER_LOCK.release()

    def provider_config(self) -> dict[str, Any]:
        """The user's ``auth-provider.config``, as the loader last left it."""
        users = self.document.get("users") or [{}]
        provider = (users[0].get("user") or {}).get("auth-provider")
        config = provider.get("config") if isinstance(provider, dict) else None
        return config if isinstance(config, dict) else {}

    def save_provider_config(self, before: Mapping[str, Any]) -> None:
        """Write the auth-provider config back to :attr:`source` if the loader renewed it."""
        after = self.provider_config()
        if not self.source or after == before:
            return
        try:
            persist_auth_provider_config(self.source, self.user, after)
        except (OSError, yaml.YAMLError) as exc:
            log.warning(
                "could not save the refreshed auth-provider token to %s (%s)",
                self.source,
                type(exc).__name__,
            )


class ProviderAuth(RefreshingAuth):
    """An ``auth-provider`` token (oidc, gcp), obtained and renewed by the official loader.

    Renewing means loading the pinned context again (in a worker thread): the loader renews a
    token that expires within :data:`_PROVIDER_REFRESH_MARGIN` while loading. The
    ``refresh_api_key_hook`` it leaves on the ``Configuration`` is run too (by
    ``get_api_key_with_prefix``), but alone it renews only tokens whose expiry the loader
    recorded, never an oidc one. The loader writes renewed tokens into the document it was
    given; they are saved to the user's kubeconfig like kubectl does (refresh tokens may be
    single-use).
    """

    def __init__(self, loaded: LoadedContext, initial: str, before: dict[str, Any]) -> None:
        super().__init__()
        self.kind = f"auth-provider:{loaded.provider_name}"
        self._loaded = loaded
        loaded.save_provider_config(before)
        self._store(initial, self._expiry(), None)

    def _expiry(self) -> _dt.datetime | None:
        config = self._loaded.provider_config()
        expiry: Any = config.get("expiry")
        if self._loaded.provider_name == "oidc":
            expiry = _jwt_expiry(str(config.get("id-token") or ""))
        if not expiry:
            return None
        try:
            deadline: _dt.datetime = parse_rfc3339(expiry)  # type: ignore[no-untyped-call]
        except ValueError:
            return None
        return deadline - _PROVIDER_REFRESH_MARGIN

    def _fetch(self) -> tuple[str, _dt.datetime | None, float | None]:
        loaded = self._loaded
        before = copy.deepcopy(loaded.provider_config())
        what = f'auth-provider "{loaded.provider_name}" of user "{loaded.user}"'
        try:
            with loaded.load() as cfg:
                header = cfg.get_api_key_with_prefix("BearerToken")
        except Exception as exc:  # noqa: BLE001 - providers raise anything (HTTP, OAuth...)
            raise ConfigError(
                f"{what} could not refresh its token ({describe_loader_error(exc, loaded.redact)})",
                hint="log in again with your provider's tool",
            ) from None
        loaded.save_provider_config(before)
        if not header:
            raise ConfigError(
                f"{what} has no usable token", hint="log in again with your provider's tool"
            )
        loaded.redact.add(header.partition(" ")[2])
        return header, self._expiry(), None


def _jwt_expiry(token: str) -> _dt.datetime | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        exp = claims.get("exp")
        return _dt.datetime.fromtimestamp(float(exp), tz=UTC) if exp is not None else None
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None


def persist_auth_provider_config(
    path: str, user_name: str, provider_config: Mapping[str, Any]
) -> bool:
    """Set ``auth-provider.config`` of ``user_name`` in the kubeconfig at ``path`` (through a
    symlink, keeping the file's mode), leaving the rest of the file as it is now; ``False``
    when the file no longer defines that user."""
    real = os.path.realpath(path)
    with open(real, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict):
        return False
    for entry in document.get("users") or []:
        if isinstance(entry, dict) and entry.get("name") == user_name:
            user = entry.setdefault("user", {}) or {}
            provider = user.setdefault("auth-provider", {}) or {}
            provider["config"] = dict(provider_config)
            break
    else:
        return False
    mode = os.stat(real).st_mode & 0o777
    fd, tmp = tempfile.mkstemp(prefix=".kubeconfig-", dir=os.path.dirname(real))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(document, handle, default_flow_style=False, sort_keys=False)
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return True
