"""LeNet, AlexNet, VGG, NiN and GoogLeNet: torchvision compatibility, published numbers, and
forward/backward/torch.fx for every registered model of these families.

Each published number is checked with its source (paper, section or table) and the hand sum
next to it; where a paper's own number disagrees with the architecture it describes, the test
pins both and the docs (docs/models/<family>.md) explain the difference.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.fx
import torchvision
from torch import nn

# Importing a family registers its models (the registry's loader does this once it lists them).
import cnnlab.models.alexnet
import cnnlab.models.googlenet
import cnnlab.models.lenet
import cnnlab.models.nin
import cnnlab.models.vgg
from cnnlab.errors import CnnlabError
from cnnlab.layers.common import ConvNormAct, MinPool2d
from cnnlab.layers.inception import Inception
from cnnlab.models import create_model, list_models, model_info
from cnnlab.models.googlenet import GoogLeNet, GoogLeNetOutputs
from cnnlab.models.lenet import C3_TABLE, ScaledTanh, Subsampling

FAMILIES = ("lenet", "alexnet", "vgg", "nin", "googlenet")
MODELS = [n for n in list_models() if model_info(n).family in FAMILIES]
COMPAT = [n for n in MODELS if model_info(n).torchvision is not None]
# ImageNet-family models take small_input (3x3 stride-1 stem, no first pool).
SMALL_STEM = {n for n in MODELS if model_info(n).family in ("alexnet", "vgg", "googlenet")}
SMALL_STEM.add("nin")
HEAVY = {n for n in MODELS if model_info(n).family == "vgg"} | {"googlenet", "googlenet_paper"}
# VGG's 120M-parameter classifier makes each build and backward pass cost seconds; the default
# run keeps one VGG per code path (plain, batch norm, LRN, 1x1 convs), the rest are slow.
SLOW_SMALL = {"vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"}


def _params(names: list[str], slow: set[str]) -> list[Any]:
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


def n_params(module: nn.Module, trainable: bool | None = None) -> int:
    return sum(
        p.numel() for p in module.parameters() if trainable is None or p.requires_grad == trainable
    )


def test_registered_names() -> None:
    expected = {
        "lenet5", "lenet5_paper", "alexnet", "alexnet_paper", "nin", "nin_cifar",
        "googlenet", "googlenet_paper", "vgg11_lrn", "vgg16_c",
        *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    }  # fmt: skip
    assert set(MODELS) == expected
    for name in MODELS:
        info = model_info(name)
        assert info.description and info.paper and len(info.default_input) == 3
        if info.torchvision is not None:
            assert info.torchvision == name and hasattr(torchvision.models, name)


# --------------------------------------------------------------------------- shared layers


def test_conv_norm_act_defaults_and_names() -> None:
    block = ConvNormAct(3, 8, 5)
    assert [n for n, _ in block.named_children()] == ["conv", "bn", "act"]
    assert block.conv.padding == (2, 2) and block.conv.bias is None  # normed: no bias
    plain = ConvNormAct(3, 8, 3, norm=False, act=False)
    assert [n for n, _ in plain.named_children()] == ["conv"] and plain.conv.bias is not None
    dilated = ConvNormAct(3, 8, 3, dilation=2, norm=_group_norm)
    assert dilated.conv.padding == (2, 2) and "norm" in dict(dilated.named_children())
    x = torch.randn(2, 3, 9, 9)
    assert dilated(x).shape == (2, 8, 9, 9)
    assert ConvNormAct(3, 8, 3, stride=2, groups=1, act=nn.Tanh)(x).shape == (2, 8, 5, 5)
    assert ConvNormAct(4, 8, 3, groups=2, bias=True).conv.bias is not None


def _group_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(2, channels)


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "ceil_mode"),
    [(2, None, 0, False), (3, 2, 1, True), (3, 1, 1, False), (2, 2, 0, True)],
)
def test_min_pool_is_the_minimum(
    kernel: int, stride: int | None, padding: int, ceil_mode: bool
) -> None:
    x = torch.randn(2, 3, 7, 7)
    pool = MinPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    out = pool(x)
    twin = nn.MaxPool2d(kernel, stride, padding, ceil_mode=ceil_mode)
    assert out.shape == twin(x).shape
    # Reference: pad with +inf (never the minimum) and take the minimum of every full window.
    step = stride or kernel
    padded = nn.functional.pad(x, (padding,) * 4, value=math.inf)
    windows = padded.unfold(2, kernel, step).unfold(3, kernel, step).amin((-1, -2))
    h, w = windows.shape[-2:]
    torch.testing.assert_close(out[..., :h, :w], windows)
    if out.shape[-1] > w:  # ceil mode's partial window at the corner holds x[..., 6, 6] alone
        torch.testing.assert_close(out[..., -1, -1], x[..., 6, 6])
    values, idx = MinPool2d(kernel, stride, padding, return_indices=True, ceil_mode=ceil_mode)(x)
    torch.testing.assert_close(values, out)
    torch.testing.assert_close(x.flatten(2).gather(2, idx.flatten(2)).view_as(values), values)
    assert repr(pool) == "Min" + repr(twin)[len("Max") :]


def test_inception_block_channels_and_kernels() -> None:
    paper = Inception(192, 64, 96, 128, 16, 32, 32)
    tv_form = Inception(192, 64, 96, 128, 16, 32, 32, norm=True, wide_kernel=3)
    assert paper.out_channels == 256
    assert paper.branch3[1].conv.kernel_size == (5, 5)
    assert tv_form.branch3[1].conv.kernel_size == (3, 3)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in paper.modules())
    x = torch.randn(1, 192, 8, 8)
    assert paper(x).shape == tv_form(x).shape == (1, 256, 8, 8)


# --------------------------------------------------------------------- torchvision compatibility


def _torchvision(name: str) -> nn.Module:
    kwargs: dict[str, Any] = {"weights": None}
    if name == "googlenet":
        kwargs.update(aux_logits=True, init_weights=False)  # init_weights given: no FutureWarning
    elif name.startswith("vgg"):
        kwargs["init_weights"] = False  # PyTorch's default init is random enough, and faster
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(**kwargs)


def _randomise_norm_stats(model: nn.Module) -> None:
    # Fresh BN layers are the identity in eval mode; random statistics make the check bite.
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


# torchvision's published parameter counts (the weights' meta["num_params"]); GoogLeNet's is
# without the auxiliary heads, which its released weights do not include.
TV_NUM_PARAMS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg13": 133_047_848,
    "vgg13_bn": 133_053_736,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "vgg19": 143_667_240,
    "vgg19_bn": 143_678_248,
    "googlenet": 6_624_904,
}


@pytest.mark.parametrize("name", COMPAT)
def test_torchvision_state_dict_loads_and_matches(name: str) -> None:
    theirs = _torchvision(name)
    _randomise_norm_stats(theirs)
    ref = theirs.state_dict()
    # Built on the meta device (no init cost), then given torchvision's tensors.
    with torch.device("meta"):
        ours = create_model(name)
        no_aux = create_model(name, aux_logits=False) if name == "googlenet" else ours
        small = create_model(name, in_channels=1, small_input=True)
    shapes = {k: v.shape for k, v in ours.state_dict().items()}
    assert shapes == {k: v.shape for k, v in ref.items()}
    assert n_params(ours) == n_params(theirs)
    assert n_params(no_aux) == TV_NUM_PARAMS[name]
    # A changed stem (1 input channel, small-input first conv) keeps every other layer's keys
    # and shapes: only the first convolution differs.
    small_shapes = {k: v.shape for k, v in small.state_dict().items()}
    assert small_shapes.keys() == shapes.keys()
    assert {k for k in shapes if small_shapes[k] != shapes[k]} == {_first_conv_weight(name)}

    ours.load_state_dict(ref, strict=True, assign=True)
    ours.eval()
    theirs.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)

    if name == "googlenet":
        # Training mode: same (logits, aux_logits2, aux_logits1); dropout off so both agree.
        for m in [*ours.modules(), *theirs.modules()]:
            if isinstance(m, nn.Dropout):
                m.p = 0.0
        ours.train()
        theirs.train()
        x = torch.randn(2, 3, 224, 224)
        with torch.no_grad():
            got, want = ours(x), theirs(x)
        assert isinstance(got, GoogLeNetOutputs) and got._fields == want._fields
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        # transform_input is torchvision's arithmetic too.
        theirs.transform_input = True
        torch.testing.assert_close(ours._transform(x), theirs._transform_input(x))


def _first_conv_weight(name: str) -> str:
    return "conv1.conv.weight" if name == "googlenet" else "features.0.weight"


# ------------------------------------------------------------------ every model: fwd/bwd/fx


def _small_cases(name: str) -> list[tuple[dict[str, Any], tuple[int, int, int]]]:
    """(builder overrides, input C x H x W) at 28x28 with 1 channel and 32x32 with 3."""
    if name == "lenet5":
        return [({"padding": 2}, (1, 28, 28)), ({"padding": 0}, (3, 32, 32))]
    if name == "lenet5_paper":  # defined on 32x32 only (C5 must see 5x5 maps)
        return [({}, (1, 32, 32)), ({"output": "linear"}, (3, 32, 32))]
    if name == "nin_cifar":
        return [({}, (1, 28, 28)), ({}, (3, 32, 32))]
    assert name in SMALL_STEM
    return [({"small_input": True}, (1, 28, 28)), ({"small_input": True}, (3, 32, 32))]


@pytest.mark.parametrize("name", _params(MODELS, SLOW_SMALL))
def test_forward_backward_fx_small_input(name: str) -> None:
    """1 x 28 x 28 (3 x 32 x 32 for the paper's LeNet): train step, then torch.fx in both modes."""
    torch.manual_seed(0)
    overrides, (c, h, w) = _small_cases(name)[0]
    model = create_model(name, num_classes=7, in_channels=c, **overrides)
    x = torch.randn(2, c, h, w)
    out = model.train()(x)
    logits = out.logits if isinstance(out, GoogLeNetOutputs) else out
    assert logits.shape == (2, 7)
    loss = logits.square().mean()
    if isinstance(out, GoogLeNetOutputs):
        assert out.aux_logits1 is not None and out.aux_logits2 is not None
        assert out.aux_logits1.shape == out.aux_logits2.shape == (2, 7)
        loss = loss + GoogLeNet.aux_weight * (out.aux_logits1.mean() + out.aux_logits2.mean())
    loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)
    assert torch.isfinite(trainable[0].grad).all() and torch.isfinite(trainable[-1].grad).all()

    model.eval()
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
    torch.fx.symbolic_trace(model.train())  # the training graph (aux heads) traces too


