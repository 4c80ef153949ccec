"""Grad-CAM (Selvaraju et al. 2017): where in the image the evidence for a class lies.

For a layer with activations ``A_k`` (k = channel) and a class score ``y_c`` (the logit
before softmax), each channel's weight is the spatial mean of ``d y_c / d A_k``; the map is
``ReLU(sum_k w_k A_k)``, upsampled bilinearly to the input size and divided by its maximum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
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
from cnnlab.viz.features import _first_tensor

__all__ = ["GradCam", "default_cam_layer", "draw_gradcam", "grad_cam"]


class GradCam(NamedTuple):
    """``heatmap`` (H x W in [0, 1], the input's size), the class explained and its score."""

    heatmap: np.ndarray
    class_index: int
    score: float


def _logits(output: Any) -> torch.Tensor:
    tensor = _first_tensor(output)
    if tensor is None or tensor.ndim != 2:
        raise CnnlabError("Grad-CAM needs a model that returns N x classes logits")
    return tensor


@torch.no_grad()
def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The last module to produce a 4-D output larger than 1x1 (the last spatial map before pooling).

    For ResNets this is ``layer4``, for DenseNets ``features``, for a plain stack the last
    activation after the last convolution.
    """
    order: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    for name, module in model.named_modules():
        if name:
            def hook(_m: nn.Module, _i: Any, output: Any, name: str = name) -> None:
                tensor = _first_tensor(output)
                if tensor is not None:
                    order.append((name, tuple(tensor.shape)))

            handles.append(module.register_forward_hook(hook))
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    spatial = [name for name, shape in order if len(shape) == 4 and shape[2] * shape[3] > 1]
    four_d = [name for name, shape in order if len(shape) == 4]
    if spatial or four_d:
        return (spatial or four_d)[-1]
    raise layer_error("(default)", [n for n, _ in conv_layers(model)], "layer with a spatial output")


def grad_cam(model: nn.Module, x: torch.Tensor, layer: str | None = None,
             class_index: int | None = None) -> GradCam:
    """Grad-CAM of ``model`` for the 1 x C x H x W input ``x`` at ``layer`` (default: the last spatial map).

    ``class_index`` defaults to the predicted class. Returns ``(heatmap, class_index, score)``;
    the model is run in eval mode and left in the mode it was in.
    """
    if x.ndim != 4 or x.shape[0] != 1:
        raise CnnlabError(f"grad_cam takes one image as a 1 x C x H x W tensor, got {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        name = layer if layer is not None else default_cam_layer(model, x)
        modules = dict(model.named_modules())
        if name not in modules or name == "":
            raise layer_error(name, [n for n, _ in conv_layers(model)], "layer")
        store: dict[str, torch.Tensor] = {}

        def hook(_m: nn.Module, _i: Any, output: Any) -> Any:
            tensor = _first_tensor(output)
            if tensor is None or tensor.ndim != 4:
                return None
            store["act"] = tensor
            # Later in-place operations (ReLU(inplace=True)) must not change the stored activation.
            clone = tensor.clone()
            return clone if isinstance(output, torch.Tensor) else type(output)(
                clone if item is tensor else item for item in output)

        handle = modules[name].register_forward_hook(hook)
        try:
            with torch.enable_grad():
                inp = x.detach().clone().requires_grad_(True)  # the graph exists even for frozen weights
                logits = _logits(model(inp))
                if "act" not in store:
                    raise layer_error(name, [n for n, _ in conv_layers(model)], "layer with a 4-D output")
                k = int(logits[0].argmax()) if class_index is None else int(class_index)
                if not 0 <= k < logits.shape[1]:
                    raise CnnlabError(f"class index {k} is out of range: the model has {logits.shape[1]} classes")
                score = logits[0, k]
                (grads,) = torch.autograd.grad(score, store["act"])
        finally:
            handle.remove()
        act = store["act"].detach()
        weights = grads.mean(dim=(2, 3), keepdim=True)  # alpha_k^c: global-average-pooled gradients
        cam = F.relu((weights * act).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
        top = float(cam.max())
        heat = (cam / top if top > 0 else torch.zeros_like(cam)).clamp(0, 1).cpu().numpy()
    finally:
        model.train(was_training)
    return GradCam(heat, k, float(score.detach()))


def draw_gradcam(model: ModelLike, image: ImageLike = None, out: str | Path = "gradcam.png",
                 layer: str | None = None, class_index: int | None = None,
                 meta: dict[str, Any] | None = None) -> Path:
    """Image | Grad-CAM heat map | the map over the image, titled with the class and its score.

    ``model`` is a registry name, a checkpoint or run folder, or a module; ``image`` a path,
    a tensor or ``None`` for the sample photo. Class names come from ``meta["classes"]`` (a
    checkpoint records them). The figure is 1350x520 px.
    """
    net, found = model_or_checkpoint(model)
    meta = {**found, **(meta or {})}
    x, picture = prepare_input(image, net, meta)
    layer = layer if layer is not None else default_cam_layer(net.eval(), x)
    result = grad_cam(net, x, layer, class_index)
    classes = meta.get("classes")
    cls = classes[result.class_index] if classes and result.class_index < len(classes) else f"class {result.class_index}"

    fig = new_figure(1350, 520)
    ax_img, ax_heat, ax_over = fig.subplots(1, 3)
    gray = picture.ndim == 2
    ax_img.imshow(picture, cmap="gray" if gray else None)
    ax_img.set_title(f"input {picture.shape[0]}x{picture.shape[1]}", fontsize=10)
    shown = ax_heat.imshow(result.heatmap, cmap="jet", vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax_heat, fraction=0.046, pad=0.04)
    ax_heat.set_title(f"Grad-CAM at {layer}", fontsize=10)
    ax_over.imshow(picture, cmap="gray" if gray else None)
    ax_over.imshow(result.heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    ax_over.set_title(f"{cls} (score {result.score:.3g})", fontsize=10)
    for ax in (ax_img, ax_heat, ax_over):
        ax.set_xticks([])
        ax.set_yticks([])
    label = meta.get("name") or type(net).__name__
    fig.suptitle(f"{label}: where the evidence for '{cls}' lies", fontsize=12)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.04, top=0.86, wspace=0.15)
    return save_figure(fig, out)
