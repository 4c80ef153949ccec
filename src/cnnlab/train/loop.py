"""The training loop: fit a zoo model on a dataset with a recipe, evaluate, checkpoint, resume.

Model selection uses the validation split only; the test split is evaluated once, at the end,
with the weights that were best on validation. Checkpoints hold everything a step depends on
(model, optimizer, schedule, grad scaler, every random generator, the loader's position), so a
run that is interrupted and resumed ends with exactly the weights of one that was not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import math
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.checkpoint import checkpoint_payload, load_checkpoint
from cnnlab.errors import CnnlabError
from cnnlab.runs import RunDir
from cnnlab.shapes import fmt_shape
from cnnlab.train.allocator import give_back, keep_memory
from cnnlab.train.config import TrainConfig, config_from_dict
from cnnlab.train.distributed import DistEnv, all_reduce_sum, barrier, init_distributed, shutdown
from cnnlab.train.precision import Precision, resolve
from cnnlab.train.progress import Progress, fmt_duration
from cnnlab.train.threads import Probe, Threads
from cnnlab.train.threads import resolve as resolve_threads

__all__ = ["RunResult", "build_optimizer", "evaluate", "fit", "fit_seeds", "load_data", "lr_factor", "mean_std"]


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "finished", "interrupted"
    config: dict[str, Any]
    epochs_done: int
    steps: int
    best_epoch: int | None
    best_val: dict[str, Any] | None
    test: dict[str, Any] | None
    seconds: float
    train_images_per_s: float
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "status": self.status, "epochs_done": self.epochs_done,
            "steps": self.steps, "best_epoch": self.best_epoch, "best_val": self.best_val, "test": self.test,
            "seconds": round(self.seconds, 2), "train_images_per_s": round(self.train_images_per_s, 1),
            "history": self.history, "summary": self.summary, "config": self.config,
        }


# --------------------------------------------------------------------------------------
# Optimizer and schedule
# --------------------------------------------------------------------------------------


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD or AdamW; with ``decay_norm_and_bias`` false, norms and biases get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.decay_norm_and_bias or cfg.weight_decay == 0:
        groups: list[dict[str, Any]] = [{"params": params, "weight_decay": cfg.weight_decay}]
    else:
        # One-dimensional tensors are the biases and the norms' scales and shifts.
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # torch's fused kernels update every parameter in one call per step: on the CPU an SGD step over
    # LeNet-5 takes about a third of the per-tensor loop's time. They exist for CPU and CUDA tensors.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params) or None
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               fused=fused)
    return torch.optim.AdamW(groups, lr=cfg.lr, fused=fused)


def lr_factor(cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """The learning rate at ``step`` as a fraction of ``cfg.lr`` (linear warm-up, then the schedule)."""
    warm = round(cfg.warmup * steps_per_epoch)
    if warm and step < warm:
        return (step + 1) / warm
    unit = 1 if cfg.iterations else steps_per_epoch  # milestones and step_size: steps or epochs
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** (step // (cfg.step_size * unit))
    if cfg.schedule == "multistep":
        return cfg.gamma ** sum(step >= m * unit for m in cfg.milestones)
    span = max(total_steps - warm, 1)
    t = min(max(step - warm, 0) / span, 1.0)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    # one-cycle (Smith & Topin 2019): cosine rise from lr/25 over the first 25%, then cosine decay to lr/1e4
    rise = 0.25
    low, end = 1 / 25, 1 / 1e4
    if t < rise:
        return low + (1 - low) * 0.5 * (1 - math.cos(math.pi * t / rise))
    return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * (t - rise) / (1 - rise)))


# --------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------


def _logits(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output[0]


@torch.no_grad()
def evaluate(model: nn.Module, loader: Any, num_classes: int, device: torch.device, env: DistEnv | None = None,
             precision: Precision | None = None, confusion: bool = False) -> dict[str, Any]:
    """Loss, top-1, top-5 and per-class accuracy (and the confusion matrix) over a loader.

    The forward passes run in ``precision``'s autocast (fp32 when None); the sums are fp32/int64.
    """
    env = env or DistEnv()
    precision = precision or Precision("fp32", False, "asked for")
    model.eval()
    matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    k = min(5, num_classes)
    for x, y in loader:
        with precision.autocast(device):
            logits = _logits(model(x)).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        pred = logits.argmax(1)
        matrix += torch.bincount(y * num_classes + pred, minlength=num_classes * num_classes).view(num_classes, -1)
        top5 += (logits.topk(k, 1).indices == y[:, None]).any(1).sum()
    for t in (matrix, loss_sum, top5):
        all_reduce_sum(t, env)
    m = matrix.cpu()
    n = int(m.sum())
    if n == 0:
        raise CnnlabError("the evaluation split is empty")
    per_class = (m.diag().double() / m.sum(1).clamp(min=1).double()).tolist()
    result: dict[str, Any] = {
        "samples": n, "loss": float(loss_sum) / n, "top1": float(m.diag().sum()) / n, "top5": float(top5) / n,
        "per_class": per_class,
    }
    if confusion:
        result["confusion"] = m.tolist()
    return result


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _device(name: str, env_local_rank: int) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{env_local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CnnlabError("--device cuda asked for, but torch sees no CUDA device: use --device cpu")
    return device


def _rng_state(device: torch.device) -> dict[str, Any]:
    import numpy as np

    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _plain_rng(state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    out["numpy"] = (state["numpy"][0], state["numpy"][1].tolist(), *state["numpy"][2:])
    for key in ("torch", "cuda"):
        if key in state:
            out[key] = bytes(state[key].numpy().tobytes())
    return out


def _tensor_rng(state: dict[str, Any]) -> dict[str, Any]:
    out = dict(state)
    out["numpy"] = (state["numpy"][0], torch.tensor(state["numpy"][1], dtype=torch.int64), *state["numpy"][2:])
    for key in ("torch", "cuda"):
        if key in state:
            out[key] = torch.frombuffer(bytearray(state[key]), dtype=torch.uint8).clone()
    return out


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    import numpy as np

    version, ints, pos = state["python"]
    random.setstate((version, tuple(ints), pos))
    name, keys, p, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), p, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop stops at the next step boundary and saves its state."""

    def __init__(self) -> None:
        self.set = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers there
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------
# fit
# --------------------------------------------------------------------------------------


