"""The explorer: a local web page over cnnlab's analyzer, convolution stepper, pictures and runs.

``cnnlab serve`` starts it; :func:`create_app` gives the Flask application for tests or
another WSGI server. Flask is an optional dependency (``pip install 'cnnlab[web]'``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def _require_flask() -> None:
    try:
        import flask  # noqa: F401
    except ImportError:
        from cnnlab.errors import CnnlabError

        raise CnnlabError("the explorer needs Flask: pip install 'cnnlab[web]' (make run installs it)") from None


def create_app(runs_dir: Any = "runs", loopback_only: bool = True, **limits: Any) -> Any:
    """The Flask application; ``limits`` are ``memory_budget`` (bytes), ``deadline_s`` and ``queue_size``."""
    _require_flask()
    from cnnlab.web.app import create_app as _create

    return _create(runs_dir, loopback_only, **limits)


def serve(host: str = "127.0.0.1", port: int = 8765, runs: Any = "runs", **limits: Any) -> None:
    """Serve until Ctrl-C; ``limits`` as for :func:`create_app`."""
    _require_flask()
    from cnnlab.web.server import serve as _serve

    _serve(host, port, runs, **limits)
