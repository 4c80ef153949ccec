"""The graph analyzer, judged by real forward passes, torch's FLOP counter, torchvision's metadata
and receptive fields derived by hand."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.fx
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp
from torch.utils.flop_counter import FlopCounterMode

from cnnlab import analyze
from cnnlab.analysis import fold
from cnnlab.analysis.rules import UNKNOWN, OpInfo
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, list_models, model_info

# --------------------------------------------------------------------------------------
# User-style models
# --------------------------------------------------------------------------------------


class Branchy(nn.Module):
    """Functional ops, an add and a concatenation of branches with different fields."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 8, 1)
        self.b = nn.Conv2d(8, 8, 5, padding=2)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        y = x + self.a(x)  # a residual add
        z = torch.cat([y, self.b(x)], dim=1)  # branches of field 3 and 7, same centre
        z = F.max_pool2d(z, 2)
        return self.head(z.mean((2, 3)))


class Misaligned(nn.Module):
    """An even kernel with 'same' padding sees half a pixel to the right of a 1x1 branch."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 1, 1)
        self.b = nn.Conv2d(1, 1, 2, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)


class Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.conv(x), dim=3)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on a value: torch.fx cannot trace it
            return self.conv(x)
        return self.conv(-x)


# --------------------------------------------------------------------------------------
# Shapes against a real forward pass
# --------------------------------------------------------------------------------------

SHAPE_CASES = [
    ("lenet5", None), ("lenet5_paper", None), ("alexnet", (3, 64, 64)), ("alexnet_paper", (3, 227, 227)),
    ("vgg11_bn", (3, 32, 32)), ("nin", (3, 64, 64)), ("googlenet", (3, 64, 64)), ("googlenet_paper", (3, 64, 64)),
    ("resnet18", (3, 32, 32)), ("resnet50", (3, 32, 32)), ("preact_resnet18", (3, 32, 32)), ("resnet20", (3, 32, 32)),
    ("densenet121", (3, 32, 32)), ("densenet40_cifar", (3, 32, 32)),
]


def _real_shapes(model: nn.Module, size: tuple[int, ...], batch: int = 2) -> list[tuple[int, ...] | None]:
    model.eval()
    gm = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.randn(batch, *size))
    shapes = []
    for n in gm.graph.nodes:
        if n.op in ("get_attr",):
            continue
        meta = n.meta.get("tensor_meta")
        shapes.append(tuple(meta.shape) if hasattr(meta, "shape") else None)
    return shapes


@pytest.mark.parametrize(("name", "size"), SHAPE_CASES)
def test_node_shapes_equal_a_real_forward_pass(name: str, size: tuple[int, ...] | None) -> None:
    size = size or model_info(name).default_input
    torch.manual_seed(0)
    model = create_model(name)
    report = analyze(model, size, batch=2)
    ours = [tuple(r.output_shape) if r.output_shape else None for r in report.layers]
    real = _real_shapes(model, size)
    assert len(ours) == len(real)
    for mine, theirs in zip(ours, real, strict=True):
        if theirs is not None:
            assert mine == theirs


def test_user_style_model_with_functional_ops_and_branches() -> None:
    model = Branchy()
    report = analyze(model, (3, 16, 16))
    ops = [r.op for r in report.layers]
    for op in ("relu", "add", "cat", "max_pool2d", "mean", "Linear"):
        assert any(op in o for o in ops), ops
    real = _real_shapes(model, (3, 16, 16), batch=1)
    assert [tuple(r.output_shape) if r.output_shape else None for r in report.layers] == real
    assert report.complete and not report.misaligned


# --------------------------------------------------------------------------------------
# Parameters and FLOPs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_total_parameters_equal_the_models_own(name: str) -> None:
    with torch.device("meta"):
        model = create_model(name)
    report = analyze(model, model_info(name).default_input)
    assert report.model_params == sum(p.numel() for p in model.parameters())
    # The layers add up to the total; what the eval graph never runs is named beside it.
    assert sum(r.params for r in report.layers if not r.shared) == report.params
    assert report.complete, report.unsupported


def test_googlenet_auxiliary_heads_are_named_outside_the_graph() -> None:
    report = analyze("googlenet")
    outside = report.params_outside_graph
    assert outside is not None and outside["modules"] == ["aux1", "aux2"]
    # torchvision publishes GoogLeNet without its auxiliary heads: 6,624,904 of 13,004,888.
    assert report.params == 6_624_904 and outside["params"] == 6_379_984
    assert report.model_params == 13_004_888 == sum(p.numel() for p in create_model("googlenet").parameters())
    assert not any(r.scope.startswith("aux") for r in report.layers)
    totals = report.to_dict()["totals"]
    assert totals["params"] == 6_624_904 and totals["model_params"] == 13_004_888
    assert analyze("resnet18").params_outside_graph is None


def test_parameters_used_directly_are_shown_on_the_node_that_uses_them() -> None:
    # LeNet-5 (1998) scales its subsampling maps by trainable coefficients read with get_attr.
    report = analyze("lenet5_paper")
    assert report.params_outside_graph is None
    assert sum(r.params for r in report.layers) == report.params == 60_840


FLOP_CASES = ["lenet5", "alexnet_paper", "vgg11", "nin", "googlenet", "googlenet_paper", "resnet18", "preact_resnet18",
              "resnet20", "densenet121", "densenet_bc100_cifar"]


@pytest.mark.parametrize("name", FLOP_CASES)
def test_conv_and_linear_flops_equal_torch_flop_counter(name: str) -> None:
    model = create_model(name).eval()
    c, h, _ = model_info(name).default_input
    side = max(min(h, 64), 32) if name != "alexnet_paper" else 227
    if name.startswith("lenet"):
        side = h
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(2, c, side, side))
    report = analyze(model, (c, side, side), batch=2)
    assert 2 * report.macs == counter.get_total_flops()


TORCHVISION_NAMES = [n for n in list_models() if model_info(n).torchvision]


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_macs_equal_torchvision_published_gflops(name: str) -> None:
    weights = torchvision.models.get_model_weights(model_info(name).torchvision)
    published = next(iter(weights)).meta["_ops"]  # GFLOPS at 224x224, torchvision's convention = MACs
    report = analyze(name, (3, 224, 224))
    assert round(report.macs / 1e9, 3) == pytest.approx(published, abs=5e-4)


# --------------------------------------------------------------------------------------
# Receptive fields
# --------------------------------------------------------------------------------------


def _rf(model: nn.Module, size=(1, 64, 64)) -> list[int]:
    return analyze(model, size).receptive_field["size"]


def test_receptive_field_of_hand_derivable_chains() -> None:
    assert _rf(nn.Conv2d(1, 1, 5)) == [5, 5]
    three = nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(3)])
    assert _rf(three) == [7, 7]  # 1 + 3*(3-1)
    dilated = nn.Sequential(nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, dilation=4))
    assert _rf(dilated) == [1 + 2 * 2 + 4 * 2] * 2  # 13
    strided = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
    assert _rf(strided) == [3 + 2 * 2] * 2  # the second 3x3 steps 2 input pixels at a time
    pooled = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3))
    report = analyze(pooled, (1, 64, 64))
    assert report.receptive_field == {"size": [8, 8], "stride": [2, 2], "padding": [0, 0]}  # 3 -> 4 -> 4+2*2


def test_receptive_field_at_a_residual_add_and_unequal_concatenation() -> None:
    report = analyze(Branchy(), (3, 32, 32))
    by_name = {r.name: r for r in report.layers}
    add = next(r for r in report.layers if r.op == "add")
    cat = next(r for r in report.layers if r.op == "cat")
    assert by_name["stem"].rf_size == [3, 3]
    assert add.rf_size == [3, 3]  # 1x1 branch and identity: the largest is 3
    assert cat.rf_size == [7, 7]  # 3 + (5-1): the 5x5 branch wins
    assert cat.misaligned is None  # both branches centred on the same pixel
    pool = next(r for r in report.layers if r.op == "max_pool2d")
    assert pool.rf_size == [8, 8] and pool.rf_stride == [2, 2]


def test_misaligned_branches_are_reported() -> None:
    report = analyze(Misaligned(), (1, 16, 16))
    # centre of unit 0: (1-1)/2 - 0 = 0 for the 1x1, (2-1)/2 - 0 = 0.5 for the 2x2 padded (0, 1)
    assert report.misaligned == ["add: centres (0, 0) vs (0.5, 0.5)"]


def test_published_receptive_fields() -> None:
    # Araujo, Norris & Sim (Distill 2019), Table 1: VGG-16 212 (at pool5), AlexNet 195,
    # ResNet-50 v1 483 and ResNet-101 v1 1027 (stride on the first 1x1 of each bottleneck).
    assert analyze("vgg16").receptive_field["size"] == [212, 212]
    assert analyze("alexnet").receptive_field["size"] == [195, 195]
    assert analyze("resnet50", version="v1").receptive_field["size"] == [483, 483]
    assert analyze("resnet101", version="v1").receptive_field["size"] == [1027, 1027]
    # torchvision's v1.5 moves the stride onto the 3x3: each of the three downsampling blocks then
    # adds 2 input pixels per step less, 2*(4 + 8 + 16) = 56 fewer in all.
    assert analyze("resnet50").receptive_field["size"] == [483 - 56] * 2


def test_layers_whose_field_covers_the_input_are_flagged() -> None:
    report = analyze("vgg16", (3, 224, 224))
    covering = [r.name for r in report.layers if r.rf_covers_input]
    first = next(r for r in report.layers if r.rf_covers_input)
    assert first.rf_size[0] >= 224 and covering


# --------------------------------------------------------------------------------------
# Unsupported operations, fallback, folding, memory
# --------------------------------------------------------------------------------------


def test_an_operation_without_a_rule_is_counted_by_its_operators_and_what_stays_unknown_is_named() -> None:
    report = analyze(Unsupported(), (1, 8, 8))
    # cumsum has no rule of its own: the operator counter sees it run, no matrix product in it,
    # so the MACs are exactly the convolution's; cumsum has no FLOP rate, so the FLOPs are unknown.
    assert report.macs == 4 * 6 * 6 * 9
    assert report.flops is None
    assert report.unknown["flops"] == "no FLOP rate for cumsum (cumsum)"
    assert report.unknown["receptive_field"] == "no receptive-field rule for cumsum (cumsum)"
    assert report.receptive_field is None
    assert not report.complete
    doc = report.to_dict()
    assert doc["complete"] is False
    assert doc["totals"]["flops"] is None and doc["totals"]["receptive_field"] is None
    assert doc["totals"]["macs"] == 4 * 6 * 6 * 9
    assert set(doc["unknown"]) == {"flops", "receptive_field"}


def test_a_node_of_unknown_cost_makes_the_depth_through_it_unknown_not_shorter(monkeypatch) -> None:
    import cnnlab.analysis as analysis
    from cnnlab.analysis.render import report_markdown

    # conv -> cumsum -> flatten -> linear: with every cost known, 2 weighted layers deep.
    model = nn.Sequential(Unsupported(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    assert analyze(model, (1, 8, 8)).weighted_depth == 2
    rule_for = analysis.rule_for

    def no_count_for_cumsum(node):  # as when nothing saw the operation run
        info = rule_for(node)
        return info if info.op != "cumsum" else OpInfo("cumsum", None, None, UNKNOWN, False, ())

    monkeypatch.setattr(analysis, "rule_for", no_count_for_cumsum)
    report = analyze(model, (1, 8, 8))
    # cumsum might hold weights of its own: the longest weighted path is 2 or more, not known.
    assert report.weighted_depth is None and report.macs is None
    assert report.unknown["weighted_depth"] == ("no counting rule for cumsum (cumsum), which may hold weighted "
                                                "layers on the way to the output")
    assert report.to_dict()["totals"]["weighted_depth"] is None
    assert "weighted depth: unknown" in report_markdown(report, report.layers)


def test_untraceable_model_falls_back_to_counting_operators_and_says_so() -> None:
    report = analyze(DataDependent(), (1, 8, 8))
    assert report.method == "operators"
    assert "torch.fx could not trace" in report.limitation
    assert "seed 0" in report.limitation and "another input may take another branch" in report.limitation
    assert report.macs == 4 * 6 * 6 * 9
    assert report.unknown == {"receptive_field": "the graph was not traced: the forward pass was counted operator "
                                                 "by operator, which does not show the branches a field follows",
                              "weighted_depth": "the graph was not traced: operators between modules are counted "
                                                "together, which hides how many weighted layers a path holds"}
    assert report.weighted_depth is None


class BranchyFunctional(nn.Module):
    """A data-dependent branch, a module convolution and a functional one (the old fallback saw only modules)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.weight = nn.Parameter(torch.randn(32, 16, 5, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if y.mean() > 0:
            return F.conv2d(y, self.weight, padding=2)
        return F.conv2d(y[:, :, ::2, ::2], self.weight, padding=2)


def test_the_fallback_counts_functional_operations_as_torch_does_and_the_same_every_time() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = BranchyFunctional()
    first = analyze(model, (3, 32, 32))
    assert first.method == "operators"
    # torch's own counter, on the same deterministic sample the report names (seed 0)
    sample = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(sample)
    assert first.macs == counter.get_total_flops() // 2
    assert first.macs in (16 * 32 * 32 * 27 + 32 * 32 * 32 * 400, 16 * 32 * 32 * 27 + 32 * 16 * 16 * 400)
    assert [analyze(model, (3, 32, 32)).macs for _ in range(3)] == [first.macs] * 3
    by_name = {r.name: r for r in first.layers}
    assert by_name["conv"].macs == 16 * 32 * 32 * 27
    assert by_name["(between modules)"].macs == first.macs - 16 * 32 * 32 * 27
    batched = analyze(model, (3, 32, 32), batch=4)
    assert batched.macs == 4 * first.macs


class KeepsWhatItSaw(nn.Module):
    """Like torchvision's anchor generator: forward stores a tensor on the device of its input, then
    selects with a data-dependent operator (torch.nonzero), which meta tensors cannot run."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.anchors = [torch.arange(4.0)]  # a plain attribute, not a buffer
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.anchors = [a.to(x.device) for a in self.anchors]
        y = self.conv(x)
        keep = torch.nonzero(y.flatten() > -1e9).flatten()  # every position, as a data-dependent index
        return y.flatten()[keep] + self.anchors[0].sum()


def test_analysing_a_model_leaves_it_as_it_was_even_when_its_forward_keeps_state() -> None:
    model = KeepsWhatItSaw()
    report = analyze(model, (1, 8, 8))
    # The meta pass cannot run torch.nonzero; the real pass that follows must not see meta anchors
    # left by the first, and the caller's model comes back unchanged.
    assert report.method == "operators"
    assert report.macs == 4 * 6 * 6 * 9
    assert model.anchors[0].device.type == "cpu" and model.calls == 0
    assert model(torch.zeros(1, 1, 8, 8)).shape == (4 * 6 * 6,)


def test_a_meta_model_whose_forward_needs_values_is_told_so_not_blamed_on_its_input() -> None:
    from cnnlab.models.inputs import check_input

    check_input(KeepsWhatItSaw(), (1, 8, 8))  # real weights: probed on the CPU, it fits

    class Picks(nn.Module):  # no weights at all: nothing to move, it runs on the CPU
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            flat = x.flatten()
            return flat[torch.nonzero(flat > -1).flatten()]

    check_input(Picks(), (1, 128, 128))  # an input this large is probed on the meta device first
    with torch.device("meta"):
        model = KeepsWhatItSaw()
    why = r"KeepsWhatItSaw's forward needs the values of its tensors .*torch.nonzero.* build it with its weights on the CPU"
    with pytest.raises(CnnlabError, match=why):
        check_input(model, (1, 8, 8))
    # Its anchors were made on the meta device too, so no real pass can run it: the analyzer says the same.
    with pytest.raises(CnnlabError, match=why):
        analyze(model, (1, 8, 8))


def test_wrappers_that_only_hand_their_input_on_are_analysed_as_the_network_inside() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.Flatten(), nn.Linear(8 * 12 * 12, 10))
    plain = analyze(net, (3, 16, 16))
    assert plain.method == "fx" and plain.receptive_field["size"] == [5, 5]
    for wrapped in (nn.DataParallel(net), torch.compile(net), nn.DataParallel(torch.compile(net))):
        report = analyze(wrapped, (3, 16, 16))  # nothing is compiled: the wrapper is looked through
        assert report.model == "Sequential" and report.method == "fx"
        assert (report.params, report.macs, report.flops, report.receptive_field) == \
            (plain.params, plain.macs, plain.flops, plain.receptive_field)
        assert [r.name for r in report.layers] == [r.name for r in plain.layers]


def test_profiler_markers_cost_nothing_and_leave_the_flops_known() -> None:
    class Marked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # not traceable: counted operator by operator, markers included
                x = -x
            with torch.profiler.record_function("conv"):
                return self.conv(x)

    report = analyze(Marked(), (1, 8, 8))
    assert report.method == "operators" and report.macs == 4 * 6 * 6 * 9
    assert report.flops is not None and "flops" not in report.unknown


class ChecksItsInput(nn.Module):
    """Python code that reads the input's shape, as segmentation networks do before they run."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            raise RuntimeError(f"height and width must be even, got {h}x{w}")
        y = self.conv2(self.pool(self.conv1(x)))
        ramp = torch.arange(y.shape[-1], dtype=y.dtype, device=y.device)  # a tensor built from a shape
        return self.fc((y + ramp).view(y.size(0), -1))


def test_a_model_that_tests_its_input_shapes_is_traced_with_them_and_keeps_its_graph() -> None:
    model = ChecksItsInput()
    names = sorted(n for n, _ in model.named_modules())
    report = analyze(model, (3, 16, 16), batch=2)
    assert report.method == "fx" and "shapes fixed" in report.limitation
    by_name = {r.name: r for r in report.layers}
    assert by_name["conv2"].output_shape == [2, 8, 8, 8] and by_name["fc"].output_shape == [2, 10]
    assert report.macs == 2 * (8 * 16 * 16 * 27 + 8 * 8 * 8 * 72 + 10 * 512)
    assert report.params == sum(p.numel() for p in model.parameters()) and report.params_outside_graph is None
    # conv 3x3, pool 2/2, conv 3x3: field 3 + 1 + 2*2 = 8, jump 2; then fc sees everything
    assert by_name["conv2"].rf_size == [8, 8] and by_name["conv2"].rf_stride == [2, 2]
    assert report.weighted_depth == 3
    assert sorted(n for n, _ in model.named_modules()) == names and not hasattr(model, "_tensor_constant0")
    with pytest.raises(CnnlabError, match="height and width must be even"):
        analyze(model, (3, 15, 16))


def test_a_module_the_forward_calls_without_holding_it_is_counted_between_modules() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    class Hidden(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.extra = [nn.Conv2d(8, 4, 1)]  # a plain list: torch does not register it (torch.fx refuses it)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.extra[0](self.conv(x))

    model = Hidden()
    report = analyze(model, (3, 10, 10))
    assert report.method == "operators" and "not installed as a submodule" in report.limitation
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 10, 10))
    assert report.macs == counter.get_total_flops() // 2 == 8 * 8 * 8 * 27 + 4 * 8 * 8 * 8


def test_arithmetic_on_parameters_alone_is_counted_once_per_forward_whatever_the_batch() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    class RelativeBias(nn.Module):  # timm's MaxViT builds its position bias from two tables, every forward
        def __init__(self) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.randn(5, 7))
            self.lookup = nn.Parameter(torch.randn(7, 16), requires_grad=False)
            self.conv = nn.Conv2d(5, 5, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            bias = torch.einsum("ck,kp->cp", self.table, self.lookup).view(1, 5, 4, 4)
            return self.conv(x) + bias

    model = RelativeBias()
    once = 5 * 7 * 16  # the einsum's MACs: one product of a 5x7 and a 7x16 table
    for batch in (1, 4):
        report = analyze(model, (5, 4, 4), batch=batch)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(batch, 5, 4, 4))
        assert report.macs == batch * 25 * 16 + once == counter.get_total_flops() // 2
    einsum = next(r for r in report.layers if r.op == "einsum")
    assert einsum.macs == once and einsum.rf_size is None and "once per forward pass" in " ".join(einsum.explain)