def _default_name(cfg: TrainConfig) -> str:
    return f"{cfg.model}-{cfg.dataset}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-s{cfg.seed}"


def load_data(cfg: TrainConfig) -> Any:
    """The dataset a config names, adapted and split as the run reads it."""
    from cnnlab.data import Adapt, load_dataset

    adapt = None
    if cfg.adapt_channels is not None or cfg.adapt_size is not None:
        adapt = Adapt(channels=cfg.adapt_channels, size=cfg.adapt_size, mode=cfg.adapt_mode)
    # A count (5000) or a fraction (0.1): the config keeps one number, the data API two types.
    val_size = int(cfg.val_size) if cfg.val_size is not None and cfg.val_size >= 1 else cfg.val_size
    return load_dataset(cfg.dataset, root=cfg.data_root, val_size=val_size, seed=0, adapt=adapt, limit=cfg.limit,
                        download=cfg.download)


def _augment(cfg: TrainConfig) -> Any:
    from cnnlab.data import Augment

    return Augment(crop_padding=cfg.crop_padding, flip=cfg.flip, random_resized_crop=cfg.random_resized_crop,
                   pca_lighting=cfg.pca_lighting, cutout=cfg.cutout)


def _loaders(cfg: TrainConfig, ds: Any, device: torch.device, env: DistEnv) -> tuple[Any, Any, Any]:
    from cnnlab.data import Split, TensorLoader, folder_loader

    if cfg.batch_size % env.world_size:
        raise CnnlabError(f"--batch-size {cfg.batch_size} does not split evenly over {env.world_size} processes: "
                          f"use a multiple of {env.world_size}")
    per_rank = cfg.batch_size // env.world_size

    def make(split: Any, train: bool) -> Any:
        if split is None:
            return None
        if isinstance(split, Split):
            return TensorLoader(split, per_rank if train else cfg.eval_batch_size, shuffle=train,
                                augment=_augment(cfg) if train else None, mean=ds.mean, std=ds.std, device=device,
                                drop_last=train, seed=cfg.seed, rank=env.rank, world_size=env.world_size,
                                channels_last=cfg.channels_last)
        return folder_loader(split, per_rank if train else cfg.eval_batch_size, shuffle=train, workers=cfg.workers,
                             seed=cfg.seed, rank=env.rank, world_size=env.world_size, device=device)

    return make(ds.train, True), make(ds.val, False), make(ds.test, False)


