"""The training configuration: one typed dataclass; recipes are named instances of it.

Every field can be overridden from the command line (``--field-name VALUE``); the CLI builds
its flags from this class, so a new field is a new flag with no other change.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, get_args, get_origin, get_type_hints

from cnnlab.errors import CnnlabError
from cnnlab.limits import MAX_SIDE

__all__ = ["FIELD_HELP", "TrainConfig", "check_device", "config_from_dict", "override"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ADAPT_MODES = ("pad", "resize")


def opt(default: Any = MISSING, help: str = "", factory: Any = MISSING) -> Any:
    """A config field with its command-line help in the field's metadata (``--flag`` help text)."""
    return field(default=default, default_factory=factory, metadata={"help": help})


@dataclass
class TrainConfig:
    # what
    recipe: str = opt("lenet5-mnist", "the named recipe these values started from")
    source: str = opt("", "where the recipe's values come from (paper, reference script)")
    model: str = opt("lenet5", "a registered model (`cnnlab models`)")
    model_options: dict[str, Any] = opt(factory=dict, help="architecture options (KEY=VALUE)")
    dataset: str = opt("mnist", "mnist | fashion-mnist | mnist-5k | cifar10 | cifar100 | imagefolder")
    data_root: str | None = opt(None, "folder to read the dataset from (default: the offline sources)")
    val_size: float | None = opt(None, "validation carved from training data: a count, a fraction, or the official split")
    limit: int | None = opt(None, "keep only this many examples of each split (smoke runs)")
    download: bool = opt(False, "fetch CIFAR with torchvision when it is missing (needs the internet)")
    # adaptation of the data to the model (explicit, printed in the run summary)
    adapt_channels: int | None = opt(None, "1 -> 3 repeats gray; 3 -> 1 takes luma")
    adapt_size: int | None = opt(None, "square side to pad or resize to")
    adapt_mode: str = opt("pad", "pad | resize")
    # augmentation, per batch on the training device
    crop_padding: int = opt(0, "random crop after zero padding (CIFAR: 4)")
    flip: bool = opt(False, "random horizontal flip")
    random_resized_crop: int | None = opt(None, "output side of a random-resized crop")
    pca_lighting: float = opt(0.0, "AlexNet's PCA colour lighting std (paper: 0.1)")
    cutout: int = opt(0, "side of a random zeroed square")
    # length and batch
    epochs: int = opt(6, "passes over the training split")
    iterations: int | None = opt(None, "total optimizer steps; overrides epochs (He et al. count iterations)")
    batch_size: int = opt(128, "global batch (split evenly across processes)")
    eval_batch_size: int = opt(1000, "batch for validation and test")
    # optimisation
    optimizer: str = opt("sgd", "sgd | adamw")
    lr: float = opt(0.1, "peak learning rate for the global batch")
    momentum: float = opt(0.9, "SGD momentum")
    nesterov: bool = opt(False, "Nesterov momentum")
    weight_decay: float = opt(5e-4, "L2 penalty (decoupled for AdamW)")
    decay_norm_and_bias: bool = opt(True, "false: no weight decay on norm parameters and biases")
    schedule: str = opt("onecycle", "constant | step | multistep | cosine | onecycle")
    milestones: list[int] = opt(factory=list, help="multistep boundaries, in steps when iterations is set, else epochs")
    step_size: int = opt(30, "step schedule period (epochs, or steps when iterations is set)")
    gamma: float = opt(0.1, "step/multistep factor")
    warmup: float = opt(0.0, "linear warm-up length, in epochs (fractions allowed)")
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing (0.1 is common)")
    aux_weight: float | None = opt(None, "auxiliary-classifier loss weight; None: the model's own (GoogLeNet paper: 0.3)")
    grad_clip: float | None = opt(None, "clip the global gradient norm to this")
    # speed
    precision: str = opt("auto", "auto | fp32 | bf16 | fp16: auto is bf16 autocast where the hardware does bf16 "
                                 "natively (CPUs with AMX or AVX512-BF16, CUDA from Ampere on), else fp32")
    channels_last: bool | None = opt(None, "NHWC memory layout (default: on with bf16/fp16, off with fp32)")
    threads: int | None = opt(None, "CPU compute threads (default: auto, the cores other work leaves free)")
    compile: bool = opt(False, "torch.compile the model")
    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    workers: int = opt(4, "DataLoader workers for image folders")
    sync_bn: bool = opt(False, "SyncBatchNorm across processes")
    # reproducibility and runs
    seed: int = opt(0, "seeds weights, shuffling, augmentation and dropout")
    seeds: int = opt(1, "run this many seeds (seed, seed+1, ...) and report mean and std")
    deterministic: bool = opt(False, "torch.use_deterministic_algorithms")
    out: str = opt("runs", "parent folder of run folders")
    name: str | None = opt(None, "run folder name (default: recipe and time)")
    log_every: int = opt(50, "steps between progress lines and NaN checks")
    checkpoint_every: int = opt(0, "steps between mid-epoch checkpoints (0: at epoch ends only)")
    tensorboard: bool = opt(False, "also write TensorBoard event files")


    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def validate(self) -> TrainConfig:
        """This config, if every field holds a value training can use; else one line naming the field and the fix."""
        for message in _problems(self):
            raise CnnlabError(message)
        return self


