"""The bundled test images, and what a finished run suggests next: after `make run`, nothing to find by hand."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.checkpoint import load_checkpoint
from cnnlab.data import load_dataset
from cnnlab.data.bundled import SAMPLES, default_image, sample_images
from cnnlab.errors import CnnlabError
from cnnlab.train.inference import predict
from cnnlab.viz.common import prepare_input


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_each_bundled_image_is_the_first_test_image_of_its_class(name: str) -> None:
    ds = load_dataset(name)
    assert len(sample_images(name)) == 10
    for label, cls in enumerate(ds.classes):
        first = int((ds.test.labels == label).nonzero()[0])
        slug = re.sub(r"[^a-z0-9]+", "-", cls.lower()).strip("-")  # "T-shirt/top" -> "t-shirt-top"
        pixels = torch.from_numpy(np.array(Image.open(SAMPLES / f"{name}-{slug}.png")))
        assert torch.equal(pixels, ds.test.images[first, 0]), (name, cls)


def test_the_default_image_follows_the_dataset() -> None:
    assert default_image("mnist").name == default_image("mnist-5k").name == "mnist-7.png"
    assert default_image("fashion-mnist").name == "fashion-mnist-ankle-boot.png"
    assert default_image("cifar10") is None and default_image(None) is None
    with pytest.raises(CnnlabError, match="no bundled images for 'cifar10'"):
        sample_images("cifar10")


def test_an_mnist_network_is_shown_a_digit_and_others_the_photo() -> None:
    from cnnlab.models import create_model

    lenet = create_model("lenet5")
    _, digit = prepare_input(None, lenet, {"dataset": "mnist", "input_size": [1, 28, 28]})
    expected = np.asarray(Image.open(default_image("mnist")), dtype=np.float32) / 255
    assert digit.shape == (28, 28) and np.allclose(digit, expected, atol=1e-6)
    _, photo = prepare_input(None, lenet, {"input_size": [1, 28, 28]})
    assert not np.allclose(photo, expected)


def test_predict_and_features_need_no_image_for_an_mnist_run(trained_run: Path, cli, tmp_path: Path) -> None:
    assert load_checkpoint(trained_run / "best.pt")["data"]["dataset"] == "mnist-5k"
    (result,) = predict(trained_run)
    assert Path(result["image"]).name == "mnist-7.png" and len(result["top"]) == 5
    code, out, err = cli("predict", str(trained_run), "--json")
    assert code == 0, err
    assert json.loads(out)["predictions"][0]["top"] == result["top"]
    code, out, err = cli("predict", str(trained_run), "--top", "1")
    top = result["top"][0]
    assert code == 0 and out == f"bundled test image mnist-7.png: {top['class']} {top['probability']:.1%}\n", err
    code, out, err = cli("viz", "features", str(trained_run), "--out", str(tmp_path / "f.png"), "--json")
    assert code == 0, err
    assert (tmp_path / "f.png").is_file()
    # The pictures and the explorer see the run's data too: the digit, not the photo.
    from cnnlab.lab import Lab
    from cnnlab.viz.common import model_or_checkpoint

    assert model_or_checkpoint(trained_run)[1]["dataset"] == "mnist-5k"
    inside = Lab(trained_run.parent, scope="explorer").inside(run=trained_run.name)
    shown = np.array(Image.open(io.BytesIO(base64.b64decode(inside["image"].split(",", 1)[1]))).convert("L"))
    assert np.array_equal(shown, np.array(Image.open(default_image("mnist"))))
    assert inside["predictions"][0]["class"] == result["top"][0]["class"]


def test_a_finished_run_prints_the_three_commands_to_try_next(cli, tmp_path: Path) -> None:
    code, out, err = cli("train", "--dataset", "mnist-5k", "--limit", "200", "--epochs", "1", "--batch-size", "50",
                         "--device", "cpu", "--out", str(tmp_path), "--name", "r", "--quiet")
    assert code == 0, err
    run = tmp_path / "r"
    tail = out[out.index("next:"):]
    assert f"cnnlab viz curves {run}" in tail and f"cnnlab viz features {run}" in tail
    assert f"cnnlab serve --runs {tmp_path}" in tail
    # Each suggestion works as printed.
    for argv in (["viz", "curves", str(run), "--out", str(tmp_path / "c.png")],
                 ["viz", "features", str(run), "--out", str(tmp_path / "f.png")]):
        assert cli(*argv)[0] == 0
