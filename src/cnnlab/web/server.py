"""``cnnlab serve``: the explorer on a threaded WSGI server (Werkzeug's, which Flask is built on).

The server names itself ``cnnlab`` (no versions), drops a connection that sends nothing for
:data:`IDLE_S` seconds, and answers at most :data:`MAX_CONNECTIONS` connections at once (more
get a short 503), so neither slow nor many clients can take its threads.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from cnnlab.errors import CnnlabError

__all__ = ["IDLE_S", "MAX_CONNECTIONS", "make_server", "serve", "serving"]

IDLE_S = 60  # a connection silent this long is closed
MAX_CONNECTIONS = 128
_BUSY_BODY = b'{"error": "the explorer has too many connections open: try again", "status": 503}\n'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nServer: cnnlab\r\nContent-Type: application/json\r\n"
         b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_BUSY_BODY), _BUSY_BODY))


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def make_server(host: str = "127.0.0.1", port: int = 8765, runs: str | Path = "runs",
                memory_budget: int | None = None, deadline_s: float | None = None, queue_size: int = 16) -> object:
    """A started-but-not-serving server (``serve_forever`` runs it); port 0 picks a free port.

    ``memory_budget``, ``deadline_s`` and ``queue_size`` bound the model work (see
    :func:`cnnlab.web.app.create_app`).
    """
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    from cnnlab.web.app import _is_loopback, create_app

    class _Quiet(WSGIRequestHandler):
        timeout = IDLE_S

        def log_request(self, *args: object, **kwargs: object) -> None:  # one line per request is noise here
            pass

        def version_string(self) -> str:  # the Server header: no Werkzeug or Python version to fingerprint
            return "cnnlab"

    class _Bounded(ThreadedWSGIServer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

        def process_request(self, request: object, client_address: object) -> None:
            if not self.slots.acquire(blocking=False):
                with contextlib.suppress(OSError):
                    request.sendall(_BUSY)  # type: ignore[attr-defined]
                self.shutdown_request(request)
                return
            super().process_request(request, client_address)  # type: ignore[arg-type]

        def process_request_thread(self, request: object, client_address: object) -> None:
            try:
                super().process_request_thread(request, client_address)  # type: ignore[arg-type]
            finally:
                self.slots.release()

    if not 0 <= port <= 65535:
        raise CnnlabError(f"port must be from 0 to 65535, got {port}")
    app = create_app(runs, loopback_only=_is_loopback(host), memory_budget=memory_budget, deadline_s=deadline_s,
                     queue_size=queue_size)
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
        return _Bounded(host, port, app, _Quiet, fd=sock.fileno())
    finally:
        sock.close()  # the server keeps its own duplicate of the socket


def serve(host: str = "127.0.0.1", port: int = 8765, runs: str | Path = "runs", memory_budget: int | None = None,
          deadline_s: float | None = None, queue_size: int = 16) -> None:
    """Serve until Ctrl-C (or SIGTERM), then close the socket and return."""
    import signal

    from cnnlab.limits import human_bytes
    from cnnlab.web.app import _is_loopback

    server = make_server(host, port, runs, memory_budget, deadline_s, queue_size)
    url = _url(host, server.port) + "/"  # type: ignore[attr-defined]
    lab = server.app.extensions["cnnlab_lab"]  # type: ignore[attr-defined]
    print(f"cnnlab explorer at {url}  (runs folder: {Path(runs).resolve()}; Ctrl-C stops it)", flush=True)
    print(f"model work: memory budget {human_bytes(lab.memory_budget)}, deadline {lab.deadline_s:g} s, "
          f"{queue_size} requests may wait", file=sys.stderr, flush=True)
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
def serving(runs: str | Path = "runs", host: str = "127.0.0.1", port: int = 0, **limits: object) -> Iterator[str]:
    """The explorer on a background thread for the length of a ``with`` block; yields its base URL.
    ``limits`` are :func:`make_server`'s ``memory_budget``, ``deadline_s`` and ``queue_size``.

        >>> with serving("runs") as url:          # doctest: +SKIP
        ...     print(url)                        # http://127.0.0.1:PORT (a free port)
    """
    server = make_server(host, port, runs, **limits)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, daemon=True)  # type: ignore[attr-defined]
    thread.start()
    try:
        yield _url(host, server.port)  # type: ignore[attr-defined]
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        thread.join()
