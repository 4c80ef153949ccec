"""Building the models users name: architecture options, user code (file.py:Name), the meta device.

Which kind of network a name means is decided in :mod:`cnnlab.sources`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["build_on_meta", "build_user_model", "load_user_object", "parse_options", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside the wrappers that only hand their input on: ``nn.DataParallel``,
    ``DistributedDataParallel`` and the module ``torch.compile`` returns (recognised by name, so
    that asking does not import the compiler)."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif (type(model).__name__ == "OptimizedModule" and type(model).__module__.startswith("torch._dynamo")
              and isinstance(getattr(model, "_orig_mod", None), nn.Module)):
            model = model._orig_mod
        else:
            return model


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """['shortcut=A', 'zero_init_residual=true'] -> {'shortcut': 'A', 'zero_init_residual': True}."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CnnlabError(f"cannot read option {pair!r}: write KEY=VALUE, e.g. shortcut=B")
        options[key.strip().replace("-", "_")] = _value(value.strip())
    return options


def load_user_object(spec: str) -> Any:
    """The object ``path/to/file.py:name`` or ``package.module:name`` names."""
    import importlib
    import importlib.util
    import sys

    where, sep, attr = spec.rpartition(":")
    if not sep or not where or not attr:
        raise CnnlabError(f"cannot read {spec!r}: write path/to/file.py:name or package.module:name")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise CnnlabError(f"file {path} does not exist: check the path in {spec!r}")
        mod_name = f"_cnnlab_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise CnnlabError(f"cannot import {path}: it is not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            raise CnnlabError(f"importing {path} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise CnnlabError(f"cannot import module {where!r} ({exc}): check the name, or give a file path") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        public = sorted(k for k in vars(module) if not k.startswith("_"))
        raise CnnlabError(f"{where} has no {attr!r}; it defines: {', '.join(public[:12])}") from None


def build_user_model(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Call (or take) the model a ``file.py:name`` spec points to."""
    obj = load_user_object(spec)
    if isinstance(obj, nn.Module):
        if kwargs:
            raise CnnlabError(f"{spec} is a model instance: it takes no options")
        return obj
    if not callable(obj):
        raise CnnlabError(f"{spec} is neither a model class, a function returning a model, nor a model")
    try:
        model = obj(**(kwargs or {}))
    except TypeError as exc:
        raise CnnlabError(f"calling {spec} failed: {exc}") from None
    if not isinstance(model, nn.Module):
        raise CnnlabError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


_INIT_LOCK = threading.Lock()
_INIT_USERS = 0
_INIT_SAVED: dict[str, Callable[..., Any]] = {}


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Make torch.nn.init's in-place initialisers return meta tensors untouched for a while.

    On the meta device there are no values to initialise, yet each initialiser still runs
    through torch's Python reference kernels, whose first use imports the compiler stack
    (about two seconds); skipping them makes building a meta model nearly free. Only meta
    tensors are skipped, and the initialisers are swapped once however many threads are inside,
    so a model built for real on another thread meanwhile (the explorer serves from threads) is
    initialised as usual.
    """
    import torch.nn.init as init

    global _INIT_USERS
    with _INIT_LOCK:
        if _INIT_USERS == 0:
            _INIT_SAVED.update({name: fn for name, fn in vars(init).items()
                                if name.endswith("_") and not name.startswith("_") and callable(fn)})
            for name, fn in _INIT_SAVED.items():
                setattr(init, name, _meta_noop(fn))
        _INIT_USERS += 1
    try:
        yield
    finally:
        with _INIT_LOCK:
            _INIT_USERS -= 1
            if _INIT_USERS == 0:
                for name, fn in _INIT_SAVED.items():
                    setattr(init, name, fn)
                _INIT_SAVED.clear()


def _meta_noop(fn: Callable[..., Any]) -> Callable[..., Any]:
    def init_unless_meta(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor if getattr(tensor, "is_meta", False) else fn(tensor, *args, **kwargs)

    return init_unless_meta


def build_on_meta(spec: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """Build a registered or user model on the meta device: shapes only, no memory, no init cost."""
    import torch

    from cnnlab.models.registry import create_model, list_models, unknown_model

    with torch.device("meta"), _skip_init():
        if spec in list_models():
            return create_model(spec, **(kwargs or {}))
        if ":" in spec:
            return build_user_model(spec, kwargs)
    raise unknown_model(spec)
