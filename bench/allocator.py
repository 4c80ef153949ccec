"""The first epoch with glibc's allocator as it starts, and with the memory kept (cnnlab.train.allocator).

Each measurement is a fresh process (the allocator's state is per process) running one run of
``cnnlab.train.fit``: LeNet-5 for one epoch of MNIST, ResNet-20 for 60 steps of Fashion-MNIST
at 32x32, both with the default precision and 2 threads. "glibc as it starts" replaces
``keep_memory`` with a no-op. The two settings alternate, REPEATS times each; the medians are
printed with the page faults each process took, and every run besides: glibc's own thresholds
rise at a point that varies from run to run, and so do its faults and its speed.

    python bench/allocator.py > bench/results/allocator.json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

REPEATS = int(os.environ.get("REPEATS", "5"))

CHILD = """
import json, resource, sys, tempfile
import cnnlab.train.loop as loop
if sys.argv[1] == "off":
    loop.keep_memory = lambda: False
from cnnlab.train.config import override
from cnnlab.train.recipes import get_recipe
extra = json.loads(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    cfg = override(get_recipe("lenet5-mnist"), dict(out=tmp, threads=2, name="bench", **extra))
    result = loop.fit(cfg, quiet=True)
print(json.dumps({"images_per_s": result.train_images_per_s,
                  "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt}))
"""

CASES = {
    "lenet5, 1 epoch of MNIST": {"epochs": 1},
    "resnet20, 60 steps of Fashion-MNIST": {"model": "resnet20", "dataset": "fashion-mnist", "adapt_size": 32,
                                            "iterations": 60, "crop_padding": 4, "flip": True, "lr": 0.05},
}


def measure(setting: str, extra: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, setting, json.dumps(extra)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def main() -> None:
    rows = []
    for name, extra in CASES.items():
        runs: dict[str, list[dict]] = {"off": [], "on": []}
        for _ in range(REPEATS):
            for setting in ("off", "on"):  # alternated, so a change in the machine's load hits both
                runs[setting].append(measure(setting, extra))
        row = {"case": name}
        for setting, label in (("off", "glibc"), ("on", "kept")):
            row[f"{label}_images_per_s"] = round(statistics.median(r["images_per_s"] for r in runs[setting]))
            row[f"{label}_page_faults"] = round(statistics.median(r["page_faults"] for r in runs[setting]))
            row[f"{label}_runs"] = [{k: round(v) for k, v in r.items()} for r in runs[setting]]
        row["speedup"] = round(row["kept_images_per_s"] / row["glibc_images_per_s"], 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(json.dumps({"repeats": REPEATS, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
