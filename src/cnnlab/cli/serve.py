"""``cnnlab serve`` and ``cnnlab tour``: the explorer web page and the guided tour."""

from __future__ import annotations

import argparse

from cnnlab.cli.args import add_json_flag, count, positive
from cnnlab.cli.present import emit, plain

# Both library imports sit in the handlers. cnnlab.viz loads torch and matplotlib, and
# `cnnlab serve` must bind its address before torch loads (bench/serve_start.py times its
# start-up); cnnlab.web is needed by `serve` alone, so `tour` does not load it.


def _serve(args: argparse.Namespace) -> None:
    from cnnlab.limits import parse_bytes
    from cnnlab.web import serve

    budget = None if args.memory_budget is None else parse_bytes(args.memory_budget, "--memory-budget")
    serve(args.host, args.port, args.runs, memory_budget=budget, deadline_s=args.deadline, queue_size=args.queue)


def _tour(args: argparse.Namespace) -> None:
    from cnnlab.viz import make_tour
    from cnnlab.viz.tour import LANGS

    langs = LANGS if args.lang == "all" else (args.lang,)
    # The pictures are drawn once; every language's page links the same files.
    pages = [make_tour(args.out, lang, draw=i == 0) for i, lang in enumerate(langs)]
    emit({"path": str(pages[0]), "pages": [str(p) for p in pages], "pictures": args.out}, args.json,
         lambda _: plain("wrote " + " and ".join(str(p) for p in pages)))


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                        "network)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--runs", default="runs", metavar="DIR",
                   help="runs folder whose runs and checkpoints the page shows (default ./runs); nothing "
                        "outside it is opened")
    p.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="most memory the model work may hold at once, e.g. 4G or 512M (default: half the memory "
                        "available when the server starts); larger questions are refused, saying what fits")
    p.add_argument("--deadline", type=positive, default=None, metavar="S",
                   help="seconds one request's model work may take (default 30); longer work is refused or "
                        "stopped")
    p.add_argument("--queue", type=count(1, 10_000, "16"), default=16, metavar="N",
                   help="model-work requests that may wait at once (default 16); more are told to retry")
    p.set_defaults(func=_serve)


def _tour_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="tour", metavar="DIR", help="folder to write (default ./tour)")
    # The languages are cnnlab.viz.tour.LANGS, spelled out here so that --help loads no torch.
    p.add_argument("--lang", default="all", choices=["all", "en", "ko"],
                   help="page language: all (default: tour.md and tour.ko.md), en or ko")
    add_json_flag(p, "print the written page as JSON on stdout")
    p.set_defaults(func=_tour)


_ARGS = {"serve": _serve_args, "tour": _tour_args}


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cnnlab serve`` or ``cnnlab tour``."""
    _ARGS[name](parser)
