"""A measured receptive field, to check the analyzer's computed one against.

The model is made monotone so that no path through it can hide: every parameter positive,
batch-norm statistics neutral, max pooling replaced by average pooling of the same window
(a max passes its gradient to one pixel only), activations that saturate replaced by the
identity, and the input all ones, so every activation works on positive values and passes a
gradient. Then the gradient of one central unit of a
layer's output with respect to the input is nonzero exactly on the pixels that unit depends
on; its extent per axis is the measured field.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn


def monotone(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode with positive weights and average instead of max pooling."""
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.abs() + 1e-3)
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    for name, m in list(net.named_modules()):
        replacement = None
        if isinstance(m, nn.MaxPool2d) and m.dilation in (1, (1, 1)):
            replacement = nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        elif isinstance(m, nn.AdaptiveMaxPool2d):
            replacement = nn.AdaptiveAvgPool2d(m.output_size)
        elif isinstance(m, (nn.Hardsigmoid, nn.Hardswish, nn.ReLU6, nn.Hardtanh)):
            replacement = nn.Identity()  # they saturate on large inputs: a flat gradient would hide a path
        if replacement is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(net.get_submodule(parent_name) if parent_name else net, child, replacement)
    return net


def measured_extent(model: nn.Module, size: Sequence[int], layer: str) -> tuple[list[int], list[int]]:
    """(extent per spatial axis, index of the central unit) of the input pixels that move the central unit of
    module ``layer``'s output (summed over channels), in the monotone copy of ``model``."""
    net = monotone(model)
    captured: list[torch.Tensor] = []
    handle = net.get_submodule(layer).register_forward_hook(lambda _m, _a, out: captured.append(out))
    x = torch.ones(1, *size, dtype=torch.float64, requires_grad=True)
    try:
        net(x)
    finally:
        handle.remove()
    out = captured[0]
    centre = [s // 2 for s in out.shape[2:]]
    out[(0, slice(None), *centre)].sum().backward()
    moved = x.grad[0].abs().sum(0) > 0
    extent = []
    for axis in range(moved.dim()):
        other = tuple(a for a in range(moved.dim()) if a != axis)
        hit = moved.any(dim=other).nonzero().flatten() if other else moved.nonzero().flatten()
        extent.append(int(hit.max() - hit.min() + 1) if hit.numel() else 0)
    return extent, centre


def computed_extent(rf_size: Sequence[int], rf_stride: Sequence[int], rf_padding: Sequence[int],
                    centre: Sequence[int], size: Sequence[int]) -> list[int]:
    """The analyzer's field of unit ``centre``, clipped to the input: what the measurement can see of it."""
    extent = []
    for r, j, p, u, n in zip(rf_size, rf_stride, rf_padding, centre, size[1:], strict=True):
        start = u * j - p
        extent.append(min(start + r - 1, n - 1) - max(start, 0) + 1)
    return extent
