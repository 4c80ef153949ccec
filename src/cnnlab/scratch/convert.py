"""Weights between cnnlab's torch LeNet-5 and the scratch engine.

The scratch ``lenet5`` has the same parameter names and shapes as ``cnnlab.create_model("lenet5")``,
so a state_dict moves across unchanged in either direction:

    from cnnlab.scratch.convert import from_state_dict, load_checkpoint
    model = from_state_dict(torch_model.state_dict(), dtype="float64")     # torch -> scratch
    model = load_checkpoint("runs/lenet/best.pt")                          # a cnnlab checkpoint
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})

Only :func:`load_checkpoint` needs torch (to read the file); it imports it when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.scratch.model import Sequential, lenet5, to_numpy

__all__ = ["LENET5_OPTIONS", "from_npz", "from_state_dict", "load_checkpoint"]

# The torch lenet5 builder's options the scratch engine can reproduce, with their defaults.
LENET5_OPTIONS: dict[str, Any] = {"num_classes": 10, "in_channels": 1, "padding": 2, "act": "relu", "pool": "max"}


def from_state_dict(
    state_dict: Mapping[str, Any], dtype: Any = np.float64, **options: Any
) -> Sequential:
    """A scratch LeNet-5 holding the weights of a torch ``lenet5`` state_dict (arrays or tensors).

    ``num_classes`` and ``in_channels`` are read off the weights; ``padding``, ``act`` and
    ``pool`` (which leave no trace in the weights) can be given as in ``create_model``.
    """
    unknown = set(options) - set(LENET5_OPTIONS)
    if unknown:
        raise CnnlabError(f"lenet5 has no option(s) {sorted(unknown)}: choose from {sorted(LENET5_OPTIONS)}")
    state = {key: to_numpy(value) for key, value in state_dict.items()}
    for key in ("features.0.weight", "classifier.4.weight"):
        if key not in state:
            raise CnnlabError(f"these weights are not a lenet5 state_dict: no {key!r}")
    settings = {**LENET5_OPTIONS, **options}
    settings["in_channels"] = int(state["features.0.weight"].shape[1])
    settings["num_classes"] = int(state["classifier.4.weight"].shape[0])
    model = lenet5(**settings, dtype=dtype, seed=None)
    model.load_state_dict(state, strict=True)
    return model


def from_npz(path: str | Path, dtype: Any = np.float64, **options: Any) -> Sequential:
    """A scratch LeNet-5 from weights saved by ``train_lenet(save=...)`` (an ``.npz`` state_dict)."""
    path = Path(path)
    if not path.is_file():
        raise CnnlabError(f"weights file {path} does not exist: check the path")
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise CnnlabError(f"{path} is damaged or not an .npz weights file ({exc})") from None
    return from_state_dict(state, dtype=dtype, **options)


def load_checkpoint(path: str | Path, dtype: Any = np.float64) -> Sequential:
    """A scratch LeNet-5 from a cnnlab checkpoint file (``cnnlab.checkpoint``) of ``lenet5``.

    Reads the file with ``torch.load(weights_only=True)`` through cnnlab's own loader, so a file
    that holds anything but tensors and plain containers is refused.
    """
    from cnnlab.checkpoint import load_checkpoint as read_checkpoint  # imports torch

    checkpoint = read_checkpoint(path)
    spec = checkpoint.get("model", {})
    name = spec.get("name")
    if name != "lenet5":
        raise CnnlabError(
            f"{path} holds model {name!r}; the scratch engine implements lenet5 only: train or export a lenet5"
        )
    kwargs = dict(spec.get("kwargs") or {})
    kwargs.pop("num_classes", None)
    kwargs.pop("in_channels", None)
    return from_state_dict(checkpoint["state_dict"], dtype=dtype, **kwargs)
