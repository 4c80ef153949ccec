"""Receptive fields: the theoretical field per layer and the effective one (Luo et al., 2016).

    theoretical_fields("resnet18", (3, 64, 64))      # [(layer, field size, jump), ...]
    erf = effective_receptive_field(model, (3, 64, 64))  # HxW map, max 1
    draw_rf("resnet18", (3, 64, 64), "rf.png")

The theoretical field says which input pixels *can* influence a unit; the effective field measures
how much each of them *does*: the gradient of one central output unit with respect to the input,
in absolute value, averaged over random Gaussian inputs. It is concentrated near the centre and
much smaller than the theoretical field (Luo, Li, Urtasun, Zemel: "Understanding the Effective
Receptive Field in Deep Convolutional Neural Networks", NeurIPS 2016).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape
from cnnlab.viz.common import ModelLike, model_or_checkpoint, save_figure

__all__ = ["ERF_STACKS", "FieldRow", "draw_erf_stacks", "draw_rf", "effective_receptive_field", "erf_details",
           "field_box", "is_conv_or_pool", "stack_fields", "theoretical_fields"]

FIGSIZE = (12.0, 4.0)  # inches; with DPI this fixes the picture at 1080x360 pixels
DPI = 90

_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


class FieldRow(NamedTuple):
    """One convolution or pooling node: its theoretical receptive field and jump (height axis)."""

    name: str
    size: int
    jump: int


# --------------------------------------------------------------------------------------
# Small private helpers
# --------------------------------------------------------------------------------------


def _size3(input_size: Sequence[int] | str) -> tuple[int, ...]:
    if isinstance(input_size, str):
        from cnnlab.shapes import parse_shape

        return tuple(parse_shape(input_size))
    size = tuple(int(s) for s in input_size)
    if len(size) != 3 or min(size) < 1:
        raise CnnlabError(f"input size must be CxHxW with positive sizes, e.g. 3x64x64, got {size}")
    return size


def _build(spec: ModelLike, seed: int = 0, size: Sequence[int] | None = None) -> tuple[nn.Module, str]:
    """The model and a label for titles (see :func:`cnnlab.viz.common.model_or_checkpoint`)."""
    model, meta = model_or_checkpoint(spec, seed=seed, input_size=size)
    return model, meta["name"] or type(model).__name__


# --------------------------------------------------------------------------------------
# Theoretical and effective fields
# --------------------------------------------------------------------------------------


def is_conv_or_pool(op: str) -> bool:
    """A convolution or a windowed pooling op (adaptive pooling has no fixed window)."""
    low = op.lower()
    return ("conv" in low or "pool" in low) and "adaptive" not in low


def theoretical_fields(model_or_name: nn.Module | str, input_size: Sequence[int] | str) -> list[FieldRow]:
    """(layer name, receptive-field size, jump) for every convolution and pooling node, in order.

    Numbers come from :func:`cnnlab.analyze`; size and jump are those of the height axis.
    """
    from cnnlab.analysis import analyze

    report = analyze(model_or_name, _size3(input_size))
    return [FieldRow(r.name, r.rf_size[0], r.rf_stride[0]) for r in report.layers
            if r.rf_size and r.rf_stride and r.kind != "input" and is_conv_or_pool(r.op)]


def _target_output(model: nn.Module, x: torch.Tensor, layer: str | None) -> tuple[str, torch.Tensor]:
    """Run the model and return (module name, output) of the named layer or the last spatial map."""
    modules = dict(model.named_modules())
    if layer is not None and layer not in modules:
        names = [n for n in modules if n]
        shown = ", ".join(names[:40]) + (f", ... ({len(names)} in all)" if len(names) > 40 else "")
        raise CnnlabError(f"unknown layer {layer!r}; valid names: {shown}")
    found: list[tuple[str, torch.Tensor]] = []
    pooled = [False]  # after a global pool, maps are no longer spatial

    def hook(name: str, module: nn.Module) -> Any:
        def fn(_m: nn.Module, _inp: Any, out: Any) -> None:
            if isinstance(module, _GLOBAL_POOLS):
                pooled[0] = True
            if layer is not None:
                if name == layer and isinstance(out, torch.Tensor):
                    found.append((name, out))
            elif not pooled[0] and isinstance(out, torch.Tensor) and out.dim() == x.dim():
                found.append((name, out))
        return fn

    handles = [m.register_forward_hook(hook(n, m)) for n, m in modules.items() if n]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    if not found:
        if layer is not None:
            raise CnnlabError(f"layer {layer!r} did not run in the forward pass")
        raise CnnlabError(f"{type(model).__name__} has no module with a spatial output to measure")
    name, out = found[-1]
    if out.dim() != x.dim():
        raise CnnlabError(f"layer {name!r} gives a {out.dim()}-d output, not a spatial feature map")
    return name, out


def erf_details(model: nn.Module, size: tuple[int, ...], samples: int, seed: int, layer: str | None,
                chunk: int | None = None, between: Callable[[], None] | None = None,
                checked: bool = False) -> tuple[np.ndarray, str, tuple[int, ...], tuple[int, ...]]:
    """The ERF map, the measured module's name, its output spatial size and the central unit's index.

    ``size`` is (C, H, W); see :func:`effective_receptive_field` for what is measured. The samples
    run ``chunk`` at a time (default: all at once), so memory holds one chunk's activations, and
    ``between`` is called before each chunk (a deadline check may raise there). ``checked``: the
    caller has already made sure a chunk fits in memory.
    """
    if samples < 1:
        raise CnnlabError(f"samples must be at least 1, got {samples}")
    chunk = samples if chunk is None else max(1, min(int(chunk), samples))
    if not checked:
        from cnnlab.analysis import require_memory

        require_memory(model, size, f"measuring the effective receptive field at {fmt_shape(size)} "
                       f"({chunk} samples at a time)", "use a smaller --input", batch=chunk, backward=True)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator().manual_seed(seed)
    total: torch.Tensor | None = None
    was_training = model.training
    model.eval()  # batch norm uses its running statistics, dropout is off
    try:
        for start in range(0, samples, chunk):
            if between is not None:
                between()
            # One draw per sample, so the samples are the same whatever the chunk.
            x = torch.stack([torch.randn(size, generator=gen) for _ in range(min(chunk, samples - start))])
            x = x.to(device=device, dtype=dtype).requires_grad_(True)
            with torch.enable_grad():
                name, out = _target_output(model, x, layer)
                spatial = tuple(out.shape[2:])
                centre = tuple(s // 2 for s in spatial)
                unit = out[(slice(None), slice(None), *centre)]  # N x C: the central unit of each channel
                (grad,) = torch.autograd.grad(unit.sum(), x)
            del out, unit
            # Samples are independent in eval mode, so each one's gradient is its own; sum over channels too.
            part = grad.detach().abs().sum(dim=1).float().sum(dim=0)
            total = part if total is None else total + part
    finally:
        model.train(was_training)
    assert total is not None
    erf = (total / samples).cpu().numpy()
    peak = erf.max()
    return (erf / peak if peak > 0 else erf), name, spatial, centre


def effective_receptive_field(model: nn.Module, input_size: Sequence[int] | str = (3, 64, 64),
                              samples: int = 8, seed: int = 0, layer: str | None = None) -> np.ndarray:
    """The effective receptive field of the central unit, an HxW array normalised to max 1.

    The unit is the centre of the last spatial feature map (before any global pooling), or of
    the output of the module ``layer`` (a name from ``model.named_modules()``); its gradient is
    summed over channels, taken in absolute value and averaged over ``samples`` Gaussian inputs
    (seeded). Batch norm runs in eval mode; the model's train/eval mode is restored afterwards.
    """
    return erf_details(model, _size3(input_size), samples, seed, layer)[0]


def _field_box(report: Any, module_name: str, spatial: tuple[int, ...],
               centre: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """(top, left, height, width) of the theoretical field of the measured unit, in input pixels."""
    rec = None
    for r in report.layers:
        if r.rf_size and r.output_shape and (r.scope == module_name or r.scope.startswith(module_name + ".")
                                             or r.name == module_name):
            rec = r
    if rec is None or len(rec.rf_size) < 2 or tuple(rec.output_shape[2:]) != spatial:
        return None
    return field_box(rec, centre)


def field_box(record: Any, unit: Sequence[int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) in input pixels of the field of output ``unit`` (row, column) of a
    node: its first pixel is ``unit * jump - padding`` (it may lie outside the input)."""
    top = unit[0] * record.rf_stride[0] - record.rf_padding[0]
    left = unit[1] * record.rf_stride[1] - record.rf_padding[1]
    return top, left, record.rf_size[0], record.rf_size[1]


