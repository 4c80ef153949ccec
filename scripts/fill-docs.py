"""Fill the numbers of README.md and docs/ from the files that measured them.

A number a benchmark or a command produces is never typed into a document: it sits between
markers, and this script writes it from its source.

    <!--v:NAME-->15.8<!--/v-->                  one value, in running text
    <!--begin:NAME-->                           a generated block (a table, a list)
    ...
    <!--end:NAME-->

NAME is a key of VALUES or BLOCKS below, each of which reads one results file
(bench/results/*.json, written by the benchmark named in its key) or runs one command. Markdown
renders the markers as nothing.

    python scripts/fill-docs.py            # rewrite the documents
    python scripts/fill-docs.py --check    # exit 1 and name each stale number (the test suite runs this)
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

VALUE = re.compile(r"<!--v:([\w.-]+)-->(.*?)<!--/v-->", re.S)
BLOCK = re.compile(r"(<!--begin:([\w.-]+)-->\n)(.*?)(<!--end:\2-->)", re.S)


@functools.cache
def results(name: str) -> dict[str, Any]:
    """bench/results/NAME.json, as the benchmark wrote it."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"fill-docs: {path.relative_to(ROOT)} is missing: run python bench/{name}.py > {path.relative_to(ROOT)}")
    return json.loads(path.read_text())


def _table(header: list[str], rows: list[list[Any]], align: str = "") -> str:
    """The analyzer's Markdown table; ``align`` has an ``r`` for each right-aligned column."""
    from cnnlab.analysis.render import markdown_table

    return markdown_table(header, rows, [a == "r" for a in align])


# --- training speed: bench/train_throughput.py ---------------------------------------------------

def _throughput(model: str) -> dict[str, Any]:
    return next(r for r in results("train_throughput")["results"] if r["model"] == model)


def _train_table() -> str:
    rows = []
    for r in results("train_throughput")["results"]:
        rows.append([r["model"], f"{r['dataset']} {'x'.join(map(str, r['input']))}", r["batch"],
                     f"{r['cnnlab_auto_images_per_s']:,.0f}", f"{r['cnnlab_fp32_images_per_s']:,.0f}",
                     f"{r['plain_workers0_images_per_s']:,.0f}", f"{r['plain_workers2_images_per_s']:,.0f}",
                     f"{r['speedup_over_best_plain']:.2f}x"])
    return _table(["model", "data", "batch", "cnnlab (auto)", "cnnlab (fp32)", "plain, 0 workers",
                   "plain, 2 workers", "speed-up"], rows)


def _best_plain(model: str) -> float:
    r = _throughput(model)
    return max(r["plain_workers0_images_per_s"], r["plain_workers2_images_per_s"])


def _gain(model: str) -> float:
    """cnnlab's auto precision over its fp32, same loop."""
    r = _throughput(model)
    return r["cnnlab_auto_images_per_s"] / r["cnnlab_fp32_images_per_s"]


def _cpu_description() -> str:
    """The CPU's name and its fast bf16 instructions, as the throughput bench found them."""
    machine = results("train_throughput")["machine"]
    feature = (machine["cpu_bf16"] or "no fast bf16").removeprefix("this CPU has ")
    return f"{machine['cpu']}, {feature}" + (" without AMX" if feature == "AVX512-BF16" else "")


def _alloc(model: str) -> dict[str, Any]:
    return next(r for r in results("allocator")["rows"] if r["case"].startswith(model))


def _epochs(n: int) -> dict[str, Any]:
    return next(r for r in results("main_job_epochs")["rows"] if r["epochs"] == n)


def _epochs_range(n: int) -> str:
    row = _epochs(n)
    return f"{row['min']:.2%} to {row['max']:.2%}"


def _main_job(key: str) -> Any:
    return results("train_throughput")["main_job"][key]


# --- the analyzer: bench/analyze.py and bench/counters.py ----------------------------------------

def _analyze_table() -> str:
    rows = [[r["model"], r["input"], r["tool"], f"{r['seconds']:.3f}", f"{r['peak_mib']:.1f}"]
            for r in results("analyze")["results"]]
    return _table(["model", "input", "tool", "seconds", "peak memory (MiB)"], rows)


