"""Training on a machine whose cores are busy with other work: torch's default threads against --threads auto.

Starts BUSY processes that spin on a core each, then trains LeNet-5 for one epoch on 12,000 MNIST
images three ways in fresh processes: torch's default thread count (`--threads` set to it), and
`--threads auto` (cnnlab's default), which measures the other processes' load as the run starts.
Prints one JSON document with each run's training images/s and the threads auto chose.

    python bench/busy_threads.py > bench/results/busy_threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

import torch

COMMAND = ["-m", "cnnlab", "train", "--epochs", "1", "--limit", "12000", "--overwrite"]


def train(runs: str, name: str, threads: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, *COMMAND, "--out", runs, "--name", name, "--threads", threads],
                          capture_output=True, text=True, check=True)
    text = done.stdout + done.stderr
    rate = re.search(r"([\d,]+) training images/s", text)
    chosen = re.search(r"\| threads (\d+) \(([^)]*)\)", text)
    assert rate and chosen, text
    return {"threads_asked": threads, "threads": int(chosen.group(1)), "why": chosen.group(2),
            "images_per_s": int(rate.group(1).replace(",", ""))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=2, help="processes that keep a core busy each (default 2)")
    args = parser.parse_args()
    default = torch.get_num_threads()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as runs:
            rows = [train(runs, "default", str(default)), train(runs, "auto", "auto")]
    finally:
        for p in spinners:
            p.kill()
    print(json.dumps({
        "benchmark": "LeNet-5, 1 epoch of 12,000 MNIST images, while other processes keep cores busy",
        "machine": {"cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()},
        "busy_processes": args.busy, "torch_default_threads": default, "runs": rows,
        "auto_over_default": round(rows[1]["images_per_s"] / rows[0]["images_per_s"], 1),
    }, indent=2))


if __name__ == "__main__":
    main()
