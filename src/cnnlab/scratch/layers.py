"""Layers with a forward and a hand-written backward pass, on NumPy arrays.

Every layer keeps what its backward pass needs from the last ``forward`` call. ``backward(g)``
takes the gradient of the loss with respect to the layer's output and returns the gradient
with respect to its input; gradients of the parameters land in ``layer.grads`` under the same
names as ``layer.params`` (each backward call overwrites them: no accumulation as in torch).

Names and layouts are PyTorch's (``weight``/``bias``, Conv2d weight (O, C/groups, kh, kw),
Linear weight (out, in), BatchNorm ``running_mean``/``running_var``/``num_batches_tracked``), so a
torch ``state_dict`` maps onto these layers one to one. Parameters are created in the layer's
``dtype`` (float32 for training speed, float64 for exact checks) with torch's default
initialisation.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.scratch import functional as F

__all__ = [
    "AvgPool2d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "MaxPool2d",
    "MinPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
]

ConvMethod = Literal["im2col", "naive"]


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _uniform(rng: np.random.Generator, bound: float, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Layer(ABC):
    """One step of a network: ``forward`` computes, ``backward`` sends gradients back."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True

    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Compute the output and keep what backward needs."""

    @abstractmethod
    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        """Gradient w.r.t. the input from the gradient w.r.t. the output (of the last forward).

        ``need_input_grad=False`` lets a layer skip work nobody uses (the first layer's input
        gradient); it may then return None.
        """

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def train(self, mode: bool = True) -> Layer:
        self.training = mode
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def zero_grad(self) -> None:
        for name, value in self.params.items():
            self.grads[name] = np.zeros_like(value)

    def parameters(self) -> list[tuple[str, np.ndarray]]:
        """(name, array) of the trainable parameters: the arrays themselves, not copies."""
        return list(self.params.items())

    def gradients(self) -> list[tuple[str, np.ndarray]]:
        """(name, gradient) in the order of :meth:`parameters`, from the last backward pass."""
        return [(name, self.grads[name]) for name in self.params]

    def astype(self, dtype: Any) -> Layer:
        """Cast parameters, gradients and floating-point buffers to ``dtype`` (in place)."""
        for store in (self.params, self.grads):
            for name, value in store.items():
                store[name] = value.astype(dtype)
        for name, value in self.buffers.items():
            if np.issubdtype(value.dtype, np.floating):
                self.buffers[name] = value.astype(dtype)
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


# --------------------------------------------------------------------------------------
# Convolution and linear
# --------------------------------------------------------------------------------------


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library) with groups.

    ``method="im2col"`` (default) computes through one matrix product per image;
    ``method="naive"`` runs the definition with loops (slow: for reading and small checks).
    The im2col backward folds column gradients back with col2im; the naive one goes placement
    by placement (:func:`functional.conv2d_backward_naive`).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: F.IntPair,
        stride: F.IntPair = 1,
        padding: F.IntPair = 0,
        dilation: F.IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        method: ConvMethod = "im2col",
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise CnnlabError(
                f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        if method not in ("im2col", "naive"):
            raise CnnlabError(f"method must be 'im2col' or 'naive', got {method!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = F.pair(kernel_size, "kernel_size")
        self.stride, self.padding, self.dilation = F.conv_args(stride, padding, dilation)
        self.groups = groups
        self.method: ConvMethod = method
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        # torch's default: kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        # and the bias is drawn from the same range.
        bound = 1.0 / math.sqrt(fan_in)
        gen = _rng(rng)
        self.params["weight"] = _uniform(gen, bound, (out_channels, in_channels // groups, kh, kw), dtype)
        if bias:
            self.params["bias"] = _uniform(gen, bound, (out_channels,), dtype)
        self.zero_grad()
        self._x: np.ndarray | None = None
        self._cols: np.ndarray | None = None
        # Buffers for the columns and their gradients, reused from one training step to the
        # next: megabytes each, and freshly allocated memory costs a page fault per 4 KiB on
        # first touch (measured: about 2x on conv1's forward+backward at batch 64).
        self._work: dict[str, np.ndarray] = {}

    def _args(self) -> dict[str, Any]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def _buffer(self, name: str, x_shape: tuple[int, ...], dtype: Any) -> np.ndarray | None:
        """A reusable (N, C, kh, kw, OH, OW) array for input shape ``x_shape``, in training only.

        Evaluation runs large batches once; keeping their columns (tens of MB) alive in the
        model would waste memory, so it gets fresh arrays.
        """
        if not self.training:
            return None
        oh, ow = F.conv_output_hw(x_shape, self.kernel_size, self.stride, self.padding, self.dilation)
        shape = (x_shape[0], x_shape[1], *self.kernel_size, oh, ow)
        buffer = self._work.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._work[name] = np.empty(shape, dtype=dtype)
        return buffer

    def forward(self, x: np.ndarray) -> np.ndarray:
        weight, bias = self.params["weight"], self.params.get("bias")
        self._x = x
        if self.method == "naive":
            self._cols = None
            return F.conv2d_naive(x, weight, bias, **self._args())
        cols = self._buffer("cols", x.shape, x.dtype)
        out, self._cols = F.conv2d_im2col(x, weight, bias, cols_out=cols, **self._args())
        return out

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._x is None:
            raise CnnlabError("backward called before forward")
        weight = self.params["weight"]
        if self._cols is None:
            dx, dw, db = F.conv2d_backward_naive(self._x, weight, grad, **self._args())
        else:
            dx, dw, db = F.conv2d_im2col_backward(
                grad, self._cols, weight, self._x.shape, need_input_grad=need_input_grad,
                grad_cols_out=self._buffer("grad_cols", self._x.shape, np.result_type(weight, grad))
                if need_input_grad else None,
                **self._args(),
            )
        self.grads["weight"] = dw
        if "bias" in self.params:
            self.grads["bias"] = db
        return dx

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if "bias" not in self.params:
            text += ", bias=False"
        return text + (", method='naive'" if self.method == "naive" else "")


class Linear(Layer):
    """y = x @ weight.T + bias, weight (out_features, in_features) like torch."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: Any = np.float32,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)  # torch's default, as for Conv2d
        gen = _rng(rng)
        self.params["weight"] = _uniform(gen, bound, (out_features, in_features), dtype)
        if bias:
            self.params["bias"] = _uniform(gen, bound, (out_features,), dtype)
        self.zero_grad()
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise CnnlabError(f"Linear({self.in_features}, {self.out_features}) got input of shape {x.shape}")
        self._x = x
        out = x @ self.params["weight"].T
        if "bias" in self.params:
            out += self.params["bias"]
        return out

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._x is None:
            raise CnnlabError("backward called before forward")
        self.grads["weight"] = grad.T @ self._x
        if "bias" in self.params:
            self.grads["bias"] = grad.sum(axis=0)
        return grad @ self.params["weight"] if need_input_grad else None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={'bias' in self.params}"


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


