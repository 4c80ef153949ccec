"""VGG (Simonyan & Zisserman 2015): configurations A, A-LRN, B, C, D, E of the paper's Table 1.

One table drives the family. A, B, D and E are torchvision's vgg11/13/16/19 (and, with batch
norm, which the paper predates, vgg*_bn); their layer indices match torchvision's so its
weights load unchanged. A-LRN (``vgg11_lrn``) adds AlexNet's LRN after the first convolution;
C (``vgg16_c``) is D with the last convolution of stages 3, 4 and 5 made 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.alexnet import paper_lrn
from cnnlab.models.registry import register_model

__all__ = [
    "CFGS",
    "VGG",
    "make_layers",
    "vgg11",
    "vgg11_bn",
    "vgg11_lrn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg16_c",
    "vgg19",
    "vgg19_bn",
]

_PAPER = (
    "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image "
    "Recognition, ICLR"
)

Layer = int | tuple[int, int] | str

# Table 1 of the paper, left to right. An int is a 3x3 convolution ("conv3-N") with that many
# output channels, (N, 1) a 1x1 convolution ("conv1-N"), "M" a 2x2/2 max pool, "LRN" local
# response normalisation. Every convolution is followed by ReLU (and batch norm before it in
# the _bn forms).
CFGS: dict[str, list[Layer]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [
        64, 64, "M", 128, 128, "M", 256, 256, (256, 1), "M",
        512, 512, (512, 1), "M", 512, 512, (512, 1), "M",
    ],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
        512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
    ],
}  # fmt: skip


def make_layers(
    cfg: list[Layer], in_channels: int = 3, batch_norm: bool = False, small_input: bool = False
) -> nn.Sequential:
    """A flat Sequential (torchvision's indexing) from one column of the configuration table.

    ``small_input`` replaces the first max pool with ``nn.Identity`` (same indices, so later
    layers keep torchvision's keys): 28x28 inputs then reach the fifth pool at 3x3 -> 1x1
    instead of vanishing, and 32x32 inputs end at 2x2 rather than 1x1.
    """
    layers: list[nn.Module] = []
    channels = in_channels
    first_pool = True
    for item in cfg:
        if item == "M":
            layers.append(nn.Identity() if small_input and first_pool else nn.MaxPool2d(2, 2))
            first_pool = False
        elif item == "LRN":
            layers.append(paper_lrn())
        else:
            width, kernel = item if isinstance(item, tuple) else (int(item), 3)
            layers.append(nn.Conv2d(channels, width, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.ReLU())
            channels = width
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` -> adaptive average pool to 7x7 -> fc 4096 -> fc 4096 -> fc num_classes (``fc_width`` narrows the two hidden layers).

    The pool is the identity at the paper's 224x224 input (the features are 7x7 there). The
    paper applies dropout 0.5 after the ReLUs of the first two fully connected layers, as here.
    """

    def __init__(
        self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5, fc_width: int = 4096
    ) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, fc_width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc_width, fc_width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(fc_width, num_classes),
        )
        # The paper initialised configuration A from N(0, 0.01) and the deeper ones from A's
        # trained layers, then noted (Section 3.1) that Glorot initialisation works without that
        # pre-training; He et al.'s fan-out normal used here serves the same purpose for ReLU.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _vgg(
    cfg: str,
    batch_norm: bool,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    dropout: float,
    fc_width: int = 4096,
) -> VGG:
    features = make_layers(CFGS[cfg], in_channels, batch_norm=batch_norm, small_input=small_input)
    return VGG(features, num_classes=num_classes, dropout=dropout, fc_width=fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg11", min_input=32)
def vgg11(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-11, configuration A (8 conv + 3 fc); torchvision's vgg11 weights load unchanged."""
    return _vgg("A", False, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg11_bn", min_input=32)
def vgg11_bn(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-11 (A) with batch norm after every convolution; torchvision's vgg11_bn weights load."""
    return _vgg("A", True, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision=None, min_input=32)
def vgg11_lrn(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-11 with LRN after conv1, configuration A-LRN (the paper found LRN does not help)."""
    return _vgg("A-LRN", False, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg13", min_input=32)
def vgg13(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-13, configuration B (10 conv + 3 fc); torchvision's vgg13 weights load unchanged."""
    return _vgg("B", False, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg13_bn", min_input=32)
def vgg13_bn(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-13 (B) with batch norm after every convolution; torchvision's vgg13_bn weights load."""
    return _vgg("B", True, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision=None, min_input=32)
def vgg16_c(
    num_classes: int = 1000,
    in_channels: int = 3,
    small_input: bool = False,
    dropout: float = 0.5,
    batch_norm: bool = False,
    fc_width: int = 4096,
) -> VGG:
    """VGG-16, configuration C: the last conv of stages 3-5 is 1x1 (conv1-256/512/512)."""
    return _vgg("C", batch_norm, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg16", min_input=32)
def vgg16(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-16, configuration D (13 conv + 3 fc); torchvision's vgg16 weights load unchanged."""
    return _vgg("D", False, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg16_bn", min_input=32)
def vgg16_bn(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-16 (D) with batch norm after every convolution; torchvision's vgg16_bn weights load."""
    return _vgg("D", True, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg19", min_input=32)
def vgg19(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-19, configuration E (16 conv + 3 fc); torchvision's vgg19 weights load unchanged."""
    return _vgg("E", False, num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="vgg", paper=_PAPER, torchvision="vgg19_bn", min_input=32)
def vgg19_bn(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> VGG:
    """VGG-19 (E) with batch norm after every convolution; torchvision's vgg19_bn weights load."""
    return _vgg("E", True, num_classes, in_channels, small_input, dropout, fc_width)
