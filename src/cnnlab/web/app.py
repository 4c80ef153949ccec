"""The explorer's web application (Flask): one endpoint per query of :mod:`cnnlab.lab`, and one page.

The endpoints are made from :data:`cnnlab.lab.QUERIES`: ``/api/NAME`` answers with the document
of ``Lab.NAME``, the same the command named in the query prints with ``--json``.

Every error is a JSON object ``{"error": "<one line>", "status": <code>}``: bad input 400, an
unknown path 404, a wrong method 405, an oversized upload 413, anything unexpected 500 (its
type and first line only; the server logs the traceback and keeps answering).
"""

from __future__ import annotations

import ipaddress
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cnnlab import __version__
from cnnlab.errors import CnnlabError
from cnnlab.lab import LIMITS, QUERIES, Lab, Query
from cnnlab.shapes import fmt_shape

__all__ = ["ENDPOINTS", "create_app"]

STATIC = Path(__file__).parent / "static"

ENDPOINTS = {
    "GET /api": "this list",
    "GET /api/health": "the server is up: version and runs folder",
    **{q.usage: q.summary + (f" (format={'|'.join(q.formats)}: a download)" if q.formats else "")
       + (f"; the document of `{q.command}`" if q.command else "") for q in QUERIES},
}

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _error(message: str, status: int) -> tuple[Response, int]:
    return jsonify({"error": message, "status": status}), status


def _fields(query: Query) -> list[str]:
    return [p.name for p in query.params if f"<{p.name}>" not in query.route]


def _query_args(query: Query) -> dict[str, Any]:
    """The query string's parameters; an unknown one is an error that lists the known ones."""
    allowed = [*_fields(query), *(["format"] if query.formats else [])]
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        takes = f"this endpoint takes {', '.join(allowed)}" if allowed else "this endpoint takes none"
        raise CnnlabError(f"unknown parameter {unknown[0]!r}: {takes}")
    return {k: request.args.get(k) for k in allowed if request.args.get(k) not in (None, "")}


def _body_args(query: Query) -> dict[str, Any]:
    """The JSON object of a POST; unknown fields are an error that lists the known ones."""
    body = request.get_json(silent=True)
    if body is None:
        raise CnnlabError(f"send a JSON body (Content-Type: application/json) like {query.example}")
    if not isinstance(body, dict):
        raise CnnlabError(f"send a JSON object like {query.example}")
    unknown = sorted(set(body) - set(_fields(query)))
    if unknown:
        raise CnnlabError(f"unknown field {unknown[0]!r}: use {', '.join(_fields(query))}")
    return body


def _form_args(query: Query) -> dict[str, Any]:
    """Multipart form fields and the optional image file."""
    unknown = sorted(set(request.form) - set(_fields(query)))
    if unknown:
        raise CnnlabError(f"unknown field {unknown[0]!r}: send {', '.join(_fields(query))} and an image file")
    extra = sorted(set(request.files) - {"image"})
    if extra:
        raise CnnlabError(f"unknown file field {extra[0]!r}: send the picture as 'image'")
    upload = request.files.get("image")
    if upload is not None and upload.mimetype and not upload.mimetype.startswith(("image/", "application/octet")):
        raise CnnlabError(f"the upload is {upload.mimetype}, not an image: send PNG, JPEG, GIF, BMP or WebP")
    args: dict[str, Any] = {k: v for k, v in request.form.items() if v != ""}
    if upload is not None:
        args["image"] = upload.read()
    return args


_READERS = {"GET": _query_args, "POST": _body_args, "FORM": _form_args}


def _download(lab: Lab, form: str, args: dict[str, Any]) -> Response:
    """An analysis as a CSV or Markdown file."""
    text, report = lab.analyze_table(form, **args)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{report.model}-{fmt_shape(report.input_size)}")
    return Response(text, mimetype="text/csv" if form == "csv" else "text/markdown",
                    headers={"Content-Disposition": f'attachment; filename="{name}.{form}"'})


def _view(lab: Lab, query: Query) -> Callable[..., Response]:
    read = _READERS[query.method]

    def view(**from_path: str) -> Response:
        args = {**read(query), **from_path}
        form = args.pop("format", "json")
        if form != "json":
            return _download(lab, form, args)
        return Response(lab.encoded(query.name, **args), mimetype="application/json")

    return view


def create_app(runs_dir: str | Path = "runs", loopback_only: bool = True) -> Flask:
    """The application; ``loopback_only`` refuses requests whose Host header is not a loopback name.

    That check keeps a page on another site from reaching a loopback server through a DNS name
    it controls (DNS rebinding). ``cnnlab serve --host`` with a non-loopback address turns it off.
    """
    lab = Lab(runs_dir, scope="explorer")
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = LIMITS["upload_bytes"] + 64 * 1024  # the image plus the form fields
    app.url_map.merge_slashes = False  # '/api/runs//etc' is refused as a run name, not redirected
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the answers in their natural order
    app.extensions["cnnlab_lab"] = lab

    @app.before_request
    def _check_host() -> Any:
        if loopback_only:
            host = request.host or ""
            host = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
            if not _is_loopback(host):
                return _error(f"host {request.host!r} is not a loopback name: open the page at "
                              "http://127.0.0.1:PORT/ (or start cnnlab serve with --host)", 400)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'")
        return response

    @app.errorhandler(CnnlabError)
    def _bad_input(exc: CnnlabError) -> Any:
        return _error(str(exc), 400)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_exc: RequestEntityTooLarge) -> Any:
        return _error(f"the upload is larger than the {LIMITS['upload_bytes'] // 2**20} MB limit: "
                      "send a smaller image", 413)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        code = exc.code or 500
        if code == 404:
            return _error(f"no such page or endpoint {request.path}: GET /api lists the endpoints", 404)
        if code == 405:
            return _error(f"{request.method} is not allowed on {request.path}: GET /api lists the endpoints", 405)
        return _error(f"{exc.name}: {exc.description}", code)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        print(f"cnnlab serve: error on {request.method} {request.full_path}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _error(f"internal error ({type(exc).__name__}{': ' + first[:200] if first else ''}); "
                      "the server keeps running", 500)

    @app.get("/")
    def _index() -> Any:
        return send_from_directory(STATIC, "index.html")

    @app.get("/api")
    def _api() -> Any:
        from cnnlab.shapes import STACK_GRAMMAR

        return jsonify({"endpoints": ENDPOINTS, "limits": LIMITS, "stack_grammar": STACK_GRAMMAR})

    @app.get("/api/health")
    def _health() -> Any:
        return jsonify({"ok": True, "version": __version__, "runs": str(lab.runs_dir)})

    for query in QUERIES:
        rule = re.sub(r"<(\w+)>", r"<path:\1>", query.route)  # '/api/runs/a/b' is refused as a name, not a 404
        app.add_url_rule(rule, endpoint=query.name, view_func=_view(lab, query),
                         methods=["GET" if query.method == "GET" else "POST"])
    return app
