"""Building blocks shared by several families: conv + norm + activation, and min pooling."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.common_types import _size_2_t

__all__ = ["ConvNormAct", "MinPool2d", "same_padding"]

NormSpec = bool | Callable[[int], nn.Module]
ActSpec = bool | Callable[[], nn.Module]


def same_padding(kernel: int, dilation: int = 1) -> int:
    """Padding that keeps the size at stride 1 for an odd kernel: (k - 1) // 2 * dilation."""
    return (kernel - 1) // 2 * dilation


class ConvNormAct(nn.Sequential):
    """A 2-d convolution, then an optional norm layer, then an optional activation.

    Children are named ``conv``, ``bn`` (``norm`` when the norm layer is not a batch norm) and
    ``act``. The ``conv``/``bn`` names are those of torchvision's ``BasicConv2d`` (GoogLeNet,
    Inception v3), so a block built with ``norm=partial(nn.BatchNorm2d, eps=1e-3)`` loads its
    weights unchanged; the activation holds no parameters and does not show in a state_dict.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        kernel: square kernel size.
        stride: convolution stride.
        padding: ``None`` pads ``(kernel - 1) // 2 * dilation`` (size kept at stride 1).
        groups: convolution groups.
        dilation: convolution dilation.
        norm: ``True`` for ``nn.BatchNorm2d``, ``False`` for none, or a callable taking the
            channel count (a norm class or a ``functools.partial`` of one).
        act: ``True`` for ``nn.ReLU``, ``False`` for none, or a callable with no arguments.
        bias: ``None`` gives the convolution a bias only when there is no norm layer (a bias
            before batch norm is cancelled by the mean subtraction, so it would be dead weight).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        dilation: int = 1,
        norm: NormSpec = True,
        act: ActSpec = True,
        bias: bool | None = None,
    ) -> None:
        if padding is None:
            padding = same_padding(kernel, dilation)
        if bias is None:
            bias = norm is False
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation,
            groups=groups, bias=bias,
        )  # fmt: skip
        if norm is not False:
            norm_layer = nn.BatchNorm2d(out_ch) if norm is True else norm(out_ch)
            is_bn = isinstance(norm_layer, nn.modules.batchnorm._BatchNorm)
            layers["bn" if is_bn else "norm"] = norm_layer
        if act is not False:
            # Not in place: forward hooks that keep a conv's output for visualisation would see
            # it overwritten by an in-place ReLU when no norm layer sits in between.
            layers["act"] = nn.ReLU() if act is True else act()
        super().__init__(layers)
        self.in_channels = in_ch
        self.out_channels = out_ch


class MinPool2d(nn.Module):
    """Min pooling, the missing sibling of ``nn.MaxPool2d``: ``min(x) = -max(-x)``.

    Takes the same arguments as ``nn.MaxPool2d``. Padding behaves as the minimum expects:
    max pooling pads with -inf, so after the two negations padded positions are +inf and never
    win. With ``return_indices=True`` it returns ``(values, indices)`` of the minima.
    """

    def __init__(
        self,
        kernel_size: _size_2_t,
        stride: _size_2_t | None = None,
        padding: _size_2_t = 0,
        dilation: _size_2_t = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.return_indices:
            values, indices = F.max_pool2d(
                -x, self.kernel_size, self.stride, self.padding, self.dilation,
                ceil_mode=self.ceil_mode, return_indices=True,
            )  # fmt: skip
            return -values, indices
        out = F.max_pool2d(
            -x, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode
        )
        return -out

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )
