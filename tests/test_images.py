"""Image files decode to the right uint8 values whatever their bit depth: scaled, never clipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.folder import FolderDataset
from cnnlab.errors import CnnlabError
from cnnlab.train.inference import image_tensor, load_image


def _expected(values: np.ndarray, scale: float, offset: float = 0.0) -> torch.Tensor:
    return torch.from_numpy(np.rint((values.astype(np.float64) - offset) * scale).astype(np.uint8)).unsqueeze(0)


def test_a_16_bit_png_is_scaled_by_its_range_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 1000, 32768], [40000, 60000, 65280, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode == "I;16"  # what Pillow makes of a 16-bit grey PNG
    got = load_image(tmp_path / "deep.png")
    assert got.dtype == torch.uint8 and got.shape == (1, 2, 4)
    assert torch.equal(got, _expected(values, 255 / 65535))
    assert got[0, 0].tolist() == [0, 1, 4, 128]  # Pillow's own convert("L") gives [0, 255, 255, 255]


def test_a_dark_16_bit_digit_keeps_its_shape(tmp_path: Path) -> None:
    digit = np.zeros((28, 28), dtype=np.uint16)
    digit[6:22, 12:16] = 50_000  # a stroke: bright, but far above 255
    digit[4:24, 10:18][digit[4:24, 10:18] == 0] = 3_000  # a faint halo
    Image.fromarray(digit).save(tmp_path / "digit16.png")
    got = load_image(tmp_path / "digit16.png")[0]
    assert got[10, 13] == round(50_000 * 255 / 65535) == 195
    assert got[5, 11] == round(3_000 * 255 / 65535) == 12
    assert got[0, 0] == 0


def test_a_float_tiff_within_0_1_is_read_as_0_255(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    Image.fromarray(values).save(tmp_path / "float.tif")
    with Image.open(tmp_path / "float.tif") as img:
        assert img.mode == "F"
    got = load_image(tmp_path / "float.tif")
    assert torch.equal(got, _expected(values, 255))
    assert got.max() == 255 and got.float().mean() > 100  # not black


def test_a_float_tiff_beyond_0_1_is_scaled_by_its_own_range(tmp_path: Path) -> None:
    values = np.array([[-2.0, 0.0, 2.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    Image.fromarray(values).save(tmp_path / "wide.tif")
    got = load_image(tmp_path / "wide.tif")
    assert torch.equal(got, _expected(values, 255 / 8, offset=-2.0))
    assert got[0, 0, 0] == 0 and got[0, 1, 2] == 255


def test_32_bit_integer_images_use_the_range_that_holds_them() -> None:
    small = np.array([[0, 17, 255]], dtype=np.int32)
    wide = np.array([[0, 1000, 65535]], dtype=np.int32)
    signed = np.array([[-100, 0, 155]], dtype=np.int32)
    assert image_tensor(Image.fromarray(small, mode="I"))[0, 0].tolist() == [0, 17, 255]
    assert image_tensor(Image.fromarray(wide, mode="I"))[0, 0].tolist() == [0, 4, 255]
    assert image_tensor(Image.fromarray(signed, mode="I"))[0, 0].tolist() == [0, 100, 255]


def test_eight_bit_images_are_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert torch.equal(load_image(tmp_path / "grey.png"), torch.from_numpy(grey).unsqueeze(0))
    assert torch.equal(load_image(tmp_path / "rgb.png"), torch.from_numpy(rgb).permute(2, 0, 1))


def test_non_finite_pixels_are_refused_in_one_line(tmp_path: Path) -> None:
    Image.fromarray(np.array([[0.5, np.nan]], dtype=np.float32)).save(tmp_path / "nan.tif")
    with pytest.raises(CnnlabError, match="NaN or infinite pixels") as info:
        load_image(tmp_path / "nan.tif")
    assert "\n" not in str(info.value) and "nan.tif" in str(info.value)


def test_image_folders_decode_16_bit_files_the_same_way(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 32768, 65535]], dtype=np.uint16)
    (tmp_path / "digits" / "seven").mkdir(parents=True)
    Image.fromarray(values).save(tmp_path / "digits" / "seven" / "a.png")
    grey = FolderDataset(tmp_path / "digits", channels=1)
    colour = FolderDataset(tmp_path / "digits", channels=3)
    path = grey.samples[0][0]
    assert torch.equal(grey.decode(path), _expected(values, 255 / 65535))
    assert torch.equal(colour.decode(path), _expected(values, 255 / 65535).expand(3, -1, -1))
