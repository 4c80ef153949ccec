"""Which inputs a model accepts, found on the meta device (no real compute, no real memory).

:func:`check_input` runs a model on a meta tensor and, when the input does not fit, names the
layer where it stops fitting and the smallest square input that works, in one line. A small
input (CIFAR- or MNIST-sized) is probed with a real forward pass on a copy of the model instead:
it costs milliseconds, where the first meta pass through some operators costs a second (they
load torch's compiler).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError, first_line
from cnnlab.shapes import fmt_shape

__all__ = ["check_input", "first_forward", "lazy_error", "lazy_tensors", "meta_model", "size_lazy", "smallest_input"]

# Largest side tried when searching for the smallest input.
_MAX_SIDE = 4096
# Samples of at most this many values (3x64x64) are probed with real tensors on the CPU.
_REAL_PROBE_VALUES = 3 * 64 * 64
_REAL_PROBE_PARAMETERS = 50_000_000


def lazy_tensors(model: nn.Module) -> list[str]:
    """The parameters and buffers of lazy modules (LazyLinear, LazyConv2d...) that no input has sized yet."""
    from torch.nn.parameter import is_lazy

    return [name for name, t in (*model.named_parameters(), *model.named_buffers()) if is_lazy(t)]


def lazy_error(label: str, names: Sequence[str], fix: str) -> CnnlabError:
    """One line: which lazy tensors are unsized, and ``fix``, how to size them."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return CnnlabError(f"{label} has lazy parameters ({shown}) whose sizes its first forward pass sets: {fix}")


