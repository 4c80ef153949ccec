"""AlexNet: torchvision's form and the form of Krizhevsky, Sutskever & Hinton (2012).

torchvision's AlexNet follows Krizhevsky's later "One weird trick" paper (2014): 64-192-384-
256-256 kernels, no LRN, no grouped convolutions, dropout in front of the first two fully
connected layers. The 2012 network has 96-256-384-384-256 kernels, LRN after conv1 and conv2,
and was split over two GPUs whose halves exchange data only at conv3 and at the fully
connected layers; here that split is expressed as ``groups=2`` on conv2, conv4 and conv5.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.registry import register_model

__all__ = ["AlexNet", "alexnet", "alexnet_paper", "paper_lrn"]

_PAPER = (
    "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional "
    "Neural Networks, NeurIPS"
)
_TV_PAPER = (
    "Krizhevsky 2014, One weird trick for parallelizing convolutional neural networks, "
    "arXiv:1404.5997 (torchvision's form)"
)

# Section 3.3 of the paper: b = a / (k + alpha * sum_{n neighbours} a^2)^beta with k=2, n=5,
# alpha=1e-4, beta=0.75. nn.LocalResponseNorm computes k + (alpha / n) * sum, so it must be
# given n * alpha for the paper's constant.
PAPER_LRN_SIZE = 5
PAPER_LRN_ALPHA = 1e-4
_LRN_ARGS = {
    "size": PAPER_LRN_SIZE,
    "alpha": PAPER_LRN_SIZE * PAPER_LRN_ALPHA,
    "beta": 0.75,
    "k": 2.0,
}


def paper_lrn() -> nn.LocalResponseNorm:
    """Local response normalisation with the constants of Krizhevsky et al. 2012, Section 3.3."""
    return nn.LocalResponseNorm(**_LRN_ARGS)


class AlexNet(nn.Module):
    """``features`` -> adaptive average pool to 6x6 -> flatten -> ``classifier``.

    The average pool is the identity when the features are already 6x6 (227x227 input for the
    paper form, 224x224 for torchvision's); at other sizes it lets the same classifier run.
    """

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _first_conv(
    in_channels: int, out: int, small_input: bool, kernel: int, padding: int
) -> nn.Conv2d:
    if small_input:
        return nn.Conv2d(in_channels, out, 3, stride=1, padding=1)
    return nn.Conv2d(in_channels, out, kernel, stride=4, padding=padding)


def _first_pool(small_input: bool) -> nn.Module:
    # nn.Identity keeps the Sequential's indices, so torchvision's keys for every later layer
    # still match when the small-input stem drops this pool.
    return nn.Identity() if small_input else nn.MaxPool2d(3, stride=2)


def _torchvision_alexnet(
    num_classes: int, in_channels: int, small_input: bool, dropout: float, fc_width: int = 4096
) -> AlexNet:
    features = nn.Sequential(
        _first_conv(in_channels, 64, small_input, kernel=11, padding=2),  # N x 64 x 55 x 55
        nn.ReLU(),
        _first_pool(small_input),  # N x 64 x 27 x 27
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),  # N x 192 x 13 x 13
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),  # N x 256 x 6 x 6
    )
    # torchvision drops out the *inputs* of fc6 and fc7 (the 2012 paper: the outputs of fc6/fc7).
    classifier = nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(256 * 6 * 6, fc_width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_width, fc_width),
        nn.ReLU(),
        nn.Linear(fc_width, num_classes),
    )
    return AlexNet(features, classifier)


def _paper_alexnet(
    num_classes: int, in_channels: int, small_input: bool, dropout: float, fc_width: int = 4096
) -> AlexNet:
    # The paper's "224x224" input only gives its 55x55 conv1 maps at 227x227 with no padding:
    # floor((227 - 11) / 4) + 1 = 55.
    features = nn.Sequential(
        _first_conv(in_channels, 96, small_input, kernel=11, padding=0),  # N x 96 x 55 x 55
        nn.ReLU(),
        paper_lrn(),
        _first_pool(small_input),  # N x 96 x 27 x 27 (overlapping: 3x3 windows, stride 2)
        nn.Conv2d(96, 256, 5, padding=2, groups=2),  # each GPU's 128 kernels see its 48 maps
        nn.ReLU(),
        paper_lrn(),
        nn.MaxPool2d(3, stride=2),  # N x 256 x 13 x 13
        nn.Conv2d(256, 384, 3, padding=1),  # the towers exchange maps here
        nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),  # N x 256 x 6 x 6
    )
    classifier = nn.Sequential(
        nn.Linear(256 * 6 * 6, fc_width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_width, fc_width),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(fc_width, num_classes),
    )
    model = AlexNet(features, classifier)
    # Section 5: weights N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden fully
    # connected layers (to give the ReLUs positive inputs early on), 0 elsewhere.
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    linears = [m for m in classifier if isinstance(m, nn.Linear)]
    for layer in convs + linears:
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)
    for layer in (convs[1], convs[3], convs[4], linears[0], linears[1]):
        nn.init.ones_(layer.bias)
    return model


@register_model(
    family="alexnet", paper=_TV_PAPER, default_input=(3, 224, 224), torchvision="alexnet",
    min_input=63,
)
def alexnet(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> AlexNet:
    """AlexNet, torchvision's form (64-192-384-256-256, no LRN); its weights load unchanged."""
    return _torchvision_alexnet(num_classes, in_channels, small_input, dropout, fc_width)


@register_model(family="alexnet", paper=_PAPER, default_input=(3, 227, 227), torchvision=None, min_input=67)
def alexnet_paper(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, dropout: float = 0.5,
    fc_width: int = 4096,
) -> AlexNet:
    """AlexNet as published in 2012: 96-256-384-384-256, LRN, two-GPU split as groups=2."""
    return _paper_alexnet(num_classes, in_channels, small_input, dropout, fc_width)
