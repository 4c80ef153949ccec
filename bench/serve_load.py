"""Load check of the explorer's analysis endpoint, on loopback only, with a bounded number of requests.

A ``cnnlab serve`` process is started on a free loopback port; client threads in this process
send concurrent ``GET /api/analyze`` requests and check every answer against
``cnnlab.analyze`` run here beforehand (parameters, MACs, receptive field). Three figures:

- cached: the same model and input again and again (what a class of learners clicking one
  example produces): the server's own overhead;
- distinct: a different input size per request, so each one is a fresh trace;
- in-process: the same distinct analyses called directly, one after another, without HTTP
  (the baseline a user would otherwise run).

    python bench/serve_load.py            # prints one JSON document
    python bench/serve_load.py --quick    # fewer requests
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

MODEL = "resnet18"


def expected_for(sides: list[int]) -> dict[int, dict[str, Any]]:
    import cnnlab

    out = {}
    for side in sides:
        report = cnnlab.analyze(MODEL, (3, side, side))
        out[side] = {"params": report.params, "macs": report.macs, "rf": report.receptive_field}
    return out


def _get(url: str) -> tuple[int, dict[str, Any], float]:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        status, body = exc.code, json.loads(exc.read())
    return status, body, time.perf_counter() - start


def run_load(base: str, sides: list[int], expected: dict[int, dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """One request per entry of ``sides`` with ``concurrency`` client threads; every answer checked."""
    if not base.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
        raise SystemExit(f"the load check only runs against loopback, not {base}")

    def one(side: int) -> tuple[bool, float, str]:
        status, body, seconds = _get(f"{base}/api/analyze?model={MODEL}&input=3x{side}x{side}")
        want = expected[side]
        got = body.get("totals", {})
        good = (status == 200 and got.get("params") == want["params"] and got.get("macs") == want["macs"]
                and got.get("receptive_field") == want["rf"])
        return good, seconds, "" if good else f"{status}: {body.get('error') or 'wrong numbers'}"

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, sides))
    wall = time.perf_counter() - start
    latencies = sorted(r[1] for r in results)
    failures = [r[2] for r in results if not r[0]]
    return {
        "requests": len(sides),
        "concurrency": concurrency,
        "correct": len(sides) - len(failures),
        "failures": failures[:5],
        "seconds": round(wall, 3),
        "requests_per_s": round(len(sides) / wall, 1),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 1),
        "latency_ms_p95": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    cached_n, distinct_n = (100, 24) if args.quick else (800, 96)
    distinct_sides = list(range(32, 32 + distinct_n))
    expected = expected_for([64, *distinct_sides])

    with tempfile.TemporaryDirectory() as runs:
        proc = subprocess.Popen([sys.executable, "-m", "cnnlab.cli", "serve", "--port", "0", "--runs", runs],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            if not line.startswith("cnnlab explorer at "):
                raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
            base = line.split()[3].rstrip("/")
            warm = run_load(base, [64], expected, 1)  # imports and the first trace, not timed below
            cached = run_load(base, [64] * cached_n, expected, args.concurrency)
            distinct = run_load(base, distinct_sides, expected, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    import cnnlab

    start = time.perf_counter()
    for side in distinct_sides:  # cnnlab.analyze itself keeps no cache: each call traces again
        cnnlab.analyze(MODEL, (3, side, side))
    in_process = len(distinct_sides) / (time.perf_counter() - start)

    print(json.dumps({
        "benchmark": "explorer analysis endpoint under concurrent load (loopback)",
        "machine": {"cpu_cores": os.cpu_count(), "python": platform.python_version()},
        "model": MODEL,
        "first_request_s": warm["seconds"],
        "cached": cached,
        "distinct": distinct,
        "in_process_analyses_per_s": round(in_process, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
