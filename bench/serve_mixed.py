"""Mixed load on the explorer: analyses, comparisons, receptive fields and inside views from 50 clients.

A ``cnnlab serve`` process is started on a free loopback port over an empty runs folder; 50
client threads in this process send requests drawn (seeded) from a fixed set of distinct
questions of every heavy kind, while one more thread asks /api/health every 0.2 s. Phases:

- identical: after one warm-up question of each kind on other networks (imports, first runs),
  all 50 clients ask one new question at once: one computation answers them all (``jobs``
  counts the computations the server ran in a phase);
- cold: every client starts at once on the distinct questions, so most requests find their
  question being computed by another (single flight) or queued behind it;
- warm: the same questions again, now answered from the kept answers;
- hostile: the warm mix with refusals mixed in (a receptive field far over the memory budget,
  one past the deadline, a cross-site POST, a deep JSON body, a path out of the runs folder),
  each of which must get its own 4xx while the rest keeps its 200.

Every answer's status is checked (and an analysis's parameter count against ``cnnlab.analyze``
run here); the figures are latency p50/p95/max per phase and per kind, errors, the slowest
health answer, and the server process's peak resident memory (VmHWM) against its budget.

    python bench/serve_mixed.py            # prints one JSON document, saves bench/results/serve_mixed.json
    python bench/serve_mixed.py --quick    # fewer requests
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "serve_mixed.json"
CLIENTS = 50

# (kind, method, path, body or None): the distinct questions the clients draw from.
GETS = [
    ("analysis", "/api/analyze?model=resnet18&input=3x64x64"),
    ("analysis", "/api/analyze?model=googlenet"),
    ("analysis", "/api/analyze?model=densenet121&input=3x64x64"),
    ("analysis", "/api/analyze?model=vgg11&input=3x64x64&depth=1"),
    ("compare", "/api/compare?models=resnet18,vgg11,googlenet&input=3x64x64"),
    ("compare", "/api/compare?models=lenet5,resnet20,nin_cifar"),
    ("rf", "/api/rf?model=resnet20&samples=8"),
    ("rf", "/api/rf?model=resnet18&input=3x64x64&samples=4"),
    ("rf", "/api/rf?model=lenet5&samples=8"),
]
INSIDE = [("inside", {"model": "resnet20"}), ("inside", {"model": "lenet5", "top": "3"}),
          ("inside", {"model": "googlenet"}), ("inside", {"model": "lenet5", "upload": "1"})]
ANALYSES = {"/api/analyze?model=resnet18&input=3x64x64": ("resnet18", (3, 64, 64)),
            "/api/analyze?model=googlenet": ("googlenet", (3, 224, 224))}


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.radial_gradient("L").resize((28, 28)).save(buf, format="PNG")
    return buf.getvalue()


def _multipart(fields: dict[str, str], image: bytes | None) -> tuple[bytes, str]:
    boundary = "cnnlabbench"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    if image is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n'
                     "Content-Type: image/png\r\n\r\n".encode() + image + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _request(base: str, item: tuple[Any, ...], png: bytes) -> tuple[int, bytes, float]:
    kind, target = item[0], item[1]
    headers: dict[str, str] = {}
    data = None
    if kind == "inside":
        fields = {k: v for k, v in target.items() if k != "upload"}
        data, headers["Content-Type"] = _multipart(fields, png if "upload" in target else None)
        url = f"{base}/api/inside"
    elif kind == "cross-site":
        data, headers["Content-Type"] = _multipart({"model": "lenet5"}, None)
        headers["Origin"] = "http://elsewhere.example"
        url = f"{base}/api/inside"
    elif kind == "deep-json":
        data, headers["Content-Type"] = b"[" * 100_000, "application/json"
        url = f"{base}/api/stack"
    else:
        url = f"{base}{target}"
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=300) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:  # a refused or dropped connection is an error too
        status, body = 0, str(exc).encode()
    return status, body, time.perf_counter() - start


WARM_UP = [("analysis", "/api/analyze?model=alexnet"), ("rf", "/api/rf?model=nin_cifar&samples=1"),
           ("inside", {"model": "nin_cifar"})]
HOSTILE = [  # (kind, target, the status it must get)
    ("over-budget", "/api/rf?model=resnet1202&input=3x256x256&samples=32", 413),
    ("over-deadline", "/api/rf?model=vgg19&input=3x256x256&samples=32", 413),
    ("cross-site", None, 403),
    ("deep-json", None, 400),
    ("path-out", "/api/runs/..%2F..%2Fetc", 400),
]


def _run_phase(base: str, plan: list[tuple[Any, ...]], png: bytes, expected: dict[str, int]) -> dict[str, Any]:
    """``plan`` split over the clients, all started at once; every answer's status checked."""
    batches = [plan[i::CLIENTS] for i in range(CLIENTS)]
    gate = threading.Barrier(CLIENTS)
    results: list[tuple[str, int, float, str]] = []
    lock = threading.Lock()

    def client(batch: list[tuple[Any, ...]]) -> None:
        gate.wait()
        for item in batch:
            status, body, seconds = _request(base, item, png)
            want = item[2] if len(item) == 3 else 200
            problem = ""
            if status != want:
                problem = f"{item[0]} {item[1]}: {status} {body[:160]!r}"
            elif status == 200 and isinstance(item[1], str) and item[1] in expected:
                got = json.loads(body)["totals"]["params"]
                problem = "" if got == expected[item[1]] else f"{item[1]}: params {got} != {expected[item[1]]}"
            with lock:
                results.append((item[0], status, seconds, problem))

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, batches))
    wall = time.perf_counter() - start
    return _summary(results, wall)


