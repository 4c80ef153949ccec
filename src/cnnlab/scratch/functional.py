"""The arithmetic of the engine as plain functions on NumPy arrays (NCHW, like PyTorch).

Convolution comes in two forms that compute the same numbers:

* ``conv2d_naive``: the definition. One output value is the inner product of the kernel with
  the input window under it, plus the bias; loops visit every (image, output channel, row,
  column) placement. Slow, and meant to be read line by line.
* ``conv2d_im2col``: the same inner products done all at once. ``im2col`` copies every window
  into a column of a matrix, so the whole layer becomes one matrix product
  ``weight (O, C*kh*kw) @ columns (C*kh*kw, OH*OW)`` per image (and per group).

Backward passes return the gradients with respect to the inputs and parameters; the im2col
backward sends the column gradients back to the image with ``col2im``.

Nothing here imports torch: this is the code path that trains LeNet-5 with NumPy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from cnnlab.errors import CnnlabError

__all__ = [
    "avgpool2d",
    "avgpool2d_backward",
    "col2im",
    "col2im_add_at",
    "conv2d_backward_naive",
    "conv2d_im2col",
    "conv2d_im2col_backward",
    "conv2d_naive",
    "conv_args",
    "conv_output_hw",
    "conv_output_size",
    "im2col",
    "maxpool2d",
    "maxpool2d_backward",
    "pair",
    "softmax",
    "softmax_cross_entropy",
]

IntPair = int | Sequence[int]
PoolMode = Literal["max", "min"]


def pair(value: IntPair, name: str = "value") -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(3, 5) -> (3, 5)``: a per-axis (rows, columns) hyper-parameter."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    values = tuple(int(v) for v in value)
    if len(values) != 2:
        raise CnnlabError(f"{name} must be one integer or two (rows, columns), got {value!r}")
    return values[0], values[1]


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1, PyTorch's rule."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


Pair = tuple[int, int]


def conv_args(stride: IntPair, padding: IntPair, dilation: IntPair) -> tuple[Pair, Pair, Pair]:
    """(stride, padding, dilation) as (rows, columns) pairs, checked: stride, dilation >= 1, padding >= 0."""
    stride, padding, dilation = pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise CnnlabError(
            f"convolution needs stride >= 1, dilation >= 1 and padding >= 0; got {stride}, {dilation}, {padding}"
        )
    return stride, padding, dilation


def conv_output_hw(
    x_shape: Sequence[int], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """(OH, OW) of a convolution or pooling of an (..., H, W) input; one clear error if none fits."""
    h, w = x_shape[-2], x_shape[-1]
    oh = conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1])
    if oh < 1 or ow < 1:
        span = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
        raise CnnlabError(
            f"the {span[0]}x{span[1]} (dilated) kernel is larger than the {h + 2 * padding[0]}x"
            f"{w + 2 * padding[1]} padded input: use a smaller kernel or more padding"
        )
    return oh, ow


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _tap(start: int, count: int, stride: int) -> slice:
    """Positions start, start+stride, ..., (count values): where one kernel tap lands."""
    return slice(start, start + stride * (count - 1) + 1, stride)


# --------------------------------------------------------------------------------------
# im2col / col2im
# --------------------------------------------------------------------------------------


def im2col(
    xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
    out_hw: tuple[int, int], out: np.ndarray | None = None,
) -> np.ndarray:
    """Every kernel window of the (already padded) input, as an (N, C, kh, kw, OH, OW) array.

    ``cols[n, c, u, v, i, j]`` is the input value that kernel tap ``(u, v)`` of channel ``c``
    multiplies when the kernel sits at output position ``(i, j)``. Reshaped to
    ``(N, C*kh*kw, OH*OW)``, column ``i*OW + j`` of image ``n`` is the flattened window under
    output ``(i, j)``: the layout that turns convolution into ``weight @ columns``.

    It is filled one kernel tap at a time: for a fixed tap, the values it sees across all
    output positions form a strided slice of the input, so kh*kw slice copies build the whole
    array (25 copies for a 5x5 kernel, whatever the image size). ``out``, if given, is filled
    instead of a new array (a buffer reused from step to step, see ``layers.Conv2d``).
    """
    n, c = xp.shape[:2]
    kh, kw = kernel
    oh, ow = out_hw
    shape = (n, c, kh, kw, oh, ow)
    cols = out if out is not None and out.shape == shape and out.dtype == xp.dtype else np.empty(shape, xp.dtype)
    for u in range(kh):
        rows = _tap(u * dilation[0], oh, stride[0])
        for v in range(kw):
            cols[:, :, u, v] = xp[:, :, rows, _tap(v * dilation[1], ow, stride[1])]
    return cols


def col2im(
    cols: np.ndarray, padded_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column entry back where it was copied from.

    Input values that sit in several windows receive the sum of their column gradients. The
    loop runs over the kh*kw kernel taps and adds one strided slice per tap: within one tap the
    target positions are all distinct, so a plain vectorised ``+=`` is exact, and there are only
    kh*kw such adds. (Scattering every element with ``np.add.at`` gives the same result, but
    it works element by element to allow repeated targets: about 5-9x slower on LeNet's second
    convolution, see :func:`col2im_add_at` and ``bench/scratch.py``.) Returns the gradient of
    the padded input, (N, C, Hp, Wp).
    """
    n, c, kh, kw, oh, ow = cols.shape
    dxp = np.zeros((n, c, *padded_hw), dtype=cols.dtype)
    for u in range(kh):
        rows = _tap(u * dilation[0], oh, stride[0])
        for v in range(kw):
            dxp[:, :, rows, _tap(v * dilation[1], ow, stride[1])] += cols[:, :, u, v]
    return dxp


