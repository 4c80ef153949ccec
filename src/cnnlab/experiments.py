"""The papers' experiments as named protocols: every run they need, then one table and its plots.

A protocol fixes the data, the recipe, the models compared and the budgets. Running one makes
an experiment folder ``OUT/NAME-BUDGET/`` that holds ``experiment.json`` (the protocol as run),
one ordinary run folder per model and seed (``ARM-sSEED``), and, once every run has finished,
``results.json``, ``results.md`` and the plots. A second call skips the runs that finished and
resumes the ones that were interrupted, so it finishes at once when nothing is left to do.

    cnnlab experiment degradation --budget quick --seeds 2
    run_experiment("degradation", budget="quick", seeds=2)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.train.progress import fmt_duration

__all__ = ["BUDGETS", "EXPERIMENTS", "Arm", "Protocol", "experiment_folder", "get_experiment", "protocols_document",
           "run_experiment"]

BUDGETS = ("quick", "full")
EXPERIMENT_FILE = "experiment.json"


@dataclass(frozen=True)
class Arm:
    """One model of a comparison: its label in tables and plots, the zoo name and its options."""

    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    question: str  # what the paper found, which the experiment puts to the test
    recipe: str  # the recipe the runs start from
    changes: dict[str, Any]  # the protocol's own changes to the recipe
    arms: tuple[Arm, ...]
    budgets: dict[str, dict[str, Any]]  # budget -> changes to the recipe
    seeds: dict[str, int]  # budget -> default number of seeds
    minutes: dict[str, str]  # budget -> the time it took here, as measured (see docs/results.md)

    def config_changes(self, budget: str) -> dict[str, Any]:
        return {**self.changes, **self.budgets[budget]}

    def config(self, budget: str) -> Any:
        """The recipe with the protocol's and the budget's changes: every run's config but model and seed."""
        from cnnlab.train.config import override
        from cnnlab.train.recipes import get_recipe

        return override(get_recipe(self.recipe), self.config_changes(budget))


_FASHION = dict(dataset="fashion-mnist", val_size=5000, log_every=10_000, checkpoint_every=0)
# For networks of 30-100M MACs: 3 epochs of 10,000 images, or the Fashion-MNIST recipe's 15 epochs of all.
_SMALL_NETWORK_BUDGETS = {"quick": dict(limit=10_000, epochs=3, batch_size=128, lr=0.1), "full": dict(epochs=15)}