@pytest.mark.parametrize("name", _params(MODELS, SLOW_SMALL))
def test_small_input_rgb(name: str) -> None:
    """3 x 32 x 32 (CIFAR size) with the small-input stem: eval forward, output shape."""
    overrides, (c, h, w) = _small_cases(name)[1]
    model = create_model(name, num_classes=7, in_channels=c, **overrides).eval()
    with torch.no_grad():
        assert model(torch.randn(2, c, h, w)).shape == (2, 7)


def _default_case(name: str) -> tuple[int, int, int]:
    return model_info(name).default_input


@pytest.mark.parametrize("name", _params(MODELS, HEAVY))
def test_default_input_forward_backward(name: str) -> None:
    model = create_model(name, num_classes=5)
    model.train()
    out = model(torch.randn(2, *_default_case(name)))
    logits = out.logits if isinstance(out, GoogLeNetOutputs) else out
    assert logits.shape == (2, 5)
    logits.sum().backward()
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, *_default_case(name)))
    assert isinstance(out, torch.Tensor) and out.shape == (1, 5)


# ------------------------------------------------------------------------------------ LeNet


# LeCun et al. 1998, Table I, rows = S2 maps 0-5, columns = C3 maps 0-15, "X" = connected.
TABLE_I = (
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)


def test_lenet5_paper_parameter_counts() -> None:
    """LeCun et al. 1998, Section II.B, the trainable parameters of each layer:

    C1: 6 maps x (5*5*1 + 1)                                  = 156
    S2: 6 maps x (1 coefficient + 1 bias)                     = 12
    C3: 6 x (3*25 + 1) + 9 x (4*25 + 1) + 1 x (6*25 + 1)      = 456 + 909 + 151 = 1,516
    S4: 16 maps x 2                                           = 32
    C5: 120 x (16*25 + 1)                                     = 48,120
    F6: 84 x (120 + 1)                                        = 10,164
    sum C1..F6                                                = 60,000
    The output layer's RBF parameters (84 x 10) are fixed in the paper, not trained.
    """
    model = create_model("lenet5_paper", num_classes=10, in_channels=1)
    per_layer = {name: n_params(getattr(model, name), trainable=True) for name in
                 ("c1", "s2", "c3", "s4", "c5", "f6")}  # fmt: skip
    assert per_layer == {"c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164}
    assert n_params(model, trainable=True) == 60_000
    assert n_params(model.output, trainable=True) == 0
    assert n_params(model.output, trainable=False) == 84 * 10
    # With a trainable linear output instead, its 84*10 + 10 parameters come on top.
    linear = create_model("lenet5_paper", num_classes=10, in_channels=1, output="linear")
    assert n_params(linear, trainable=True) == 60_000 + 850


def test_lenet5_paper_connection_table_and_units() -> None:
    model = create_model("lenet5_paper", num_classes=10, in_channels=1)
    connected = model.c3.dense_weight().abs().sum((2, 3)) != 0  # (16 out, 6 in)
    expected = torch.tensor([[ch == "X" for ch in row] for row in TABLE_I]).T
    assert torch.equal(connected, expected)
    assert sorted(len(t) for t in C3_TABLE) == [3] * 6 + [4] * 9 + [6]
    # Appendix A: f(a) = 1.7159 tanh(2a/3) has f(1) = 1 and f(-1) = -1.
    f = ScaledTanh()
    ones = torch.tensor([1.0, -1.0])
    torch.testing.assert_close(f(ones), ones, atol=1e-4, rtol=0)
    # S2: coefficient * (sum of the 2x2 inputs) + bias, per map.
    sub = Subsampling(2)
    with torch.no_grad():
        sub.weight.copy_(torch.tensor([0.5, -1.0]))
        sub.bias.copy_(torch.tensor([0.1, 0.2]))
    x = torch.arange(32.0).view(1, 2, 4, 4)
    want = torch.nn.functional.avg_pool2d(x, 2) * 4 * torch.tensor([0.5, -1.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(sub(x), want + torch.tensor([0.1, 0.2]).view(1, 2, 1, 1))
    # Feature-map sizes of Fig. 2: 32 -> C1 28 -> S2 14 -> C3 10 -> S4 5 -> C5 1.
    x = torch.randn(1, 1, 32, 32)
    assert model.c1(x).shape == (1, 6, 28, 28)
    assert model.c3(torch.randn(1, 6, 14, 14)).shape == (1, 16, 10, 10)


def test_lenet5_modern_counts_and_options() -> None:
    # 6*(25+1) + 16*(6*25+1) + 120*(400+1) + 84*(120+1) + 10*(84+1) = 61,706
    assert n_params(create_model("lenet5", num_classes=10, in_channels=1)) == 61_706
    with pytest.raises(CnnlabError):
        create_model("lenet5", num_classes=10, in_channels=1, act="gelu")


# ---------------------------------------------------------------------------------- AlexNet


def test_alexnet_paper_parameters() -> None:
    """Krizhevsky et al. 2012, Section 3.5 / Fig. 2 architecture, counted by hand:

    conv1 96 x (11*11*3) + 96          =     34,944
    conv2 256 x (5*5*48) + 256         =    307,456  (groups=2: each kernel sees 48 maps)
    conv3 384 x (3*3*256) + 384        =    885,120  (crosses the GPUs)
    conv4 384 x (3*3*192) + 384        =    663,936
    conv5 256 x (3*3*192) + 256        =    442,624
    fc6   4096 x 9216 + 4096           = 37,752,832
    fc7   4096 x 4096 + 4096           = 16,781,312
    fc8   1000 x 4096 + 1000           =  4,097,000
    total                              = 60,965,224
    The abstract says "60 million parameters": the exact count is 60.97 million, so the paper's
    figure is rounded down (to 61 million it would round up).
    """
    model = create_model("alexnet_paper")
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert [n_params(m) for m in layers] == [
        34_944, 307_456, 885_120, 663_936, 442_624, 37_752_832, 16_781_312, 4_097_000,
    ]  # fmt: skip
    assert n_params(model) == 60_965_224
    assert 60_000_000 <= n_params(model) < 61_000_000
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(3, 2)] * 3  # overlapping pooling
    # Section 5: biases 1 in conv2, conv4, conv5, fc6, fc7; 0 in conv1, conv3, fc8.
    biases = [float(m.bias.detach().mean()) for m in layers]
    assert biases == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    drops = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.Dropout)]
    assert drops == [2, 5] and all(model.classifier[i].p == 0.5 for i in drops)


