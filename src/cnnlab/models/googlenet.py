"""GoogLeNet (Szegedy et al. 2015, "Going Deeper with Convolutions"): paper and torchvision forms.

The paper's network (Table 1, Figure 3) has no batch norm, LRN after the stem's first max pool
and after conv3, true 5x5 kernels in the Inception modules, a 3x3/2 max pool before 5a, and
two auxiliary classifiers (5x5/3 average pool) whose losses count with weight 0.3 in training.
torchvision's GoogLeNet adds batch norm (eps=0.001) after every convolution, drops the LRN,
uses 3x3 kernels in the "5x5" branch and a 2x2/2 pool before 5a, and pools its auxiliary
heads adaptively to 4x4; its module names are used here so that its weights load unchanged.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.layers.common import ConvNormAct, NormSpec
from cnnlab.layers.inception import Inception, InceptionAux
from cnnlab.models.registry import register_model

__all__ = ["INCEPTION_CFGS", "GoogLeNet", "GoogLeNetOutputs", "googlenet", "googlenet_paper"]

_PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions, CVPR"
_TV_PAPER = _PAPER + " (torchvision's form: batch norm, 3x3 kernels in the 5x5 branch)"

# Table 1 of the paper, one row per Inception module:
# (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
INCEPTION_CFGS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}

# The paper names LRN but gives no constants; these are those of the BVLC Caffe reproduction
# (bvlc_googlenet). Caffe, like nn.LocalResponseNorm, divides alpha by the window size.
_LRN_ARGS = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0}

# torchvision's input transform: undo ImageNet mean/std normalisation and rescale to [-1, 1],
# the range the weights it ported from TensorFlow expect.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class GoogLeNetOutputs(NamedTuple):
    """Training-mode output with auxiliary heads; the field order is torchvision's."""

    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


