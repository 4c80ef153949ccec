"""The explorer's web application (Flask): one endpoint per query of :mod:`cnnlab.lab`, and one page.

The endpoints are made from :data:`cnnlab.lab.QUERIES`: ``/api/NAME`` answers with the document
of ``Lab.NAME``, the same the command named in the query prints with ``--json``.

Every error is a JSON object ``{"error": "<one line>", "status": <code>}``: bad input 400, a
cross-site request 403, an unknown path 404, a wrong method 405, an oversized upload or a
question over the memory budget or the deadline 413, a full work queue 503 (with Retry-After),
work stopped at its deadline 504, anything unexpected 500 (its type and first line only; the
server logs the traceback and keeps answering).

The queries that trace or run a network (:data:`cnnlab.lab.HEAVY`) are answered from the lab's
kept answers when it has one, else on the one worker thread of :mod:`cnnlab.web.work`; the rest
(page, health, calculators, runs) are answered on the request's own thread and never wait for it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import sys
import traceback
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cnnlab import __version__
from cnnlab.errors import CnnlabError
from cnnlab.lab import HEAVY, LIMITS, QUERIES, Busy, Lab, Query
from cnnlab.shapes import fmt_shape
from cnnlab.web.work import Work

__all__ = ["ENDPOINTS", "create_app"]

STATIC = Path(__file__).parent / "static"

ENDPOINTS = {
    "GET /api": "this list",
    "GET /api/health": "the server is up: version, runs folder name, and the model work running and waiting",
    **{q.usage: q.summary + (f" (format={'|'.join(q.formats)}: a download)" if q.formats else "")
       + (f"; the document of `{q.command}`" if q.command else "") for q in QUERIES},
}

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
JSON_BODY_BYTES = 256 * 1024  # the calculator's and the stepper's bodies are a few hundred bytes
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    # Scripts and styles from the server only (the page has no inline ones); no page may frame it.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


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
    if (request.content_length or 0) > JSON_BODY_BYTES:
        raise CnnlabError(f"the JSON body is {request.content_length:,} bytes: at most {JSON_BODY_BYTES // 1024} KB")
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        raise CnnlabError(f"the JSON body nests too deeply: send one flat object like {query.example}") from None
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


def _download(lab: Lab, form: str, args: dict[str, Any]) -> tuple[str, str]:
    """An analysis as a CSV or Markdown file: (its text, its file name)."""
    text, report = lab.analyze_table(form, **args)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{report.model}-{fmt_shape(report.input_size)}")
    return text, f"{name}.{form}"


def _request_key(query: Query, form: str, args: dict[str, Any]) -> Hashable:
    """Identical requests have one key (an upload by its digest), whatever the order of their fields."""
    def part(value: Any) -> Any:
        return hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else str(value)

    return query.name, form, tuple(sorted((k, part(v)) for k, v in args.items()))


def _view(lab: Lab, work: Work, query: Query) -> Callable[..., Response]:
    read = _READERS[query.method]

    def view(**from_path: str) -> Response:
        args = {**read(query), **from_path}
        form = args.pop("format", "json")
        if query.name not in HEAVY:
            return Response(lab.encoded(query.name, **args), mimetype="application/json")
        if form == "json":
            kept = lab.cached(query.name, **args)
            if kept is not None:
                return Response(kept, mimetype="application/json")
            data = work.answer(_request_key(query, form, args), lambda: lab.encoded(query.name, **args))
            return Response(data, mimetype="application/json")
        text, name = work.answer(_request_key(query, form, args), lambda: _download(lab, form, args))
        return Response(text, mimetype="text/csv" if form == "csv" else "text/markdown",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return view


def _cross_site() -> str | None:
    """Why this request comes from another site's page, or None (same origin, or not from a page).

    A browser names the page's origin (Origin) on every POST and on scripted requests, and says how
    it relates to the target (Sec-Fetch-Site); a form or script on any other origin, even another
    port of this machine, is refused, so another page cannot make the explorer work or read it.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site[:40]!r}"
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"it comes from {origin[:80]!r}"
    return None


def create_app(runs_dir: str | Path = "runs", loopback_only: bool = True, memory_budget: int | None = None,
               deadline_s: float | None = None, queue_size: int = 16) -> Flask:
    """The application; ``loopback_only`` refuses requests whose Host header is not a loopback name.

    That check keeps a page on another site from reaching a loopback server through a DNS name
    it controls (DNS rebinding). ``cnnlab serve --host`` with a non-loopback address turns it off.
    ``memory_budget`` (bytes) and ``deadline_s`` bound the model work (see :class:`cnnlab.lab.Lab`);
    ``queue_size`` is how many heavy requests may wait (see :class:`cnnlab.web.work.Work`).
    """
    lab = Lab(runs_dir, scope="explorer", memory_budget=memory_budget, deadline_s=deadline_s)
    work = Work(lab, queue_size)
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = LIMITS["upload_bytes"] + 64 * 1024  # the image plus the form fields
    app.url_map.merge_slashes = False  # '/api/runs//etc' is refused as a run name, not redirected
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the answers in their natural order
    app.extensions["cnnlab_lab"] = lab
    app.extensions["cnnlab_work"] = work

    @app.before_request
    def _check_host() -> Any:
        if loopback_only:
            host = request.host or ""
            host = host.split("]")[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
            if not _is_loopback(host):
                return _error(f"host {request.host[:80]!r} is not a loopback name: open the page at "
                              "http://127.0.0.1:PORT/ (or start cnnlab serve with --host)", 400)
        return None

    @app.before_request
    def _check_origin() -> Any:
        if request.method == "POST" or (request.path.startswith("/api/") and request.path != "/api/health"):
            why = _cross_site()
            if why is not None:
                return _error(f"cross-site request refused ({why}): the explorer answers its own page only; "
                              "open it at this server's address", 403)
        return None

    @app.after_request
    def _headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.errorhandler(CnnlabError)
    def _bad_input(exc: CnnlabError) -> Any:
        response, status = _error(lab.shown(str(exc)).replace("\n", " "), getattr(exc, "status", 400))
        if isinstance(exc, Busy):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response, status

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
        traceback.print_exception(exc, file=sys.stderr)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _error(lab.shown(f"internal error ({type(exc).__name__}{': ' + first[:200] if first else ''}); "
                                "the server keeps running"), 500)

    @app.get("/")
    def _index() -> Any:
        return send_from_directory(STATIC, "index.html")

    @app.get("/api")
    def _api() -> Any:
        from cnnlab.shapes import STACK_GRAMMAR

        return jsonify({"endpoints": ENDPOINTS, "limits": LIMITS,
                        "work": {"memory_budget_bytes": lab.memory_budget, "deadline_s": lab.deadline_s,
                                 "queue_size": work.queue_size},
                        "stack_grammar": STACK_GRAMMAR})

    @app.get("/api/health")
    def _health() -> Any:  # answers at once, whatever the model work is doing
        return jsonify({"ok": True, "version": __version__, "runs": lab.runs_dir.name, "work": work.status()})

    for query in QUERIES:
        rule = re.sub(r"<(\w+)>", r"<path:\1>", query.route)  # '/api/runs/a/b' is refused as a name, not a 404
        app.add_url_rule(rule, endpoint=query.name, view_func=_view(lab, work, query),
                         methods=["GET" if query.method == "GET" else "POST"])
    return app