def _fields_of(kind: type) -> tuple[str, ...]:
    hints = get_type_hints(TrainConfig)
    return tuple(f.name for f in fields(TrainConfig)
                 if hints[f.name] is kind or (get_origin(hints[f.name]) is not None and kind in get_args(hints[f.name])
                                              and get_origin(hints[f.name]) is not list))


FLOAT_FIELDS = _fields_of(float)
INT_FIELDS = _fields_of(int)
_MAX_STEPS = 10**9
# (field, smallest, largest, what to give instead)
INT_RANGES: tuple[tuple[str, int, int, str], ...] = (
    ("epochs", 0, 10**6, "the number of passes over the training data, e.g. 10"),
    ("iterations", 1, _MAX_STEPS, "the number of optimizer steps, e.g. 64000"),
    ("batch_size", 1, 2**20, "e.g. 128"),
    ("eval_batch_size", 1, 2**20, "e.g. 1000"),
    ("limit", 1, _MAX_STEPS, "the number of examples to keep from each split, e.g. 1000"),
    ("adapt_size", 1, MAX_SIDE, "the square side to pad or resize the images to, e.g. 32"),
    ("crop_padding", 0, MAX_SIDE, "e.g. 4 for CIFAR, 0 for no random crop"),
    ("random_resized_crop", 1, MAX_SIDE, "the side of the crops, e.g. 224"),
    ("cutout", 0, MAX_SIDE, "the side of the zeroed square, e.g. 16, or 0 for none"),
    ("step_size", 1, _MAX_STEPS, "the period of the step schedule, e.g. 30"),
    ("workers", 0, 256, "e.g. 4, or 0 to read images in the main process"),
    ("seed", 0, 2**63 - 1, "e.g. 0"),
    ("seeds", 1, 1000, "the number of runs with consecutive seeds, e.g. 3"),
    ("log_every", 1, _MAX_STEPS, "steps between progress lines, e.g. 50"),
    ("checkpoint_every", 0, _MAX_STEPS, "steps between checkpoints, or 0 for epoch ends only"),
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problems(cfg: TrainConfig) -> Iterator[str]:
    """Every reason ``cfg`` cannot train, cheapest first (the first one is reported)."""
    for name, choices in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                          ("adapt_mode", ADAPT_MODES)):
        if getattr(cfg, name) not in choices:
            yield f"{_flag(name)} must be one of {', '.join(choices)}, got {getattr(cfg, name)!r}"
    for name in FLOAT_FIELDS:
        value = getattr(cfg, name)
        if value is not None and not _is_number(value):
            yield f"{_flag(name)} must be a finite number, got {value!r}"
    for name in INT_FIELDS:
        value = getattr(cfg, name)
        if value is not None and not _is_int(value):
            yield f"{_flag(name)} must be a whole number, got {value!r}"
    for name, low, high, fix in INT_RANGES:
        value = getattr(cfg, name)
        if value is not None and not low <= value <= high:
            yield f"{_flag(name)} must be from {low} to {high:,}, got {value}: {fix}"
    if cfg.iterations is None and cfg.epochs < 1:
        yield f"--epochs must be at least 1, got {cfg.epochs}: or give --iterations"
    if cfg.adapt_channels not in (None, 1, 3):
        yield f"--adapt-channels must be 1 (luma of colour images) or 3 (gray repeated), got {cfg.adapt_channels}"
    yield from _float_problems(cfg)
    if not all(_is_int(m) for m in cfg.milestones):
        yield f"--milestones must be whole numbers, got {cfg.milestones!r}"
    elif list(cfg.milestones) != sorted(set(cfg.milestones)) or any(m < 0 for m in cfg.milestones):
        yield (f"--milestones must be non-negative and increasing, got {','.join(map(str, cfg.milestones))}: "
               "e.g. --milestones 32000,48000")
    if cfg.schedule == "multistep" and not cfg.milestones:
        yield "--schedule multistep needs --milestones, e.g. --milestones 100,150"
    if cfg.seed + cfg.seeds - 1 >= 2**63:
        yield f"--seed {cfg.seed} with --seeds {cfg.seeds} runs past the largest seed 2**63-1: use a smaller --seed"
    if not isinstance(cfg.out, str) or not cfg.out.strip():
        yield "--out must name a folder for the runs, e.g. --out runs"
    if cfg.precision == "fp16" and cfg.device == "cpu":
        yield "--precision fp16 needs a CUDA device; on the CPU use --precision bf16 or fp32"
    for key, why in (("num_classes", "the dataset fixes the number of classes"),
                     ("in_channels", "the dataset fixes the input channels (convert them with --adapt-channels)")):
        if key in cfg.model_options:
            yield f"--set {key}={cfg.model_options[key]} is not an option of a training run: {why}; drop it"
    try:
        check_device(cfg.device)
        _check_model(cfg)
        _check_data(cfg)
    except CnnlabError as exc:
        yield str(exc)


