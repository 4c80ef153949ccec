"""DenseNet building blocks (Huang, Liu, van der Maaten, Weinberger 2017, "Densely Connected
Convolutional Networks", CVPR).

Inside a dense block every layer receives the concatenation of the block input and the
feature maps of all earlier layers, and adds ``growth_rate`` (k) new maps to it. Between
blocks a transition layer shrinks the channels by the compression factor theta and halves
the spatial size.

Attribute names are torchvision's (``norm1``, ``relu1``, ``conv1``, ``norm2``, ``relu2``,
``conv2`` in a layer; ``denselayerN`` in a block; ``norm``, ``relu``, ``conv``, ``pool`` in a
transition), so the state_dict of ``torchvision.models.densenet121()`` loads unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError

__all__ = ["DenseBlock", "DenseLayer", "Transition", "compressed_channels"]


def compressed_channels(channels: int, compression: float) -> int:
    """Channels after a transition with compression theta: ``floor(theta * channels)``."""
    if not 0.0 < compression <= 1.0:
        raise CnnlabError(f"compression (theta) must be in (0, 1], got {compression}")
    return max(1, math.floor(compression * channels))


def _dropout(rate: float) -> nn.Dropout | None:
    if not 0.0 <= rate < 1.0:
        raise CnnlabError(f"drop_rate must be in [0, 1), got {rate}")
    return nn.Dropout(rate) if rate > 0 else None


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1 (``bn_size * k`` maps, the "B" of DenseNet-B) - BN-ReLU-conv3x3 (k maps).

    ``bn_size=None`` removes the 1x1 bottleneck (the plain DenseNet of the paper); ``norm1``,
    ``relu1`` and ``conv1`` are then ``None`` and ``conv2`` is still the 3x3 convolution.
    Dropout, when ``drop_rate > 0``, follows every convolution as in the paper (torchvision
    applies it after the 3x3 only). Returns only the k new maps; the block concatenates.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        bn_size: int | None = 4,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if growth_rate < 1:
            raise CnnlabError(f"growth_rate must be at least 1, got {growth_rate}")
        mid = in_channels
        self.norm1: nn.BatchNorm2d | None = None
        self.relu1: nn.ReLU | None = None
        self.conv1: nn.Conv2d | None = None
        self.drop1: nn.Dropout | None = None
        if bn_size is not None:
            if bn_size < 1:
                raise CnnlabError(f"bn_size must be at least 1 (or None), got {bn_size}")
            mid = bn_size * growth_rate
            self.norm1 = nn.BatchNorm2d(in_channels)
            self.relu1 = nn.ReLU()
            self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
            self.drop1 = _dropout(drop_rate)
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=False)
        self.drop2 = _dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv1 is not None:
            x = self.conv1(self.relu1(self.norm1(x)))
            if self.drop1 is not None:
                x = self.drop1(x)
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop2 is not None:
            x = self.drop2(x)
        return x


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; output channels ``in_channels + num_layers * growth_rate``.

    Concatenating the running tensor with each new layer's maps gives every layer the same
    input, in the same channel order, as concatenating the whole list of earlier outputs.
    """

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth_rate: int,
        bn_size: int | None = 4,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise CnnlabError(f"a dense block needs at least one layer, got {num_layers}")
        for i in range(num_layers):
            layer = DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, drop_rate)
            self.add_module(f"denselayer{i + 1}", layer)
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.children():
            x = torch.cat([x, layer(x)], 1)
        return x


class Transition(nn.Module):
    """BN-ReLU-conv1x1-2x2 average pool (stride 2) between two dense blocks.

    The model chooses ``out_channels``: ``floor(theta * in_channels)`` for compression theta
    (:func:`compressed_channels`).
    """

    def __init__(self, in_channels: int, out_channels: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.drop = _dropout(drop_rate)
        self.pool = nn.AvgPool2d(2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(self.relu(self.norm(x)))
        if self.drop is not None:
            x = self.drop(x)
        return self.pool(x)