def _analyze(tool: str, model: str, input_: str, key: str) -> Any:
    return next(r[key] for r in results("analyze")["results"]
                if r["tool"] == tool and r["model"] == model and r["input"] == input_)


def _ratio(model: str, input_: str) -> float:
    return results("analyze")["torchinfo_time_over_cnnlab"][f"{model} {input_}"]


def _counters_table() -> str:
    def cell(entry: dict[str, Any]) -> str:
        return f"{entry['gmacs']:.3f}" if "gmacs" in entry else "fails"

    rows = [[r["model"], f"{r['published_gmacs']:.3f}", cell(r["cnnlab"]), cell(r["torchinfo"]), cell(r["fvcore"]),
             cell(r["ptflops"])] for r in results("counters")["rows"]]
    return _table(["model", "torchvision", "cnnlab", "torchinfo", "fvcore", "ptflops"], rows)


def _counter_version(tool: str) -> str:
    version = results("counters")["versions"][tool]
    return re.sub(r"\.post\d+$", "", version)


# --- cnnlab compare, run here --------------------------------------------------------------------

COMPARE = ["compare", "alexnet", "vgg16", "googlenet", "resnet50", "densenet121", "--input", "3x224x224"]


@functools.cache
def _command(*argv: str) -> str:
    """What `cnnlab ARGV` prints on stdout."""
    import contextlib
    import io

    from cnnlab.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(list(argv))
    if code:
        raise SystemExit(f"fill-docs: `cnnlab {' '.join(argv)}` failed")
    return buffer.getvalue()


def _compare_table() -> str:
    return _command(*COMPARE, "--markdown").rstrip("\n")


def _googlenet() -> dict[str, Any]:
    return json.loads(_command("inspect", "googlenet", "--json"))


# --- the NumPy engine: bench/scratch.py ----------------------------------------------------------

def _scratch_layer(index: int) -> dict[str, Any]:
    return results("scratch")["layers"][index]


def _threads(torch_ms: dict[str, Any]) -> list[str]:
    """The keys ``threads_N`` in order of N."""
    return sorted(torch_ms, key=lambda k: int(k.removeprefix("threads_")))


def _scratch_table() -> str:
    rows = []
    for r in results("scratch")["layers"]:
        torch_ms = r["torch_ms"]
        rows.append([r["layer"], f"{r['scratch_im2col_ms']['forward_backward']:.1f} ms",
                     " / ".join(f"{torch_ms[t]['forward_backward']:.1f}" for t in _threads(torch_ms)) + " ms",
                     f"{r['ratio_forward_backward_vs_best_torch']:.2f}"])
    label = " / ".join(t.removeprefix("threads_") for t in _threads(results("scratch")["layers"][0]["torch_ms"]))
    return _table(["layer (batch 64)", "scratch fwd+bwd", f"torch fwd+bwd, {label} threads",
                   "ratio to the faster torch"], rows)


def _scratch_train(key: str) -> Any:
    return results("scratch")["train_lenet"][key]


def _seconds_to(percent: float) -> tuple[float, int]:
    """Training seconds and step at which the scratch run's test accuracy first reached ``percent``."""
    for point in _scratch_train("test_curve"):
        if point["test_accuracy"] * 100 >= percent:
            return point["train_seconds"], point["step"]
    raise SystemExit(f"fill-docs: the scratch run never reached {percent}%")


# --- the explorer: bench/serve_start.py ----------------------------------------------------------

def _serve_start(kind: str, key: str) -> float:
    return results("serve_start")[key][kind]["median"]


def _serve_load_table() -> str:
    r = results("serve_load")
    rows = [[label, r[key]["requests"], r[key]["correct"], f"{r[key]['requests_per_s']:,.1f}",
             f"{r[key]['latency_ms_p50']:,.0f} ms"]
            for key, label in (("cached", "same input each time (cached)"),
                               ("distinct", "a new input size each time (a fresh trace each)"))]
    rows.append(["`cnnlab.analyze` called in-process, one after another", r["distinct"]["requests"], "",
                 f"{r['in_process_analyses_per_s']:,.1f}", ""])
    return _table([f"`GET /api/analyze?model={r['model']}`", "requests", "correct", "requests/s", "p50 latency"],
                  rows, "-rrrr")


