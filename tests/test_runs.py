"""Run folders: one owner, no lost run, one consistent state after any interruption."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from cnnlab.atomic import atomic_write
from cnnlab.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.runs import RunDir
from cnnlab.train.config import override
from cnnlab.train.loop import fit
from cnnlab.train.recipes import get_recipe
from runlib import TINY, assert_same_run, metrics, untimed


def tiny(out: Path, **changes):
    """The config TINY spells on the command line, for the Python API."""
    base = dict(dataset="mnist-5k", limit=500, epochs=2, batch_size=50, eval_batch_size=500, device="cpu", lr=0.2,
                crop_padding=2, checkpoint_every=4, log_every=5, out=str(out), name="r")
    return override(get_recipe("lenet5-mnist"), {**base, **changes})


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one is compared with."""
    return fit(tiny(tmp_path_factory.mktemp("whole")), quiet=True).run_dir


def stopped_at(tmp_path: Path, step: int) -> Path:
    first = fit(tiny(tmp_path), on_step=lambda s: s == step, quiet=True)
    assert first.status == "interrupted" and first.steps == step
    return first.run_dir


# --------------------------------------------------------------------------------------
# Interruptions end as if there had been none
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [3, 4, 10, 20])  # mid-epoch, at a periodic save, an epoch's last step, the run's
def test_a_stop_at_any_step_resumes_to_the_uninterrupted_run(tmp_path: Path, whole: Path, step: int) -> None:
    run = stopped_at(tmp_path, step)
    if step == 20:  # stopped in the very last step: the last validation and the test are still to come
        assert not (run / "result.json").exists() and len(metrics(run)) == 1
    resumed = fit(None, resume=run, quiet=True)  # type: ignore[arg-type]
    assert resumed.status == "finished" and resumed.steps == 20 and resumed.test is not None
    assert_same_run(whole, run)


def test_a_damaged_last_checkpoint_falls_back_to_the_one_before(tmp_path: Path, whole: Path, capsys) -> None:
    run = stopped_at(tmp_path, 14)
    previous_step = load_checkpoint(run / "previous.pt")["train"]["step"]
    assert previous_step == 12  # the periodic save before the stop
    data = bytearray((run / "last.pt").read_bytes())
    i = data.find(b"data/0")  # inside the first tensor's bytes, which torch itself never checks
    i = data.find(b"PK", i + 64) - 40  # a few bytes before the next record: inside the tensor's payload
    data[i] ^= 0xFF
    (run / "last.pt").write_bytes(bytes(data))
    with pytest.raises(CnnlabError, match="checksum"):
        load_checkpoint(run / "last.pt")
    resumed = fit(None, resume=run)  # type: ignore[arg-type]
    assert "last.pt is damaged; continuing from previous.pt (step 12)" in capsys.readouterr().err
    assert resumed.status == "finished"
    assert_same_run(whole, run)


def test_metrics_follow_the_checkpoint_they_resume_from(tmp_path: Path, whole: Path) -> None:
    run = stopped_at(tmp_path, 14)
    with (run / "metrics.jsonl").open("a") as fh:  # an epoch recorded after the checkpoint was taken
        fh.write(json.dumps({"epoch": 2, "step": 20, "train_loss": 9.0}) + "\n")
    (run / ".last.pt.abcd1234.tmp").write_bytes(b"half a checkpoint")  # what a killed save leaves
    fit(None, resume=run, quiet=True)  # type: ignore[arg-type]
    assert_same_run(whole, run)
    assert not (run / ".last.pt.abcd1234.tmp").exists()


def test_resuming_a_copy_advances_the_copy_from_any_folder(tmp_path: Path, whole: Path, monkeypatch) -> None:
    orig = stopped_at(tmp_path / "a", 6)
    copy = tmp_path / "b" / "copy"
    shutil.copytree(orig, copy)
    before = {p.name: p.read_bytes() for p in orig.iterdir() if p.is_file()}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    resumed = fit(None, resume=os.path.relpath(copy / "last.pt"), quiet=True)  # type: ignore[arg-type]
    assert resumed.run_dir.resolve() == copy.resolve()
    assert {p.name: p.read_bytes() for p in orig.iterdir() if p.is_file()} == before
    assert list(elsewhere.iterdir()) == []
    assert_same_run(whole, copy)