def test_alexnet_paper_neurons() -> None:
    """Fig. 2's caption lists the neurons per layer: 253,440-186,624-64,896-64,896-43,264-4096-
    4096-1000, and the abstract says 650,000 neurons. With a 227x227 input, conv1 has
    55*55*96 = 290,400 neurons, not 253,440 (the only entry that disagrees with the layer the
    paper describes); the total over the 8 layers is 659,272."""
    model = create_model("alexnet_paper").eval()
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out[0].numel()))
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, 227, 227))
    for h in hooks:
        h.remove()
    assert sizes == [290_400, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert sum(sizes) == 659_272


def test_alexnet_paper_lrn_constant() -> None:
    """Section 3.3: b = a / (k + alpha * sum over 5 neighbouring maps of a^2)^beta, k=2,
    alpha=1e-4, beta=0.75 (nn.LocalResponseNorm divides alpha by n, so it is given 5e-4)."""
    lrn = cnnlab.models.alexnet.paper_lrn()
    a = torch.randn(1, 9, 3, 3) * 30
    sq = a.square()
    sums = torch.stack([sq[:, max(0, i - 2) : min(9, i + 3)].sum(1) for i in range(9)], 1)
    want = a / (2.0 + 1e-4 * sums) ** 0.75
    torch.testing.assert_close(lrn(a), want)


def test_alexnet_torchvision_form_differences() -> None:
    model = create_model("alexnet")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 192, 384, 256, 256]
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    assert all(c.groups == 1 for c in convs)


