"""Precision that fits the machine: auto picks bf16 + channels_last only where bf16 is fast, and says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.train import precision as precision_module
from cnnlab.train.config import config_from_dict
from cnnlab.train.loop import fit
from cnnlab.train.precision import resolve
from runlib import small_config

CPU = torch.device("cpu")


small = small_config




@pytest.mark.parametrize(("feature", "name", "layout"), [("AVX512-BF16", "bf16", True), ("AMX-BF16", "bf16", True),
                                                          (None, "fp32", False)])
def test_auto_picks_bf16_and_channels_last_only_where_the_cpu_has_fast_bf16(monkeypatch, feature, name,
                                                                           layout) -> None:
    monkeypatch.setattr(precision_module, "_cpu_bf16", lambda: feature)
    chosen = resolve("auto", None, CPU)
    assert (chosen.name, chosen.channels_last) == (name, layout)
    assert chosen.reason.startswith("auto: ") and (feature or "no fast bf16") in chosen.reason
    # An explicit layout wins over the one the precision brings; an explicit precision is kept as asked.
    assert resolve("auto", False, CPU).channels_last is False
    assert resolve("fp32", True, CPU) == precision_module.Precision("fp32", True, "asked for")
    assert resolve("bf16", None, CPU).channels_last is True


@pytest.mark.parametrize(("capability", "picked"), [((7, 5), "fp32"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_on_cuda_auto_wants_native_bf16_not_torchs_emulation(monkeypatch, capability, picked) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a GPU")
    chosen = resolve("auto", None, torch.device("cuda", 0))
    assert (chosen.name, chosen.channels_last) == (picked, picked == "bf16")


def test_the_cpu_probe_agrees_with_the_cpu_flags() -> None:
    flags = precision_module._cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo here")
    expected = "amx_bf16" in flags or "avx512_bf16" in flags
    assert (precision_module._cpu_bf16() is not None) == (expected and torch.backends.mkldnn.is_available())


def test_fp16_on_the_cpu_and_unknown_precisions_are_one_line() -> None:
    with pytest.raises(CnnlabError, match="fp16 needs a CUDA device"):
        resolve("fp16", None, CPU)
    with pytest.raises(CnnlabError, match="--precision must be one of auto, fp32, bf16, fp16"):
        resolve("fp8", None, CPU)


def test_configs_saved_before_precision_existed_still_load() -> None:
    assert config_from_dict({"amp": "bf16", "channels_last": True}).precision == "bf16"
    old = config_from_dict({"amp": "none", "channels_last": False})
    assert (old.precision, old.channels_last) == ("fp32", False)


def test_a_run_records_what_auto_picked_in_its_header_and_config(tmp_path: Path) -> None:
    result = fit(small(tmp_path, name="auto", epochs=1), quiet=True)
    saved = json.loads((result.run_dir / "config.json").read_text())
    chosen = resolve("auto", None, CPU)
    assert (saved["precision"], saved["channels_last"]) == (chosen.name, chosen.channels_last)
    assert any(line.startswith(f"precision {chosen.describe()} | threads ") for line in result.summary)


def test_bf16_and_fp32_reach_the_same_accuracy_within_seed_noise(tmp_path: Path) -> None:
    accuracy = {}
    for name in ("fp32", "bf16"):
        runs = [fit(small(tmp_path, name=f"{name}-{seed}", seed=seed, precision=name), quiet=True)
                for seed in (0, 1)]
        accuracy[name] = [r.test["top1"] for r in runs]
    fp32, bf16 = (sum(v) / len(v) for v in accuracy.values())
    spread = max(max(v) - min(v) for v in accuracy.values())
    # 1,000 test images: one seed to the next moves top-1 by a point or two; bf16 must stay inside that.
    assert fp32 > 0.7 and bf16 > 0.7
    assert abs(fp32 - bf16) <= max(2 * spread, 0.03), accuracy


def test_evaluation_follows_the_same_rule(trained_run: Path) -> None:
    from cnnlab.train.inference import evaluate_checkpoint

    auto = evaluate_checkpoint(trained_run, "test", precision="auto")
    fp32 = evaluate_checkpoint(trained_run, "test", precision="fp32")
    assert auto["precision"]["precision"] == resolve("auto", None, CPU).name
    assert fp32["precision"] == {"precision": "fp32", "channels_last": False, "reason": "asked for"}
    assert abs(auto["top1"] - fp32["top1"]) <= 0.01  # the same weights: bf16 changes a handful of predictions


def test_the_shape_probe_of_a_training_run_leaves_the_model_and_the_generators_alone() -> None:
    from cnnlab.models.inputs import check_input

    model = create_model("resnet20", in_channels=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.get_rng_state()
    check_input(model, (1, 28, 28), "resnet20", training=True)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # A small input is probed for real; the message is the one the meta device gives.
    with pytest.raises(CnnlabError, match=r"too small for alexnet.*the smallest input that works is 3x63x63"):
        check_input(create_model("alexnet"), (3, 32, 32), "alexnet", known_side=224, training=True)