def _build_model(cfg: TrainConfig, ds: Any) -> tuple[nn.Module, dict[str, Any]]:
    from cnnlab.models import create_model, model_info
    from cnnlab.models.inputs import check_input

    kwargs = {**cfg.model_options, "num_classes": len(ds.classes), "in_channels": ds.in_channels}
    model = create_model(cfg.model, **kwargs)
    size = (ds.in_channels, *ds.image_size)
    try:
        # The training graph too: GoogLeNet's auxiliary classifiers need more than inference does.
        check_input(model, size, cfg.model, known_side=model_info(cfg.model).default_input[-1], training=True)
    except CnnlabError as exc:
        hint = "; adapt the data with --adapt-size N (pad) or --adapt-mode resize"
        if "small_input" in inspect.signature(model_info(cfg.model).builder).parameters:
            hint += ", or use the model's small-input stem with --set small_input=true"
        raise CnnlabError(f"{cfg.dataset} images ({fmt_shape(size)}) do not fit {cfg.model}: {exc}{hint}") \
            from None
    return model, kwargs


def _loss(output: Any, y: torch.Tensor, cfg: TrainConfig, aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy (with label smoothing), plus the weighted auxiliary heads' losses when present."""
    logits = _logits(output)
    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    if not isinstance(output, torch.Tensor):
        for aux in output[1:]:
            if aux is not None:
                loss = loss + aux_weight * F.cross_entropy(aux, y, label_smoothing=cfg.label_smoothing)
    return loss, logits


def fit(cfg: TrainConfig, resume: str | Path | None = None, on_step: Callable[[int], bool] | None = None,
        quiet: bool = False, overwrite: bool = False) -> RunResult:
    """Train with ``cfg`` in a new run folder, or continue the run ``resume`` (its folder or a checkpoint in it).

    A new run never writes into a folder that holds another run: an explicit ``cfg.name`` that
    is taken is refused unless ``overwrite``. A resumed run is written where ``resume`` is,
    whatever the checkpoint says. ``on_step(step)`` is called after every optimizer step;
    returning True stops the run at that step boundary with a checkpoint to resume from, as
    SIGINT/SIGTERM do.
    """
    run = ckpt = note = None
    main = int(os.environ.get("RANK", "0")) == 0
    try:
        if resume is not None:
            run, chosen = RunDir.holding(resume)
            if main:
                run.acquire()  # before reading: no other process can move the run on under us
            ckpt, _, note = run.resume_point(chosen)
            cfg = config_from_dict(ckpt["config"] if ckpt else run.read_config() or {})
        cfg = cfg.validate()
        device = _device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        env = init_distributed(device)
        created = run is None
        threads = torch.get_num_threads()  # the run sets its own; the caller gets theirs back
        try:
            if run is None:
                run, note = _open_run(cfg, env, overwrite)
            return _fit(cfg, device, env, run, ckpt, note, on_step, quiet)
        except BaseException:
            if created and run is not None and env.is_main:
                run.discard_if_empty()  # a run that failed before writing anything leaves no folder
            raise
        finally:
            torch.set_num_threads(threads)
            give_back()  # the memory the run kept for its steps
            shutdown(env)
    finally:
        if run is not None:
            run.release()


def _open_run(cfg: TrainConfig, env: DistEnv, overwrite: bool) -> tuple[RunDir, str | None]:
    """Rank 0 makes and locks the new run's folder; the other ranks learn its path."""
    run, note = (RunDir.create(cfg.out, cfg.name, _default_name(cfg), overwrite) if env.is_main
                 else (None, None))
    if env.enabled:
        box = [str(run.path) if run is not None else None]
        torch.distributed.broadcast_object_list(box, src=0)
        run = run or RunDir(box[0])
    assert run is not None
    return run, note


def _fit(cfg: TrainConfig, device: torch.device, env: DistEnv, run: RunDir, ckpt: dict[str, Any] | None,
         note: str | None, on_step: Callable[[int], bool] | None, quiet: bool) -> RunResult:
    t_start = time.perf_counter()
    keep_memory()  # each step's blocks stay in the process, rather than faulted in again every step
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    _seed_everything(cfg.seed + env.rank)
    # The run records what it uses, not what it was asked: config.json says bf16 or fp32, never auto.
    precision = resolve(cfg.precision, cfg.channels_last, device)
    cfg = dataclasses.replace(cfg, precision=precision.name, channels_last=precision.channels_last)
    probe = Probe()  # how busy the other processes keep the cores, measured while the data loads
    ds = load_data(cfg)
    model, model_kwargs = _build_model(cfg, ds)
    threads = resolve_threads(cfg.threads, device, probe)
    cfg = dataclasses.replace(cfg, threads=threads.count)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.sync_bn and env.enabled:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    base = model
    train_loader, val_loader, test_loader = _loaders(cfg, ds, device, env)
    if val_loader is not None and len(ds.val) == 0:
        val_loader = None  # --val-size 0: a final fit on all the training data, no model selection
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise CnnlabError(f"the training split ({len(ds.train)} images) is smaller than one batch of "
                          f"{cfg.batch_size}: lower --batch-size")
    total_steps = cfg.iterations or cfg.epochs * steps_per_epoch
    epochs = math.ceil(total_steps / steps_per_epoch)
    optimizer = build_optimizer(base, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(cfg, s, total_steps, steps_per_epoch))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.name == "fp16")
    aux_weight = cfg.aux_weight if cfg.aux_weight is not None else float(getattr(base, "aux_weight", 0.0))
    state = {"epoch": 0, "step": 0, "best_top1": -1.0, "best_epoch": None, "history": [], "partial": None}
    if ckpt:
        try:
            base.load_state_dict(ckpt["state_dict"])
            t = ckpt["train"]
            optimizer.load_state_dict(t["optimizer"])
            scheduler.load_state_dict(t["scheduler"])
            scaler.load_state_dict(t["scaler"])
            state = {k: t[k] for k in state}
            train_loader.load_state_dict(t["loader"])
            _set_rng_state(t["rng"][env.rank] if env.rank < len(t["rng"]) else t["rng"][0], device)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            if isinstance(exc, CnnlabError):
                raise
            raise CnnlabError(f"{run.path}: the checkpoint's training state cannot be restored ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else 'incomplete'}); start a new run") from None
        if env.rank != 0 and state["partial"] is not None:  # rank 0 carries the sums saved so far
            state["partial"] = {"loss": 0.0, "correct": 0, "seen": 0}
    model = base
    if env.enabled:
        ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(base, device_ids=ids)
    if cfg.compile:
        model = torch.compile(model)
    run_dir = run.path
    if env.is_main:
        # The run's files agree with the checkpoint it continues from: epochs recorded after it are
        # done again, epochs it holds but metrics.jsonl lost are restored.
        run.write_config(cfg.to_json())
        run.write_metrics(state["history"])
    writer = _tensorboard(cfg, run, env)
    summary = _summary_lines(cfg, ds, base, device, env, total_steps, epochs, run_dir, precision, threads)
    progress = Progress(env.is_main and not quiet, total_steps, epochs, start_step=state["step"])
    if note:
        progress.message(note)
    if ckpt:
        progress.message(f"resuming {run_dir} at step {state['step']} (epoch {state['epoch'] + 1})")
    for line in summary:
        progress.message(line)
    meta = {"dataset": ds.name, "classes": list(ds.classes), "mean": list(ds.mean), "std": list(ds.std),
            "input_size": [ds.in_channels, *ds.image_size], "adaptation": list(ds.adaptation)}

    def commit(best: bool = False) -> None:
        """Save the whole state on rank 0: best.pt first when ``best``, then last.pt (see cnnlab.runs)."""
        rng = [_rng_state(device)]
        partial = state["partial"]
        if env.enabled:  # every rank's generators, so each continues its own stream
            gathered: list[Any] = [None] * env.world_size
            # Tensors do not survive all_gather_object's unpickling here: send plain bytes and lists.
            torch.distributed.all_gather_object(gathered, _plain_rng(rng[0]))
            rng = [_tensor_rng(r) for r in gathered]
            if partial is not None:  # the epoch's sums so far over all ranks, carried by rank 0 on resume
                sums = torch.tensor([partial["loss"], partial["correct"], partial["seen"]], dtype=torch.float64,
                                    device=device)
                all_reduce_sum(sums, env)
                partial = {"loss": float(sums[0]), "correct": int(sums[1]), "seen": int(sums[2])}
        if env.is_main:
            payload = checkpoint_payload(
                cfg.model, model_kwargs, base.state_dict(), config=cfg.to_dict(), data=meta,
                input_size=meta["input_size"], train={
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "rng": rng, "loader": train_loader.state_dict(),
                    **{k: state[k] for k in ("epoch", "step", "best_top1", "best_epoch", "history")},
                    "partial": partial})
            run.commit(payload, best=best)
        barrier(env)

    status = "finished"
    images = 0
    t_train = 0.0
    with _StopFlag() as stop:
        while state["epoch"] < epochs:
            epoch = state["epoch"]
            epoch_end = min((epoch + 1) * steps_per_epoch, total_steps)
            if state["partial"] is None:
                train_loader.set_epoch(epoch)
                state["partial"] = {"loss": 0.0, "correct": 0, "seen": 0}
            model.train()
            # The running sums start from what was saved, so a resumed epoch adds the same numbers
            # in the same order as an uninterrupted one: its train loss agrees to the last bit.
            acc_loss = torch.tensor(state["partial"]["loss"], dtype=torch.float64, device=device)
            acc_correct = torch.tensor(state["partial"]["correct"], dtype=torch.int64, device=device)
            acc_seen = seen_before = state["partial"]["seen"]
            t_epoch = time.perf_counter()
            if state["step"] < epoch_end:
                for x, y in train_loader:
                    with precision.autocast(device):
                        output = model(x)
                        loss, logits = _loss(output, y, cfg, aux_weight)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        nn.utils.clip_grad_norm_(base.parameters(), cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    state["step"] += 1
                    acc_loss += loss.detach().double() * y.shape[0]
                    acc_correct += (logits.detach().argmax(1) == y).sum()
                    acc_seen += y.shape[0]
                    images += y.shape[0] * env.world_size
                    at_log = state["step"] % cfg.log_every == 0
                    # On the CPU the check is free; on a GPU it waits for the device, so only at log steps.
                    if (at_log or device.type == "cpu") and not torch.isfinite(loss.detach()):
                        raise CnnlabError(
                            f"the loss became {float(loss.detach()):g} at step {state['step']} (epoch {epoch + 1}); "
                            f"the last good checkpoint in {run_dir} is intact: lower --lr or add --grad-clip 1.0")
                    if at_log:
                        elapsed = time.perf_counter() - t_epoch
                        seen = max(acc_seen, 1)
                        progress.step(state["step"], epoch, float(acc_loss) / seen, int(acc_correct) / seen,
                                      (acc_seen - seen_before) * env.world_size / max(elapsed, 1e-9),
                                      optimizer.param_groups[0]["lr"])
                    stop_now = stop.set or (on_step is not None and on_step(state["step"]))
                    periodic = cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0
                    if stop_now or periodic or state["step"] >= epoch_end:
                        state["partial"] = {"loss": float(acc_loss), "correct": int(acc_correct), "seen": acc_seen}
                    if stop_now:
                        status = "interrupted"
                        break
                    if state["step"] >= epoch_end:
                        break
                    if periodic:
                        commit()
            t_train += time.perf_counter() - t_epoch
            if status == "interrupted":
                commit()
                progress.message(f"interrupted at step {state['step']}: resume with `cnnlab train --resume {run_dir}`")
                break
            p = state["partial"]
            totals = torch.tensor([p["loss"], p["correct"], p["seen"]], dtype=torch.float64, device=device)
            all_reduce_sum(totals, env)
            val = evaluate(model, val_loader, len(ds.classes), device, env, precision) if val_loader else None
            record = {"epoch": epoch + 1, "step": state["step"], "train_loss": float(totals[0] / totals[2]),
                      "train_top1": float(totals[1] / totals[2]), "val_loss": val and val["loss"],
                      "val_top1": val and val["top1"], "val_top5": val and val["top5"],
                      "lr": optimizer.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t_epoch, 3)}
            # Without a validation split the newest weights are the ones kept and tested.
            best = val is None or val["top1"] > state["best_top1"]
            if best:
                state["best_top1"], state["best_epoch"] = (val["top1"] if val else -1.0), epoch + 1
            state["history"].append(record)
            state["epoch"] = epoch + 1
            state["partial"] = None
            commit(best=best)
            if env.is_main:
                run.append_metrics(record)
                if writer is not None:
                    for key in ("train_loss", "train_top1", "val_loss", "val_top1", "lr"):
                        if record[key] is not None:
                            writer.add_scalar(key, record[key], state["step"])
                    writer.flush()
            shown = f"val loss {val['loss']:.4f} acc {val['top1']:.2%}{' (best)' if best else ''}" if val else \
                "no validation split"
            progress.message(
                f"epoch {epoch + 1}/{epochs}: train loss {record['train_loss']:.4f} acc {record['train_top1']:.2%} | "
                f"{shown} | {fmt_duration(time.perf_counter() - t_epoch)}")
    progress.close()
    if writer is not None:
        writer.close()
    test = None
    if status == "finished" and test_loader is not None:
        # Every rank reads the best weights (a multi-node run keeps --out on shared storage).
        base.load_state_dict(load_checkpoint(run.best)["state_dict"])
        test = evaluate(model, test_loader, len(ds.classes), device, env, precision, confusion=False)
        test = {k: v for k, v in test.items() if k != "per_class"}
    best_val = None
    if state["best_epoch"] is not None:
        best_val = next((h for h in state["history"] if h["epoch"] == state["best_epoch"]), None)
    result = RunResult(run_dir, status, cfg.to_dict(), state["epoch"], state["step"], state["best_epoch"], best_val,
                       test, time.perf_counter() - t_start, images / max(t_train, 1e-9), state["history"], summary)
    if env.is_main and status == "finished":
        run.write_result(result.to_dict())
    return result