def _float_problems(cfg: TrainConfig) -> Iterator[str]:
    if not cfg.lr > 0:
        yield f"--lr must be positive, got {cfg.lr}: e.g. 0.1 for SGD, 1e-3 for AdamW"
    if not 0 <= cfg.momentum < 1:
        yield f"--momentum must be in [0, 1), got {cfg.momentum}: use 0.9 (the usual value) or 0 for plain SGD"
    if not cfg.weight_decay >= 0:
        yield f"--weight-decay must be at least 0, got {cfg.weight_decay}: e.g. 5e-4, or 0 for none"
    if not 0 < cfg.gamma <= 1:
        yield f"--gamma must be in (0, 1], got {cfg.gamma}: the factor the learning rate is multiplied by, e.g. 0.1"
    if not cfg.warmup >= 0:
        yield f"--warmup must be at least 0 epochs, got {cfg.warmup}: use 0 for no warm-up"
    if not 0 <= cfg.label_smoothing < 1:
        yield f"--label-smoothing must be in [0, 1), got {cfg.label_smoothing}: 0.1 is common, 0 turns it off"
    if cfg.grad_clip is not None and not cfg.grad_clip > 0:
        yield f"--grad-clip must be positive, got {cfg.grad_clip}: e.g. 1.0, or none for no clipping"
    if cfg.aux_weight is not None and not cfg.aux_weight >= 0:
        yield f"--aux-weight must be at least 0, got {cfg.aux_weight}: the GoogLeNet paper uses 0.3"
    if not cfg.pca_lighting >= 0:
        yield f"--pca-lighting must be at least 0, got {cfg.pca_lighting}: AlexNet used 0.1, 0 turns it off"
    v = cfg.val_size
    if v is not None and not (0 <= v < 1 or (v >= 1 and float(v).is_integer())):
        yield (f"--val-size must be a count of at least 1 or a fraction in [0, 1), got {v}: e.g. 5000 or 0.1 "
               "(0: no validation split)")


