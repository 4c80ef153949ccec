"""The zoo as a whole: registry, catalogue, input checks, weight files, export, torch.hub."""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import cnnlab
from cnnlab.catalog import catalog, count_parameters
from cnnlab.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, list_models, model_info
from cnnlab.models.inputs import check_input, smallest_input
from cnnlab.models.weights import load_weights, read_state_dict

REPO = Path(__file__).resolve().parents[1]
FAMILIES = {"lenet", "alexnet", "vgg", "nin", "googlenet", "resnet", "densenet", "kernels"}
# Too heavy for a real CPU forward in the default run (checked on the meta device instead).
HEAVY = {"resnet1202"}



def test_every_family_is_registered_and_reexported() -> None:
    names = list_models()
    assert {model_info(n).family for n in names} == FAMILIES
    assert cnnlab.list_models() == names
    for required in ("lenet5", "lenet5_paper", "alexnet", "alexnet_paper", "vgg16_bn", "nin", "googlenet",
                     "googlenet_paper", "resnet50", "preact_resnet18", "resnet20", "resnet1202", "densenet121",
                     "densenet264"):
        assert required in names


@pytest.mark.parametrize("name", [n for n in list_models() if n not in HEAVY])
def test_smallest_input_is_exact_on_real_tensors(name: str) -> None:
    """The declared minimum input runs for real on the CPU and one pixel less does not; the
    bisection on the meta device finds the same side."""
    side = model_info(name).min_input
    assert smallest_input(name) == side
    c = model_info(name).default_input[0]
    torch.manual_seed(0)
    model = create_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, c, side, side)).shape[0] == 1
        if side > 1:
            with pytest.raises((RuntimeError, ValueError)):
                model(torch.randn(1, c, side - 1, side - 1))


def _torchvision_meta(name: str) -> dict:
    """torchvision's published metadata for a builder (available offline, no download)."""
    weights = torchvision.models.get_model_weights(name)
    return next(iter(weights)).meta


@pytest.mark.parametrize("name", [n for n in list_models() if model_info(n).torchvision])
def test_smallest_input_and_params_agree_with_torchvision_metadata(name: str) -> None:
    meta = _torchvision_meta(model_info(name).torchvision)
    assert model_info(name).min_input == meta["min_size"][0]
    # torchvision publishes GoogLeNet's size without the auxiliary classifiers, which inference drops.
    options = {"aux_logits": False} if name == "googlenet" else {}
    with torch.device("meta"):
        model = create_model(name, **options)
    assert sum(p.numel() for p in model.parameters()) == meta["num_params"]


def test_catalog_counts_match_real_models() -> None:
    rows = {r["name"]: r for r in catalog(use_cache=False)}
    assert set(rows) == set(list_models())
    for name in ("lenet5", "resnet18", "densenet121", "googlenet"):
        real = create_model(name)
        assert rows[name]["params"] == sum(p.numel() for p in real.parameters())
    # torchvision's own metadata, offline: ResNet-50 has 25,557,032 parameters and 4.089 GMACs.
    meta = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta
    assert rows["resnet50"]["params"] == meta["num_params"]
    assert round(rows["resnet50"]["macs"] / 1e9, 3) == meta["_ops"]
    assert rows["resnet20"]["macs"] == analyze_macs("resnet20", (3, 32, 32))


def analyze_macs(name: str, size: tuple[int, ...]) -> int:
    from cnnlab.analysis import analyze

    return analyze(name, size).macs


def test_catalog_is_cached_and_the_cache_is_checked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = catalog(family="lenet")
    files = list((tmp_path / "cnnlab").glob("catalog-*.json"))
    assert len(files) == 1
    assert catalog(family="lenet") == first
    files[0].write_text("[]")  # a stale or damaged cache is recomputed, not trusted
    assert catalog(family="lenet") == first


def test_count_parameters_counts_shared_weights_once_and_no_buffers() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.BatchNorm1d(4), shared)
    model[1].weight.requires_grad_(False)
    assert count_parameters(model) == (20 + 4, 4)


def test_too_small_input_names_the_layer_and_the_smallest_input() -> None:
    model = create_model("vgg16")
    with pytest.raises(CnnlabError) as info:
        check_input(model, (3, 16, 16), "vgg16", known_side=224)
    text = str(info.value)
    # five 2x2 poolings: 16 -> 8 -> 4 -> 2 -> 1 -> 0 at the last one, features.30
    assert text == ("input 3x16x16 is too small for vgg16: the spatial size runs out at layer 'features.30' "
                    "(its input would be 512x1x1); the smallest input that works is 3x32x32")
    with pytest.raises(CnnlabError, match="takes 3 input channels but the input has 1"):
        check_input(model, (1, 64, 64), "vgg16")


