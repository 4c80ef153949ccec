"""Using a trained model: evaluate a run or checkpoint on a split, predict classes of images."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.train.checkpoint import model_from_checkpoint
from cnnlab.train.config import config_from_dict

__all__ = ["checkpoint_path", "evaluate_checkpoint", "image_tensor", "load_image", "predict"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def checkpoint_path(run_or_checkpoint: str | Path) -> Path:
    """A run folder means its best checkpoint; a file is taken as it is."""
    path = Path(run_or_checkpoint)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise CnnlabError(f"{path} holds no best.pt or last.pt: is it a cnnlab run folder?")
    if not path.exists():
        raise CnnlabError(f"{path} does not exist: give a run folder or a checkpoint file")
    return path


def evaluate_checkpoint(run_or_checkpoint: str | Path, split: str = "test", dataset: str | None = None,
                        data_root: str | None = None, batch_size: int = 1000, device: str = "cpu") -> dict[str, Any]:
    """Top-1, top-5, per-class accuracy and the confusion matrix of a checkpoint on a split.

    The data are read and adapted as the run that wrote the checkpoint read them, unless
    ``dataset``/``data_root`` name others (with the same image size and classes).
    """
    from cnnlab.data import Split, TensorLoader, folder_loader
    from cnnlab.train.loop import evaluate, load_data

    path = checkpoint_path(run_or_checkpoint)
    model, ckpt = model_from_checkpoint(path)
    if "config" not in ckpt:
        raise CnnlabError(f"{path} does not say which data it was trained on: give a run's checkpoint")
    cfg = config_from_dict(ckpt["config"])
    ds = load_data(dataclasses.replace(
        cfg, dataset=dataset or cfg.dataset, data_root=data_root if data_root is not None else cfg.data_root,
        limit=cfg.limit if dataset is None else None))
    if split not in ("test", "val", "train"):
        raise CnnlabError(f"split must be test, val or train, got {split!r}")
    data = getattr(ds, split)
    if data is None:
        raise CnnlabError(f"{ds.name} has no {split} split here: use --split val")
    classes = ckpt.get("data", {}).get("classes", list(ds.classes))
    if len(classes) != len(ds.classes):
        raise CnnlabError(f"the checkpoint knows {len(classes)} classes but {ds.name} has {len(ds.classes)}")
    dev = torch.device(device)
    model.to(dev)
    mean, std = ckpt["data"]["mean"], ckpt["data"]["std"]
    if isinstance(data, Split):
        loader = TensorLoader(data, batch_size, shuffle=False, augment=None, mean=mean, std=std, device=dev)
    else:
        loader = folder_loader(data, batch_size, shuffle=False, workers=2, seed=0, rank=0, world_size=1, device=dev)
    result = evaluate(model, loader, len(classes), dev, confusion=True)
    result["per_class"] = {name: acc for name, acc in zip(classes, result["per_class"], strict=True)}
    return {"checkpoint": str(path), "model": ckpt["model"]["name"], "dataset": ds.name, "split": split,
            "classes": classes, **result}


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 C x H x W tensor (decoded with Pillow); one clear line when it is not one."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"image {path} does not exist: check the path")
    try:
        with Image.open(path) as img:
            return image_tensor(img)
    except (UnidentifiedImageError, OSError, ValueError):
        raise CnnlabError(f"{path} is not an image cnnlab can read (PNG, JPEG, GIF, WebP, BMP)") from None


def image_tensor(img: Any) -> torch.Tensor:
    """An open Pillow image as a uint8 C x H x W tensor: 1 channel for grey modes, else 3 (RGB)."""
    import numpy as np

    img = img.convert("L" if img.mode in ("1", "L", "I;16", "I", "F") else "RGB")
    tensor = torch.from_numpy(np.asarray(img).copy())
    return tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()


def _prepare(image: torch.Tensor, channels: int, size: Sequence[int], mean: Sequence[float],
             std: Sequence[float]) -> torch.Tensor:
    x = image
    if channels == 1 and x.shape[0] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
        x = (x.float() * weights).sum(0, keepdim=True)
    elif channels == 3 and x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    x = x.float().unsqueeze(0) / 255
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (x - m) / s


@torch.no_grad()
def predict(checkpoint: str | Path, images: Sequence[str | Path], top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` most likely classes of each image, with probabilities and class names.

    Each image is converted to the checkpoint's channels and resized to its input size, then
    normalised with the training set's statistics.
    """
    path = checkpoint_path(checkpoint)
    model, ckpt = model_from_checkpoint(path)
    meta = ckpt.get("data")
    if not meta:
        raise CnnlabError(f"{path} does not record its classes and input: give a run's checkpoint")
    model.eval()
    c, h, w = meta["input_size"]
    k = max(1, min(top, len(meta["classes"])))
    out = []
    for image_path in images:
        x = _prepare(load_image(image_path), c, (h, w), meta["mean"], meta["std"])
        output = model(x)
        logits = output if isinstance(output, torch.Tensor) else output[0]
        probs = logits.softmax(1)[0]
        values, indices = probs.topk(k)
        out.append({"image": str(image_path), "top": [
            {"class": meta["classes"][int(i)], "index": int(i), "probability": float(v)}
            for v, i in zip(values, indices, strict=True)]})
    return out
