"""The explorer's web application (Flask): a JSON API over :class:`cnnlab.web.api.Explorer` and one page.

Every error is a JSON object ``{"error": "<one line>", "status": <code>}``: bad input 400, an
unknown path 404, a wrong method 405, an oversized upload 413, anything unexpected 500 (its
type and first line only; the server logs the traceback and keeps answering).
"""

from __future__ import annotations

import ipaddress
import re
import sys
import traceback
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cnnlab import __version__
from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape
from cnnlab.web.api import LIMITS, Explorer

__all__ = ["ENDPOINTS", "create_app"]

STATIC = Path(__file__).parent / "static"

ENDPOINTS = {
    "GET /api": "this list",
    "GET /api/health": "the server is up: version and runs folder",
    "GET /api/models": "the model zoo: name, family, paper, default and smallest input",
    "GET /api/analyze?model=NAME|run=RUN&input=CxHxW[&format=csv|md]": "the analyzer's report: per-layer shapes, "
                                                                        "parameters, MACs, FLOPs, memory, receptive "
                                                                        "field and formulas (or a CSV or Markdown "
                                                                        "download)",
    "GET /api/compare?models=A,B,...&input=CxHxW": "several models side by side",
    "POST /api/stack": "the layer calculator: JSON {input: CxHxW, layers: [\"conv 64 k3 p1\", ...]}, every output "
                       "shape, parameter count, MACs and receptive field with its formulas",
    "POST /api/conv": "a convolution step by step; JSON {input, kernel, stride, padding, dilation, bias}",
    "GET /api/rf?model=NAME|run=RUN&input=CxHxW&layer=NODE&samples=N": "a layer's theoretical receptive field "
                                                                       "and its measured effective field",
    "POST /api/inside": "form fields model=NAME|run=RUN, top=K and an optional image file: top-k prediction, "
                        "feature maps and Grad-CAM",
    "GET /api/runs": "the runs folder: one summary per run",
    "GET /api/runs/RUN": "one run: config, epoch metrics (read live while it trains) and result",
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


def _args(*allowed: str) -> dict[str, str]:
    """The query's parameters; an unknown one is an error that lists the known ones."""
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise CnnlabError(f"unknown parameter {unknown[0]!r}: this endpoint takes {', '.join(allowed)}")
    return {k: request.args.get(k) for k in allowed if request.args.get(k) not in (None, "")}


def create_app(runs_dir: str | Path = "runs", loopback_only: bool = True) -> Flask:
    """The application; ``loopback_only`` refuses requests whose Host header is not a loopback name.

    That check keeps a page on another site from reaching a loopback server through a DNS name
    it controls (DNS rebinding). ``cnnlab serve --host`` with a non-loopback address turns it off.
    """
    explorer = Explorer(runs_dir)
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = LIMITS["upload_bytes"] + 64 * 1024  # the image plus the form fields
    app.url_map.merge_slashes = False  # '/api/runs//etc' is refused as a run name, not redirected
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the answers in their natural order
    app.extensions["cnnlab_explorer"] = explorer

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
        return jsonify({"ok": True, "version": __version__, "runs": str(explorer.runs_dir)})

    @app.get("/api/models")
    def _models() -> Any:
        _args()
        return jsonify({"models": explorer.models()})

    @app.get("/api/analyze")
    def _analyze() -> Any:
        args = _args("model", "run", "input", "format")
        form = args.pop("format", "json")
        if form == "json":
            return Response(explorer.analyze_json(**args), mimetype="application/json")
        if form not in ("csv", "md"):
            raise CnnlabError(f"format must be json, csv or md, got {form!r}")
        from cnnlab.analysis.render import report_markdown

        report = explorer.report(**args)
        text = report.to_csv() if form == "csv" else report_markdown(report, report.layers)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{report.model}-{fmt_shape(report.input_size)}")
        return Response(text, mimetype="text/csv" if form == "csv" else "text/markdown",
                        headers={"Content-Disposition": f'attachment; filename="{name}.{form}"'})

    @app.get("/api/compare")
    def _compare() -> Any:
        args = _args("models", "input")
        if "models" not in args:
            raise CnnlabError("models is missing: give zoo model names separated by commas, e.g. resnet18,vgg11")
        return jsonify(explorer.compare(args["models"], args.get("input")))

    def _json_body(example: str) -> Any:
        body = request.get_json(silent=True)
        if body is None:
            raise CnnlabError(f"send a JSON body (Content-Type: application/json) like {example}")
        return body

    @app.post("/api/stack")
    def _stack() -> Any:
        return jsonify(explorer.stack(_json_body('{"input": "3x32x32", "layers": ["conv 64 k3 p1"]}')))

    @app.post("/api/conv")
    def _conv() -> Any:
        return jsonify(explorer.conv(_json_body('{"input": "1,2;3,4", "kernel": "1,0;0,1"}')))

    @app.get("/api/rf")
    def _rf() -> Any:
        return jsonify(explorer.rf(**_args("model", "run", "input", "layer", "samples")))

    @app.post("/api/inside")
    def _inside() -> Any:
        unknown = sorted(set(request.form) - {"model", "run", "top", "layers"})
        if unknown:
            raise CnnlabError(f"unknown field {unknown[0]!r}: send model or run, top, layers and an image file")
        extra = sorted(set(request.files) - {"image"})
        if extra:
            raise CnnlabError(f"unknown file field {extra[0]!r}: send the picture as 'image'")
        upload = request.files.get("image")
        data = upload.read() if upload is not None else None
        if upload is not None and upload.mimetype and not upload.mimetype.startswith(("image/", "application/octet")):
            raise CnnlabError(f"the upload is {upload.mimetype}, not an image: send PNG, JPEG, GIF, BMP or WebP")
        form = {k: v for k, v in request.form.items() if v != ""}
        return jsonify(explorer.inside(data, **form))

    @app.get("/api/runs")
    def _runs() -> Any:
        _args()
        return jsonify({"runs_dir": str(explorer.runs_dir), "runs": explorer.runs()})

    @app.get("/api/runs/<path:name>")
    def _run(name: str) -> Any:
        _args()
        return jsonify(explorer.run(name))

    return app
