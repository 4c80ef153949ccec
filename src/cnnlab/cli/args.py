"""What the commands share to read their arguments: the parser, value types and common flags.

Nothing here imports torch: the dispatcher and ``cnnlab calc`` use this module.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from cnnlab.errors import CnnlabError
from cnnlab.limits import MAX_CHANNELS, MAX_CLASSES
from cnnlab.shapes import parse_shape

EXIT_USAGE = 2
JSON_HELP = "print one JSON document on stdout and nothing else"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (cause and where to look), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def hyper(text: str) -> int | tuple[int, ...]:
    """'3' -> 3, '3x5' -> (3, 5): a per-axis integer argument."""
    try:
        values = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or per-axis integers like 3x5, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def padding(text: str) -> int | tuple[int, ...] | str:
    if text.lower() in ("same", "valid"):
        return text.lower()
    try:
        return hyper(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer, per-axis integers, 'same' or 'valid', got {text!r}") from None


def shape(text: str) -> tuple[int, ...]:
    try:
        return parse_shape(text)
    except CnnlabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def count(low: int, high: int | None = None, example: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            where = f"at least {low}" if high is None else f"from {low} to {high:,}"
            hint = f": e.g. {example}" if example else ""
            raise argparse.ArgumentTypeError(f"must be {where}, got {value}{hint}")
        return value

    return parse


def finite(text: str) -> float:
    """An argparse type: a finite number (no nan, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive(text: str) -> float:
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


CLASSES = count(1, MAX_CLASSES, "10")
CHANNELS = count(1, MAX_CHANNELS, "3")
BATCH = count(1, 2**20, "64")


def add_json_flag(parser: argparse._ActionsContainer, help_text: str = JSON_HELP) -> None:
    """``--json`` on a parser or a group of exclusive flags."""
    parser.add_argument("--json", action="store_true", help=help_text)


def add_output_flags(p: argparse.ArgumentParser, explain: bool = True) -> None:
    add_json_flag(p)
    if explain:
        p.add_argument("--explain", action="store_true", help="print every formula with the numbers substituted")


def add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=CLASSES, default=None, help="classes of the output layer")
    p.add_argument("--in-channels", type=CHANNELS, default=None, help="channels of the input (1 for grayscale)")
    p.add_argument("--weights", default=None, metavar="PATH", help="state_dict file to load (.pt/.pth/.safetensors)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an architecture option, e.g. --set small_input=true --set shortcut=B")


def network_options(args: argparse.Namespace | None) -> dict[str, Any]:
    """The architecture flags ``args`` carries, as :func:`cnnlab.sources.resolve` takes them."""
    # Imported here: it loads torch, and this module must not (the dispatcher and calc use it).
    from cnnlab.models.source import parse_options

    return {"num_classes": getattr(args, "num_classes", None), "in_channels": getattr(args, "in_channels", None),
            "weights": getattr(args, "weights", None), "options": parse_options(getattr(args, "set", None) or [])}


def source(spec: str, kinds: tuple[str, ...], command: str, args: argparse.Namespace | None = None) -> Any:
    """The network ``spec`` names (see cnnlab.sources), with the architecture flags ``args`` carries."""
    from cnnlab.sources import resolve  # loads torch, as above

    return resolve(spec, kinds, command=command, **network_options(args))


def input_of(source: Any, given: tuple[int, ...] | None) -> tuple[int, ...]:
    """The input size: the one given, else the model's default."""
    if given is not None:
        return given
    if source.default_input is None:
        raise CnnlabError(f"{source.spec} does not say what input it takes: give --input CxHxW, e.g. 3x224x224")
    return source.default_input