EXPERIMENTS: dict[str, Protocol] = {p.name: p for p in [
    Protocol(
        name="degradation",
        title="Plain against residual networks: the degradation problem",
        question=("He et al. 2016 (Sec. 4.2, Fig. 6): a plain 56-layer network has higher training and test "
                  "error than a plain 20-layer one, while with identity shortcuts the deeper network is the "
                  "better one."),
        recipe="resnet20-fashion-mnist",
        changes={**_FASHION, "label_smoothing": 0.0},
        arms=(Arm("plain-20", "plain20"), Arm("plain-56", "plain56"), Arm("resnet-20", "resnet20"),
              Arm("resnet-56", "resnet56")),
        budgets=_SMALL_NETWORK_BUDGETS,
        seeds={"quick": 2, "full": 3},
        minutes={"quick": "about 9 minutes with 2 seeds (measured)",
                 "full": "about 6 hours with 3 seeds (estimated from the quick budget's speed)"},
    ),
    Protocol(
        name="families",
        title="One network of every family at the same budget",
        question=("Each family beat the last on ILSVRC (AlexNet 2012, VGG and GoogLeNet 2014, ResNet 2015, "
                  "DenseNet 2017): does the order hold on Fashion-MNIST at an equal, small budget?"),
        recipe="resnet20-fashion-mnist",
        changes={**_FASHION, "val_size": 1000},
        arms=(Arm("LeNet-5", "lenet5"),
              Arm("AlexNet", "alexnet", {"small_input": True, "fc_width": 512}),
              Arm("VGG-11 (BN)", "vgg11_bn", {"small_input": True, "fc_width": 512}),
              Arm("NiN", "nin_cifar"),
              Arm("GoogLeNet", "googlenet", {"small_input": True}),
              Arm("ResNet-20", "resnet20"),
              Arm("DenseNet-40", "densenet40_cifar")),
        budgets={"quick": dict(limit=2_000, epochs=2, batch_size=64, lr=0.05),
                 "full": dict(epochs=5, batch_size=128, lr=0.1)},
        seeds={"quick": 2, "full": 3},
        minutes={"quick": "about 8 minutes with 2 seeds (measured)",
                 "full": "about 15 hours with 3 seeds (estimated from the quick budget's speed)"},
    ),
    Protocol(
        name="kernels",
        title="Two 3x3 against one 5x5, a 1x1 bottleneck against a direct 3x3, at matched parameters",
        question=("Simonyan & Zisserman 2015 (Sec. 2.3): a stack of two 3x3 layers sees what one 5x5 sees with "
                  "28% fewer weights and one more non-linearity; He et al. 2016 (Sec. 4.1): 1x1 reductions make "
                  "a 3x3 layer cheap enough to afford a much wider network for the same parameters."),
        recipe="resnet20-fashion-mnist",
        changes={**_FASHION, "label_smoothing": 0.0},
        arms=(Arm("5x5, width 48", "kernelnet", {"block": "5x5", "width": 48}),
              Arm("two 3x3, width 56", "kernelnet", {"block": "3x3x2", "width": 56}),
              Arm("3x3, width 48", "kernelnet", {"block": "3x3", "width": 48}),
              Arm("bottleneck, width 136", "kernelnet", {"block": "bottleneck", "width": 136})),
        budgets=_SMALL_NETWORK_BUDGETS,
        seeds={"quick": 2, "full": 3},
        minutes={"quick": "about 7 minutes with 2 seeds (measured)",
                 "full": "about 4.5 hours with 3 seeds (estimated from the quick budget's speed)"},
    ),
]}


def protocols_document() -> dict[str, Any]:
    """Every protocol as `cnnlab experiment --list --json` prints it: models, each budget's full config, time."""
    return {"experiments": [
        {"name": p.name, "title": p.title, "question": p.question, "recipe": p.recipe,
         "models": [{"label": a.label, "model": a.model, "options": a.options} for a in p.arms],
         "budgets": {b: {**p.config(b).to_dict(), "seeds": p.seeds[b], "expected_time": p.minutes[b]}
                     for b in p.budgets}}
        for p in EXPERIMENTS.values()]}


def get_experiment(name: str) -> Protocol:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise CnnlabError(f"unknown experiment {name!r}: choose one of {', '.join(EXPERIMENTS)} "
                          "(`cnnlab experiment --list`)") from None


def experiment_folder(name: str, budget: str, out: str | os.PathLike[str] = "runs") -> Path:
    """Where an experiment's runs and results live: ``OUT/NAME-BUDGET``."""
    return Path(out) / f"{name}-{budget}"


def _slug(label: str) -> str:
    keep = "".join(ch if ch.isalnum() else "-" for ch in label.lower())
    return "-".join(part for part in keep.split("-") if part)


def run_name(arm: Arm, seed: int) -> str:
    return f"{_slug(arm.label)}-s{seed}"


def _configs(protocol: Protocol, budget: str, seeds: int, folder: Path) -> list[tuple[Arm, int, Any]]:
    from cnnlab.train.config import override

    base = protocol.config(budget)
    out = []
    for arm in protocol.arms:
        for seed in range(seeds):
            cfg = override(base, dict(model=arm.model, model_options=dict(arm.options), seed=seed, seeds=1,
                                      out=str(folder), name=run_name(arm, seed)))
            out.append((arm, seed, cfg.validate()))
    return out