# -------------------------------------------------------------------------------------- VGG


# Simonyan & Zisserman 2015, Table 2, "Number of parameters (in millions)".
VGG_TABLE_2 = {
    "vgg11": 133, "vgg11_lrn": 133, "vgg13": 133, "vgg16_c": 134, "vgg16": 138, "vgg19": 144,
}  # fmt: skip
# Exact counts (1000 classes). D by hand: convs 14,714,688 (sum of 9*cin*cout + cout over the
# 13 layers) + fc 102,764,544 + 16,781,312 + 4,097,000 = 138,357,544. C replaces three 3x3
# convs of D with 1x1: 8 * (256^2 + 2 * 512^2) = 4,718,592 fewer = 133,638,952.
VGG_EXACT = {
    "vgg11": 132_863_336, "vgg11_lrn": 132_863_336, "vgg13": 133_047_848,
    "vgg16_c": 133_638_952, "vgg16": 138_357_544, "vgg19": 143_667_240,
}  # fmt: skip


@pytest.mark.parametrize("name", list(VGG_TABLE_2))
def test_vgg_parameter_counts_table_2(name: str) -> None:
    with torch.device("meta"):  # counting needs shapes only
        model = create_model(name)
    assert n_params(model) == VGG_EXACT[name]
    assert round(n_params(model) / 1e6) == VGG_TABLE_2[name]


