"""The model registry: every classic network by name, with what a user needs to know about it.

A family module registers each builder with :func:`register_model`; users call
:func:`create_model` and :func:`list_models`. A builder takes ``num_classes`` and
``in_channels`` plus its own architecture options, and returns an ``nn.Module``.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["ModelInfo", "check_options", "create_model", "default_input", "list_models", "model_info", "register_model", "resolve_options"]

# Family modules, imported on first use of the registry so that `import cnnlab` stays light.
FAMILY_MODULES: tuple[str, ...] = ("lenet", "alexnet", "vgg", "nin", "googlenet", "resnet", "densenet", "kernels")

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model name.

    ``torchvision`` names the torchvision builder whose state_dict this model loads unchanged
    (``None`` when the architecture differs from every torchvision model).
    ``min_input`` is the smallest square side (H = W) the model accepts at its default settings.
    The tests check every declared value on real tensors (it runs, one pixel less does not) and
    against torchvision's published ``min_size``; :func:`cnnlab.models.inputs.smallest_input`
    finds it for any model by bisection on the meta device.
    """

    name: str
    family: str
    paper: str
    builder: Builder = field(repr=False)
    default_input: tuple[int, int, int] = (3, 224, 224)
    torchvision: str | None = None
    description: str = ""
    min_input: int = 1

    @property
    def default_num_classes(self) -> int:
        param = inspect.signature(self.builder).parameters.get("num_classes")
        return 1000 if param is None or param.default is inspect.Parameter.empty else int(param.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "paper": self.paper,
            "description": self.description,
            "default_input": list(self.default_input),
            "default_num_classes": self.default_num_classes,
            "torchvision": self.torchvision,
            "min_input": [self.default_input[0], self.min_input, self.min_input],
        }


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    default_input: tuple[int, int, int] = (3, 224, 224),
    torchvision: str | None = None,
    min_input: int = 1,
    name: str | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder under its function name (or ``name``); the docstring's first line describes it."""

    def decorate(fn: Builder) -> Builder:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise RuntimeError(f"model {key!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelInfo(
            name=key,
            family=family,
            paper=paper,
            builder=fn,
            default_input=default_input,
            torchvision=torchvision,
            description=doc[0] if doc else "",
            min_input=min_input,
        )
        return fn

    return decorate


def resolve_options(name: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A builder's options: ``defaults`` updated with ``given``; an unknown name is one clear error."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise CnnlabError(
            f"{name} has no option {', '.join(map(repr, unknown))}; its options are {', '.join(defaults)}"
        )
    return {**defaults, **given}


def _load_families() -> None:
    for module in FAMILY_MODULES:
        importlib.import_module(f"cnnlab.models.{module}")


def unknown_model(name: str) -> CnnlabError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return CnnlabError(f"unknown model {name!r}: {hint}`cnnlab models` lists every model")


def model_info(name: str) -> ModelInfo:
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_model(name) from None


def default_input(spec: Any, in_channels: int | None = None) -> tuple[int, int, int]:
    """A registered model's default input (C, H, W); 3x224x224 for anything else."""
    c, h, w = model_info(spec).default_input if isinstance(spec, str) and spec in list_models() else (3, 224, 224)
    return (in_channels or c, h, w)


def list_models(family: str | None = None) -> list[str]:
    """Registered model names (of one family if given), in registration order."""
    _load_families()
    return [k for k, v in _REGISTRY.items() if family is None or v.family == family]


_META_LIMIT = 2**40


def check_options(name: str, options: dict[str, Any]) -> None:
    """One line when ``options`` name an option model ``name`` lacks, or a class or channel count out of range."""
    from cnnlab.limits import MAX_CHANNELS, MAX_CLASSES, check_count

    info = model_info(name)
    params = inspect.signature(info.builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in params]
    if unknown and not takes_any:
        known = ", ".join(k for k, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD)
        raise CnnlabError(f"model {name!r} has no option {unknown[0]!r}: its options are {known}")
    # On the meta device nothing is allocated: any size whose element counts fit in 64 bits goes.
    on_meta = torch.get_default_device().type == "meta"
    if options.get("num_classes") is not None:
        check_count(options["num_classes"], "num_classes", 1, _META_LIMIT if on_meta else MAX_CLASSES,
                    "give the number of classes of the data")
    if options.get("in_channels") is not None:
        check_count(options["in_channels"], "in_channels", 1, _META_LIMIT if on_meta else MAX_CHANNELS,
                    "use 1 for grayscale or 3 for colour")


def create_model(
    name: str,
    num_classes: int | None = None,
    in_channels: int | None = None,
    weights: str | Path | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model.

    ``num_classes`` and ``in_channels`` default to the builder's own defaults (1000 classes and
    3 channels for ImageNet models, 10 classes for the CIFAR ones). ``weights`` is a state_dict
    file to load (torchvision's files work for the torchvision-compatible names). Architecture
    options go in ``overrides``; an option the model does not have is one clear error.
    """
    info = model_info(name)
    kwargs = dict(overrides)
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None:
            kwargs[key] = value
    check_options(name, kwargs)
    try:
        model = info.builder(**kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise CnnlabError(f"model {name!r} does not take that option ({exc})") from None
        raise
    if weights is not None:
        from cnnlab.models.weights import load_weights

        load_weights(model, weights, name)
    return model