def col2im_add_at(
    cols: np.ndarray, padded_hw: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
) -> np.ndarray:
    """:func:`col2im` written as one scatter-add with index arrays (``np.add.at``).

    The most literal form ("each column entry goes back to input row r, column c") and the
    reference the per-tap version is checked and benchmarked against.
    """
    n, c, kh, kw, oh, ow = cols.shape
    u = np.arange(kh).reshape(kh, 1, 1, 1)
    v = np.arange(kw).reshape(1, kw, 1, 1)
    i = np.arange(oh).reshape(1, 1, oh, 1)
    j = np.arange(ow).reshape(1, 1, 1, ow)
    rows = np.broadcast_to(i * stride[0] + u * dilation[0], (kh, kw, oh, ow))
    columns = np.broadcast_to(j * stride[1] + v * dilation[1], (kh, kw, oh, ow))
    dxp = np.zeros((n, c, *padded_hw), dtype=cols.dtype)
    np.add.at(dxp, (slice(None), slice(None), rows, columns), cols)
    return dxp


# --------------------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------------------


def _check_conv(x: np.ndarray, weight: np.ndarray, groups: int) -> None:
    if x.ndim != 4 or weight.ndim != 4:
        raise CnnlabError(
            f"convolution needs an (N, C, H, W) input and an (O, C/groups, kh, kw) weight, got "
            f"{x.shape} and {weight.shape}"
        )
    out_channels, in_per_group = weight.shape[:2]
    if groups < 1 or out_channels % groups or x.shape[1] != in_per_group * groups:
        raise CnnlabError(
            f"input with {x.shape[1]} channels does not fit weight {weight.shape} with groups={groups}: "
            f"need C = groups * {in_per_group} and O divisible by groups"
        )


