"""Shared plumbing for the pictures: headless figures, atomic PNG writes, images and models.

Figures are built as :class:`matplotlib.figure.Figure` objects (not through pyplot's global
state) at a fixed 100 dpi, so a figure of ``new_figure(w, h)`` is exactly ``w x h`` pixels in
the PNG. The Agg backend is selected when pyplot has not been imported yet, so importing
``cnnlab.viz`` on a machine without a display never tries to open a window.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # headless unless the caller already chose a backend
    matplotlib.use("Agg")

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError

if TYPE_CHECKING:
    from cnnlab.sources import Source

__all__ = [
    "DPI",
    "as_image",
    "conv_layers",
    "display_image",
    "input_meta",
    "layer_error",
    "load_image",
    "model_or_checkpoint",
    "new_figure",
    "prepare_input",
    "sample_photo",
    "save_figure",
]

DPI = 100

ImageLike = str | Path | torch.Tensor | np.ndarray | None
# A registry name, a checkpoint or run folder, a module, or a network the CLI resolved with its options.
ModelLike = Union[nn.Module, str, Path, "Source"]


def new_figure(width_px: int, height_px: int) -> Figure:
    """A figure that saves to exactly ``width_px`` x ``height_px`` pixels."""
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def save_figure(fig: Figure, out: str | Path, dpi: int = DPI) -> Path:
    """Write ``fig`` as PNG to ``out`` atomically (temporary file, then rename); parents are created.

    The figure is done with once saved (or failed): a pyplot figure is closed, so a long-lived
    process (the explorer) does not keep every picture it drew.
    """
    try:
        return _save(fig, out, dpi)
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            pyplot.close(fig)


def _save(fig: Figure, out: str | Path, dpi: int) -> Path:
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CnnlabError(f"cannot create folder {path.parent} for {path.name} ({exc.strerror}): choose another "
                          "--out") from None
    try:
        with atomic_write(path, ".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
    except OSError as exc:  # name the picture asked for, not the temporary file beside it
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    return path


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 C x H x W tensor; one clear line when it is missing or not an image."""
    from cnnlab.train.inference import load_image as _load

    return _load(path)


def sample_photo() -> Path:
    """The photograph matplotlib ships (Grace Hopper, 512x600): the default picture to look at."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise CnnlabError(f"matplotlib's sample photo {path} is missing: give an image file instead")
    return path


def as_image(image: ImageLike) -> torch.Tensor:
    """A path (or None for :func:`sample_photo`), tensor or array as a C x H x W tensor."""
    if image is None:
        image = sample_photo()
    if isinstance(image, (str, Path)):
        return load_image(image)
    tensor = torch.as_tensor(np.asarray(image)) if isinstance(image, np.ndarray) else image
    if not isinstance(tensor, torch.Tensor):
        raise CnnlabError(f"an image must be a file path, a tensor or an array, got {type(image).__name__}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3 or tensor.shape[0] not in (1, 3, 4):
        raise CnnlabError(f"an image tensor must be H x W or C x H x W with C = 1 or 3, got {tuple(tensor.shape)}")
    return tensor[:3] if tensor.shape[0] == 4 else tensor


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The model's 2-D convolutions with their names, in registration order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def layer_error(name: str, valid: Sequence[str], what: str = "layer", limit: int = 12) -> CnnlabError:
    """One line: the unknown name and (the first few of) the valid ones."""
    shown = ", ".join(valid[:limit])
    more = f", ... ({len(valid)} in all)" if len(valid) > limit else ""
    if not valid:
        return CnnlabError(f"the model has no {what} {name!r}: it has no such layers at all")
    return CnnlabError(f"the model has no {what} {name!r}: valid names are {shown}{more}")


def model_or_checkpoint(spec: ModelLike | Source, seed: int = 0,
                        input_size: Sequence[int] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """A model in eval mode and what is known about its input.

    ``spec`` is a registry name (built with random weights drawn from ``seed``), a cnnlab
    checkpoint file or run folder (weights and the training data's classes, mean, std and
    input size), a :class:`~cnnlab.sources.Source` already resolved (its checkpoint is not read
    again), or an ``nn.Module`` (taken as it is). ``meta`` has the keys ``name``,
    ``classes``, ``mean``, ``std``, ``input_size`` and ``dataset`` (``None`` where unknown).
    ``input_size`` (C x H x W), where the caller has one, sizes lazy layers in user code.
    """
    from cnnlab.sources import Source, resolve

    meta: dict[str, Any] = {"name": None, "classes": None, "mean": None, "std": None, "input_size": None,
                            "dataset": None}
    if isinstance(spec, nn.Module):
        return spec.eval(), meta
    source = spec if isinstance(spec, Source) else resolve(str(spec))
    with torch.random.fork_rng():  # random weights (a zoo or code model) drawn from ``seed``
        torch.manual_seed(seed)
        model = source.build(input_size)  # the size sizes lazy modules in user code
    data = source.data
    meta.update(name=source.name, classes=data.get("classes"), mean=data.get("mean"), std=data.get("std"),
                input_size=list(source.default_input) if source.default_input else None, dataset=data.get("dataset"))
    return model.eval(), meta


def input_meta(model: nn.Module, meta: dict[str, Any] | None) -> tuple[int, tuple[int, int], list[float], list[float]]:
    """(channels, (H, W), mean, std) of the model's input: from ``meta``, else guessed.

    Without a recorded input size the channels come from the first convolution and the size
    is 224x224; without recorded statistics mean and std are 0.5 per channel.
    """
    meta = meta or {}
    size = meta.get("input_size")
    if size is not None:
        c, h, w = (int(v) for v in size)
    else:
        convs = conv_layers(model)
        c, h, w = (convs[0][1].in_channels if convs else 3), 224, 224
    mean = list(meta.get("mean") or [0.5] * c)
    std = list(meta.get("std") or [0.5] * c)
    if len(mean) == 1 and c > 1:
        mean, std = mean * c, std * c
    return c, (h, w), mean, std


def prepare_input(image: ImageLike, model: nn.Module,
                  meta: dict[str, Any] | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """The image as the model's normalised 1 x C x H x W input, and as an H x W (x 3) picture in [0, 1].

    Without an image, a network trained on MNIST or Fashion-MNIST (``meta["dataset"]``) is shown
    a bundled test image of its data; anything else the sample photo.
    """
    from cnnlab.data.bundled import default_image
    from cnnlab.data.images import model_input

    c, size, mean, std = input_meta(model, meta)
    if image is None:
        image = default_image((meta or {}).get("dataset"))
    x, shown = model_input(as_image(image), c, size, mean, std)
    return x, display_image(shown[0])


def display_image(x: torch.Tensor) -> np.ndarray:
    """A C x H x W tensor in [0, 1] as what ``imshow`` wants: H x W for one channel, H x W x 3 for three."""
    arr = x.detach().float().clamp(0, 1).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
