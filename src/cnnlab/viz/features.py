"""Activation maps: what a shallow, a middle and a deep layer make of one image.

Shallow maps keep the image's layout and respond to edges and colours; deep maps are
small and respond to larger parts. The maps are read with forward hooks, so any named
module of the model can be looked at.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape
from cnnlab.viz.common import (
    ImageLike,
    ModelLike,
    conv_layers,
    layer_error,
    model_or_checkpoint,
    new_figure,
    prepare_input,
    save_figure,
)

__all__ = ["default_layers", "draw_features", "feature_maps", "parse_layers", "pick_layers", "ran_convolutions"]


def default_layers(model: nn.Module, x: torch.Tensor | None = None) -> list[str]:
    """A shallow, a middle and a deep layer: the first, middle and last convolution.

    With an input ``x``, of the convolutions a forward pass of it runs in eval mode, in the order
    they run: a branch only training runs (GoogLeNet's auxiliary classifiers) is never picked.
    """
    return pick_layers(ran_convolutions(model, x) if x is not None else [name for name, _ in conv_layers(model)])


def pick_layers(names: Sequence[str]) -> list[str]:
    """The first, middle and last of ``names`` (fewer when there are fewer)."""
    if not names:
        raise layer_error("(default)", [], "convolution")
    return list(dict.fromkeys([names[0], names[len(names) // 2], names[-1]]))


@torch.no_grad()
def ran_convolutions(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The 2-D convolutions an eval-mode forward pass of ``x`` runs, in the order they first run."""
    order: list[str] = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, name=name: order.append(name))
               for name, m in conv_layers(model)]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(order))


def parse_layers(text: str | Sequence[str] | None) -> list[str] | None:
    """"a,b,c" (or a list) -> ["a", "b", "c"]; None or blank stays None (the default layers)."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [s.strip() for s in items if s.strip()]
    if items and not names:
        raise CnnlabError(f"no layer name in {text!r}: write names separated by commas, e.g. features.0,features.3")
    return names or None


def _first_tensor(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor):
                return item
    return None


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The output of each named module for the (normalised) input batch ``x``, via forward hooks.

    A module called more than once keeps its last output. Unknown names are one line that
    lists the model's convolution layers (any name from ``named_modules()`` works).
    """
    modules = dict(model.named_modules())
    for name in layers:
        if name not in modules or name == "":
            valid = [n for n, _ in conv_layers(model)]
            raise layer_error(name, valid, "layer")
    maps: dict[str, torch.Tensor] = {}
    handles = []
    for name in layers:
        def hook(_module: nn.Module, _inputs: Any, output: Any, name: str = name) -> None:
            tensor = _first_tensor(output)
            if tensor is not None:
                maps[name] = tensor.detach().cpu().clone()

        handles.append(modules[name].register_forward_hook(hook))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {name: maps[name] for name in layers if name in maps}


def draw_features(model: ModelLike, image: ImageLike = None, out: str | Path = "features.png",
                  layers: str | Sequence[str] | None = None, meta: dict[str, Any] | None = None,
                  max_maps: int = 8) -> Path:
    """One row per layer: the input, then the first ``max_maps`` channels of the layer's output.

    ``model`` is a registry name, a checkpoint or run folder, or a module; ``image`` a path,
    a tensor or ``None`` for the sample photo. The image is converted to the model's input
    (channels and size from ``meta`` or the checkpoint, else the model's defaults) and
    normalised with the recorded mean and std (0.5 when unknown). Each map is scaled to its
    own range. The figure is ``150*(max_maps + 1)`` x ``170*rows + 90`` px.
    """
    net, found = model_or_checkpoint(model)
    meta = {**found, **(meta or {})}
    x, picture = prepare_input(image, net, meta)
    names = parse_layers(layers) or default_layers(net, x)
    was_training = net.training
    net.eval()
    try:
        maps = feature_maps(net, x, names)
    finally:
        net.train(was_training)
    missing = [n for n in names if n not in maps]
    if missing:
        raise layer_error(missing[0], list(maps), "layer that ran in the forward pass")

    rows, cols = len(names), max_maps + 1
    fig = new_figure(150 * cols, 170 * rows + 90)
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, name in enumerate(names):
        act = maps[name][0]
        if act.ndim == 1:
            act = act.view(-1, 1, 1)
        elif act.ndim == 2:
            act = act.unsqueeze(0)
        ax0 = axes[r, 0]
        ax0.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        ax0.set_title("input" if r == 0 else "", fontsize=9)
        ax0.set_ylabel(f"{name}\n{fmt_shape(act.shape)}", fontsize=9)
        for c in range(max_maps):
            ax = axes[r, c + 1]
            if c < act.shape[0]:
                ax.imshow(act[c].float().numpy(), cmap="viridis", interpolation="nearest")
                ax.set_title(f"ch {c}", fontsize=8)
            else:
                ax.set_axis_off()
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    label = meta.get("name") or type(net).__name__
    fig.suptitle(f"{label}: feature maps from shallow to deep (first {max_maps} channels, each scaled to its range)",
                 fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.02, top=1 - 60 / (170 * rows + 90), wspace=0.08, hspace=0.3)
    return save_figure(fig, out)
