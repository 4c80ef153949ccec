"""Test images that ship with the package: ten MNIST digits and ten Fashion-MNIST items.

Each is the first image of its class in the official test split, as a 28x28 grayscale PNG in
``samples/`` (``mnist-7.png``, ``fashion-mnist-ankle-boot.png``, ...). A network trained on an
MNIST-like dataset is shown one of them when no image is given (the first test image of each
set: the digit 7 and the ankle boot); anything else gets the sample photo.
"""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import CnnlabError

__all__ = ["SAMPLES", "default_image", "sample_images"]

SAMPLES = Path(__file__).with_name("samples")
# dataset name -> (file prefix, the default: the first image of the test split)
_SETS = {"mnist": ("mnist", "mnist-7.png"), "mnist-5k": ("mnist", "mnist-7.png"),
         "fashion-mnist": ("fashion-mnist", "fashion-mnist-ankle-boot.png")}


def sample_images(dataset: str) -> list[Path]:
    """Every bundled image of ``dataset`` (mnist, mnist-5k or fashion-mnist), one per class, by name."""
    if dataset not in _SETS:
        raise CnnlabError(f"no bundled images for {dataset!r}: there are some for {', '.join(_SETS)}")
    prefix = _SETS[dataset][0]
    return sorted(SAMPLES.glob(f"{prefix}-*.png"))  # glob matches from the start: no fashion-mnist in mnist-*


def default_image(dataset: str | None) -> Path | None:
    """The bundled test image shown for a network trained on ``dataset``, or None when it has none."""
    if dataset not in _SETS:
        return None
    path = SAMPLES / _SETS[dataset][1]
    return path if path.is_file() else None