def test_a_torchscript_module_is_counted_by_its_operators() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script's deprecation notice
        scripted = torch.jit.script(net)
    report = analyze(scripted, (3, 32, 32))
    assert report.method == "operators"
    assert report.macs == 8 * 30 * 30 * 27 + 8 * 30 * 30 * 10
    assert report.params == sum(p.numel() for p in net.parameters())
    assert "TorchScript" in report.limitation


class SamePadConv(nn.Conv2d):
    """A convolution that pads its input to keep the size, in a forward of its own (as timm's Conv2dSame)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size[0]
        return F.conv2d(F.pad(x, (k // 2, k // 2, k // 2, k // 2)), self.weight, self.bias)


class SamePadPool(nn.MaxPool2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.pad(x, (1, 1, 1, 1)), self.kernel_size, self.stride)


class OwnForwards(nn.Module):
    """Subclasses of torch.nn layers with forwards of their own, behind a branch torch.fx cannot follow."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = SamePadConv(3, 8, 5)
        self.pool = SamePadPool(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.pool(y) if y.sum() > -1e9 else y


def test_a_layer_subclass_with_its_own_forward_is_counted_by_what_it_runs() -> None:
    model = OwnForwards()
    report = analyze(model, (3, 16, 16))
    assert report.method == "operators"
    # by hand: the padded 20x20 input gives a 16x16 map (the conv's own padding=0 would give 12x12);
    # the pool sees 18x18 padded, 3x3 windows at stride 2: 8x8 outputs, 9 comparisons each
    conv = 8 * 16 * 16 * 3 * 25
    assert report.macs == conv == _torch_macs(model, torch.randn(1, 3, 16, 16))
    by_name = {r.name: r for r in report.layers}
    assert by_name["pool"].flops == 8 * 8 * 8 * 9
    assert by_name["conv"].flops == 2 * conv  # 2 per MAC; the bias, inside the convolution, is not counted


def test_a_network_with_torchscript_inside_is_counted_by_its_operators(cli, tmp_path: Path) -> None:
    class Partly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 5)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.head = torch.jit.script(nn.Linear(4 * 12 * 12, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(F.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))

    model = Partly()
    report = analyze(model, (1, 28, 28), batch=2)  # hooks cannot go on a scripted part: it counts between modules
    assert report.method == "operators" and "TorchScript inside it (head)" in report.limitation
    assert report.params == 4 * 25 + 4 + 576 * 10 + 10 == sum(p.numel() for p in model.parameters())
    assert report.macs == 2 * (4 * 24 * 24 * 25 + 576 * 10) == _torch_macs(model, torch.randn(2, 1, 28, 28))
    # The check that names where an input stops fitting skips the scripted part, and gives the cause
    # TorchScript puts on its message's last line.
    with pytest.raises(CnnlabError) as info:
        analyze(model, (1, 8, 8))
    assert str(info.value) == ("input 1x8x8 does not fit Partly at layer '(model's forward)': mat1 and mat2 shapes "
                               "cannot be multiplied (1x16 and 576x10)")


def test_folding_keeps_the_totals() -> None:
    report = analyze("resnet18", (3, 64, 64))
    for depth in (1, 2, 3):
        folded = fold(report, depth)
        assert sum(r.macs for r in folded) == report.macs
        assert sum(r.flops for r in folded) == report.flops
        assert sum(r.params for r in folded) == report.params == 11_689_512
    top = {r.name for r in fold(report, 1)}
    assert {"conv1", "layer1", "layer4", "fc"} <= top


@pytest.mark.parametrize("name", ["lenet5_paper", "googlenet"])
def test_folding_keeps_parameters_the_forward_fetches_itself_and_counts_shared_ones_once(name: str) -> None:
    # LeNet-5 (1998) reads S2/S4's coefficients, C3's connection table weights and the fixed RBF
    # codes in its forward, not through a module call: those 2,400 parameters sit on plain nodes.
    report = analyze(name)
    for depth in (1, 2, 3):
        folded = fold(report, depth)
        assert sum(r.params for r in folded) == report.params
        assert sum(r.trainable_params for r in folded) == report.trainable_params
    if name == "lenet5_paper":
        top = {r.name: r.params for r in fold(report, 1)}
        assert (report.params, report.trainable_params) == (60_840, 60_000)
        assert (top["s2"], top["c3"], top["s4"], top["output"]) == (12, 1_516, 32, 840)  # Sec. II.B's counts


def test_a_module_called_twice_counts_in_the_group_of_its_first_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
            self.b = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(self.a(x)))

    report = analyze(Twice(), (4, 8, 8))
    assert report.params == (4 * 4 * 9 + 4) + (4 * 4 + 4)
    groups = {r.name: r.params for r in fold(report, 1) if r.kind == "group"}
    assert groups == {"a": 4 * 4 * 9 + 4, "b": 4 * 4 + 4}


