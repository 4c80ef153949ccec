"""Convolution and pooling by hand: every window, what it holds and what it gives, written out.

    >>> from cnnlab.scratch.explain import explain_convolution, explain_pooling
    >>> result = explain_convolution()          # the classic 5x5 input and 3x3 kernel
    >>> result.output
    [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    >>> print(result.render())                  # doctest: +SKIP
    >>> explain_pooling("1,3,2,4;5,6,1,2;7,2,3,1;0,1,4,8", 2, modes="all").outputs["max"]
    [[6, 4], [7, 8]]

The arithmetic is done on Python numbers, so integer inputs give exact integer answers. The
operation is what deep-learning libraries call convolution (strictly, cross-correlation: the
kernel is not flipped), with zero padding, stride and dilation as in ``torch.nn.Conv2d``.
Pooled values come from the engine's own pooling (:func:`cnnlab.scratch.functional.maxpool2d`
and :func:`~cnnlab.scratch.functional.avgpool2d`, PyTorch's rules), the output size and the
checks from :func:`cnnlab.shapes.pool`; this module writes out what each window holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab import shapes
from cnnlab.errors import CnnlabError
from cnnlab.scratch.functional import IntPair, avgpool2d, conv_output_size, maxpool2d, pair

__all__ = [
    "DEFAULT_INPUT",
    "DEFAULT_KERNEL",
    "POOL_MODES",
    "Explanation",
    "Placement",
    "PoolExplanation",
    "Window",
    "explain_convolution",
    "explain_pooling",
    "parse_matrix",
]

Number = int | float
Matrix = list[list[Number]]

# The 5x5 binary image and 3x3 "X" kernel of many a textbook figure; the answer is
# [[4, 3, 4], [2, 4, 3], [2, 3, 4]].
DEFAULT_INPUT: Matrix = [
    [1, 1, 1, 0, 0],
    [0, 1, 1, 1, 0],
    [0, 0, 1, 1, 1],
    [0, 0, 1, 1, 0],
    [0, 1, 1, 0, 0],
]
DEFAULT_KERNEL: Matrix = [
    [1, 0, 1],
    [0, 1, 0],
    [1, 0, 1],
]

# Large enough for every classroom example, small enough that the text stays readable.
MAX_SIDE = 32
MAX_VALUE = 1e15  # products of a 32x32 window stay below 1e33: finite, and exact for whole numbers this size


def _number(token: str, what: str) -> Number:
    try:
        return _in_range(int(token), what)
    except ValueError:
        pass
    try:
        value = float(token)
    except ValueError:
        raise CnnlabError(f"{what}: {token[:40]!r} is not a number (write rows like '1,2,3;4,5,6')") from None
    if not math.isfinite(value):
        raise CnnlabError(f"{what}: {token[:40]!r} is not a finite number")
    return _in_range(value, what)


def _in_range(value: Number, what: str) -> Number:
    """A number small enough that every product and sum of a written-out example stays exact and finite."""
    if abs(value) > MAX_VALUE:
        raise CnnlabError(f"{what} holds {fmt(value)[:40]}: explain is for small examples, use numbers of at "
                          f"most {MAX_VALUE:.0e} in size")
    return value


def parse_matrix(text: str, what: str = "matrix") -> Matrix:
    """Rows separated by ';' (or new lines), values by ',' (or spaces): "1,2,3;4,5,6" -> [[1,2,3],[4,5,6]].

    Whole numbers stay ``int`` so the arithmetic stays exact; others become ``float``.
    """
    rows = [row.strip() for row in re.split(r"[;\n]", text.strip()) if row.strip()]
    if not rows:
        raise CnnlabError(f"{what} is empty: write rows like '1,2,3;4,5,6'")
    matrix = [[_number(tok, what) for tok in re.split(r"[,\s]+", row) if tok] for row in rows]
    return _check_matrix(matrix, what)


def _check_matrix(values: Any, what: str) -> Matrix:
    """A rectangular, non-empty list of lists of Python numbers from nested sequences or an array."""
    if isinstance(values, str):
        return parse_matrix(values, what)
    if hasattr(values, "tolist"):  # a NumPy array (or a tensor)
        values = values.tolist()
    try:
        matrix = [[_as_number(v, what) for v in row] for row in values]
    except TypeError:
        raise CnnlabError(f"{what} must be a 2-D grid of numbers, e.g. '1,2,3;4,5,6'") from None
    if not matrix or not matrix[0]:
        raise CnnlabError(f"{what} is empty: write rows like '1,2,3;4,5,6'")
    widths = sorted({len(row) for row in matrix})
    if len(widths) > 1:
        raise CnnlabError(f"{what}: every row needs the same number of values, got rows of {widths} values")
    if len(matrix) > MAX_SIDE or widths[0] > MAX_SIDE:
        raise CnnlabError(
            f"{what} is {len(matrix)}x{widths[0]}: explain is for small examples, at most {MAX_SIDE}x{MAX_SIDE}"
        )
    return matrix


def _as_number(value: Any, what: str) -> Number:
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # a NumPy scalar
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(what)
    if isinstance(value, float) and not math.isfinite(value):
        raise CnnlabError(f"{what} contains {value}, not a finite number")
    return _in_range(value, what)


def fmt(value: Number) -> str:
    """How a number is written in the explanation: 3, 0.5, -2 (floats without trailing zeros)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _factor(value: Number) -> str:
    text = fmt(value)
    return f"({text})" if text.startswith("-") else text