def conv2d_naive(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """Convolution (PyTorch's cross-correlation) by its definition, one placement at a time.

    out[n, o, i, j] = bias[o] + sum over (c, u, v) of
                      weight[o, c, u, v] * x_padded[n, g*Cg + c, i*sh + u*dh, j*sw + v*dw]
    where g is the group of output channel o and Cg the input channels per group.
    """
    _check_conv(x, weight, groups)
    stride, padding, dilation = conv_args(stride, padding, dilation)
    out_channels, in_per_group, kh, kw = weight.shape
    oh, ow = conv_output_hw(x.shape, (kh, kw), stride, padding, dilation)
    xp = _pad(x, padding)
    out_per_group = out_channels // groups
    out = np.zeros((x.shape[0], out_channels, oh, ow), dtype=np.result_type(x, weight))
    for n in range(x.shape[0]):  # every image
        for o in range(out_channels):  # every output channel (one kernel each)
            group = o // out_per_group
            channels = slice(group * in_per_group, (group + 1) * in_per_group)  # what kernel o sees
            for i in range(oh):  # every output row ...
                for j in range(ow):  # ... and column: one placement of the kernel
                    top, left = i * stride[0], j * stride[1]
                    # The input values under the kernel: kh x kw of them per channel, dilation
                    # apart (dilation 1: a contiguous block).
                    window = xp[
                        n,
                        channels,
                        top : top + dilation[0] * (kh - 1) + 1 : dilation[0],
                        left : left + dilation[1] * (kw - 1) + 1 : dilation[1],
                    ]
                    # The inner product: multiply matching entries, add them all up.
                    value = np.sum(window * weight[o])
                    if bias is not None:
                        value += bias[o]
                    out[n, o, i, j] = value
    return out


def conv2d_backward_naive(
    x: np.ndarray,
    weight: np.ndarray,
    grad_out: np.ndarray,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The backward pass read off the definition, placement by placement.

    Each output value was ``sum(window * kernel) + bias``, so its gradient g flows back as
    ``g * kernel`` into the window it read, ``g * window`` into the kernel and ``g`` into the
    bias. Returns (grad_x, grad_weight, grad_bias).
    """
    _check_conv(x, weight, groups)
    stride, padding, dilation = conv_args(stride, padding, dilation)
    out_channels, in_per_group, kh, kw = weight.shape
    oh, ow = conv_output_hw(x.shape, (kh, kw), stride, padding, dilation)
    xp = _pad(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(weight)
    db = np.zeros(out_channels, dtype=weight.dtype)
    out_per_group = out_channels // groups
    for n in range(x.shape[0]):
        for o in range(out_channels):
            group = o // out_per_group
            channels = slice(group * in_per_group, (group + 1) * in_per_group)
            for i in range(oh):
                for j in range(ow):
                    top, left = i * stride[0], j * stride[1]
                    rows = slice(top, top + dilation[0] * (kh - 1) + 1, dilation[0])
                    columns = slice(left, left + dilation[1] * (kw - 1) + 1, dilation[1])
                    g = grad_out[n, o, i, j]
                    dxp[n, channels, rows, columns] += g * weight[o]
                    dw[o] += g * xp[n, channels, rows, columns]
                    db[o] += g
    ph, pw = padding
    dx = dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]
    return dx, dw, db


def conv2d_im2col(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    cols_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Convolution as matrix products; returns (output, columns), the columns for the backward.

    Per image and group: ``weight (O/g, C/g*kh*kw) @ columns (C/g*kh*kw, OH*OW)``, done by one
    broadcasting ``np.matmul``. Keeping the image axis outside the product (rather than one big
    ``(O, K) @ (K, N*OH*OW)``) makes the result come out directly in NCHW order, with no
    transpose, and keeps each BLAS call small enough to stay on one thread, which is the fast
    choice for LeNet-sized layers on a busy two-core machine (see docs/scratch.md). ``cols_out``:
    a buffer of the columns' shape to fill instead of a new array.
    """
    _check_conv(x, weight, groups)
    stride, padding, dilation = conv_args(stride, padding, dilation)
    out_channels, in_per_group, kh, kw = weight.shape
    oh, ow = conv_output_hw(x.shape, (kh, kw), stride, padding, dilation)
    n = x.shape[0]
    cols = im2col(_pad(x, padding), (kh, kw), stride, dilation, (oh, ow), out=cols_out)
    k = in_per_group * kh * kw
    # (N, C, kh, kw, OH, OW) -> (N, groups, C/g*kh*kw, OH*OW): a free reshape, as C is outermost.
    cols_g = cols.reshape(n, groups, k, oh * ow)
    w_g = weight.reshape(groups, out_channels // groups, k)
    out = np.matmul(w_g, cols_g).reshape(n, out_channels, oh, ow)
    if bias is not None:
        out += bias.reshape(1, -1, 1, 1)
    return out, cols


def conv2d_im2col_backward(
    grad_out: np.ndarray,
    cols: np.ndarray,
    weight: np.ndarray,
    x_shape: Sequence[int],
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    need_input_grad: bool = True,
    grad_cols_out: np.ndarray | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of :func:`conv2d_im2col` from its saved columns: (grad_x, grad_weight, grad_bias).

    With out = W @ cols per image: grad_W = sum over images of grad_out @ cols^T, and
    grad_cols = W^T @ grad_out, which col2im folds back onto the input. ``need_input_grad=False``
    skips that last part (the first layer of a network has no use for it). ``grad_cols_out``: a
    buffer of the columns' shape for the column gradients, instead of a new array.
    """
    stride, padding, dilation = conv_args(stride, padding, dilation)
    out_channels = weight.shape[0]
    n, c, kh, kw, oh, ow = cols.shape
    k = (c // groups) * kh * kw
    g_out = np.ascontiguousarray(grad_out).reshape(n, groups, out_channels // groups, oh * ow)
    cols_g = cols.reshape(n, groups, k, oh * ow)
    grad_w = np.matmul(g_out, cols_g.transpose(0, 1, 3, 2)).sum(axis=0).reshape(weight.shape)
    grad_b = grad_out.sum(axis=(0, 2, 3))
    if not need_input_grad:
        return None, grad_w, grad_b
    w_g = weight.reshape(groups, out_channels // groups, k)
    dtype = np.result_type(w_g, g_out)
    if grad_cols_out is not None and grad_cols_out.shape == cols.shape and grad_cols_out.dtype == dtype:
        grad_cols = grad_cols_out
        np.matmul(w_g.transpose(0, 2, 1), g_out, out=grad_cols.reshape(cols_g.shape))
    else:
        grad_cols = np.matmul(w_g.transpose(0, 2, 1), g_out).reshape(cols.shape)
    ph, pw = padding
    h, w = x_shape[2], x_shape[3]
    dxp = col2im(grad_cols, (h + 2 * ph, w + 2 * pw), stride, dilation)
    return dxp[:, :, ph : ph + h, pw : pw + w], grad_w, grad_b


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


def _check_pool(kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> None:
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise CnnlabError(f"pooling needs kernel >= 1, stride >= 1, padding >= 0; got {kernel}, {stride}, {padding}")
    # PyTorch's rule: otherwise a window could lie wholly in the padding and pool nothing.
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise CnnlabError(f"pooling padding {padding} must be at most half the kernel {kernel}")


def maxpool2d(
    x: np.ndarray,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mode: PoolMode = "max",
) -> np.ndarray:
    """Max (or min) pooling, PyTorch's rules: padding is -inf for max (+inf for min), never wins.

    The windows are visited one kernel tap at a time: for a fixed tap, the values it sees at
    every output position form a strided slice of the input (as in :func:`im2col`), so the
    result is a running ``np.maximum`` over kh*kw slices, without copying windows out.
    """
    kernel = pair(kernel, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    _check_pool(kernel, stride, padding)
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding, dilation)
    xp = _pad(x, padding, -np.inf if mode == "max" else np.inf)
    keep = np.maximum if mode == "max" else np.minimum
    best = xp[:, :, _tap(0, oh, stride[0]), _tap(0, ow, stride[1])].copy()
    for u in range(kernel[0]):
        rows = _tap(u * dilation[0], oh, stride[0])
        for v in range(kernel[1]):
            if u or v:
                keep(best, xp[:, :, rows, _tap(v * dilation[1], ow, stride[1])], out=best)
    return best


def maxpool2d_backward(
    grad_out: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    mode: PoolMode = "max",
) -> np.ndarray:
    """Send each output's gradient to the input that won its window (given input and output).

    The winner is the first input of the window, in row-major order, equal to the output: the
    rule of PyTorch's kernels. Taps are visited in that order and a window, once served, is
    marked taken, so equal values later in the window get nothing.
    """
    kernel = pair(kernel, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    oh, ow = out.shape[2], out.shape[3]
    ph, pw = padding
    xp = _pad(x, padding, -np.inf if mode == "max" else np.inf)
    dxp = np.zeros(xp.shape, dtype=grad_out.dtype)
    open_windows = np.ones(out.shape, dtype=bool)
    # Windows that do not overlap (stride >= dilated kernel, the usual 2x2/2 pool) never send two
    # gradients to one input, so each tap can write its slice instead of adding to it.
    disjoint = all(s >= d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation, strict=True))
    for u in range(kernel[0]):
        rows = _tap(u * dilation[0], oh, stride[0])
        for v in range(kernel[1]):
            target = (slice(None), slice(None), rows, _tap(v * dilation[1], ow, stride[1]))
            hit = np.equal(xp[target], out)
            hit &= open_windows
            open_windows ^= hit  # hit is a subset of the open windows: this closes them
            if disjoint:
                np.multiply(grad_out, hit, out=dxp[target])
            else:
                dxp[target] += grad_out * hit
    return dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]]


def _avg_divisor(
    x_shape: Sequence[int], kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
    out_hw: tuple[int, int], count_include_pad: bool, dtype: np.dtype,
) -> np.ndarray | float:
    if count_include_pad or padding == (0, 0):
        return float(kernel[0] * kernel[1])
    # How many real (non-padding) inputs each window covers: pool a map of ones padded with zeros.
    ones = _pad(np.ones((1, 1, x_shape[2], x_shape[3]), dtype=dtype), padding)
    counts = im2col(ones, kernel, stride, (1, 1), out_hw).sum(axis=(2, 3))
    return counts.reshape(1, 1, *out_hw)


def avgpool2d(
    x: np.ndarray,
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Average pooling, PyTorch's convention: zero padding, counted in the divisor by default."""
    kernel = pair(kernel, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding")
    _check_pool(kernel, stride, padding)
    oh, ow = conv_output_hw(x.shape, kernel, stride, padding, (1, 1))
    cols = im2col(_pad(x, padding), kernel, stride, (1, 1), (oh, ow))
    divisor = _avg_divisor(x.shape, kernel, stride, padding, (oh, ow), count_include_pad, x.dtype)
    return (cols.sum(axis=(2, 3)) / divisor).astype(x.dtype, copy=False)


def avgpool2d_backward(
    grad_out: np.ndarray,
    x_shape: Sequence[int],
    kernel: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    count_include_pad: bool = True,
) -> np.ndarray:
    """Every input of a window gets an equal share (1/divisor) of the window's gradient."""
    kernel = pair(kernel, "kernel_size")
    stride = kernel if stride is None else pair(stride, "stride")
    padding = pair(padding, "padding")
    out_hw = grad_out.shape[2], grad_out.shape[3]
    divisor = _avg_divisor(x_shape, kernel, stride, padding, out_hw, count_include_pad, grad_out.dtype)
    share = (grad_out / divisor).astype(grad_out.dtype, copy=False)
    cols = np.broadcast_to(share[:, :, None, None], (*share.shape[:2], *kernel, *out_hw))
    ph, pw = padding
    h, w = x_shape[2], x_shape[3]
    dxp = col2im(cols, (h + 2 * ph, w + 2 * pw), stride, (1, 1))
    return dxp[:, :, ph : ph + h, pw : pw + w]


# --------------------------------------------------------------------------------------
# Softmax and cross-entropy
# --------------------------------------------------------------------------------------


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(z - max) / sum(exp(z - max)): subtracting the max keeps exp from overflowing."""
    shifted = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of softmax(logits) against integer labels, and its gradient.

    loss = mean over rows of (log sum_k exp(z_k) - z_label); d loss / d z = (softmax(z) -
    one_hot(label)) / N, the famously simple gradient of this pair.
    """
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise CnnlabError(f"cross-entropy needs (N, K) logits and N labels, got {logits.shape} and {labels.shape}")
    labels = labels.astype(np.intp, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise CnnlabError(f"labels must lie in 0..{logits.shape[1] - 1}")
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(n)
    loss = float(np.mean(log_sum - shifted[rows, labels]))
    grad = np.exp(shifted - log_sum[:, None])
    grad[rows, labels] -= 1.0
    grad /= n
    return loss, grad