def test_resume_refuses_best_pt_and_folders_without_a_run(tmp_path: Path) -> None:
    run = stopped_at(tmp_path, 12)
    with pytest.raises(CnnlabError, match="best-on-validation snapshot"):
        fit(None, resume=run / "best.pt")  # type: ignore[arg-type]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CnnlabError, match=r"holds no last\.pt"):
        fit(None, resume=tmp_path / "empty")  # type: ignore[arg-type]
    plain = save_checkpoint(tmp_path / "w" / "weights.pt", "lenet5", {}, {})
    with pytest.raises(CnnlabError, match="no training state"):
        fit(None, resume=plain)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Nothing is lost
# --------------------------------------------------------------------------------------


def test_a_taken_name_is_refused_and_the_earlier_run_survives(cli, tmp_path: Path) -> None:
    argv = ["train", *TINY, "--epochs", "1", "--out", str(tmp_path), "--name", "keep", "--quiet", "--json"]
    code, out, err = cli(*argv)
    assert code == 0, err
    first = json.loads(out)
    files = {p.name: p.read_bytes() for p in (tmp_path / "keep").iterdir() if p.is_file() and p.name != ".lock"}
    code, out, err = cli(*argv[:-2], "--seed", "1", "--quiet", "--json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "already holds a run" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "keep").iterdir()
            if p.is_file() and p.name != ".lock"} == files
    code, out, err = cli(*argv[:-2], "--seed", "1", "--overwrite", "--quiet", "--json")
    assert code == 0, err
    second = json.loads(out)
    assert second["config"]["seed"] == 1 and first["config"]["seed"] == 0
    assert [r["epoch"] for r in metrics(tmp_path / "keep")] == [1]


def test_generated_names_move_on_and_bad_names_are_refused(tmp_path: Path) -> None:
    a, note_a = RunDir.create(tmp_path, None, "lenet5-mnist-s0")
    a.write_config("{}")
    a.release()
    b, note_b = RunDir.create(tmp_path, None, "lenet5-mnist-s0")
    b.release()
    assert note_a is None and b.path.name == "lenet5-mnist-s0-2" and "is taken" in note_b
    for bad in ("..", ".", "a/b", "/abs", "", ".hidden", "-x", "x" * 200):
        with pytest.raises(CnnlabError, match="not a plain folder name"):
            RunDir.create(tmp_path, bad, "unused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet5-mnist-s0", "lenet5-mnist-s0-2"]


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    run = stopped_at(tmp_path, 6)
    holder = RunDir(run).acquire()
    try:
        with pytest.raises(CnnlabError, match="being written by another process"):
            fit(None, resume=run)  # type: ignore[arg-type]
        with pytest.raises(CnnlabError, match="already holds a run"):
            fit(tiny(tmp_path), quiet=True)
        assert RunDir(run).writing() and RunDir(run).status() == "running"
    finally:
        holder.release()
    assert RunDir(run).status() == "stopped"


def test_no_validation_split_trains_and_tests_the_final_weights(tmp_path: Path) -> None:
    result = fit(tiny(tmp_path, val_size=0, checkpoint_every=0), quiet=True)
    assert result.status == "finished" and result.test is not None and result.best_epoch == 2
    assert [r["val_top1"] for r in result.history] == [None, None]
    best, last = (load_checkpoint(result.run_dir / n)["state_dict"] for n in ("best.pt", "last.pt"))
    assert all(torch.equal(best[k], last[k]) for k in best)
    assert json.loads((result.run_dir / "result.json").read_text())["test"]["samples"] == 500