def _summary_lines(cfg: TrainConfig, ds: Any, model: nn.Module, device: torch.device, env: DistEnv,
                   total_steps: int, epochs: int, run_dir: Path, precision: Precision,
                   threads: Threads) -> list[str]:
    params = sum(p.numel() for p in model.parameters())
    lines = [
        f"run {run_dir} | recipe {cfg.recipe}",
        f"model {cfg.model} ({params:,} parameters) on {ds.name}: {len(ds.train):,} train / {len(ds.val):,} val"
        + (f" / {len(ds.test):,} test" if ds.test is not None else "") + f" images of "
        f"{ds.in_channels}x{ds.image_size[0]}x{ds.image_size[1]} ({ds.val_source})",
        f"{total_steps:,} steps ({epochs} epochs) of batch {cfg.batch_size} on {device}"
        + (f" x {env.world_size} processes ({env.backend})" if env.enabled else "")
        + f" | {cfg.optimizer} lr {cfg.lr:g} {cfg.schedule}",
        f"precision {precision.describe()} | threads {threads.describe()}",
    ]
    lines += [f"adaptation: {a}" for a in ds.adaptation]
    return lines


def _tensorboard(cfg: TrainConfig, run: RunDir, env: DistEnv) -> Any:
    if not cfg.tensorboard or not env.is_main:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise CnnlabError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
    return SummaryWriter(log_dir=str(run.events))


def fit_seeds(cfg: TrainConfig, quiet: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Run ``cfg.seeds`` seeds (seed, seed+1, ...) and report each test accuracy and their mean and std."""
    runs = []
    for i in range(cfg.seeds):
        one = config_from_dict({**cfg.to_dict(), "seed": cfg.seed + i, "seeds": 1,
                                "name": f"{cfg.name}-s{cfg.seed + i}" if cfg.name else None})
        runs.append(fit(one, quiet=quiet, overwrite=overwrite))
    accs = [r.test["top1"] for r in runs if r.test is not None]  # none without a test split: nothing to average
    mean, std = mean_std(accs)
    return {"runs": [r.to_dict() for r in runs], "test_top1": accs, "test_top1_mean": mean, "test_top1_std": std}


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """The mean and the sample standard deviation (n - 1; 0 for one value) over seeds; None, None for none."""
    if not values:
        return None, None
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return mean, std

