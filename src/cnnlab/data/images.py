"""Decoding image files into uint8 C x H x W tensors, high bit depths included.

Pillow's own ``convert("L")`` clips 16-bit and 32-bit pixels at 255 and truncates float ones,
so a 16-bit scan turns white and a float TIFF black. Here they are scaled instead:
16-bit by its full range (value * 255 / 65535), 32-bit integers by 255, 65535 or their own
range (whichever holds them), floats as [0, 1] when they lie in it, else by their own range.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError

__all__ = ["GREY_MODES", "model_input", "read_image", "to_uint8"]

GREY_MODES = ("1", "L", "I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _scaled(img: Any) -> np.ndarray:
    """A one-channel image of a wide mode as uint8 H x W, scaled (never clipped) to 0..255."""
    values = np.asarray(img).astype(np.float64)
    if values.size and not np.isfinite(values).all():
        raise CnnlabError("the image holds NaN or infinite pixels: save it with finite values")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        values = values * (255 / 65535)
    elif img.mode == "F" and low >= 0 and high <= 1:
        values = values * 255
    elif img.mode == "I" and low >= 0 and high <= 255:
        pass
    elif img.mode == "I" and low >= 0 and high <= 65535:
        values = values * (255 / 65535)
    elif high > low:
        values = (values - low) * (255 / (high - low))
    else:
        values = np.zeros_like(values)
    return np.rint(values).astype(np.uint8)


def to_uint8(img: Any, channels: int | None = None) -> torch.Tensor:
    """An open Pillow image as a uint8 C x H x W tensor.

    ``channels``: 1 (grey), 3 (RGB), or None for the image's own: 1 for grey modes, else 3.
    """
    if channels not in (None, 1, 3):
        raise CnnlabError(f"images are read with 1 or 3 channels, not {channels}")
    if img.mode in _WIDE_MODES:
        grey = torch.from_numpy(_scaled(img)).unsqueeze(0)
        return grey.expand(3, -1, -1).contiguous() if channels == 3 else grey
    target = {1: "L", 3: "RGB"}.get(channels) or ("L" if img.mode in GREY_MODES else "RGB")
    tensor = torch.from_numpy(np.asarray(img.convert(target)).copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def read_image(path: str | Path, channels: int | None = None) -> torch.Tensor:
    """The image file at ``path`` as uint8 C x H x W; one line naming the cause when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise CnnlabError(f"{path} is a folder, not an image: give an image file")
    if not path.is_file():
        raise CnnlabError(f"image {path} does not exist: check the path")
    try:
        with Image.open(path) as img:
            return to_uint8(img, channels)
    except Image.DecompressionBombError:
        raise CnnlabError(f"{path} has more pixels than the {2 * Image.MAX_IMAGE_PIXELS:,} Pillow opens safely "
                          "(a decompression bomb, or a huge picture): give a smaller image") from None
    except CnnlabError as exc:
        raise CnnlabError(f"{path}: {exc}") from None
    except PermissionError:
        raise CnnlabError(f"permission denied reading {path}: make the file readable") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise CnnlabError(f"{path} is not an image cnnlab can read: give a PNG, JPEG, GIF, WebP, BMP or TIFF "
                          "file") from None


def model_input(image: torch.Tensor, channels: int, size: Sequence[int], mean: Sequence[float],
                std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """An image as a network's normalised 1 x C x H x W input, and as the 1 x C x H x W picture it saw.

    ``image`` is C x H x W, uint8 (or a float tensor above 1) in 0..255 or float in [0, 1]. Colour
    becomes grey by the BT.601 luma weights (0.299, 0.587, 0.114), grey becomes colour by
    repetition, and a picture of another size is resampled (bilinear, antialiased) to ``size``.
    The picture is in [0, 1]; the input is the picture less ``mean``, over ``std``, per channel.
    """
    x = image.float()
    if image.dtype == torch.uint8 or (x.numel() and x.max() > 1.0):
        x = x / 255
    if channels == 1 and x.shape[0] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0, keepdim=True)
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] != channels:
        raise CnnlabError(f"the model takes {channels} channels, the image has {x.shape[0]}")
    x = x.unsqueeze(0)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - m) / s, x
