"""The TLS setup kubectl would use for a cluster: the one job here is the ``ssl.SSLContext``
that aiohttp and websockets connect with.

Built here because the official loader configures urllib3, not an ``SSLContext``: from what
it resolved (CA file, client certificate and key, verify flag) this makes the context, with
Go's partial-chain trust, no pass-phrase prompt for an encrypted key and one-line errors for
bad material. ``tls-server-name`` is not the context's business: callers pass
``ClusterCredentials.tls_server_name`` as each connection's ``server_hostname``.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from podmagic._errors import ConfigError

__all__ = ["TlsSetup", "TlsState", "build_ssl_context"]


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> str:
    # OpenSSL would otherwise prompt on the terminal for an encrypted key's pass phrase.
    raise _EncryptedKey


def build_ssl_context(
    *,
    server: str,
    verify: bool = True,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    what: str = "the cluster",
) -> TlsSetup:
    """The SSL context kubectl would use (``False`` when there is nothing to do).

    ``tls-server-name`` is not applied here: callers pass it as ``server_hostname`` with
    each connection, as aiohttp and websockets allow."""
    if urlsplit(server).scheme == "http":
        return TlsSetup(False)
    if not verify and not cert_file:
        return TlsSetup(False)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        # Like Go's crypto/tls, any certificate in the trust pool is an anchor.
        ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
        if ca_file:
            try:
                ctx.load_verify_locations(cafile=ca_file)
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigError(
                    f"the certificate-authority of {what} is not a valid PEM certificate "
                    f"({getattr(exc, 'reason', None) or type(exc).__name__})",
                    hint="fix it in the kubeconfig",
                ) from None
            except OSError as exc:
                raise ConfigError(
                    f"cannot read the certificate-authority of {what} ({exc.strerror})",
                    hint="fix the path in the kubeconfig",
                ) from None
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file or key_file:
        if not (cert_file and key_file):
            missing = "client-key" if cert_file else "client-certificate"
            raise ConfigError(
                f"{what} has a client certificate or key but no {missing}(-data)",
                hint="set both in the kubeconfig",
            )
        try:
            ctx.load_cert_chain(cert_file, key_file, password=_refuse_password)
        except _EncryptedKey:
            raise ConfigError(
                f"the client key of {what} is encrypted",
                hint="decrypt it (openssl pkey) or use another user; kubectl cannot use "
                "encrypted keys either",
            ) from None
        except ssl.SSLError as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            hint = (
                "the certificate and key do not belong together"
                if "MISMATCH" in str(reason)
                else "not valid PEM"
            )
            raise ConfigError(
                f"the client certificate/key of {what} cannot be used ({hint}: {reason})",
                hint="fix them in the kubeconfig",
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read the client certificate/key of {what} ({exc.strerror})",
                hint="fix the paths in the kubeconfig",
            ) from None
    return TlsSetup(ctx, client_certificate=bool(cert_file))


@dataclass(frozen=True)
class TlsSetup:
    """The ``ssl`` argument for aiohttp and websockets, and whether it presents a client
    certificate (an ``ssl.SSLContext`` cannot be asked)."""

    context: ssl.SSLContext | bool
    client_certificate: bool = False


class TlsState:
    """Builds the TLS setup once and hands out the same one afterwards."""

    def __init__(self, value: TlsSetup | None = None) -> None:
        self._lock = threading.Lock()
        self._value = value

    def peek(self) -> TlsSetup | None:
        """The setup if it was built already, else ``None``."""
        with self._lock:
            return self._value

    def get(self, build: Callable[[], TlsSetup]) -> TlsSetup:
        with self._lock:
            if self._value is None:
                self._value = build()
            return self._value