@dataclass
class Placement:
    """One position of the kernel: where it sits, what it sees, and the inner product."""

    output: tuple[int, int]  # (row, column) of the output value this placement computes
    rows: list[int]  # rows of the padded input under the kernel rows
    cols: list[int]  # columns of the padded input under the kernel columns
    window: Matrix  # the input values under the kernel
    products: list[tuple[Number, Number]]  # (input value, kernel value), row by row
    bias: Number
    value: Number  # sum of the products plus the bias

    def expression(self) -> str:
        """'1*1 + 1*0 + ... = 4': the inner product written out."""
        text = " + ".join(f"{_factor(a)}*{_factor(b)}" for a, b in self.products)
        if self.bias:
            text += f" + bias {_factor(self.bias)}"
        return f"{text} = {fmt(self.value)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": list(self.output),
            "rows": self.rows,
            "cols": self.cols,
            "window": self.window,
            "products": [list(p) for p in self.products],
            "bias": self.bias,
            "value": self.value,
            "expression": self.expression(),
        }


@dataclass
class Explanation:
    """The whole computation: inputs, settings, output-size formulas, placements, output grid."""

    input: Matrix
    kernel: Matrix
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    bias: Number
    padded: Matrix
    output: Matrix
    placements: list[Placement] = field(default_factory=list)
    size_formulas: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "kernel": self.kernel,
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "bias": self.bias,
            "padded_input": self.padded,
            "output_size": [len(self.output), len(self.output[0])],
            "output_size_formulas": self.size_formulas,
            "placements": [p.to_dict() for p in self.placements],
            "output": self.output,
        }

    def render(self) -> str:
        """Plain text: settings, then every placement with the window marked, then the output."""
        kh, kw = len(self.kernel), len(self.kernel[0])
        oh, ow = len(self.output), len(self.output[0])
        lines = [
            f"Convolution of a {len(self.input)}x{len(self.input[0])} input with a {kh}x{kw} kernel: "
            f"stride {_hw(self.stride)}, padding {_hw(self.padding)}"
            + (f", dilation {_hw(self.dilation)}" if self.dilation != (1, 1) else "")
            + (f", bias {fmt(self.bias)}" if self.bias else ""),
            "Each output value is the inner product of the kernel with the input window under it"
            + (" plus the bias." if self.bias else "."),
            *self.size_formulas,
            "",
        ]
        top = ["input" + (" (zero padded)" if self.padding != (0, 0) else "")]
        lines += _side_by_side(
            [top + _grid(self.padded), ["kernel", *_grid(self.kernel)]], gap=6
        )
        lines.append("")
        filled: list[list[str]] = [["." for _ in range(ow)] for _ in range(oh)]
        for number, placement in enumerate(self.placements, 1):
            i, j = placement.output
            filled[i][j] = fmt(placement.value)
            lines.append(
                f"Placement {number} of {len(self.placements)}: output[{i}][{j}] <- padded input rows "
                f"{_span(placement.rows)}, columns {_span(placement.cols)}"
            )
            marked = _grid(self.padded, marked=(set(placement.rows), set(placement.cols)))
            lines += _side_by_side(
                [["input [window]", *marked], ["kernel", *_grid(self.kernel)], ["output", *_grid(filled)]],
                gap=4,
            )
            lines.append("  " + placement.expression())
            lines.append("")
        lines.append(f"Output ({oh}x{ow}):")
        lines += ["  " + row for row in _grid(self.output)]
        return "\n".join(lines)