def test_meta_analysis_needs_no_memory_for_huge_inputs() -> None:
    report = analyze("resnet50", (3, 2048, 2048), batch=64)
    assert report.activation_bytes > 100 * 2**30  # 100+ GiB of activations analysed without allocating them
    assert report.macs == pytest.approx(64 * 4.089e9 * (2048 / 224) ** 2, rel=0.01)


def test_training_memory_estimate_and_measurement() -> None:
    report = analyze("resnet20", (3, 32, 32), batch=64, measure=True)
    m = report.memory
    assert m.parameters == m.gradients == m.optimizer_state == report.params * 4
    if m.measured_peak is not None:
        assert 0.3 * m.total < m.measured_peak < 4 * m.total


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def test_inspect_outputs(cli, tmp_path: Path) -> None:
    code, out, _ = cli("inspect", "resnet18", "--input", "3x64x64", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["totals"]["params"] == 11_689_512 and doc["complete"]
    code, out, _ = cli("inspect", "resnet18", "--input", "3x64x64", "--csv")
    assert code == 0 and out.splitlines()[0].startswith("name,op,output_shape")
    code, out, _ = cli("inspect", "resnet18", "--input", "3x64x64", "--markdown", "--depth", "1")
    assert code == 0 and "| layer1 |" in out
    code, out, _ = cli("inspect", "lenet5", "--explain")
    assert code == 0 and "O = floor(" in out


def test_inspect_a_users_file(cli, tmp_path: Path) -> None:
    source = tmp_path / "mynet.py"
    source.write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self, width=8):\n"
        "        super().__init__(nn.Conv2d(1, width, 3), nn.ReLU(), nn.Flatten(), nn.Linear(width * 26 * 26, 10))\n"
    )
    code, out, err = cli("inspect", f"{source}:Net", "--input", "1x28x28", "--set", "width=4", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["totals"]["params"] == 4 * 9 + 4 + 4 * 26 * 26 * 10 + 10
    code, _, err = cli("inspect", f"{source}:Missing", "--input", "1x28x28")
    assert code == 2 and "has no 'Missing'" in err


def test_compare_and_bad_inputs(cli) -> None:
    code, out, _ = cli("compare", "alexnet", "vgg16", "resnet50", "--input", "3x224x224", "--json")
    rows = {r["model"]: r for r in json.loads(out)["rows"]}
    assert code == 0 and rows["vgg16"]["weighted_depth"] == 16 and rows["resnet50"]["weighted_depth"] == 50
    assert rows["vgg16"]["receptive_field"] == [212, 212]
    code, out, _ = cli("compare", "alexnet", "resnet18", "--markdown")
    assert code == 0 and out.startswith("| model |")
    code, _, err = cli("inspect", "vgg16", "--input", "3x16x16")
    assert code == 2 and "too small for vgg16" in err and "3x32x32" in err and err.count("\n") == 1
    code, _, err = cli("inspect", "resnet18", "--input", "1x64x64")
    assert code == 2 and "input channel" in err
    with pytest.raises(CnnlabError, match="unknown model"):
        analyze("resnet9000")


def test_skipping_init_on_meta_leaves_real_models_alone() -> None:
    """Meta builds skip torch.nn.init; a real model built meanwhile (on another thread) is initialised."""
    import threading

    import torch.nn.init as init

    from cnnlab.models.source import _skip_init

    original = init.kaiming_uniform_
    torch.manual_seed(0)
    expected = torch.nn.Conv2d(3, 8, 3).weight.detach().clone()
    inside, release = threading.Event(), threading.Event()

    def meta_builder() -> None:
        with _skip_init():
            inside.set()
            release.wait(120)  # generous: a busy machine may be slow to come back to this thread

    thread = threading.Thread(target=meta_builder)
    thread.start()
    assert inside.wait(120), "the meta builder never started"
    with _skip_init():  # a second user at the same time
        with torch.device("meta"):
            meta = torch.nn.Conv2d(3, 8, 3)
        torch.manual_seed(0)
        real = torch.nn.Conv2d(3, 8, 3)
    assert meta.weight.is_meta
    assert torch.equal(real.weight.detach(), expected)
    assert init.kaiming_uniform_ is not original  # the other thread is still inside
    release.set()
    thread.join()
    assert init.kaiming_uniform_ is original


# --------------------------------------------------------------------------------------
# Layers counted at the operator level, and inputs other than one image
# --------------------------------------------------------------------------------------


class Tagger(nn.Module):
    """Token ids in, a tag per token out: an embedding, a 2-layer LSTM, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(1000, 32)
        self.lstm = nn.LSTM(32, 64, num_layers=2, batch_first=True)
        self.head = nn.Linear(64, 5)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(tokens))[0])


class Masked(nn.Module):
    """An image and an optional mask by name; attention over the pixels of the map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x)
        if mask is not None:
            y = y * mask.unsqueeze(1)
        tokens = y.flatten(2).transpose(1, 2)
        return self.attn(tokens, tokens, tokens, need_weights=False)[0]


