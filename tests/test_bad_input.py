"""Every mistake a user can type ends in one line on stderr and exit code 2, never a traceback.

The sweep runs hundreds of bad command lines over every command in-process (through
``cnnlab.cli.main``); a few run as real processes to prove the exit code and the single line
hold there too. ``{d}`` in a command line is the folder of damaged files the module writes.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clilib import leaf_parsers
from cnnlab.cli import main

HUGE = "1" + "0" * 23
INT_KINDS = {"negative": "-1", "zero": "0", "nan": "nan", "inf": "inf", "huge": HUGE, "text": "abc", "empty": "",
             "fraction": "1.5"}
FLOAT_KINDS = {"negative": "-1", "zero": "0", "nan": "nan", "inf": "inf", "-inf": "-inf", "overflow": "1e400",
               "text": "abc", "empty": ""}
BAD_SHAPES = {"double-x": "3xx5", "leading-x": "x3x5", "trailing-x": "3x5x", "zero": "0x28x28",
              "negative": "3x-1x5", "text": "3xabc", "fraction": "3x1.5x5", "empty": "", "exponent": "3x1e9x1e9"}
CKPT_FILES = ("random.pt", "truncated.pt", "text.pt", "empty.pt", "evil.pt", "evil_zip.pt", "state_dict.pt",
              "folder.pt", "emptyrun", "missing.pt")
IMAGE_FILES = ("text.png", "random.png", "empty.png", "truncated.png", "bomb.png", "nan.tif", "folder.png",
               "missing.png")
GRIDS = {"ragged": "1,2;3", "text": "a,b;c,d", "nan": "1,nan;2,3", "inf": "1,inf;2,3", "empty": "", "semicolons": ";;",
         "too-large": ";".join([",".join(["1"] * 40)] * 40)}


def _case(name: str, *argv: str) -> pytest.param:  # type: ignore[type-arg]
    return pytest.param(list(argv), id=name)


def _kinds(prefix: str, argv: tuple[str, ...], flag: str, kinds: dict[str, str], only: tuple[str, ...] | None = None,
           extra: dict[str, str] | None = None) -> Iterator[pytest.param]:  # type: ignore[type-arg]
    chosen = {k: v for k, v in kinds.items() if only is None or k in only}
    for kind, value in {**chosen, **(extra or {})}.items():
        given = (f"{flag}={value}",) if value.startswith("-") else (flag, value)  # "-inf" is not an option
        yield _case(f"{prefix}{flag}={kind}", *argv, *given)


# --------------------------------------------------------------------------------------
# calc
# --------------------------------------------------------------------------------------


def _calc() -> Iterator[pytest.param]:  # type: ignore[type-arg]
    conv = ("calc", "conv", "--input", "3x32x32", "--out-channels", "8", "--kernel", "3")

    def conv_with(flag: str) -> tuple[str, ...]:
        args, skip = [], False
        for i, a in enumerate(conv):
            if skip:
                skip = False
                continue
            if a == flag:
                skip = True
                continue
            args.append(conv[i])
        return tuple(args)

    for kind, shape in BAD_SHAPES.items():
        yield _case(f"calc-conv--input={kind}", *conv_with("--input"), "--input", shape)
    yield from _kinds("calc-conv", conv_with("--out-channels"), "--out-channels", INT_KINDS,
                      ("negative", "zero", "nan", "text", "empty", "fraction"))
    yield from _kinds("calc-conv", conv_with("--kernel"), "--kernel", INT_KINDS, ("negative", "zero", "text", "empty"),
                      {"per-axis-empty": "3xx3", "per-axis-zero": "0x3", "larger-than-input": "40",
                       "too-many-axes": "3x3x3"})
    yield from _kinds("calc-conv", conv, "--stride", INT_KINDS, ("negative", "zero", "text", "empty", "fraction"))
    yield from _kinds("calc-conv", conv, "--padding", INT_KINDS, ("negative", "text", "empty"),
                      {"word": "full", "per-axis-empty": "1xx1"})
    yield from _kinds("calc-conv", conv, "--dilation", INT_KINDS, ("negative", "zero", "text"))
    yield from _kinds("calc-conv", conv, "--groups", INT_KINDS, ("negative", "zero", "text"),
                      {"not-dividing": "3"})
    yield _case("calc-conv--padding-mode=bogus", *conv, "--padding-mode", "mirror")
    yield _case("calc-conv--missing-kernel", "calc", "conv", "--input", "3x32x32", "--out-channels", "8")
    yield _case("calc-conv--same-with-stride", *conv, "--padding", "same", "--stride", "2")

    pool = ("calc", "pool", "--input", "3x32x32")
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"calc-pool--input={kind}", "calc", "pool", "--kernel", "2", "--input", shape)
    yield _case("calc-pool--no-kernel", *pool)
    yield from _kinds("calc-pool", pool, "--kernel", INT_KINDS, ("negative", "zero", "text", "empty"),
                      {"larger-than-input": "64"})
    yield from _kinds("calc-pool", (*pool, "--kernel", "2"), "--stride", INT_KINDS, ("negative", "zero", "text"))
    yield from _kinds("calc-pool", (*pool, "--kernel", "2"), "--padding", INT_KINDS, ("negative",),
                      {"over-half-kernel": "2"})
    yield from _kinds("calc-pool", pool, "--adaptive", INT_KINDS, ("negative", "zero", "text"))
    yield _case("calc-pool--mode=bogus", *pool, "--kernel", "2", "--mode", "median")
    yield _case("calc-pool--mode=all-without-values", *pool, "--kernel", "2", "--mode", "all")
    yield _case("calc-pool--no-input-no-values", "calc", "pool", "--kernel", "2")
    values = ("calc", "pool", "--kernel", "2")
    for kind, grid in GRIDS.items():
        yield _case(f"calc-pool--values={kind}", *values, f"--values={grid}")
    yield _case("calc-pool--values-kernel-too-big", "calc", "pool", "--values", "1,2;3,4", "--kernel", "3")
    yield _case("calc-pool--values-no-kernel", "calc", "pool", "--values", "1,2;3,4")
    yield _case("calc-pool--values-other-input", *values, "--values", "1,2;3,4", "--input", "1x3x3")
    yield _case("calc-pool--values-global", *values, "--values", "1,2;3,4", "--global")

    stack = ("calc", "stack", "--input", "1x28x28")
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"calc-stack--input={kind}", "calc", "stack", "flatten", "--input", shape)
    for name, spec in {"unknown-layer": "bogus", "conv-no-args": "conv", "conv-zero": "conv 0 k3",
                       "conv-kernel-zero": "conv 8 k0", "conv-kernel-empty-axis": "conv 8 k3x",
                       "conv-stride-zero": "conv 8 k3 s0", "conv-kernel-too-big": "conv 8 k99",
                       "conv-bad-token": "conv 8 k3 q7", "pool-zero": "pool k0", "fc-zero": "fc 0",
                       "fc-negative": "fc -1", "adaptive-zero": "adaptive 0", "empty-layer": ""}.items():
        yield _case(f"calc-stack-{name}", *stack, spec)
    yield _case("calc-stack-no-layers", *stack)
    yield _case("calc-tour-extra-argument", "calc", "tour", "extra")
    yield _case("calc-tour--explain", "calc", "tour", "--explain")
    yield _case("calc-tour--input", "calc", "tour", "--input", "3x32x32")
    yield _case("calc-tour--lang=bogus", "calc", "tour", "--lang", "fr")
    yield _case("calc-no-subcommand", "calc")
    yield _case("calc-unknown-subcommand", "calc", "deconv")


# --------------------------------------------------------------------------------------
# models, export, inspect, compare
# --------------------------------------------------------------------------------------


def _model_commands() -> Iterator[pytest.param]:  # type: ignore[type-arg]
    yield _case("models--family=bogus", "models", "--family", "transformer")
    yield _case("models-extra-argument", "models", "lenet5")
    yield _case("models--family=empty", "models", "--family", "")

    export = ("export", "lenet5", "--format", "torchscript", "--json")
    yield _case("export-unknown-model", "export", "lenett5", "--format", "torchscript")
    yield _case("export--format=bogus", "export", "lenet5", "--format", "tflite")
    yield _case("export--format=missing", "export", "lenet5")
    for name in CKPT_FILES:
        yield _case(f"export-checkpoint={name}", "export", f"{{d}}/{name}", "--format", "torchscript")
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"export--input={kind}", *export, "--input", shape)
    yield _case("export--input=wrong-channels", *export, "--input", "3x32x32")
    yield _case("export--input=too-small", *export, "--input", "1x2x2")
    yield _case("export--input=beyond-memory", "export", "resnet20", "--format", "torchscript", "--json",
                "--input", "3x40000x40000")
    yield from _kinds("export", export, "--num-classes", INT_KINDS)
    yield from _kinds("export", export, "--in-channels", INT_KINDS)
    yield _case("export--weights=missing", *export, "--weights", "{d}/missing.pt")
    yield _case("export--weights=random", *export, "--weights", "{d}/random.pt")
    yield _case("export--weights=evil", *export, "--weights", "{d}/evil.pt")
    for name, value in {"no-equals": "small_input", "unknown-option": "bogus=1", "classes-huge": f"num_classes={HUGE}",
                        "empty-key": "=3"}.items():
        yield _case(f"export--set={name}", *export, "--set", value)
    yield _case("export--out=folder", *export, "--out", "{d}")
    yield _case("export--out=device", *export, "--out", "/dev/null")
    yield _case("export--out=under-a-file", *export, "--out", "{d}/text.png/model.pt")
    yield _case("export-checkpoint-with-options", "export", "{d}/good.pt", "--format", "torchscript",
                "--num-classes", "3")

    inspect = ("inspect", "lenet5")
    yield _case("inspect-unknown-model", "inspect", "resnet19")
    yield _case("inspect-missing-file", "inspect", "{d}/missing.py:Net")
    yield _case("inspect-syntax-error", "inspect", "{d}/syntax.py:Net")
    yield _case("inspect-import-error", "inspect", "{d}/raises.py:Net")
    yield _case("inspect-not-a-model", "inspect", "{d}/notmodel.py:Net")
    yield _case("inspect-missing-attribute", "inspect", "{d}/notmodel.py:Other")
    yield _case("inspect-no-name", "inspect", "{d}/notmodel.py:")
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"inspect--input={kind}", *inspect, "--input", shape)
    yield _case("inspect--input=too-small", *inspect, "--input", "1x2x2")
    yield _case("inspect--measure-beyond-memory", "inspect", "resnet20", "--input", "3x40000x40000", "--measure")
    yield from _kinds("inspect", inspect, "--batch", INT_KINDS, ("negative", "zero", "nan", "huge", "text", "empty"))
    yield from _kinds("inspect", inspect, "--depth", INT_KINDS, ("negative", "zero", "text", "empty"))
    yield from _kinds("inspect", inspect, "--num-classes", INT_KINDS, ("negative", "zero", "huge", "text"))
    yield from _kinds("inspect", inspect, "--in-channels", INT_KINDS, ("negative", "zero", "huge", "text"))
    yield _case("inspect--optimizer=bogus", *inspect, "--optimizer", "lion")
    yield _case("inspect--set=unknown-option", *inspect, "--set", "bogus=1")
    yield _case("inspect--set=classes-huge", *inspect, "--set", f"num_classes={HUGE}")
    yield _case("inspect--json-and-csv", *inspect, "--json", "--csv")

    yield _case("compare-unknown-model", "compare", "lenet5", "vgg17")
    yield _case("compare-no-models", "compare")
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"compare--input={kind}", "compare", "resnet20", "--input", shape)
    yield from _kinds("compare", ("compare", "resnet20"), "--batch", INT_KINDS, ("negative", "zero", "text", "huge"))


# --------------------------------------------------------------------------------------
# train, recipes, eval, predict
# --------------------------------------------------------------------------------------

TRAIN_BAD: dict[str, dict[str, str]] = {
    "epochs": {"negative": "-1", "zero": "0", "text": "abc", "empty": "", "fraction": "1.5", "huge": HUGE},
    "iterations": {"zero": "0", "negative": "-5", "exponent": "1e3", "huge": HUGE},
    "batch-size": {"zero": "0", "negative": "-1", "huge": HUGE, "nan": "nan"},
    "eval-batch-size": {"zero": "0", "negative": "-1", "huge": HUGE},
    "lr": {"zero": "0", "negative": "-0.1", "nan": "nan", "inf": "inf", "text": "abc", "empty": ""},
    "momentum": {"negative": "-1", "one": "1", "above-one": "1.5", "nan": "nan"},
    "weight-decay": {"negative": "-1", "nan": "nan", "inf": "inf"},
    "gamma": {"zero": "0", "negative": "-0.1", "above-one": "2", "nan": "nan"},
    "warmup": {"negative": "-1", "nan": "nan", "inf": "inf"},
    "label-smoothing": {"negative": "-0.1", "one": "1", "nan": "nan"},
    "grad-clip": {"zero": "0", "negative": "-1", "nan": "nan", "inf": "inf"},
    "aux-weight": {"negative": "-1", "nan": "nan"},
    "pca-lighting": {"negative": "-0.1", "nan": "nan"},
    "val-size": {"fraction-above-one": "2.5", "negative": "-1", "nan": "nan", "inf": "inf", "text": "abc"},
    "limit": {"zero": "0", "negative": "-1", "text": "abc"},
    "adapt-channels": {"two": "2", "zero": "0", "negative": "-1"},
    "adapt-size": {"zero": "0", "negative": "-1", "huge": "100000"},
    "adapt-mode": {"bogus": "stretch", "empty": ""},
    "crop-padding": {"negative": "-1", "huge": "100000"},
    "random-resized-crop": {"zero": "0", "huge": "100000"},
    "cutout": {"negative": "-1", "huge": "100000"},
    "optimizer": {"bogus": "adam2", "empty": ""},
    "schedule": {"bogus": "linear", "empty": ""},
    "precision": {"bogus": "fp8", "empty": ""},
    "workers": {"negative": "-1", "huge": "1000"},
    "seed": {"negative": "-1", "huge": HUGE, "text": "abc"},
    "seeds": {"zero": "0", "negative": "-1", "huge": "100000"},
    "log-every": {"zero": "0", "negative": "-1"},
    "checkpoint-every": {"negative": "-1"},
    "dataset": {"unknown": "imagenet22k", "empty": ""},
    "model": {"unknown": "resnet19", "empty": ""},
    "data-root": {"missing": "{d}/missing-folder"},
    "out": {"empty": " "},
    "name": {"parent": "..", "escapes": "../elsewhere", "absolute": "/tmp/x"},
}


def _devices() -> dict[str, str]:
    bad = {"bogus": "bogus", "empty": "", "cuda-beyond-count": f"cuda:{torch.cuda.device_count()}",
           "negative-index": "cuda:-1", "tpu": "xla"}
    if not torch.cuda.is_available():
        bad["cuda-missing"] = "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        bad["mps-missing"] = "mps"
    return bad


def _train() -> Iterator[pytest.param]:  # type: ignore[type-arg]
    base = ("train", "--quiet", "--out", "{d}/runs")
    for flag, kinds in TRAIN_BAD.items():
        for kind, value in kinds.items():
            yield _case(f"train--{flag}={kind}", *base, f"--{flag}", value)
    for kind, value in _devices().items():
        yield _case(f"train--device={kind}", *base, "--device", value)
    for kind, value in {"decreasing": "5,3", "negative": "-1", "repeated": "3,3", "text": "a,b"}.items():
        yield _case(f"train--milestones={kind}", *base, "--schedule", "multistep", "--milestones", value)
    yield _case("train-multistep-without-milestones", *base, "--schedule", "multistep", "--milestones", "")
    yield _case("train--step-size=zero", *base, "--schedule", "step", "--step-size", "0")
    yield _case("train--precision=fp16-on-cpu", *base, "--precision", "fp16", "--device", "cpu")
    yield _case("train--seed-plus-seeds-overflow", *base, "--seed", str(2**63 - 1), "--seeds", "2")
    yield _case("train--epochs=zero-show-config", *base, "--epochs", "0", "--show-config")
    for name, value in {"num-classes": "num_classes=5", "in-channels": "in_channels=3", "unknown": "bogus=1",
                        "no-equals": "small_input", "empty-key": "=1"}.items():
        yield _case(f"train--set={name}", *base, "--set", value)
    yield _case("train--recipe=unknown", *base, "--recipe", "lenet9-mnist")
    yield _case("train--unknown-flag", *base, "--learning-rate", "0.1")
    yield _case("train--flip=value", *base, "--flip=yes")
    yield _case("train--resume=missing", "train", "--resume", "{d}/no-such-run")
    yield _case("train--resume=damaged", "train", "--resume", "{d}/random.pt")
    yield _case("train--resume-with-options", "train", "--resume", "{d}/emptyrun", "--epochs", "3")

    yield _case("recipes-unknown", "recipes", "resnet21-cifar10")
    yield _case("recipes-two-names", "recipes", "lenet5-mnist", "extra")
    yield _case("recipes-empty-name", "recipes", " ")

    yield _case("runs--runs=missing", "runs", "--runs", "{d}/no-such-folder")
    yield _case("runs--runs=file", "runs", "--runs", "{d}/random.pt")
    yield _case("runs-unknown-run", "runs", "no-such-run", "--runs", "{d}")
    yield _case("runs-path-as-name", "runs", "../etc", "--runs", "{d}")
    yield _case("runs-no-config", "runs", "emptyrun", "--runs", "{d}")

    yield _case("experiment-unknown", "experiment", "degradations", "--out", "{d}/exp")
    yield _case("experiment--budget=bogus", "experiment", "kernels", "--budget", "tiny", "--out", "{d}/exp")
    yield from _kinds("experiment", ("experiment", "kernels", "--out", "{d}/exp"), "--seeds", INT_KINDS,
                      ("negative", "zero", "huge", "text", "empty", "fraction"))
    yield _case("experiment--out=file", "experiment", "kernels", "--out", "{d}/random.pt")

    for name in CKPT_FILES:
        yield _case(f"eval-checkpoint={name}", "eval", f"{{d}}/{name}")
    yield _case("eval--split=bogus", "eval", "{d}/good.pt", "--split", "holdout")
    yield from _kinds("eval", ("eval", "{d}/good.pt"), "--batch-size", INT_KINDS,
                      ("negative", "zero", "nan", "huge", "text", "empty"))
    for kind, value in _devices().items():
        yield _case(f"eval--device={kind}", "eval", "{d}/good.pt", "--device", value)
    yield _case("eval--data=unknown", "eval", "{d}/good.pt", "--data", "imagenet22k")
    yield _case("eval-no-config", "eval", "{d}/good.pt")

    for name in CKPT_FILES:
        yield _case(f"predict-checkpoint={name}", "predict", f"{{d}}/{name}", "{d}/digit.png")
    for name in IMAGE_FILES:
        yield _case(f"predict-image={name}", "predict", "{d}/good.pt", f"{{d}}/{name}")
    yield _case("predict-second-image-bad", "predict", "{d}/good.pt", "{d}/digit.png", "{d}/text.png")
    yield from _kinds("predict", ("predict", "{d}/good.pt", "{d}/digit.png"), "--top", INT_KINDS,
                      ("negative", "zero", "nan", "text", "empty", "fraction"))
    yield _case("predict-no-images", "predict", "{d}/good.pt")


# --------------------------------------------------------------------------------------
# scratch, viz, serve, tour
# --------------------------------------------------------------------------------------


def _scratch() -> Iterator[pytest.param]:  # type: ignore[type-arg]
    explain = ("scratch", "explain")
    for kind, grid in GRIDS.items():
        yield _case(f"scratch-explain--input={kind}", *explain, "--input", grid)
        yield _case(f"scratch-explain--kernel={kind}", *explain, "--kernel", grid)
    yield _case("scratch-explain-kernel-larger-than-input", *explain, "--input", "1,2;3,4", "--kernel", "1,2,3;4,5,6;7,8,9")
    yield from _kinds("scratch-explain", explain, "--stride", INT_KINDS, ("negative", "zero", "text", "empty"))
    yield from _kinds("scratch-explain", explain, "--padding", INT_KINDS, ("negative", "text", "huge"),
                      {"beyond-a-written-example": "100000"})
    yield from _kinds("scratch-explain", explain, "--dilation", INT_KINDS, ("negative", "zero", "text"))
    yield from _kinds("scratch-explain", explain, "--bias", FLOAT_KINDS, ("nan", "inf", "-inf", "overflow", "text",
                                                                          "empty"))

    train = ("scratch", "train", "--quiet")
    yield _case("scratch-train--data=bogus", *train, "--data", "cifar10")
    yield from _kinds("scratch-train", train, "--epochs", INT_KINDS, ("negative", "zero", "text", "huge", "fraction"))
    yield from _kinds("scratch-train", train, "--batch-size", INT_KINDS, ("negative", "zero", "text", "huge"))
    yield from _kinds("scratch-train", train, "--lr", FLOAT_KINDS, ("negative", "zero", "nan", "inf", "text"))
    yield from _kinds("scratch-train", train, "--seed", INT_KINDS, ("negative", "huge", "text"))
    yield from _kinds("scratch-train", train, "--limit", INT_KINDS, ("negative", "zero", "text"))
    yield from _kinds("scratch-train", train, "--log-every", INT_KINDS, ("negative", "zero", "text"))
    yield _case("scratch-no-subcommand", "scratch")


def _viz() -> Iterator[pytest.param]:  # type: ignore[type-arg]
    out = ("--out", "{d}/out/picture.png")
    kernel = ("viz", "kernel", *out)
    for name in IMAGE_FILES:
        yield _case(f"viz-kernel-image={name}", "viz", "kernel", f"{{d}}/{name}", *out)
    for kind, grid in {**GRIDS, "unknown-name": "blur99"}.items():
        yield _case(f"viz-kernel--kernel={kind}", *kernel, "--kernel", grid)
    yield from _kinds("viz-kernel", kernel, "--stride", INT_KINDS, ("negative", "zero", "text", "fraction"))
    yield from _kinds("viz-kernel", kernel, "--padding", INT_KINDS, ("negative", "text", "huge"),
                      {"beyond-a-picture": "100000"})
    yield _case("viz-kernel--padding-mode=bogus", *kernel, "--padding-mode", "mirror")
    yield _case("viz-kernel--reflect-too-wide", "viz", "kernel", "{d}/digit.png", *out, "--padding", "40",
                "--padding-mode", "reflect")
    yield _case("viz-kernel--out=folder", "viz", "kernel", "--out", "{d}")
    yield _case("viz-kernel--out=under-a-file", "viz", "kernel", "--out", "{d}/text.png/k.png")

    steps = ("viz", "conv-steps", *out)
    for kind, grid in GRIDS.items():
        yield _case(f"viz-conv-steps--input={kind}", *steps, "--input", grid)
        yield _case(f"viz-conv-steps--kernel={kind}", *steps, "--kernel", grid)
    yield from _kinds("viz-conv-steps", steps, "--stride", INT_KINDS, ("negative", "zero", "text"))
    yield from _kinds("viz-conv-steps", steps, "--padding", INT_KINDS, ("negative", "text"),
                      {"beyond-a-written-example": "100000"})
    yield from _kinds("viz-conv-steps", steps, "--steps", INT_KINDS, ("negative", "zero", "text"))

    pool = ("viz", "pool", *out)
    for kind, grid in GRIDS.items():
        yield _case(f"viz-pool--values={kind}", *pool, "--values", grid)
    yield _case("viz-pool--no-values", *pool)
    yield _case("viz-pool--window-too-large", *pool, "--values", "1,2;3,4", "--kernel", "3")
    yield _case("viz-pool--padding-over-half", *pool, "--values", "1,2,3;4,5,6;7,8,9", "--kernel", "2", "--padding", "2")
    erf = ("viz", "erf-stacks", *out)
    yield _case("viz-erf-stacks--stack=text", *erf, "3,x")
    yield _case("viz-erf-stacks--stack=huge-kernel", *erf, "99")
    yield _case("viz-erf-stacks--size-too-small", *erf, "5,5", "--size", "5")
    yield from _kinds("viz-erf-stacks", erf, "--size", INT_KINDS, ("negative", "zero", "text"))

    for command in ("filters", "features", "gradcam"):
        yield _case(f"viz-{command}-unknown-model", "viz", command, "lenet9", *out)
        for name in ("random.pt", "truncated.pt", "evil.pt", "state_dict.pt", "emptyrun", "missing.pt"):
            yield _case(f"viz-{command}-checkpoint={name}", "viz", command, f"{{d}}/{name}", *out)
    yield _case("viz-filters--layer=unknown", "viz", "filters", "lenet5", "--layer", "conv99", *out)
    for command in ("features", "gradcam"):
        for name in ("text.png", "bomb.png", "nan.tif", "folder.png", "missing.png"):
            yield _case(f"viz-{command}-image={name}", "viz", command, "lenet5", f"{{d}}/{name}", *out)
    yield _case("viz-features--layers=unknown", "viz", "features", "lenet5", "--layers", "nope", *out)
    yield _case("viz-features--layers=empty", "viz", "features", "lenet5", "--layers", ",", *out)
    yield _case("viz-gradcam--layer=unknown", "viz", "gradcam", "lenet5", "--layer", "nope", *out)
    yield from _kinds("viz-gradcam", ("viz", "gradcam", "lenet5", *out), "--class", INT_KINDS,
                      ("negative", "text", "huge", "fraction"), {"beyond-classes": "10"})

    rf = ("viz", "rf", "resnet20", *out)
    yield _case("viz-rf-unknown-model", "viz", "rf", "resnet21", *out)
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"viz-rf--input={kind}", *rf, "--input", shape)
    yield _case("viz-rf--input=beyond-memory", *rf, "--input", "3x20000x20000")
    yield _case("viz-rf--input=too-small", "viz", "rf", "lenet5", *out, "--input", "1x4x4")
    yield _case("viz-rf--checkpoint=missing", *rf, "--checkpoint", "{d}/missing.pt")
    yield _case("viz-rf--checkpoint=random", *rf, "--checkpoint", "{d}/random.pt")
    yield _case("viz-rf--checkpoint=other-network", *rf, "--checkpoint", "{d}/good.pt")  # good.pt holds a lenet5
    yield _case("viz-rf--layer=unknown", "viz", "rf", "lenet5", *out, "--layer", "nope")

    yield _case("viz-curves-missing-run", "viz", "curves", "{d}/no-such-run", *out)
    yield _case("viz-curves-a-file", "viz", "curves", "{d}/text.png", *out)
    yield _case("viz-curves-empty-run", "viz", "curves", "{d}/emptyrun", *out)
    yield _case("viz-curves-damaged-metrics", "viz", "curves", "{d}/damagedrun", *out)
    yield _case("viz-curves-no-runs", "viz", "curves", *out)

    yield _case("viz-compare-unknown-model", "viz", "compare", "resnet20", "resnet21", *out)
    for kind, shape in BAD_SHAPES.items():
        yield _case(f"viz-compare--input={kind}", "viz", "compare", "resnet20", *out, "--input", shape)
    yield _case("viz-compare--acc=missing-run", "viz", "compare", "resnet20", *out, "--acc", "{d}/no-such-run")
    yield _case("viz-no-subcommand", "viz")
    yield _case("viz-unknown-subcommand", "viz", "histogram")

    yield from _kinds("serve", ("serve",), "--port", INT_KINDS, ("negative", "text", "empty", "fraction", "nan"),
                      {"above-65535": "70000"})

    yield _case("tour--lang=bogus", "tour", "--lang", "fr", "--out", "{d}/tour")
    yield _case("tour--out=a-file", "tour", "--out", "{d}/text.png")
    yield _case("tour--out=under-a-file", "tour", "--out", "{d}/text.png/tour")

    yield _case("no-command")
    yield _case("unknown-command", "trian")
    yield _case("unknown-global-flag", "--verbose", "models")


CASES = [*_calc(), *_model_commands(), *_train(), *_scratch(), *_viz()]


# --------------------------------------------------------------------------------------
# The damaged and good files the cases name
# --------------------------------------------------------------------------------------


class _Evil:
    """Unpickling this runs a shell command; a safe loader never does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:  # type: ignore[type-arg]
        return os.system, (f"touch {self.marker}",)


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnnlab.checkpoint import save_checkpoint
    from cnnlab.models import create_model

    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    (d / "random.pt").write_bytes(rng.bytes(512))
    torch.save({"weights": torch.zeros(1000)}, d / "whole.pt")
    whole = (d / "whole.pt").read_bytes()
    (d / "truncated.pt").write_bytes(whole[: len(whole) // 2])
    (d / "text.pt").write_text("not a checkpoint\n")
    (d / "empty.pt").write_bytes(b"")
    (d / "evil.pt").write_bytes(pickle.dumps(_Evil(d / "pwned")))
    torch.save(_Evil(d / "pwned"), d / "evil_zip.pt")
    torch.save(create_model("lenet5", num_classes=10, in_channels=1).state_dict(), d / "state_dict.pt")
    (d / "folder.pt").mkdir()
    (d / "emptyrun").mkdir()
    (d / "damagedrun").mkdir()
    (d / "damagedrun" / "metrics.jsonl").write_bytes(b"{\"epoch\": 1, \"train_loss\": \x00\xff\n")
    model = create_model("lenet5", num_classes=10, in_channels=1)
    save_checkpoint(d / "good.pt", "lenet5", {"num_classes": 10, "in_channels": 1}, model.state_dict(),
                    data={"classes": [str(i) for i in range(10)], "input_size": [1, 28, 28], "mean": [0.13],
                          "std": [0.31]})

    Image.fromarray((rng.random((28, 28)) * 255).astype(np.uint8)).save(d / "digit.png")
    (d / "text.png").write_text("not a picture\n")
    (d / "random.png").write_bytes(rng.bytes(512))
    (d / "empty.png").write_bytes(b"")
    png = (d / "digit.png").read_bytes()
    (d / "truncated.png").write_bytes(png[: len(png) // 3])
    (d / "bomb.png").write_bytes(_png_header(30000, 30000))
    Image.fromarray(np.full((4, 4), np.nan, dtype=np.float32)).save(d / "nan.tif")
    (d / "folder.png").mkdir()

    (d / "syntax.py").write_text("def Net(:\n")
    (d / "raises.py").write_text("raise RuntimeError('broken at import')\n")
    (d / "notmodel.py").write_text("Net = 3\n")
    return d


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``cnnlab ARGV``; a warning counts as the line it prints on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    shown = "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in caught)
    return code, captured.out, shown + captured.err


@pytest.mark.parametrize("argv", CASES)
def test_a_mistake_is_one_line_and_exit_code_2(argv: list[str], files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([a.replace("{d}", str(files)) for a in argv], capsys)
    assert "Traceback" not in err + out
    assert code == 2, (code, err)
    lines = err.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), err
    assert out == ""
    assert not (files / "pwned").exists(), "a checkpoint ran code while it was read"


@pytest.mark.parametrize("argv", [
    ["calc", "conv", "--input", "3x32x32", "--out-channels", "8", "--kernel", "3", "--json"],
    ["calc", "pool", "--input", "3x32x32", "--kernel", "2", "--json"],
    ["calc", "pool", "--values", "1,2;3,4", "--kernel", "2", "--mode", "all", "--json"],
    ["calc", "stack", "--input", "1x28x28", "flatten", "--json"],
    ["inspect", "lenet5", "--json"],
    ["compare", "resnet20", "--json"],
    ["train", "--quiet", "--out", "{d}/runs", "--show-config", "--json"],
    ["predict", "{d}/good.pt", "{d}/digit.png", "--json"],
    ["scratch", "explain", "--json"],
    ["viz", "conv-steps", "--out", "{d}/out/steps.png", "--json"],
    ["viz", "kernel", "{d}/digit.png", "--out", "{d}/out/kernel.png", "--json"],
    ["viz", "gradcam", "lenet5", "{d}/digit.png", "--out", "{d}/out/gradcam.png", "--json"],
], ids=lambda argv: "-".join(argv[:2]))
def test_the_same_commands_without_the_mistake_succeed(argv: list[str], files: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([a.replace("{d}", str(files)) for a in argv], capsys)
    assert code == 0, err
    json.loads(out)


def test_the_sweep_covers_every_command() -> None:
    assert len(CASES) >= 300
    counts = {leaf: sum(1 for p in CASES if tuple(p.values[0][: len(leaf)]) == leaf) for leaf, _ in leaf_parsers()}
    assert all(n >= 3 for n in counts.values()), counts


# --------------------------------------------------------------------------------------
# What the command does with errors that come from the system
# --------------------------------------------------------------------------------------


def _raising(exc: BaseException):  # type: ignore[no-untyped-def]
    def draw(*args: object, **kwargs: object) -> None:
        raise exc

    return draw


@pytest.mark.parametrize(("exc", "expected"), [
    (OSError(28, "No space left on device", "/data/k.png"), "no space left on device: /data/k.png: free space"),
    (PermissionError(13, "Permission denied", "/data/k.png"), "permission denied: /data/k.png"),
    (OSError(30, "Read-only file system", "/data/k.png"), "read-only file system: /data/k.png"),
    (MemoryError(), "out of memory: use a smaller input, batch or model"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you "
                  "tried to allocate 38400000000 bytes. Error code 12 (Cannot allocate memory)"),
     "out of memory (one allocation of 35.8 GiB): use a smaller input, batch or model"),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79 GiB"),
     "out of GPU memory (one allocation of 20.00 GiB): use a smaller input, batch or model"),
    (OSError("something\nwith\nlines"), "something with lines"),
], ids=["full-disk", "permission", "read-only", "memory", "cpu-allocator", "cuda", "multi-line"])
def test_system_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    exc: BaseException, expected: str) -> None:
    import cnnlab.viz

    monkeypatch.setattr(cnnlab.viz, "draw_kernel", _raising(exc))
    code, out, err = _run(["viz", "kernel", "--out", "k.png"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err, err


def test_a_broken_pipe_is_a_quiet_exit_and_a_bug_still_shows(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import cnnlab.viz

    monkeypatch.setattr(cnnlab.viz, "draw_kernel", _raising(BrokenPipeError(32, "Broken pipe")))
    assert _run(["viz", "kernel"], capsys) == (0, "", "")
    monkeypatch.setattr(cnnlab.viz, "draw_kernel", _raising(RuntimeError("a bug, not a user's mistake")))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["viz", "kernel"])


def test_val_size_zero_is_a_final_fit_and_stays_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["train", "--val-size", "0", "--show-config", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["val_size"] == 0


# --------------------------------------------------------------------------------------
# Real processes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["train", "--device", "bogus", "--out", "never"],
    ["calc", "conv", "--input", "3xx5", "--out-channels", "8", "--kernel", "3"],
], ids=["train-device", "calc-shape"])
def test_the_real_process_exits_2_with_one_line(argv: list[str], tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "cnnlab", *argv], capture_output=True, text=True, timeout=300,
                            check=False, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []


def _without_root_powers() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them unless its powers are dropped)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: file permissions cannot be tested")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def test_an_unreadable_image_and_an_unwritable_folder_say_permission_denied(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(secret)
    secret.chmod(0)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    commands = [["viz", "kernel", str(secret), "--out", str(tmp_path / "k.png")],
                ["viz", "kernel", "--out", str(locked / "k.png")]]
    both = f"import sys; from cnnlab.cli import main; sys.exit(sum(main(a) for a in {commands!r}))"
    result = subprocess.run([*_without_root_powers(), sys.executable, "-c", both], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 4, result.stderr
    assert result.stderr.splitlines() == [
        f"cnnlab: error: permission denied reading {secret}: make the file readable",
        f"cnnlab: error: permission denied: {locked / 'k.png'}: check the path's permissions, or use another path"]


_FULL_DISK = """
import contextlib, pathlib, sys
import cnnlab.export

@contextlib.contextmanager
def full_disk(path, suffix=""):
    yield pathlib.Path("/dev/full")

cnnlab.export.atomic_write = full_disk
from cnnlab.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a device that is always full")
def test_a_torchscript_export_to_a_full_disk_is_one_line_not_an_abort(tmp_path: Path) -> None:
    target = tmp_path / "lenet5.pt"
    result = subprocess.run([sys.executable, "-c", _FULL_DISK, "export", "lenet5", "--format", "torchscript",
                             "--out", str(target), "--json"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"cnnlab: error: no space left on device: {target}: free space or write elsewhere\n"
    assert result.stdout == "" and not target.exists()


def test_a_safetensors_export_to_a_full_disk_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import safetensors.torch
    from safetensors import SafetensorError

    def full_disk(*args: object, **kwargs: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.torch, "save_model", full_disk)
    target = tmp_path / "lenet5.safetensors"
    code, out, err = _run(["export", "lenet5", "--format", "safetensors", "--out", str(target), "--json"], capsys)
    assert (code, out) == (2, "")
    assert err == f"cnnlab: error: no space left on device: {target}: free space or write elsewhere\n"
    assert list(tmp_path.iterdir()) == []
