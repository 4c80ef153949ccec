"""Sequential models, the SGD optimiser and the scratch LeNet-5.

Parameter names are dotted paths like torch's (``features.0.weight``), so
``model.state_dict()`` here and ``torch_model.state_dict()`` of the same architecture have the
same keys and shapes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.scratch.layers import (
    AvgPool2d,
    Conv2d,
    ConvMethod,
    Flatten,
    Layer,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)

__all__ = ["SGD", "Sequential", "lenet5", "to_numpy"]


def to_numpy(value: Any) -> np.ndarray:
    """An array from a NumPy array or a torch tensor (without importing torch)."""
    if hasattr(value, "detach"):  # a torch.Tensor: leave autograd, come to the CPU
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class Sequential(Layer):
    """Layers applied one after another; children may be named and may be Sequentials too.

    ``Sequential(conv, relu)`` names its children "0", "1", ... like ``torch.nn.Sequential``;
    ``Sequential(("features", block), ("classifier", head))`` names them explicitly.
    """

    def __init__(self, *layers: Layer | tuple[str, Layer]) -> None:
        super().__init__()
        self.children: list[tuple[str, Layer]] = []
        for index, item in enumerate(layers):
            name, layer = item if isinstance(item, tuple) else (str(index), item)
            if not isinstance(layer, Layer):
                raise CnnlabError(f"Sequential takes scratch layers, got {type(layer).__name__}")
            if any(name == taken for taken, _ in self.children):
                raise CnnlabError(f"two children of a Sequential are both named {name!r}")
            self.children.append((name, layer))

    # -- running ------------------------------------------------------------------------

    def forward(self, x: np.ndarray) -> np.ndarray:
        for _, layer in self.children:
            x = layer.forward(x)
        return x

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        for index in range(len(self.children) - 1, -1, -1):
            layer = self.children[index][1]
            grad = layer.backward(grad, need_input_grad=need_input_grad if index == 0 else True)
        return grad

    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for _, layer in self.children:
            layer.train(mode)
        return self

    def eval(self) -> Sequential:
        return self.train(False)

    def zero_grad(self) -> None:
        for _, layer in self.children:
            layer.zero_grad()

    def astype(self, dtype: Any) -> Sequential:
        for _, layer in self.children:
            layer.astype(dtype)
        return self

    # -- access -------------------------------------------------------------------------

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """Every non-Sequential layer with its dotted name, in order."""
        for name, layer in self.children:
            full = f"{prefix}{name}"
            if isinstance(layer, Sequential):
                yield from layer.named_layers(full + ".")
            else:
                yield full, layer

    def parameters(self) -> list[tuple[str, np.ndarray]]:
        """(name, array) of every trainable parameter; the arrays themselves, not copies."""
        return [(f"{name}.{key}", value) for name, layer in self.named_layers() for key, value in layer.params.items()]

    def gradients(self) -> list[tuple[str, np.ndarray]]:
        """(name, gradient) in the order of :meth:`parameters`, from the last backward pass."""
        return [
            (f"{name}.{key}", layer.grads[key]) for name, layer in self.named_layers() for key in layer.params
        ]

    def num_parameters(self) -> int:
        return sum(value.size for _, value in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of parameters and buffers under torch's names, in torch's order."""
        state: dict[str, np.ndarray] = {}
        for name, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for key, value in store.items():
                    state[f"{name}.{key}"] = value.copy()
        return state

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:
        """Copy values (NumPy arrays or torch tensors) into the model, keeping each array's dtype.

        With ``strict`` every key must match; shapes must always match.
        """
        targets: dict[str, tuple[dict[str, np.ndarray], str]] = {}
        for name, layer in self.named_layers():
            for store in (layer.params, layer.buffers):
                for key in store:
                    targets[f"{name}.{key}"] = (store, key)
        missing = [key for key in targets if key not in state]
        unexpected = [key for key in state if key not in targets]
        if strict and (missing or unexpected):
            raise CnnlabError(
                f"the weights do not fit this model: missing {missing[:4]}, unexpected {unexpected[:4]}"
            )
        for key, (store, field) in targets.items():
            if key not in state:
                continue
            value = to_numpy(state[key])
            if value.shape != store[field].shape:
                raise CnnlabError(f"{key}: the weights have shape {value.shape}, the model {store[field].shape}")
            store[field] = value.astype(store[field].dtype, copy=True)

    def __getitem__(self, key: int | str) -> Layer:
        if isinstance(key, int):
            return self.children[key][1]
        for name, layer in self.children:
            if name == key:
                return layer
        raise KeyError(key)

    def __len__(self) -> int:
        return len(self.children)

    def __iter__(self) -> Iterator[Layer]:
        return (layer for _, layer in self.children)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, layer in self.children:
            text = repr(layer).replace("\n", "\n  ")
            lines.append(f"  ({name}): {text}")
        return "\n".join([*lines, ")"])


