"""Convolution with the classic hand-made kernels on a real photo, and step by step on a small grid.

    >>> from cnnlab.viz.kernels import apply_kernel, draw_kernel
    >>> out = apply_kernel(image, "box3")                       # doctest: +SKIP
    >>> draw_kernel(None, "sobel-x", "sobel.png", padding=1)   # doctest: +SKIP

The operation is PyTorch's (cross-correlation: the kernel is not flipped) on the image's
luma, ``0.299 R + 0.587 G + 0.114 B``.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle

from cnnlab.errors import CnnlabError
from cnnlab.scratch.explain import (
    Explanation,
    explain_convolution,
    explain_pooling,
    fmt,
    parse_matrix,
)
from cnnlab.viz.common import ImageLike, as_image, new_figure, save_figure

__all__ = [
    "CLASSIC_KERNELS",
    "PADDING_MODES",
    "Kernel",
    "apply_kernel",
    "draw_conv_steps",
    "draw_kernel",
    "draw_pooling",
    "resolve_kernel",
    "to_gray",
]

_BINOMIAL5 = np.array([1, 4, 6, 4, 1], dtype=np.float64)

# name -> (integer numerators, denominator): written in the cells as integers with "x 1/d".
_CLASSIC: dict[str, tuple[np.ndarray, int]] = {
    "box3": (np.ones((3, 3)), 9),
    "gaussian5": (np.outer(_BINOMIAL5, _BINOMIAL5), 256),
    "sobel-x": (np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64), 1),
    "sobel-y": (np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64), 1),
    "laplacian": (np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64), 1),
    "sharpen": (np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64), 1),
}
CLASSIC_KERNELS: dict[str, np.ndarray] = {name: num / den for name, (num, den) in _CLASSIC.items()}

# Our name -> torch.nn.functional.pad mode.
PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Kernel:
    """A kernel with a name for titles and, for the classic ones, integer numerators over a denominator."""

    name: str
    values: np.ndarray
    denominator: int = 1


def resolve_kernel(spec: Any) -> Kernel:
    """A classic kernel name, rows like "1,0,-1;2,0,-2;1,0,-1", or a 2-D array/list."""
    if isinstance(spec, Kernel):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in _CLASSIC:
            num, den = _CLASSIC[key]
            return Kernel(key, num / den, den)
        try:
            float(key)
            is_number = True
        except ValueError:
            is_number = False
        if not is_number and not any(sep in key for sep in ",; \n"):
            raise CnnlabError(f"unknown kernel {spec!r}: use {', '.join(_CLASSIC)} or rows like '1,0,-1;2,0,-2;1,0,-1'")
        return Kernel("custom", np.array(parse_matrix(spec, "kernel"), dtype=np.float64))
    try:
        values = np.asarray(spec, dtype=np.float64)
    except (TypeError, ValueError):
        raise CnnlabError("a kernel must be a name, rows like '1,0,-1;2,0,-2;1,0,-1' or a 2-D array") from None
    if values.ndim != 2 or values.size == 0 or not np.isfinite(values).all():
        raise CnnlabError(f"a kernel must be a non-empty 2-D grid of finite numbers, got shape {values.shape}")
    return Kernel("custom", values)


def to_gray(image: ImageLike) -> np.ndarray:
    """An image (path, uint8 C x H x W, or H x W) as a float H x W array of luma, 0..255 for uint8 input."""
    img = as_image(image)
    x = img.double()
    if x.shape[0] == 3:
        x = (x * torch.tensor(LUMA, dtype=torch.float64).view(3, 1, 1)).sum(0, keepdim=True)
    return x[0].numpy()


def apply_kernel(image: ImageLike, kernel: Any, stride: int = 1, padding: int = 0,
                 padding_mode: str = "zeros") -> np.ndarray:
    """Convolve the image's luma with one kernel; returns the float64 output array.

    ``padding`` is added on every side, filled as ``padding_mode`` says: ``zeros``, ``reflect``
    (mirror without repeating the edge), ``replicate`` (repeat the edge) or ``circular`` (wrap).
    """
    k = resolve_kernel(kernel)
    if padding_mode not in PADDING_MODES:
        raise CnnlabError(f"unknown padding mode {padding_mode!r}: use {', '.join(PADDING_MODES)}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise CnnlabError(f"stride must be a positive integer, got {stride!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise CnnlabError(f"padding must be a non-negative integer, got {padding!r}")
    gray = to_gray(image)
    h, w = gray.shape
    kh, kw = k.values.shape
    if padding_mode == "reflect" and padding >= min(h, w):
        raise CnnlabError(f"reflect padding {padding} needs an image larger than {padding} pixels, got {h}x{w}")
    if h + 2 * padding < kh or w + 2 * padding < kw:
        raise CnnlabError(f"the {kh}x{kw} kernel does not fit the {h + 2 * padding}x{w + 2 * padding} "
                          "padded image: use a smaller kernel or more padding")
    x = torch.from_numpy(gray).view(1, 1, h, w)
    if padding:
        mode = PADDING_MODES[padding_mode]
        x = F.pad(x, (padding,) * 4, mode=mode, value=0.0) if mode == "constant" else F.pad(x, (padding,) * 4, mode=mode)
    weight = torch.from_numpy(np.ascontiguousarray(k.values)).view(1, 1, kh, kw)
    return F.conv2d(x, weight, stride=stride)[0, 0].numpy()


def _cell_text(value: float, denominator: int) -> str:
    scaled = value * denominator
    if abs(scaled - round(scaled)) < 1e-9:
        return str(round(scaled))
    return f"{value:.3g}"


def draw_kernel(image: ImageLike, kernel: Any = "box3", out: str | Path = "kernel.png", stride: int = 1,
                padding: int = 0, padding_mode: str = "zeros") -> Path:
    """Input | kernel with its numbers | output, side by side, with the output-size formula.

    ``image`` is a path, a tensor or ``None`` for the sample photo. The figure is 1500x560 px.
    """
    k = resolve_kernel(kernel)
    gray = to_gray(image)
    result = apply_kernel(gray, k, stride, padding, padding_mode)
    h, w = gray.shape
    kh, kw = k.values.shape
    oh, ow = result.shape

    fig = new_figure(1500, 560)
    ax_in, ax_k, ax_out = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 0.7, 1]})
    scale = 255 if gray.max() > 1 else 1
    ax_in.imshow(gray, cmap="gray", vmin=0, vmax=scale)
    pad_text = f", padding {padding} ({padding_mode})" if padding else ""
    ax_in.set_title(f"input {h}x{w} (luma){pad_text}", fontsize=11)

    vmax = float(np.abs(k.values).max()) or 1.0
    ax_k.imshow(k.values, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    if max(kh, kw) <= 9:
        size = 14 if max(kh, kw) <= 3 else 10 if max(kh, kw) <= 5 else 7
        for i in range(kh):
            for j in range(kw):
                ax_k.text(j, i, _cell_text(k.values[i, j], k.denominator), ha="center", va="center",
                          fontsize=size, color="white" if abs(k.values[i, j]) > 0.6 * vmax else "black")
    scale_text = f" x 1/{k.denominator}" if k.denominator != 1 else ""
    ax_k.set_title(f"kernel {k.name} {kh}x{kw}{scale_text}, stride {stride}", fontsize=11)
    ax_k.set_xticks(range(kw))
    ax_k.set_yticks(range(kh))

    ax_out.imshow(result, cmap="gray")
    formulas = [f"H: floor(({h} + 2*{padding} - {kh})/{stride}) + 1 = {oh}"]
    if (w, kw) != (h, kh):
        formulas.append(f"W: floor(({w} + 2*{padding} - {kw})/{stride}) + 1 = {ow}")
    else:
        formulas = [f"= floor(({h} + 2*{padding} - {kh})/{stride}) + 1"]
    ax_out.set_title(f"output {oh}x{ow}" + ("\n" if len(formulas) > 1 else " ") + "\n".join(formulas)
                     + f"\nrange {result.min():.4g} .. {result.max():.4g}", fontsize=10)
    for ax in (ax_in, ax_out):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Convolution: each output pixel is the inner product of the kernel with the window under it",
                 fontsize=12)
    fig.tight_layout()
    return save_figure(fig, out)


def _draw_grid(ax: Any, values: list[list[Any]], x0: float, y0: float, cell: float, fontsize: float,
               shade: set[tuple[int, int]] = frozenset(), color: str = "#ffd54f", border: int = 0,
               fill: dict[tuple[int, int], str] | None = None, text: Any = fmt) -> None:
    """A grid of numbers with its top-left corner at (x0, y0); ``None`` cells are drawn empty.

    Cells in ``shade`` take ``color``; ``fill`` gives cells colours of their own; ``text`` writes a value.
    """
    rows, cols = len(values), len(values[0])
    for i in range(rows):
        for j in range(cols):
            is_pad = border and (i < border or j < border or i >= rows - border or j >= cols - border)
            face = color if (i, j) in shade else (fill or {}).get((i, j), "#eeeeee" if is_pad else "white")
            ax.add_patch(Rectangle((x0 + j * cell, y0 + i * cell), cell, cell, facecolor=face,
                                   edgecolor="#888888", linewidth=0.6))
            if values[i][j] is not None:
                ax.text(x0 + (j + 0.5) * cell, y0 + (i + 0.5) * cell, text(values[i][j]), ha="center",
                        va="center", fontsize=fontsize, color="#999999" if is_pad else "black")


def draw_conv_steps(input: Any = None, kernel: Any = None, stride: int = 1, padding: int = 0,
                    out: str | Path = "conv-steps.png", max_panels: int = 16) -> Path:
    """One panel per kernel placement: window on the padded input, inner product, output filling in.

    The defaults are the classic 5x5 input and 3x3 kernel (output [[4,3,4],[2,4,3],[2,3,4]]).
    At most ``max_panels`` placements are drawn (the title says so). The figure is
    ``400*cols`` x ``340*rows + 120`` px with ``cols = min(n, 3)`` for ``n`` panels.
    """
    ex: Explanation = explain_convolution(input, kernel, stride=stride, padding=padding)
    shown = ex.placements[:max_panels]
    n = len(shown)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = new_figure(400 * cols, 340 * rows + 120)
    ph, pw = len(ex.padded), len(ex.padded[0])
    oh, ow = len(ex.output), len(ex.output[0])
    kh, kw = len(ex.kernel), len(ex.kernel[0])
    span = max(ph, oh, 1)
    total_w = pw + 1 + ow
    cell = 1.0
    fontsize = max(5.0, min(11.0, 80.0 / max(total_w, span)))
    filled: list[list[Any]] = [[None] * ow for _ in range(oh)]
    for idx, p in enumerate(shown):
        ax = fig.add_subplot(rows, cols, idx + 1)
        i, j = p.output
        window = {(r, c) for r in p.rows for c in p.cols}
        _draw_grid(ax, ex.padded, 0, 0, cell, fontsize, window, border=ex.padding[0] if ex.padding[0] == ex.padding[1] else 0)
        filled[i][j] = p.value
        _draw_grid(ax, filled, pw + 1, 0, cell, fontsize, {(i, j)}, color="#81c784")
        ax.add_patch(Rectangle((min(p.cols), min(p.rows)), max(p.cols) - min(p.cols) + 1,
                               max(p.rows) - min(p.rows) + 1, fill=False, edgecolor="#d32f2f", linewidth=2))
        ax.set_xlim(-0.2, total_w + 0.2)
        ax.set_ylim(span + 0.2, -0.2)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"step {idx + 1}: output[{i}][{j}] = {fmt(p.value)}", fontsize=10)
        text = "\n".join(textwrap.wrap(p.expression(), 52)[:4])
        ax.text(0.5, -0.02, text, transform=ax.transAxes, ha="center", va="top", fontsize=7,
                family="monospace")
    note = f"  (first {n} of {len(ex.placements)} placements shown)" if n < len(ex.placements) else ""
    kernel_text = "; ".join(",".join(fmt(v) for v in row) for row in ex.kernel)
    fig.suptitle(
        f"{len(ex.input)}x{len(ex.input[0])} input, {kh}x{kw} kernel [{kernel_text}], stride {_hw(ex.stride)}, "
        f"padding {_hw(ex.padding)} -> {oh}x{ow} output{note}\n" + "    ".join(ex.size_formulas),
        fontsize=10)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 110 / (340 * rows + 120), bottom=0.02,
                        hspace=0.45, wspace=0.08)
    return save_figure(fig, out)


def _hw(values: tuple[int, int]) -> str:
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


_WINDOW_COLOURS = ("#ffe0b2", "#c8e6c9", "#bbdefb", "#f8bbd0", "#d1c4e9", "#fff9c4", "#b2dfdb", "#ffccbc")


def draw_pooling(values: Any, kernel: Any = 2, stride: Any = None, padding: Any = 0,
                 out: str | Path = "pooling.png") -> Path:
    """A small grid pooled three ways: the input with its windows, then max, average and min pooling.

    Each output cell has the colour of the window it pools (windows that overlap take the later
    colour on the input; the red frame is the first window). The values are
    :func:`cnnlab.scratch.explain.explain_pooling`'s, which ``cnnlab calc pool --values`` prints.
    """
    ex = explain_pooling(values, kernel, stride, padding, modes="all")
    grid = ex.input
    h, w = len(grid), len(grid[0])
    ph, pw = ex.padding

    def cells(window: Any) -> list[tuple[int, int]]:  # the window's cells of the unpadded input
        return [(r - ph, c - pw) for r in window.rows for c in window.cols if 0 <= r - ph < h and 0 <= c - pw < w]

    colour = {win.output: _WINDOW_COLOURS[i % len(_WINDOW_COLOURS)] for i, win in enumerate(ex.windows)}
    shade = {cell: colour[win.output] for win in ex.windows for cell in cells(win)}
    first = cells(ex.windows[0])
    oh, ow = len(next(iter(ex.outputs.values()))), len(next(iter(ex.outputs.values()))[0])
    cell = 1.0
    gap = 1.0
    total_w = w + 3 * (ow + gap)
    fig = new_figure(max(520, int(70 * total_w) + 60), max(220, int(70 * max(h, oh)) + 110))
    ax = fig.add_subplot(1, 1, 1)
    _draw_grid(ax, grid, 0, 0, cell, 10, fill=shade, text=_two_places)
    rows = [r for r, _ in first]
    cols = [c for _, c in first]
    ax.add_patch(Rectangle((min(cols), min(rows)), max(cols) - min(cols) + 1, max(rows) - min(rows) + 1,
                           fill=False, edgecolor="#d32f2f", linewidth=2))
    ax.text(w / 2, -0.35, f"input {h}x{w}", ha="center", va="bottom", fontsize=10)
    x = w + gap
    for mode, result in ex.outputs.items():
        _draw_grid(ax, result, x, 0, cell, 10, fill=colour, text=_two_places)
        ax.text(x + ow / 2, -0.35, f"{mode} pooling", ha="center", va="bottom", fontsize=10)
        x += ow + gap
    ax.set_xlim(-0.2, total_w + 0.2)
    ax.set_ylim(max(h, oh) + 0.2, -1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.85, bottom=0.02)
    (kh, kw), (sh, sw) = ex.kernel, ex.stride
    fig.suptitle(f"{kh}x{kw} windows, stride {_hw((sh, sw))}, padding {_hw(ex.padding)}: "
                 f"{h}x{w} -> {oh}x{ow}", fontsize=10)
    return save_figure(fig, out)


def _two_places(value: float) -> str:
    """A pooled value as a small table cell shows it: whole numbers as they are, others to 2 decimals."""
    return fmt(value) if float(value).is_integer() else f"{value:.2f}"