def check_device(name: str) -> str:
    """``name`` if it is a device that exists on this machine (cpu, auto, cuda, cuda:N, mps)."""
    text = str(name).strip().lower()
    if text in ("auto", "cpu"):
        return text
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise CnnlabError(f"--device {name!r} is not a device: use cpu, auto, cuda or cuda:N") from None
    if device.type == "cpu":
        return text
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CnnlabError(f"--device {name} asked for, but torch sees no CUDA device here: use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise CnnlabError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to "
                              f"cuda:{count - 1}: use one of them")
        return text
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise CnnlabError(f"--device {name} asked for, but torch sees no Apple MPS device here: use --device cpu")
        return text
    raise CnnlabError(f"--device {name} is not a device cnnlab trains on: use cpu, auto, cuda or cuda:N")


def _check_model(cfg: TrainConfig) -> None:
    from cnnlab.models.registry import check_options

    options = {k: v for k, v in cfg.model_options.items() if k not in ("num_classes", "in_channels")}
    check_options(cfg.model, options)


def _check_data(cfg: TrainConfig) -> None:
    from pathlib import Path

    from cnnlab.data.sources import dataset_key

    dataset_key(cfg.dataset)
    if cfg.data_root is not None and not Path(cfg.data_root).expanduser().exists():
        raise CnnlabError(f"--data-root {cfg.data_root} does not exist: give an existing folder")


FIELD_HELP = {f.name: f.metadata["help"] for f in fields(TrainConfig)}


# Fields whose None means "cnnlab decides": `auto` on the command line says so too.
_AUTO = frozenset({"threads", "channels_last"})
_KINDS = {int: "an integer", float: "a number", str: "a string"}


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Turn a command-line string (or a JSON value) into the field's type."""
    if value is None:
        return None
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    if origin is not None and type(None) in get_args(annotation):  # X | None
        if isinstance(value, str) and value.lower() in ("none", "null", "", *(("auto",) if name in _AUTO else ())):
            return None
        return _coerce(name, args[0], value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise CnnlabError(f"--{name.replace('_', '-')} takes true or false, got {value!r}")
    if annotation in (int, float, str):
        try:
            return annotation(value)
        except (TypeError, ValueError):
            raise CnnlabError(f"--{name.replace('_', '-')} takes {_KINDS[annotation]}, got {value!r}") from None
    if origin is list:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", ",").split(",") if v]
        return [_coerce(name, args[0], v) for v in value]
    if origin is dict:
        if isinstance(value, dict):
            return dict(value)
        from cnnlab.models.source import parse_options

        return parse_options(value if isinstance(value, list) else [value])
    return value


def _hints() -> dict[str, Any]:
    return get_type_hints(TrainConfig)


def override(config: TrainConfig, changes: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with fields replaced (values may be command-line strings)."""
    hints = _hints()
    known = {f.name for f in fields(TrainConfig)}
    updates = {}
    for key, value in changes.items():
        name = key.replace("-", "_")
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean --{close[0].replace('_', '-')}?)" if close else ""
            raise CnnlabError(f"unknown training option {key!r}{hint}: `cnnlab train --help` lists them")
        updates[name] = _coerce(name, hints[name], value)
    return dataclasses.replace(config, **updates)


# Keys of configs saved by earlier versions, and what they became.
_RENAMED_AMP = {"none": "fp32", "bf16": "bf16", "fp16": "fp16"}


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved with ``to_dict`` (unknown keys from other versions are refused).

    A config saved before ``precision`` existed says ``amp`` (none|bf16|fp16) and a
    ``channels_last`` flag; it is read as the precision it asked for.
    """
    data = dict(data)
    if "amp" in data and "precision" not in data:
        data["precision"] = _RENAMED_AMP.get(str(data.pop("amp")), "fp32")
    return override(TrainConfig(), data)
