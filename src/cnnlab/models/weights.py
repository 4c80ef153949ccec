"""Loading weight files safely: state_dicts from torchvision, cnnlab or safetensors files.

Files are read with ``torch.load(..., weights_only=True)``, which refuses anything but
tensors and plain containers, so a file from an untrusted source cannot run code. A file
whose keys or shapes do not match the model is refused with one line listing what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.safeload import safe_torch_load
from cnnlab.shapes import fmt_shape

__all__ = ["load_weights", "read_state_dict"]

_MAX_LISTED = 4


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f" and {len(keys) - _MAX_LISTED} more" if len(keys) > _MAX_LISTED else "")


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state_dict inside what was loaded: a bare state_dict or a checkpoint holding one."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state", "model_state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            # Weights saved from DistributedDataParallel or torch.compile carry a prefix.
            for prefix in ("module.", "_orig_mod."):
                if all(k.startswith(prefix) for k in tensors):
                    tensors = {k[len(prefix):]: v for k, v in tensors.items()}
            return tensors
    raise CnnlabError(f"{path} holds no state_dict (a mapping of names to tensors): save one with "
                      "torch.save(model.state_dict(), PATH)")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file (``.pt``/``.pth``/``.safetensors``) without executing any code."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"weights file {path} does not exist: check the path")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            with path.open("rb"):  # an unreadable file fails here with its real reason
                pass
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            if isinstance(exc, PermissionError) or "os error 13" in str(exc):
                raise CnnlabError(f"cannot read weights file {path}: permission denied; check the file's "
                                  "permissions") from None
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise CnnlabError(f"{path} is not a readable safetensors file ({first}): check the file, or save it "
                              "again") from None
    obj = safe_torch_load(path, "weights file")
    return _unwrap(obj, path)


def load_weights(model: nn.Module, path: str | Path, name: str | None = None) -> nn.Module:
    """Load a weights file into ``model`` strictly; one clear line when keys or shapes differ."""
    state = read_state_dict(path)
    # A family whose published files use older key names renames them itself (DenseNet does).
    remap = getattr(model, "remap_state_dict", None)
    if callable(remap):
        state = remap(state)
    own = model.state_dict()
    # Batch norm's step counters are absent from older files (torchvision's own included); the
    # model's zeros stand in for them, exactly what loading into a fresh model would give.
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    label = name or type(model).__name__
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the file: {_listed(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_listed(unexpected)}")
        raise CnnlabError(f"{path} does not fit {label} ({'; '.join(parts)}): use the file of the same "
                          "architecture (`cnnlab models` says which names load torchvision's weights)")
    wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items() if tuple(state[k].shape) != tuple(v.shape)]
    if wrong:
        k, theirs, ours = wrong[0]
        hint = ""
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
        heads = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
        owner = k.rsplit(".", 1)[0]
        if heads and owner == heads[-1] and theirs[1:] == ours[1:]:
            hint = f"; build it with num_classes={theirs[0]}"
        elif convs and owner == convs[0] and len(theirs) > 1 and theirs[1] != ours[1]:
            hint = f"; build it with in_channels={theirs[1]}"
        raise CnnlabError(
            f"{path} does not fit {label}: {len(wrong)} tensor(s) differ in shape, first {k}: file "
            f"{fmt_shape(theirs)}, model {fmt_shape(ours)}{hint}"
        )
    model.load_state_dict(state, strict=True)
    return model
