"""Start-up time of ``cnnlab serve``: process start to the address line on stdout.

Two ways of starting, measured alternately in the same run, each in a fresh process on a
free loopback port:

- lazy: ``cnnlab serve`` as it is (torch, torchvision and the analyzer load on the first
  request that needs them);
- eager: the same command after ``import torch, cnnlab.analysis``, i.e. what start-up
  costs when those imports happen before the socket is bound.

For each start it also times the first ``GET /api/models`` answer (the model list the page
asks for first), which does need torch: in the lazy start that cost moves from start-up to
the first such request, it does not disappear.

    python bench/serve_start.py                # prints one JSON document
    python bench/serve_start.py --busy 2       # with two busy-loop processes keeping cores busy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

LAZY = ["-m", "cnnlab.cli"]
EAGER = ["-c", "import torch, cnnlab.analysis; from cnnlab.cli import main; raise SystemExit(main())"]
WAIT_S = 300.0  # a loaded 2-core machine can take tens of seconds to import torch


def start_once(prefix: list[str], runs: str) -> dict[str, float]:
    """Seconds from process start to the address line, and to the first /api/models answer."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *prefix, "serve", "--port", "0", "--runs", runs],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], WAIT_S)
        if not ready:
            raise SystemExit(f"no address line within {WAIT_S:.0f} s")
        line = proc.stdout.readline()  # type: ignore[union-attr]
        url_s = time.perf_counter() - start
        if not line.startswith("cnnlab explorer at http://"):
            raise SystemExit(f"unexpected first line {line!r}; stderr: {proc.stderr.read()}")  # type: ignore[union-attr]
        with urllib.request.urlopen(f"{line.split()[3]}api/models", timeout=WAIT_S) as response:
            models = json.loads(response.read())["models"]
        models_s = time.perf_counter() - start
        if not models:
            raise SystemExit("the model list came back empty")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=WAIT_S)
    finally:
        proc.kill()
        proc.wait()
    return {"url_s": url_s, "first_models_answer_s": models_s}


def _summary(values: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "all": [round(v, 3) for v in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="starts of each kind (default 5)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="keep N busy-loop processes running during the measurement (default 0)")
    args = parser.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    try:
        with tempfile.TemporaryDirectory() as runs:
            results: dict[str, list[dict[str, float]]] = {"lazy": [], "eager": []}
            start_once(LAZY, runs)  # warm the file cache once, so the first kind measured is not penalised
            for _ in range(args.repeats):  # alternate, so a change in background load hits both kinds
                results["lazy"].append(start_once(LAZY, runs))
                results["eager"].append(start_once(EAGER, runs))
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    doc = {
        "benchmark": "cnnlab serve start-up: process start to the address line, and to the first /api/models answer",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "busy_processes": args.busy,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
        "repeats": args.repeats,
        "url_s": {kind: _summary([r["url_s"] for r in runs_]) for kind, runs_ in results.items()},
        "first_models_answer_s": {kind: _summary([r["first_models_answer_s"] for r in runs_])
                                  for kind, runs_ in results.items()},
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
