"""What a model is fed: one image-like tensor, or several inputs, by position or by name, of any dtype.

An input is written ``[NAME=]DIMS[:DTYPE]``, without the batch: ``3x224x224`` (an image),
``16`` (a vector of 16 features), ``128:int64`` (128 token ids), ``mask=128:bool`` (the
``mask`` argument of ``forward``). Several are separated by commas or given as a list.
Inputs without a name go to ``forward``'s parameters in order; arguments with a default that
are not given keep it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape, parse_shape

__all__ = ["DTYPES", "InputSpec", "bind_inputs", "example_call", "example_tensors", "parse_inputs"]

DTYPES = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64, "float16": torch.float16,
          "bfloat16": torch.bfloat16, "int64": torch.int64, "long": torch.int64, "int32": torch.int32,
          "int": torch.int32, "uint8": torch.uint8, "bool": torch.bool}
GRAMMAR = "[NAME=]DIMS[:DTYPE], e.g. 3x224x224, 128:int64 or mask=128:bool"


@dataclass(frozen=True)
class InputSpec:
    shape: tuple[int, ...]  # without the batch
    dtype: torch.dtype = torch.float32
    name: str | None = None  # a keyword argument of forward; None: the next positional one

    @property
    def text(self) -> str:
        dtype = next(k for k, v in DTYPES.items() if v == self.dtype)
        return (f"{self.name}=" if self.name else "") + fmt_shape(self.shape) + ("" if dtype == "float32" else
                                                                                f":{dtype}")

    @property
    def image_like(self) -> bool:
        """A float tensor with channels and at least one spatial axis: what a receptive field is measured on."""
        return self.dtype.is_floating_point and len(self.shape) >= 2

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": str(self.dtype).removeprefix("torch.")}


def _one(text: str) -> InputSpec:
    text = text.strip()
    name, eq, rest = text.partition("=")
    if not eq:
        name, rest = "", text
    elif not name.isidentifier():
        raise CnnlabError(f"input {text!r}: {name!r} is not an argument name; write {GRAMMAR}")
    dims, colon, dtype = rest.partition(":")
    if colon and dtype.strip().lower() not in DTYPES:
        raise CnnlabError(f"input {text!r}: unknown dtype {dtype!r}; use one of {', '.join(sorted(DTYPES))}")
    if not dims.strip():
        raise CnnlabError(f"input {text!r} has no size: write {GRAMMAR}")
    return InputSpec(parse_shape(dims), DTYPES[dtype.strip().lower()] if colon else torch.float32, name or None)


def parse_inputs(value: Any) -> list[InputSpec]:
    """``(3, 224, 224)``, ``"3x224x224,128:int64"``, a list of such texts, or of InputSpecs -> InputSpecs."""
    if isinstance(value, InputSpec):
        return [value]
    if isinstance(value, str):
        specs = [_one(part) for part in value.split(",") if part.strip()]
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                             for v in value):
        specs = [InputSpec(tuple(int(v) for v in value))]
    elif isinstance(value, (list, tuple)):
        specs = [s for v in value for s in parse_inputs(v)]
    else:
        raise CnnlabError(f"input must be a shape or {GRAMMAR}, got {value!r}")
    if not specs:
        raise CnnlabError(f"no input given: write {GRAMMAR}")
    names = [s.name for s in specs if s.name]
    if len(set(names)) < len(names):
        raise CnnlabError(f"input {max(names, key=names.count)!r} is given twice")
    first_named = next((i for i, s in enumerate(specs) if s.name), len(specs))
    if any(s.name is None for s in specs[first_named:]):
        raise CnnlabError("inputs by position come before inputs by name, as in a Python call")
    return specs


def example_tensors(specs: Sequence[InputSpec], batch: int, device: str | torch.device = "meta",
                    generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """One tensor of the batch per spec, in order; on a real device, N(0, 1) floats and zero ids or flags."""
    def make(spec: InputSpec) -> torch.Tensor:
        shape = (batch, *spec.shape)
        if torch.device(device).type == "meta" or not spec.dtype.is_floating_point:
            t = torch.empty(shape, dtype=spec.dtype, device=device)
            return t if torch.device(device).type == "meta" else t.zero_()
        return torch.randn(shape, generator=generator).to(device=device, dtype=spec.dtype)

    return [make(s) for s in specs]


def example_call(given: dict[str, InputSpec], batch: int, device: str | torch.device = "meta",
                 generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Example tensors for the forward arguments ``given`` (as :func:`bind_inputs` returns them):
    those given by position, then those given by name."""
    tensors = example_tensors(list(given.values()), batch, device, generator)
    args = [t for t, spec in zip(tensors, given.values(), strict=True) if spec.name is None]
    kwargs = {name: t for (name, spec), t in zip(given.items(), tensors, strict=True) if spec.name is not None}
    return args, kwargs


def bind_inputs(model: nn.Module, specs: Sequence[InputSpec]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the forward parameters given, in order, by name -> spec; those left at their default, by name -> default).

    One line names the mistake: an argument forward does not have, one given twice, one missing.
    """
    try:
        signature = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):  # no Python signature (TorchScript): positional, as given
        return {f"input{i}": s for i, s in enumerate(specs)}, {}
    if any(p.kind == p.VAR_POSITIONAL for p in signature) and not any(s.name for s in specs):
        return {f"input{i}": s for i, s in enumerate(specs)}, {}  # forward(*inputs): as given
    params = [p for p in signature if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    positional = [s for s in specs if not s.name]
    named = {s.name: s for s in specs if s.name}
    takes = ", ".join(p.name for p in params) or "no arguments"
    if len(positional) > len(params):
        raise CnnlabError(f"{len(positional)} inputs given by position, but {type(model).__name__}.forward takes "
                          f"{takes}")
    given: dict[str, Any] = {}
    for p, spec in zip(params, positional, strict=False):
        given[p.name] = spec
    for name, spec in named.items():
        if name not in {p.name for p in params}:
            raise CnnlabError(f"{type(model).__name__}.forward has no argument {name!r}: it takes {takes}")
        if name in given:
            raise CnnlabError(f"input {name!r} is given twice: by position and by name")
        given[name] = spec
    defaults = {}
    for p in params:
        if p.name in given:
            continue
        if p.default is p.empty:
            raise CnnlabError(f"{type(model).__name__}.forward needs {p.name!r} too: add an input "
                              f"{p.name}=DIMS[:DTYPE]")
        defaults[p.name] = p.default
    order = [p.name for p in params if p.name in given]
    return {n: given[n] for n in order}, defaults
