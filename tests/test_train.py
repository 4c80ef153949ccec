"""Training: exact resume, atomic checkpoints, recipes, eval/predict, torchrun, and one line per mistake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnlab.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.train.config import TrainConfig, override
from cnnlab.train.loop import fit, lr_factor
from cnnlab.train.recipes import RECIPES, get_recipe
from runlib import small_config

REPO = Path(__file__).resolve().parents[1]


small = small_config


def weights(run_dir: Path, name: str = "last.pt") -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / name)["state_dict"]


# --------------------------------------------------------------------------------------
# Resume and checkpoints
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_at", [7, 20])  # mid-epoch, and exactly at the epoch boundary
def test_an_interrupted_and_resumed_run_ends_with_identical_weights(tmp_path: Path, stop_at: int) -> None:
    # dropout and augmentation make every random generator matter
    cfg = small(tmp_path, name="whole", crop_padding=2, flip=True, model_options={})
    whole = fit(cfg, quiet=True)
    assert whole.status == "finished" and whole.steps == 40
    cut = small(tmp_path, name="cut", crop_padding=2, flip=True)
    first = fit(cut, on_step=lambda step: step == stop_at, quiet=True)
    assert first.status == "interrupted" and first.steps == stop_at
    resumed = fit(None, resume=first.run_dir, quiet=True)  # type: ignore[arg-type]
    assert resumed.status == "finished" and resumed.steps == 40
    a, b = weights(whole.run_dir), weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [h["val_top1"] for h in whole.history] == [h["val_top1"] for h in resumed.history]
    assert resumed.test == whole.test


def test_a_checkpoint_survives_a_kill_during_save(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, "lenet5", {}, {"w": torch.zeros(3)}, step=1)
    script = (
        "import torch, sys\n"
        "from cnnlab.checkpoint import save_checkpoint\n"
        "big = {'w': torch.randn(16_000_000)}\n"
        "print('ready', flush=True)\n"
        "while True:\n"
        f"    save_checkpoint({str(path)!r}, 'lenet5', {{}}, big, step=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.8)  # several saves of 64 MB are under way; kill one in the middle
    proc.kill()
    proc.wait()
    ckpt = load_checkpoint(path)  # whichever version is there is whole
    assert ckpt["step"] in (1, 2)
    assert ckpt["state_dict"]["w"].numel() in (3, 16_000_000)


def test_nan_loss_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    cfg = small(tmp_path, name="nan", epochs=3, lr=1e6, schedule="constant", nesterov=False)
    with pytest.raises(CnnlabError, match=r"the loss became (nan|inf)") as info:
        fit(cfg, quiet=True)
    assert "\n" not in str(info.value)
    run = tmp_path / "nan"
    if (run / "last.pt").exists():  # written only at the end of a finite epoch
        for value in weights(run).values():
            assert torch.isfinite(value.float()).all()


def test_tensorboard_events_and_mixed_precision_on_the_cpu(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = fit(small(tmp_path, name="tb", tensorboard=True, precision="bf16", lr=0.05), quiet=True)
    assert result.status == "finished" and result.test["top1"] > 0.3
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    assert {"train_loss", "val_top1", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val_top1")] == [20, 40]


def test_resuming_from_something_else_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError, match="does not exist"):
        fit(None, resume=tmp_path / "nothing")  # type: ignore[arg-type]
    plain = save_checkpoint(tmp_path / "weights.pt", "lenet5", {}, {})
    with pytest.raises(CnnlabError, match="no training state"):
        fit(None, resume=plain)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Schedules and recipes
# --------------------------------------------------------------------------------------


def test_learning_rate_schedules() -> None:
    he = get_recipe("resnet20-cifar10")  # 64k iterations, /10 at 32k and 48k
    assert [lr_factor(he, s, 64_000, 352) for s in (0, 31_999, 32_000, 47_999, 48_000)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01])
    step = TrainConfig(schedule="step", step_size=30, gamma=0.1)
    assert lr_factor(step, 29 * 100 + 99, 9000, 100) == 1 and lr_factor(step, 30 * 100, 9000, 100) == pytest.approx(0.1)
    cos = TrainConfig(schedule="cosine", warmup=1.0)
    assert lr_factor(cos, 0, 1000, 100) == pytest.approx(0.01)  # warm-up starts at 1/100 of the peak
    assert lr_factor(cos, 99, 1000, 100) == pytest.approx(1.0)
    assert lr_factor(cos, 550, 1000, 100) == pytest.approx(0.5)  # half-way through the cosine
    one = TrainConfig(schedule="onecycle")
    values = [lr_factor(one, s, 1000, 100) for s in range(1000)]
    assert values[0] == pytest.approx(1 / 25) and max(values) == pytest.approx(1.0, abs=1e-4)
    assert values.index(max(values)) in (249, 250) and values[-1] < 1e-3


def _fake_cifar(root: Path, n: int = 40) -> Path:
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = torch.randint(0, 256, (n, 3072), dtype=torch.uint8, generator=g).numpy()
        labels = torch.randint(0, 10, (n,), generator=g).tolist()
        with (folder / name).open("wb") as fh:
            pickle.dump({b"data": data, b"labels": labels}, fh)
    with (folder / "batches.meta").open("wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)
    return root


def _png(path: Path, image: torch.Tensor) -> None:
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


def _fake_folder(root: Path, side: int = 72) -> Path:
    g = torch.Generator().manual_seed(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(4):
                _png(d / f"{i}.png", torch.randint(0, 256, (3, side, side), dtype=torch.uint8, generator=g))
    return root


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_builds_and_runs_a_few_steps(tmp_path: Path, name: str) -> None:
    recipe = get_recipe(name)
    changes: dict = dict(iterations=2, epochs=1, batch_size=4, eval_batch_size=8, out=str(tmp_path), device="cpu",
                         workers=0, log_every=1)
    if recipe.dataset.startswith("cifar"):
        changes.update(data_root=str(_fake_cifar(tmp_path / "data")), val_size=20, milestones=[1])
    elif recipe.dataset == "imagefolder":
        changes.update(data_root=str(_fake_folder(tmp_path / "data")), random_resized_crop=64)
    elif recipe.dataset == "fashion-mnist" and not Path("/usr/share/datasets/fashion-mnist").is_dir():
        changes.update(dataset="mnist-5k")
    else:
        changes.update(limit=200)
    result = fit(override(recipe, changes), quiet=True)
    assert result.status == "finished" and result.steps == 2
    assert (result.run_dir / "best.pt").is_file() and (result.run_dir / "metrics.jsonl").is_file()


def test_recipes_name_their_source() -> None:
    for recipe in RECIPES.values():
        assert recipe.source, recipe.recipe
    he = get_recipe("resnet56-cifar10")
    assert (he.val_size, he.lr, he.momentum, he.weight_decay, he.batch_size, he.iterations) == (
        5000, 0.1, 0.9, 1e-4, 128, 64_000)
    assert he.crop_padding == 4 and he.flip


# --------------------------------------------------------------------------------------
# The command line, eval and predict
# --------------------------------------------------------------------------------------


def test_train_eval_predict_from_the_cli(cli, tmp_path: Path) -> None:
    code, out, err = cli("train", "--dataset", "mnist-5k", "--limit", "1000", "--epochs", "2", "--batch-size", "50",
                         "--out", str(tmp_path), "--name", "tiny", "--json", "--quiet", "--device", "cpu", "--lr", "0.05")
    assert code == 0, err
    run = json.loads(out)
    assert run["status"] == "finished" and run["test"]["samples"] > 0 and run["test"]["top1"] > 0.5
    lines = (tmp_path / "tiny" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[-1])["epoch"] == 2
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["dataset"] == "mnist-5k"

    code, out, _ = cli("eval", str(tmp_path / "tiny"), "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["confusion"]) == 10
    assert sum(map(sum, doc["confusion"])) == doc["samples"]
    assert doc["top1"] == pytest.approx(sum(doc["confusion"][i][i] for i in range(10)) / doc["samples"])
    assert doc["top1"] == pytest.approx(run["test"]["top1"])

    from cnnlab.data import load_dataset

    ds = load_dataset("mnist-5k", limit=1000)
    _png(tmp_path / "digit.png", ds.test.images[0])
    code, out, _ = cli("predict", str(tmp_path / "tiny"), str(tmp_path / "digit.png"), "--top", "3", "--json")
    top = json.loads(out)["predictions"][0]["top"]
    assert code == 0 and len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
    assert {t["class"] for t in top} <= set(ds.classes)

    (tmp_path / "notes.txt").write_text("not an image")
    code, _, err = cli("predict", str(tmp_path / "tiny"), str(tmp_path / "notes.txt"))
    assert code == 2 and "is not an image" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--recipe", "resnet9-mnist"], "unknown recipe"),
        (["train", "--schedule", "wavy"], "schedule must be one of"),
        (["train", "--epochs", "many"], "takes an integer"),
        (["train", "--model", "alexnet", "--dataset", "mnist-5k"], "--adapt-size"),
        (["train", "--dataset", "imagenet22k"], "imagenet22k"),
        (["train", "--set", "flavour=sweet", "--dataset", "mnist-5k"], "flavour"),
        (["eval", "/nonexistent/run"], "does not exist"),
        (["train", "--resume", "runs/x", "--lr", "0.1"], "drop --lr"),
    ],
)
def test_bad_training_input_is_one_line(cli, argv: list[str], fragment: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2 and out == ""
    assert fragment in err and err.count("\n") == 1, err


def test_show_config_and_recipes(cli) -> None:
    code, out, _ = cli("train", "--recipe", "resnet20-cifar10", "--lr", "0.05", "--show-config", "--json")
    cfg = json.loads(out)
    assert code == 0 and cfg["lr"] == 0.05 and cfg["iterations"] == 64_000
    code, out, _ = cli("recipes", "--json")
    assert {r["recipe"] for r in json.loads(out)["recipes"]} == set(RECIPES)


# --------------------------------------------------------------------------------------
# Many processes
# --------------------------------------------------------------------------------------


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    # In fp32: bf16 rounds a half batch's products differently from a whole one's, so only fp32 agrees to 1e-5.
    args = ["--dataset", "mnist-5k", "--limit", "600", "--epochs", "1", "--batch-size", "40", "--device", "cpu",
            "--out", str(tmp_path), "--quiet", "--json", "--lr", "0.05", "--precision", "fp32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "cnnlab", "train", *args, "--name", "one"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    multi = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port",
                            "29517", "-m", "cnnlab", "train", *args, "--name", "two"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-2000:]
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    one_steps = json.loads(single.stdout)["steps"]
    assert json.loads(multi.stdout)["steps"] == one_steps  # rank 0 alone prints its result
    assert json.loads((tmp_path / "two" / "result.json").read_text())["steps"] == one_steps