def test_unknown_model_and_option_are_one_line() -> None:
    with pytest.raises(CnnlabError, match=r"did you mean .*resnet50"):
        create_model("resnet5O")
    with pytest.raises(CnnlabError, match="has no option 'flavour'"):
        create_model("lenet5", flavour="sweet")


# --------------------------------------------------------------------------------------
# Weight files
# --------------------------------------------------------------------------------------


def test_torchvision_weights_file_loads_unchanged(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    ours = create_model("resnet18", weights=path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=0)


def test_weights_mismatch_says_what_differs(tmp_path: Path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(CnnlabError, match="build it with num_classes=1000"):
        create_model("resnet18", num_classes=10, weights=path)
    with pytest.raises(CnnlabError, match=r"does not fit resnet34 \(missing from the file: layer1\.2\.conv1\.weight"):
        create_model("resnet34", weights=path)
    torch.save({"extra.weight": torch.zeros(1), **torch.load(path)}, path)
    with pytest.raises(CnnlabError, match=r"not in the model: extra\.weight"):
        create_model("resnet18", weights=path)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + str(Path(os.environ.get("CNNLAB_EVIL", "/nonexistent")) / "pwned"),))


def test_a_pickle_with_code_inside_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CNNLAB_EVIL", str(tmp_path))
    path = tmp_path / "evil.pth"
    with path.open("wb") as fh:
        torch.save({"fc.weight": torch.zeros(1), "payload": _Evil()}, fh)
    with pytest.raises(CnnlabError, match="never loads those"):
        read_state_dict(path)
    with pytest.raises(CnnlabError, match="never loads those"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_damaged_and_missing_files_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CnnlabError, match="damaged or not"):
        read_state_dict(bad)
    with pytest.raises(CnnlabError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pt")
    with pytest.raises(CnnlabError, match="not a readable safetensors"):
        (tmp_path / "x.safetensors").write_bytes(b"\x00" * 16)
        read_state_dict(tmp_path / "x.safetensors")


def test_densenet_weights_with_torchvisions_old_key_names_load(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("densenet121").eval()
    # torchvision's downloadable files spell 'norm1' as 'norm.1' (and so on) inside dense layers.
    old = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue  # torchvision's released files predate these counters
        for part in ("norm1", "norm2", "conv1", "conv2", "relu1", "relu2"):
            key = key.replace(f".{part}.", f".{part[:-1]}.{part[-1]}.")
        old[key] = value
    assert any(".norm.1." in k for k in old)
    path = tmp_path / "densenet121-old.pth"
    torch.save(old, path)
    fresh = create_model("densenet121")
    load_weights(fresh, path, "densenet121")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_checkpoint_round_trip_is_atomic_and_rebuilds_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10)
    path = save_checkpoint(tmp_path / "run" / "last.pt", "lenet5", {"num_classes": 10}, model.state_dict(), step=7)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left
    rebuilt, ckpt = model_from_checkpoint(path)
    assert ckpt["step"] == 7
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)


# --------------------------------------------------------------------------------------
# Export and torch.hub
# --------------------------------------------------------------------------------------

# One model of each family, at a small input.
EXPORT_CASES = [
    ("lenet5", []),
    ("alexnet", ["--num-classes", "10", "--input", "3x64x64"]),
    ("vgg11", ["--num-classes", "10", "--input", "3x32x32"]),
    ("nin_cifar", []),
    ("googlenet", ["--num-classes", "10", "--input", "3x64x64"]),
    ("resnet20", []),
    ("densenet40_cifar", []),
]


