"""The main process the sandbox runs for an ``nginx`` image: an emulation of the image's
default server (``nginx -g 'daemon off;'`` with its stock ``default.conf``), not nginx.

It serves the files under its document root (``/usr/share/nginx/html`` in the container) on
port 80 as that configuration does: ``index.html`` for a folder, a 301 to the folder's name
with a slash, nginx's own error pages (404, 403 for a folder without an index, 405 for a
method other than GET and HEAD), HTTP/1.1 keep-alive, nginx's ``Server``, ``ETag`` and
``Last-Modified`` headers; its access log (the ``combined`` format plus
``$http_x_forwarded_for``, as the image logs) goes to stdout, its notices and errors to
stderr. SIGTERM and SIGQUIT end it with status 0, as nginx's fast and graceful shutdowns do.

The sandbox runs it as ``python3 -I -S -c <this file> ...`` (:mod:`._images`): it imports
only the standard library and nothing of podmagic, because the container sees the host's
system folders but not podmagic's installation. It binds its ports before anything else, so
that a client that connects as soon as the pod is Running finds them listening.
"""

from __future__ import annotations

# Only what binding the ports needs is imported before they are bound (see main).
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

__all__ = ["error_page", "main"]

# nginx's reason phrases where they differ from Python's.
_REASONS = {405: "Not Allowed", 413: "Request Entity Too Large", 414: "Request-URI Too Large"}
# Where nginx's mime.types names a type otherwise than Python's table.
_TYPES = {".js": "application/javascript"}
_DEFAULT_TYPE = "application/octet-stream"
_CHUNK = 64 * 1024
_ROOT = "/usr/share/nginx/html"
_VERSION = "1.27.5"


def error_page(code: int, reason: str, version: str) -> bytes:
    """The page nginx answers an error with when no ``error_page`` is configured for it."""
    title = f"{code} {reason}"
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx/{version}</center>\r\n"
        "</body>\r\n</html>\r\n"
    ).encode()


def _log_time(moment: float) -> str:
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(moment))


def _error_time() -> str:
    return time.strftime("%Y/%m/%d %H:%M:%S", time.gmtime())


def _notice(level: str, text: str) -> None:
    # nginx's error log line: the master process is pid 1 in its container, worker 1#1.
    print(f"{_error_time()} [{level}] 1#1: {text}", file=sys.stderr, flush=True)


def _content_type(path: str) -> str:
    import mimetypes  # only once a file is served: keeps the start short

    extension = os.path.splitext(path)[1].lower()
    return _TYPES.get(extension) or mimetypes.guess_type(path)[0] or _DEFAULT_TYPE


