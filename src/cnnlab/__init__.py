"""cnnlab: build, inspect, train, look inside and compare the classic CNNs on PyTorch.

``import cnnlab`` stays light: ``cnnlab.shapes`` needs no torch, and the torch-based parts
(``create_model``, ``list_models``, ``model_info``, ``check_input``,
``analyze``) load on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "cnnlab.models.registry",
    "list_models": "cnnlab.models.registry",
    "model_info": "cnnlab.models.registry",
    "check_input": "cnnlab.models.inputs",
    "analyze": "cnnlab.analysis",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
