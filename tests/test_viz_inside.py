"""cnnlab.viz: classic kernels, conv steps, filters, feature maps and Grad-CAM (numbers and PNGs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.checkpoint import save_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.scratch.explain import explain_convolution
from cnnlab.viz import (
    CLASSIC_KERNELS,
    apply_kernel,
    default_layers,
    draw_conv_steps,
    draw_features,
    draw_filters,
    draw_gradcam,
    draw_kernel,
    feature_maps,
    grad_cam,
    load_image,
    model_or_checkpoint,
    sample_photo,
    save_figure,
)
from cnnlab.viz.common import new_figure
from cnnlab.viz.gradcam import default_cam_layer

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, size: tuple[int, int]) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as img:
        assert img.size == size


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A small RGB picture: dark left half, bright right half."""
    arr = np.zeros((40, 48, 3), dtype=np.uint8)
    arr[:, 24:] = (200, 180, 160)
    path = tmp_path / "photo.png"
    Image.fromarray(arr).save(path)
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------------------
# Figures and images
# ---------------------------------------------------------------------------------------


def test_save_figure_is_atomic_and_exact_size(tmp_path: Path) -> None:
    fig = new_figure(320, 240)
    fig.add_subplot().plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "a" / "b" / "fig.png")
    assert out == tmp_path / "a" / "b" / "fig.png"
    assert_png(out, (320, 240))
    assert [p.name for p in out.parent.iterdir()] == ["fig.png"]  # no temporary left behind


def test_sample_photo_and_load_image(photo: Path) -> None:
    assert sample_photo().is_file()
    img = load_image(photo)
    assert img.dtype == torch.uint8 and tuple(img.shape) == (3, 40, 48)


def test_bad_images_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError) as exc:
        load_image(tmp_path / "missing.png")
    assert "does not exist" in one_line(exc)
    note = tmp_path / "note.txt"
    note.write_text("not a picture")
    with pytest.raises(CnnlabError) as exc:
        draw_kernel(note, "box3", tmp_path / "k.png")
    assert "not an image" in one_line(exc)
    with pytest.raises(CnnlabError) as exc:
        draw_features("lenet5", tmp_path / "missing.jpg", tmp_path / "f.png")
    assert "does not exist" in one_line(exc)


def test_model_or_checkpoint(tmp_path: Path) -> None:
    model, meta = model_or_checkpoint("lenet5")
    assert not model.training and meta["input_size"] == [1, 28, 28] and meta["classes"] is None
    again, _ = model_or_checkpoint("lenet5")
    assert torch.equal(model.features[0].weight, again.features[0].weight)  # seeded
    classes = [str(i) for i in range(10)]
    save_checkpoint(tmp_path / "run" / "best.pt", "lenet5", {}, model.state_dict(),
                    data={"classes": classes, "mean": [0.1], "std": [0.3], "input_size": [1, 28, 28]})
    loaded, meta = model_or_checkpoint(tmp_path / "run")
    assert meta["classes"] == classes and meta["mean"] == [0.1] and meta["name"] == "lenet5"
    assert torch.equal(loaded.features[0].weight, model.features[0].weight)
    with pytest.raises(CnnlabError) as exc:
        model_or_checkpoint("no-such-model")
    assert "unknown model 'no-such-model'" in one_line(exc)


# ---------------------------------------------------------------------------------------
# Classic kernels
# ---------------------------------------------------------------------------------------


def test_classic_kernels() -> None:
    assert np.allclose(CLASSIC_KERNELS["box3"], np.full((3, 3), 1 / 9))
    assert CLASSIC_KERNELS["gaussian5"].shape == (5, 5)
    assert CLASSIC_KERNELS["gaussian5"].sum() == pytest.approx(1.0)
    assert CLASSIC_KERNELS["gaussian5"][2, 2] == pytest.approx(36 / 256)
    assert CLASSIC_KERNELS["laplacian"].tolist() == [[0, 1, 0], [1, -4, 1], [0, 1, 0]]
    assert CLASSIC_KERNELS["sharpen"].sum() == 1


def test_box_kernel_is_the_mean() -> None:
    image = np.array([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15]], dtype=float)
    out = apply_kernel(image, "box3")
    # top-left window 0,1,2,4,5,6,8,9,10 -> 45/9 = 5; each step right adds 1, each step down adds 4
    assert out.shape == (2, 2)
    assert np.allclose(out, [[5, 6], [9, 10]])
    assert np.allclose(apply_kernel(image, "box3", stride=2), [[5]])


