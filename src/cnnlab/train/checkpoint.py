"""cnnlab checkpoints: written atomically, read without ever executing code.

A checkpoint is a plain dictionary saved with ``torch.save``: the model's registry name and
architecture options, its ``state_dict``, and whatever else the caller adds (optimizer state,
step, metrics). Reading uses ``torch.load(..., weights_only=True)``, which refuses any pickled
object that is not a tensor or a plain container, so a checkpoint from an untrusted source cannot
run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError
from cnnlab.safeload import safe_torch_load

__all__ = ["FORMAT", "load_checkpoint", "model_from_checkpoint", "save_checkpoint"]

FORMAT = "cnnlab-checkpoint-v1"


def save_checkpoint(path: str | Path, model_name: str, model_kwargs: dict[str, Any], state_dict: dict[str, Any],
                    **extra: Any) -> Path:
    """Write a checkpoint atomically: a temporary file in the same folder, flushed, then renamed."""
    path = Path(path)
    payload = {"format": FORMAT, "model": {"name": model_name, "kwargs": dict(model_kwargs)},
               "state_dict": state_dict, **extra}
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely; one clear line when the file is missing, damaged or unsafe."""
    path = Path(path)
    obj = safe_torch_load(path, "checkpoint", "check the path (a run keeps last.pt and best.pt)")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CnnlabError(f"{path} is not a cnnlab checkpoint: for a plain state_dict give a model name and "
                          "--weights PATH instead")
    return obj


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model, checkpoint)."""
    from cnnlab.models.registry import create_model

    ckpt = load_checkpoint(path)
    spec = ckpt["model"]
    model = create_model(spec["name"], **spec.get("kwargs", {}))
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CnnlabError(f"{path}: the weights do not fit model {spec['name']!r} ({first})") from None
    return model, ckpt
