"""Arrays to PNG data URLs for the explorer: maps coloured with a matplotlib colormap, encoded by Pillow.

Pillow (a torchvision dependency) encodes a small map in well under a millisecond, so the
explorer sends feature maps, heat maps and photos inline in its JSON answers.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

__all__ = ["blend", "colorize", "png_data_url", "to_uint8"]


def to_uint8(picture: np.ndarray) -> np.ndarray:
    """An H x W or H x W x 3 array in [0, 1] as uint8."""
    return (np.clip(picture, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def colorize(values: np.ndarray, cmap: str = "viridis", normalize: bool = True) -> np.ndarray:
    """An H x W map as H x W x 3 floats in [0, 1] through ``cmap``; scaled to its own range when ``normalize``."""
    from matplotlib import colormaps

    arr = np.asarray(values, dtype=np.float64)
    if normalize:
        low, high = float(arr.min()), float(arr.max())
        arr = (arr - low) / (high - low) if high > low else np.zeros_like(arr)
    return colormaps[cmap](np.clip(arr, 0.0, 1.0))[..., :3]


def blend(picture: np.ndarray, heat: np.ndarray, cmap: str = "jet", alpha: float = 0.45) -> np.ndarray:
    """``heat`` (H x W in [0, 1]) coloured and laid over ``picture`` (H x W or H x W x 3 in [0, 1])."""
    base = picture if picture.ndim == 3 else np.repeat(picture[..., None], 3, axis=2)
    return (1 - alpha) * base + alpha * colorize(heat, cmap, normalize=False)


def png_data_url(picture: np.ndarray) -> str:
    """An H x W or H x W x 3 array (floats in [0, 1] or uint8) as a ``data:image/png;base64,...`` URL."""
    arr = picture if picture.dtype == np.uint8 else to_uint8(picture)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