def _hw(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _span(indices: list[int]) -> str:
    if len(indices) == 1:
        return str(indices[0])
    step = indices[1] - indices[0]
    text = f"{indices[0]}-{indices[-1]}"
    return text if step == 1 else f"{text} (every {step})"


def _grid(matrix: Sequence[Sequence[Any]], marked: tuple[set[int], set[int]] | None = None) -> list[str]:
    """A right-aligned text grid; with ``marked`` (rows, cols) those cells are shown as [v]."""
    cells = [[x if isinstance(x, str) else fmt(x) for x in row] for row in matrix]
    width = max(len(c) for row in cells for c in row)
    if marked is None:
        return [" ".join(text.rjust(width) for text in row) for row in cells]
    rows, cols = marked
    return [
        "".join(
            f"[{text.rjust(width)}]" if r in rows and c in cols else f" {text.rjust(width)} "
            for c, text in enumerate(row)
        )
        for r, row in enumerate(cells)
    ]


def _side_by_side(blocks: list[list[str]], gap: int = 4) -> list[str]:
    widths = [max(len(line) for line in block) for block in blocks]
    height = max(len(block) for block in blocks)
    out = []
    for r in range(height):
        parts = [(block[r] if r < len(block) else "").ljust(w) for block, w in zip(blocks, widths, strict=True)]
        out.append("  " + (" " * gap).join(parts).rstrip())
    return out


def _size_formula(axis: str, size: int, k: int, s: int, p: int, d: int) -> str:
    out = conv_output_size(size, k, s, p, d)
    span = f"{d}*({k}-1)" if d != 1 else f"({k}-1)"
    return f"{axis} = floor(({size} + 2*{p} - {span} - 1)/{s}) + 1 = {out}"


def explain_convolution(
    input: Any = None,
    kernel: Any = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    bias: Number = 0,
    dilation: IntPair = 1,
) -> Explanation:
    """Compute a single-channel convolution placement by placement and record every step.

    Args:
        input: 2-D grid of numbers: nested lists, a NumPy array or text like "1,2,3;4,5,6".
            Default: :data:`DEFAULT_INPUT` (5x5).
        kernel: the same for the kernel. Default: :data:`DEFAULT_KERNEL` (3x3).
        stride, padding, dilation: one integer or (rows, columns), as in ``torch.nn.Conv2d``;
            padding adds a border of zeros.
        bias: added to every output value.
    """
    image = _check_matrix(DEFAULT_INPUT if input is None else input, "input")
    weights = _check_matrix(DEFAULT_KERNEL if kernel is None else kernel, "kernel")
    if isinstance(bias, str):
        bias = _number(bias, "bias")
    else:
        try:
            bias = _as_number(bias, "bias")
        except TypeError:
            raise CnnlabError(f"bias must be a number, got {bias!r}") from None
    stride, padding, dilation = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise CnnlabError(f"need stride >= 1, dilation >= 1, padding >= 0; got {stride}, {dilation}, {padding}")
    if max(padding) > MAX_SIDE:
        raise CnnlabError(f"padding {_hw(padding)} is too large for a written-out example: use at most {MAX_SIDE} "
                          "per side")
    h, w = len(image), len(image[0])
    kh, kw = len(weights), len(weights[0])
    oh = conv_output_size(h, kh, stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kw, stride[1], padding[1], dilation[1])
    if oh < 1 or ow < 1:
        raise CnnlabError(
            f"the {kh}x{kw} kernel (dilation {_hw(dilation)}) does not fit the {h + 2 * padding[0]}x"
            f"{w + 2 * padding[1]} padded input: use a smaller kernel or more padding"
        )
    ph, pw = padding
    padded: Matrix = [[0] * (w + 2 * pw) for _ in range(ph)]
    padded += [[0] * pw + list(row) + [0] * pw for row in image]
    padded += [[0] * (w + 2 * pw) for _ in range(ph)]

    placements = []
    output: Matrix = []
    for i in range(oh):
        out_row: list[Number] = []
        for j in range(ow):
            rows = [i * stride[0] + u * dilation[0] for u in range(kh)]
            cols = [j * stride[1] + v * dilation[1] for v in range(kw)]
            window = [[padded[r][c] for c in cols] for r in rows]
            products = [(window[u][v], weights[u][v]) for u in range(kh) for v in range(kw)]
            value = sum(a * b for a, b in products) + bias
            placements.append(Placement((i, j), rows, cols, window, products, bias, value))
            out_row.append(value)
        output.append(out_row)
    formulas = [
        _size_formula("OH", h, kh, stride[0], ph, dilation[0]),
        _size_formula("OW", w, kw, stride[1], pw, dilation[1]),
    ]
    return Explanation(image, weights, stride, padding, dilation, bias, padded, output, placements, formulas)


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------

POOL_MODES = shapes.POOL_MODES  # max, avg, min; "all" asks for the three side by side
_POOL_NAMES = {"max": "MaxPool2d", "avg": "AvgPool2d", "min": "MinPool2d"}


@dataclass
class Window:
    """One pooling window: where it sits in the padded input, what it holds, what each mode gives."""

    output: tuple[int, int]  # (row, column) of the output values this window computes
    rows: list[int]  # rows of the padded input under the window
    cols: list[int]  # columns of the padded input under the window
    values: list[Number | None]  # the values it holds, row by row; None is a padding cell
    results: dict[str, Number]  # mode -> pooled value

    def _listed(self) -> str:
        return ", ".join("pad" if v is None else fmt(v) for v in self.values)

    def _avg(self) -> str:
        total = sum(v for v in self.values if v is not None)
        return f"{fmt(total)}/{len(self.values)} = {fmt(self.results['avg'])}"

    def expression(self, mode: str) -> str:
        """'max(1, 3, 5, 6) = 6', 'avg(1, 3, 5, 6) = 15/4 = 3.75': one mode's value written out."""
        value = self._avg() if mode == "avg" else fmt(self.results[mode])
        return f"{mode}({self._listed()}) = {value}"

    def describe(self) -> str:
        """The window's line: its place, then one mode's expression, or every mode's value."""
        where = f"window rows {_span(self.rows)}, cols {_span(self.cols)}: "
        if len(self.results) == 1:
            return where + self.expression(next(iter(self.results)))
        parts = [f"avg {self._avg()}" if m == "avg" else f"{m} {fmt(v)}" for m, v in self.results.items()]
        return where + f"({self._listed()}) -> " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"output": list(self.output), "rows": self.rows, "cols": self.cols, "values": self.values,
                "results": self.results, "expressions": {m: self.expression(m) for m in self.results}}


