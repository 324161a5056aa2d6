"""Offering a kept TLS session to a new connection without CPython copying it first.

CPython's ``SSLObject.session`` setter (and ``wrap_bio(..., session=)``) does not hand the
session to OpenSSL as it is: it serialises it and parses it back (``i2d_SSL_SESSION`` /
``d2i_SSL_SESSION``, a workaround for a bug of OpenSSL 1.1.0's pre-releases). Parsing
includes the server's certificate, and with OpenSSL 3 that costs about 0.35 ms of CPU per
connection — more than the resumed handshake saves in verifying the certificate chain, and
about a sixth of a fan-out's whole client CPU per exec.

OpenSSL itself (1.1.1 and later) lets one session be offered by many connections: a
connection never changes the session it resumes from (new tickets become new sessions), and
clients such as curl share one session between connections the same way. So
:func:`share_session` calls ``SSL_set_session`` directly, through :mod:`ctypes`, with the
OpenSSL that CPython's ``_ssl`` module uses.

It does so only where it can check every pointer it uses, and otherwise reports that it did
nothing, so the caller sets the session the ordinary way:

* on CPython (not free-threaded), with OpenSSL 1.1.1 or later, where ``SSL_set_session`` and
  ``SSL_get_SSL_CTX`` are found through ``_ssl``'s own library (not where OpenSSL is linked
  into it invisibly, nor on Windows);
* for the ``_ssl`` objects of a connection and a session whose memory holds, where CPython
  keeps them, a reference to the very ``SSLContext`` they belong to (so the layout read is
  the one expected), the connection's ``SSL`` belonging to that context's ``SSL_CTX`` (asked
  of OpenSSL once per context), and a connection whose handshake has not begun.

Only these reads of an object's own memory happen before OpenSSL is called.
"""

from __future__ import annotations

import _ssl
import ctypes
import ssl
import sys
import sysconfig
import weakref
from typing import Any

__all__ = ["share_session", "sharing_available"]

#: Size of ``PyObject_HEAD``: where the fields of a C object's struct begin.
_HEAD = object.__basicsize__
_POINTER = ctypes.sizeof(ctypes.c_void_p)

# The structs of CPython's Modules/_ssl.c (3.8 to 3.13), as read here:
#   PySSLContext  { PyObject_HEAD; SSL_CTX *ctx; ... }
#   PySSLSocket   { PyObject_HEAD; PyObject *Socket; SSL *ssl; PySSLContext *ctx; ... }
#   PySSLSession  { PyObject_HEAD; SSL_SESSION *session; PySSLContext *ctx; }
_CONTEXT_CTX = 0
_SOCKET_SSL, _SOCKET_CONTEXT = 1, 2
_SESSION_SESSION, _SESSION_CONTEXT = 0, 1


class _OpenSSL:
    """The OpenSSL functions used, from the library ``_ssl`` is linked with."""

    def __init__(self) -> None:
        library = ctypes.CDLL(_ssl.__file__)  # already loaded: its symbols and its libssl's
        self.set_session = library.SSL_set_session
        self.set_session.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
        self.set_session.restype = ctypes.c_int
        self.get_ssl_ctx = library.SSL_get_SSL_CTX
        self.get_ssl_ctx.argtypes = (ctypes.c_void_p,)
        self.get_ssl_ctx.restype = ctypes.c_void_p
        self.is_resumable = library.SSL_SESSION_is_resumable
        self.is_resumable.argtypes = (ctypes.c_void_p,)
        self.is_resumable.restype = ctypes.c_int
        #: Contexts whose connections were seen to be theirs by OpenSSL too.
        self.checked: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()


def _load() -> _OpenSSL | None:
    if sys.implementation.name != "cpython" or not (3, 8) <= sys.version_info[:2] <= (3, 13):
        return None
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return None  # a free-threaded build lays its objects out differently
    if ssl.OPENSSL_VERSION_INFO < (1, 1, 1):
        return None
    for kind, fields in ((ssl.SSLContext, 1), (ssl.SSLSession, 2)):
        if kind.__basicsize__ < _HEAD + fields * _POINTER:
            return None
    try:
        return _OpenSSL()
    except (OSError, AttributeError):
        return None


_OPENSSL = _load()
#: The type of ``SSLObject._sslobj`` (not in typeshed's ``_ssl``).
_SSL_SOCKET: Any = getattr(_ssl, "_SSLSocket", None)


def sharing_available() -> bool:
    """Whether :func:`share_session` can work in this interpreter at all."""
    return _OPENSSL is not None


def _field(obj: object, index: int) -> int:
    """The ``index``-th pointer after ``PyObject_HEAD`` in ``obj``'s own memory."""
    return ctypes.c_void_p.from_address(id(obj) + _HEAD + index * _POINTER).value or 0


def share_session(
    sslobj: ssl.SSLObject, session: ssl.SSLSession, context: ssl.SSLContext
) -> bool | None:
    """Offer ``session`` on ``sslobj`` (made by ``context``'s ``wrap_bio``, before its
    handshake) without copying it.

    True when done; False when that could not be done safely (nothing was done: set it the
    ordinary way); None when OpenSSL says the session can no longer be resumed (nothing was
    done). The last happens to a shared session when a connection that resumed it is freed
    before it got a ticket of its own and without a TLS goodbye (an abort): OpenSSL then
    marks the session it holds — the shared one — as not to be resumed again. Copying it
    would clear the mark; rather, take a new session from a newer connection.
    """
    native = _OPENSSL
    if native is None or sslobj.server_side:
        return False
    inner: Any = getattr(sslobj, "_sslobj", None)
    if _SSL_SOCKET is None or type(inner) is not _SSL_SOCKET or type(session) is not ssl.SSLSession:
        return False
    if type(inner).__basicsize__ < _HEAD + 3 * _POINTER:
        return False
    context_id = id(context)
    if _field(inner, _SOCKET_CONTEXT) != context_id or _field(session, _SESSION_CONTEXT) != (
        context_id
    ):
        return False  # not the layout expected, or another context's session
    ssl_pointer = _field(inner, _SOCKET_SSL)
    session_pointer = _field(session, _SESSION_SESSION)
    if not ssl_pointer or not session_pointer:
        return False
    if context not in native.checked:
        ctx_pointer = _field(context, _CONTEXT_CTX)
        if not ctx_pointer or native.get_ssl_ctx(ssl_pointer) != ctx_pointer:
            return False
        native.checked.add(context)
    if sslobj.version() is not None:
        return False  # the handshake is done: too late for a session
    if not native.is_resumable(session_pointer):
        return None
    # SSL_set_session takes its own reference to the session: the Python object may go.
    return bool(native.set_session(ssl_pointer, session_pointer))
