"""Per-operation rules: multiply-accumulates, FLOPs and the receptive-field step of each node.

Conventions (stated again in every report):
- MACs: multiply-accumulates of convolutions and linear layers, bias not counted.
- FLOPs: 2 per MAC for convolutions and linear layers (as ``torch.utils.flop_counter`` counts
  them), plus the other operations at these rates: batch norm 2 per element (scale and shift),
  activations 1 per element, element-wise add/sub/mul/div 1 per output element, max/avg
  pooling one per window element per output, adaptive and global pooling and ``mean`` one per
  input element, local response norm ``size + 3`` per element, dropout/identity/shape
  operations 0.
- An operation without a rule of its own is counted at the operator level
  (:mod:`cnnlab.analysis.aten`): its MACs exactly, its FLOPs where every operator it ran has a
  rate. What stays unknown (a node that ran no operator the counter saw, an operator without a
  rate, a receptive field without a rule) makes the total it feeds unknown; it is never counted
  as a silent zero.

Convolutions and pooling reuse :mod:`cnnlab.shapes`, so their explanations are the same
formula lines the calculator prints.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import shapes
from cnnlab.analysis.trace import VIEW_OPS, Node

__all__ = ["OpInfo", "RFStep", "rule_for"]


@dataclass(frozen=True)
class RFStep:
    """How a node changes the receptive field.

    kind: "step" (kernel/stride/padding over the map's axes), "same" (pointwise), "merge"
    (add/cat/product of branches), "global" (the whole map collapses: flatten, global pooling),
    "lastdim" (a linear map over the last axis at every position: fine while that axis is not
    spatial), "move" (the spatial axes move: permute, transpose, reshape; ``remap`` gives their
    new positions from the old ones, the shapes and the map's grid, or "global", or None when it
    cannot tell), "attend" (attention: every position sees every other, so every unit sees all
    that the positions see), "unknown" (no rule).
    """

    kind: str
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    remap: Callable[[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]], Any] | None = None


SAME = RFStep("same")
MERGE = RFStep("merge")
GLOBAL = RFStep("global")
LASTDIM = RFStep("lastdim")
ATTEND = RFStep("attend")
UNKNOWN = RFStep("unknown")


def _reshaped(axes: tuple[int, ...], i: tuple[int, ...], o: tuple[int, ...],
              grid: tuple[int, ...]) -> tuple[int, ...] | str | None:
    """Where a reshape (view, flatten, unflatten, squeeze, unsqueeze) puts the spatial axes.

    They keep their meaning when they stay one block with as many elements before and after it:
    as the same axes (channel shuffles, a batch of groups), merged into one axis of tokens (a
    vision transformer's patches), or a token axis unfolded back into the map's ``grid``.
    Flattening them into a vector collapses the map ("global").
    """
    if tuple(o) == tuple(i):
        return axes
    if list(axes) != list(range(axes[0], axes[-1] + 1)):
        return None
    block = tuple(i[axes[0]: axes[-1] + 1])
    before, after = math.prod(i[: axes[0]]), math.prod(i[axes[-1] + 1:])
    for shape in dict.fromkeys((block, (math.prod(block),), tuple(grid))):  # same axes, tokens, the map again
        if math.prod(shape) != math.prod(block):
            continue
        for k in range(len(o) - len(shape) + 1):
            if tuple(o[k: k + len(shape)]) == shape and math.prod(o[:k]) == before and \
                    math.prod(o[k + len(shape):]) == after:
                return tuple(range(k, k + len(shape)))
    return "global" if len(o) <= 2 < len(i) else None


RESHAPE = RFStep("move", remap=_reshaped)


def _kept(axes: tuple[int, ...], i: tuple[int, ...], o: tuple[int, ...], grid: tuple[int, ...]) -> tuple[int, ...] | None:
    """A split, chunk, narrow or selection along other axes: the spatial axes stay where they are."""
    return axes if len(o) == len(i) and all(o[a] == i[a] for a in axes) else None


SPLIT = RFStep("move", remap=_kept)


def _permuted(dims: Sequence[int]) -> RFStep:
    def remap(axes: tuple[int, ...], i: tuple[int, ...], o: tuple[int, ...], grid: tuple[int, ...]) -> Any:
        order = [d % len(i) for d in dims]
        if sorted(order) != list(range(len(i))):
            return None
        return tuple(order.index(a) for a in axes)

    return RFStep("move", remap=remap)


def _transposed(d0: int, d1: int) -> RFStep:
    def remap(axes: tuple[int, ...], i: tuple[int, ...], o: tuple[int, ...], grid: tuple[int, ...]) -> Any:
        a, b = d0 % len(i), d1 % len(i)
        return tuple(b if x == a else a if x == b else x for x in axes)

    return RFStep("move", remap=remap)


@dataclass(frozen=True)
class OpInfo:
    op: str
    macs: int | None = 0  # None: unknown
    flops: int | None = 0
    rf: RFStep = SAME
    supported: bool = True  # has a rule (its own, or the operator-level count)
    lines: tuple[str, ...] = ()


def _numel(shape: Sequence[int] | None) -> int:
    return math.prod(shape) if shape else 0


def _step(result: shapes.LayerResult) -> RFStep:
    if result.rf_kernel is None:
        return SAME
    return RFStep("step", result.rf_kernel, result.rf_stride or (), result.rf_padding or ())


def _batch(node: Node) -> int:
    shape = node.input_shapes[0] if node.input_shapes else node.output_shape
    return shape[0] if shape else 1


# --------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
                nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.LogSigmoid,
                nn.Softmax, nn.LogSoftmax, nn.Threshold)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _conv_module(m: nn.modules.conv._ConvNd, node: Node) -> OpInfo:
    in_shape = node.input_shapes[0]
    name = type(m).__name__
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        k = math.prod(m.kernel_size)
        macs = _numel(in_shape) * (m.out_channels // m.groups) * k
        return OpInfo(name, macs, 2 * macs, UNKNOWN, True, (
            f"{name}: MACs = N*C_in*{'*'.join('I' for _ in m.kernel_size)} * C_out/groups*K = {macs:,}",
            "receptive field: a transposed convolution spreads one input over several outputs; not propagated",
        ))
    padding: Any = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    r = shapes.conv(in_shape[1:], m.out_channels, tuple(m.kernel_size), tuple(m.stride), padding,
                    tuple(m.dilation), m.groups, m.bias is not None, m.padding_mode)
    macs = r.macs * in_shape[0]
    return OpInfo(name, macs, 2 * macs, _step(r), True, (*r.lines, *r.notes))


def _pool_module(m: nn.Module, node: Node) -> OpInfo:
    in_shape = node.input_shapes[0]
    name = type(m).__name__
    mode = "max" if isinstance(m, nn.modules.pooling._MaxPoolNd) else "avg"
    dilation = m.dilation if mode == "max" else 1
    r = shapes.pool(in_shape[1:], m.kernel_size, m.stride, m.padding, dilation, bool(m.ceil_mode), mode)
    window = math.prod(r.rf_kernel or (1,)) if mode == "avg" else math.prod(_as_tuple(m.kernel_size, len(in_shape) - 2))
    flops = _numel(node.output_shape) * window
    return OpInfo(name, 0, flops, _step(r), True, (*r.lines, *r.notes))


def _as_tuple(value: Any, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _adaptive(in_shape: tuple[int, ...], out_shape: tuple[int, ...], mode: str, name: str) -> OpInfo:
    r = shapes.adaptive_pool(in_shape[1:], out_shape[2:], mode)
    step = GLOBAL if all(o == 1 for o in out_shape[2:]) else _step(r)
    return OpInfo(name, 0, _numel(in_shape), step, True, (*r.lines, *r.notes))


def _module_rule(m: nn.Module, node: Node) -> OpInfo:
    name = type(m).__name__
    in_shape = node.input_shapes[0] if node.input_shapes else None
    out_numel = _numel(node.output_shape)
    if isinstance(m, nn.modules.conv._ConvNd):
        return _conv_module(m, node)
    if isinstance(m, nn.Linear):
        rows = _numel(in_shape[:-1]) if in_shape else 0
        macs = rows * m.in_features * m.out_features
        lines = shapes.linear(m.in_features, m.out_features, m.bias is not None).lines
        return OpInfo(name, macs, 2 * macs, LASTDIM, True, lines)
    if isinstance(m, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        return _pool_module(m, node)
    if isinstance(m, (nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd)):
        mode = "max" if isinstance(m, nn.modules.pooling._AdaptiveMaxPoolNd) else "avg"
        return _adaptive(in_shape, node.output_shape, mode, name)
    if isinstance(m, _NORMS):
        return OpInfo(name, 0, 2 * out_numel, SAME, True, (f"{name}: 2 FLOPs per element (scale and shift)",))
    if isinstance(m, _ACTIVATIONS):
        return OpInfo(name, 0, out_numel, SAME, True, (f"{name}: 1 FLOP per element",))
    if isinstance(m, nn.LocalResponseNorm):
        per = m.size + 3
        return OpInfo(name, 0, per * out_numel, SAME, True, (
            f"{name}(size {m.size}): {per} FLOPs per element (square, sum over {m.size} channels, scale, power, "
            "divide); channel-wise, so the spatial receptive field is unchanged",))
    if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)):
        return OpInfo(name, 0, 0, SAME, True, (f"{name}: identity at inference, 0 FLOPs",))
    if type(m).__name__ == "Permute" and isinstance(getattr(m, "dims", None), (list, tuple)):
        return OpInfo(name, 0, 0, _permuted(m.dims), True, (f"{name}{tuple(m.dims)}: moves axes, 0 FLOPs",))
    if isinstance(m, _PAD_MODULES):
        return _pad_module(m, node)
    if isinstance(m, nn.Flatten):
        return OpInfo(name, 0, 0, _flatten_step(in_shape, m.start_dim), True, ("Flatten: a view, 0 FLOPs",))
    if isinstance(m, (nn.Upsample,)):
        return OpInfo(name, 0, out_numel, UNKNOWN, True, (f"{name}: 1 FLOP per output element; receptive "
                                                         "field not propagated through upsampling",))
    return OpInfo(name, supported=False, rf=UNKNOWN)


_PAD_MODULES = (nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
                nn.modules.padding._ReplicationPadNd, nn.ZeroPad2d, nn.CircularPad1d, nn.CircularPad2d,
                nn.CircularPad3d)


def _pad_module(m: nn.Module, node: Node) -> OpInfo:
    """Padding modules: no arithmetic; padding the spatial axes shifts the field (whatever the fill)."""
    nd = len(node.input_shapes[0]) - 2
    pads = tuple(m.padding) if isinstance(m.padding, (tuple, list)) else (m.padding,) * (2 * nd)
    return OpInfo(type(m).__name__, 0, 0, _pad_step(pads, nd), True,
                  (f"{type(m).__name__}{pads}: copies memory, 0 FLOPs",))


def _flatten_step(in_shape: tuple[int, ...] | None, start_dim: int) -> RFStep:
    """Flattening the map into a vector collapses it; flattening channels alone or the axes into tokens is a
    reshape like any other."""
    return SAME if in_shape is None or len(in_shape) <= 2 else RESHAPE


# --------------------------------------------------------------------------------------
# Functions and methods
# --------------------------------------------------------------------------------------


def _bind(node: Node, names: Sequence[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """Map a functional call's positional and keyword arguments onto parameter names."""
    bound = dict(defaults)
    bound.update(dict(zip(names, node.args, strict=False)))
    bound.update(node.kwargs)
    return bound


_POOL_FUNCS = {
    F.max_pool1d: ("max", 1), F.max_pool2d: ("max", 2), F.max_pool3d: ("max", 3),
    F.avg_pool1d: ("avg", 1), F.avg_pool2d: ("avg", 2), F.avg_pool3d: ("avg", 3),
}
_ADAPTIVE_FUNCS = {
    F.adaptive_avg_pool1d: "avg", F.adaptive_avg_pool2d: "avg", F.adaptive_avg_pool3d: "avg",
    F.adaptive_max_pool1d: "max", F.adaptive_max_pool2d: "max", F.adaptive_max_pool3d: "max",
}
_ELEMENTWISE_FUNCS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.imul,
                      operator.neg, operator.pow, torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.pow,
                      torch.square, torch.abs, torch.sqrt, torch.exp, torch.log}
_ACTIVATION_FUNCS = {F.relu, torch.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.elu, torch.sigmoid,
                     F.sigmoid, torch.tanh, F.tanh, F.hardswish, F.softmax, torch.softmax, F.log_softmax}
_CAT_FUNCS = {torch.cat, torch.concat, torch.stack}
_FLATTEN_FUNCS = {torch.flatten}
_ZERO_FUNCS = {F.dropout, F.dropout2d, torch.dropout, getattr, torch.reshape, torch.squeeze, torch.unsqueeze,
               torch.clone}
_SPLIT_FUNCS = {torch.split, torch.chunk, torch.narrow, torch.tensor_split}
_SPLIT_METHODS = {"split", "chunk", "narrow", "tensor_split"}
try:  # torchvision's residual-branch dropout (identity at inference), a leaf function of its traces
    from torchvision.ops import stochastic_depth as _stochastic_depth

    _ZERO_FUNCS.add(_stochastic_depth)
except ImportError:  # pragma: no cover - torchvision is a dependency
    pass


def _pool_function(node: Node, mode: str, nd: int) -> OpInfo:
    names = ["input", "kernel_size", "stride", "padding"] + (
        ["dilation", "ceil_mode", "return_indices"] if mode == "max" else ["ceil_mode", "count_include_pad"])
    a = _bind(node, names, {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False})
    stride = a["stride"] if a["stride"] not in (None, [], ()) else None
    r = shapes.pool(node.input_shapes[0][1:], a["kernel_size"], stride, a["padding"], a["dilation"],
                    bool(a["ceil_mode"]), mode)
    window = math.prod(_as_tuple(a["kernel_size"], nd))
    return OpInfo(f"{mode}_pool{nd}d", 0, _numel(node.output_shape) * window, _step(r), True, (*r.lines, *r.notes))


def _function_rule(node: Node) -> OpInfo:
    fn = node.target
    out_numel = _numel(node.output_shape)
    label = getattr(fn, "__name__", str(fn))
    if fn in _POOL_FUNCS:
        return _pool_function(node, *_POOL_FUNCS[fn])
    if fn in _ADAPTIVE_FUNCS:
        return _adaptive(node.input_shapes[0], node.output_shape, _ADAPTIVE_FUNCS[fn], label)
    if fn in _ELEMENTWISE_FUNCS:
        merge = len(node.input_shapes) > 1
        return OpInfo(label, 0, out_numel, MERGE if merge else SAME, True, (f"{label}: 1 FLOP per output element",))
    if fn in _ACTIVATION_FUNCS:
        return OpInfo(label, 0, out_numel, SAME, True, (f"{label}: 1 FLOP per element",))
    if fn in _CAT_FUNCS:
        dim = _bind(node, ["tensors", "dim"], {"dim": 0})["dim"]
        rank = len(node.output_shape) if node.output_shape else 0
        channel_cat = rank > 2 and dim % rank == 1
        return OpInfo(label, 0, 0, MERGE if channel_cat else UNKNOWN, True,
                      (f"{label} along dim {dim}: copies memory, 0 FLOPs",))
    if fn in _FLATTEN_FUNCS:
        start = _bind(node, ["input", "start_dim"], {"start_dim": 0})["start_dim"]
        return OpInfo(label, 0, 0, _flatten_step(node.input_shapes[0], start), True, ("flatten: a view, 0 FLOPs",))
    if fn is torch.permute:
        dims = _bind(node, ["input", "dims"], {})["dims"]
        return OpInfo(label, 0, 0, _permuted(dims), True, ("permute: moves axes, 0 FLOPs",))
    if fn in (torch.transpose, torch.swapaxes):
        a = _bind(node, ["input", "dim0", "dim1"], {})
        return OpInfo(label, 0, 0, _transposed(a["dim0"], a["dim1"]), True, (f"{label}: moves axes, 0 FLOPs",))
    if fn in (F.layer_norm, F.group_norm, F.batch_norm, F.instance_norm):
        return OpInfo(label, 0, 2 * out_numel, SAME, True, (f"{label}: 2 FLOPs per element (scale and shift)",))
    if fn in (torch.mean, torch.sum, torch.amax, torch.amin):
        return _mean(node, label)
    if fn in _SPLIT_FUNCS:
        return OpInfo(label, 0, 0, SPLIT, True, (f"{label}: views of parts, 0 FLOPs",))
    if fn in _ZERO_FUNCS:
        return OpInfo(label, 0, 0, _shape_kept(node), True, (f"{label}: no arithmetic",))
    if fn is operator.getitem:
        return _getitem(node)
    if fn is F.pad:
        return _pad(node)
    if fn is F.interpolate:
        return OpInfo(label, 0, out_numel, UNKNOWN, True, ("interpolate: 1 FLOP per output element; receptive "
                                                          "field not propagated through resampling",))
    if fn in (F.conv1d, F.conv2d, F.conv3d, F.linear):
        return _functional_weighted(node, label)
    return OpInfo(label, supported=False, rf=UNKNOWN)


def _getitem(node: Node) -> OpInfo:
    """Indexing: a crop or strided subsampling of the spatial axes steps the field like a 1x1
    kernel with that stride, the crop's start acting as negative padding."""
    step = _shape_kept(node)
    index = node.args[1] if len(node.args) > 1 else None
    in_shape = node.input_shapes[0] if node.input_shapes else ()
    out_shape = node.output_shape or ()
    cropped = len(in_shape) == len(out_shape) > 2 and tuple(in_shape[2:]) != tuple(out_shape[2:])
    if cropped and isinstance(index, tuple):
        spatial = list(index[2:]) + [slice(None)] * (len(in_shape) - 2 - len(index[2:]))
        if len(index) >= 2 and all(isinstance(i, slice) for i in index[:2]) and all(
                isinstance(i, slice) and all(v is None or (isinstance(v, int) and v >= 0)
                                             for v in (i.start, i.stop, i.step)) for i in spatial):
            strides = tuple(i.step or 1 for i in spatial)
            starts = tuple(-(i.start or 0) for i in spatial)
            step = RFStep("step", (1,) * len(spatial), strides, starts)
    return OpInfo("getitem", 0, 0, step, True, ("indexing: no arithmetic",))


def _pad(node: Node) -> OpInfo:
    """F.pad: padding the spatial axes shifts the field; padding channels leaves it alone."""
    pads = _bind(node, ["input", "pad", "mode", "value"], {"mode": "constant"})["pad"]
    return OpInfo("pad", 0, 0, _pad_step(tuple(pads), len(node.input_shapes[0]) - 2), True,
                  ("pad: copies memory, 0 FLOPs",))


def _pad_step(pads: tuple[int, ...], nd: int) -> RFStep:
    """Pads given last dimension first, (before, after) each, as F.pad takes them."""
    pairs = [(pads[i], pads[i + 1]) for i in range(0, len(pads), 2)]
    spatial = list(reversed(pairs[:nd])) + [(0, 0)] * (nd - len(pairs[:nd]))
    if not all(isinstance(p, int) for pair in spatial for p in pair):
        return UNKNOWN  # amounts the rules cannot see
    if all(p == (0, 0) for p in spatial):
        return SAME
    if len(pairs) > nd or any(b < 0 or a < 0 for b, a in spatial):
        return UNKNOWN  # channel padding or cropping by negative pads: no rule here
    return RFStep("step", (1,) * nd, (1,) * nd, tuple(before for before, _ in spatial))


def _shape_kept(node: Node) -> RFStep:
    """A view, a split or indexing keeps the field where the spatial axes survive as one block."""
    if not node.input_shapes or node.output_shape is None:
        return SAME
    return RESHAPE


def _mean(node: Node, label: str) -> OpInfo:
    in_shape = node.input_shapes[0]
    out = node.output_shape or ()
    step = GLOBAL if len(in_shape) > 2 and _numel(out[2:] if len(out) > 2 else ()) <= 1 else _shape_kept(node)
    return OpInfo(label, 0, _numel(in_shape), step, True, (f"{label}: a reduction, 1 FLOP per input element",))


def _functional_weighted(node: Node, label: str) -> OpInfo:
    """F.conv2d / F.linear called with weights from get_attr: costs from the shapes."""
    x = node.input_shapes[0]
    w = node.input_shapes[1] if len(node.input_shapes) > 1 else None
    if w is None:
        return OpInfo(label, supported=False, rf=UNKNOWN)
    if label == "linear":
        macs = _numel(x[:-1]) * w[0] * w[1]
        return OpInfo(label, macs, 2 * macs, LASTDIM, True, (f"linear: MACs {macs:,}",))
    macs = _numel(node.output_shape) * _numel(w[1:])
    a = _bind(node, ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
              {"stride": 1, "padding": 0, "dilation": 1})
    nd = len(x) - 2
    k = tuple(w[2:])
    dil = _as_tuple(a["dilation"], nd)
    pad = a["padding"]
    if isinstance(pad, str):
        pads = tuple((d * (kk - 1)) // 2 if pad == "same" else 0 for kk, d in zip(k, dil, strict=True))
    else:
        pads = _as_tuple(pad, nd)
    eff = tuple(d * (kk - 1) + 1 for kk, d in zip(k, dil, strict=True))
    return OpInfo(label, macs, 2 * macs, RFStep("step", eff, _as_tuple(a["stride"], nd), pads), True,
                  (f"{label}: MACs = output elements * C_in/groups*K = {macs:,}",))


_METHOD_ELEMENTWISE = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "neg", "__add__", "__mul__",
                       "pow", "square", "abs", "sqrt", "exp", "log"}
_METHOD_ACTIVATIONS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "softmax", "clamp", "clamp_"}