class GoogLeNet(nn.Module):
    """GoogLeNet / Inception v1.

    In eval mode, or without auxiliary heads, ``forward`` returns the logits tensor. In training
    mode with auxiliary heads it returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``;
    the paper's training loss is ``loss(logits) + aux_weight * (loss(aux1) + loss(aux2))``.

    Args:
        num_classes: classes of the final and auxiliary classifiers.
        in_channels: input channels.
        paper: the paper's form (see the module docstring) instead of torchvision's.
        aux_logits: build the two auxiliary classifiers (after 4a and after 4d).
        transform_input: apply torchvision's input re-normalisation (3 channels only).
        small_input: 3x3 stride-1 conv1 and no first max pool, for 28x28 and 32x32 inputs.
        dropout: before the final classifier (paper: 0.4; torchvision: 0.2).
        dropout_aux: inside the auxiliary classifiers (0.7 in both).
    """

    aux_weight: float = 0.3  # the paper's weight of each auxiliary loss (Section 5)

    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        paper: bool = False,
        aux_logits: bool = True,
        transform_input: bool = False,
        small_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
    ) -> None:
        super().__init__()
        if transform_input and in_channels != 3:
            raise CnnlabError(
                f"transform_input re-normalises RGB input and needs in_channels=3, got "
                f"{in_channels}; pass transform_input=False"
            )
        norm: NormSpec = False if paper else partial(nn.BatchNorm2d, eps=0.001)
        conv = partial(ConvNormAct, norm=norm)
        self.paper = paper
        self.aux_logits = aux_logits
        self.transform_input = transform_input

        if small_input:
            self.conv1 = conv(in_channels, 64, 3)
            self.maxpool1: nn.Module = nn.Identity()
        else:
            self.conv1 = conv(in_channels, 64, 7, stride=2, padding=3)  # N x 64 x 112 x 112
            self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 64 x 56 x 56
        # ceil_mode=True reproduces Table 1's sizes (112 -> 56, 56 -> 28, 28 -> 14, 14 -> 7).
        self.lrn1 = nn.LocalResponseNorm(**_LRN_ARGS) if paper else nn.Identity()
        self.conv2 = conv(64, 64, 1)
        self.conv3 = conv(64, 192, 3)  # N x 192 x 56 x 56
        self.lrn2 = nn.LocalResponseNorm(**_LRN_ARGS) if paper else nn.Identity()
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 192 x 28 x 28

        inception = partial(Inception, norm=norm, wide_kernel=5 if paper else 3)
        self.inception3a = inception(192, *INCEPTION_CFGS["3a"])  # N x 256 x 28 x 28
        self.inception3b = inception(256, *INCEPTION_CFGS["3b"])  # N x 480 x 28 x 28
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)  # N x 480 x 14 x 14
        self.inception4a = inception(480, *INCEPTION_CFGS["4a"])  # N x 512 x 14 x 14
        self.inception4b = inception(512, *INCEPTION_CFGS["4b"])
        self.inception4c = inception(512, *INCEPTION_CFGS["4c"])
        self.inception4d = inception(512, *INCEPTION_CFGS["4d"])  # N x 528 x 14 x 14
        self.inception4e = inception(528, *INCEPTION_CFGS["4e"])  # N x 832 x 14 x 14
        # The paper pools 3x3/2 here; torchvision 2x2/2. Both give 7x7 from 14x14.
        self.maxpool4 = (
            nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if paper
            else nn.MaxPool2d(2, stride=2, ceil_mode=True)
        )
        self.inception5a = inception(832, *INCEPTION_CFGS["5a"])  # N x 832 x 7 x 7
        self.inception5b = inception(832, *INCEPTION_CFGS["5b"])  # N x 1024 x 7 x 7

        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            # The paper's 5x5/3 pool maps 4a's 14x14 to 4x4; with the small-input stem the map
            # is 8x8 (32x32 input) or 7x7 (28x28), so the adaptive pool keeps the 4x4 shape.
            def aux_pool() -> nn.Module:
                if paper and not small_input:
                    return nn.AvgPool2d(5, stride=3)
                return nn.AdaptiveAvgPool2d((4, 4))

            self.aux1 = InceptionAux(512, num_classes, norm, dropout_aux, aux_pool())
            self.aux2 = InceptionAux(528, num_classes, norm, dropout_aux, aux_pool())

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))  # the paper's 7x7/1 average pool at 224x224
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if self.paper:
                    # The paper does not give its initialisation; without batch norm a 22-layer
                    # stack needs a variance-preserving one (BVLC's reproduction used Glorot).
                    nn.init.xavier_uniform_(m.weight)
                else:
                    nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        channels = [
            x[:, i : i + 1] * (std / 0.5) + (mean - 0.5) / 0.5
            for i, (mean, std) in enumerate(zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True))
        ]
        return torch.cat(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        if self.transform_input:
            x = self._transform(x)
        x = self.maxpool1(self.conv1(x))
        x = self.lrn2(self.conv3(self.conv2(self.lrn1(x))))
        x = self.maxpool2(x)
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        # Branch on module attributes and self.training only, so torch.fx can trace the model.
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


@register_model(family="googlenet", paper=_TV_PAPER, torchvision="googlenet", min_input=15)
def googlenet(
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    aux_logits: bool = True,
    transform_input: bool = False,
    dropout: float = 0.2,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """GoogLeNet, torchvision's form (batch norm, 3x3 "5x5" branch); its weights load unchanged."""
    return GoogLeNet(
        num_classes, in_channels, paper=False, aux_logits=aux_logits,
        transform_input=transform_input, small_input=small_input, dropout=dropout,
        dropout_aux=dropout_aux,
    )  # fmt: skip


@register_model(family="googlenet", paper=_PAPER, torchvision=None, min_input=31)
def googlenet_paper(
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    aux_logits: bool = True,
    dropout: float = 0.4,
    dropout_aux: float = 0.7,
) -> GoogLeNet:
    """GoogLeNet as published: 5x5 branches, LRN, no batch norm, two auxiliary classifiers."""
    return GoogLeNet(
        num_classes, in_channels, paper=True, aux_logits=aux_logits, small_input=small_input,
        dropout=dropout, dropout_aux=dropout_aux,
    )  # fmt: skip
