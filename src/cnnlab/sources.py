"""Which network a user means: the one resolver behind the commands and the explorer.

A network is named in one of four ways:

    zoo         a registered name (``resnet18``), with architecture options and optional weights
    code        ``path/to/file.py:Name`` or ``package.module:Name`` (runs that code)
    checkpoint  a cnnlab checkpoint file: architecture, weights and what it was trained on
    run         a run folder ``cnnlab train`` wrote: its best checkpoint (see :mod:`cnnlab.runs`)

Each command takes the kinds that make sense for it (an architecture for ``inspect``, trained
weights for ``eval``) and refuses the others with one line that lists what it takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from cnnlab.errors import CnnlabError

__all__ = ["KINDS", "TRAINED", "Source", "checkpoint_of", "kind_of", "resolve"]

KINDS = ("zoo", "code", "checkpoint", "run")
TRAINED = ("checkpoint", "run")
_SAYS = {"zoo": "a zoo name (`cnnlab models` lists them)", "code": "path/to/file.py:Name",
         "checkpoint": "a cnnlab checkpoint file", "run": "a run folder"}


@dataclass
class Source:
    """A resolved network: how to build it, its weights if any, and what is known of its input."""

    kind: str
    spec: str  # as the user wrote it
    name: str  # the registry name, or the code spec
    kwargs: dict[str, Any]
    default_input: tuple[int, ...] | None  # C x H x W; None when unknown (user code)
    checkpoint: Path | None = None  # the file the weights come from (checkpoint and run)
    weights: Path | None = None  # a state_dict file for a zoo model
    data: dict[str, Any] = field(default_factory=dict)  # classes, mean, std, input_size of a trained model
    _ckpt: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        if self.kind == "run":
            return f"{Path(self.spec).name} ({self.name})"
        return self.name if self.kind in ("zoo", "code") else f"{self.checkpoint} ({self.name})"

    def build(self, input_size: Sequence[int] | None = None) -> nn.Module:
        """The model, with its weights where the source has them (random weights otherwise).

        Lazy modules in user code (LazyConv2d, LazyLinear...) are sized by one forward pass at
        ``input_size`` (C x H x W); without one that is one line saying how to size them.
        """
        from cnnlab.models.inputs import lazy_error, lazy_tensors, size_lazy
        from cnnlab.models.registry import create_model
        from cnnlab.models.source import build_user_model

        if self.kind == "code":
            model = build_user_model(self.name, self.kwargs)
            lazy = lazy_tensors(model)
            if lazy and input_size is None:
                raise lazy_error(self.name, lazy, "run it once in the file, e.g. model(torch.zeros(1, 3, 32, 32)), "
                                                  "before returning it")
            if lazy:
                size_lazy(model, input_size, self.name)
            return model
        if self._ckpt is not None:
            from cnnlab.checkpoint import build_from_checkpoint

            return build_from_checkpoint(self._ckpt, self.checkpoint)
        return create_model(self.name, weights=self.weights, **self.kwargs)


def kind_of(spec: str) -> str:
    """zoo, code, checkpoint or run: what ``spec`` names (without opening anything)."""
    from cnnlab.models.registry import list_models

    path = Path(spec)
    if spec in list_models():
        return "zoo"
    if path.is_dir():
        return "run"
    if path.is_file():
        return "checkpoint"
    where, sep, attr = spec.rpartition(":")
    if sep and where and attr and (where.endswith(".py") or "/" not in where):
        return "code"
    if "/" in spec or spec.endswith((".pt", ".pth", ".ckpt")):
        raise CnnlabError(f"{spec} does not exist: give a run folder or a checkpoint file that exists")
    from cnnlab.models.registry import unknown_model

    raise unknown_model(spec)


def _refuse(spec: str, kind: str, accept: tuple[str, ...], command: str) -> CnnlabError:
    takes = ", ".join(_SAYS[k] for k in accept[:-1]) + (" or " if len(accept) > 1 else "") + _SAYS[accept[-1]]
    return CnnlabError(f"{command} takes {takes}; {spec!r} is {_SAYS[kind].split(' (')[0]}")


def checkpoint_of(spec: str | Path, command: str = "this command") -> Path:
    """The checkpoint file a checkpoint or run folder means (a run's best.pt), without reading it."""
    from cnnlab.runs import RunDir

    spec = str(spec)
    kind = kind_of(spec)
    if kind not in TRAINED:
        raise _refuse(spec, kind, TRAINED, command)
    return RunDir(spec).weights() if kind == "run" else Path(spec)


def resolve(spec: str, accept: tuple[str, ...] = KINDS, *, num_classes: int | None = None,
            in_channels: int | None = None, weights: str | Path | None = None,
            options: dict[str, Any] | None = None, command: str = "this command") -> Source:
    """The network ``spec`` names, if it is of a kind in ``accept``; one line otherwise.

    Architecture options (``num_classes``, ``in_channels``, ``options``) and ``weights`` apply
    to zoo and code models; a checkpoint already fixes them and refuses them.
    """
    from cnnlab.models.registry import model_info

    spec = str(spec)
    kind = kind_of(spec)
    if kind not in accept:
        raise _refuse(spec, kind, accept, command)
    kwargs = dict(options or {})
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None:
            kwargs[key] = value
    if kind in TRAINED:
        if kwargs or weights is not None:
            raise CnnlabError("a checkpoint already fixes the architecture and the weights: drop --num-classes, "
                              "--in-channels, --weights and --set")
        return _trained(spec, kind)
    if kind == "code":
        if weights is not None:
            raise CnnlabError("--weights loads into zoo models; load them in your own code for file.py:Name")
        return Source("code", spec, spec, kwargs, None)
    info = model_info(spec)
    c = kwargs.get("in_channels", info.default_input[0])
    return Source("zoo", spec, spec, kwargs, (c, *info.default_input[1:]),
                  weights=Path(weights) if weights is not None else None)


def _trained(spec: str, kind: str) -> Source:
    from cnnlab.checkpoint import load_checkpoint
    from cnnlab.models.registry import list_models, model_info, unknown_model
    path = checkpoint_of(spec)
    ckpt = load_checkpoint(path)
    name = ckpt["model"]["name"]
    if name not in list_models():
        raise unknown_model(name)
    kwargs = dict(ckpt["model"].get("kwargs", {}))
    data = dict(ckpt.get("data") or {})
    info = model_info(name)
    size = data.get("input_size") or ckpt.get("input_size") or (kwargs.get("in_channels", info.default_input[0]),
                                                               *info.default_input[1:])
    return Source(kind, spec, name, kwargs, tuple(int(s) for s in size), checkpoint=path, data=data, _ckpt=ckpt)
