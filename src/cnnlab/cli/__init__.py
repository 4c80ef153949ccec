"""The ``cnnlab`` command. It parses arguments and calls library functions; no logic lives here.

Every command that prints results takes ``--json`` and then prints one JSON document on
stdout and nothing else. A mistake in the input ends in one line on stderr naming the
cause and the fix, with exit code 2.

:data:`COMMANDS` lists the commands; each one's arguments and handler live in the module of
its group (``cnnlab.cli.calc``, ``cnnlab.cli.models``, ...), which is imported only when
that command runs.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from cnnlab import __version__
from cnnlab.cli.args import EXIT_USAGE, Parser
from cnnlab.errors import CnnlabError, is_out_of_memory
from cnnlab.limits import human_bytes

__all__ = ["COMMANDS", "build_parser", "main"]


class Command(NamedTuple):
    """A top-level command: its name, the module of its group (in cnnlab.cli), its help."""

    name: str
    group: str
    help: str
    description: str | None = None


# In the order `cnnlab --help` lists them.
COMMANDS = (
    Command("calc", "calc", "exact layer arithmetic: output size, parameters, MACs, receptive field",
            "Exact layer arithmetic that explains itself. Shapes are CxHxW (CxL for 1d, CxDxHxW for 3d), "
            "without the batch."),
    Command("models", "models", "every registered model with family, size, inputs and paper"),
    Command("export", "models", "write a model as ONNX, TorchScript or safetensors and check the file"),
    Command("inspect", "models", "shapes, parameters, MACs/FLOPs, memory and receptive field of every layer",
            "Analyse a model on the meta device: no real compute, any input size. MODEL is a registered name "
            "or path/to/file.py:factory (or package.module:name)."),
    Command("compare", "models", "models side by side: parameters, MACs, depth, receptive field, memory"),
    Command("train", "train", "train a zoo model on real data with a recipe (default: LeNet-5 on MNIST)",
            "Train with a named recipe; every field of the recipe can be overridden. Under torchrun, trains "
            "with DistributedDataParallel."),
    Command("recipes", "train", "the named training recipes and their sources"),
    Command("runs", "train", "the runs in a runs folder, or one run's epochs and result"),
    Command("experiment", "train", "the papers' experiments over seeds: plain vs residual, family against family, "
            "kernel sizes", "Run a named experiment: every run it needs as an ordinary run folder (a second call "
            "skips finished runs and resumes interrupted ones), then results.json, results.md and plots."),
    Command("eval", "train", "top-1, top-5, per-class accuracy and confusion matrix of a run or checkpoint"),
    Command("predict", "train", "the most likely classes of image files"),
    Command("scratch", "scratch", "the NumPy reference engine: convolution as inner products, LeNet-5 trained "
            "without torch"),
    Command("viz", "viz", "pictures: kernels, convolution steps, filters, feature maps, Grad-CAM, receptive "
            "fields, curves, comparisons (PNG)"),
    Command("serve", "serve", "the explorer: a local web page for models, convolution, runs and pictures",
            "Start the explorer, a web page on this machine: pick a model and input size and see every "
            "layer's shape, parameters, MACs and receptive field; step a kernel across an input; look inside "
            "a trained network; follow runs while they train; compare models. Ctrl-C stops it."),
    Command("tour", "serve", "write the guided tour's pictures and page to a folder"),
)
_NAMES = frozenset(c.name for c in COMMANDS)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, with the arguments of ``command`` alone ("" for none, None for all)."""
    parser = Parser(prog="cnnlab", description="Build, inspect, train, look inside and compare the classic "
                                               "convolutional networks, with every number exact and explained.",
                    epilog="`cnnlab COMMAND --help` describes a command; `cnnlab calc tour` is a good start.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for c in COMMANDS:
        p = sub.add_parser(c.name, help=c.help, description=c.description)
        if command is None or command == c.name:
            importlib.import_module(f"cnnlab.cli.{c.group}").configure(c.name, p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The command word picks the one group to import; without one (--help, --version, a
    # mistake) the table alone answers.
    command = next((a for a in argv if a in _NAMES), "")
    args = build_parser(command).parse_args(argv)
    func: Callable[[argparse.Namespace], Any] = args.func
    try:
        func(args)
    except CnnlabError as exc:
        return _fail(str(exc))
    except BrokenPipeError:  # the reader of stdout went away (`cnnlab models | head`)
        return 0
    except OSError as exc:  # a file or folder the user named cannot be read or written
        return _fail(_os_error(exc))
    except MemoryError:
        return _fail(_out_of_memory(""))
    except RuntimeError as exc:
        if not is_out_of_memory(exc):
            raise
        return _fail(_out_of_memory(str(exc)))
    except KeyboardInterrupt:
        sys.stderr.write("cnnlab: interrupted\n")
        return 130
    return 0


def _fail(message: str) -> int:
    line = " ".join(message.split())
    sys.stderr.write(f"cnnlab: error: {line}\n")
    return EXIT_USAGE


def _os_error(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device{where}: free space or write elsewhere"
    if exc.errno == errno.EDQUOT:
        return f"disk quota exceeded{where}: free space or write elsewhere"
    if isinstance(exc, PermissionError):
        return f"permission denied{where}: check the path's permissions, or use another path"
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}: write elsewhere"
    if isinstance(exc, FileExistsError):
        return f"something already exists there{where}: choose another path"
    if isinstance(exc, NotADirectoryError):
        return f"a part of the path is a file, not a folder{where}: choose another path"
    if isinstance(exc, IsADirectoryError):
        return f"a folder, not a file{where}: give the path of a file"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder{where}: check the path"
    return f"{exc.strerror or exc}{where}: check the path and its permissions"


def _out_of_memory(detail: str) -> str:
    what = "GPU memory" if "cuda" in detail.lower() else "memory"
    wanted = re.search(r"tried to allocate (\d+) bytes", detail, re.IGNORECASE)
    if wanted:
        size = f" (one allocation of {human_bytes(int(wanted.group(1)))})"
    else:
        given = re.search(r"tried to allocate ([\d.]+ ?[KMGTP]i?B)", detail, re.IGNORECASE)
        size = f" (one allocation of {given.group(1)})" if given else ""
    return f"out of {what}{size}: use a smaller input, batch or model"
