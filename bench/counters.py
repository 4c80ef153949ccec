"""MACs of the same models from cnnlab, torchinfo, fvcore and ptflops, next to torchvision's published figure.

Each tool counts the model the way it documents: torchinfo sums its module hooks'
``total_mult_adds``; fvcore traces with torch.jit and counts its supported operators (its
"flops" are multiply-accumulates); ptflops counts with module hooks (its default backend);
cnnlab traces with torch.fx on meta tensors and counts what has no rule of its own at the
ATen operator level. torchvision's ``_ops`` (GFLOPS, also multiply-accumulates) is the
reference. What a tool says it could not count is kept too: fvcore's unsupported operators,
cnnlab's unknown totals.

    python bench/counters.py            # prints one JSON document (needs pip install '.[bench]')
"""

from __future__ import annotations

import contextlib
import io
import json
import platform
import sys
import warnings

import torch
from torchvision import models as tvm

MODELS = ["resnet50", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x1_0", "convnext_tiny", "swin_t",
          "vit_b_16", "maxvit_t"]
SIDE = 224


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def count(name: str) -> dict:
    from cnnlab.analysis import analyze

    torch.manual_seed(0)
    row: dict = {"model": name, "published_gmacs": tvm.get_model_weights(name).DEFAULT.meta["_ops"]}
    with torch.device("meta"):
        meta_model = _quiet(tvm.get_model, name)
    report = analyze(meta_model, (3, SIDE, SIDE))
    row["cnnlab"] = {"gmacs": None if report.macs is None else round(report.macs / 1e9, 3),
                     "unknown": sorted(report.unknown)}
    model = _quiet(tvm.get_model, name).eval()
    x = torch.randn(1, 3, SIDE, SIDE)
    try:
        import torchinfo

        stats = _quiet(torchinfo.summary, model, input_data=x, verbose=0)
        row["torchinfo"] = {"gmacs": round(stats.total_mult_adds / 1e9, 3)}
    except Exception as exc:  # a tool that fails on a model is a result too
        row["torchinfo"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    try:
        from fvcore.nn import FlopCountAnalysis

        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        total = _quiet(analysis.total)
        row["fvcore"] = {"gmacs": round(total / 1e9, 3), "unsupported_ops": sorted(analysis.unsupported_ops())}
    except Exception as exc:
        row["fvcore"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    try:
        from ptflops import get_model_complexity_info

        macs, _params = _quiet(get_model_complexity_info, model, (3, SIDE, SIDE), as_strings=False,
                               print_per_layer_stat=False)
        row["ptflops"] = {"gmacs": round(macs / 1e9, 3)}
    except Exception as exc:
        row["ptflops"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
    return row


def main() -> None:
    torch.set_num_threads(2)
    versions = {}
    for module in ("torch", "torchvision", "torchinfo", "fvcore", "ptflops"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:
            versions[module] = None
    rows = [count(name) for name in MODELS]
    json.dump({"input": f"1x3x{SIDE}x{SIDE}", "versions": versions, "python": platform.python_version(),
               "rows": rows}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
