"""Printing for the CLI: tables to stdout, progress and messages to stderr, JSON alone.

When a command runs with ``--json`` it prints exactly one JSON document on stdout and
nothing else there; everything meant for a person goes through :data:`err` (stderr).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

# Piped output is not wrapped at rich's default 80 columns: tables stay one row per line.
_WIDE = 160
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _WIDE)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _WIDE)


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def fmt_int(n: int | float | None) -> str:
    if n is None:
        return "-"
    return f"{int(n):,}"


def fmt_macs(n: int) -> str:
    """Multiply-accumulates in G (billions) or, below 0.1 G, in M (millions)."""
    return f"{n / 1e9:.3f} G" if n >= 1e8 else f"{n / 1e6:.2f} M"


def fmt_shape(shape: Sequence[int] | None) -> str:
    return "-" if shape is None else "x".join(str(s) for s in shape)


def table(title: str | None, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]],
          footer: Sequence[str] | None = None) -> Table:
    """A plain table; ``columns`` holds (header, justify) pairs."""
    t = Table(title=title, title_justify="left", show_footer=footer is not None, header_style="bold",
              pad_edge=False, box=None)
    for i, (header, justify) in enumerate(columns):
        t.add_column(header, justify=justify, footer=(footer[i] if footer else ""), no_wrap=justify == "right")
    for row in rows:
        t.add_row(*row)
    return t
