"""Exact layer arithmetic that explains itself.

Pure Python, no torch: output sizes, parameter counts, multiply-accumulates (MACs) and the
receptive-field step of convolutions (1d/2d/3d), pooling (max, average, min, global,
adaptive), linear layers and flatten. Every result carries the formula lines with the
caller's numbers substituted, e.g. ``OH = floor((227 + 2*0 - 1*(11-1) - 1)/4) + 1 = 55``,
so a learner can check a hand calculation line by line.

The rules are PyTorch's own (``torch.nn.Conv2d``, ``torch.nn.MaxPool2d`` ...): the
property tests build real torch modules on thousands of random configurations and check
that these functions give the same shapes and parameter counts and reject exactly the
configurations torch rejects.

Shapes are given per sample, without the batch dimension: ``(C, H, W)`` for 2d,
``(C, L)`` for 1d, ``(C, D, H, W)`` for 3d, ``(F,)`` for features.

Counting conventions: parameters are weights plus biases (batch-norm running statistics are
buffers, not parameters); MACs count the multiply-accumulates of convolutions and linear
layers only, bias additions excluded (torchvision's "GFLOPS" and the ResNet paper's
"FLOPs" use the same convention).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cnnlab.errors import CnnlabError

__all__ = [
    "LayerResult",
    "ReceptiveField",
    "StackResult",
    "adaptive_pool",
    "conv",
    "conv_output_length",
    "flatten",
    "fmt_shape",
    "global_pool",
    "identity",
    "linear",
    "norm",
    "parse_layer",
    "parse_shape",
    "pool",
    "pool_output_length",
    "stack",
]

PaddingArg = int | Sequence[int] | Literal["same", "valid"]
PoolMode = Literal["max", "avg", "min"]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
POOL_MODES = ("max", "avg", "min")

# Axis letters used in formulas: H and W for images, L for sequences, D/H/W for volumes.
_AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_AXIS_WORDS = {"L": "positions", "D": "slices", "H": "rows", "W": "columns"}


def _fmt(n: int | float) -> str:
    """Thousands separators for integers, as a learner writes them: 34,944."""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.1f}"
    return f"{int(n):,}"


def fmt_shape(shape: Sequence[int] | None) -> str:
    """A shape as a person writes it: 3x224x224 ("-" for none)."""
    return "-" if shape is None else "x".join(str(s) for s in shape)


def _hp(values: Sequence[int]) -> str:
    """A per-axis hyper-parameter as a person writes it: '3' when all axes agree, else '3x5'."""
    return str(values[0]) if len(set(values)) == 1 else fmt_shape(values)


# --------------------------------------------------------------------------------------
# Receptive field
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one unit of a feature map with respect to the input, per axis.

    ``size`` r: how many input positions one unit sees; ``stride`` j: how far apart (in input
    positions) neighbouring units' fields start; ``padding`` p: the effective padding, so the
    field of unit ``i`` starts at input position ``i*j - p`` and its centre is at
    ``i*j + (r-1)/2 - p`` (Araujo, Norris & Sim, "Computing Receptive Fields of
    Convolutional Neural Networks", Distill 2019).
    """

    size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]

    @classmethod
    def of_input(cls, ndim: int) -> ReceptiveField:
        """The input itself: each position sees one position."""
        return cls((1,) * ndim, (1,) * ndim, (0,) * ndim)

    def step(
        self, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
    ) -> ReceptiveField:
        """Field after a layer with (effective) kernel k, stride s and padding before p_l.

        r_out = r_in + (k - 1) * j_in,  j_out = j_in * s,  p_out = p_in + p_l * j_in.
        """
        return ReceptiveField(
            tuple(r + (k - 1) * j for r, k, j in zip(self.size, kernel, self.stride, strict=True)),
            tuple(j * s for j, s in zip(self.stride, stride, strict=True)),
            tuple(p + pl * j for p, pl, j in zip(self.padding, padding, self.stride, strict=True)),
        )

    def center(self, index: int = 0) -> tuple[float, ...]:
        """Input coordinate of the centre of unit ``index``'s field, per axis."""
        return tuple(index * j + (r - 1) / 2 - p for r, j, p in zip(self.size, self.stride, self.padding, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {"size": list(self.size), "stride": list(self.stride), "padding": list(self.padding)}


# --------------------------------------------------------------------------------------
# Result record
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerResult:
    """What one layer does to a shape, and what it costs.

    ``rf_kernel``/``rf_stride``/``rf_padding`` describe the layer's own receptive-field step
    per spatial axis (effective kernel ``dilation*(k-1)+1``, stride, padding before); they are
    ``None`` for layers that leave space alone (activations, norms, linear layers).
    """

    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weight_params: int = 0
    bias_params: int = 0
    macs: int = 0
    rf_kernel: tuple[int, ...] | None = None
    rf_stride: tuple[int, ...] | None = None
    rf_padding: tuple[int, ...] | None = None
    lines: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    description: str = ""

    @property
    def params(self) -> int:
        return self.weight_params + self.bias_params

    def explain(self) -> str:
        """The formula lines with the numbers substituted, one per line."""
        return "\n".join((*self.lines, *self.notes))

    def receptive_field(self, before: ReceptiveField) -> ReceptiveField:
        """The cumulative field after this layer, given the field of its input."""
        if self.rf_kernel is None or self.rf_stride is None or self.rf_padding is None:
            return before
        return before.step(self.rf_kernel, self.rf_stride, self.rf_padding)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "description": self.description,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "params": self.params,
            "weight_params": self.weight_params,
            "bias_params": self.bias_params,
            "macs": self.macs,
            "rf_step": None
            if self.rf_kernel is None
            else {
                "kernel": list(self.rf_kernel),
                "stride": list(self.rf_stride or ()),
                "padding": list(self.rf_padding or ()),
            },
            "explain": list(self.lines),
            "notes": list(self.notes),
        }


# --------------------------------------------------------------------------------------
# Argument normalisation and validation
# --------------------------------------------------------------------------------------


def _as_tuple(value: int | Sequence[int], ndim: int, name: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise CnnlabError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, int):
        return (value,) * ndim
    try:
        values = tuple(value)
    except TypeError:
        raise CnnlabError(f"{name} must be an integer or {ndim} integers, got {value!r}") from None
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise CnnlabError(f"{name} must be an integer or {ndim} integers (one per spatial axis), got {value!r}")
    return values


def _check_positive(name: str, values: Sequence[int], fix: str = "use 1 or more") -> None:
    for v in values:
        if v <= 0:
            raise CnnlabError(f"{name} must be positive, got {v}: {fix}")


def _check_input(input_shape: Sequence[int], min_ndim: int, max_ndim: int, what: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if not min_ndim + 1 <= len(shape) <= max_ndim + 1:
        want = " or ".join(
            "x".join(("C", *_AXES[n])) for n in range(min_ndim, max_ndim + 1)
        )
        raise CnnlabError(
            f"{what} needs an input shaped {want} (channels first, no batch), got {fmt_shape(shape) or 'nothing'}"
        )
    _check_positive("every input dimension", shape, "sizes are counted from 1")
    return shape


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _resolve_padding(
    padding: PaddingArg, kernel: tuple[int, ...], dilation: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[tuple[tuple[int, int], ...], str]:
    """Per-axis (before, after) padding and how the user said it."""
    ndim = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * ndim, "valid"
        if padding == "same":
            if any(s != 1 for s in stride):
                raise CnnlabError(
                    "padding 'same' needs stride 1 (PyTorch does not support it for strided "
                    "convolutions): give an explicit padding such as (kernel-1)//2 instead"
                )
            pads = []
            for k, d in zip(kernel, dilation, strict=True):
                total = d * (k - 1)
                pads.append((total // 2, total - total // 2))
            return tuple(pads), "same"
        raise CnnlabError(f"padding must be an integer, 'same' or 'valid', got {padding!r}")
    values = _as_tuple(padding, ndim, "padding")
    for v in values:
        if v < 0:
            raise CnnlabError(f"padding must not be negative, got {v}: use 0 for no padding")
    return tuple((v, v) for v in values), "explicit"


def _pad_text(before: int, after: int) -> str:
    return f"2*{before}" if before == after else f"{before}+{after}"


_MAX_RESIDUES = 1 << 16


def _uncovered(length: int, out: int, eff_kernel: int, kernel: int, stride: int, dilation: int,
               before: int, after: int) -> tuple[int, int]:
    """(input positions never read, padded positions past the last window) along one axis.

    Tap t of window i reads padded position i*stride + t*dilation. Taps t and t + stride/g
    (g = gcd(dilation, stride)) read positions of the same residue modulo the stride, their
    windows shifted dilation/g strides apart; counting each residue class in closed form keeps
    the cost independent of the input length.
    """
    padded = length + before + after
    tail = max(padded - ((out - 1) * stride + eff_kernel), 0)
    if dilation == 1 or kernel == 1:  # window i reads the run [i*stride, i*stride + eff_kernel)
        covered = (_covered_below(before + length, 0, stride, eff_kernel, out)
                   - _covered_below(before, 0, stride, eff_kernel, out))
        return length - covered, tail
    g = math.gcd(dilation, stride)
    period, step = stride // g, dilation // g
    if min(kernel, period) > _MAX_RESIDUES:
        return 0, tail  # too many residue classes to count: no note rather than a slow one
    covered = 0
    for t0 in range(min(kernel, period)):
        residue, first = divmod(t0 * dilation, stride)[::-1]
        taps = (kernel - 1 - t0) // period + 1
        start = -(-(before - residue) // stride)
        stop = -(-(before + length - residue) // stride)
        covered += _covered_below(stop, first, step, out, taps) - _covered_below(start, first, step, out, taps)
    return length - covered, tail


def _covered_below(x: int, first: int, step: int, width: int, count: int) -> int:
    """How many integers below ``x`` lie in the union of [first + m*step, first + m*step + width), m < count."""
    y = x - first
    if y <= 0:
        return 0
    if step < width:
        return min(y, (count - 1) * step + width)
    full = min(count, y // step)
    return full * width + (min(y - full * step, width) if full < count else 0)


def _coverage_note(axis: str, length: int, out: int, eff_kernel: int, kernel: int, stride: int,
                   dilation: int, before: int, after: int) -> str | None:
    never, tail = _uncovered(length, out, eff_kernel, kernel, stride, dilation, before, after)
    if never == 0:
        return None
    word = _AXIS_WORDS[axis] if never > 1 else _AXIS_WORDS[axis][:-1]
    verb = "are" if never > 1 else "is"
    padded = length + before + after
    if tail > 0:
        why = (
            f"{padded} - {eff_kernel} = {padded - eff_kernel} is not a multiple of stride {stride}, "
            f"so the last window ends {tail} short of the padded edge"
        )
    else:
        why = f"dilation {dilation} with stride {stride} skips them between windows"
    return f"note: {axis}: {never} input {word} {verb} never covered by the kernel ({why})"


# --------------------------------------------------------------------------------------
# Output lengths
# --------------------------------------------------------------------------------------


def conv_output_length(length: int, kernel: int, stride: int = 1, padding: int | tuple[int, int] = 0,
                       dilation: int = 1) -> int:
    """floor((L + P_before + P_after - dilation*(kernel-1) - 1)/stride) + 1, as PyTorch computes it."""
    before, after = (padding, padding) if isinstance(padding, int) else padding
    return (length + before + after - dilation * (kernel - 1) - 1) // stride + 1


def pool_output_length(length: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1,
                       ceil_mode: bool = False) -> int:
    """PyTorch's pooling output length, ceil mode included.

    With ``ceil_mode`` the division rounds up, but a last window that would start in the
    right padding (at or beyond ``L + P``) is dropped.
    """
    numerator = length + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = numerator // stride + 1
    if ceil_mode and (out - 1) * stride >= length + padding:
        out -= 1
    return out


# --------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------


def conv(
    input_shape: Sequence[int],
    out_channels: int,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: PaddingArg = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
    bias: bool = True,
    padding_mode: str = "zeros",
) -> LayerResult:
    """A ``ConvNd`` layer (N = 1, 2 or 3, taken from the input shape), as PyTorch defines it."""
    shape = _check_input(input_shape, 1, 3, "a convolution")
    ndim = len(shape) - 1
    in_channels, spatial = shape[0], shape[1:]
    axes = _AXES[ndim]
    kernel = _as_tuple(kernel_size, ndim, "kernel size")
    strides = _as_tuple(stride, ndim, "stride")
    dilations = _as_tuple(dilation, ndim, "dilation")
    _check_positive("out channels", [out_channels])
    _check_positive("kernel size", kernel)
    _check_positive("stride", strides)
    _check_positive("dilation", dilations)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise CnnlabError(f"groups must be a positive integer, got {groups!r}")
    if padding_mode not in PADDING_MODES:
        raise CnnlabError(f"padding mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
    for what, channels in (("in channels", in_channels), ("out channels", out_channels)):
        if channels % groups:
            common = [d for d in _divisors(math.gcd(in_channels, out_channels))]
            raise CnnlabError(
                f"groups {groups} does not divide {what} {channels}: choose groups from the common "
                f"divisors of {in_channels} and {out_channels}: {', '.join(map(str, common))}"
            )
    pads, pad_kind = _resolve_padding(padding, kernel, dilations, strides)
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True))

    for axis, length, (before, after), e, k, d in zip(axes, spatial, pads, eff, kernel, dilations, strict=True):
        if padding_mode == "reflect" and max(before, after) >= length:
            raise CnnlabError(
                f"reflect padding of {max(before, after)} needs an input longer than that along {axis} "
                f"(got {length}): use an input of at least {max(before, after) + 1}, less padding, or padding mode zeros"
            )
        if padding_mode == "circular" and max(before, after) > length:
            raise CnnlabError(
                f"circular padding of {max(before, after)} wraps around an input of {length} along {axis} "
                f"more than once: use an input of at least {max(before, after)}, less padding, or padding mode zeros"
            )
        if length + before + after < e:
            need = e - before - after
            kernel_text = f"{e} = {d}*({k}-1)+1" if d > 1 else f"{e}"
            raise CnnlabError(
                f"kernel (effective size {kernel_text}) is larger than the padded input along {axis} "
                f"({length} + {_pad_text(before, after)} = {length + before + after}): the input must be at "
                f"least {need} along {axis}, or pad by at least {math.ceil((e - length) / 2)} on each side"
            )

    out_spatial = tuple(
        conv_output_length(length, k, s, p, d)
        for length, k, s, p, d in zip(spatial, kernel, strides, pads, dilations, strict=True)
    )
    out_shape = (out_channels, *out_spatial)
    cin_g = in_channels // groups
    k_prod = math.prod(kernel)
    weights = out_channels * cin_g * k_prod
    biases = out_channels if bias else 0
    out_elems = out_channels * math.prod(out_spatial)
    macs = out_elems * cin_g * k_prod

    name = f"Conv{ndim}d"
    kernel_txt = fmt_shape(kernel)
    desc = f"{name}({in_channels}->{out_channels}, kernel {kernel_txt}"
    if any(s != 1 for s in strides):
        desc += f", stride {_hp(strides)}"
    if pad_kind == "same":
        desc += ", padding same"
    elif any(b or a for b, a in pads):
        desc += f", padding {_hp([b for b, _ in pads])}"
    if any(d != 1 for d in dilations):
        desc += f", dilation {_hp(dilations)}"
    if groups != 1:
        desc += f", groups {groups}"
    if not bias:
        desc += ", no bias"
    if padding_mode != "zeros":
        desc += f", {padding_mode} padding"
    desc += ")"

    lines = [f"{desc}: {fmt_shape(shape)} -> {fmt_shape(out_shape)}"]
    if pad_kind == "same":
        lines.append(
            "padding 'same': total padding dilation*(kernel-1) per axis, the odd one after: "
            + ", ".join(f"{a} {b}+{af}" for a, (b, af) in zip(axes, pads, strict=True))
        )
    lines.append("O = floor((I + 2P - dilation*(K-1) - 1)/stride) + 1")
    notes = []
    for axis, length, (before, after), k, s, d, o, e in zip(
        axes, spatial, pads, kernel, strides, dilations, out_spatial, eff, strict=True
    ):
        lines.append(
            f"O{axis} = floor(({length} + {_pad_text(before, after)} - {d}*({k}-1) - 1)/{s}) + 1 = {o}"
        )
        note = _coverage_note(axis, length, o, e, k, s, d, before, after)
        if note:
            notes.append(note)
    k_mul = "*".join(map(str, kernel))
    lines.append(
        f"weights = C_out * C_in/groups * {'*'.join('K' + a for a in axes)} = "
        f"{out_channels} * {in_channels}/{groups} * {k_mul} = {_fmt(weights)}"
    )
    if bias:
        lines.append(f"biases = C_out = {_fmt(biases)}")
        lines.append(f"params = {_fmt(weights)} + {_fmt(biases)} = {_fmt(weights + biases)}")
    else:
        lines.append(f"params = weights = {_fmt(weights)} (no bias)")
    o_mul = "*".join(map(str, out_spatial))
    lines.append(
        f"MACs = C_out*{'*'.join('O' + a for a in axes)} * C_in/groups*{'*'.join('K' + a for a in axes)} = "
        f"{out_channels}*{o_mul} * {cin_g}*{k_mul} = {_fmt(macs)}"
    )
    return LayerResult(
        op=f"conv{ndim}d",
        input_shape=shape,
        output_shape=out_shape,
        weight_params=weights,
        bias_params=biases,
        macs=macs,
        rf_kernel=eff,
        rf_stride=strides,
        rf_padding=tuple(b for b, _ in pads),
        lines=tuple(lines),
        notes=tuple(notes),
        description=desc,
    )


def pool(
    input_shape: Sequence[int],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
    mode: str = "max",
) -> LayerResult:
    """Max, average or min pooling (1d/2d/3d from the input shape), as PyTorch defines it.

    ``stride`` defaults to the kernel size. Min pooling is ``-maxpool(-x)`` and obeys max
    pooling's rules; average pooling has no dilation. Pooling has no parameters and, by the
    counting convention, no MACs.
    """
    if mode not in POOL_MODES:
        raise CnnlabError(f"pooling mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    shape = _check_input(input_shape, 1, 3, "a pooling layer")
    ndim = len(shape) - 1
    channels, spatial = shape[0], shape[1:]
    axes = _AXES[ndim]
    kernel = _as_tuple(kernel_size, ndim, "kernel size")
    strides = kernel if stride is None else _as_tuple(stride, ndim, "stride")
    pads = _as_tuple(padding, ndim, "padding")
    dilations = _as_tuple(dilation, ndim, "dilation")
    _check_positive("kernel size", kernel)
    _check_positive("stride", strides)
    _check_positive("dilation", dilations)
    if mode == "avg" and any(d != 1 for d in dilations):
        raise CnnlabError("average pooling has no dilation in PyTorch: use dilation 1, or max/min pooling")
    for axis, k, p in zip(axes, kernel, pads, strict=True):
        if p < 0:
            raise CnnlabError(f"padding must not be negative, got {p}: use 0 for no padding")
        if p > k // 2:
            raise CnnlabError(
                f"pooling padding {p} along {axis} is more than half the kernel {k} (PyTorch allows at most "
                f"kernel//2 = {k // 2}): use padding {k // 2} or a kernel of at least {2 * p}"
            )
    if mode == "avg" and ndim == 3:
        # PyTorch's 3d average pooling (unlike 1d/2d) also checks the unpadded input.
        for axis, length, k in zip(axes, spatial, kernel, strict=True):
            if length < k:
                raise CnnlabError(
                    f"3d average pooling in PyTorch needs the unpadded input to be at least the kernel "
                    f"along each axis: {axis} is {length} but the kernel is {k}; use an input of at least {k}"
                )
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilations, strict=True))
    out_spatial = []
    for axis, length, k, s, p, d, e in zip(axes, spatial, kernel, strides, pads, dilations, eff, strict=True):
        o = pool_output_length(length, k, s, p, d, ceil_mode)
        if o < 1:
            need = next(n for n in range(1, e + 1) if pool_output_length(n, k, s, p, d, ceil_mode) >= 1)
            raise CnnlabError(
                f"the pooling window (effective size {e}) does not fit in the padded input along {axis} "
                f"({length} + 2*{p} = {length + 2 * p}): the input must be at least {need} along {axis}"
            )
        out_spatial.append(o)
    out_shape = (channels, *out_spatial)

    name = {"max": "MaxPool", "avg": "AvgPool", "min": "MinPool"}[mode] + f"{ndim}d"
    desc = f"{name}(kernel {fmt_shape(kernel)}, stride {_hp(strides)}"
    if any(pads):
        desc += f", padding {_hp(pads)}"
    if any(d != 1 for d in dilations):
        desc += f", dilation {_hp(dilations)}"
    if ceil_mode:
        desc += ", ceil"
    desc += ")"
    rounding = "ceil" if ceil_mode else "floor"
    lines = [f"{desc}: {fmt_shape(shape)} -> {fmt_shape(out_shape)}",
             f"O = {rounding}((I + 2P - dilation*(K-1) - 1)/stride) + 1"]
    notes = []
    for axis, length, k, s, p, d, e, o in zip(axes, spatial, kernel, strides, pads, dilations, eff, out_spatial,
                                                strict=True):
        raw = length + 2 * p - d * (k - 1) - 1
        value = (-(-raw // s) if ceil_mode else raw // s) + 1
        line = f"O{axis} = {rounding}(({length} + 2*{p} - {d}*({k}-1) - 1)/{s}) + 1 = {value}"
        if value != o:
            line += f"; the last window would start in the right padding, so it is dropped: {o}"
        lines.append(line)
        if ceil_mode:
            if (o - 1) * s + e > length + 2 * p:
                notes.append(
                    f"note: {axis}: ceil mode lets the last window run {(o - 1) * s + e - length - 2 * p} "
                    f"past the padded edge"
                )
        else:
            note = _coverage_note(axis, length, o, e, k, s, d, p, p)
            if note:
                notes.append(note)
    if mode == "min":
        lines.append("min pooling = -maxpool(-x): the same windows as max pooling")
    lines.append("params = 0 (pooling learns nothing); MACs = 0 (only convolutions and linear layers count)")
    return LayerResult(
        op=f"{mode}pool{ndim}d",
        input_shape=shape,
        output_shape=out_shape,
        rf_kernel=eff,
        rf_stride=strides,
        rf_padding=pads,
        lines=tuple(lines),
        notes=tuple(notes),
        description=desc,
    )


def global_pool(input_shape: Sequence[int], mode: str = "avg") -> LayerResult:
    """Global pooling: one value per channel, the window is the whole map."""
    if mode not in POOL_MODES:
        raise CnnlabError(f"pooling mode must be one of {', '.join(POOL_MODES)}, got {mode!r}")
    shape = _check_input(input_shape, 1, 3, "global pooling")
    ndim = len(shape) - 1
    spatial = shape[1:]
    out_shape = (shape[0],) + (1,) * ndim
    word = {"max": "max", "avg": "average", "min": "min"}[mode]
    desc = f"Global{word.capitalize()}Pool{ndim}d"
    lines = (
        f"{desc}: {fmt_shape(shape)} -> {fmt_shape(out_shape)}",
        f"the window is the whole {fmt_shape(spatial)} map: one {word} per channel",
        "params = 0; MACs = 0",
    )
    return LayerResult(
        op=f"global_{mode}pool{ndim}d",
        input_shape=shape,
        output_shape=out_shape,
        rf_kernel=spatial,
        rf_stride=(1,) * ndim,
        rf_padding=(0,) * ndim,
        lines=lines,
        description=desc,
    )


def adaptive_pool(input_shape: Sequence[int], output_size: int | Sequence[int], mode: str = "avg") -> LayerResult:
    """``AdaptiveAvgPoolNd``/``AdaptiveMaxPoolNd``: window i spans floor(i*I/O) .. ceil((i+1)*I/O).

    When O divides I every window has size and stride I/O; otherwise windows differ and the
    receptive-field step uses the largest window and the smallest stride floor(I/O).
    """
    if mode not in ("avg", "max"):
        raise CnnlabError(f"adaptive pooling mode must be avg or max, got {mode!r}")
    shape = _check_input(input_shape, 1, 3, "adaptive pooling")
    ndim = len(shape) - 1
    axes = _AXES[ndim]
    spatial = shape[1:]
    outs = _as_tuple(output_size, ndim, "output size")
    _check_positive("output size", outs)
    kernels, strides = [], []
    name = f"Adaptive{mode.capitalize()}Pool{ndim}d({fmt_shape(outs)})"
    out_shape = (shape[0], *outs)
    lines = [f"{name}: {fmt_shape(shape)} -> {fmt_shape(out_shape)}",
             "window i covers input positions floor(i*I/O) to ceil((i+1)*I/O) - 1"]
    notes = []
    for axis, length, o in zip(axes, spatial, outs, strict=True):
        widths = [-(-(i + 1) * length // o) - (i * length) // o for i in range(o)]
        kernels.append(max(widths))
        strides.append(max(length // o, 1))
        if length % o == 0:
            lines.append(f"{axis}: {length}/{o} = {length // o}: every window has size and stride {length // o}")
        else:
            notes.append(
                f"note: {axis}: {o} does not divide {length}: windows of sizes {min(widths)} to {max(widths)}, "
                "some overlapping"
            )
    if any(o > length for o, length in zip(outs, spatial, strict=True)):
        notes.append("note: the output is larger than the input, so some input positions are repeated")
    lines.append("params = 0; MACs = 0")
    return LayerResult(
        op=f"adaptive_{mode}pool{ndim}d",
        input_shape=shape,
        output_shape=out_shape,
        rf_kernel=tuple(kernels),
        rf_stride=tuple(strides),
        rf_padding=(0,) * ndim,
        lines=tuple(lines),
        notes=tuple(notes),
        description=name,
    )


def flatten(input_shape: Sequence[int]) -> LayerResult:
    """Flatten (C, *spatial) into one feature vector of C*prod(spatial) values."""
    shape = tuple(int(s) for s in input_shape)
    _check_positive("every input dimension", shape)
    n = math.prod(shape)
    spatial = shape[1:]
    lines = (
        f"Flatten: {fmt_shape(shape)} -> {n}",
        f"features = {' * '.join(map(str, shape))} = {_fmt(n)}",
    )
    return LayerResult(
        op="flatten",
        input_shape=shape,
        output_shape=(n,),
        rf_kernel=spatial or None,
        rf_stride=(1,) * len(spatial) if spatial else None,
        rf_padding=(0,) * len(spatial) if spatial else None,
        lines=lines,
        description="Flatten",
    )


def linear(input_shape: Sequence[int] | int, out_features: int, bias: bool = True) -> LayerResult:
    """A fully connected layer; the input must already be a feature vector (flatten first)."""
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    if len(shape) != 1:
        raise CnnlabError(
            f"a fully connected layer needs a flat input, got {fmt_shape(shape)}: add 'flatten' before it "
            f"({_fmt(math.prod(shape))} features)"
        )
    _check_positive("in features", shape)
    _check_positive("out features", [out_features])
    n_in = shape[0]
    weights = n_in * out_features
    biases = out_features if bias else 0
    desc = f"Linear({n_in}->{out_features}{'' if bias else ', no bias'})"
    lines = [f"{desc}: {n_in} -> {out_features}",
             f"weights = in * out = {n_in} * {out_features} = {_fmt(weights)}"]
    if bias:
        lines.append(f"params = {_fmt(weights)} + {_fmt(biases)} = {_fmt(weights + biases)}")
    lines.append(f"MACs = in * out = {_fmt(weights)}")
    return LayerResult(
        op="linear",
        input_shape=shape,
        output_shape=(out_features,),
        weight_params=weights,
        bias_params=biases,
        macs=weights,
        lines=tuple(lines),
        description=desc,
    )


def norm(input_shape: Sequence[int], affine: bool = True) -> LayerResult:
    """Batch norm over channels: a scale and a shift per channel when affine.

    Its running mean and variance are buffers, not parameters.
    """
    shape = tuple(int(s) for s in input_shape)
    _check_positive("every input dimension", shape)
    c = shape[0]
    ndim = len(shape) - 1
    desc = f"BatchNorm{max(ndim, 1)}d({c})"
    lines = [f"{desc}: shape unchanged {fmt_shape(shape)}"]
    if affine:
        lines.append(f"params = 2 * C = 2 * {c} = {_fmt(2 * c)} (scale and shift; running stats are buffers)")
    return LayerResult(
        op="batchnorm",
        input_shape=shape,
        output_shape=shape,
        weight_params=c if affine else 0,
        bias_params=c if affine else 0,
        lines=tuple(lines),
        description=desc,
    )


def identity(input_shape: Sequence[int], name: str) -> LayerResult:
    """A layer that keeps the shape and has no parameters (ReLU, dropout, LRN)."""
    shape = tuple(int(s) for s in input_shape)
    _check_positive("every input dimension", shape)
    return LayerResult(
        op=name.lower(),
        input_shape=shape,
        output_shape=shape,
        lines=(f"{name}: shape unchanged {fmt_shape(shape)}; params = 0",),
        description=name,
    )


# --------------------------------------------------------------------------------------
# Shapes and layer specifications as text
# --------------------------------------------------------------------------------------


def parse_shape(text: str) -> tuple[int, ...]:
    """'3x227x227' -> (3, 227, 227); also accepts commas or spaces."""
    parts = re.split(r"\s*[x*,]\s*|\s+", text.strip().lower())
    if not all(re.fullmatch(r"-?[0-9]{1,30}", p) for p in parts):
        raise CnnlabError(f"cannot read shape {text!r}: write it as CxHxW, e.g. 3x224x224")
    shape = tuple(int(p) for p in parts)
    _check_positive("every dimension of the shape", shape, "write it as CxHxW with sizes of at least 1, e.g. 3x224x224")
    return shape


STACK_GRAMMAR = """\
Layer grammar (one quoted string per layer; options in any order):
  conv OUT kK [sS] [pP|psame|pvalid] [dD] [gG] [nobias] [reflect|replicate|circular]
  pool kK [sS] [pP] [dD] [max|avg|min] [ceil]     stride defaults to the kernel
  gap | gmp | gmin                               global average / max / min pooling
  adaptive OUT [avg|max]                         e.g. 'adaptive 6x6'
  flatten
  fc OUT [nobias]                                (also: linear OUT)
  bn | relu | dropout | lrn                      keep the shape
K, S, P, D and OUT sizes may be per axis: k3x5, adaptive 6x6."""


def _int_or_tuple(text: str, what: str, spec: str) -> int | tuple[int, ...]:
    parts = text.split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise CnnlabError(f"cannot read {what} {text!r} in layer {spec!r}; see `cnnlab calc stack --help`") from None
    return values[0] if len(values) == 1 else values


def parse_layer(spec: str, input_shape: Sequence[int]) -> LayerResult:
    """Apply one layer written in the stack grammar (see ``STACK_GRAMMAR``) to ``input_shape``."""
    tokens = spec.lower().replace(",", " ").split()
    if not tokens:
        raise CnnlabError("empty layer in the stack: every layer needs a type such as 'conv 32 k3'")
    kind, rest = tokens[0], tokens[1:]
    shape = tuple(input_shape)

    def bad(token: str) -> CnnlabError:
        return CnnlabError(f"cannot read {token!r} in layer {spec!r}; see `cnnlab calc stack --help` for the grammar")

    if kind in ("conv", "pool"):
        opts: dict[str, Any] = {}
        positional: list[str] = []
        for tok in rest:
            if tok in ("nobias", "no-bias"):
                opts["bias"] = False
            elif tok in ("reflect", "replicate", "circular", "zeros"):
                opts["padding_mode"] = tok
            elif tok in POOL_MODES:
                opts["mode"] = tok
            elif tok == "ceil":
                opts["ceil_mode"] = True
            elif tok in ("psame", "pvalid"):
                opts["padding"] = tok[1:]
            elif tok[0] in "ksdgp" and len(tok) > 1 and tok[1].isdigit():
                key = {"k": "kernel_size", "s": "stride", "p": "padding", "d": "dilation", "g": "groups"}[tok[0]]
                opts[key] = _int_or_tuple(tok[1:], key.replace("_", " "), spec)
            elif tok.isdigit():
                positional.append(tok)
            else:
                raise bad(tok)
        if "kernel_size" not in opts:
            raise CnnlabError(f"layer {spec!r} needs a kernel size, e.g. k3")
        if kind == "conv":
            if len(positional) != 1:
                raise CnnlabError(f"layer {spec!r} needs its number of output channels, e.g. 'conv 64 k3'")
            if "mode" in opts or "ceil_mode" in opts:
                raise CnnlabError(f"layer {spec!r}: max/avg/min and ceil belong to pooling layers")
            return conv(shape, int(positional[0]), **opts)
        if positional or "groups" in opts or "bias" in opts or "padding_mode" in opts:
            raise CnnlabError(f"layer {spec!r}: pooling takes only k, s, p, d, max|avg|min and ceil")
        return pool(shape, **opts)
    if kind in ("gap", "gmp", "gmin"):
        if rest:
            raise bad(rest[0])
        return global_pool(shape, {"gap": "avg", "gmp": "max", "gmin": "min"}[kind])
    if kind == "adaptive":
        if not rest:
            raise CnnlabError(f"layer {spec!r} needs an output size, e.g. 'adaptive 6x6'")
        mode = "avg"
        if len(rest) > 1:
            if rest[1] not in ("avg", "max") or len(rest) > 2:
                raise bad(rest[-1])
            mode = rest[1]
        return adaptive_pool(shape, _int_or_tuple(rest[0], "output size", spec), mode)
    if kind == "flatten":
        if rest:
            raise bad(rest[0])
        return flatten(shape)
    if kind in ("fc", "linear"):
        bias = True
        outs = []
        for tok in rest:
            if tok in ("nobias", "no-bias"):
                bias = False
            elif tok.isdigit():
                outs.append(int(tok))
            else:
                raise bad(tok)
        if len(outs) != 1:
            raise CnnlabError(f"layer {spec!r} needs its number of outputs, e.g. 'fc 128'")
        return linear(shape, outs[0], bias)
    if kind in ("bn", "batchnorm"):
        if rest:
            raise bad(rest[0])
        return norm(shape)
    if kind in ("relu", "dropout", "lrn", "sigmoid", "tanh"):
        if rest and kind != "dropout":
            raise bad(rest[0])
        return identity(shape, {"relu": "ReLU", "dropout": "Dropout", "lrn": "LocalResponseNorm",
                                "sigmoid": "Sigmoid", "tanh": "Tanh"}[kind])
    raise CnnlabError(
        f"unknown layer type {kind!r} in {spec!r}: use conv, pool, gap, gmp, adaptive, flatten, fc, bn, relu, "
        "dropout or lrn"
    )


# --------------------------------------------------------------------------------------
# Stacks of layers
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackRow:
    spec: str
    layer: LayerResult
    receptive_field: ReceptiveField | None
    covers_input: bool

    def to_dict(self) -> dict[str, Any]:
        d = {"spec": self.spec, **self.layer.to_dict()}
        d["receptive_field"] = None if self.receptive_field is None else self.receptive_field.to_dict()
        d["covers_whole_input"] = self.covers_input
        return d


@dataclass(frozen=True)
class StackResult:
    """A chain of layers applied to an input: one row per layer, with totals."""

    input_shape: tuple[int, ...]
    rows: tuple[StackRow, ...] = field(default_factory=tuple)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.rows[-1].layer.output_shape if self.rows else self.input_shape

    @property
    def params(self) -> int:
        return sum(r.layer.params for r in self.rows)

    @property
    def macs(self) -> int:
        return sum(r.layer.macs for r in self.rows)

    @property
    def receptive_field(self) -> ReceptiveField | None:
        return self.rows[-1].receptive_field if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        rf = self.receptive_field
        return {
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "layers": [r.to_dict() for r in self.rows],
            "totals": {
                "params": self.params,
                "macs": self.macs,
                "receptive_field": None if rf is None else rf.to_dict(),
            },
            "conventions": CONVENTIONS,
        }


CONVENTIONS = {
    "params": "weights + biases; batch-norm running statistics are buffers, not parameters",
    "macs": "multiply-accumulates of convolutions and linear layers, bias not counted, per sample",
    "receptive_field": "size r, stride j and effective padding p per spatial axis (Araujo et al., Distill 2019)",
}


def stack(input_shape: Sequence[int] | str, layers: Sequence[str | LayerResult]) -> StackResult:
    """Apply layers in order; each is a spec string (see ``STACK_GRAMMAR``) or a ready result.

    >>> s = stack("1x28x28", ["conv 32 k5", "pool k2", "flatten", "fc 10"])
    >>> s.output_shape, s.params
    ((10,), 46922)
    """
    shape = parse_shape(input_shape) if isinstance(input_shape, str) else tuple(input_shape)
    _check_positive("every input dimension", shape)
    ndim = len(shape) - 1
    rf: ReceptiveField | None = ReceptiveField.of_input(ndim) if ndim else None
    rows = []
    current = shape
    for i, item in enumerate(layers, 1):
        if isinstance(item, LayerResult):
            if tuple(item.input_shape) != tuple(current):
                raise CnnlabError(
                    f"layer {i} expects {fmt_shape(item.input_shape)} but receives {fmt_shape(current)}"
                )
            layer, spec = item, item.description
        else:
            try:
                layer, spec = parse_layer(item, current), item
            except CnnlabError as exc:
                raise CnnlabError(f"layer {i} ({item}): {exc}") from None
        if rf is not None and layer.rf_kernel is not None:
            rf = layer.receptive_field(rf)
        covers = rf is not None and all(r >= n for r, n in zip(rf.size, shape[1:], strict=True))
        rows.append(StackRow(spec, layer, rf, covers))
        current = layer.output_shape
    return StackResult(shape, tuple(rows))