def test_vgg_configuration_c_and_a_lrn() -> None:
    with torch.device("meta"):
        c = create_model("vgg16_c")
        a_lrn = create_model("vgg11_lrn")
    kernels = [m.kernel_size[0] for m in c.features if isinstance(m, nn.Conv2d)]
    assert kernels == [3, 3, 3, 3, 3, 3, 1, 3, 3, 1, 3, 3, 1]
    kinds = [type(m).__name__ for m in a_lrn.features[:4]]
    assert kinds == ["Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d"]


# -------------------------------------------------------------------------------------- NiN


def test_nin_structure_and_counts() -> None:
    """The NiN paper publishes no parameter counts; these are the hand sums of the widths
    documented in docs/models/nin.md (conv: k*k*cin*cout + cout)."""
    model = create_model("nin")
    assert not any(isinstance(m, nn.Linear) for m in model.modules())  # no fully connected layer
    # ImageNet: 34,944 + 2*9,312 | 614,656 + 2*65,792 | 885,120 + 2*147,840 |
    #           3,539,968 + 1,049,600 + 1,025,000 = 7,595,176
    assert n_params(model) == 7_595_176
    # CIFAR-10: 14,592 + 30,880 + 15,456 | 460,992 + 2*37,056 | 331,968 + 37,056 + 1,930
    assert n_params(create_model("nin_cifar", num_classes=10)) == 966_986
    sizes: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(out.shape[-1]))
        for m in model.features
        if isinstance(m, nn.MaxPool2d)
    ]
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    assert sizes == [27, 13, 6]  # conv1 gives 54; the released model pools to 6x6 at the end


