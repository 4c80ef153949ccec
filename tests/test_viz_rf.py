"""Receptive fields, training curves, model comparison and the picture tour (cnnlab.viz)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import cnnlab
from cnnlab.errors import CnnlabError
from cnnlab.viz import compare, curves, rf, tour


def _stack(n: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(1, 1, 3, bias=False) for _ in range(n)])


def _support(erf: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(erf)
    return rows.min(), rows.max(), cols.min(), cols.max()


@pytest.mark.parametrize(("layers", "side"), [(1, 3), (2, 5)])
def test_erf_of_3x3_stacks_is_exactly_the_window(layers: int, side: int) -> None:
    erf = rf.effective_receptive_field(_stack(layers), (1, 15, 15))
    assert erf.shape == (15, 15)
    assert erf.max() == pytest.approx(1.0)
    assert int((erf > 0).sum()) == side * side
    half = side // 2
    assert _support(erf) == (7 - half, 7 + half, 7 - half, 7 + half)


def test_erf_in_chunks_is_the_erf_of_all_samples_at_once() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)).eval()
    calls = []
    whole, *_ = rf.erf_details(model, (1, 15, 15), 6, 0, "4")
    chunked, name, spatial, centre = rf.erf_details(model, (1, 15, 15), 6, 0, "4", chunk=4,
                                                    between=lambda: calls.append(1), checked=True)
    # The same seeded samples, summed in two chunks instead of one batch: equal up to float rounding.
    assert np.allclose(whole, chunked, atol=1e-6) and len(calls) == 2
    assert (name, spatial, centre) == ("4", (9, 9), (4, 4))


def test_erf_named_layer_and_modes() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.Conv2d(2, 1, 3, bias=False))
    model.train()
    erf = rf.effective_receptive_field(model, (1, 15, 15), layer="0")
    assert int((erf > 0).sum()) == 9
    assert model.training  # restored
    with pytest.raises(CnnlabError, match="unknown layer 'nope'; valid names: 0, 1, 2"):
        rf.effective_receptive_field(model, (1, 15, 15), layer="nope")


def test_theoretical_fields_of_three_3x3() -> None:
    rows = rf.theoretical_fields(_stack(3), (1, 15, 15))
    assert [r.size for r in rows] == [3, 5, 7]
    assert [r.jump for r in rows] == [1, 1, 1]
    pooled = rf.theoretical_fields(nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3)),
                                   (1, 16, 16))
    assert [(r.size, r.jump) for r in pooled] == [(3, 1), (4, 2), (8, 2)]


def _pixels(path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_draw_rf_png_size(tmp_path) -> None:
    out = rf.draw_rf(_stack(3), (1, 15, 15), tmp_path / "sub" / "rf.png")
    assert out.is_file()
    assert _pixels(out) == (int(rf.FIGSIZE[0] * rf.DPI), int(rf.FIGSIZE[1] * rf.DPI))


def _write_run(folder, name: str, epochs: int = 3, model: str = "lenet5"):
    run = folder / name
    run.mkdir()
    lines = [json.dumps({"epoch": e, "step": 10 * e, "train_loss": 2.0 / e, "train_top1": 0.3 * e / epochs,
                         "val_loss": 2.2 / e, "val_top1": 0.25 * e / epochs, "val_top5": 0.9, "lr": 0.1,
                         "seconds": 1.0}) for e in range(1, epochs + 1)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run / "config.json").write_text(json.dumps({"recipe": "lenet5-mnist", "model": model}))
    return run


def test_curves_read_and_draw(tmp_path) -> None:
    a = _write_run(tmp_path, "a")
    b = _write_run(tmp_path, "b", epochs=2)
    records = curves.read_run(a)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[1]["val_loss"] == pytest.approx(1.1)
    assert curves.run_label(a) == "a (lenet5)"
    out = curves.draw_curves([a, b], tmp_path / "curves.png")
    assert _pixels(out) == (int(curves.FIGSIZE[0] * curves.DPI), int(curves.FIGSIZE[1] * curves.DPI))


def test_curves_bad_input_is_one_line(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = _write_run(tmp_path, "broken")
    (broken / "metrics.jsonl").write_text("{not json\n")
    cases = [(tmp_path / "missing", "no such run folder"), (empty, "has no metrics.jsonl"),
             (broken, r"line 1 is damaged \(not JSON\)")]
    for folder, message in cases:
        with pytest.raises(CnnlabError, match=message) as info:
            curves.draw_curves([folder], tmp_path / "x.png")
        assert "\n" not in str(info.value)
    assert not (tmp_path / "x.png").exists()


def test_compare_numbers_and_png(tmp_path) -> None:
    names = ["resnet20", "nin_cifar"]
    costs = compare.model_costs(names, (3, 32, 32))
    for cost, name in zip(costs, names, strict=True):
        report = cnnlab.analyze(name, (3, 32, 32))
        assert (cost.name, cost.params, cost.macs) == (name, report.params, report.macs)
    out = compare.draw_compare(names, (3, 32, 32), tmp_path / "cmp.png", accuracies={"resnet20": 0.91})
    assert _pixels(out) == (int(compare.FIGSIZE[0] * compare.DPI), int(compare.FIGSIZE[1] * compare.DPI))


def test_compare_accuracies_from_runs(tmp_path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"test": {"top1": 0.91}, "config": {"model": "resnet20"}}))
    assert compare.run_accuracies([run]) == {"resnet20": 0.91}
    with pytest.raises(CnnlabError, match=r"has no readable result\.json"):
        compare.run_accuracies([tmp_path / "none"])


def test_make_tour_writes_every_picture_it_links(tmp_path) -> None:
    page = tour.make_tour(tmp_path / "pics", "en")
    ko = tour.make_tour(tmp_path / "pics", "ko", page=tmp_path / "ko" / "tour.md", draw=False)
    for path in (page, ko):
        text = path.read_text(encoding="utf-8")
        links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
        assert len(links) == len(tour.PICTURES)
        for link in links:
            assert (path.parent / link).resolve().is_file(), link
    ko_text = ko.read_text(encoding="utf-8")
    assert "../pics/compare.png" in ko_text
    for term in ("합성곱", "패딩", "스트라이드", "수용 영역", "풀링"):
        assert term in ko_text
    en_text = page.read_text()
    assert "294,912" in en_text and "409,600" in en_text
    assert "40,960" in en_text and "147,456" in en_text
    with Image.open(tmp_path / "pics" / "compare.png") as img:
        assert img.size == (int(compare.FIGSIZE[0] * compare.DPI), int(compare.FIGSIZE[1] * compare.DPI))


def test_tour_pooling_numbers() -> None:
    pools = tour.pool_results()
    assert pools["max"] == [[6, 5], [7, 9]]
    assert pools["min"] == [[1, 0], [1, 4]]
    assert pools["avg"] == [[3.5, 2.0], [3.25, 6.75]]


def test_draw_rf_with_checkpoint(tmp_path) -> None:
    from cnnlab.checkpoint import save_checkpoint

    torch.manual_seed(1)
    trained = cnnlab.create_model("resnet20")
    ckpt = save_checkpoint(tmp_path / "best.pt", "resnet20", {}, trained.state_dict())
    out = rf.draw_rf("resnet20", (3, 32, 32), tmp_path / "rf.png", checkpoint=ckpt)
    assert _pixels(out) == (int(rf.FIGSIZE[0] * rf.DPI), int(rf.FIGSIZE[1] * rf.DPI))
    with pytest.raises(CnnlabError, match=r"missing\.pt does not exist: give a run folder or a checkpoint file"):
        rf.draw_rf("resnet20", (3, 32, 32), tmp_path / "x.png", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(CnnlabError, match="unknown model 'nosuchnet'"):
        rf.draw_rf("nosuchnet", (3, 32, 32), tmp_path / "x.png")