class MaxPool2d(Layer):
    """Max pooling (padding never wins; ties go to the first in the window, as in torch)."""

    _mode: F.PoolMode = "max"

    def __init__(
        self,
        kernel_size: F.IntPair,
        stride: F.IntPair | None = None,
        padding: F.IntPair = 0,
        dilation: F.IntPair = 1,
    ) -> None:
        super().__init__()
        self.kernel_size = F.pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else F.pair(stride, "stride")
        self.padding = F.pair(padding, "padding")
        self.dilation = F.pair(dilation, "dilation")
        self._x: np.ndarray | None = None
        self._out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out = F.maxpool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, mode=self._mode)
        self._x, self._out = x, out
        return out

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._x is None or self._out is None:
            raise CnnlabError("backward called before forward")
        return F.maxpool2d_backward(
            grad, self._x, self._out, self.kernel_size, self.stride, self.padding, self.dilation, self._mode
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, dilation={self.dilation}"


class MinPool2d(MaxPool2d):
    """Min pooling, cnnlab's ``MinPool2d``: the smallest value of each window (padding is +inf)."""

    _mode: F.PoolMode = "min"


class AvgPool2d(Layer):
    """Average pooling; ``count_include_pad`` as in torch (default True: padding counts)."""

    def __init__(
        self,
        kernel_size: F.IntPair,
        stride: F.IntPair | None = None,
        padding: F.IntPair = 0,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = F.pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else F.pair(stride, "stride")
        self.padding = F.pair(padding, "padding")
        self.count_include_pad = count_include_pad
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return F.avgpool2d(x, self.kernel_size, self.stride, self.padding, self.count_include_pad)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._shape is None:
            raise CnnlabError("backward called before forward")
        return F.avgpool2d_backward(
            grad, self._shape, self.kernel_size, self.stride, self.padding, self.count_include_pad
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# --------------------------------------------------------------------------------------
# Activations, reshaping, regularisation
# --------------------------------------------------------------------------------------


class ReLU(Layer):
    """max(x, 0); the gradient passes where x > 0 (torch's choice at exactly 0: blocked)."""

    def __init__(self) -> None:
        super().__init__()
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.maximum(x, 0)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._mask is None:
            raise CnnlabError("backward called before forward")
        return grad * self._mask


class Tanh(Layer):
    """tanh(x); d/dx = 1 - tanh(x)^2."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._y = np.tanh(x)
        return self._y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._y is None:
            raise CnnlabError("backward called before forward")
        return grad * (1 - self._y * self._y)


class Sigmoid(Layer):
    """1 / (1 + exp(-x)); d/dx = s (1 - s)."""

    def __init__(self) -> None:
        super().__init__()
        self._y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        # exp of a large positive number overflows; 0.5 * (1 + tanh(x/2)) is the same function.
        self._y = 0.5 * (1 + np.tanh(0.5 * x))
        return self._y

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._y is None:
            raise CnnlabError("backward called before forward")
        return grad * self._y * (1 - self._y)


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W), in torch's (row-major) order."""

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._shape is None:
            raise CnnlabError("backward called before forward")
        return grad.reshape(self._shape)


class Dropout(Layer):
    """Inverted dropout: in training zero each value with probability p, scale the rest by 1/(1-p).

    The scaling keeps the expected activation unchanged, so evaluation is the identity.
    """

    def __init__(self, p: float = 0.5, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise CnnlabError(f"dropout probability must lie in [0, 1], got {p}")
        self.p = p
        self.rng = _rng(rng)
        self._scale: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0:
            self._scale = None
            return x
        keep = self.rng.random(x.shape) >= self.p
        # p == 1 drops everything (and must not divide by zero).
        factor = 0.0 if self.p == 1 else 1.0 / (1.0 - self.p)
        self._scale = (keep * factor).astype(x.dtype)
        return x * self._scale

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        return grad if self._scale is None else grad * self._scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class BatchNorm2d(Layer):
    """Batch normalisation over (N, H, W) per channel, torch's conventions.

    Training: normalise with the batch mean and biased variance; update the running mean and
    the running *unbiased* variance with ``momentum``. Evaluation: use the running statistics.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        dtype: Any = np.float32,
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        if affine:
            self.params["weight"] = np.ones(num_features, dtype=dtype)
            self.params["bias"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
        self.buffers["running_var"] = np.ones(num_features, dtype=dtype)
        self.buffers["num_batches_tracked"] = np.zeros((), dtype=np.int64)
        self.zero_grad()
        self._cache: tuple[np.ndarray, np.ndarray, bool] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise CnnlabError(f"BatchNorm2d({self.num_features}) got input of shape {x.shape}")
        if self.training:
            count = x.shape[0] * x.shape[2] * x.shape[3]
            if count < 2:
                raise CnnlabError("BatchNorm2d in training mode needs more than one value per channel")
            mean = x.mean(axis=(0, 2, 3))
            var = x.var(axis=(0, 2, 3))
            m = self.momentum
            self.buffers["running_mean"] = ((1 - m) * self.buffers["running_mean"] + m * mean).astype(x.dtype)
            unbiased = var * (count / (count - 1))
            self.buffers["running_var"] = ((1 - m) * self.buffers["running_var"] + m * unbiased).astype(x.dtype)
            self.buffers["num_batches_tracked"] = self.buffers["num_batches_tracked"] + 1
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
        inv_std = (1.0 / np.sqrt(var + self.eps)).astype(x.dtype)
        x_hat = (x - mean.reshape(1, -1, 1, 1)) * inv_std.reshape(1, -1, 1, 1)
        self._cache = (x_hat, inv_std, self.training)
        if "weight" in self.params:
            return x_hat * self.params["weight"].reshape(1, -1, 1, 1) + self.params["bias"].reshape(1, -1, 1, 1)
        return x_hat

    def backward(self, grad: np.ndarray, need_input_grad: bool = True) -> np.ndarray | None:
        if self._cache is None:
            raise CnnlabError("backward called before forward")
        x_hat, inv_std, batch_stats = self._cache
        if "weight" in self.params:
            self.grads["weight"] = (grad * x_hat).sum(axis=(0, 2, 3))
            self.grads["bias"] = grad.sum(axis=(0, 2, 3))
            grad_hat = grad * self.params["weight"].reshape(1, -1, 1, 1)
        else:
            grad_hat = grad
        if not batch_stats:
            # Fixed statistics: the normalisation is an affine map of x.
            return grad_hat * inv_std.reshape(1, -1, 1, 1)
        # With batch statistics the mean and variance depend on every x, which adds two terms:
        # dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), means over (N, H, W).
        mean_g = grad_hat.mean(axis=(0, 2, 3), keepdims=True)
        mean_gx = (grad_hat * x_hat).mean(axis=(0, 2, 3), keepdims=True)
        return (grad_hat - mean_g - x_hat * mean_gx) * inv_std.reshape(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={'weight' in self.params}"


# --------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------


class CrossEntropyLoss:
    """Softmax cross-entropy averaged over the batch (torch's ``nn.CrossEntropyLoss()``)."""

    def __init__(self) -> None:
        self._grad: np.ndarray | None = None

    def __call__(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return self.forward(logits, labels)

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        loss, self._grad = F.softmax_cross_entropy(logits, labels)
        return loss

    def backward(self) -> np.ndarray:
        """d loss / d logits for the last forward call."""
        if self._grad is None:
            raise CnnlabError("backward called before forward")
        return self._grad
