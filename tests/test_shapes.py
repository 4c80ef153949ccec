"""cnnlab.shapes: the study-note examples worked by hand, and PyTorch as the independent judge."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab import shapes
from cnnlab.errors import CnnlabError

# --------------------------------------------------------------------------------------
# The classic hand calculations
# --------------------------------------------------------------------------------------


def test_alexnet_conv1_output_and_parameters() -> None:
    # (227 + 2*0 - 11)/4 + 1 = 55; weights 11*11*3*96 = 34,848, plus 96 biases = 34,944.
    r = shapes.conv((3, 227, 227), 96, 11, stride=4)
    assert r.output_shape == (96, 55, 55)
    assert r.weight_params == 34_848
    assert r.params == 34_944
    assert r.macs == 96 * 55 * 55 * 3 * 11 * 11
    assert "OH = floor((227 + 2*0 - 1*(11-1) - 1)/4) + 1 = 55" in r.lines


def test_five_by_five_input_with_three_by_three_kernel() -> None:
    assert shapes.conv((1, 5, 5), 1, 3).output_shape == (1, 3, 3)  # 5 - 3 + 1
    assert shapes.conv((1, 5, 5), 1, 3, padding=1).output_shape == (1, 5, 5)  # 5 + 2 - 3 + 1


def test_three_stacked_three_by_three_have_receptive_field_seven() -> None:
    s = shapes.stack((1, 32, 32), ["conv 1 k3", "conv 1 k3", "conv 1 k3"])
    assert s.receptive_field.size == (1 + 3 * (3 - 1),) * 2 == (7, 7)
    assert [r.receptive_field.size[0] for r in s.rows] == [3, 5, 7]


def test_two_three_by_three_against_one_five_by_five_at_128_channels() -> None:
    two = shapes.stack((128, 32, 32), ["conv 128 k3 p1 nobias", "conv 128 k3 p1 nobias"])
    one = shapes.stack((128, 32, 32), ["conv 128 k5 p2 nobias"])
    assert two.params == 2 * 3 * 3 * 128 * 128 == 294_912
    assert one.params == 5 * 5 * 128 * 128 == 409_600
    assert two.receptive_field.size == one.receptive_field.size == (5, 5)


def test_one_by_one_reduction_saves_weights() -> None:
    reduced = shapes.stack((128, 28, 28), ["conv 32 k1 nobias", "conv 128 k3 p1 nobias"])
    direct = shapes.conv((128, 28, 28), 128, 3, padding=1, bias=False)
    assert reduced.params == 128 * 32 + 3 * 3 * 32 * 128 == 40_960
    assert direct.params == 3 * 3 * 128 * 128 == 147_456


def test_torch_size_after_each_layer_of_a_small_network() -> None:
    s = shapes.stack((1, 28, 28), ["conv 32 k5", "pool k2", "conv 64 k5 p2", "pool k2", "flatten", "fc 128", "fc 10"])
    assert [r.layer.output_shape for r in s.rows] == [
        (32, 24, 24), (32, 12, 12), (64, 12, 12), (64, 6, 6), (2304,), (128,), (10,)
    ]
    # 32*(5*5*1+1) + 64*(5*5*32+1) + 128*(2304+1) + 10*(128+1)
    assert s.params == 832 + 51_264 + 295_040 + 1_290


def test_vgg16_receptive_field_at_last_pool_is_212() -> None:
    # Araujo et al. (Distill 2019) list VGG-16's receptive field as 212 at pool5.
    layers = []
    for n, c in ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)):
        layers += [f"conv {c} k3 p1"] * n + ["pool k2"]
    s = shapes.stack((3, 224, 224), layers)
    assert s.receptive_field.size == (212, 212)
    assert s.receptive_field.stride == (32, 32)
    assert s.output_shape == (512, 7, 7)


def test_stride_that_does_not_divide_is_legal_but_explained() -> None:
    r = shapes.conv((1, 7, 7), 1, 3, stride=3)
    assert r.output_shape == (1, 2, 2)
    assert any("1 input row is never covered" in n for n in r.notes)
    assert not shapes.conv((1, 7, 7), 1, 3, stride=2).notes


def test_dilation_with_stride_can_skip_rows_in_the_middle() -> None:
    # kernel 2, dilation 2, stride 4 on 8: windows read rows {0,2} and {4,6}; 1,3,5,7 are never read.
    r = shapes.conv((1, 8, 8), 1, 2, stride=4, dilation=2)
    assert r.output_shape == (1, 2, 2)
    assert any("4 input rows are never covered" in n for n in r.notes)


def test_same_padding_with_even_kernel_pads_more_after() -> None:
    r = shapes.conv((1, 10, 10), 1, 4, padding="same")
    assert r.output_shape == (1, 10, 10)
    assert r.rf_padding == (1, 1)
    assert "OH = floor((10 + 1+2 - 1*(4-1) - 1)/1) + 1 = 10" in r.lines


def test_pool_ceil_mode_drops_a_window_that_starts_in_padding() -> None:
    # ceil((5 + 2 - 2 - 1)/2) + 1 = 3, but window 3 would start at 4 >= 5 + 1? no: (3-1)*2 = 4 < 6: kept.
    assert shapes.pool((1, 5, 5), 2, 2, padding=1, ceil_mode=True).output_shape == (1, 3, 3)
    # ceil((4 + 2 - 2 - 1)/2) + 1 = 3 and (3-1)*2 = 4 >= 4 + 1? no -> 3; with stride 3:
    # ceil((4 + 2 - 2 - 1)/3) + 1 = 2, (2-1)*3 = 3 < 5 -> kept.
    r = shapes.pool((1, 6), 3, 2, padding=1, ceil_mode=True)
    assert r.output_shape == (1, 4)
    assert torch.nn.MaxPool1d(3, 2, 1, ceil_mode=True)(torch.zeros(1, 1, 6)).shape[-1] == 4


def test_global_and_adaptive_pooling() -> None:
    assert shapes.global_pool((512, 7, 7)).output_shape == (512, 1, 1)
    a = shapes.adaptive_pool((256, 13, 13), 6)
    assert a.output_shape == (256, 6, 6)
    # window i spans floor(i*13/6) .. ceil((i+1)*13/6) - 1: 0-2, 2-4, 4-6, 6-8, 8-10, 10-12: all 3 wide
    assert a.rf_kernel == (3, 3)
    # 13 -> 5: 0-2, 2-5, 5-7, 7-10, 10-12: widths 3 and 4
    assert shapes.adaptive_pool((256, 13, 13), 5).rf_kernel == (4, 4)
    assert shapes.adaptive_pool((8, 12, 12), 6).rf_kernel == (2, 2)


def test_receptive_field_with_dilation_stride_and_padding() -> None:
    # conv k3 d2 p2: effective kernel 5 -> r 5; then pool k2 s2 -> r 6, j 2; conv k3 p1 -> r 6 + 2*2 = 10.
    s = shapes.stack((1, 32, 32), ["conv 4 k3 d2 p2", "pool k2", "conv 4 k3 p1"])
    assert [r.receptive_field.size[0] for r in s.rows] == [5, 6, 10]
    assert [r.receptive_field.stride[0] for r in s.rows] == [1, 2, 2]
    # effective padding: 2, 2 + 0*1, 2 + 1*2 = 4; unit 0's centre sits at (10-1)/2 - 4 = 0.5.
    assert s.receptive_field.padding == (4, 4)
    assert s.receptive_field.center(0) == (0.5, 0.5)


def test_flatten_and_fc_see_the_whole_input() -> None:
    s = shapes.stack((1, 28, 28), ["conv 6 k5 p2", "pool k2", "flatten", "fc 10"])
    assert s.rows[-1].covers_input
    assert not s.rows[0].covers_input


def test_explanations_substitute_numbers_for_linear_and_pool() -> None:
    fc = shapes.linear(2304, 128)
    assert fc.params == 295_040
    assert "weights = in * out = 2304 * 128 = 294,912" in fc.lines
    p = shapes.pool((96, 55, 55), 3, 2)
    assert "OH = floor((55 + 2*0 - 1*(3-1) - 1)/2) + 1 = 27" in p.lines


# --------------------------------------------------------------------------------------
# Clear rejections
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: shapes.conv((3, 32, 32), 64, 3, groups=2), "groups 2 does not divide in channels 3"),
        (lambda: shapes.conv((3, 5, 5), 8, 7), "the input must be at least 7 along H"),
        (lambda: shapes.conv((3, 5, 5), 8, 3, dilation=3), "effective size 7 = 3*(3-1)+1"),
        (lambda: shapes.conv((3, 5, 5), 0, 3), "out channels must be positive"),
        (lambda: shapes.conv((3, 5, 5), 8, 0), "kernel size must be positive"),
        (lambda: shapes.conv((3, 5, 5), 8, 3, stride=0), "stride must be positive"),
        (lambda: shapes.conv((3, 5, 5), 8, 3, padding=-1), "padding must not be negative"),
        (lambda: shapes.conv((3, 5, 5), 8, 3, stride=2, padding="same"), "padding 'same' needs stride 1"),
        (lambda: shapes.conv((3, 3, 3), 8, 3, padding=3, padding_mode="reflect"), "reflect padding of 3"),
        (lambda: shapes.conv((3, 0, 5), 8, 3), "every input dimension must be positive"),
        (lambda: shapes.conv((3,), 8, 3), "needs an input shaped"),
        (lambda: shapes.pool((3, 2, 2), 3), "the input must be at least 3 along H"),
        (lambda: shapes.pool((3, 9, 9), 3, padding=2), "more than half the kernel"),
        (lambda: shapes.pool((3, 9, 9), 3, dilation=2, mode="avg"), "average pooling has no dilation"),
        (lambda: shapes.linear((64, 6, 6), 10), "add 'flatten' before it"),
        (lambda: shapes.stack((1, 28, 28), ["conv 8"]), "needs a kernel size"),
        (lambda: shapes.stack((1, 28, 28), ["conv k3"]), "number of output channels"),
        (lambda: shapes.stack((1, 28, 28), ["warp 3"]), "unknown layer type 'warp'"),
        (lambda: shapes.stack((1, 28, 28), ["pool k2 g2"]), "pooling takes only"),
        (lambda: shapes.parse_shape("3xabc"), "cannot read shape"),
    ],
)
def test_bad_input_is_one_clear_line(call, message: str) -> None:
    with pytest.raises(CnnlabError) as info:
        call()
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_group_error_lists_the_valid_choices() -> None:
    with pytest.raises(CnnlabError, match="common divisors of 6 and 9: 1, 3"):
        shapes.conv((6, 8, 8), 9, 3, groups=2)


# --------------------------------------------------------------------------------------
# PyTorch as the judge: thousands of random configurations
# --------------------------------------------------------------------------------------

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVGPOOL = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
_MAX_SIDE = {1: 40, 2: 16, 3: 7}


def _per_axis(draw, ndim: int, low: int, high: int):
    if draw(st.booleans()):
        return draw(st.integers(low, high))
    return tuple(draw(st.integers(low, high)) for _ in range(ndim))


@st.composite
def conv_configs(draw):
    ndim = draw(st.integers(1, 3))
    spatial = tuple(draw(st.integers(1, _MAX_SIDE[ndim])) for _ in range(ndim))
    groups = draw(st.integers(1, 4))
    in_ch = draw(st.integers(1, 3)) * (groups if draw(st.integers(0, 4)) else 1)
    out_ch = draw(st.integers(1, 3)) * (groups if draw(st.integers(0, 4)) else 1)
    stride = _per_axis(draw, ndim, 1, 4)
    padding = draw(st.one_of(st.just("same"), st.just("valid"), st.integers(0, 4)))
    if padding not in ("same", "valid") and draw(st.booleans()):
        padding = _per_axis(draw, ndim, 0, 4)
    if padding == "same" and draw(st.integers(0, 3)):
        stride = 1  # mostly test the legal form, sometimes the strided rejection
    return dict(
        ndim=ndim, spatial=spatial, in_channels=in_ch, out_channels=out_ch,
        kernel_size=_per_axis(draw, ndim, 1, 6), stride=stride, padding=padding,
        dilation=_per_axis(draw, ndim, 1, 3), groups=groups, bias=draw(st.booleans()),
        padding_mode=draw(st.sampled_from(shapes.PADDING_MODES)),
    )


def _torch_conv(cfg):
    kw = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode")}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = _CONV[cfg["ndim"]](cfg["in_channels"], cfg["out_channels"], **kw)
            out = module(torch.zeros(1, cfg["in_channels"], *cfg["spatial"]))
    except (ValueError, RuntimeError):
        return None
    return tuple(out.shape[1:]), sum(p.numel() for p in module.parameters()), module


def _ours_conv(cfg):
    try:
        return shapes.conv((cfg["in_channels"], *cfg["spatial"]), cfg["out_channels"], cfg["kernel_size"],
                           cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["bias"],
                           cfg["padding_mode"])
    except CnnlabError:
        return None


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_configs())
def test_conv_matches_torch(cfg) -> None:
    theirs, ours = _torch_conv(cfg), _ours_conv(cfg)
    assert (theirs is None) == (ours is None), (cfg, theirs, ours and ours.output_shape)
    if ours is not None:
        shape, params, _ = theirs
        assert ours.output_shape == shape
        assert ours.params == params


@settings(max_examples=150, deadline=None)
@given(conv_configs())
def test_conv_macs_match_torch_flop_counter(cfg) -> None:
    theirs, ours = _torch_conv(cfg), _ours_conv(cfg)
    if ours is None or cfg["padding_mode"] != "zeros":
        return
    module = theirs[2]
    counter = FlopCounterMode(display=False)
    with counter, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module(torch.zeros(1, cfg["in_channels"], *cfg["spatial"]))
    # torch counts 2 FLOPs per multiply-accumulate and, like cnnlab, leaves the bias out.
    assert counter.get_total_flops() == 2 * ours.macs


@st.composite
def pool_configs(draw):
    ndim = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["max", "avg"]))
    return dict(
        ndim=ndim, mode=mode, spatial=tuple(draw(st.integers(1, _MAX_SIDE[ndim])) for _ in range(ndim)),
        kernel_size=_per_axis(draw, ndim, 1, 5),
        stride=draw(st.one_of(st.none(), st.integers(1, 4))),
        padding=_per_axis(draw, ndim, 0, 3),
        dilation=1 if mode == "avg" else _per_axis(draw, ndim, 1, 3),
        ceil_mode=draw(st.booleans()),
    )


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_configs())
def test_pool_matches_torch(cfg) -> None:
    kw = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
    if cfg["mode"] == "max":
        module = _MAXPOOL[cfg["ndim"]](dilation=cfg["dilation"], **kw)
    else:
        module = _AVGPOOL[cfg["ndim"]](**kw)
    try:
        theirs = tuple(module(torch.zeros(1, 2, *cfg["spatial"])).shape[1:])
    except RuntimeError:
        theirs = None
    try:
        ours = shapes.pool((2, *cfg["spatial"]), cfg["kernel_size"], cfg["stride"], cfg["padding"],
                           cfg["dilation"], cfg["ceil_mode"], cfg["mode"]).output_shape
    except CnnlabError:
        ours = None
    assert ours == theirs, cfg


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3))
def test_adaptive_pool_windows_match_torch(length: int, out: int, seed: int) -> None:
    # An adaptive max pool over a ramp picks each window's last index: check the largest window.
    r = shapes.adaptive_pool((1, length), out, "max")
    x = torch.arange(length, dtype=torch.float32).view(1, 1, length)
    ends = nn.AdaptiveMaxPool1d(out)(x).flatten().long()
    starts = -nn.AdaptiveMaxPool1d(out)(-x).flatten().long()
    assert r.output_shape == (1, out)
    assert r.rf_kernel == (int((ends - starts).max()) + 1,)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.booleans())
def test_linear_matches_torch(n_in: int, n_out: int, bias: bool) -> None:
    layer = nn.Linear(n_in, n_out, bias=bias)
    r = shapes.linear(n_in, n_out, bias)
    assert r.params == sum(p.numel() for p in layer.parameters())
    assert r.output_shape == tuple(layer(torch.zeros(1, n_in)).shape[1:])
