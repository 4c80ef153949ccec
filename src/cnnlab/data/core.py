"""The in-memory dataset types and the explicit channel/size adaptation.

A :class:`Split` is one split resident in memory as a uint8 ``N x C x H x W`` tensor plus
int64 labels; a :class:`Dataset` bundles train/val/test splits with the class names, the
per-channel statistics of the (adapted) training images and a record of where everything
came from. :class:`Adapt` is applied once, to the stored uint8 tensors, so every later epoch
pays nothing for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.limits import check_memory

if TYPE_CHECKING:
    from cnnlab.data.folder import FolderDataset

__all__ = ["Adapt", "Dataset", "Split", "adapt_images", "channel_stats"]

# ITU-R BT.601 luma, the weights torchvision's rgb_to_grayscale and PIL's convert("L") use.
_LUMA = (0.299, 0.587, 0.114)
_CHUNK = 4096  # images per chunk for the whole-split passes (bounded temporary memory)


@dataclass(eq=False)
class Split:
    """One split resident in memory: uint8 ``N x C x H x W`` images and int64 labels, on the CPU."""

    images: torch.Tensor
    labels: torch.Tensor
    # Copies of images/labels already moved to a device, so several loaders share one copy.
    _on_device: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise CnnlabError(
                f"a Split holds uint8 N x C x H x W images, got {self.images.dtype} with shape "
                f"{tuple(self.images.shape)}: convert with (x * 255).round().to(torch.uint8)"
            )
        if self.labels.dim() != 1 or len(self.labels) != len(self.images):
            raise CnnlabError(
                f"a Split needs one label per image: {len(self.images)} images but labels of shape "
                f"{tuple(self.labels.shape)}"
            )
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"Split({len(self)} x {tuple(self.images.shape[1:])})"

    @property
    def in_channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: torch.Tensor | slice) -> Split:
        """The examples at ``index`` (a new Split; a slice shares memory with this one)."""
        return Split(self.images[index], self.labels[index])

    def to_device(self, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) on ``device``, copied there once and then reused."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.images, self.labels
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = (
                self.images.to(device, non_blocking=False),
                self.labels.to(device, non_blocking=False),
            )
        return self._on_device[key]


@dataclass(eq=False)
class Dataset:
    """A dataset ready for training: splits, class names, statistics and provenance."""

    name: str
    classes: list[str]
    train: Split | FolderDataset
    val: Split | FolderDataset
    test: Split | FolderDataset | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    val_source: str
    adaptation: list[str] = field(default_factory=list)
    test_source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.in_channels)

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.train.image_size)  # type: ignore[return-value]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for run summaries and ``--json`` output."""
        return {
            "name": self.name,
            "classes": len(self.classes),
            "input": [self.in_channels, *self.image_size],
            "train": len(self.train),
            "val": len(self.val),
            "test": None if self.test is None else len(self.test),
            "mean": list(self.mean),
            "std": list(self.std),
            "source": self.source,
            "val_source": self.val_source,
            "test_source": self.test_source,
            "adaptation": list(self.adaptation),
        }


