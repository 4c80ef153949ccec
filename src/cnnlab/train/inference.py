"""Using a trained model: evaluate a run or checkpoint on a split, predict classes of images."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cnnlab.checkpoint import model_from_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.train.config import check_device, config_from_dict

__all__ = ["checkpoint_path", "evaluate_checkpoint", "image_tensor", "load_image", "predict"]


def checkpoint_path(run_or_checkpoint: str | Path) -> Path:
    """A run folder means its best checkpoint; a file is taken as it is (see :func:`cnnlab.sources.checkpoint_of`)."""
    from cnnlab.sources import checkpoint_of

    return checkpoint_of(run_or_checkpoint)


def evaluate_checkpoint(run_or_checkpoint: str | Path, split: str = "test", dataset: str | None = None,
                        data_root: str | None = None, batch_size: int = 1000, device: str = "cpu",
                        precision: str = "auto") -> dict[str, Any]:
    """Top-1, top-5, per-class accuracy and the confusion matrix of a checkpoint on a split.

    The data are read and adapted as the run that wrote the checkpoint read them, unless
    ``dataset``/``data_root`` name others (with the same image size and classes). ``precision``
    follows training's rule (:func:`cnnlab.train.precision.resolve`); the answer says what it used.
    """
    from cnnlab.data import Split, TensorLoader, folder_loader
    from cnnlab.train.loop import evaluate, load_data
    from cnnlab.train.precision import resolve

    if split not in ("test", "val", "train"):
        raise CnnlabError(f"split must be test, val or train, got {split!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CnnlabError(f"batch size must be a positive whole number, got {batch_size!r}: e.g. 1000")
    device = check_device(device)
    path = checkpoint_path(run_or_checkpoint)
    model, ckpt = model_from_checkpoint(path)
    if "config" not in ckpt:
        raise CnnlabError(f"{path} does not say which data it was trained on: give a run's checkpoint")
    cfg = config_from_dict(ckpt["config"])
    ds = load_data(dataclasses.replace(
        cfg, dataset=dataset or cfg.dataset, data_root=data_root if data_root is not None else cfg.data_root,
        limit=cfg.limit if dataset is None else None))
    data = getattr(ds, split)
    if data is None:
        raise CnnlabError(f"{ds.name} has no {split} split here: use --split val")
    classes = ckpt.get("data", {}).get("classes", list(ds.classes))
    if len(classes) != len(ds.classes):
        raise CnnlabError(f"the checkpoint knows {len(classes)} classes but {ds.name} has {len(ds.classes)}")
    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    chosen = resolve(precision, None, dev)
    model.to(dev)
    if chosen.channels_last:
        model.to(memory_format=torch.channels_last)
    mean, std = ckpt["data"]["mean"], ckpt["data"]["std"]
    if isinstance(data, Split):
        loader = TensorLoader(data, batch_size, shuffle=False, augment=None, mean=mean, std=std, device=dev,
                              channels_last=chosen.channels_last)
    else:
        loader = folder_loader(data, batch_size, shuffle=False, workers=2, seed=0, rank=0, world_size=1, device=dev)
    result = evaluate(model, loader, len(classes), dev, precision=chosen, confusion=True)
    result["per_class"] = {name: acc for name, acc in zip(classes, result["per_class"], strict=True)}
    return {"checkpoint": str(path), "model": ckpt["model"]["name"], "dataset": ds.name, "split": split,
            "classes": classes, "precision": chosen.to_dict(), **result}


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as a uint8 C x H x W tensor (see :func:`cnnlab.data.images.read_image`)."""
    from cnnlab.data.images import read_image

    return read_image(path)


def image_tensor(img: Any) -> torch.Tensor:
    """An open Pillow image as a uint8 C x H x W tensor: 1 channel for grey modes, else 3 (RGB).

    16-bit and float pixels are scaled to 0..255, never clipped (see :mod:`cnnlab.data.images`).
    """
    from cnnlab.data.images import to_uint8

    return to_uint8(img)


@torch.no_grad()
def predict(checkpoint: str | Path, images: Sequence[str | Path] | None = None, top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` most likely classes of each image, with probabilities and class names.

    Each image is converted to the checkpoint's channels and resized to its input size, then
    normalised with the training set's statistics. Without images, a run trained on MNIST or
    Fashion-MNIST is shown the bundled test image of its data (:mod:`cnnlab.data.bundled`).
    """
    from cnnlab.data.bundled import default_image
    from cnnlab.data.images import model_input

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise CnnlabError(f"top must be a positive whole number, got {top!r}: e.g. 5")
    path = checkpoint_path(checkpoint)
    model, ckpt = model_from_checkpoint(path)
    meta = ckpt.get("data")
    if not meta:
        raise CnnlabError(f"{path} does not record its classes and input: give a run's checkpoint")
    if not images:
        sample = default_image(meta.get("dataset"))
        if sample is None:
            raise CnnlabError(f"give an image file to classify: {meta.get('dataset') or 'this run'}'s data has no "
                              "bundled sample (there are some for MNIST and Fashion-MNIST)")
        images = [sample]
    model.eval()
    c, h, w = meta["input_size"]
    k = max(1, min(top, len(meta["classes"])))
    out = []
    for image_path in images:
        x, _ = model_input(load_image(image_path), c, (h, w), meta["mean"], meta["std"])
        output = model(x)
        logits = output if isinstance(output, torch.Tensor) else output[0]
        probs = logits.softmax(1)[0]
        values, indices = probs.topk(k)
        out.append({"image": str(image_path), "top": [
            {"class": meta["classes"][int(i)], "index": int(i), "probability": float(v)}
            for v, i in zip(values, indices, strict=True)]})
    return out