def _torch_macs(model: nn.Module, *args: torch.Tensor, **kwargs: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(*args, **kwargs)
    return counter.get_total_flops() // 2


def test_token_ids_through_an_lstm_are_counted_every_gate_of_every_step() -> None:
    model = Tagger()
    report = analyze(model, "20:int64", batch=3)
    assert report.inputs == [{"name": None, "shape": [20], "dtype": "int64"}]
    # by hand: per step and sample, 4 gates of 64 units, each a product with (input + hidden)
    lstm = 3 * 20 * 4 * 64 * (32 + 64) + 3 * 20 * 4 * 64 * (64 + 64)
    head = 3 * 20 * 64 * 5
    assert report.macs == lstm + head
    assert report.flops is not None
    # torch.utils.flop_counter on real CPU tensors sees the head only: the CPU runs the LSTM as one
    # fused aten.lstm kernel its table has no formula for. On meta tensors the LSTM decomposes into
    # the addmm products counted above (fvcore and ptflops count them the same way).
    assert _torch_macs(model, torch.zeros(3, 20, dtype=torch.long)) == head
    assert report.receptive_field is None and "receptive_field" not in report.unknown  # no map, no field
    assert not report.has_map
    from cnnlab.analysis.render import report_rows

    assert {row[7] for row in report_rows(report.layers, report.has_map)} == {"-"}  # none, not unknown


def test_inputs_by_name_and_defaults_are_followed() -> None:
    model = Masked()
    with_mask = analyze(model, "3x8x8,mask=8x8")
    without = analyze(model, (3, 8, 8))
    assert [i["name"] for i in with_mask.inputs] == [None, "mask"]
    assert any(r.op == "mul" for r in with_mask.layers) and not any(r.op == "mul" for r in without.layers)
    # by hand: the convolution, the q/k/v and output projections of 64 tokens, two heads of 8 channels
    # each for Q K^T and for the weighted sum of V
    conv, projections, attention = 16 * 64 * 27, 64 * 16 * 48 + 64 * 16 * 16, 2 * 2 * 64 * 64 * 8
    assert with_mask.macs == without.macs == conv + projections + attention
    # torch's counter on the CPU sees the convolution only: eval-mode attention without weights runs
    # as one fused kernel (_native_multi_head_attention) its table has no formula for.
    assert _torch_macs(model, torch.randn(1, 3, 8, 8)) == conv


def test_a_feature_vector_and_transposed_convolutions_match_torch() -> None:
    mlp = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    assert analyze(mlp, "16").macs == 16 * 32 + 32 * 4
    up = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), nn.ConvTranspose2d(4, 2, 3))
    assert analyze(up, (8, 10, 10)).macs == _torch_macs(up, torch.randn(1, 8, 10, 10))


