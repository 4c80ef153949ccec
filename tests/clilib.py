"""The `cnnlab` command's leaves (e.g. ``calc conv``, ``viz pool``), for tests that must cover each one."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from cnnlab.cli import build_parser


def leaf_parsers(parser: argparse.ArgumentParser | None = None,
                 path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Each command without subcommands, as (its words, its parser)."""
    parser = parser or build_parser(None)
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for action in subs:
        for name, child in action.choices.items():
            yield from leaf_parsers(child, (*path, name))