# Fields a finished run must agree on with the protocol to be reused (precision is chosen per machine).
_SAME = ("model", "model_options", "dataset", "val_size", "limit", "epochs", "iterations", "batch_size", "lr",
         "seed", "optimizer", "schedule", "crop_padding", "flip", "label_smoothing", "weight_decay")


def _check_same(run: Path, saved: dict[str, Any], cfg: Any) -> None:
    wanted = cfg.to_dict()
    differs = [k for k in _SAME if saved.get(k) != wanted[k]]
    if differs:
        raise CnnlabError(f"{run} was trained with other settings ({', '.join(differs)}) than this protocol: "
                          "move it away, or give another --out")


class _Line:
    """The experiment's one progress line on stderr: rewritten in a terminal, a line per run in a log."""

    def __init__(self, enabled: bool, title: str, total_work: float) -> None:
        self.enabled, self.title, self.total = enabled, title, max(total_work, 1e-9)
        self.live = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.done = 0.0  # work of finished runs
        self.ran = 0.0  # work done in this call (for the time left)
        self._last = 0.0

    def show(self, text: str, work_now: float = 0.0, final: bool = False, milestone: bool = False) -> None:
        """``final``: the last line; ``milestone``: a run ended (a line of its own in a log)."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.live and not (final or milestone) and now - self._last < 0.5:
            return
        self._last = now
        fraction = min((self.done + work_now) / self.total, 1.0)
        elapsed = now - self.t0
        ran = self.ran + work_now
        left = elapsed / ran * (self.total - self.done - work_now) if ran > 0 else None
        eta = f" | about {fmt_duration(left)} left" if left is not None and fraction < 1 else ""
        line = f"{self.title}: {fraction:.0%} | {text} | {fmt_duration(elapsed)}{eta}"
        if self.live:
            sys.stderr.write("\r\x1b[2K" + line + ("\n" if final else ""))
        elif final or milestone:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _model_numbers(arm: Arm, cfg: Any, classes: int, input_size: list[int]) -> dict[str, Any]:
    """Parameters, MACs and receptive field of the arm's network as trained, from the analyzer."""
    from cnnlab.analysis import analyze
    from cnnlab.models import create_model

    model = create_model(arm.model, num_classes=classes, in_channels=input_size[0], **arm.options)
    report = analyze(model, tuple(input_size))
    rf = report.receptive_field
    return {"params": report.params, "macs": report.macs, "receptive_field": rf["size"] if rf else None,
            "unknown": report.unknown}