# -------------------------------------------------------------------------------- GoogLeNet


# Szegedy et al. 2015, Table 1: (row, output size, params column, ops column) as printed;
# params in K, ops in M. The params column counts weights without biases and uses K = 1024.
TABLE_1 = [
    ("conv1", (64, 112, 112), 2.7, 34),
    ("conv2+conv3", (192, 56, 56), 112, 360),
    ("inception3a", (256, 28, 28), 159, 128),
    ("inception3b", (480, 28, 28), 380, 304),
    ("inception4a", (512, 14, 14), 364, 73),
    ("inception4b", (512, 14, 14), 437, 88),
    ("inception4c", (512, 14, 14), 463, 100),
    ("inception4d", (528, 14, 14), 580, 119),
    ("inception4e", (832, 14, 14), 840, 170),
    ("inception5a", (832, 7, 7), 1072, 54),
    ("inception5b", (1024, 7, 7), 1388, 71),
    ("fc", (1000,), 1000, 1),
]
# The same rows counted from the filter columns of Table 1 (weights only), e.g. 3a:
# 192*64 + 192*96 + 9*96*128 + 192*16 + 25*16*32 + 192*32 = 163,328.
EXACT_WEIGHTS = [
    9_408, 114_688, 163_328, 388_096, 375_552, 448_512,
    509_440, 604_672, 867_328, 1_042_432, 1_442_816, 1_024_000,
]  # fmt: skip