def test_a_failed_start_leaves_no_folder(tmp_path: Path) -> None:
    with pytest.raises(CnnlabError):
        fit(tiny(tmp_path, model="alexnet"), quiet=True)  # 28x28 digits do not fit AlexNet
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def test_checkpoints_carry_a_checksum_of_every_value(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", "lenet5", {}, {"w": torch.arange(6.0)}, train={"step": 3})
    assert load_checkpoint(path)["train"] == {"step": 3}
    payload = torch.load(path, weights_only=True)
    payload["train"]["step"] = 4  # a value changed after the write
    torch.save(payload, path)
    with pytest.raises(CnnlabError, match="damaged: its contents no longer match"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload", [
    {"format": "cnnlab-checkpoint-v1"},
    {"format": "cnnlab-checkpoint-v1", "model": {"name": "lenet5"}},
    {"format": "cnnlab-checkpoint-v1", "model": {"name": 5}, "state_dict": {}},
    {"format": "cnnlab-checkpoint-v1", "model": {"name": "lenet5", "kwargs": [1]}, "state_dict": {}},
    {"format": "cnnlab-checkpoint-v1", "model": {"name": "lenet5"}, "state_dict": {"w": 1}},
    {"format": "cnnlab-checkpoint-v1", "model": {"name": "lenet5"}, "state_dict": {}, "train": 3},
], ids=["no-model", "no-state-dict", "name-not-text", "kwargs-not-dict", "not-tensors", "train-not-dict"])
def test_malformed_checkpoints_are_one_line(cli, tmp_path: Path, payload: dict) -> None:
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    for argv in (["eval", str(path)], ["predict", str(path), str(path)], ["export", str(path), "--format",
                 "safetensors", "--out", str(tmp_path / "x.safetensors")], ["train", "--resume", str(path)]):
        code, out, err = cli(*argv)
        assert code == 2 and out == "" and err.count("\n") == 1, (argv, err)
        assert "Traceback" not in err


def test_a_checkpoint_claiming_a_huge_model_is_refused_before_allocating(tmp_path: Path) -> None:
    from cnnlab.checkpoint import model_from_checkpoint

    path = save_checkpoint(tmp_path / "big.pt", "lenet5", {"num_classes": 10**12}, {"w": torch.zeros(1)})
    with pytest.raises(CnnlabError, match="do not fit"):
        model_from_checkpoint(path)


def test_atomic_writes_replace_only_regular_files(tmp_path: Path) -> None:
    target = tmp_path / "target.txt"
    target.write_text("mine")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    with pytest.raises(CnnlabError, match="symbolic link"), atomic_write(link) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "mine" and link.is_symlink()
    with pytest.raises(CnnlabError, match="device"), atomic_write(Path("/dev/null")) as tmp:
        tmp.write_text("new")
    with pytest.raises(CnnlabError, match="folder"), atomic_write(tmp_path) as tmp:
        tmp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "target.txt"]


def test_permission_errors_say_so(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "c.pt", "lenet5", {}, {})

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(CnnlabError, match="permission denied") as info:
        load_checkpoint(path)
    assert "damaged" not in str(info.value)