def _heatmap(ax: Any, erf: np.ndarray, box: tuple[int, int, int, int] | None, title: str) -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(erf, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    if box is not None:
        top, left, h, w = box
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), w, h, fill=False, edgecolor="cyan", lw=1.5,
                               ls="--", label=f"theoretical {h}x{w}" + (" (beyond the input)" if h > erf.shape[0] else "")))
        ax.legend(loc="lower right", fontsize=7, framealpha=0.7)
    ax.set_xlim(-0.5, erf.shape[1] - 0.5)
    ax.set_ylim(erf.shape[0] - 0.5, -0.5)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_rf(model_or_spec: ModelLike, input_size: Sequence[int] | str, out: str | os.PathLike[str],
            checkpoint: str | os.PathLike[str] | None = None, samples: int = 8, seed: int = 0,
            layer: str | None = None) -> Path:
    """Theoretical field and jump per layer, and ERF heat maps (at initialisation; trained too).

    ``model_or_spec`` is an ``nn.Module``, a registry name (built with ``seed``) or a checkpoint
    file; ``checkpoint`` adds a heat map for trained weights. The picture is FIGSIZE x DPI pixels.
    """
    from cnnlab.analysis import analyze

    size = _size3(input_size)
    model, label = _build(model_or_spec, seed, size)
    trained = None
    if checkpoint is not None:
        trained, trained_label = _build(str(checkpoint), seed)
        if trained_label != label:  # the same network with other classes or channels is fine; another is not
            raise CnnlabError(f"{checkpoint} holds a {trained_label}, not the {label} asked for: give its own model "
                              f"(`cnnlab viz rf {trained_label} --checkpoint {checkpoint}`) or a {label} checkpoint")
    report = analyze(model, size)
    rows = [FieldRow(r.name, r.rf_size[0], r.rf_stride[0]) for r in report.layers
            if r.rf_size and r.rf_stride and r.kind != "input" and is_conv_or_pool(r.op)]

    panels = 2 if trained is None else 3
    ratios = [2.2] + [1.0] * (panels - 1)
    fig, axes = plt.subplots(1, panels, figsize=FIGSIZE, gridspec_kw={"width_ratios": ratios})
    ax = axes[0]
    idx = np.arange(1, len(rows) + 1)
    ax.step(idx, [r.size for r in rows], where="post", color="tab:blue", label="field size (pixels)")
    ax.step(idx, [r.jump for r in rows], where="post", color="tab:orange", label="jump (stride to input)")
    ax.axhline(size[1], color="grey", lw=0.8, ls=":", label=f"input height {size[1]}")
    ax.set_yscale("log", base=2)
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("convolution / pooling layer (in order)")
    ax.set_title(f"{label}: theoretical receptive field at {fmt_shape(size)}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")

    erf, name, spatial, centre = erf_details(model, size, samples, seed, layer)
    box = _field_box(report, name, spatial, centre)
    _heatmap(axes[1], erf, box, f"effective field at init\n(unit {centre} of {name or 'output'})")
    if trained is not None:
        erf_t, name_t, spatial_t, centre_t = erf_details(trained, size, samples, seed, layer)
        _heatmap(axes[2], erf_t, _field_box(report, name_t, spatial_t, centre_t),
                 f"effective field, trained\n({Path(str(checkpoint)).name})")
    fig.tight_layout()
    return save_figure(fig, out, dpi=DPI)