def first_forward(model: nn.Module, *args: Any, **kwargs: Any) -> None:
    """The forward pass that sizes lazy modules, in eval mode (a lazy batch norm sizes itself without
    batch statistics) and without gradients; the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        model.train(was_training)


def size_lazy(model: nn.Module, size: Sequence[int], label: str) -> None:
    """Size ``model``'s lazy modules on one zero sample of C x H x W ``size``, on the model's device;
    a model that cannot take ``size`` is one line."""
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    try:
        first_forward(model, torch.zeros(1, *size, device=device))
    except (RuntimeError, ValueError, IndexError) as exc:
        first = first_line(exc)
        raise CnnlabError(f"{label} cannot run on input {fmt_shape(size)}: {first}") from None


def _probe_model(model: nn.Module, size: Sequence[int]) -> tuple[nn.Module, str]:
    """A copy of ``model`` to run one probe on, and the device of that probe ("cpu" or "meta")."""
    values = math.prod(size)
    tensors = [*model.parameters(), *model.buffers()]
    small = values <= _REAL_PROBE_VALUES and sum(t.numel() for t in tensors) <= _REAL_PROBE_PARAMETERS
    meta = None if small else meta_model(model)  # None too for TorchScript parts: those run on the CPU
    if meta is None and all(t.device.type == "cpu" for t in tensors):
        import copy

        return copy.deepcopy(model), "cpu"  # a copy: training mode would move batch norm's statistics
    if meta is None:
        meta = meta_model(model)
    return (meta if meta is not None else model), "meta"


def meta_model(model: nn.Module) -> nn.Module | None:
    """The same architecture on the meta device, the caller's model left untouched; None for a model
    with TorchScript parts, which cannot move there. The copy never holds the weights' values: each
    parameter and buffer is replaced by a meta tensor of its shape while the modules are copied."""
    if any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        return None
    tensors = [*model.parameters(), *model.buffers()]
    if all(t.device.type == "meta" for t in tensors):
        return model
    import copy

    memo: dict[int, Any] = {}
    for t in tensors:
        empty = torch.empty_like(t, device="meta")
        memo[id(t)] = nn.Parameter(empty, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else empty
    return copy.deepcopy(model, memo)


_OWN_CODE = "(model's forward)"  # where a failure outside every submodule is placed


def _run(model: nn.Module, shape: Sequence[int], training: bool = False,
         device: str = "meta") -> tuple[BaseException | None, str | None, tuple[int, ...] | None]:
    """Forward a zero sample; on failure return the error, the failing leaf module and its input shape."""
    stack: list[tuple[str, tuple[int, ...] | None]] = []
    handles = []

    def pre(name: str):
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            stack.append((name, tuple(first.shape[1:]) if first is not None else None))

        return hook

    def post(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        stack.pop()

    for name, module in model.named_modules():
        if name and not isinstance(module, torch.jit.ScriptModule):  # TorchScript takes no hooks
            handles.append(module.register_forward_pre_hook(pre(name)))
            handles.append(module.register_forward_hook(post))
    was_training = model.training
    # Inference by default: batch norm on a 1x1 map of one sample is legal there, not in training.
    # Training mode also runs training-only branches (GoogLeNet's auxiliary classifiers), on two
    # samples so that batch norm has statistics to compute.
    model.train(training)
    try:
        # The random generators are put back: a probe in training mode draws dropout masks.
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(torch.zeros(2 if training else 1, *shape, device=device))
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:  # models assert on sizes too
        name, in_shape = stack[-1] if stack else (_OWN_CODE, None)
        return exc, name, in_shape
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return None, None, None


def _smallest_side(model: nn.Module, channels: int, known: int | None = None, training: bool = False) -> int | None:
    """The smallest square side the model accepts, or None if none up to the search limit does.

    Bisects between 0 and a side known to fit (``known``, else the first power of two that fits):
    a convolutional network that fits side n fits every larger side, and a model with a fixed
    flatten fits only its own size, which the bisection then returns.
    """
    meta = meta_model(model)
    if meta is None:  # TorchScript parts do not run on the meta device: no search
        return None

    def ok(side: int) -> bool:
        was_training = meta.training
        meta.train(training)  # see _run
        try:
            with torch.no_grad():
                meta(torch.empty(2 if training else 1, channels, side, side, device="meta"))
        except (RuntimeError, ValueError, IndexError, AssertionError):
            return False
        finally:
            meta.train(was_training)
        return True

    high = known if known is not None and ok(known) else None
    if high is None:
        side = 1
        while side <= _MAX_SIDE and not ok(side):
            side *= 2
        if side > _MAX_SIDE:
            return None
        high = side
    low = 0  # low never fits, high always does
    while high - low > 1:
        mid = (low + high) // 2
        if ok(mid):
            high = mid
        else:
            low = mid
    return high


@functools.cache
def smallest_input(name: str) -> int:
    """Smallest square side (H = W) that registered model ``name`` accepts at its defaults."""
    from cnnlab.models.registry import create_model, model_info

    info = model_info(name)
    with torch.device("meta"):
        model = create_model(name)
    side = _smallest_side(model.eval(), info.default_input[0], info.default_input[-1])
    if side is None:
        raise CnnlabError(f"model {name!r} accepts no square input up to {_MAX_SIDE}")
    return side


def _first_conv_channels(model: nn.Module) -> int | None:
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return module.in_channels
    return None


def check_input(model: nn.Module, input_size: Sequence[int], model_name: str | None = None,
                known_side: int | None = None, training: bool = False) -> None:
    """Raise a one-line :class:`CnnlabError` when ``model`` cannot take one ``input_size`` sample.

    The message names the layer where the input stops fitting and the smallest square input
    that works (or the channel count the model expects). ``known_side`` is a square side known
    to fit (a registered model's default), which lets the search find fixed-size models too.
    ``training`` checks the training graph instead (auxiliary classifiers included).
    """
    size = tuple(int(s) for s in input_size)
    label = model_name or type(model).__name__
    if len(size) != 3 or min(size) < 1:
        raise CnnlabError(f"input must be CxHxW with positive sizes, e.g. 3x224x224, got {fmt_shape(size)}")
    expected = _first_conv_channels(model)
    if expected is not None and expected != size[0]:
        raise CnnlabError(
            f"{label} takes {expected} input channel{'s' if expected != 1 else ''} but the input has {size[0]}: "
            f"use an input of {expected}x{size[1]}x{size[2]}, or build the model with in_channels={size[0]}"
        )
    probe, device = _probe_model(model, size)
    exc, layer, layer_input = _run(probe, size, training, device)
    if isinstance(exc, NotImplementedError) and device == "meta":
        # Meta tensors have shapes but no values: a forward that needs values (torch.nonzero, .item(),
        # an `if` on a tensor) stops there whatever the input, so the probe runs for real where it can.
        tensors = [*model.parameters(), *model.buffers()]
        if any(t.device.type == "meta" for t in tensors):
            raise CnnlabError(f"{label}'s forward needs the values of its tensors at '{layer}' "
                              f"({re.split(r'[.;] ', first_line(exc))[0]}), which a model on the meta device does "
                              "not have: build it with its weights on the CPU") from None
        import copy

        where_it_lives = str(tensors[0].device) if tensors else "cpu"
        exc, layer, layer_input = _run(copy.deepcopy(model), size, training, where_it_lives)
    if exc is None:
        return
    side = _smallest_side(model, size[0], known_side, training)
    first = first_line(exc)
    first = re.sub(r"\s+", " ", first)
    where = f"layer '{layer}'"
    if layer_input is not None:
        where += f" (its input would be {fmt_shape(layer_input)})"
    # Below the smallest side that works, and stopped in a layer: the map ran out. Stopped in the
    # model's own code, the model's own words say why (an input it wants divisible by 32, say).
    small = side is not None and min(size[1:]) < side and layer != _OWN_CODE
    if small:
        raise CnnlabError(
            f"input {fmt_shape(size)} is too small for {label}: the spatial size runs out at {where}; "
            f"the smallest input that works is {size[0]}x{side}x{side}"
        )
    hint = f"; {label} works at {size[0]}x{side}x{side}" if side is not None else ""
    raise CnnlabError(f"input {fmt_shape(size)} does not fit {label} at {where}: {first}{hint}")