@dataclass
class PoolExplanation:
    """Pooling of one small grid: the layer (output size, formulas, notes), every window, the outputs."""

    input: Matrix
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    modes: tuple[str, ...]
    layer: shapes.LayerResult  # the first mode's layer: output shape, size formulas, coverage notes
    windows: list[Window]
    outputs: dict[str, Matrix]  # mode -> pooled grid

    def title(self) -> str:
        """'MaxPool2d(kernel 2x2, stride 2): 1x4x4 -> 1x2x2', or 'max, avg and min pooling (...)' for several."""
        settings = self.layer.description[self.layer.description.index("("):]
        if len(self.modes) == 1:
            name = _POOL_NAMES[self.modes[0]] + settings
        else:
            name = f"{', '.join(self.modes[:-1])} and {self.modes[-1]} pooling {settings}"
        return f"{name}: {shapes.fmt_shape(self.layer.input_shape)} -> {shapes.fmt_shape(self.layer.output_shape)}"

    def rules(self) -> list[str]:
        """The output-size formulas and, with padding, what a padding cell counts as."""
        lines = [line for line in self.layer.lines[1:] if line.startswith(("O = ", "OH = ", "OW = "))]
        if self.padding != (0, 0):
            lines.append(f"rows and columns count in the input padded by {_hw(self.padding)}; a padding cell (pad) "
                         "never wins max or min, and avg counts it as 0 in the sum and the divisor (PyTorch's "
                         "default, count_include_pad=True)")
        if "min" in self.modes:
            lines.append("min pooling = -maxpool(-x): the smallest value of each window")
        return lines

    def render(self, explain: bool = False) -> str:
        """Plain text: the layer, the input beside each pooled grid, then with ``explain`` every window."""
        blocks = [["input", *_grid(self.input)]] + [[mode, *_grid(self.outputs[mode])] for mode in self.modes]
        lines = [self.title(), *_side_by_side(blocks, gap=4)]
        if explain:
            lines += ["", *(f"  {line}" for line in self.rules()), *(f"  {w.describe()}" for w in self.windows)]
        lines += [f"  {note}" for note in self.layer.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "input_shape": list(self.layer.input_shape),
            "kernel": list(self.kernel),
            "stride": list(self.stride),
            "padding": list(self.padding),
            "dilation": list(self.dilation),
            "modes": list(self.modes),
            "output_shape": list(self.layer.output_shape),
            "outputs": self.outputs,
            "explain": self.rules(),
            "notes": list(self.layer.notes),
            "windows": [w.to_dict() for w in self.windows],
        }


