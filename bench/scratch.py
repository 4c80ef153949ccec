"""The NumPy engine's convolution against torch's CPU convolution, on LeNet-sized layers, in one run.

For each layer: the im2col Conv2d forward and forward+backward (input, weight and bias gradients), and
torch.nn.functional.conv2d with autograd doing the same work, at 1 thread and at torch's default
thread count; the ratio is against the faster torch. Also: col2im by per-tap strided adds against
one np.add.at scatter, and the naive (loop) convolution on a tiny case. Float32, median of
repeated timings after a warm-up, time.perf_counter.

    python bench/scratch.py            # prints one JSON document
    python bench/scratch.py --train    # adds a full MNIST train_lenet run (time to 97%)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as TF

from cnnlab.scratch import functional as F
from cnnlab.scratch._blas import single_threaded_blas
from cnnlab.scratch.layers import Conv2d

# (name, batch, in, out, kernel, padding, side): LeNet-5's two convolutions at batch 64.
LAYERS = [
    ("conv1 1->6 k5 pad 2 on 28x28", 64, 1, 6, 5, 2, 28),
    ("conv2 6->16 k5 on 14x14", 64, 6, 16, 5, 0, 14),
]


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1e3, 4)


def bench_layer(name: str, n: int, cin: int, cout: int, k: int, pad: int, side: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, cin, side, side)).astype(np.float32)
    layer = Conv2d(cin, cout, k, padding=pad, dtype=np.float32, rng=0)
    w, b = layer.params["weight"], layer.params["bias"]
    out = layer.forward(x)
    g = rng.standard_normal(out.shape).astype(np.float32)

    # The engine as training uses it: the Conv2d layer (which reuses its column buffers from
    # call to call) with BLAS on one thread. The backward computes all three gradients, input
    # included, like torch's below.
    def ours_forward() -> None:
        layer.forward(x)

    def ours_both() -> None:
        layer.forward(x)
        layer.backward(g)

    with single_threaded_blas():
        scratch = {"forward": median_ms(ours_forward, repeats), "forward_backward": median_ms(ours_both, repeats)}

    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()
    gt = torch.from_numpy(g)

    def torch_forward() -> None:
        with torch.no_grad():
            TF.conv2d(xt, wt, bt, padding=pad)

    def torch_both() -> None:
        y = TF.conv2d(xt, wt, bt, padding=pad)
        y.backward(gt)
        xt.grad = wt.grad = bt.grad = None

    default_threads = torch.get_num_threads()
    torch_ms = {}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        torch_ms[f"threads_{threads}"] = {
            "forward": median_ms(torch_forward, repeats),
            "forward_backward": median_ms(torch_both, repeats),
        }
    torch.set_num_threads(default_threads)

    # The two engines must agree before their times mean anything.
    y = TF.conv2d(xt, wt, bt, padding=pad)
    y.backward(gt)
    out = layer.forward(x)
    dx, dw = layer.backward(g), layer.grads["weight"]
    diff = max(float(np.abs(out - y.detach().numpy()).max()), float(np.abs(dx - xt.grad.numpy()).max()),
               float(np.abs(dw - wt.grad.numpy()).max() / max(1.0, np.abs(dw).max())))
    best = min(v["forward_backward"] for v in torch_ms.values())
    return {
        "layer": name,
        "input": [n, cin, side, side],
        "scratch_im2col_ms": scratch,
        "torch_ms": torch_ms,
        "ratio_forward_backward_vs_best_torch": round(scratch["forward_backward"] / best, 2),
        "max_difference": diff,
    }


def bench_col2im(repeats: int) -> dict:
    # The backward of LeNet's conv2: column gradients (64, 6, 5, 5, 10, 10) onto 14x14 images.
    cols = np.random.default_rng(1).standard_normal((64, 6, 5, 5, 10, 10)).astype(np.float32)
    args = ((14, 14), (1, 1), (1, 1))
    tap = median_ms(lambda: F.col2im(cols, *args), repeats)
    scatter = median_ms(lambda: F.col2im_add_at(cols, *args), max(3, repeats // 5), warmup=1)
    same = float(np.abs(F.col2im(cols, *args) - F.col2im_add_at(cols, *args)).max())
    return {"shape": list(cols.shape), "per_tap_strided_add_ms": tap, "np_add_at_ms": scatter,
            "speedup": round(scatter / tap, 1), "max_difference": same}


def bench_naive(repeats: int) -> dict:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 1, 8, 8)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    naive = median_ms(lambda: F.conv2d_naive(x, w), max(3, repeats // 5), warmup=1)
    fast = median_ms(lambda: F.conv2d_im2col(x, w), repeats)
    return {"case": "1x1x8x8 input, 2 kernels 3x3", "naive_ms": naive, "im2col_ms": fast,
            "speedup": round(naive / fast, 1)}


def bench_train() -> dict:
    from cnnlab.scratch.train import train_lenet

    # Test accuracy every ~1/8 epoch (not counted as training time) to see when it passes 97%.
    result = train_lenet(eval_every=117)
    keep = ("settings", "test_accuracy", "seconds_to_97", "load_seconds", "train_seconds", "eval_seconds",
            "total_seconds", "test_curve")
    return {key: result[key] for key in keep}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed repeats per measurement (median)")
    parser.add_argument("--train", action="store_true", help="also train LeNet-5 on full MNIST")
    args = parser.parse_args()
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "torch": torch.__version__, "torch_default_threads": torch.get_num_threads()},
        "dtype": "float32",
        "target": "scratch forward+backward within 5x of torch",
        "layers": [bench_layer(*spec, repeats=args.repeats) for spec in LAYERS],
        "col2im": bench_col2im(args.repeats),
        "naive": bench_naive(args.repeats),
    }
    if args.train:
        report["train_lenet"] = bench_train()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