@dataclass(frozen=True)
class Adapt:
    """Explicit channel/size adaptation, applied once to the stored uint8 images.

    ``channels``: 1 -> 3 repeats the gray channel; 3 -> 1 takes ITU-R 601 luma
    (0.299 R + 0.587 G + 0.114 B, rounded). ``size``: target square side. ``mode``: "pad"
    zero-pads centred (28 -> 32 pads 2 on each side; an odd difference puts the extra
    row/column at the bottom/right) or "resize" (bilinear with antialiasing, rounded back to
    uint8).
    """

    channels: int | None = None
    size: int | None = None
    mode: str = "pad"

    def __post_init__(self) -> None:
        if self.channels not in (None, 1, 3):
            raise CnnlabError(f"Adapt channels must be 1 or 3, got {self.channels}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise CnnlabError(f"Adapt size must be a positive integer, got {self.size!r}")
        if self.mode not in ("pad", "resize"):
            raise CnnlabError(f"Adapt mode must be 'pad' or 'resize', got {self.mode!r}")

    @property
    def is_identity(self) -> bool:
        return self.channels is None and self.size is None

    @classmethod
    def parse(cls, text: str) -> Adapt:
        """Parse a command-line spec: ``"channels=3,size=32,mode=pad"`` (any subset, any order)."""
        kwargs: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("channels", "size", "mode"):
                raise CnnlabError(
                    f"cannot read adaptation {text!r}: write e.g. channels=3,size=32,mode=pad"
                )
            if key == "mode":
                kwargs[key] = value.strip()
            else:
                try:
                    kwargs[key] = int(value)
                except ValueError:
                    raise CnnlabError(
                        f"cannot read adaptation {text!r}: {key} must be an integer"
                    ) from None
        return cls(**kwargs)

    def describe(self, channels: int, size: tuple[int, int]) -> list[str]:
        """Human-readable lines for what this adaptation does to ``channels x size`` images."""
        lines = []
        if self.channels is not None and self.channels != channels:
            if self.channels == 3:
                lines.append(f"channels {channels} -> 3: the gray channel repeated")
            else:
                lines.append(
                    f"channels {channels} -> 1: ITU-R 601 luma 0.299 R + 0.587 G + 0.114 B"
                )
        if self.size is not None and tuple(size) != (self.size, self.size):
            h, w = size
            if self.mode == "pad":
                top, left = (self.size - h) // 2, (self.size - w) // 2
                lines.append(
                    f"size {h}x{w} -> {self.size}x{self.size}: zero padding, "
                    f"{top} top, {self.size - h - top} bottom, {left} left, {self.size - w - left} right"
                )
            else:
                lines.append(
                    f"size {h}x{w} -> {self.size}x{self.size}: bilinear resize with antialiasing"
                )
        return lines


def adapt_images(images: torch.Tensor, adapt: Adapt | None) -> torch.Tensor:
    """Apply ``adapt`` to uint8 ``N x C x H x W`` images (in chunks; returns uint8)."""
    if adapt is None or adapt.is_identity:
        return images
    n, c, h, w = images.shape
    if adapt.channels is not None and c not in (1, 3):
        raise CnnlabError(
            f"cannot adapt {c}-channel images to {adapt.channels} channels: only 1 <-> 3"
        )
    if adapt.size is not None and adapt.mode == "pad" and (h > adapt.size or w > adapt.size):
        raise CnnlabError(
            f"cannot pad {h}x{w} images to {adapt.size}x{adapt.size} (smaller): use mode='resize'"
        )
    out_c = adapt.channels or c
    out_hw = (adapt.size, adapt.size) if adapt.size else (h, w)
    if n == 0:
        return images.new_zeros((0, out_c, *out_hw))
    check_memory(2 * n * out_c * out_hw[0] * out_hw[1], f"adapting {n:,} images to {out_c}x{out_hw[0]}x{out_hw[1]}",
                 "adapt to a smaller size, or keep fewer images with --limit")
    return torch.cat([_adapt_chunk(images[i : i + _CHUNK], adapt) for i in range(0, n, _CHUNK)])


def _adapt_chunk(x: torch.Tensor, adapt: Adapt) -> torch.Tensor:
    c, h, w = x.shape[1:]
    if adapt.channels == 3 and c == 1:
        x = x.expand(-1, 3, -1, -1)
    elif adapt.channels == 1 and c == 3:
        luma = torch.tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        x = (x.float() * luma).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    if adapt.size is not None and (h, w) != (adapt.size, adapt.size):
        s = adapt.size
        if adapt.mode == "pad":
            top, left = (s - h) // 2, (s - w) // 2
            x = F.pad(x, (left, s - w - left, top, s - h - top))
        else:
            y = F.interpolate(
                x.float(), size=(s, s), mode="bilinear", align_corners=False, antialias=True
            )
            x = y.round_().clamp_(0, 255).to(torch.uint8)
    return x.contiguous()


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images in [0, 1] units.

    Sums and sums of squares come exactly, in int64, from each channel's histogram of its 256
    possible values (one counting pass, no arithmetic per pixel), then become float64
    statistics: no rounding until the final division.
    """
    n, c = images.shape[:2]
    if n == 0:
        return (0.0,) * c, (1.0,) * c
    values = torch.arange(256, dtype=torch.int64)
    counts = torch.stack([torch.bincount(images[:, ch].reshape(-1), minlength=256) for ch in range(c)])
    total = (counts * values).sum(dim=1)
    total_sq = (counts * values * values).sum(dim=1)
    count = n * images.shape[2] * images.shape[3]
    mean = total.double() / count
    var = (total_sq.double() / count - mean * mean).clamp_min(0)
    std = var.sqrt() / 255.0
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel: avoid division by 0
    return tuple(float(v) for v in mean / 255.0), tuple(float(v) for v in std)