class SGD:
    """Stochastic gradient descent with momentum and weight decay, exactly torch.optim.SGD's rule.

    For each parameter p with gradient g:
        g = g + weight_decay * p
        buf = g (first step), else buf = momentum * buf + (1 - dampening) * g
        g = g + momentum * buf (nesterov) or g = buf
        p = p - lr * g
    ``model`` is anything with ``parameters()`` and ``gradients()`` (a Sequential); parameters
    are updated in place, so layers keep seeing the same arrays.
    """

    def __init__(
        self,
        model: Sequential,
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise CnnlabError(f"SGD needs lr, momentum, weight_decay >= 0; got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise CnnlabError("Nesterov momentum needs momentum > 0 and dampening 0")
        self.model = model
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.dampening, self.nesterov = dampening, nesterov
        self.state: dict[str, np.ndarray] = {}

    def step(self) -> None:
        grads = dict(self.model.gradients())
        for name, p in self.model.parameters():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                buf = self.state.get(name)
                if buf is None:
                    buf = self.state[name] = g.copy()
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p -= (self.lr * g).astype(p.dtype, copy=False)


def lenet5(
    num_classes: int = 10,
    in_channels: int = 1,
    padding: int = 2,
    act: Literal["relu", "tanh", "sigmoid"] = "relu",
    pool: Literal["max", "avg"] = "max",
    dtype: Any = np.float32,
    seed: int | None = 0,
    method: ConvMethod = "im2col",
) -> Sequential:
    """LeNet-5 in its common form, the layout of cnnlab's torch ``lenet5`` (same names, shapes).

    features: conv 6@5x5 (padding 2 on 28x28) - act - pool 2 - conv 16@5x5 - act - pool 2;
    flatten to 400; classifier: fc 120 - act - fc 84 - act - fc num_classes.
    """
    acts: dict[str, type[Layer]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
    if act not in acts:
        raise CnnlabError(f"act must be one of {sorted(acts)}, got {act!r}")
    if pool not in ("max", "avg"):
        raise CnnlabError(f"pool must be 'max' or 'avg', got {pool!r}")
    rng = np.random.default_rng(seed)
    act_cls = acts[act]

    def pool_layer() -> Layer:
        return MaxPool2d(2, 2) if pool == "max" else AvgPool2d(2, 2)

    features = Sequential(
        Conv2d(in_channels, 6, 5, padding=padding, method=method, dtype=dtype, rng=rng),
        act_cls(),
        pool_layer(),
        Conv2d(6, 16, 5, method=method, dtype=dtype, rng=rng),
        act_cls(),
        pool_layer(),
    )
    classifier = Sequential(
        Linear(16 * 5 * 5, 120, dtype=dtype, rng=rng),
        act_cls(),
        Linear(120, 84, dtype=dtype, rng=rng),
        act_cls(),
        Linear(84, num_classes, dtype=dtype, rng=rng),
    )
    return Sequential(("features", features), ("flatten", Flatten()), ("classifier", classifier))