def _handler_class(root: str, version: str) -> type[Any]:
    """The request handler (imported and made once the ports are bound)."""
    import email.utils
    from http.server import BaseHTTPRequestHandler
    from urllib.parse import unquote, urlsplit

    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        root = _ROOT
        version = _VERSION
        _status = 0
        _sent = 0

        def version_string(self) -> str:
            return f"nginx/{self.version}"

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def _not_allowed(self) -> None:
            self.send_error(405)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

        def _target(self) -> str | None:
            """The file or folder the request names, or None when it leads above the root."""
            parts: list[str] = []
            for part in unquote(urlsplit(self.path).path).split("/"):
                if part == "..":
                    if not parts:
                        return None
                    parts.pop()
                elif part not in ("", "."):
                    parts.append(part)
            return os.path.join(self.root, *parts)

        def _serve(self, *, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            target = self._target()
            if target is None:
                self.send_error(400)
                return
            if os.path.isdir(target):
                if not path.endswith("/"):
                    self._redirect(path + "/")
                    return
                index = os.path.join(target, "index.html")
                if not os.path.isfile(index):
                    _notice("error", f'directory index of "{target}/" is forbidden')
                    self.send_error(403)
                    return
                target = index
            try:
                handle = open(target, "rb")  # noqa: SIM115 - closed below, after the copy
            except (FileNotFoundError, NotADirectoryError):
                _notice("error", f'open() "{target}" failed (2: No such file or directory)')
                self.send_error(404)
                return
            except OSError:
                _notice("error", f'open() "{target}" failed (13: Permission denied)')
                self.send_error(403)
                return
            with handle:
                stat = os.fstat(handle.fileno())
                self._status = 200
                self.send_response_only(200)
                self._common_headers()
                self.send_header("Content-Type", _content_type(target))
                self.send_header("Content-Length", str(stat.st_size))
                self.send_header(
                    "Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True)
                )
                self._connection()
                self.send_header("ETag", f'"{int(stat.st_mtime):x}-{stat.st_size:x}"')
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if body:
                    while chunk := handle.read(_CHUNK):
                        self.wfile.write(chunk)
                        self._sent += len(chunk)
            self._access_log()

        def _connection(self) -> None:
            # As the client asked (HTTP/1.1: keep-alive unless it said close).
            self.send_header("Connection", "close" if self.close_connection else "keep-alive")

        def _common_headers(self) -> None:
            self.send_header("Server", self.version_string())
            self.send_header("Date", self.date_time_string())

        def _redirect(self, location: str) -> None:
            page = error_page(301, "Moved Permanently", self.version)
            host = self.headers.get("Host")
            self._status = 301
            self.send_response_only(301)
            self._common_headers()
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Location", f"http://{host}{location}" if host else location)
            self._connection()
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(page)
                self._sent = len(page)
            self._access_log()

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            """An error answered with nginx's page and headers (also for malformed requests)."""
            reason = _REASONS.get(code) or self.responses.get(code, ("Error",))[0]
            page = error_page(code, reason, self.version)
            self._status = code
            self.send_response_only(code, reason)
            self._common_headers()
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            # nginx keeps the connection after these; after a malformed request it closes it.
            if code not in (403, 404, 405):
                self.close_connection = True
            self._connection()
            self.end_headers()
            if getattr(self, "command", "") != "HEAD":
                self.wfile.write(page)
                self._sent = len(page)
            self._access_log()

        def _access_log(self) -> None:
            headers = getattr(self, "headers", None)

            def header(name: str) -> str:
                value = headers.get(name) if headers is not None else None
                return value or "-"

            request = getattr(self, "requestline", "") or ""
            print(
                f'{self.client_address[0]} - - [{_log_time(time.time())}] "{request}" '
                f'{self._status} {self._sent} "{header("Referer")}" "{header("User-Agent")}" '
                f'"{header("X-Forwarded-For")}"',
                flush=True,
            )
            self._status = self._sent = 0

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the access log is written per request (:meth:`_access_log`)."""

    _Handler.root, _Handler.version = root, version
    return _Handler


def _listen(host: str, port: int) -> socket.socket | None:
    """A listening socket as nginx's ``listen`` makes one; exits as nginx does when the
    address is taken, skips an IPv6 address where the host has no IPv6."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            # nginx's `listen [::]:80` is IPv6 only, beside its `listen 80`.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(511)  # nginx's default backlog
    except OSError as error:
        sock.close()
        if family == socket.AF_INET6 and error.errno in (97, 99):  # no IPv6 here
            return None
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        _notice("emerg", f"bind() to {shown}:{port} failed ({error.errno}: {error.strerror})")
        raise SystemExit(1) from None
    return sock


def _options(argv: list[str]) -> dict[str, str]:
    # By hand, not argparse: its import would delay the listening sockets.
    options = {"--root": _ROOT, "--listen": "0.0.0.0,::", "--port": "80", "--version": _VERSION}
    pairs = iter(argv)
    for name in pairs:
        if name not in options:
            raise SystemExit(f"nginx emulation: unknown option {name!r}")
        options[name] = next(pairs, options[name])
    return options


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGQUIT; the exit status.

    Options: ``--root FOLDER``, ``--listen ADDR[,ADDR]``, ``--port N``, ``--version X.Y.Z``.
    """
    options = _options(sys.argv[1:] if argv is None else argv)
    port = int(options["--port"])
    done = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        _notice("notice", f"signal {signum} ({signal.Signals(signum).name}) received, exiting")
        done.set()

    for signum in (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT):
        signal.signal(signum, stop)
    sockets = [s for s in (_listen(h, port) for h in options["--listen"].split(",")) if s]
    # Said once the ports listen (and signals are handled): the sandbox holds connections to
    # the pod, and its readiness, until then.
    print("/docker-entrypoint.sh: Configuration complete; ready for start up", flush=True)
    from http.server import ThreadingHTTPServer

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            """Quiet, as nginx is about a client that went away (logged at ``info``)."""

    handler = _handler_class(options["--root"], options["--version"])
    _notice("notice", 'using the "epoll" event method')
    _notice("notice", f"nginx/{options['--version']}")
    servers = []
    for sock in sockets:
        server = Server(sock.getsockname()[:2], handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    _notice("notice", "start worker processes")
    while not done.wait(3600):
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    _notice("notice", "exit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
