"""``cnnlab serve``: the explorer on a threaded WSGI server (Werkzeug's, which Flask is built on)."""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from cnnlab.errors import CnnlabError

__all__ = ["make_server", "serve", "serving"]


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def make_server(host: str = "127.0.0.1", port: int = 8765, runs: str | Path = "runs") -> object:
    """A started-but-not-serving server (``serve_forever`` runs it); port 0 picks a free port."""
    from werkzeug.serving import WSGIRequestHandler
    from werkzeug.serving import make_server as _make

    from cnnlab.web.app import _is_loopback, create_app

    class _Quiet(WSGIRequestHandler):
        def log_request(self, *args: object, **kwargs: object) -> None:  # one line per request is noise here
            pass

    if not 0 <= port <= 65535:
        raise CnnlabError(f"port must be from 0 to 65535, got {port}")
    app = create_app(runs, loopback_only=_is_loopback(host))
    # Bind here rather than in Werkzeug, whose own failure message is several lines and an exit.
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise CnnlabError(f"cannot listen on {host!r}: not an address or host name of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CnnlabError(f"port {port} on {host} is already in use: choose another with --port "
                              "(--port 0 picks a free one)") from None
        raise CnnlabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        return _make(host, port, app, threaded=True, request_handler=_Quiet, fd=sock.fileno())
    finally:
        sock.close()  # the server keeps its own duplicate of the socket


def serve(host: str = "127.0.0.1", port: int = 8765, runs: str | Path = "runs") -> None:
    """Serve until Ctrl-C (or SIGTERM), then close the socket and return."""
    import signal

    from cnnlab.web.app import _is_loopback

    server = make_server(host, port, runs)
    url = _url(host, server.port) + "/"  # type: ignore[attr-defined]
    print(f"cnnlab explorer at {url}  (runs folder: {Path(runs).resolve()}; Ctrl-C stops it)", flush=True)
    if not _is_loopback(host):
        print(f"note: {host} is not a loopback address, so other machines on the network can open the "
              "explorer", file=sys.stderr, flush=True)

    def _stop(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()  # type: ignore[attr-defined]
        print("cnnlab explorer stopped", flush=True)


@contextlib.contextmanager
def serving(runs: str | Path = "runs", host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """The explorer on a background thread for the length of a ``with`` block; yields its base URL.

        >>> with serving("runs") as url:          # doctest: +SKIP
        ...     print(url)                        # http://127.0.0.1:PORT (a free port)
    """
    server = make_server(host, port, runs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)  # type: ignore[attr-defined]
    thread.start()
    try:
        yield _url(host, server.port)  # type: ignore[attr-defined]
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        thread.join()
