"""Residual blocks: post-activation (He et al. 2015) and pre-activation (He et al. 2016).

Two papers define the blocks here:

* He, Zhang, Ren, Sun 2015, "Deep Residual Learning for Image Recognition" (CVPR 2016):
  :class:`BasicBlock` (two 3x3 convolutions) and :class:`Bottleneck` (1x1 - 3x3 - 1x1),
  each convolution followed by batch norm, ReLU after the addition ("post-activation").
* He, Zhang, Ren, Sun 2016, "Identity Mappings in Deep Residual Networks" (ECCV 2016):
  :class:`PreActBlock` and :class:`PreActBottleneck`, where every convolution is preceded by
  BN-ReLU and nothing follows the addition, so the shortcut path is a pure identity.

Shortcut types (He et al. 2015, Section 4.1, "Identity vs. Projection Shortcuts"):

* ``"A"``: parameter-free. Identity where shapes match; where they do not, the input is
  subsampled with the block's stride and the missing channels are zeros (:class:`ZeroPadShortcut`).
* ``"B"``: a 1x1 projection (conv + BN) only where the shape changes, identity elsewhere.
  torchvision's ResNets use this.
* ``"C"``: a 1x1 projection in every block.
* ``"none"``: no shortcut at all: the "plain" networks the paper compares against (Section
  4.1, Fig. 4; Section 4.2, Fig. 6), the same layers without the addition.

Attribute names follow torchvision (``conv1``, ``bn1``, ..., ``downsample``) so that its
state_dicts load into the post-activation blocks unchanged. A block has no ``downsample``
(``None``) where its shortcut is the identity.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from cnnlab.errors import CnnlabError

__all__ = [
    "SHORTCUT_TYPES",
    "BasicBlock",
    "Bottleneck",
    "PreActBlock",
    "PreActBottleneck",
    "ZeroPadShortcut",
    "conv1x1",
    "conv3x3",
    "make_shortcut",
]

SHORTCUT_TYPES: tuple[str, ...] = ("A", "B", "C", "none")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a batch norm supplies the shift)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut type A: keep every ``stride``-th row and column, append zero channels.

    Subsampling takes the top-left pixel of each ``stride x stride`` cell, the same pixels a
    1x1 convolution with that stride reads, so the output size matches the residual branch's
    3x3 stride-``stride`` convolution (padding 1) for every input size, odd ones included.
    The new channels come after the existing ones (the paper does not say where they go).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise CnnlabError(
                f"shortcut A can only add channels ({in_channels} -> {out_channels}); "
                "use shortcut 'B' or 'C' to reduce them"
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels > 0:
            # F.pad pads the last dimensions first: (W left, W right, H top, H bottom, C, C).
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


def make_shortcut(
    kind: str, in_channels: int, out_channels: int, stride: int = 1, norm: bool = True
) -> nn.Module | None:
    """The shortcut of one block, or ``None`` where it is the identity.

    ``norm`` adds a batch norm after a projection (post-activation blocks); pre-activation
    blocks project an input that is already normalised and add the result unnormalised.
    """
    if kind not in SHORTCUT_TYPES:
        raise CnnlabError(f"unknown shortcut type {kind!r}: use one of 'A', 'B', 'C', 'none'")
    changes_shape = stride != 1 or in_channels != out_channels
    if kind == "none":
        return None
    if kind == "A" or (kind == "B" and not changes_shape):
        return ZeroPadShortcut(in_channels, out_channels, stride) if changes_shape else None
    conv = conv1x1(in_channels, out_channels, stride)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels)) if norm else nn.Sequential(conv)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions, conv-BN-ReLU-conv-BN, add the shortcut, ReLU (ResNet-18/34, CIFAR).

    The stride sits on the first 3x3; "v1" and "v1.5" are the same for this block.
    """

    expansion = 1
    preactivation = False

    def __init__(self, in_channels: int, planes: int, stride: int = 1, shortcut: str = "B") -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.residual = shortcut != "none"

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if not self.residual:
            return self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)

    def zero_init_last(self) -> None:
        """Make the residual branch output zero at start, so the block begins as its shortcut."""
        nn.init.zeros_(self.bn2.weight)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), each followed by BN, ReLU after the addition.

    ``stride_in_1x1=True`` puts the stride on the first 1x1 convolution, as in the paper and
    its released Caffe models ("v1"); the default puts it on the 3x3 ("v1.5", torchvision's
    choice, which keeps the 3x3 from reading only a quarter of the 1x1's output positions).
    """

    expansion = 4
    preactivation = False

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        stride_in_1x1: bool = False,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv1x1(in_channels, planes, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1 if stride_in_1x1 else stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.residual = shortcut != "none"

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if not self.residual:
            return self.relu(out)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)

    def zero_init_last(self) -> None:
        """Make the residual branch output zero at start, so the block begins as its shortcut."""
        nn.init.zeros_(self.bn3.weight)


class PreActBlock(nn.Module):
    """Full pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3, then add (no ReLU).

    Where the block changes shape, the first BN-ReLU is shared by both paths and the shortcut
    (a 1x1 conv without BN for types B/C) reads the activated input, as in the authors'
    released code; elsewhere the shortcut reads the block input untouched.
    ``preact=False`` drops the first BN-ReLU, for the block right after a stem that already
    ends in BN-ReLU (He et al. 2016, Appendix: "the first activation right after conv1").
    """

    expansion = 1
    preactivation = True

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        preact: bool = True,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels) if preact else None
        self.relu = nn.ReLU()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, out_channels)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm=False)
        self.shortcut_reads_activation = stride != 1 or in_channels != out_channels
        self.residual = shortcut != "none"

    def forward(self, x: Tensor) -> Tensor:
        act = x if self.bn1 is None else self.relu(self.bn1(x))
        identity = act if self.shortcut_reads_activation else x
        if self.downsample is not None:
            identity = self.downsample(identity)
        out = self.conv1(act)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity if self.residual else out

    def zero_init_last(self) -> None:
        """No BN ends the branch here, so zero its last convolution instead."""
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(nn.Module):
    """Full pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1 (x4), then add.

    Stride placement as in :class:`Bottleneck` (``stride_in_1x1=True`` is "v1", the placement
    of the authors' released CIFAR code); shortcut and ``preact`` as in :class:`PreActBlock`.
    """

    expansion = 4
    preactivation = True

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "B",
        stride_in_1x1: bool = False,
        preact: bool = True,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_channels) if preact else None
        self.relu = nn.ReLU()
        self.conv1 = conv1x1(in_channels, planes, stride if stride_in_1x1 else 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, 1 if stride_in_1x1 else stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.downsample = make_shortcut(shortcut, in_channels, out_channels, stride, norm=False)
        self.shortcut_reads_activation = stride != 1 or in_channels != out_channels
        self.residual = shortcut != "none"

    def forward(self, x: Tensor) -> Tensor:
        act = x if self.bn1 is None else self.relu(self.bn1(x))
        identity = act if self.shortcut_reads_activation else x
        if self.downsample is not None:
            identity = self.downsample(identity)
        out = self.conv1(act)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity if self.residual else out

    def zero_init_last(self) -> None:
        """No BN ends the branch here, so zero its last convolution instead."""
        nn.init.zeros_(self.conv3.weight)
