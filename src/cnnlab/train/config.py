"""The training configuration: one typed dataclass; recipes are named instances of it.

Every field can be overridden from the command line (``--field-name VALUE``); the CLI builds
its flags from this class, so a new field is a new flag with no other change.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_origin, get_type_hints

from cnnlab.errors import CnnlabError

__all__ = ["FIELD_HELP", "TrainConfig", "config_from_dict", "override"]

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "multistep", "cosine", "onecycle")
AMP = ("none", "bf16", "fp16")


@dataclass
class TrainConfig:
    # what
    recipe: str = "lenet5-mnist"  # the named recipe these values started from
    source: str = ""  # where the recipe's values come from (paper, reference script)
    model: str = "lenet5"  # a registered model (`cnnlab models`)
    model_options: dict[str, Any] = field(default_factory=dict)  # architecture options (KEY=VALUE)
    dataset: str = "mnist"  # mnist | fashion-mnist | mnist-5k | cifar10 | cifar100 | imagefolder
    data_root: str | None = None  # folder to read the dataset from (default: the offline sources)
    val_size: float | None = None  # validation carved from training data: a count, a fraction, or the official split
    limit: int | None = None  # keep only this many examples of each split (smoke runs)
    download: bool = False  # fetch CIFAR with torchvision when it is missing (needs the internet)
    # adaptation of the data to the model (explicit, printed in the run summary)
    adapt_channels: int | None = None  # 1 -> 3 repeats gray; 3 -> 1 takes luma
    adapt_size: int | None = None  # square side to pad or resize to
    adapt_mode: str = "pad"  # pad | resize
    # augmentation, per batch on the training device
    crop_padding: int = 0  # random crop after zero padding (CIFAR: 4)
    flip: bool = False  # random horizontal flip
    random_resized_crop: int | None = None  # output side of a random-resized crop
    pca_lighting: float = 0.0  # AlexNet's PCA colour lighting std (paper: 0.1)
    cutout: int = 0  # side of a random zeroed square
    # length and batch
    epochs: int = 6  # passes over the training split
    iterations: int | None = None  # total optimizer steps; overrides epochs (He et al. count iterations)
    batch_size: int = 128  # global batch (split evenly across processes)
    eval_batch_size: int = 1000  # batch for validation and test
    # optimisation
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # peak learning rate for the global batch
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = False  # Nesterov momentum
    weight_decay: float = 5e-4  # L2 penalty (decoupled for AdamW)
    decay_norm_and_bias: bool = True  # false: no weight decay on norm parameters and biases
    schedule: str = "onecycle"  # constant | step | multistep | cosine | onecycle
    milestones: list[int] = field(default_factory=list)  # multistep boundaries, in steps when iterations is set, else epochs
    step_size: int = 30  # step schedule period (epochs, or steps when iterations is set)
    gamma: float = 0.1  # step/multistep factor
    warmup: float = 0.0  # linear warm-up length, in epochs (fractions allowed)
    label_smoothing: float = 0.0  # cross-entropy label smoothing (0.1 is common)
    aux_weight: float | None = None  # auxiliary-classifier loss weight; None: the model's own (GoogLeNet paper: 0.3)
    grad_clip: float | None = None  # clip the global gradient norm to this
    # speed
    amp: str = "none"  # none | bf16 | fp16 (mixed precision on CUDA; bf16 also on CPU)
    channels_last: bool = False  # NHWC memory layout (faster convolutions on recent GPUs)
    compile: bool = False  # torch.compile the model
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    workers: int = 4  # DataLoader workers for image folders
    sync_bn: bool = False  # SyncBatchNorm across processes
    # reproducibility and runs
    seed: int = 0  # seeds weights, shuffling, augmentation and dropout
    seeds: int = 1  # run this many seeds (seed, seed+1, ...) and report mean and std
    deterministic: bool = False  # torch.use_deterministic_algorithms
    out: str = "runs"  # parent folder of run folders
    name: str | None = None  # run folder name (default: recipe and time)
    log_every: int = 50  # steps between progress lines and NaN checks
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints (0: at epoch ends only)
    tensorboard: bool = False  # also write TensorBoard event files

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def validate(self) -> TrainConfig:
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (self.amp in AMP, f"amp must be one of {', '.join(AMP)}"),
            (self.adapt_mode in ("pad", "resize"), "adapt-mode must be pad or resize"),
            (self.epochs >= 1 or (self.iterations or 0) >= 1, "epochs must be at least 1"),
            (self.iterations is None or self.iterations >= 1, "iterations must be at least 1"),
            (self.batch_size >= 1 and self.eval_batch_size >= 1, "batch sizes must be at least 1"),
            (self.lr > 0, "lr must be positive"),
            (self.seeds >= 1, "seeds must be at least 1"),
            (self.log_every >= 1, "log-every must be at least 1"),
            (0 <= self.label_smoothing < 1, "label-smoothing must be in [0, 1)"),
            (self.schedule != "multistep" or bool(self.milestones), "schedule multistep needs --milestones"),
        ]
        for ok, message in checks:
            if not ok:
                raise CnnlabError(message)
        return self


def _field_help() -> dict[str, str]:
    """Each field's trailing comment in the class body above: the comments are the flags' help."""
    import inspect
    import io
    import tokenize

    help_text: dict[str, str] = {}
    last_name = None
    for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(TrainConfig)).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and last_name is None:
            last_name = tok.string
        elif tok.type == tokenize.COMMENT and last_name and tok.start[1] > 4:
            help_text[last_name] = tok.string.lstrip("# ").strip()
        elif tok.type in (tokenize.NEWLINE, tokenize.NL):
            last_name = None
    return help_text


FIELD_HELP = _field_help()


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Turn a command-line string (or a JSON value) into the field's type."""
    if value is None:
        return None
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not type(None)]
    if origin is not None and type(None) in get_args(annotation):  # X | None
        if isinstance(value, str) and value.lower() in ("none", "null", ""):
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
            raise CnnlabError(f"--{name.replace('_', '-')} takes a {annotation.__name__}, got {value!r}") from None
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


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved with ``to_dict`` (unknown keys from other versions are refused)."""
    return override(TrainConfig(), data)
