"""cnnlab checkpoints: written atomically, checked on reading, read without ever executing code.

A checkpoint is a plain dictionary saved with ``torch.save``: the model's registry name and
architecture options, its ``state_dict``, and whatever else the caller adds (optimizer state,
step, metrics), plus a checksum of all of that. Reading uses ``torch.load(...,
weights_only=True)``, which refuses any pickled object that is not a tensor or a plain
container, so a checkpoint from an untrusted source cannot run code; the checksum catches bytes
that changed after the write (a bad disk, a copy cut short inside a tensor), which torch alone
does not notice.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError, first_line
from cnnlab.limits import MAX_CHANNELS, MAX_SIDE
from cnnlab.safeload import safe_torch_load

__all__ = ["FORMAT", "build_from_checkpoint", "checkpoint_payload", "digest", "load_checkpoint",
           "model_from_checkpoint", "save_checkpoint", "write_payload"]

FORMAT = "cnnlab-checkpoint-v1"
_ALGORITHM = "sha256"


def digest(obj: Any) -> str:
    """A hash of a checkpoint's contents: every tensor's dtype, shape and bytes, every plain value.

    The walk is in insertion order and types are part of the hash, so a value that comes back
    from ``torch.load`` different in any bit (or as another type) gives another digest.
    """
    h = hashlib.new(_ALGORITHM)
    _feed(h, obj)
    return f"{_ALGORITHM}:{h.hexdigest()}"


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}|".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__[0]}{len(obj)}|".encode())
        for value in obj:
            _feed(h, value)
    elif isinstance(obj, bytes):
        h.update(f"B{len(obj)}|".encode())
        h.update(obj)
    else:  # str, int, float, bool, None, torch.dtype ...: repr is exact for all of them
        text = repr(obj)
        h.update(f"{type(obj).__name__}{len(text)}|{text}".encode())


def checkpoint_payload(model_name: str, model_kwargs: dict[str, Any], state_dict: dict[str, Any],
                       **extra: Any) -> dict[str, Any]:
    """The dictionary a checkpoint file holds, its checksum included."""
    payload = {"format": FORMAT, "model": {"name": model_name, "kwargs": dict(model_kwargs)},
               "state_dict": state_dict, **extra}
    payload["checksum"] = digest(payload)
    return payload


def write_payload(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a payload atomically: a temporary file in the same folder, flushed, then renamed."""
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def save_checkpoint(path: str | Path, model_name: str, model_kwargs: dict[str, Any], state_dict: dict[str, Any],
                    **extra: Any) -> Path:
    """Write a checkpoint atomically, with a checksum of everything in it."""
    return write_payload(path, checkpoint_payload(model_name, model_kwargs, state_dict, **extra))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely; one clear line when the file is missing, damaged, unsafe or malformed."""
    path = Path(path)
    obj = safe_torch_load(path, "checkpoint", "check the path (a run keeps last.pt and best.pt)")
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CnnlabError(f"{path} is not a cnnlab checkpoint: for a plain state_dict give a model name and "
                          "--weights PATH instead")
    _check_shape(path, obj)
    stored = obj.pop("checksum", None)
    if stored is not None and stored != digest(obj):
        raise CnnlabError(f"{path} is damaged: its contents no longer match the checksum written with it; use "
                          "another copy (a run keeps previous.pt beside last.pt)")
    return obj


def _check_shape(path: Path, obj: dict[str, Any]) -> None:
    """The keys every reader relies on, with the types it expects (a hand-made dict may lack them)."""
    spec = obj.get("model")
    problem = None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        problem = "no model name"
    elif not isinstance(spec.get("kwargs", {}), dict) or not all(isinstance(k, str) for k in spec.get("kwargs", {})):
        problem = "model options that are not a dictionary of names"
    elif not isinstance(obj.get("state_dict"), dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj["state_dict"].items()):
        problem = "no state_dict of named tensors"
    elif "data" in obj and not isinstance(obj["data"], dict):
        problem = "a data record that is not a dictionary"
    elif "data" in obj or "input_size" in obj:
        problem = _data_problem({**obj.get("data", {}), **({"input_size": obj["input_size"]}
                                                          if "input_size" in obj else {})})
    elif "config" in obj and not isinstance(obj["config"], dict):
        problem = "a config that is not a dictionary"
    elif "train" in obj and not isinstance(obj["train"], dict):
        problem = "a training state that is not a dictionary"
    if problem:
        raise CnnlabError(f"{path} is a malformed cnnlab checkpoint ({problem}): re-save it with cnnlab, or give "
                          "a run's last.pt or best.pt")


def _data_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a checkpoint's record of its training data, if anything (readers use its input
    size to build inputs, its classes to name outputs and its mean and std to normalise)."""
    def numbers(value: Any) -> bool:
        return isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                               and math.isfinite(v) for v in value)

    size = data.get("input_size")
    if size is not None and not (isinstance(size, (list, tuple)) and 1 <= len(size) <= 4
                                 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in size)
                                 and size[0] <= MAX_CHANNELS and max(size[1:], default=1) <= MAX_SIDE):
        return f"an input size {str(size)[:40]} that is not C x H x W whole numbers within bounds"
    classes = data.get("classes")
    if classes is not None and not (isinstance(classes, (list, tuple)) and all(isinstance(c, (str, int)) for c in classes)):
        return "classes that are not a list of names"
    for key in ("mean", "std"):
        if data.get(key) is not None and not numbers(data[key]):
            return f"a {key} that is not a list of finite numbers"
    if data.get("std") is not None and any(v == 0 for v in data["std"]):
        return "a std of zero"
    return None


def model_from_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns (model, checkpoint)."""
    ckpt = load_checkpoint(path)
    return build_from_checkpoint(ckpt, path), ckpt


def build_from_checkpoint(ckpt: dict[str, Any], path: str | Path | None) -> nn.Module:
    """The model a loaded checkpoint describes, with its weights (``path`` names it in errors)."""
    from cnnlab.models.registry import create_model, list_models, unknown_model

    spec = ckpt["model"]
    spec.setdefault("kwargs", {})
    if spec["name"] not in list_models():
        raise unknown_model(spec["name"])
    try:
        # Shapes first, on the meta device: a file that claims 10**12 classes is refused before any
        # memory is asked for.
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in create_model(spec["name"], **spec["kwargs"]).state_dict().items()}
        given = {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()}
        if shapes != given:
            wrong = sorted(set(shapes) ^ set(given)) or [k for k in shapes if shapes[k] != given[k]]
            raise CnnlabError(f"the weights do not fit model {spec['name']!r} (first difference: {wrong[0]})")
        model = create_model(spec["name"], **spec["kwargs"])
    except (TypeError, ValueError, OverflowError, RuntimeError, MemoryError) as exc:
        if isinstance(exc, CnnlabError):
            raise CnnlabError(f"{path}: {exc}") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CnnlabError(f"{path} describes a model cnnlab cannot build ({first}): the file is damaged or "
                          "was not written by cnnlab") from None
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CnnlabError(f"{path}: the weights do not fit model {spec['name']!r} ({first_line(exc)})") from None
    return model
