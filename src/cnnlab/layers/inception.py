"""The Inception module and the auxiliary classifier of GoogLeNet (Szegedy et al. 2015).

Both come in two forms: the paper's (biased convolutions with ReLU, no batch norm, a true
5x5 kernel in the third branch, 5x5/3 average pooling in the auxiliary head) and
torchvision's (batch norm with eps=0.001 and no conv bias, a 3x3 kernel in the "5x5"
branch, adaptive 4x4 average pooling in the auxiliary head). Module names follow torchvision's
so that its GoogLeNet state_dict loads unchanged into the torchvision form.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.layers.common import ConvNormAct, NormSpec

__all__ = ["Inception", "InceptionAux"]


class Inception(nn.Module):
    """Four parallel branches concatenated on the channel axis (the paper's Figure 2b).

    ``branch1``: 1x1 conv. ``branch2``: 1x1 reduce, then 3x3. ``branch3``: 1x1 reduce, then
    ``wide_kernel`` x ``wide_kernel`` (5 in the paper; torchvision uses 3, a known bug it keeps so
    that its published weights still load). ``branch4``: 3x3/1 max pool, then 1x1 projection.
    Every convolution, reductions included, is followed by a ReLU (and by the norm if any).

    Output channels: ``ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    """

    def __init__(
        self,
        in_ch: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        norm: NormSpec = False,
        wide_kernel: int = 5,
    ) -> None:
        super().__init__()
        self.branch1 = ConvNormAct(in_ch, ch1x1, 1, norm=norm)
        self.branch2 = nn.Sequential(
            ConvNormAct(in_ch, ch3x3red, 1, norm=norm),
            ConvNormAct(ch3x3red, ch3x3, 3, norm=norm),
        )
        self.branch3 = nn.Sequential(
            ConvNormAct(in_ch, ch5x5red, 1, norm=norm),
            ConvNormAct(ch5x5red, ch5x5, wide_kernel, norm=norm),
        )
        # ceil_mode is a no-op at stride 1 with padding 1; kept so the repr matches torchvision's.
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            ConvNormAct(in_ch, pool_proj, 1, norm=norm),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(branches, 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier attached to 4a and 4d during training (the paper's Section 5).

    ``pool`` (no parameters) -> 1x1 conv to 128 + ReLU -> flatten -> fc 2048->1024 + ReLU ->
    dropout -> fc 1024->num_classes. The paper pools 5x5 with stride 3 (14x14 -> 4x4);
    torchvision uses ``AdaptiveAvgPool2d(4)``, which on 14x14 averages 4x4 windows at offsets
    0, 3, 7, 10 instead of 5x5 windows at 0, 3, 6, 9 — the same shape, different numbers.
    """

    def __init__(
        self,
        in_ch: int,
        num_classes: int,
        norm: NormSpec = False,
        dropout: float = 0.7,
        pool: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.pool = pool if pool is not None else nn.AvgPool2d(5, stride=3)
        self.conv = ConvNormAct(in_ch, 128, 1, norm=norm)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(self.dropout(x))
