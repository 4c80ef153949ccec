"""The analyzer on every classification model torchvision ships, none of them tuned for here.

Parameters and MACs are compared with torchvision's own metadata (``num_params`` and ``_ops``,
its GFLOPS, which count multiply-accumulates); receptive fields with a measured field
(tests/fieldlib.py). A number the analyzer cannot give must be ``unknown`` with a reason that
names the node that stops it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest
import torch
from torchvision import models as tvm

from cnnlab.analysis import analyze
from fieldlib import computed_extent, measured_extent

ALL = tvm.list_models(module=tvm)
# One of every kind of block: plain, inception, SE gates, RegNet, channel shuffle, channels-last
# layer norm, windowed and global attention, dense blocks, fire modules.
QUICK = {"alexnet", "googlenet", "inception_v3", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf",
         "shufflenet_v2_x1_0", "convnext_tiny", "swin_t", "vit_b_16", "maxvit_t", "squeezenet1_1", "densenet121",
         "resnet50"}
# How torchvision's published figures were made: GoogLeNet's count leaves out the auxiliary heads
# it drops after loading, Inception v3's keeps them; ViT-H/14's weights are for 518x518 inputs.
BUILD = {"googlenet": {"aux_logits": False, "init_weights": False}, "inception_v3": {"init_weights": False},
         "vit_h_14": {"image_size": 518}}


@contextlib.contextmanager
def _regnet_widths_on_cpu() -> Iterator[None]:
    """RegNet computes its block widths with tensor arithmetic and .tolist(): keep that off the meta device."""
    from torchvision.models import regnet

    original = regnet.BlockParams.from_init_params

    def on_cpu(*args, **kwargs):
        with torch.device("cpu"):
            return original(*args, **kwargs)

    regnet.BlockParams.from_init_params = on_cpu  # type: ignore[method-assign]
    try:
        yield
    finally:
        regnet.BlockParams.from_init_params = original  # type: ignore[method-assign]


def build(name: str, device: str = "meta") -> torch.nn.Module:
    with warnings.catch_warnings(), _regnet_widths_on_cpu(), torch.device(device):
        warnings.simplefilter("ignore")  # GoogLeNet and Inception's notes on their default initialisation
        return tvm.get_model(name, **BUILD.get(name, {}))


def published(name: str) -> tuple[dict, int]:
    weights = tvm.get_model_weights(name).DEFAULT
    return weights.meta, weights.transforms().crop_size[0]


def _param(name: str) -> pytest.param:  # type: ignore[type-arg]
    return pytest.param(name, marks=() if name in QUICK else pytest.mark.slow, id=name)


@pytest.mark.parametrize("name", [_param(n) for n in ALL])
def test_parameters_and_macs_equal_torchvision_published_figures(name: str) -> None:
    meta, crop = published(name)
    report = analyze(build(name), (3, crop, crop))
    # torchvision counts every parameter the model holds; Inception-v3's auxiliary head is held
    # (and trained) but the inference graph never runs it, so the analysis names it apart.
    assert report.model_params == meta["num_params"]
    outside = report.params_outside_graph
    assert outside is None if name != "inception_v3" else outside["modules"] == ["AuxLogits"]
    assert report.macs is not None, report.unknown
    assert round(report.macs / 1e9, 3) == pytest.approx(meta["_ops"], abs=5e-4)
    assert report.flops is not None and report.flops >= 2 * report.macs
    # What cannot be given is unknown with a reason that names a node, never a number that only looks right.
    for total, why in report.unknown.items():
        assert total == "receptive_field" and "(" in why, (total, why)
    assert (report.receptive_field is None) == ("receptive_field" in report.unknown)


# torchvision's other families, at the input each published figure was counted on: segmentation at
# 520x520 with the auxiliary FCN head its weights carry (aux_loss=True; without it FCN-ResNet50 has
# 2,365,205 parameters and 9.991 GMACs fewer), video clips of 16 frames, RAFT on a pair of 512x512
# frames (the size that gives both RAFT figures to the last digit; at 520x960 they are 1.98x larger).
# SSD and RetinaNet resize every input to their own size first, so any input gives their figure;
# their box selection (torch.nonzero, NMS) needs values, which sends the count to a real pass.
OTHER = {
    "fcn_resnet50": ("3x520x520", {"aux_loss": True, "weights_backbone": None}),
    "deeplabv3_mobilenet_v3_large": ("3x520x520", {"aux_loss": True, "weights_backbone": None}),
    "lraspp_mobilenet_v3_large": ("3x520x520", {"weights_backbone": None}),
    "deeplabv3_resnet101": ("3x520x520", {"aux_loss": True, "weights_backbone": None}),
    "r3d_18": ("3x16x112x112", {}),
    "r2plus1d_18": ("3x16x112x112", {}),
    "mc3_18": ("3x16x112x112", {}),
    "s3d": ("3x16x224x224", {}),
    "mvit_v2_s": ("3x16x224x224", {}),
    "swin3d_t": ("3x16x224x224", {}),
    "raft_small": ("3x512x512,3x512x512", {}),
    "raft_large": ("3x512x512,3x512x512", {}),
    "ssd300_vgg16": ("3x300x300", {"weights_backbone": None}),
    "retinanet_resnet50_fpn": ("3x320x320", {"weights_backbone": None}),
}
QUICK_OTHER = {"fcn_resnet50", "r3d_18", "s3d", "raft_small", "ssd300_vgg16"}
# Detection models make their anchors when they are built: built on the meta device, they could
# never run for real, so they are built on the CPU.
DETECTION = {"ssd300_vgg16", "retinanet_resnet50_fpn"}
# Built without weights, a detection backbone's batch norms train (parameters), where torchvision's
# figure counts them frozen (buffers): the MACs are the same, the parameter counts are not.
FROZEN_NORMS = {"retinanet_resnet50_fpn"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in QUICK_OTHER else pytest.mark.slow, id=n)
                                  for n in OTHER])
def test_segmentation_video_flow_and_detection_models_equal_torchvision_published_figures(name: str) -> None:
    size, kwargs = OTHER[name]
    meta = tvm.get_model_weights(name).DEFAULT.meta
    with warnings.catch_warnings(), torch.device("cpu" if name in DETECTION else "meta"):
        warnings.simplefilter("ignore")
        model = tvm.get_model(name, **kwargs).eval()
    report = analyze(model, size)
    assert report.macs is not None, report.unknown
    assert round(report.macs / 1e9, 3) == pytest.approx(meta["_ops"], abs=5e-4)
    if name not in FROZEN_NORMS:
        assert report.model_params == meta["num_params"]
    if name in DETECTION:  # counted exactly, but sorting and NMS have no FLOP rate: the reason names them
        assert "torchvision.nms" in report.unknown["flops"] and "sort" in report.unknown["flops"]


def test_a_detection_model_runs_as_before_after_its_analysis() -> None:
    # Its anchor generator keeps its anchors on the device of the last input: the analysis's meta
    # pass must not leave them there (the model would fail on every real image afterwards).
    torch.manual_seed(0)
    model = tvm.get_model("fasterrcnn_mobilenet_v3_large_320_fpn", weights_backbone=None).eval()
    with torch.no_grad():
        before = model([torch.rand(3, 320, 320)])
    report = analyze(model, (3, 320, 320))
    assert report.method == "operators" and report.macs is not None
    assert "another input may take another branch" in report.limitation
    with torch.no_grad():
        after = model([torch.rand(3, 320, 320)])
    assert [sorted(d) for d in after] == [sorted(d) for d in before] == [["boxes", "labels", "scores"]]


def test_the_models_whose_field_is_unknown_say_where_and_attention_sees_the_whole_input() -> None:
    reports = {}
    for name in sorted(QUICK):
        crop = published(name)[1]
        reports[name] = analyze(build(name), (3, crop, crop))
    unknown = {n: r.unknown.get("receptive_field") for n, r in reports.items() if "receptive_field" in r.unknown}
    assert unknown == {
        "swin_t": "no receptive-field rule for shifted_window_attention (shifted_window_attention)",  # windows
        "maxvit_t": "no receptive-field rule for reshape (reshape)",  # the map cut into blocks and grids
    }
    # ViT: 16x16 patches become 196 tokens, and after the first attention every token sees every
    # patch: the field of the last tokens is the whole 224x224 input, exactly.
    assert reports["vit_b_16"].receptive_field == {"size": [224, 224], "stride": [16, 16], "padding": [0, 0]}


def _maps(report) -> list:
    """Modules (called once) whose output is a map with a known field: the units a hook can measure."""
    return [r for r in report.layers if r.kind == "module" and ":" not in r.name and r.rf_size is not None
            and r.output_shape is not None and len(r.output_shape) >= 4]


def _inside(layer, size) -> bool:
    """The central unit's field lies inside the input (a field reaching past the edge also counts pixels that
    only padding stands for, which no gradient can show)."""
    centre = [s // 2 for s in layer.output_shape[2:]]
    return all(u * j - p >= 0 and u * j - p + r <= n for r, j, p, u, n in
               zip(layer.rf_size, layer.rf_stride, layer.rf_padding, centre, size[1:], strict=True))


@pytest.mark.parametrize(("name", "size"), [
    ("alexnet", (3, 224, 224)),
    ("squeezenet1_1", (3, 224, 224)),
    ("shufflenet_v2_x0_5", (3, 224, 224)),  # channel shuffle: views, a transpose, chunks
    pytest.param("resnet18", (3, 480, 480), marks=pytest.mark.slow),  # the whole network's field (435) fits
    pytest.param("googlenet", (3, 416, 416), marks=pytest.mark.slow),  # branches concatenated
    pytest.param("vgg11", (3, 224, 224), marks=pytest.mark.slow),
    ("r3d_18", (3, 16, 48, 48)),  # 3-D convolutions: frames, height and width
    pytest.param("r2plus1d_18", (3, 16, 64, 64), marks=pytest.mark.slow),  # (2+1)-D: 1x3x3 then 3x1x1
])
def test_computed_field_equals_the_measured_one(name: str, size: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = build(name, "cpu")
    report = analyze(model, size)
    layer = [r for r in _maps(report) if _inside(r, size)][-1]  # the deepest that can be measured whole
    measured, centre = measured_extent(model, size, layer.name)
    assert measured == layer.rf_size, layer.name
    assert computed_extent(layer.rf_size, layer.rf_stride, layer.rf_padding, centre, size) == measured


def test_after_a_squeeze_and_excitation_gate_every_unit_sees_the_whole_input() -> None:
    torch.manual_seed(0)
    size = (3, 160, 160)
    model = build("mobilenet_v3_small", "cpu")
    report = analyze(model, size)
    by_name = {r.name: r for r in report.layers}
    before, after = by_name["features.1.block.0.0"], by_name["features.1.block.2.0"]  # around the first gate
    assert not before.rf_covers_input and after.rf_covers_input
    assert measured_extent(model, size, before.name)[0] == before.rf_size
    assert measured_extent(model, size, after.name)[0] == list(size[1:])


@pytest.mark.parametrize(("name", "size"), [
    ("lenet5", (1, 28, 28)),
    ("alexnet_paper", (3, 227, 227)),  # the two-GPU split: grouped convolutions
    ("nin_cifar", (3, 64, 64)),
    ("resnet20", (3, 64, 64)),
    ("preact_resnet18", (3, 128, 128)),
    ("densenet40_cifar", (3, 64, 64)),  # concatenations in every dense block
    pytest.param("googlenet_paper", (3, 224, 224), marks=pytest.mark.slow),
])
def test_computed_field_equals_the_measured_one_on_the_zoo(name: str, size: tuple[int, int, int]) -> None:
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model(name)
    report = analyze(model, size)
    layer = [r for r in _maps(report) if _inside(r, size)][-1]
    assert measured_extent(model, size, layer.name)[0] == layer.rf_size, layer.name