_PHASES = {
    "identical": "50 identical new questions at once",
    "cold": "distinct new questions, all at once",
    "warm": "kept answers",
    "hostile": "kept answers with refusals (400, 403, 413) mixed in",
}


def _serve_mixed_table() -> str:
    r = results("serve_mixed")
    phases = {**_PHASES, "cold": f"{r['distinct_questions']} distinct new questions, all at once"}
    rows = [[phases[name], f"{p['requests']:,}", f"{p['jobs']:,}", f"{p['p50_ms']:,.0f} ms", f"{p['p95_ms']:,.0f} ms",
             p["errors"]] for name, p in r["phases"].items()]
    table = _table(["phase (50 clients)", "requests", "computations", "p50", "p95", "errors"], rows, "-rrrrr")
    memory = r["server_rss_bytes"]["peak"] / 2**20
    return (f"{table}\n\nThe slowest of {r['health']['probes']} `/api/health` answers meanwhile took "
            f"{r['health']['max_ms']:,.0f} ms; the server's resident memory peaked at {memory:,.0f} MiB "
            f"({r['server']}).")


def _busy(run: int, key: str) -> Any:
    return results("busy_threads")["runs"][run][key]


# --- data loading: bench/loader.py --------------------------------------------------------------

def _sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, thousands separated, no trailing zeros: 22,437 -> 22,400."""
    text = f"{float(f'{x:.{digits}g}'):,.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _loader_row(data: str, kind: str) -> dict[str, Any]:
    return next(r for r in results("loader")["rows"] if r["data"] == data and r["kind"] == kind)


def _loader_label(data: str) -> str:
    info = results("loader")["data"][data]
    name = {"mnist": "MNIST", "cifar": "CIFAR-size"}[data]
    random = ", random pixels" if info["source"].startswith("random") else ""
    return f"{name} {'x'.join(map(str, info['shape']))}, {info['images']:,}{random}"


def _loader_table() -> str:
    rows, seen = [], set()
    for r in results("loader")["rows"]:
        first = r["data"] not in seen
        seen.add(r["data"])
        rates = [r[f"threads_{t}"]["batches_per_s"] for t in results("loader")["threads"]]
        cells = [_sig(rate) if rate >= 1000 else f"{rate:.0f}" for rate in rates]
        if r["kind"] == "tensorloader":
            cells = [f"**{c}**" for c in cells]
        loader = r["loader"].replace("TensorLoader", "**TensorLoader**")
        rows.append([_loader_label(r["data"]) if first else "", loader, *cells])
    return _table(["data", "loader", *(f"batches/s ({t} thread{'s' if t > 1 else ''})"
                                       for t in results("loader")["threads"])], rows, "--rr")


def _loader_us(data: str, threads: int) -> float:
    return _loader_row(data, "tensorloader")[f"threads_{threads}"]["us_per_batch"]


def _loader_speedup(data: str, threads: int) -> str:
    ratio = results("loader")["tensorloader_over_best_torchvision"][data][f"threads_{threads}"]
    return f"{ratio:.0f}" if ratio >= 10 else f"{ratio:.1f}"


def _two_threads() -> str:
    """Whether two threads were slower or faster than one, per dataset, in words."""
    words = []
    for data, name in (("mnist", "MNIST"), ("cifar", "CIFAR-size data")):
        row = _loader_row(data, "tensorloader")
        faster = row["threads_2"]["batches_per_s"] > row["threads_1"]["batches_per_s"]
        words.append(f"{'faster' if faster else 'slower'} on {name}")
    return " and ".join(words)


def _crop_flip(threads: int, key: str) -> float:
    """Milliseconds of one crop/flip timing of bench/loader.py."""
    return results("loader")["crop_flip"][f"threads_{threads}"][key] / 1000


def _crop_flip_range(threads: int) -> str:
    times = results("loader")["crop_flip"][f"threads_{threads}"].values()
    return f"{_sig(min(times) / 1000, 2)}-{_sig(max(times) / 1000, 2)}"


def _loading(key: str) -> str:
    seconds = results("loader")["loading"]["median_seconds"][key]
    return "(not installed)" if seconds is None else f"{seconds:.2f}"


def _cifar_source() -> str:
    source = results("loader")["data"]["cifar"]["source"]
    if source.startswith("random"):
        return ("random uint8 pixels of CIFAR-10's shape, since CIFAR-10 is not installed here (the pixel "
                "values do not change the work)")
    return f"CIFAR-10's training images (`{source}`)"


VALUES: dict[str, Callable[[], str]] = {
    "serve-mixed.warm-p95": lambda: f"{results('serve_mixed')['phases']['warm']['p95_ms']:,.0f}",
    "busy.processes": lambda: f"{results('busy_threads')['busy_processes']}",
    "busy.default-threads": lambda: f"{_busy(0, 'threads')}",
    "busy.default-rate": lambda: f"{_busy(0, 'images_per_s'):,}",
    "busy.auto-threads": lambda: f"{_busy(1, 'threads')}",
    "busy.auto-rate": lambda: f"{_busy(1, 'images_per_s'):,}",
    "busy.auto-why": lambda: f"{_busy(1, 'why')}",
    "busy.speedup": lambda: f"{results('busy_threads')['auto_over_default']:.1f}",
    "main-job.top1": lambda: f"{_main_job('test_top1'):.2%}",
    "main-job.wall": lambda: f"{_main_job('wall_seconds'):.1f}",
    "main-job.wall-rounded": lambda: f"{round(_main_job('wall_seconds'))}",
    "main-job.epochs": lambda: f"{_main_job('epochs')}",
    "main-job.rate": lambda: f"{_main_job('train_images_per_s'):,.0f}",
    "main-job.import-torch": lambda: f"{_main_job('import_torch_seconds'):.1f}",
    "main-job.import-dynamo": lambda: f"{_main_job('import_dynamo_seconds'):.1f}",
    "main-job.epochs-seconds": lambda: f"{_main_job('epochs_seconds'):.1f}",
    "main-job.rest": lambda: f"{_main_job('wall_seconds') - _main_job('import_torch_seconds') - _main_job('import_dynamo_seconds') - _main_job('epochs_seconds'):.1f}",
    "train.cpu-name": lambda: _cpu_description(),
    "epochs.seeds": lambda: f"{len(_epochs(4)['seeds'])}",
    "alloc.repeats": lambda: f"{results('allocator')['repeats']}",
    "alloc.lenet-glibc": lambda: f"{_alloc('lenet5')['glibc_images_per_s']:,}",
    "alloc.lenet-kept": lambda: f"{_alloc('lenet5')['kept_images_per_s']:,}",
    "alloc.lenet-glibc-faults": lambda: f"{_alloc('lenet5')['glibc_page_faults']:,}",
    "alloc.lenet-kept-faults": lambda: f"{_alloc('lenet5')['kept_page_faults']:,}",
    "alloc.resnet-glibc": lambda: f"{_alloc('resnet20')['glibc_images_per_s']:,}",
    "alloc.resnet-kept": lambda: f"{_alloc('resnet20')['kept_images_per_s']:,}",
    "alloc.resnet-glibc-faults": lambda: f"{_alloc('resnet20')['glibc_page_faults']:,}",
    "alloc.resnet-kept-faults": lambda: f"{_alloc('resnet20')['kept_page_faults']:,}",
    "epochs.3-range": lambda: _epochs_range(3),
    "epochs.4-range": lambda: _epochs_range(4),
    "epochs.saving": lambda: f"{_epochs(4)['mean_fit_seconds'] - _epochs(3)['mean_fit_seconds']:.0f}",
    "train.lenet-fp32-over-plain": lambda: f"{_throughput('lenet5')['cnnlab_fp32_images_per_s'] / _best_plain('lenet5'):.1f}",
    "train.lenet-bf16-gain": lambda: f"{_gain('lenet5') * 100 - 100:.0f}",
    "train.resnet-bf16-over-fp32": lambda: f"{_gain('resnet20'):.1f}",
    "train.cpu": lambda: results("train_throughput")["machine"]["cpu_bf16"].removeprefix("this CPU has "),
    "analyze.r50-small-ratio": lambda: f"{_ratio('resnet50', '1x3x224x224'):.1f}",
    "analyze.d121-small-ratio": lambda: f"{_ratio('densenet121', '1x3x224x224'):.1f}",
    "analyze.r50-large-ratio": lambda: f"{_ratio('resnet50', '64x3x512x512'):.0f}",
    "analyze.d121-large-ratio": lambda: f"{_ratio('densenet121', '64x3x512x512'):.0f}",
    "analyze.r50-large-torchinfo-gib":
        lambda: f"{_analyze('torchinfo', 'resnet50', '64x3x512x512', 'peak_mib') / 1024:.1f}",
    "analyze.d121-large-torchinfo-gib":
        lambda: f"{_analyze('torchinfo', 'densenet121', '64x3x512x512', 'peak_mib') / 1024:.1f}",
    "analyze.r152-huge-seconds": lambda: f"{_analyze('cnnlab', 'resnet152', '256x3x2048x2048', 'seconds'):.2f}",
    "counters.torchinfo": lambda: _counter_version("torchinfo"),
    "counters.fvcore": lambda: _counter_version("fvcore"),
    "counters.ptflops": lambda: _counter_version("ptflops"),
    "googlenet.model-params": lambda: f"{_googlenet()['totals']['model_params']:,}",
    "googlenet.graph-params": lambda: f"{_googlenet()['totals']['params']:,}",
    "googlenet.outside-params": lambda: f"{_googlenet()['totals']['params_outside_graph']['params']:,}",
    "scratch.conv1-ms": lambda: f"{_scratch_layer(0)['scratch_im2col_ms']['forward_backward']:.1f}",
    "scratch.conv1-torch-ms":
        lambda: f"{min(v['forward_backward'] for v in _scratch_layer(0)['torch_ms'].values()):.1f}",
    "scratch.conv2-ratio": lambda: f"{_scratch_layer(1)['ratio_forward_backward_vs_best_torch']:.1f}",
    "scratch.col2im-ms": lambda: f"{results('scratch')['col2im']['per_tap_strided_add_ms']:.2f}",
    "scratch.add-at-ms": lambda: f"{results('scratch')['col2im']['np_add_at_ms']:.1f}",
    "scratch.col2im-speedup": lambda: f"{results('scratch')['col2im']['speedup']:.1f}",
    "scratch.naive-speedup": lambda: f"{results('scratch')['naive']['speedup']:.0f}",
    "scratch.top1": lambda: f"{_scratch_train('test_accuracy'):.2%}",
    "scratch.train-seconds": lambda: f"{_scratch_train('train_seconds'):.1f}",
    "scratch.total-seconds": lambda: f"{round(_scratch_train('total_seconds'))}",
    "scratch.epochs": lambda: f"{_scratch_train('settings')['epochs']}",
    "scratch.97-seconds": lambda: f"{_seconds_to(97)[0]:.1f}",
    "scratch.97-step": lambda: f"{_seconds_to(97)[1]}",
    "serve-start.lazy-url": lambda: f"{_serve_start('lazy', 'url_s'):.2f}",
    "serve-start.lazy-models": lambda: f"{_serve_start('lazy', 'first_models_answer_s'):.2f}",
    "serve-start.eager-url": lambda: f"{_serve_start('eager', 'url_s'):.2f}",
    "loader.cpu": lambda: results("loader")["machine"]["cpu"],
    "loader.torch": lambda: results("loader")["machine"]["torch"].split("+")[0],
    "loader.load-start": lambda: f"{results('loader')['load_average']['start'][0]:.1f}",
    "loader.load-end": lambda: f"{results('loader')['load_average']['end'][0]:.1f}",
    "loader.mnist-us-1": lambda: _sig(_loader_us("mnist", 1), 2),
    "loader.mnist-speedup-1": lambda: _loader_speedup("mnist", 1),
    "loader.cifar-ms-1": lambda: _sig(_loader_us("cifar", 1) / 1000, 2),
    "loader.cifar-speedup-1": lambda: _loader_speedup("cifar", 1),
    "loader.lenet-step-ms": lambda: f"{128 / _throughput('lenet5')['cnnlab_auto_images_per_s'] * 1000:.1f}",
    "loader.two-threads": _two_threads,
    "loader.mnist-us-2": lambda: _sig(_loader_us("mnist", 2), 2),
    "loader.mnist-speedup-2": lambda: _loader_speedup("mnist", 2),
    "loader.cifar-ms-2": lambda: _sig(_loader_us("cifar", 2) / 1000, 2),
    "loader.cifar-speedup-2": lambda: _loader_speedup("cifar", 2),
    "loader.crop-batched-ms": lambda: f"{_crop_flip(1, 'crop_batched_us'):.2f}",
    "loader.crop-loop-ms": lambda: f"{_crop_flip(1, 'crop_python_loop_us'):.2f}",
    "loader.flip-gather-ms": lambda: f"{_crop_flip(1, 'flip_gather_us'):.2f}",
    "loader.flip-where-ms": lambda: f"{_crop_flip(1, 'flip_torch_where_us'):.2f}",
    "loader.flip-ratio": lambda: f"{_crop_flip(1, 'flip_torch_where_us') / _crop_flip(1, 'flip_gather_us'):.1f}",
    "loader.crop-flip-2-range": lambda: _crop_flip_range(2),
    "loader.processes": lambda: f"{results('loader')['loading']['processes']}",
    "loader.import-data": lambda: _loading("import_cnnlab_data"),
    "loader.import-torch": lambda: _loading("import_torch"),
    "loader.mnist-decode": lambda: _loading("mnist_decode"),
    "loader.mnist-cache": lambda: _loading("mnist_decoded_cache"),
    "loader.mnist-again": lambda: _loading("mnist_again_in_process"),
    "loader.fashion": lambda: _loading("fashion-mnist"),
    "loader.mnist-5k": lambda: _loading("mnist-5k"),
    "loader.cifar-source": _cifar_source,
}

BLOCKS: dict[str, Callable[[], str]] = {
    "train-throughput": _train_table,
    "analyze": _analyze_table,
    "counters": _counters_table,
    "compare-classic": _compare_table,
    "scratch": _scratch_table,
    "serve-load": _serve_load_table,
    "serve-mixed": _serve_mixed_table,
    "loader": _loader_table,
}


def fill(text: str, where: str) -> tuple[str, list[str]]:
    """The document with every marked number written from its source, and what changed."""
    changes: list[str] = []

    def value(match: re.Match[str]) -> str:
        name, old = match.group(1), match.group(2)
        if name not in VALUES:
            raise SystemExit(f"fill-docs: {where}: no value named {name!r}")
        new = VALUES[name]()
        if new != old:
            changes.append(f"{where}: {name}: {old!r} -> {new!r}")
        return f"<!--v:{name}-->{new}<!--/v-->"

    def block(match: re.Match[str]) -> str:
        name, old = match.group(2), match.group(3)
        if name not in BLOCKS:
            raise SystemExit(f"fill-docs: {where}: no block named {name!r}")
        new = BLOCKS[name]() + "\n"
        if new != old:
            changes.append(f"{where}: block {name} changed")
        return f"{match.group(1)}{new}{match.group(4)}"

    return BLOCK.sub(block, VALUE.sub(value, text)), changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is stale")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        new, changes = fill(text, str(document.relative_to(ROOT)))
        stale += changes
        if changes and not args.check:
            document.write_text(new, encoding="utf-8")
    for line in stale:
        print(line)
    if args.check and stale:
        print("fill-docs: documents are stale: run python scripts/fill-docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
