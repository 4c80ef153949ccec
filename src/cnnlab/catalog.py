"""The catalogue behind `cnnlab models`: every registered model with its size and needs.

Models are built on the meta device, so listing even the largest networks allocates no
weights. Tracing all of them for their MACs takes seconds, so the finished catalogue is kept in
the user's cache folder under a fingerprint of the code that computes it (cnnlab's model,
layer and analysis sources and the torch version): any change to that code recomputes it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from cnnlab.atomic import atomic_write
from cnnlab.models.registry import create_model, list_models, model_info

__all__ = ["catalog", "count_parameters"]

_PACKAGE = Path(__file__).resolve().parent


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, non-trainable) parameters; shared parameters are counted once, buffers never."""
    trainable = frozen = 0
    for p in model.parameters():  # .parameters() already yields a shared tensor once
        if p.requires_grad:
            trainable += p.numel()
        else:
            frozen += p.numel()
    return trainable, frozen


def _fingerprint() -> str:
    digest = hashlib.sha256(torch.__version__.encode())
    sources = [_PACKAGE / "shapes.py", Path(__file__)]
    for folder in ("models", "layers", "analysis"):
        sources += sorted((_PACKAGE / folder).glob("*.py"))
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _cache_file() -> Path:
    from cnnlab.data.sources import user_cache

    return user_cache() / f"catalog-{_fingerprint()}.json"


def _compute() -> list[dict[str, Any]]:
    from cnnlab.analysis import analyze

    rows = []
    for name in list_models():
        info = model_info(name)
        with torch.device("meta"):
            model = create_model(name)
        trainable, frozen = count_parameters(model)
        rows.append({
            **info.to_dict(),
            "params": trainable + frozen,
            "trainable_params": trainable,
            "macs": analyze(model, info.default_input).macs,
        })
    return rows


def catalog(family: str | None = None, use_cache: bool = True) -> list[dict[str, Any]]:
    """One record per registered model: family, paper, parameters, MACs per sample at the
    default input (see :mod:`cnnlab.analysis`), default and smallest input."""
    rows = None
    path = _cache_file()
    if use_cache and path.is_file():
        try:
            rows = json.loads(path.read_text())
        except (OSError, ValueError):
            rows = None
        if rows is not None and [r.get("name") for r in rows] != list_models():
            rows = None
    if rows is None:
        rows = _compute()
        if use_cache:
            try:
                with atomic_write(path) as tmp:
                    tmp.write_text(json.dumps(rows))
            except OSError:
                pass  # a read-only home: the catalogue is simply computed each time
    return [r for r in rows if family is None or r["family"] == family]