def _method_rule(node: Node) -> OpInfo:
    name = str(node.target)
    out_numel = _numel(node.output_shape)
    if name in _METHOD_ELEMENTWISE:
        merge = len(node.input_shapes) > 1
        return OpInfo(name, 0, out_numel, MERGE if merge else SAME, True, (f"{name}: 1 FLOP per output element",))
    if name in _METHOD_ACTIVATIONS:
        return OpInfo(name, 0, out_numel, SAME, True, (f"{name}: 1 FLOP per element",))
    if name in ("mean", "sum", "amax", "amin"):
        return _mean(node, name)
    if name == "flatten":
        start = _bind(node, ["self", "start_dim"], {"start_dim": 0})["start_dim"]
        return OpInfo(name, 0, 0, _flatten_step(node.input_shapes[0], start), True, ("flatten: a view, 0 FLOPs",))
    if name == "permute":
        dims = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (list, tuple)) else node.args[1:]
        return OpInfo(name, 0, 0, _permuted(dims), True, ("permute: moves axes, 0 FLOPs",))
    if name in ("transpose", "swapaxes") and len(node.args) == 3:
        return OpInfo(name, 0, 0, _transposed(node.args[1], node.args[2]), True, (f"{name}: moves axes, 0 FLOPs",))
    if name == "t":
        return OpInfo(name, 0, 0, _transposed(0, 1), True, ("t: moves axes, 0 FLOPs",))
    if name in _SPLIT_METHODS:
        return OpInfo(name, 0, 0, SPLIT, True, (f"{name}: views of parts, 0 FLOPs",))
    if name in VIEW_OPS:
        return OpInfo(name, 0, 0, _shape_kept(node), True, (f"{name}: no arithmetic",))
    return OpInfo(name, supported=False, rf=UNKNOWN)