def _two(value: IntPair) -> tuple[int, int]:
    """(rows, columns) of a setting :func:`cnnlab.shapes.pool` has accepted: 3, (3,) or (3, 5)."""
    values = (value,) if isinstance(value, int) else tuple(value)
    return (values[0], values[-1])


def _modes(mode: str | Sequence[str]) -> tuple[str, ...]:
    chosen = POOL_MODES if mode == "all" else (mode,) if isinstance(mode, str) else tuple(mode)
    for m in chosen:
        if m not in POOL_MODES:
            raise CnnlabError(f"pooling mode must be one of {', '.join(POOL_MODES)} or all, got {m!r}")
    if not chosen:
        raise CnnlabError(f"no pooling mode given: use one of {', '.join(POOL_MODES)} or all")
    return tuple(m for m in POOL_MODES if m in chosen)


def explain_pooling(
    values: Any,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    modes: str | Sequence[str] = "max",
    input_shape: Sequence[int] | None = None,
) -> PoolExplanation:
    """Pool a small single-channel grid window by window with max, average or min pooling.

    Args:
        values: 2-D grid of numbers: nested lists, a NumPy array or text like "1,3;5,6".
        kernel, stride, padding, dilation: one integer or (rows, columns), as in
            ``torch.nn.MaxPool2d``; the stride defaults to the kernel size. Average pooling has
            no dilation; padding is at most half the kernel.
        modes: "max", "avg", "min", a sequence of them, or "all".
        input_shape: the shape the caller expects, e.g. (1, 4, 4); it must be the grid's.
    """
    grid = _check_matrix(values, "values")
    chosen = _modes(modes)
    h, w = len(grid), len(grid[0])
    if input_shape is not None and tuple(input_shape) != (1, h, w):
        raise CnnlabError(f"the input shape {shapes.fmt_shape(input_shape)} does not match the values, a {h}x{w} "
                          f"grid (1x{h}x{w}): give 1x{h}x{w} or leave the shape out")
    # The calculator checks the layer by PyTorch's rules (one clear line when it cannot be built).
    layers = [shapes.pool((1, h, w), kernel, stride, padding, dilation, mode=m) for m in chosen]
    layer = layers[0]
    (kh, kw), dil = _two(kernel), _two(dilation)
    step, pads = _two(layer.rf_stride), _two(layer.rf_padding)
    x = np.asarray(grid, dtype=np.float64)[None, None]
    whole = all(isinstance(v, int) for row in grid for v in row)
    outputs: dict[str, Matrix] = {}
    for m in chosen:
        pooled = (avgpool2d(x, (kh, kw), step, pads) if m == "avg"
                  else maxpool2d(x, (kh, kw), step, pads, dil, mode="min" if m == "min" else "max"))
        # Max and min pick one of the values: whole numbers in, whole numbers out.
        as_int = whole and m != "avg"
        outputs[m] = [[int(v) if as_int else float(v) for v in row] for row in pooled[0, 0].tolist()]
    oh, ow = layer.output_shape[1], layer.output_shape[2]
    windows = []
    for i in range(oh):
        for j in range(ow):
            rows = [i * step[0] + u * dil[0] for u in range(kh)]
            cols = [j * step[1] + v * dil[1] for v in range(kw)]
            held: list[Number | None] = [
                grid[r - pads[0]][c - pads[1]] if 0 <= r - pads[0] < h and 0 <= c - pads[1] < w else None
                for r in rows for c in cols
            ]
            windows.append(Window((i, j), rows, cols, held, {m: outputs[m][i][j] for m in chosen}))
    return PoolExplanation(grid, (kh, kw), step, pads, dil, chosen, layer, windows, outputs)