def test_googlenet_paper_against_table_1() -> None:
    model = create_model("googlenet_paper").eval()
    rows = {
        "conv1": [model.conv1], "conv2+conv3": [model.conv2, model.conv3],
        **{name: [getattr(model, name)] for name, *_ in TABLE_1[2:]},
    }  # fmt: skip
    outputs: dict[str, tuple[int, ...]] = {}
    macs: dict[str, int] = {}
    hooks = []
    for name, modules in rows.items():
        macs[name] = 0
        hooks.append(modules[-1].register_forward_hook(
            lambda _m, _i, out, name=name: outputs.__setitem__(name, tuple(out.shape[1:]))
        ))  # fmt: skip
        for layer in (m for mod in modules for m in mod.modules()):
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                hooks.append(layer.register_forward_hook(
                    lambda m, _i, out, name=name: macs.__setitem__(
                        name, macs[name] + out[0].numel() * m.weight[0].numel()
                    )
                ))  # fmt: skip
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    for h in hooks:
        h.remove()

    weights = [
        sum(p.numel() for m in rows[name] for n, p in m.named_parameters() if n.endswith("weight"))
        for name, *_ in TABLE_1
    ]
    assert weights == EXACT_WEIGHTS
    for (name, size, _params_k, ops_m), w in zip(TABLE_1, weights, strict=True):
        assert outputs[name] == size, name
        assert macs[name] == w * math.prod(size[1:]), name  # each weight used once per position
        if name in ("conv1", "inception5a"):
            continue  # the two rows whose ops entry disagrees (docs/models/googlenet.md)
        assert abs(macs[name] / 1e6 - ops_m) <= max(1.0, 0.01 * ops_m), name
    # Rows where the params column disagrees with the filter columns: conv1 (9.2K vs 2.7K),
    # 4c (497.5K vs 463K), 5a (1018K vs 1072K). The column total is still close:
    column_total_k = sum(p for _, _, p, _ in TABLE_1)
    assert column_total_k == pytest.approx(6797.7)
    assert sum(weights) / 1024 == pytest.approx(6826.4375)
    assert abs(sum(weights) / 1024 - column_total_k) / column_total_k < 0.005
    # With biases and without the auxiliary heads: 6,998,552 ("about 7M").
    assert n_params(create_model("googlenet_paper", aux_logits=False)) == 6_998_552
    assert weights[1] / 1024 == 112 and weights[-1] / 1024 == 1000


def test_googlenet_paper_structure() -> None:
    model = create_model("googlenet_paper")
    assert GoogLeNet.aux_weight == 0.3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.modules()) == 2
    wide = [m.branch3[1].conv.kernel_size for m in model.modules() if isinstance(m, Inception)]
    assert wide == [(5, 5)] * 9
    assert model.dropout.p == 0.4
    for aux in (model.aux1, model.aux2):
        assert aux is not None and aux.dropout.p == 0.7
        assert isinstance(aux.pool, nn.AvgPool2d)
        assert (aux.pool.kernel_size, aux.pool.stride) == (5, 3)
        assert aux.conv.conv.out_channels == 128 and aux.fc1.out_features == 1024
    assert model.maxpool4.kernel_size == 3
    tv_form = create_model("googlenet")
    assert tv_form.maxpool4.kernel_size == 2
    wide = [m.branch3[1].conv.kernel_size for m in tv_form.modules() if isinstance(m, Inception)]
    assert wide == [(3, 3)] * 9
    with pytest.raises(CnnlabError):
        create_model("googlenet", in_channels=1, transform_input=True)


def test_googlenet_output_types() -> None:
    model = create_model("googlenet_paper", num_classes=3, small_input=True)
    x = torch.randn(2, 3, 32, 32)
    out = model.train()(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert isinstance(model.eval()(x), torch.Tensor)
    no_aux = create_model("googlenet", num_classes=3, small_input=True, aux_logits=False)
    assert isinstance(no_aux.train()(x), torch.Tensor) and no_aux.aux1 is None