@pytest.mark.parametrize(("name", "extra"), EXPORT_CASES)
@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_round_trip(tmp_path: Path, cli, name: str, extra: list[str], fmt: str) -> None:
    if fmt == "onnx" and name in ("vgg11", "alexnet"):
        pytest.skip("covered by the slow variant: their 4096-wide classifiers make large ONNX files")
    out = tmp_path / f"{name}.{fmt}"
    code, stdout, err = cli("export", name, "--format", fmt, "--out", str(out), "--json", *extra)
    assert code == 0, err
    doc = json.loads(stdout)
    assert doc["verified"] and Path(doc["path"]) == out and out.stat().st_size == doc["bytes"]
    assert doc["max_abs_diff"] <= 1e-4 * max(doc["output_scale"], 1.0)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_export_onnx_large_classifiers(tmp_path: Path, cli, name: str) -> None:
    code, _, err = cli("export", name, "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                       "--num-classes", "10", "--input", "3x64x64")
    assert code == 0, err


def test_export_of_a_checkpoint_and_bad_requests(tmp_path: Path, cli) -> None:
    model = create_model("resnet20")
    ckpt = save_checkpoint(tmp_path / "best.pt", "resnet20", {}, model.state_dict())
    code, _, err = cli("export", str(ckpt), "--format", "safetensors", "--out", str(tmp_path / "w.safetensors"))
    assert code == 0, err
    code, _, err = cli("export", "googlenet", "--format", "onnx", "--input", "3x8x8")
    assert code == 2 and "too small for googlenet" in err and err.count("\n") == 1
    code, _, err = cli("export", "nosuchnet", "--format", "onnx")
    assert code == 2 and "unknown model 'nosuchnet'" in err
    code, _, err = cli("export", str(tmp_path / "missing.pt"), "--format", "onnx")
    assert code == 2 and "does not exist" in err


USER_MODELS = """
import torch
from torch import nn


class TwoHeads(nn.Module):  # a segmentation network's output: a dict of maps
    def __init__(self):
        super().__init__()
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.out, self.aux = nn.Conv2d(4, 2, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.body(x).relu()
        return {"out": self.out(y), "aux": self.aux(y)}


class Clip(nn.Module):  # a video network: C x T x H x W
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3, 4)))


class Counts(nn.Module):  # returns a Python number: no exporter can trace it
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return int((self.conv(x) > 0).sum())
"""


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_export_checks_every_output_of_a_dict_and_takes_video_clips(tmp_path: Path, cli, fmt: str) -> None:
    (tmp_path / "nets.py").write_text(USER_MODELS)
    for name, size, outputs in (("TwoHeads", "3x16x16", [[1, 2, 16, 16], [1, 2, 16, 16]]),
                                ("Clip", "3x4x16x16", [[1, 5]])):
        out = tmp_path / f"{name}.{fmt}"
        code, stdout, err = cli("export", f"{tmp_path / 'nets.py'}:{name}", "--format", fmt, "--input", size,
                                "--out", str(out), "--json")
        assert code == 0, err
        doc = json.loads(stdout)
        assert doc["verified"] and doc["input_shape"] == [1, *map(int, size.split("x"))]
        assert doc["max_abs_diff"] <= 1e-4 * max(doc["output_scale"], 1.0)
        if fmt == "torchscript":  # the file gives back the same structure
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
                loaded = torch.jit.load(str(out))
            got = loaded(torch.zeros(1, *map(int, size.split("x"))))
            shapes = [list(t.shape) for t in (got.values() if isinstance(got, dict) else [got])]
            assert shapes == outputs


def test_an_export_torch_cannot_make_is_one_line_and_writes_nothing(tmp_path: Path, cli) -> None:
    (tmp_path / "nets.py").write_text(USER_MODELS)
    code, _, err = cli("export", f"{tmp_path / 'nets.py'}:Counts", "--format", "torchscript", "--input", "3x8x8",
                       "--out", str(tmp_path / "c.pt"))
    assert code == 2 and err.splitlines()[-1].startswith("cnnlab: error: Counts's output holds no tensor")
    code, _, err = cli("export", f"{tmp_path / 'nets.py'}:Clip", "--format", "onnx", "--input", "3x2x4x16x16",
                       "--out", str(tmp_path / "c.onnx"))
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("cnnlab: error: Clip cannot run on input 3x2x4x16x16: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nets.py"]


def test_models_command_lists_everything(cli) -> None:
    code, out, _ = cli("models", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["count"] == len(list_models())
    r50 = next(r for r in doc["models"] if r["name"] == "resnet50")
    assert r50["torchvision"] == "resnet50" and r50["params"] == 25_557_032
    assert r50["min_input"] == [3, 1, 1]  # torchvision's metadata: min_size (1, 1)
    code, out, _ = cli("models", "--family", "densenet")
    assert code == 0 and "densenet121" in out and "resnet50" not in out
    code, _, err = cli("models", "--family", "transformers")
    assert code == 2 and "unknown family" in err


def test_torch_hub_loads_from_a_local_clone() -> None:
    model = torch.hub.load(str(REPO), "resnet18", source="local", num_classes=7, trust_repo=True)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)
    # torch.hub lists every public callable of hubconf.py as an entry point: exactly the models.
    spec = importlib.util.spec_from_file_location("cnnlab_hubconf", REPO / "hubconf.py")
    hub = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hub)
    entries = {k for k in dir(hub) if callable(getattr(hub, k)) and not k.startswith("_")}
    assert entries == set(list_models())



def test_unwritable_and_unreadable_paths_are_one_line(cli, tmp_path: Path) -> None:
    code, _, err = cli("export", "lenet5", "--format", "safetensors", "--out", "/proc/cnnlab/x.safetensors")
    assert code == 2 and "Traceback" not in err  # stderr: the progress line, then the one-line error
    assert err.splitlines()[-1].startswith("cnnlab: error: cannot write /proc/cnnlab/x.safetensors")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    code, _, err = cli("export", "lenet5", "--format", "safetensors", "--weights", str(junk))
    assert code == 2 and "damaged or not a PyTorch weights file" in err and err.count("\n") == 1