def test_metrics_reader_strict_and_tolerant(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    good = {"epoch": 1, "step": 5, "train_loss": 0.5, "val_top1": float("nan")}
    lines = [json.dumps(good), '{"epoch": "2", "step": 10, "train_loss": 0.4}', "\x00\xff binary",
             json.dumps({**good, "epoch": 3, "val_top1": None}), json.dumps({**good, "epoch": 1}), '{"epoch": 4']
    (tmp_path / "metrics.jsonl").write_bytes(("\n".join(lines[:-1]) + "\n" + lines[-1]).encode("latin-1"))
    tolerant = run.read_metrics(strict=False)
    assert [r["epoch"] for r in tolerant] == [1, 3]  # the half-written last line waits for the next read
    assert tolerant[0]["val_top1"] is None  # NaN reads as None: the JSON stays valid
    with pytest.raises(CnnlabError, match=r"line 2 is damaged \(epoch '2' is not a whole number"):
        run.read_metrics(strict=True)
    scan = run.scan_metrics()  # the one tolerant reader counts what it skips
    assert scan.records == tolerant and scan.damaged_lines == 3 and scan.non_finite == 1
    assert scan.notes == [
        "metrics.jsonl line 1 holds a number that is not finite (NaN or infinity): such numbers read as null",
        "metrics.jsonl line 2 is damaged (epoch '2' is not a whole number from 1); damaged lines are skipped"]


DAMAGE = [b'{"epoch": "5", "step": 1, "train_loss": 1.0}', b'{"epoch": 2, "step": 9, "train_loss": 0.5, '
          b'"val_top1": null, "train_top1": NaN}', b"\x00\xff\xfe binary \xc3", b"[" * 100_000,
          b'{"epoch": 3, "step": 12, "train_loss": {"nested": [1, 2]}}', b'{"epoch": 1e400, "step": 1}']


def test_cnnlab_runs_survives_damaged_metrics_lines(cli, tmp_path: Path) -> None:
    """Every kind of damage at once: the run still lists and opens, with the count of skipped lines."""
    folder = tmp_path / "hurt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model": "lenet5", "dataset": "mnist", "epochs": 4}))
    good = json.dumps({"epoch": 1, "step": 4, "train_loss": 0.9, "val_top1": 0.5}).encode()
    (folder / "metrics.jsonl").write_bytes(b"\n".join([good, *DAMAGE]) + b"\n")
    (folder / "result.json").write_text(json.dumps({"status": "finished", "test": {"top1": "high"}}))
    code, out, err = cli("runs", "--runs", str(tmp_path), "--json")
    assert code == 0, err
    (row,) = json.loads(out)["runs"]
    assert row["epochs_done"] == 2 and row["damaged_lines"] == 5 and row["best_val_top1"] == 0.5
    assert row["test_top1"] is None  # a result.json holding words where a number belongs
    code, out, err = cli("runs", "hurt", "--runs", str(tmp_path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [m["epoch"] for m in doc["metrics"]] == [1, 2] and doc["metrics"][1]["train_top1"] is None
    assert doc["notes"][0].startswith("metrics.jsonl line 2 is damaged (epoch '5' is not a whole number from 1)")
    code, out, err = cli("runs", "--runs", str(tmp_path))  # the table for a person
    assert code == 0 and "hurt" in out and "5 damaged lines" in out, err


def test_run_files_never_lead_out_of_the_run(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"model": "lenet5", "password": "x"}))
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    (run.path / "config.json").symlink_to(secret)
    (run.path / "metrics.jsonl").symlink_to(secret)
    (run.path / "best.pt").symlink_to(secret)
    with pytest.raises(CnnlabError, match=r"^r/config.json is a link to a file outside the run folder"):
        run.read_config()
    with pytest.raises(CnnlabError, match=r"^r/metrics.jsonl is a link to a file outside the run folder"):
        run.read_metrics(strict=True)
    assert run.scan_metrics().records == [] and "outside the run folder" in run.scan_metrics().notes[0]
    assert run.checkpoint() is None
    with pytest.raises(CnnlabError, match=r"^r/best.pt is a link to a file outside the run folder"):
        run.weights()
    # A link that stays inside the run is followed.
    (run.path / "config.json").unlink()
    (run.path / "real.json").write_text('{"model": "resnet20"}')
    (run.path / "config.json").symlink_to(run.path / "real.json")
    assert run.read_config() == {"model": "resnet20"}


def test_pictures_and_evaluation_use_the_run_folder(cli, tmp_path: Path, whole: Path) -> None:
    code, out, err = cli("viz", "curves", str(whole), "--out", str(tmp_path / "c.png"), "--json")
    assert code == 0, err
    code, out, err = cli("eval", str(whole), "--json")
    assert code == 0 and json.loads(out)["checkpoint"].endswith("best.pt")
    assert json.loads(out)["top1"] == untimed(json.loads((whole / "result.json").read_text()))["test"]["top1"]
    code, out, err = cli("export", str(whole), "--format", "safetensors", "--out", str(tmp_path / "w.safetensors"),
                         "--json")
    assert code == 0, err


def test_commits_work_without_hard_links(tmp_path: Path, monkeypatch) -> None:
    import errno

    from cnnlab.checkpoint import checkpoint_payload

    def no_links(*args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    with run:
        for step in (1, 2):
            run.commit(checkpoint_payload("lenet5", {}, {"w": torch.full((2,), float(step))}, train={"step": step}),
                       best=step == 2)
    assert [load_checkpoint(p)["train"]["step"] for p in (run.last, run.previous, run.best)] == [2, 1, 2]
    assert not list(run.path.glob(".*.tmp"))
