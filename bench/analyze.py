"""Analyzer speed and memory against torchinfo, on the same models and inputs, in one run.

Each measurement runs in a fresh Python process (so one tool's memory cannot hide in the
other's freed pages): wall time of the analysis call, and the growth of the process's
resident-set high-water mark from just before the model is built. cnnlab builds the model on
the meta device and traces it; torchinfo builds it for real and runs a forward pass.

    python bench/analyze.py            # prints one JSON document
    python bench/analyze.py --quick    # the small input only
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path


def _status(key: str) -> int:
    return int(re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024


def one(tool: str, model: str, batch: int, side: int) -> dict:
    import torch

    torch.set_num_threads(2)
    # Imports happen before the clock starts: the measurement is the analysis itself, model
    # construction included (torchinfo needs a real model; cnnlab builds one on the meta device).
    if tool == "cnnlab":
        import cnnlab.analysis
        import cnnlab.models

        cnnlab.models.list_models()  # registers the families
    else:
        import torchinfo
        import torchvision
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    if tool == "cnnlab":
        report = cnnlab.analysis.analyze(model, (3, side, side), batch=batch)
        macs = report.macs
    else:
        net = getattr(torchvision.models, model)()
        stats = torchinfo.summary(net, input_size=(batch, 3, side, side), verbose=0)
        macs = stats.total_mult_adds
    seconds = time.perf_counter() - start
    return {"tool": tool, "model": model, "input": f"{batch}x3x{side}x{side}", "seconds": round(seconds, 3),
            "peak_mib": round((_status("VmHWM") - before) / 2**20, 1), "macs": int(macs)}


def run_isolated(tool: str, model: str, batch: int, side: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", tool, model, str(batch), str(side)],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"tool": tool, "model": model, "input": f"{batch}x3x{side}x{side}",
                "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=4, metavar=("TOOL", "MODEL", "BATCH", "SIDE"), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only 1x3x224x224")
    args = parser.parse_args()
    if args.one:
        tool, model, batch, side = args.one
        print(json.dumps(one(tool, model, int(batch), int(side))))
        return
    inputs = [(1, 224)] if args.quick else [(1, 224), (64, 512)]
    results = []
    for model in ("resnet50", "densenet121"):
        for batch, side in inputs:
            for tool in ("cnnlab", "torchinfo"):
                results.append(run_isolated(tool, model, batch, side))
                print(json.dumps(results[-1]), file=sys.stderr)
    for batch, side in [(1, 224), (64, 512), (256, 2048)]:
        results.append(run_isolated("cnnlab", "resnet152", batch, side))
        print(json.dumps(results[-1]), file=sys.stderr)
    speedups = {}
    for r in results:
        if r["tool"] == "cnnlab" and "error" not in r:
            other = next((o for o in results if o["tool"] == "torchinfo" and o["model"] == r["model"]
                          and o["input"] == r["input"] and "error" not in o), None)
            if other:
                speedups[f"{r['model']} {r['input']}"] = round(other["seconds"] / r["seconds"], 1)
    import torch

    print(json.dumps({
        "machine": {"cpu_count": __import__("os").cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "platform": platform.platform()},
        "results": results,
        "torchinfo_time_over_cnnlab": speedups,
    }, indent=2))


if __name__ == "__main__":
    main()
