"""The pinned cluster context: the one job here is :class:`ClusterCredentials`, the handle
``KubeApi`` asks for the server, the namespace, the TLS setup and fresh headers, and which
never shows a secret (``repr``, copies and pickling included).
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio

from podmagic._errors import ConfigError

from ._refresh import AuthSource
from ._tls import TlsSetup, TlsState, build_ssl_context

__all__ = ["ClusterCredentials", "noting_credential_waits"]

#: What no HTTP header value may carry: C0 controls but the tab, and DEL. One regex search
#: per header, in C: a fan-out asks for the headers once per exec, and a token is long.
_HEADER_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


#: Where :meth:`ClusterCredentials.auth_headers` notes a wait for credentials that was
#: cancelled, for :func:`noting_credential_waits`.
_CREDENTIAL_WAITS_CUT: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "podmagic_credential_waits_cut", default=None
)


@contextlib.contextmanager
def noting_credential_waits() -> Iterator[list[str]]:
    """Collect, in the list this yields, what each wait for credentials cancelled in this
    context (tasks it starts included) was waiting for (:meth:`ClusterCredentials.
    credential_source`): a deadline that passes mid-login then names the plugin."""
    cut: list[str] = []
    token = _CREDENTIAL_WAITS_CUT.set(cut)
    try:
        yield cut
    finally:
        _CREDENTIAL_WAITS_CUT.reset(token)


@dataclass(frozen=True, eq=False, repr=False)
class ClusterCredentials:
    """One pinned cluster context: where the API server is and how to authenticate to it.

    Obtain it with :func:`load_credentials`. Secrets live only in private state: the ``repr``
    shows the context, server, namespace, user and the kinds of authentication and TLS.
    Equality is identity, so two loads are never mistaken for one another.
    """

    #: The context name (``"in-cluster"`` for a pod's service account).
    context: str
    #: ``https://host:port`` (plus any path prefix), without a trailing slash.
    server: str
    #: The context's namespace, else ``"default"``.
    namespace: str = "default"
    #: The kubeconfig user entry's name, for messages (``None`` in-cluster or anonymous).
    user: str | None = None
    #: ``tls-server-name``: the name used for SNI and certificate verification, if set
    #: (callers pass it as ``server_hostname``).
    tls_server_name: str | None = None
    #: The cluster's ``proxy-url``, if any (may embed proxy credentials: do not print it).
    proxy_url: str | None = field(default=None, repr=False)
    #: The kubeconfig files the context came from (empty in-cluster).
    kubeconfig_files: tuple[str, ...] = ()
    _auth: AuthSource = field(default_factory=AuthSource, repr=False)
    _tls: TlsState = field(default_factory=TlsState, repr=False)

    def credential_source(self) -> str:
        """What the credentials come from, for messages: ``exec credential plugin "NAME" of
        user "USER"`` for an exec plugin, else ``credentials of user "USER" (METHOD)``."""
        named = self._auth.describe()
        if named is not None:
            return named
        return f"credentials of {self._owner()} ({self.auth_method})"

    def _owner(self) -> str:
        return f'user "{self.user}"' if self.user else f'context "{self.context}"'

    @property
    def auth_method(self) -> str:
        """How requests authenticate: ``token``, ``token-file``, ``basic``, ``exec``,
        ``auth-provider:NAME``, ``in-cluster``, ``client-certificate`` or ``none``."""
        kind = self._auth.kind
        if kind == "none" and self.has_client_certificate:
            return "client-certificate"
        return kind

    @property
    def has_client_certificate(self) -> bool:
        """Whether the TLS context presents a client certificate."""
        return self._tls.get(self._default_tls).client_certificate

    def ssl_context(self) -> ssl.SSLContext | bool:
        """The ``ssl`` argument for aiohttp: a verifying context (the cluster's CA, or the
        system's when none is configured) with the client certificate loaded; ``False`` for
        ``insecure-skip-tls-verify`` without a client certificate, or a plain-http server.
        Built once; every call returns the same object. Pass :attr:`tls_server_name` as
        ``server_hostname`` with each connection: the context does not apply it."""
        return self._tls.get(self._default_tls).context

    def _default_tls(self) -> TlsSetup:
        return build_ssl_context(server=self.server, what=f'context "{self.context}"')

    async def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate a request (``{}`` for certificate-only or anonymous
        access). Refreshes expired exec-plugin, auth-provider and file tokens first; concurrent
        callers share one refresh. Raises :class:`~podmagic.ConfigError` if it fails,
        or if the token holds a character no HTTP header may carry (CR, LF, ESC …)."""
        try:
            headers = await self._auth.headers()
        except anyio.get_cancelled_exc_class():
            # A deadline cut the wait (a running plugin is stopped by the cancellation):
            # whoever set the deadline words it with the source (noting_credential_waits).
            cut = _CREDENTIAL_WAITS_CUT.get()
            if cut is not None:
                cut.append(self.credential_source())
            raise
        for value in headers.values():
            # aiohttp would refuse it with a bare ValueError; the token itself is never shown.
            if _HEADER_FORBIDDEN.search(value) is not None:
                raise ConfigError(
                    f"the token of {self._owner()} ({self.auth_method}) contains a control "
                    "character (a line break or escape), which no HTTP header may carry",
                    hint="fix the token in the kubeconfig or the token file",
                )
        return headers

    def invalidate_token(self, used: Mapping[str, str] | None = None) -> None:
        """Forget the current token after the server answered 401, so that the next
        :meth:`auth_headers` obtains a new one. Pass the headers the rejected request carried
        as ``used`` to skip the refresh when another caller already replaced that token."""
        self._auth.invalidate(used)

    def __copy__(self) -> ClusterCredentials:
        return self  # immutable handle; copies share the token cache and the SSL context

    def __deepcopy__(self, memo: dict[int, Any]) -> ClusterCredentials:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(
            "ClusterCredentials cannot be pickled: it holds secrets; "
            "call load_credentials() again in the other process"
        )

    def __repr__(self) -> str:
        parts = urlsplit(self.server)
        server = self.server
        if parts.username is not None or parts.password is not None:
            server = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        setup = self._tls.peek()
        auth = self._auth.kind
        if auth == "none" and setup is not None and setup.client_certificate:
            auth = "client-certificate"
        ctx = setup.context if setup is not None else None
        if ctx is None:
            tls = "default"
        elif ctx is False:
            tls = "off" if urlsplit(self.server).scheme == "http" else "insecure"
        elif isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE:
            tls = "insecure"
        else:
            tls = "verify"
        return (
            f"ClusterCredentials(context={self.context!r}, server={server!r}, "
            f"namespace={self.namespace!r}, user={self.user!r}, auth={auth!r}, "
            f"tls={tls!r})"
        )
