"""ResNet: ImageNet ResNets (torchvision-compatible), pre-activation ResNets and CIFAR ResNets.

Papers:

* He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
  (arXiv 1512.03385, 2015): Table 1 (ImageNet depths 18-152), Section 4.2 (CIFAR-10
  networks with 6n+2 layers), shortcut options A/B/C (Section 4.1).
* He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016
  (arXiv 1603.05027): full pre-activation units.

Architecture options the builders take as keyword arguments (``create_model`` overrides):

``version`` (ImageNet names; CIFAR ResNets have no bottlenecks)
    ``"v1.5"`` (default, torchvision): a bottleneck's stride sits on its 3x3 convolution.
    ``"v1"``: on the first 1x1, as in the 2015 paper. Basic blocks are the same in both.
``shortcut``
    ``"A"`` zero-padded identity, ``"B"`` projection only where the shape changes
    (default for ImageNet names, torchvision's), ``"C"`` projection everywhere, ``"none"``
    no shortcut: the paper's plain networks, which the ``plain*`` names fix.
``norm_position``
    Where batch norm sits relative to each convolution and the addition.
    ``"post"`` (default): conv-BN(-ReLU), BN before the addition and ReLU after it (2015).
    ``"pre"``: BN-ReLU-conv, nothing after the addition, plus one BN-ReLU after the last
    stage (2016, Fig. 4e "full pre-activation"). The ``preact_*`` names fix ``"pre"``.
``zero_init_residual``
    Start every residual branch at zero output: the last BN's scale is zeroed (post), or the
    last convolution's weights (pre, whose branches end in a convolution).
``small_input`` (ImageNet names)
    A 3x3 stride-1 first convolution and no max pool, for 32x32 or 28x28 images. Every
    state_dict key stays the same; only ``conv1.weight`` changes shape (7x7 -> 3x3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from cnnlab.errors import CnnlabError
from cnnlab.layers.residual import (
    BasicBlock,
    Bottleneck,
    PreActBlock,
    PreActBottleneck,
    conv3x3,
)
from cnnlab.models.registry import register_model, resolve_options

__all__ = [
    "ResNet",
    "preact_resnet18",
    "preact_resnet34",
    "preact_resnet50",
    "preact_resnet101",
    "preact_resnet152",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
    "resnet1202",
]

BlockType = type[BasicBlock | Bottleneck | PreActBlock | PreActBottleneck]

_PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition (CVPR)"
_PAPER_PREACT = "He et al. 2016, Identity Mappings in Deep Residual Networks (ECCV)"

# depth -> (block kind, residual blocks per stage): He et al. 2015, Table 1.
_IMAGENET_CONFIGS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
_IMAGENET_WIDTHS = (64, 128, 256, 512)
# CIFAR-10 networks (Section 4.2): three stages of 2n 3x3 layers on 32, 16, 8 pixel maps.
_CIFAR_WIDTHS = (16, 32, 64)

_BLOCKS: dict[tuple[str, str], BlockType] = {
    ("basic", "post"): BasicBlock,
    ("bottleneck", "post"): Bottleneck,
    ("basic", "pre"): PreActBlock,
    ("bottleneck", "pre"): PreActBottleneck,
}
_STRIDE_IN_1X1 = {"v1": True, "v1.5": False}
# Keyword options of the ImageNet ResNet builders and their defaults (module docstring).
_OPTIONS: dict[str, Any] = {
    "version": "v1.5",
    "shortcut": "B",
    "norm_position": "post",
    "zero_init_residual": False,
}


def _block_type(kind: str, norm_position: str) -> BlockType:
    try:
        return _BLOCKS[(kind, norm_position)]
    except KeyError:
        raise CnnlabError(
            f"unknown norm_position {norm_position!r}: use 'post' (conv-BN-ReLU, He et al. 2015) "
            "or 'pre' (BN-ReLU-conv, He et al. 2016)"
        ) from None


def _stride_in_1x1(version: str) -> bool:
    try:
        return _STRIDE_IN_1X1[version]
    except KeyError:
        raise CnnlabError(
            f"unknown ResNet version {version!r}: use 'v1' (stride on the first 1x1, as in the "
            "paper) or 'v1.5' (stride on the 3x3, torchvision)"
        ) from None


class ResNet(nn.Module):
    """A stem, stages of residual blocks, global average pooling and one linear layer.

    ``layers[i]`` blocks of width ``widths[i]`` form stage ``layer{i+1}``; every stage after
    the first halves the spatial size in its first block. The stem is a 7x7 stride-2 conv
    followed by a 3x3 stride-2 max pool, or with ``small_input`` a 3x3 stride-1 conv and no
    pool; its width is ``widths[0]``. Pre-activation blocks add ``final_bn`` (BN-ReLU after
    the last stage) and the first block skips its own BN-ReLU, which the stem supplies.
    """

    def __init__(
        self,
        block: BlockType,
        layers: Sequence[int],
        widths: Sequence[int] = _IMAGENET_WIDTHS,
        num_classes: int = 1000,
        in_channels: int = 3,
        small_input: bool = False,
        shortcut: str = "B",
        stride_in_1x1: bool = False,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths) or not layers:
            raise CnnlabError(f"need one width per stage: layers={layers}, widths={widths}")
        if min(layers) < 1:
            raise CnnlabError(f"every stage needs at least one block, got layers={layers}")
        if zero_init_residual and shortcut == "none":
            raise CnnlabError("zero_init_residual starts each block as its shortcut, and a plain network has "
                              "none: every block would start at zero; drop zero_init_residual")
        stem_width = widths[0]
        if small_input:
            self.conv1 = conv3x3(in_channels, stem_width)
        else:
            self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU()
        self.maxpool = None if small_input else nn.MaxPool2d(3, stride=2, padding=1)

        channels = stem_width
        self.stage_names: list[str] = []
        for i, (count, width) in enumerate(zip(layers, widths, strict=True)):
            blocks = []
            for j in range(count):
                options: dict[str, Any] = {}
                if issubclass(block, (Bottleneck, PreActBottleneck)):
                    options["stride_in_1x1"] = stride_in_1x1
                if block.preactivation and i == 0 and j == 0:
                    options["preact"] = False
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(channels, width, stride, shortcut, **options))
                channels = width * block.expansion
            name = f"layer{i + 1}"
            self.add_module(name, nn.Sequential(*blocks))
            self.stage_names.append(name)

        self.final_bn = nn.BatchNorm2d(channels) if block.preactivation else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self.num_features = channels

        # He initialisation (He et al. 2015b, "Delving Deep into Rectifiers"), fan-out mode as
        # in the authors' Torch code and torchvision.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # Goyal et al. 2017 ("Accurate, Large Minibatch SGD", Section 5.1): each block
            # starts as its shortcut, which helps large-batch training.
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck, PreActBlock, PreActBottleneck)):
                    m.zero_init_last()

    def forward_features(self, x: Tensor) -> Tensor:
        """The last stage's feature maps (after the final BN-ReLU in pre-activation nets)."""
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        if self.final_bn is not None:
            x = self.relu(self.final_bn(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.forward_features(x))
        return self.fc(torch.flatten(x, 1))


def _resnet(
    depth: int,
    num_classes: int,
    in_channels: int,
    small_input: bool,
    given: dict[str, Any],
    name: str | None = None,
) -> ResNet:
    # The caller's options arrive as one dict so that no option name can collide with a
    # positional parameter (``depth=...`` is refused as unknown, not a Python TypeError).
    options = resolve_options(name or f"resnet{depth}", given, _OPTIONS)
    kind, layers = _IMAGENET_CONFIGS[depth]
    return ResNet(
        _block_type(kind, options["norm_position"]),
        layers,
        _IMAGENET_WIDTHS,
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=small_input,
        shortcut=options["shortcut"],
        stride_in_1x1=_stride_in_1x1(options["version"]),
        zero_init_residual=options["zero_init_residual"],
    )


def _preact_resnet(
    depth: int, num_classes: int, in_channels: int, small_input: bool, given: dict[str, Any]
) -> ResNet:
    if given.get("norm_position", "pre") != "pre":
        raise CnnlabError(
            f"preact_resnet{depth} always has norm_position='pre'; "
            f"use resnet{depth} for norm_position={given['norm_position']!r}"
        )
    options = {**given, "norm_position": "pre"}
    return _resnet(depth, num_classes, in_channels, small_input, options, f"preact_resnet{depth}")


def _plain(given: dict[str, Any], name: str) -> dict[str, Any]:
    """The options of a plain network: its own, with no shortcut."""
    if "shortcut" in given:
        raise CnnlabError(f"{name} has no shortcuts by definition; for shortcut={given['shortcut']!r} use "
                          f"{name.replace('plain', 'resnet')}")
    return {**given, "shortcut": "none"}


def _cifar_resnet(depth: int, num_classes: int, in_channels: int, given: dict[str, Any],
                  name: str | None = None) -> ResNet:
    # Bottleneck-free, so ``version`` would change nothing: not an option here.
    defaults = {k: v for k, v in _OPTIONS.items() if k != "version"} | {"shortcut": "A"}
    options = resolve_options(name or f"resnet{depth}", given, defaults)
    n = (depth - 2) // 6
    return ResNet(
        _block_type("basic", options["norm_position"]),
        (n, n, n),
        _CIFAR_WIDTHS,
        num_classes=num_classes,
        in_channels=in_channels,
        small_input=True,
        shortcut=options["shortcut"],
        zero_init_residual=options["zero_init_residual"],
    )


# ImageNet ResNets: torchvision-compatible at the default options.


@register_model(family="resnet", paper=_PAPER, torchvision="resnet18", min_input=1)
def resnet18(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """ResNet-18: basic blocks 2-2-2-2, 11.7M parameters (torchvision-compatible)."""
    return _resnet(18, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER, torchvision="resnet34", min_input=1)
def resnet34(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """ResNet-34: basic blocks 3-4-6-3, 21.8M parameters (torchvision-compatible)."""
    return _resnet(34, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER, torchvision="resnet50", min_input=1)
def resnet50(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """ResNet-50: bottlenecks 3-4-6-3, v1.5 by default, 25.6M parameters (torchvision)."""
    return _resnet(50, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER, torchvision="resnet101", min_input=1)
def resnet101(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """ResNet-101: bottlenecks 3-4-23-3, v1.5 by default, 44.5M parameters (torchvision)."""
    return _resnet(101, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER, torchvision="resnet152", min_input=1)
def resnet152(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """ResNet-152: bottlenecks 3-8-36-3, v1.5 by default, 60.2M parameters (torchvision)."""
    return _resnet(152, num_classes, in_channels, small_input, kwargs)


# Pre-activation ResNets (He et al. 2016): same stages, BN-ReLU before every convolution.


@register_model(family="resnet", paper=_PAPER_PREACT, min_input=1)
def preact_resnet18(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """Pre-activation ResNet-18: BN-ReLU-conv basic blocks 2-2-2-2, final BN-ReLU."""
    return _preact_resnet(18, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER_PREACT, min_input=1)
def preact_resnet34(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """Pre-activation ResNet-34: BN-ReLU-conv basic blocks 3-4-6-3, final BN-ReLU."""
    return _preact_resnet(34, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER_PREACT, min_input=1)
def preact_resnet50(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """Pre-activation ResNet-50: BN-ReLU-conv bottlenecks 3-4-6-3, final BN-ReLU."""
    return _preact_resnet(50, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER_PREACT, min_input=1)
def preact_resnet101(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """Pre-activation ResNet-101: BN-ReLU-conv bottlenecks 3-4-23-3, final BN-ReLU."""
    return _preact_resnet(101, num_classes, in_channels, small_input, kwargs)


@register_model(family="resnet", paper=_PAPER_PREACT, min_input=1)
def preact_resnet152(
    num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any
) -> ResNet:
    """Pre-activation ResNet-152: BN-ReLU-conv bottlenecks 3-8-36-3, final BN-ReLU."""
    return _preact_resnet(152, num_classes, in_channels, small_input, kwargs)


# CIFAR-10 ResNets (He et al. 2015, Section 4.2, Table 6): 6n+2 layers, shortcut A.


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def resnet20(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-20 (n=3): 16-32-64 channels, shortcut A, 0.27M parameters."""
    return _cifar_resnet(20, num_classes, in_channels, kwargs)


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def resnet32(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-32 (n=5): 16-32-64 channels, shortcut A, 0.46M parameters."""
    return _cifar_resnet(32, num_classes, in_channels, kwargs)


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def resnet44(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-44 (n=7): 16-32-64 channels, shortcut A, 0.66M parameters."""
    return _cifar_resnet(44, num_classes, in_channels, kwargs)


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def resnet56(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-56 (n=9): 16-32-64 channels, shortcut A, 0.85M parameters."""
    return _cifar_resnet(56, num_classes, in_channels, kwargs)


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def resnet110(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-110 (n=18): 16-32-64 channels, shortcut A, 1.7M parameters."""
    return _cifar_resnet(110, num_classes, in_channels, kwargs)


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def resnet1202(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR ResNet-1202 (n=200): 16-32-64 channels, shortcut A, 19.4M parameters."""
    return _cifar_resnet(1202, num_classes, in_channels, kwargs)


# Plain networks (He et al. 2015, Section 4.1, Table 1 and Fig. 4; Section 4.2, Fig. 6): the
# same layers as the ResNets without any shortcut, the baselines whose training error grows
# with depth (the degradation problem the shortcuts answer).


@register_model(family="resnet", paper=_PAPER, min_input=1)
def plain18(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any) -> ResNet:
    """Plain-18: ResNet-18's layers without shortcuts (Table 1, Fig. 4 left), 11.5M parameters."""
    return _resnet(18, num_classes, in_channels, small_input, _plain(kwargs, "plain18"), "plain18")


@register_model(family="resnet", paper=_PAPER, min_input=1)
def plain34(num_classes: int = 1000, in_channels: int = 3, small_input: bool = False, **kwargs: Any) -> ResNet:
    """Plain-34: ResNet-34's layers without shortcuts (Table 1, Fig. 4 left), 21.6M parameters."""
    return _resnet(34, num_classes, in_channels, small_input, _plain(kwargs, "plain34"), "plain34")


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def plain20(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-20 (n=3): ResNet-20's layers without shortcuts (Fig. 6 left), its parameters."""
    return _cifar_resnet(20, num_classes, in_channels, _plain(kwargs, "plain20"), "plain20")


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def plain32(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-32 (n=5): ResNet-32's layers without shortcuts (Fig. 6 left), its parameters."""
    return _cifar_resnet(32, num_classes, in_channels, _plain(kwargs, "plain32"), "plain32")


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def plain44(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-44 (n=7): ResNet-44's layers without shortcuts (Fig. 6 left), its parameters."""
    return _cifar_resnet(44, num_classes, in_channels, _plain(kwargs, "plain44"), "plain44")


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def plain56(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-56 (n=9): ResNet-56's layers without shortcuts (Fig. 6 left), its parameters."""
    return _cifar_resnet(56, num_classes, in_channels, _plain(kwargs, "plain56"), "plain56")


@register_model(family="resnet", paper=_PAPER, default_input=(3, 32, 32), min_input=1)
def plain110(num_classes: int = 10, in_channels: int = 3, **kwargs: Any) -> ResNet:
    """CIFAR plain-110 (n=18): ResNet-110's layers without shortcuts (Fig. 6 left), its parameters."""
    return _cifar_resnet(110, num_classes, in_channels, _plain(kwargs, "plain110"), "plain110")
