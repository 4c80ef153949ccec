"""Network in Network (Lin, Chen & Yan 2014): mlpconv blocks and global average pooling.

An mlpconv block is a k x k convolution followed by a small MLP applied at every position,
which is the same as two 1x1 convolutions, each with ReLU (the paper's eq. 2). The last block
outputs one map per class; global average pooling turns each map into a class score, so the
network has no fully connected layer (Section 3.2).

The paper gives no table of widths ("the detailed settings ... are provided in the
supplementary materials"); the widths here are those of the models the authors released with
it (the CIFAR-10 model and the ImageNet model of the Caffe Model Zoo), written down in the
docs next to this file's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.layers.common import ConvNormAct
from cnnlab.models.registry import register_model

__all__ = ["NIN_CIFAR", "NIN_IMAGENET", "MlpConv", "MlpConvCfg", "NiN", "nin", "nin_cifar"]

_PAPER = "Lin, Chen & Yan 2014, Network In Network, ICLR"


@dataclass(frozen=True)
class MlpConvCfg:
    """One mlpconv block: widths of the k x k conv and the two 1x1 convs (``None``: classes)."""

    widths: tuple[int, int, int | None]
    kernel: int
    stride: int = 1
    padding: int = 0


# After each block except the last: 3x3/2 max pooling (ceil mode, as in the released Caffe
# models: 54 -> 27 -> 13 -> 6 at 224x224), then dropout where ``dropout_after`` says so.
NIN_IMAGENET: tuple[MlpConvCfg, ...] = (
    MlpConvCfg((96, 96, 96), kernel=11, stride=4, padding=0),
    MlpConvCfg((256, 256, 256), kernel=5, padding=2),
    MlpConvCfg((384, 384, 384), kernel=3, padding=1),
    MlpConvCfg((1024, 1024, None), kernel=3, padding=1),
)
NIN_CIFAR: tuple[MlpConvCfg, ...] = (
    MlpConvCfg((192, 160, 96), kernel=5, padding=2),
    MlpConvCfg((192, 192, 192), kernel=5, padding=2),
    MlpConvCfg((192, 192, None), kernel=3, padding=1),
)


class MlpConv(nn.Sequential):
    """k x k conv + ReLU, then 1x1 conv + ReLU twice (a 2-hidden-layer MLP slid over the map)."""

    def __init__(
        self,
        in_ch: int,
        widths: tuple[int, int, int],
        kernel: int,
        stride: int = 1,
        padding: int = 0,
    ) -> None:
        c1, c2, c3 = widths
        super().__init__(
            ConvNormAct(in_ch, c1, kernel, stride=stride, padding=padding, norm=False),
            ConvNormAct(c1, c2, 1, norm=False),
            ConvNormAct(c2, c3, 1, norm=False),
        )


class NiN(nn.Module):
    """Stacked mlpconv blocks with pooling in between, then global average pooling.

    The last block's final 1x1 conv has ``num_classes`` outputs and, being part of an mlpconv,
    keeps its ReLU (as in the released models), so the class scores are non-negative.

    Args:
        blocks: the mlpconv configurations.
        num_classes: number of classes (channels of the last block).
        in_channels: input channels.
        dropout_after: indices of the blocks whose pooled output goes through dropout.
        dropout: dropout probability.
        small_input: 3x3 stride-1 first conv and no pooling after the first block.
    """

    def __init__(
        self,
        blocks: tuple[MlpConvCfg, ...],
        num_classes: int = 1000,
        in_channels: int = 3,
        dropout_after: tuple[int, ...] = (),
        dropout: float = 0.5,
        small_input: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i, cfg in enumerate(blocks):
            kernel, stride, padding = cfg.kernel, cfg.stride, cfg.padding
            if small_input and i == 0:
                kernel, stride, padding = 3, 1, 1
            c1, c2, c3 = cfg.widths
            widths = (c1, c2, num_classes if c3 is None else c3)
            layers.append(MlpConv(channels, widths, kernel, stride=stride, padding=padding))
            channels = widths[2]
            if i < len(blocks) - 1:
                skip_pool = small_input and i == 0
                layers.append(nn.Identity() if skip_pool else nn.MaxPool2d(3, 2, ceil_mode=True))
            if i in dropout_after:
                layers.append(nn.Dropout(dropout))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)


@register_model(family="nin", paper=_PAPER, default_input=(3, 224, 224), torchvision=None, min_input=39)
def nin(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5
) -> NiN:
    """NiN for ImageNet: 4 mlpconv blocks (96-256-384-1024), global average pooling, no fc."""
    return NiN(
        NIN_IMAGENET, num_classes, in_channels, dropout_after=(2,), dropout=dropout,
        small_input=small_input,
    )  # fmt: skip


@register_model(family="nin", paper=_PAPER, default_input=(3, 32, 32), torchvision=None, min_input=4)
def nin_cifar(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5) -> NiN:
    """NiN for CIFAR-10 (32x32): 3 mlpconv blocks (192-160-96, 192x3, 192-192-classes)."""
    return NiN(NIN_CIFAR, num_classes, in_channels, dropout_after=(0, 1), dropout=dropout)