def _percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_ms": round(1000 * statistics.median(values), 1),
            "p95_ms": round(1000 * values[int(0.95 * (len(values) - 1))], 1),
            "max_ms": round(1000 * values[-1], 1)}


def _summary(results: list[tuple[str, int, float, str]], wall: float) -> dict[str, Any]:
    problems = [r[3] for r in results if r[3]]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
    kinds = sorted({r[0] for r in results})
    return {
        "requests": len(results), "clients": CLIENTS, "seconds": round(wall, 2),
        "requests_per_s": round(len(results) / wall, 1), "errors": len(problems), "first_errors": problems[:5],
        "statuses": statuses, **_percentiles([r[2] for r in results]),
        "by_kind": {k: {"requests": sum(1 for r in results if r[0] == k),
                        **_percentiles([r[2] for r in results if r[0] == k])} for k in kinds},
    }


def _peak_rss(pid: int) -> dict[str, int]:
    """The process's resident memory now and at its peak (VmRSS, VmHWM), in bytes."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--memory-budget", default=None, help="the server's --memory-budget (default: its own)")
    args = parser.parse_args()
    per_client = 4 if args.quick else 20
    import cnnlab

    expected = {path: cnnlab.analyze(name, size).params for path, (name, size) in ANALYSES.items()}
    png = _png()
    questions = [(k, p) for k, p in GETS] + INSIDE
    rng = random.Random(0)
    cold = [questions[i % len(questions)] for i in range(CLIENTS)]  # every question asked ~4 times at once
    rng.shuffle(cold)
    warm = [rng.choice(questions) for _ in range(CLIENTS * per_client)]
    hostile = [rng.choice(questions) if i % 5 else HOSTILE[(i // 5) % len(HOSTILE)]
               for i in range(CLIENTS * per_client)]

    with tempfile.TemporaryDirectory() as runs:
        command = [sys.executable, "-m", "cnnlab.cli", "serve", "--port", "0", "--runs", runs]
        if args.memory_budget:
            command += ["--memory-budget", args.memory_budget]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        health: list[float] = []
        stop = threading.Event()
        try:
            line = proc.stdout.readline()
            if not line.startswith("cnnlab explorer at "):
                raise SystemExit(f"the server did not start: {line}{proc.stderr.read()}")
            limits_line = proc.stderr.readline().strip()
            base = line.split()[3].rstrip("/")
            if not base.startswith("http://127.0.0.1:"):
                raise SystemExit(f"the load check only runs against loopback, not {base}")
            started = _peak_rss(proc.pid)

            def probe() -> None:
                while not stop.is_set():
                    start = time.perf_counter()
                    status, _body, _s = _request(base, ("health", "/api/health"), png)
                    health.append(time.perf_counter() - start if status == 200 else float("inf"))
                    stop.wait(0.2)

            def jobs() -> int:
                return json.loads(_request(base, ("health", "/api/health"), png)[1])["work"]["done"]

            start = time.perf_counter()
            for item in WARM_UP:
                status, body, _s = _request(base, item, png)
                if status != 200:
                    raise SystemExit(f"warm-up {item}: {status} {body[:200]!r}")
            warm_up_s = time.perf_counter() - start
            prober = threading.Thread(target=probe, daemon=True)
            prober.start()
            phases = {}
            identical = [("rf", "/api/rf?model=resnet18&input=3x64x64&samples=16")] * CLIENTS
            for name, plan in (("identical", identical), ("cold", cold), ("warm", warm), ("hostile", hostile)):
                before = jobs()
                phases[name] = _run_phase(base, plan, png, expected)
                phases[name]["jobs"] = jobs() - before
            stop.set()
            prober.join()
            rss = _peak_rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)

    doc = {
        "benchmark": "explorer under a mixed load of 50 concurrent clients (loopback)",
        "machine": {"cpu_cores": os.cpu_count(), "python": platform.python_version()},
        "server": limits_line,
        "distinct_questions": len(questions),
        "warm_up_s": round(warm_up_s, 2),
        "phases": phases,
        "health": {"probes": len(health), "max_ms": round(1000 * max(health), 1),
                   "p95_ms": _percentiles(health)["p95_ms"]},
        "server_rss_bytes": {"after_start": started.get("VmRSS"), "peak": rss.get("VmHWM"), "end": rss.get("VmRSS")},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