def rule_for(node: Node) -> OpInfo:
    """The costs and receptive-field step of one traced node: its own rule, else the operators it ran."""
    info = _own_rule(node)
    if info.supported:
        return info
    if node.aten is None:  # nothing seen it run: its costs are unknown, never a silent zero
        return OpInfo(info.op, None, None, UNKNOWN, False, ("no counting rule for this operation",))
    count = node.aten
    attention = _is_attention(node)
    return OpInfo(info.op, count.macs, count.flops, ATTEND if attention else UNKNOWN, True,
                  (*count.lines(), "receptive field: attention, every position sees every other" if attention
                   else "receptive field: no rule for this operation"))


def _is_attention(node: Node) -> bool:
    """Multi-head attention or scaled dot-product attention over all positions (not windows)."""
    return (node.kind == "module" and isinstance(node.target, nn.MultiheadAttention)) or (
        node.kind == "function" and node.target is F.scaled_dot_product_attention)


def _torch_forward(m: nn.Module) -> bool:
    """Whether ``m`` runs the forward of the torch.nn class it derives from, the one a module rule
    describes. A subclass with a forward of its own (timm's Conv2dSame pads its input first) is
    counted by the operators it runs instead."""
    base = next((c for c in type(m).__mro__ if c.__module__.startswith("torch.nn.")), None)
    return base is not None and base is not nn.Module and type(m).forward is base.forward


def _own_rule(node: Node) -> OpInfo:
    if node.kind == "module":
        if not node.input_shapes or not _torch_forward(node.target):
            return OpInfo(type(node.target).__name__, supported=False, rf=UNKNOWN)
        return _module_rule(node.target, node)
    if node.kind == "function":
        if not node.input_shapes:
            return OpInfo(getattr(node.target, "__name__", str(node.target)), 0, 0, SAME, True, ("constant",))
        return _function_rule(node)
    if node.kind == "method":
        if not node.input_shapes:
            return OpInfo(str(node.target), 0, 0, SAME, True, ("constant",))
        return _method_rule(node)
    if node.kind == "input":
        return OpInfo("input")
    if node.kind == "output":
        return OpInfo("output")
    return OpInfo("parameter", rf=SAME)