ERF_STACKS = ("3", "3,3", "5")


def _kernels(spec: str) -> list[int]:
    """'3,3' -> [3, 3]: the kernel sizes of a stack, or one line naming the mistake."""
    try:
        kernels = [int(k) for k in spec.split(",")]
    except ValueError:
        raise CnnlabError(f"a stack is kernel sizes separated by commas, like 3,3 or 5; got {spec!r}") from None
    if any(k < 1 or k > 31 for k in kernels):
        raise CnnlabError(f"kernel sizes in a stack are 1 to 31, got {spec!r}")
    return kernels


def _stack_name(kernels: list[int]) -> str:
    counts = ("one", "two", "three", "four", "five")
    if len(set(kernels)) == 1 and len(kernels) <= len(counts):
        return f"{counts[len(kernels) - 1]} {kernels[0]}x{kernels[0]}"
    return " + ".join(f"{k}x{k}" for k in kernels)


def _stack_net(kernels: list[int]) -> nn.Module:
    """Stride-1 convolutions of one channel with uniform weights (as in Luo et al.'s first experiment)."""
    layers = []
    for k in kernels:
        layer = nn.Conv2d(1, 1, k, bias=False)
        nn.init.constant_(layer.weight, 1.0)
        layers.append(layer)
    return nn.Sequential(*layers)


def stack_fields(stacks: Sequence[str] = ERF_STACKS, size: int = 11) -> dict[str, np.ndarray]:
    """The effective receptive field of each stack's central output on a ``size`` x ``size`` input.

    A stack is kernel sizes separated by commas ("3,3": two 3x3 convolutions). Every weight is 1,
    so each cell is the number of paths from that input pixel to the centre, normalised to the
    largest; the cells above zero are exactly the theoretical field.
    """
    parsed = [_kernels(s) for s in stacks]
    need = max(sum(k - 1 for k in kernels) + 1 for kernels in parsed)
    if size < need:
        raise CnnlabError(f"--size {size} is smaller than the largest stack's field ({need}): use --size {need} or more")
    return {_stack_name(kernels): effective_receptive_field(_stack_net(kernels), (1, size, size), samples=1, seed=0)
            for kernels in parsed}


def draw_erf_stacks(stacks: Sequence[str] = ERF_STACKS, size: int = 11,
                    out: str | os.PathLike[str] = "erf-stacks.png") -> Path:
    """One panel per stack: its effective receptive field (:func:`stack_fields`) with the values written in."""
    fields = stack_fields(stacks, size)
    fig, axes = plt.subplots(1, len(fields), figsize=(3 * len(fields), 3.3), squeeze=False)
    for ax, (name, erf) in zip(axes[0], fields.items(), strict=True):
        ax.imshow(erf, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        if size <= 15:
            for (i, j), v in np.ndenumerate(erf):
                if v > 0:
                    ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=6,
                            color="black" if v > 0.6 else "white")
        ax.set_title(f"{name}: {int((erf > 0).sum())} input pixels reach the centre", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, out)