def _curves(histories: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Per epoch: the mean, lowest and highest train and validation error over the seeds."""
    epochs = min((len(h) for h in histories), default=0)
    out: dict[str, Any] = {"epoch": list(range(1, epochs + 1))}
    for key, source in (("train_error", "train_top1"), ("val_error", "val_top1")):
        rows = [[1 - h[e][source] for h in histories if isinstance(h[e].get(source), (int, float))]
                for e in range(epochs)]
        out[key] = {"mean": [sum(r) / len(r) if r else None for r in rows],
                    "low": [min(r) if r else None for r in rows], "high": [max(r) if r else None for r in rows]}
    return out


def _machine(precision: str) -> dict[str, Any]:
    import torch

    from cnnlab.train.precision import cpu_name, fast_bf16

    return {"cpu": cpu_name(), "cpu_bf16": fast_bf16(torch.device("cpu")), "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
            "precision": precision}


def run_experiment(name: str, budget: str = "quick", seeds: int | None = None, out: str | os.PathLike[str] = "runs",
                   quiet: bool = False, plots: bool = True,
                   on_step: Callable[[str, int], bool] | None = None) -> dict[str, Any]:
    """Run (or finish) every run of experiment ``name`` and return its results document.

    ``on_step(run_name, step)`` is called after every optimizer step; returning True stops the
    experiment at that step with the run's state saved (the next call resumes it), as Ctrl-C does.
    """
    from cnnlab.runs import RunDir
    from cnnlab.train.loop import fit, load_data

    protocol = get_experiment(name)
    if budget not in BUDGETS:
        raise CnnlabError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    seeds = protocol.seeds[budget] if seeds is None else seeds
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 100:
        raise CnnlabError(f"--seeds must be a whole number from 1 to 100, got {seeds!r}")
    folder = experiment_folder(name, budget, out)
    for place in (Path(out), folder):
        if place.exists() and not place.is_dir():
            raise CnnlabError(f"{place} is a file, not a folder: give --out a folder for the experiment's runs")
    plan = _configs(protocol, budget, seeds, folder)
    t0 = time.perf_counter()
    ds = load_data(plan[0][2])
    classes, input_size = len(ds.classes), [ds.in_channels, *ds.image_size]
    numbers = {arm.label: _model_numbers(arm, cfg, classes, input_size) for arm, seed, cfg in plan if seed == 0}
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / EXPERIMENT_FILE, {
        "experiment": name, "title": protocol.title, "budget": budget, "seeds": seeds,
        "runs": [run_name(arm, seed) for arm, seed, _ in plan],
        "config": {k: v for k, v in plan[0][2].to_dict().items() if k not in ("model", "model_options", "seed",
                                                                              "name", "out")}})
    steps_per_run = {arm.label: cfg.iterations or cfg.epochs * (len(ds.train) // cfg.batch_size)
                     for arm, _, cfg in plan}
    work = {arm.label: steps_per_run[arm.label] * max(numbers[arm.label]["macs"] or 1, 1) for arm, _, _ in plan}
    line = _Line(not quiet, f"experiment {name} ({budget}, {seeds} seed{'s' if seeds > 1 else ''})",
                 sum(work[arm.label] for arm, _, _ in plan))
    results: dict[str, list[dict[str, Any]]] = {arm.label: [] for arm in protocol.arms}
    for i, (arm, seed, cfg) in enumerate(plan, 1):
        run = RunDir(folder / cfg.name)
        saved = run.read_result() if run.path.is_dir() else None
        label = f"run {i}/{len(plan)} {arm.label} seed {seed}"
        if saved is not None and saved.get("status") == "finished":
            _check_same(run.path, saved.get("config") or {}, cfg)
            line.done += work[arm.label]
            results[arm.label].append(saved)
            continue
        per_step = work[arm.label] / max(steps_per_run[arm.label], 1)

        def step_hook(step: int, label: str = label, per_step: float = per_step, run_name: str = cfg.name) -> bool:
            line.show(f"{label}, step {step}", step * per_step)
            return bool(on_step and on_step(run_name, step))

        if run.path.is_dir() and (run.read_config() is not None):
            _check_same(run.path, run.read_config() or {}, cfg)
            result = fit(None, resume=run.path, on_step=step_hook, quiet=True)  # type: ignore[arg-type]
        else:
            result = fit(cfg, on_step=step_hook, quiet=True)
        if result.status != "finished":
            line.show(f"{label} interrupted at step {result.steps}", final=True)
            raise CnnlabError(f"experiment {name} stopped in {result.run_dir}: run the same command again to "
                              "resume it")
        line.done += work[arm.label]
        line.ran += work[arm.label]
        results[arm.label].append(result.to_dict())
        line.show(f"{label} done: test {result.test['top1']:.2%}" if result.test else f"{label} done",
                  milestone=True)
    doc = _summarize(protocol, budget, seeds, folder, results, numbers, input_size,
                     precision=str(next(iter(results.values()))[0]["config"].get("precision")))
    doc["seconds_this_call"] = round(time.perf_counter() - t0, 1)
    if plots:
        from cnnlab.viz.experiments import draw_experiment

        doc["plots"] = [p.name for p in draw_experiment(doc, folder)]
    _write_json(folder / "results.json", doc)
    _write_text(folder / "results.md", results_markdown(doc))
    line.show(f"{len(plan)} runs finished; results in {folder}", final=True)
    return doc


def _write_text(path: Path, text: str) -> None:
    from cnnlab.atomic import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(text)


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    _write_text(path, json.dumps(doc, indent=2, allow_nan=False))


def _summarize(protocol: Protocol, budget: str, seeds: int, folder: Path, results: dict[str, list[dict[str, Any]]],
               numbers: dict[str, dict[str, Any]], input_size: list[int], precision: str) -> dict[str, Any]:
    from cnnlab.train.loop import mean_std

    models = []
    for arm in protocol.arms:
        runs = results[arm.label]
        tests = [r["test"]["top1"] for r in runs if r.get("test")]
        mean, std = mean_std(tests)
        seconds, _ = mean_std([r["seconds"] for r in runs])
        speed, _ = mean_std([r["train_images_per_s"] for r in runs])
        models.append({
            "label": arm.label, "model": arm.model, "options": arm.options, **numbers[arm.label],
            "test_top1": tests, "test_top1_mean": mean, "test_top1_std": std,
            "seconds_mean": seconds, "train_images_per_s_mean": speed,
            "runs": [Path(r["run_dir"]).name for r in runs],
            "curves": _curves([r["history"] for r in runs]),
        })
    cfg = results[protocol.arms[0].label][0]["config"]
    return {"experiment": protocol.name, "title": protocol.title, "question": protocol.question,
            "budget": budget, "seeds": seeds, "folder": str(folder), "dataset": cfg["dataset"],
            "input_size": input_size,
            "recipe": {k: cfg[k] for k in ("recipe", "limit", "val_size", "epochs", "batch_size", "optimizer", "lr",
                                           "schedule", "weight_decay", "label_smoothing", "crop_padding", "flip")},
            "machine": _machine(precision), "models": models,
            "runs_seconds_total": round(sum(r["seconds"] for runs in results.values() for r in runs), 1),
            "command": f"cnnlab experiment {protocol.name} --budget {budget} --seeds {seeds}"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def results_markdown(doc: dict[str, Any]) -> str:
    """The results table of an experiment, as Markdown."""
    r = doc["recipe"]
    lines = [f"# {doc['title']}", "", doc["question"], "",
             f"`{doc['command']}`: {doc['dataset']} ({'x'.join(map(str, doc['input_size']))}), "
             f"{r['epochs']} epochs, batch {r['batch_size']}, {r['optimizer']} lr {r['lr']:g} {r['schedule']}"
             + (f", {r['limit']:,} images per split" if r["limit"] else "") + f"; {doc['seeds']} seeds; "
             f"precision {doc['machine']['precision']} on {doc['machine']['cpu_count']} CPU cores; "
             f"{sum(len(m['runs']) for m in doc['models'])} runs, {doc['runs_seconds_total'] / 60:.1f} minutes of "
             "training and evaluation in all.", "",
             "| model | parameters | MACs | receptive field | test accuracy (mean ± std) | time per run (s) | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for m in doc["models"]:
        macs = f"{m['macs']:,}" if m["macs"] is not None else "unknown"
        rf = (f"{m['receptive_field'][0]}x{m['receptive_field'][1]}" if m["receptive_field"]
              else "unknown" if "receptive_field" in m["unknown"] else "-")
        acc = f"{_pct(m['test_top1_mean'])} ± {_pct(m['test_top1_std'])}" if m["test_top1_mean"] is not None else "-"
        secs = f"{m['seconds_mean']:.1f}" if m["seconds_mean"] is not None else "-"
        speed = f"{m['train_images_per_s_mean']:,.0f}" if m["train_images_per_s_mean"] is not None else "-"
        lines.append(f"| {m['label']} | {m['params']:,} | {macs} | {rf} | {acc} | {secs} | {speed} |")
    lines += ["", "Receptive field: the last spatial layer's, in input pixels (height x width); MACs per "
              "sample at the input size."]
    lines += [f"{m['label']}: {what} unknown: {why}." for m in doc["models"] for what, why in m["unknown"].items()]
    if doc.get("plots"):
        lines += ["", *[f"![{p}]({p})" for p in doc["plots"]]]
    return "\n".join(lines) + "\n"
