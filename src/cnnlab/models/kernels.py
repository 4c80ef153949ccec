"""A small network for the kernel-size questions: the same body with one block type swapped.

VGG's argument (Simonyan & Zisserman 2015, Sec. 2.3): two stacked 3x3 convolutions see a 5x5
window, as one 5x5 does, with 18C² weights instead of 25C² and one more non-linearity. The
1x1 reduction of NiN, GoogLeNet and ResNet's bottleneck (He et al. 2016, Sec. 4.1): a 3x3
convolution between two 1x1s that shrink and restore the channels costs far less than a direct
3x3 at the same width, so the same parameters buy a wider network.

``kernelnet(block, width)`` is a 3x3 stem, three stages of one block each with 2x2 max pooling
between them, global average pooling and one linear layer. ``block`` is ``5x5``, ``3x3x2``
(two stacked 3x3), ``3x3`` or ``bottleneck`` (1x1 to width/4, 3x3, 1x1 back to width); every
convolution is followed by batch norm and ReLU. The ``kernels`` experiment compares them at
matched parameters.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import register_model

__all__ = ["BLOCKS", "KernelNet", "kernelnet"]

_PAPER = ("Simonyan & Zisserman 2015, Very Deep Convolutional Networks, Sec. 2.3 (3x3 stacks); "
          "He et al. 2016, Deep Residual Learning, Sec. 4.1 (1x1 bottlenecks)")
BLOCKS = ("5x5", "3x3x2", "3x3", "bottleneck")


def _conv(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def _block(kind: str, width: int) -> nn.Sequential:
    if kind == "5x5":
        return nn.Sequential(*_conv(width, width, 5))
    if kind == "3x3x2":
        return nn.Sequential(*_conv(width, width, 3), *_conv(width, width, 3))
    if kind == "3x3":
        return nn.Sequential(*_conv(width, width, 3))
    inner = max(width // 4, 1)
    return nn.Sequential(*_conv(width, inner, 1), *_conv(inner, inner, 3), *_conv(inner, width, 1))


class KernelNet(nn.Module):
    def __init__(self, block: str, width: int, num_classes: int, in_channels: int, stages: int = 3) -> None:
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
        layers: list[nn.Module] = [*_conv(in_channels, width, 3)]
        for i in range(stages):
            layers.append(_block(block, width))
            if i < stages - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model(family="kernels", paper=_PAPER, default_input=(1, 28, 28), min_input=4)
def kernelnet(
    num_classes: int = 10, in_channels: int = 1, block: Literal["5x5", "3x3x2", "3x3", "bottleneck"] = "3x3x2",
    width: int = 64,
) -> KernelNet:
    """Stem, three stages of one block (5x5 | 3x3x2 | 3x3 | bottleneck), GAP, linear: kernel sizes compared."""
    from cnnlab.limits import MAX_CHANNELS, check_count

    if block not in BLOCKS:
        raise CnnlabError(f"kernelnet has no block {block!r}: use --set block=5x5, 3x3x2, 3x3 or bottleneck")
    check_count(width, "width", 1, MAX_CHANNELS, "the channels of every stage, e.g. 64")
    return KernelNet(block, width, num_classes, in_channels)
