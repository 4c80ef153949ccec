"""The learned kernels themselves: the first layer as a grid of small pictures, any layer per channel.

A trained first layer of an ImageNet model shows oriented edges and colour blobs; at
initialisation it shows noise. Deeper kernels mix many input channels, so they are drawn
one (output, input) pair at a time on a shared red-blue scale (red positive, blue negative).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import torch
from torch import nn

from cnnlab.viz.common import (
    ModelLike,
    conv_layers,
    layer_error,
    model_or_checkpoint,
    new_figure,
    save_figure,
)

__all__ = ["draw_filters", "filter_grid", "find_conv"]

MAX_FIRST = 64  # kernels in the first-layer grid
MAX_OUT, MAX_IN = 16, 8  # (out, in) pairs in the per-channel grid


def find_conv(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Conv2d]:
    """The named 2-D convolution, or the first one; one line listing valid names when it is not there."""
    convs = conv_layers(model)
    if not convs:
        raise layer_error(layer or "(first)", [], "convolution")
    if layer is None:
        return convs[0]
    for name, module in convs:
        if name == layer:
            return name, module
    raise layer_error(layer, [name for name, _ in convs], "convolution layer")


def _minmax(k: np.ndarray) -> np.ndarray:
    lo, hi = float(k.min()), float(k.max())
    return (k - lo) / (hi - lo) if hi > lo else np.full_like(k, 0.5)


def filter_grid(weight: torch.Tensor, rgb: bool) -> list[np.ndarray]:
    """Each output channel's kernel min-max normalised to [0, 1]: K x K x 3 when ``rgb``, else K x K."""
    w = weight.detach().float().cpu().numpy()
    if rgb:
        return [_minmax(k.transpose(1, 2, 0)) for k in w]
    return [_minmax(k[0]) for k in w]


def draw_filters(model: ModelLike, out: str | Path = "filters.png", layer: str | None = None) -> Path:
    """The first convolution's kernels as a grid, or ``layer``'s kernels per (output, input) channel.

    ``model`` is a registry name (random weights), a checkpoint or run folder, or a module.
    The first-layer grid (up to 64 kernels, RGB when the layer reads 3 channels) is 900x960 px;
    the per-channel grid (up to 16 outputs x 8 inputs) is ``110*inputs + 120`` x ``90*outputs + 110`` px.
    """
    net, meta = model_or_checkpoint(model)
    name, conv = find_conv(net, layer)
    weight = conv.weight.detach().float().cpu()
    c_out, c_in, kh, kw = weight.shape
    label = meta.get("name") or type(net).__name__
    if layer is None and c_in in (1, 3):
        kernels = filter_grid(weight[:MAX_FIRST], rgb=c_in == 3)
        n = len(kernels)
        cols = math.ceil(math.sqrt(n))
        rows = math.ceil(n / cols)
        fig = new_figure(900, 960)
        ax = fig.add_axes((0.03, 0.02, 0.94, 0.86))
        ax.imshow(_mosaic(kernels, rows, cols, fill=1.0), cmap=None if c_in == 3 else "gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_axis_off()
        shown = f" (first {n} of {c_out})" if n < c_out else ""
        kind = "RGB" if c_in == 3 else "gray"
        fig.suptitle(f"{label}: first layer {name}, {c_out} kernels {kh}x{kw}x{c_in}{shown}\n"
                     f"each kernel min-max normalised, shown as {kind}", fontsize=12)
        return save_figure(fig, out)

    w = weight[:MAX_OUT, :MAX_IN].numpy()
    n_out, n_in = w.shape[:2]
    vmax = float(np.abs(w).max()) or 1.0
    width, height = 110 * n_in + 120, 90 * n_out + 110
    fig = new_figure(width, height)
    ax = fig.add_axes((70 / width, 20 / height, 1 - 90 / width, 1 - 110 / height))
    tiles = [w[o, i] for o in range(n_out) for i in range(n_in)]
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(_mosaic(tiles, n_out, n_in, fill=np.nan), cmap=cmap, vmin=-vmax, vmax=vmax,
              interpolation="nearest", aspect="auto")
    ax.set_xticks([i * (kw + 1) + (kw - 1) / 2 for i in range(n_in)], [f"in {i}" for i in range(n_in)],
                  fontsize=8)
    ax.set_yticks([o * (kh + 1) + (kh - 1) / 2 for o in range(n_out)], [f"out {o}" for o in range(n_out)],
                  fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    shown = f" (first {n_out} of {c_out} outputs x {n_in} of {c_in} inputs)" if (n_out, n_in) != (c_out, c_in) else ""
    fig.suptitle(f"{label}: {name}, {c_out}x{c_in} kernels {kh}x{kw}{shown}\n"
                 f"shared scale +-{vmax:.3g} (red positive, blue negative)", fontsize=10)
    return save_figure(fig, out)


def _mosaic(tiles: list[np.ndarray], rows: int, cols: int, fill: float) -> np.ndarray:
    """Equal-sized tiles (K x K or K x K x 3) in a rows x cols grid with a one-pixel gap of ``fill``."""
    kh, kw = tiles[0].shape[:2]
    extra = tiles[0].shape[2:]
    grid = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1, *extra), fill, dtype=np.float64)
    for idx, tile in enumerate(tiles):
        r, c = divmod(idx, cols)
        grid[r * (kh + 1): r * (kh + 1) + kh, c * (kw + 1): c * (kw + 1) + kw] = tile
    return grid
