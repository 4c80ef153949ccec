"""DenseNet: ImageNet DenseNet-BC (torchvision-compatible), DenseNet-264 and CIFAR DenseNets.

Paper: Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017 (arXiv 1608.06993). Table 1 gives the ImageNet configurations (121, 169, 201, 264,
growth rate k=32); DenseNet-161 (k=48, 96 stem channels) comes from the authors' released
models. Section 4 and Table 2 give the CIFAR networks: three dense blocks on 32, 16 and 8
pixel maps, either plain DenseNet (each layer BN-ReLU-conv3x3, no compression) or DenseNet-BC
(1x1 bottleneck of 4k maps before each 3x3, transitions with compression theta = 0.5).

torchvision's published weight files still use old key names (``denselayer1.norm.1.weight``
for ``denselayer1.norm1.weight``); :func:`remap_torchvision_densenet_keys` renames them.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError
from cnnlab.layers.dense import DenseBlock, Transition, compressed_channels
from cnnlab.models.registry import register_model, resolve_options

__all__ = [
    "DenseNet",
    "densenet40_cifar",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "densenet264",
    "densenet_bc100_cifar",
    "remap_torchvision_densenet_keys",
]

_PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks (CVPR)"

# depth -> (growth rate k, dense layers per block, stem channels): Huang et al. 2017, Table 1
# (121, 169, 201, 264; stem 2k) and the authors' released DenseNet-161.
_IMAGENET_CONFIGS: dict[int, tuple[int, tuple[int, ...], int]] = {
    121: (32, (6, 12, 24, 16), 64),
    161: (48, (6, 12, 36, 24), 96),
    169: (32, (6, 12, 32, 32), 64),
    201: (32, (6, 12, 48, 32), 64),
    264: (32, (6, 12, 64, 48), 64),
}
_STEMS = ("imagenet", "small", "cifar")

# Old torchvision key ``...denselayer3.conv.2.weight`` -> ``...denselayer3.conv2.weight``.
_OLD_LAYER_KEY = re.compile(r"^(.*denselayer\d+\.)(norm|relu|conv)\.([12])\.(.+)$")

V = TypeVar("V")


def remap_torchvision_densenet_keys(state_dict: Mapping[str, V]) -> OrderedDict[str, V]:
    """Rename the old dotted DenseNet keys of torchvision's downloaded weight files.

    ``features.denseblock1.denselayer1.norm.1.weight`` becomes
    ``features.denseblock1.denselayer1.norm1.weight``; other keys pass unchanged and the order
    is kept. The input is not modified. The result carries no ``_metadata``, so batch norm
    treats it as an old-format file and supplies the ``num_batches_tracked`` counters those
    files lack.
    """
    renamed: OrderedDict[str, V] = OrderedDict()
    for key, value in state_dict.items():
        new_key = _OLD_LAYER_KEY.sub(r"\1\2\3.\4", key)
        if new_key in renamed:
            raise CnnlabError(f"state_dict has both the old and the new name of {new_key!r}")
        renamed[new_key] = value
    return renamed


class DenseNet(nn.Module):
    """Stem, dense blocks joined by transitions, final BN-ReLU, global average pool, linear.

    ``stem``: ``"imagenet"`` (7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max pool),
    ``"small"`` (3x3 stride-1 conv, BN, ReLU: the ImageNet layers for 32x32/28x28 images) or
    ``"cifar"`` (a lone 3x3 stride-1 conv, as in the paper's CIFAR networks; the first dense
    layer's BN-ReLU follows it). ``bn_size=None`` removes the 1x1 bottlenecks and
    ``compression=1.0`` keeps the channels through the transitions.
    Module names follow torchvision: ``features.conv0``, ``features.denseblock1``,
    ``features.transition1``, ..., ``features.norm5`` (``norm{blocks + 1}``), ``classifier``.
    """

    # torchvision's downloaded weight files use the old dotted key names: cnnlab.models.weights
    # calls this before loading any file into a DenseNet.
    remap_state_dict = staticmethod(remap_torchvision_densenet_keys)

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: Sequence[int] = (6, 12, 24, 16),
        stem_channels: int = 64,
        bn_size: int | None = 4,
        compression: float = 0.5,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        if stem not in _STEMS:
            raise CnnlabError(f"unknown DenseNet stem {stem!r}: use one of {', '.join(_STEMS)}")
        if not block_config:
            raise CnnlabError("a DenseNet needs at least one dense block")
        compressed_channels(1, compression)  # validates theta before anything is built
        self.features = nn.Sequential()
        if stem == "imagenet":
            conv0 = nn.Conv2d(in_channels, stem_channels, 7, stride=2, padding=3, bias=False)
        else:
            conv0 = nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False)
        self.features.add_module("conv0", conv0)
        if stem != "cifar":
            self.features.add_module("norm0", nn.BatchNorm2d(stem_channels))
            self.features.add_module("relu0", nn.ReLU())
        if stem == "imagenet":
            self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))

        channels = stem_channels
        for i, num_layers in enumerate(block_config):
            block = DenseBlock(num_layers, channels, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i + 1}", block)
            channels = block.out_channels
            if i < len(block_config) - 1:
                out = compressed_channels(channels, compression)
                self.features.add_module(f"transition{i + 1}", Transition(channels, out, drop_rate))
                channels = out
        self.features.add_module(f"norm{len(block_config) + 1}", nn.BatchNorm2d(channels))
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

        # The authors' and torchvision's scheme: He-normal convolutions, BN at identity,
        # zero classifier bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The final feature maps, after the last BN-ReLU."""
        return self.relu(self.features(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.classifier(torch.flatten(x, 1))


# Keyword options of the ImageNet builders and their defaults: dropout after every convolution
# but the first (the paper used 0.2 on CIFAR without augmentation, none on ImageNet), the
# transition compression theta, and the bottleneck width in multiples of k (None: none).
_OPTIONS: dict[str, Any] = {"drop_rate": 0.0, "compression": 0.5, "bn_size": 4}
# Keyword options of the CIFAR builders; each name fills in depth, growth_rate, bottleneck and
# compression, and stem_channels=None means the paper's choice (16, or 2k for DenseNet-BC).
_CIFAR_OPTIONS: dict[str, Any] = {
    "depth": 40,
    "growth_rate": 12,
    "bottleneck": False,
    "compression": 1.0,
    "drop_rate": 0.0,
    "stem_channels": None,
}


def _densenet(
    depth: int, num_classes: int, in_channels: int, small_input: bool, given: dict[str, Any]
) -> DenseNet:
    # Options arrive as one dict so that none can collide with a positional parameter.
    options = resolve_options(f"densenet{depth}", given, _OPTIONS)
    growth_rate, block_config, stem_channels = _IMAGENET_CONFIGS[depth]
    return DenseNet(
        growth_rate,
        block_config,
        stem_channels,
        bn_size=options["bn_size"],
        compression=options["compression"],
        drop_rate=options["drop_rate"],
        num_classes=num_classes,
        in_channels=in_channels,
        stem="small" if small_input else "imagenet",
    )


def _cifar_densenet(
    name: str, num_classes: int, in_channels: int, given: dict[str, Any]
) -> DenseNet:
    """Three equal dense blocks. Depth L counts the stem conv, every conv of the dense layers,
    the two transition convs and the classifier: L = 3 * n * (2 if bottleneck else 1) + 4."""
    options = resolve_options(name, given, _CIFAR_OPTIONS)
    depth, growth_rate, bottleneck = options["depth"], options["growth_rate"], options["bottleneck"]
    convs_per_layer = 2 if bottleneck else 1
    if depth < 4 + 3 * convs_per_layer or (depth - 4) % (3 * convs_per_layer):
        kind = "6n+4 with bottleneck" if bottleneck else "3n+4 without bottleneck"
        raise CnnlabError(f"a CIFAR DenseNet has {kind} layers, got depth {depth}")
    n = (depth - 4) // (3 * convs_per_layer)
    stem_channels = options["stem_channels"]
    if stem_channels is None:
        # Section 4.1: "16 (or twice the growth rate for DenseNet-BC)" stem channels.
        stem_channels = 2 * growth_rate if bottleneck and options["compression"] < 1 else 16
    return DenseNet(
        growth_rate,
        (n, n, n),
        stem_channels,
        bn_size=4 if bottleneck else None,
        compression=options["compression"],
        drop_rate=options["drop_rate"],
        num_classes=num_classes,
        in_channels=in_channels,
        stem="cifar",
    )


# ImageNet DenseNet-BC (Table 1): torchvision-compatible except DenseNet-264.


@register_model(family="densenet", paper=_PAPER, torchvision="densenet121", min_input=29)
def densenet121(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6-12-24-16), 8.0M parameters (torchvision-compatible)."""
    return _densenet(121, num_classes, in_channels, small_input, kwargs)


@register_model(family="densenet", paper=_PAPER, torchvision="densenet161", min_input=29)
def densenet161(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> DenseNet:
    """DenseNet-161 (k=48, blocks 6-12-36-24), 28.7M parameters (torchvision-compatible)."""
    return _densenet(161, num_classes, in_channels, small_input, kwargs)


@register_model(family="densenet", paper=_PAPER, torchvision="densenet169", min_input=29)
def densenet169(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6-12-32-32), 14.1M parameters (torchvision-compatible)."""
    return _densenet(169, num_classes, in_channels, small_input, kwargs)


@register_model(family="densenet", paper=_PAPER, torchvision="densenet201", min_input=29)
def densenet201(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> DenseNet:
    """DenseNet-201 (k=32, blocks 6-12-48-32), 20.0M parameters (torchvision-compatible)."""
    return _densenet(201, num_classes, in_channels, small_input, kwargs)


@register_model(family="densenet", paper=_PAPER, min_input=29)
def densenet264(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> DenseNet:
    """DenseNet-264 (k=32, blocks 6-12-64-48; paper's Table 1), 33.3M parameters."""
    return _densenet(264, num_classes, in_channels, small_input, kwargs)


# CIFAR DenseNets (Section 4, Table 2). depth, growth_rate, bottleneck, compression, drop_rate
# and stem_channels are keyword options; the names give the paper's two smallest networks.


@register_model(family="densenet", paper=_PAPER, default_input=(3, 32, 32), min_input=4)
def densenet40_cifar(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet (L=40, k=12): no bottleneck, no compression, 1.0M parameters."""
    return _cifar_densenet("densenet40_cifar", num_classes, in_channels, kwargs)


@register_model(family="densenet", paper=_PAPER, default_input=(3, 32, 32), min_input=4)
def densenet_bc100_cifar(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> DenseNet:
    """CIFAR DenseNet-BC (L=100, k=12): 4k bottlenecks, compression 0.5, 0.8M parameters."""
    options = {"depth": 100, "bottleneck": True, "compression": 0.5, **kwargs}
    return _cifar_densenet("densenet_bc100_cifar", num_classes, in_channels, options)
