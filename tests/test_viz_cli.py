"""`cnnlab viz ...` and `cnnlab tour` write their pictures; mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image


def _png(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


def test_every_viz_command_writes_a_png(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(
        {"epoch": e, "step": 10 * e, "train_loss": 1 / e, "train_top1": 0.5 + e / 10, "val_loss": 1.2 / e,
         "val_top1": 0.45 + e / 10, "val_top5": 0.9, "lr": 0.1, "seconds": 1.0}) for e in (1, 2, 3)) + "\n")
    (run / "config.json").write_text(json.dumps({"recipe": "lenet5-mnist", "model": "lenet5"}))
    commands = {
        "kernel.png": ["viz", "kernel", "--kernel", "1,0,-1;2,0,-2;1,0,-1", "--padding", "1",
                       "--padding-mode", "reflect"],
        "steps.png": ["viz", "conv-steps", "--input", "1,2,3;4,5,6;7,8,9", "--kernel", "1,0;0,1"],
        "filters.png": ["viz", "filters", "lenet5"],
        "features.png": ["viz", "features", "lenet5", "--layers", "features.0,features.3"],
        "gradcam.png": ["viz", "gradcam", "lenet5", "--class", "3"],
        "rf.png": ["viz", "rf", "lenet5"],
        "curves.png": ["viz", "curves", str(run)],
        "compare.png": ["viz", "compare", "resnet20", "densenet40_cifar", "--input", "3x32x32"],
    }
    for name, argv in commands.items():
        out = tmp_path / name
        code, stdout, err = cli(*argv, "--out", str(out), "--json")
        assert code == 0, (name, err)
        assert json.loads(stdout)["path"] == str(out)
        width, height = _png(out)
        assert width >= 300 and height >= 200


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["viz", "kernel", "/nonexistent.png"], "does not exist"),
        (["viz", "kernel", "--kernel", "blur99"], "blur99"),
        (["viz", "filters", "lenet5", "--layer", "nope"], "features.0"),
        (["viz", "features", "lenet5", "--layers", "nope"], "nope"),
        (["viz", "curves", "/nonexistent/run"], "/nonexistent/run"),
        (["viz", "rf", "nosuchnet"], "unknown model"),
        (["viz", "filters", "lenet5", "--set", "bogus=1"], "has no option 'bogus'"),
    ],
)
def test_viz_mistakes_are_one_line(cli, tmp_path: Path, argv: list[str], fragment: str) -> None:
    code, out, err = cli(*argv, "--out", str(tmp_path / "x.png"))
    assert code == 2 and out == ""
    assert fragment in err and err.count("\n") == 1, err


@pytest.mark.parametrize("what", ["filters", "features", "gradcam", "rf"])
def test_the_pictures_of_a_network_take_its_options_and_weights(cli, tmp_path: Path, monkeypatch,
                                                                 what: str) -> None:
    import torch

    from cnnlab import viz
    from cnnlab.models import create_model

    torch.manual_seed(1)
    saved = create_model("resnet20", num_classes=7, in_channels=1).state_dict()
    torch.save(saved, tmp_path / "w.pt")
    seen = []
    draw = f"draw_{what}"
    monkeypatch.setattr(viz, draw, lambda src, *a, **k: seen.append(src) or tmp_path / "x.png")
    code, _, err = cli("viz", what, "resnet20", "--num-classes", "7", "--in-channels", "1", "--weights",
                       str(tmp_path / "w.pt"), "--out", str(tmp_path / "x.png"))
    assert code == 0, err
    built = seen[0].build()  # the network the picture is drawn from: these options, these weights
    state = built.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)


def test_a_picture_drawn_with_options(cli, tmp_path: Path) -> None:
    # A gray-scale ResNet-20 and its field on a 1x32x32 input: without --in-channels, 1 channel does not fit.
    code, _, err = cli("viz", "rf", "resnet20", "--input", "1x32x32", "--out", str(tmp_path / "a.png"))
    assert code == 2 and "3 input channels" in err
    code, _, err = cli("viz", "rf", "resnet20", "--in-channels", "1", "--input", "1x32x32", "--out",
                       str(tmp_path / "b.png"))
    assert code == 0, err
    assert _png(tmp_path / "b.png")[0] > 0


def test_a_text_file_is_not_an_image(cli, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    code, _, err = cli("viz", "kernel", str(notes), "--out", str(tmp_path / "k.png"))
    assert code == 2 and "is not an image" in err


@pytest.mark.slow
def test_tour_command_writes_the_page_and_its_pictures(cli, tmp_path: Path) -> None:
    code, out, err = cli("tour", "--out", str(tmp_path / "tour"), "--json")
    assert code == 0, err
    doc = json.loads(out)
    # Both languages by default, over one set of pictures.
    assert [Path(p).name for p in doc["pages"]] == ["tour.md", "tour.ko.md"] and doc["path"] == doc["pages"][0]
    for page in map(Path, doc["pages"]):
        links = [line.split("](")[1].split(")")[0] for line in page.read_text().splitlines() if "![" in line]
        assert links and all((page.parent / link).is_file() for link in links)
    code, out, err = cli("tour", "--out", str(tmp_path / "ko"), "--lang", "ko")
    assert code == 0 and out.strip() == f"wrote {tmp_path / 'ko' / 'tour.ko.md'}"
    assert not (tmp_path / "ko" / "tour.md").exists()


@pytest.mark.slow
def test_every_tour_picture_is_what_the_command_beside_it_draws(cli, tmp_path: Path, monkeypatch) -> None:
    import shlex

    from cnnlab.viz.tour import PICTURE_COMMANDS, draw_pictures

    draw_pictures(tmp_path / "tour")
    monkeypatch.chdir(tmp_path)
    for name, command in PICTURE_COMMANDS.items():
        code, _, err = cli(*shlex.split(command)[1:])
        assert code == 0, err
        assert (tmp_path / name).read_bytes() == (tmp_path / "tour" / name).read_bytes(), command


def test_pooling_and_stack_pictures_from_the_command_line(cli, tmp_path: Path) -> None:
    from cnnlab.viz import stack_fields

    code, out, err = cli("viz", "pool", "--values", "1,3,2,1;4,6,5,0;7,2,9,8;3,1,4,6", "--kernel", "2",
                         "--out", str(tmp_path / "pool.png"), "--json")
    assert code == 0, err
    assert json.loads(out)["path"] == str(tmp_path / "pool.png") and (tmp_path / "pool.png").stat().st_size > 1000
    code, _, err = cli("viz", "erf-stacks", "3", "3,3", "5", "--out", str(tmp_path / "erf.png"))
    assert code == 0 and (tmp_path / "erf.png").is_file(), err
    # Uniform weights: the field is exactly the theoretical one, the centre reached by the most paths.
    fields = stack_fields(("3", "3,3", "5"), 11)
    assert {name: int((erf > 0).sum()) for name, erf in fields.items()} == {"one 3x3": 9, "two 3x3": 25, "one 5x5": 25}
    two = fields["two 3x3"]
    assert two[5, 5] == 1.0 and two[3, 3] == pytest.approx(1 / 9) and two[5, 3] == pytest.approx(3 / 9)
    for argv, message in ((["erf-stacks", "3,x"], "a stack is kernel sizes"),
                          (["erf-stacks", "9", "--size", "5"], "use --size 9 or more"),
                          (["pool", "--values", "1,2;3"], "the same number of values"),
                          (["pool", "--values", "1,2;3,4", "--kernel", "3"], "the pooling window")):
        code, _, err = cli("viz", *argv, "--out", str(tmp_path / "x.png"))
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_a_saved_picture_leaves_no_figure_open(trained_run: Path, tmp_path: Path) -> None:
    """The explorer draws for as long as it runs: every figure is closed once written."""
    import matplotlib.pyplot as plt

    from cnnlab import viz

    before = plt.get_fignums()
    viz.draw_curves(trained_run, tmp_path / "c.png")
    viz.draw_rf("lenet5", (1, 28, 28), tmp_path / "rf.png", samples=1)
    viz.draw_compare(["resnet20", "resnet32"], (3, 32, 32), tmp_path / "cmp.png")
    assert plt.get_fignums() == before