@pytest.mark.parametrize(("given", "message"), [
    ("3x8x8,bogus=8x8", "Masked.forward has no argument 'bogus': it takes x, mask"),
    ("mask=8x8", "Masked.forward needs 'x' too: add an input x=DIMS[:DTYPE]"),
    ("3x8x8,x=3x8x8", "input 'x' is given twice: by position and by name"),
    ("3x8x8,mask=8x8:complex", "input 'mask=8x8:complex': unknown dtype 'complex'; use one of bfloat16, bool, "
                               "float, float16, float32, float64, int, int32, int64, long, uint8"),
    ("mask=8x8,3x8x8", "inputs by position come before inputs by name, as in a Python call"),
    ("3x8x8,8x8,8x8", "3 inputs given by position, but Masked.forward takes x, mask"),
])
def test_inputs_that_do_not_fit_forward_are_one_line(given: str, message: str) -> None:
    with pytest.raises(CnnlabError) as info:
        analyze(Masked(), given)
    assert str(info.value) == message


class SplitPadDepth(nn.Module):
    """torch.split, reflection padding and stochastic depth: no arithmetic, fields by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(2)
        self.conv = nn.Conv2d(2, 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import stochastic_depth

        a, _b = torch.split(x, 2, dim=1)
        y = self.conv(self.pad(a))
        return stochastic_depth(y, 0.2, "row", training=False)


def test_zero_cost_operations_keep_the_report_complete_and_the_field_exact() -> None:
    report = analyze(SplitPadDepth(), (4, 16, 16))
    assert report.complete, report.unknown
    assert report.macs == 4 * 16 * 16 * 2 * 25  # the 5x5 convolution alone
    # reflection padding of 2 shifts the field, the 5x5 kernel widens it: r = 5, p = 2
    assert report.receptive_field == {"size": [5, 5], "stride": [1, 1], "padding": [2, 2]}


class Varargs(nn.Module):
    """forward(*inputs): inputs go in order, as given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return sum(self.conv(x) for x in inputs)


def test_a_forward_of_varargs_takes_its_inputs_in_order() -> None:
    assert analyze(Varargs(), (3, 8, 8)).macs == 4 * 6 * 6 * 27
    # torch.fx cannot iterate the inputs' tuple: the operator-level fallback counts both
    assert analyze(Varargs(), "3x8x8,3x8x8").macs == 2 * 4 * 6 * 6 * 27
