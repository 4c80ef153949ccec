"""Printing for the CLI: tables to stdout, progress and messages to stderr, JSON alone.

When a command runs with ``--json`` it prints exactly one JSON document on stdout and
nothing else there; everything meant for a person goes through :data:`err` (stderr).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from cnnlab.shapes import fmt_shape

# Piped output is not wrapped at rich's default 80 columns: tables stay one row per line.
_WIDE = 160
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _WIDE)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _WIDE)


def json_text(document: Any, indent: int | None = None) -> str:
    """A document as JSON that every reader (a browser's included) can parse.

    JSON has no NaN or infinity: such a number is written as null, and a dictionary document
    gets a ``non_finite`` note saying how many there were and where the first ones are.
    """
    separators = (",", ":") if indent is None else None
    try:
        return json.dumps(document, indent=indent, separators=separators, allow_nan=False)
    except ValueError:
        pass
    where: list[str] = []
    clean = _finite(document, "", where)
    if isinstance(clean, dict):
        clean = {**clean, "non_finite": {
            "count": len(where), "at": where[:10],
            "note": "numbers that were not finite are written as null: JSON has no such numbers"}}
    return json.dumps(clean, indent=indent, separators=separators, allow_nan=False)


def _finite(value: Any, path: str, where: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        where.append(f"{path or '.'}: {value}")
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{path}[{i}]", where) for i, v in enumerate(value)]
    return value


def print_json(document: Any) -> None:
    """One JSON document on stdout, nothing else."""
    sys.stdout.write(json_text(document, indent=2) + "\n")
    sys.stdout.flush()


def fmt_int(n: int | float | None) -> str:
    if n is None:
        return "-"
    return f"{int(n):,}"


def fmt_count(n: int | None) -> str:
    """A small count as it is; None (not known) as unknown."""
    return "unknown" if n is None else str(n)


def fmt_macs(n: int | None) -> str:
    """Multiply-accumulates in G (billions) or, below 0.1 G, in M (millions); None (not known) as unknown."""
    if n is None:
        return "unknown"
    return f"{n / 1e9:.3f} G" if n >= 1e8 else f"{n / 1e6:.3f} M"


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


def _rf_text(row: Any) -> str:
    rf = row.receptive_field
    if rf is None:
        return "-"
    text = fmt_shape(rf.size)
    return text + " (all)" if row.covers_input else text


def print_stack(result: Any, explain: bool = False, title: str | None = None) -> None:
    """The table of a stack: shape, parameters, MACs and receptive field per layer, with totals."""
    rows = []
    for i, row in enumerate(result.rows, 1):
        layer = row.layer
        jump = "-" if row.receptive_field is None else fmt_shape(row.receptive_field.stride)
        rows.append([str(i), layer.description, fmt_shape(layer.output_shape), fmt_int(layer.params),
                     fmt_int(layer.macs), _rf_text(row), jump])
    rf = result.receptive_field
    footer = ["", "total", fmt_shape(result.output_shape), fmt_int(result.params), fmt_int(result.macs),
              "-" if rf is None else fmt_shape(rf.size), ""]
    out.print(table(
        title or f"input {fmt_shape(result.input_shape)}",
        [("#", "right"), ("layer", "left"), ("output", "left"), ("params", "right"), ("MACs", "right"),
         ("RF", "right"), ("jump", "right")],
        rows, footer,
    ))
    if explain:
        for i, row in enumerate(result.rows, 1):
            out.print(f"\n[bold]{i}. {row.spec}[/bold]")
            for line in (*row.layer.lines, *row.layer.notes):
                out.print(f"  {line}", markup=False)
            if row.receptive_field is not None and row.layer.rf_kernel is not None:
                rfv = row.receptive_field
                out.print(f"  RF = {fmt_shape(rfv.size)}, jump {fmt_shape(rfv.stride)}, "
                          f"effective padding {fmt_shape(rfv.padding)}", markup=False)
    else:
        for i, row in enumerate(result.rows, 1):
            for note in row.layer.notes:
                out.print(f"  layer {i}: {note}", markup=False)