def test_sobel_x_on_a_vertical_edge() -> None:
    image = np.array([[0, 0, 0, 10, 10]] * 3, dtype=float)
    # cross-correlation with columns (1,2,1) . left - (1,2,1) . right: 0 on flat, -4*10 across the edge
    assert np.allclose(apply_kernel(image, "sobel-x"), [[0, -40, -40]])
    assert np.allclose(apply_kernel(image, "1,0,-1;2,0,-2;1,0,-1"), [[0, -40, -40]])
    assert np.allclose(apply_kernel(image, "sobel-y"), [[0, 0, 0]])


def test_padding_modes_change_the_border() -> None:
    image = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=float)
    corners = {
        "zeros": (1 + 2 + 4 + 5) / 9,  # [[0,0,0],[0,1,2],[0,4,5]]
        "reflect": (5 + 4 + 5 + 2 + 1 + 2 + 5 + 4 + 5) / 9,  # mirror without the edge
        "replicate": (1 + 1 + 2 + 1 + 1 + 2 + 4 + 4 + 5) / 9,  # edge repeated
        "circular": (9 + 7 + 8 + 3 + 1 + 2 + 6 + 4 + 5) / 9,  # wrapped around
    }
    for mode, corner in corners.items():
        out = apply_kernel(image, "box3", padding=1, padding_mode=mode)
        assert out.shape == (3, 3)
        assert out[0, 0] == pytest.approx(corner), mode
        assert out[1, 1] == pytest.approx(5.0), mode  # the centre never sees the padding


def test_rgb_uses_luma() -> None:
    rgb = torch.zeros(3, 4, 4, dtype=torch.uint8)
    rgb[0] = 100  # pure red
    assert np.allclose(apply_kernel(rgb, "box3"), 0.299 * 100)


def test_kernel_errors_are_one_line() -> None:
    image = np.zeros((5, 5))
    with pytest.raises(CnnlabError) as exc:
        apply_kernel(image, "blur9")
    assert "box3" in one_line(exc)
    with pytest.raises(CnnlabError) as exc:
        apply_kernel(image, "box3", padding=1, padding_mode="mirror")
    assert "reflect" in one_line(exc)
    with pytest.raises(CnnlabError):
        apply_kernel(np.zeros((2, 2)), "box3")


def test_draw_kernel_png(photo: Path, tmp_path: Path) -> None:
    out = draw_kernel(photo, "gaussian5", tmp_path / "k.png", stride=2, padding=2, padding_mode="reflect")
    assert_png(out, (1500, 560))


def test_conv_steps_default_numbers_and_png(tmp_path: Path) -> None:
    assert explain_convolution().output == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    out = draw_conv_steps(out=tmp_path / "steps.png")
    assert_png(out, (1200, 340 * 3 + 120))  # 9 placements: 3x3 panels
    capped = draw_conv_steps(padding=2, out=tmp_path / "capped.png", max_panels=4)  # 49 placements
    assert_png(capped, (1200, 340 * 2 + 120))


# ---------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------


def test_filters_first_layer_and_named_layer(tmp_path: Path) -> None:
    assert_png(draw_filters("resnet18", tmp_path / "rgb.png"), (900, 960))
    assert_png(draw_filters("lenet5", tmp_path / "gray.png"), (900, 960))
    out = draw_filters("resnet18", tmp_path / "layer.png", layer="layer1.0.conv1")  # 64x64 -> 16x8 shown
    assert_png(out, (110 * 8 + 120, 90 * 16 + 110))
    assert_png(draw_filters(create_model("lenet5"), tmp_path / "l2.png", layer="features.3"),
               (110 * 6 + 120, 90 * 16 + 110))


def test_filters_unknown_layer_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError) as exc:
        draw_filters("resnet18", tmp_path / "x.png", layer="layer9.conv")
    text = one_line(exc)
    assert "'layer9.conv'" in text and "conv1" in text and "layer1.0.conv1" in text
    assert "(20 in all)" in text  # resnet18 has 20 convolutions; the list is cut short
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------
# Feature maps
# ---------------------------------------------------------------------------------------


def test_feature_maps_come_from_the_named_layers() -> None:
    model = create_model("lenet5").eval()
    x = torch.randn(1, 1, 28, 28)
    maps = feature_maps(model, x, ["features.0", "features.3"])
    with torch.no_grad():
        first = model.features[0](x)
        second = model.features[:4](x)
    assert list(maps) == ["features.0", "features.3"]
    assert maps["features.0"].shape == (1, 6, 28, 28) and torch.equal(maps["features.0"], first)
    assert maps["features.3"].shape == (1, 16, 10, 10) and torch.equal(maps["features.3"], second)


def test_default_layers_are_convolutions_that_run_in_eval_mode() -> None:
    # GoogLeNet registers its auxiliary classifiers after inception4, so by registration the last
    # convolution is aux2's, which only training runs.
    model = create_model("googlenet").eval()
    x = torch.randn(1, 3, 224, 224)
    assert default_layers(model)[-1] == "aux2.conv.conv"
    picked = default_layers(model, x)
    assert picked == ["conv1.conv", "inception4c.branch2.0.conv", "inception5b.branch4.1.conv"]
    maps = feature_maps(model, x, picked)
    assert list(maps) == picked  # every default layer runs, so none goes missing
    assert default_layers(create_model("resnet20"), torch.randn(1, 3, 32, 32)) == default_layers(
        create_model("resnet20"))


def test_feature_maps_match_independent_hooks_on_resnet20() -> None:
    model = create_model("resnet20").eval()
    x = torch.randn(1, 3, 32, 32)
    names = default_layers(model)
    assert names == ["conv1", "layer2.1.conv1", "layer3.2.conv2"]  # first, middle, last of 19
    seen: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(
        lambda _m, _i, o, n=n: seen.__setitem__(n, tuple(o.shape))) for n in names]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    maps = feature_maps(model, x, names)
    assert {n: tuple(t.shape) for n, t in maps.items()} == seen
    assert seen["conv1"] == (1, 16, 32, 32) and seen["layer3.2.conv2"] == (1, 64, 8, 8)


def test_feature_maps_unknown_layer(tmp_path: Path) -> None:
    model = create_model("lenet5")
    with pytest.raises(CnnlabError) as exc:
        feature_maps(model, torch.zeros(1, 1, 28, 28), ["features.0", "conv9"])
    text = one_line(exc)
    assert "'conv9'" in text and "features.0, features.3" in text


def test_draw_features_png(photo: Path, tmp_path: Path) -> None:
    out = draw_features("lenet5", photo, tmp_path / "f.png")  # default: 2 convolutions
    assert_png(out, (150 * 9, 170 * 2 + 90))
    out = draw_features("lenet5", photo, tmp_path / "g.png", layers="features.0,features.4,features.5",
                        max_maps=4)
    assert_png(out, (150 * 5, 170 * 3 + 90))


# ---------------------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------------------


def patch_model(inplace: bool = False) -> nn.Module:
    """Sums 3x3 neighbourhoods, keeps the positive part, pools; class 0 = evidence, class 1 = against."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    linear = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        linear.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return nn.Sequential(conv, nn.ReLU(inplace=inplace), nn.AdaptiveAvgPool2d(1), nn.Flatten(), linear).eval()


def patch_image() -> torch.Tensor:
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 20:24, 5:9] = 1.0
    return x


def test_grad_cam_peaks_on_the_planted_patch() -> None:
    model, x = patch_model(), patch_image()
    assert default_cam_layer(model, x) == "1"  # the ReLU after the convolution
    heat, k, score = grad_cam(model, x)
    assert k == 0 and score > 0
    assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    r, c = np.unravel_index(heat.argmax(), heat.shape)
    assert 20 <= r < 24 and 5 <= c < 9
    assert heat[:10, 20:].max() == 0  # no evidence far from the patch
    against = grad_cam(model, x, class_index=1)
    assert against.score < 0 and against.heatmap.max() == 0  # only negative evidence: ReLU removes it


def test_grad_cam_with_inplace_relu_and_frozen_weights() -> None:
    model, x = patch_model(inplace=True), patch_image()
    for p in model.parameters():
        p.requires_grad_(False)
    heat, _, _ = grad_cam(model, x, layer="0")
    r, c = np.unravel_index(heat.argmax(), heat.shape)
    assert 20 <= r < 24 and 5 <= c < 9


def test_grad_cam_unknown_layer_and_class() -> None:
    model = patch_model()
    with pytest.raises(CnnlabError) as exc:
        grad_cam(model, patch_image(), layer="head")
    assert "'head'" in one_line(exc) and "valid names are 0" in str(exc.value)
    with pytest.raises(CnnlabError):
        grad_cam(model, patch_image(), class_index=5)


def test_draw_gradcam_png(tmp_path: Path) -> None:
    image = (patch_image()[0] * 255).to(torch.uint8)
    meta = {"input_size": [1, 32, 32], "mean": [0.0], "std": [1.0], "classes": ["patch", "none"]}
    out = draw_gradcam(patch_model(), image, tmp_path / "cam.png", meta=meta)
    assert_png(out, (1350, 520))
    assert_png(draw_gradcam("lenet5", None, tmp_path / "lenet.png"), (1350, 520))
