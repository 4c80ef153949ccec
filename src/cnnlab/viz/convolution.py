"""One convolution layer of a real network at work on one image, channel by channel.

    parts = conv_breakdown(model, x, "features.3", after=["features.4", "features.5"], filter=2)

For one filter ``f`` of a 2-D convolution, the output map is the sum over the input channels
of each channel convolved with its slice of the filter, plus the filter's bias:

    z_f = sum_c (W[f, c] * x_c) + b_f

The breakdown keeps the terms of that sum apart (``partials``, one map per input channel), so
a reader can check any output value by hand, then runs the modules that follow the layer in
the network (batch norm, activation, pooling: see :func:`following`) on the whole output.
Every tensor comes from the model's own modules and weights; nothing is re-implemented.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.viz.common import conv_layers, layer_error

__all__ = ["FOLLOWERS", "Breakdown", "conv_breakdown", "following", "rounded"]

# Modules that act on one tensor and may follow a convolution in the breakdown: normalisation,
# activations, then at most one pooling layer, where the breakdown stops.
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
FOLLOWERS = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Tanh, nn.Sigmoid,
             nn.Hardswish, nn.LocalResponseNorm, *_POOLS)


@dataclass
class Breakdown:
    """The numbers of one convolution on one input (batch of one), for ``filter`` in detail."""

    name: str
    conv: nn.Conv2d
    padded: torch.Tensor  # the layer's input as the kernel sees it (padding added): C x Hp x Wp
    pad: tuple[int, int, int, int]  # left, right, top, bottom
    output: torch.Tensor  # the conv's output, bias included: K x OH x OW
    filter: int
    channels: list[int]  # the input channels filter ``filter`` reads (its group's)
    partials: torch.Tensor  # one map per channel of ``channels``: len(channels) x OH x OW
    stages: list[tuple[str, nn.Module, torch.Tensor]]  # (name, module, output K x h x w) after the conv
    logits: torch.Tensor  # the model's output for ``x``


def following(records: Sequence[Any], scope: str) -> list[str]:
    """The modules applied one after another to the output of the module ``scope``, in the traced graph.

    ``records`` are the analyzer's nodes (:class:`~cnnlab.analysis.records.LayerRecord`). The chain
    goes on while a node has one consumer, that consumer reads nothing else and it is a module of
    a kind in :data:`FOLLOWERS` (told by ``op``, its class name); it stops after the first pooling.
    """
    consumers: dict[str, list[Any]] = {}
    for r in records:
        for i in r.inputs:
            consumers.setdefault(i, []).append(r)
    allowed = {cls.__name__ for cls in FOLLOWERS}
    pools = {cls.__name__ for cls in _POOLS}
    node = next((r for r in records if r.kind == "module" and r.scope == scope), None)
    chain: list[str] = []
    while node is not None and len(consumers.get(node.name, [])) == 1:
        (nxt,) = consumers[node.name]
        if nxt.kind != "module" or nxt.op not in allowed or len(nxt.inputs) != 1:
            break
        chain.append(nxt.scope)
        if nxt.op in pools:
            break
        node = nxt
    return chain


def _padded(conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``x`` (1 x C x H x W) with the convolution's own padding added, and the amounts (left, right, top, bottom)."""
    left, right, top, bottom = (int(p) for p in conv._reversed_padding_repeated_twice)
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return F.pad(x, (left, right, top, bottom), mode=mode), (left, right, top, bottom)


@torch.no_grad()
def conv_breakdown(model: nn.Module, x: torch.Tensor, layer: str, after: Sequence[str] = (),
                   filter: int = 0) -> Breakdown:
    """Run ``model`` on ``x`` (1 x C x H x W), keep the input of the convolution ``layer`` (its first
    call), and split filter ``filter``'s output into one map per input channel.

    ``after`` names the modules applied to the layer's output in turn (see :func:`following`).
    """
    convs = dict(conv_layers(model))
    if layer not in convs:
        raise layer_error(layer, list(convs), "convolution")
    conv = convs[layer]
    if not 0 <= filter < conv.out_channels:
        raise CnnlabError(f"filter must be from 0 to {conv.out_channels - 1}: {layer} has {conv.out_channels} "
                          f"filters, got {filter}")
    seen: list[torch.Tensor] = []

    def keep(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if not seen:
            seen.append(inputs[0].detach().clone())

    handle = conv.register_forward_pre_hook(keep)
    try:
        logits = model(x)
    finally:
        handle.remove()
    inp = seen[0][:1]
    output = conv(inp).float()  # the layer's own computation, bias included
    weight = conv.weight.float()
    padded, pad = _padded(conv, inp.float())
    per_group = conv.in_channels // conv.groups
    group = filter // (conv.out_channels // conv.groups)
    channels = list(range(group * per_group, (group + 1) * per_group))
    # Each channel with its own slice of the filter: a depthwise convolution, one map per channel.
    partials = F.conv2d(padded[:, channels], weight[filter][:, None], None, conv.stride, 0, conv.dilation,
                        groups=len(channels))
    modules = dict(model.named_modules())
    stages, current = [], output
    for name in after:
        module = modules[name]
        current = module(current.clone())  # an in-place activation must not change the stage before
        stages.append((name, module, current[0]))
    return Breakdown(name=layer, conv=conv, padded=padded[0], pad=pad, output=output[0], filter=filter,
                     channels=channels, partials=partials[0], stages=stages,
                     logits=logits if isinstance(logits, torch.Tensor) else logits[0])


def rounded(values: torch.Tensor | np.ndarray, digits: int = 5) -> Any:
    """Nested lists of ``values`` rounded to ``digits`` significant digits (JSON stays small and readable)."""
    arr = np.asarray(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, np.float64)
    mag = np.floor(np.log10(np.where(arr == 0, 1.0, np.abs(arr))))
    scale = 10.0 ** (digits - 1 - mag)
    return (np.round(arr * scale) / scale).tolist()
