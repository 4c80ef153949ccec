"""``cnnlab train``, ``recipes``, ``runs``, ``eval`` and ``predict``: training runs and what they learnt.

``recipes``, ``runs`` and ``train --show-config`` answer without torch; the handlers that
train or run a network import it.
"""

from __future__ import annotations

import argparse
import time
import typing
from pathlib import Path
from typing import Any

from cnnlab.cli.args import BATCH, add_json_flag, count
from cnnlab.cli.present import emit, plain, report_run, show_table
from cnnlab.console import err, out
from cnnlab.errors import CnnlabError
from cnnlab.lab import Lab
from cnnlab.train.config import FIELD_HELP, PRECISIONS, TrainConfig, override
from cnnlab.train.recipes import DEFAULT_RECIPE, RECIPES, get_recipe

# TrainConfig fields that have no flag of their own (--recipe and --set stand for two of them).
_NO_FLAG = ("recipe", "source", "model_options")


def _train_config(args: argparse.Namespace) -> Any:
    cfg = get_recipe(args.recipe or DEFAULT_RECIPE)
    changes = {}
    for f in TrainConfig.__dataclass_fields__:
        if f in _NO_FLAG:
            continue
        value = getattr(args, f"cfg_{f}", None)
        if value is not None:
            changes[f] = value
    if args.set:
        from cnnlab.models.source import parse_options  # loads torch

        changes["model_options"] = {**cfg.model_options, **parse_options(args.set)}
    return override(cfg, changes).validate()


def _print_config(cfg: TrainConfig, as_json: bool) -> None:
    emit(cfg.to_dict(), as_json, lambda _: plain(cfg.to_json()))


def _train(args: argparse.Namespace) -> None:
    from cnnlab.train.loop import fit, fit_seeds  # loads torch

    if args.resume:
        given = [k[4:].replace("_", "-") for k, v in vars(args).items() if k.startswith("cfg_") and v is not None]
        if given or args.set or args.recipe or args.show_config or args.overwrite:
            extra = ", ".join(f"--{g}" for g in given) or "--recipe/--set/--show-config/--overwrite"
            raise CnnlabError(f"--resume continues a run with the config it saved: drop {extra}")

        result = fit(None, resume=args.resume, quiet=args.quiet)  # type: ignore[arg-type]
        report_run(result.to_dict(), args.json)
        return
    cfg = _train_config(args)
    if args.show_config:
        _print_config(cfg, args.json)
        return
    if cfg.seeds > 1:
        summary = fit_seeds(cfg, quiet=args.quiet, overwrite=args.overwrite)
        emit(summary, args.json, lambda _: _print_seeds(summary, cfg.seeds))
        return
    result = fit(cfg, quiet=args.quiet, overwrite=args.overwrite)
    if result.status == "interrupted":
        err.print(f"stopped at step {result.steps}; continue with: cnnlab train --resume {result.run_dir}")
    report_run(result.to_dict(), args.json)


def _print_seeds(summary: dict[str, Any], seeds: int) -> None:
    for run in summary["runs"]:
        report_run(run, False)
    if summary["test_top1_mean"] is not None:
        out.print(f"test accuracy over {seeds} seeds: {summary['test_top1_mean']:.2%} "
                  f"± {summary['test_top1_std']:.2%} (mean ± sample std)")


def _recipes(args: argparse.Namespace) -> None:
    if args.name:
        _print_config(get_recipe(args.name), args.json)
    else:
        emit({"recipes": [r.to_dict() for r in RECIPES.values()]}, args.json, _print_recipes)


def _print_recipes(_doc: dict[str, Any]) -> None:
    rows = []
    for r in RECIPES.values():
        length = f"{r.iterations:,} it" if r.iterations else f"{r.epochs} ep"
        source = r.source.split(":")[0].split(", Sec.")[0]
        source = source if len(source) <= 60 else source[:57] + "..."
        rows.append([r.recipe, r.model, r.dataset, length, str(r.batch_size), f"{r.optimizer} {r.lr:g} {r.schedule}",
                     source])
    show_table("recipes (`cnnlab recipes NAME` prints one in full)",
               [("recipe", "left"), ("model", "left"), ("data", "left"), ("length", "right"),
                ("batch", "right"), ("optimisation", "left"), ("source", "left")], rows)


def _runs(args: argparse.Namespace) -> None:
    if not Path(args.runs).is_dir():
        raise CnnlabError(f"{args.runs} is not a folder: give the runs folder with --runs DIR (`cnnlab train` "
                          "writes into ./runs)")
    lab = Lab(args.runs)
    if args.name:
        emit(lab.run(args.name), args.json, _print_run_details)
    else:
        emit(lab.runs(), args.json, _print_runs)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _print_runs(doc: dict[str, Any]) -> None:
    rows = [[r["name"], str(r["model"]), str(r["dataset"]), f"{r['epochs_done']}/{r['epochs'] or '?'}", r["status"],
             _percent(r["best_val_top1"]), _percent(r["test_top1"]),
             time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated"]))] for r in doc["runs"]]
    show_table(f"{len(rows)} run{'' if len(rows) == 1 else 's'} in {doc['runs_dir']} (`cnnlab runs NAME` shows one)",
               [("run", "left"), ("model", "left"), ("data", "left"), ("epochs", "right"), ("status", "left"),
                ("best val", "right"), ("test", "right"), ("updated", "left")], rows)
    for r in doc["runs"]:
        if r["damaged_lines"]:
            n = r["damaged_lines"]
            plain(f"note: {r['name']}: {n} damaged line{'' if n == 1 else 's'} in metrics.jsonl skipped "
                  f"(`cnnlab runs {r['name']}` says which)")


def _print_run_details(doc: dict[str, Any]) -> None:
    def cell(value: Any, spec: str) -> str:
        return format(value, spec) if isinstance(value, (int, float)) else "-"

    rows = [[str(m.get("epoch")), cell(m.get("train_loss"), ".4f"), cell(m.get("train_top1"), ".2%"),
             cell(m.get("val_loss"), ".4f"), cell(m.get("val_top1"), ".2%"), cell(m.get("lr"), ".3g")]
            for m in doc["metrics"]]
    show_table(f"run {doc['name']}: {doc['model']} on {doc['dataset']}, {doc['status']}, "
               f"{doc['epochs_done']}/{doc['epochs'] or '?'} epochs",
               [("epoch", "right"), ("train loss", "right"), ("train acc", "right"), ("val loss", "right"),
                ("val acc", "right"), ("lr", "right")], rows)
    for note in doc["notes"]:
        plain(f"note: {note}")
    if doc["best_val_top1"] is not None:
        out.print(f"best validation accuracy {doc['best_val_top1']:.2%}")
    if doc["test_top1"] is not None:
        out.print(f"test accuracy {doc['test_top1']:.2%}")
    out.print("config, metrics and result in --json", markup=False)


def _experiment(args: argparse.Namespace) -> None:
    from cnnlab.experiments import protocols_document

    if args.list or not args.name:
        emit(protocols_document(), args.json, _print_experiments)
        return
    from cnnlab.experiments import run_experiment  # loads torch

    doc = run_experiment(args.name, args.budget, args.seeds, args.out, quiet=args.quiet or args.json)
    emit(doc, args.json, lambda d: plain((Path(d["folder"]) / "results.md").read_text()))


def _print_experiments(doc: dict[str, Any]) -> None:
    for e in doc["experiments"]:
        out.print(f"{e['name']}: {e['title']}", markup=False)
        out.print(f"  {e['question']}", markup=False)
        out.print(f"  models: {', '.join(m['label'] + ' (' + m['model'] + ')' for m in e['models'])}", markup=False)
        for budget, b in e["budgets"].items():
            data = f"{b['limit']:,} images per split" if b.get("limit") else "all the data"
            out.print(f"  --budget {budget}: {b['dataset']}, {data}, {b['epochs']} epochs, batch {b['batch_size']}, "
                      f"{b['optimizer']} lr {b['lr']:g} {b['schedule']}; {b['seeds']} seeds by default, "
                      f"{b['expected_time']} on 2 CPU cores", markup=False)
    out.print("run one: cnnlab experiment NAME [--budget quick|full] [--seeds N] [--out DIR]", markup=False)


def _eval(args: argparse.Namespace) -> None:
    from cnnlab.sources import checkpoint_of  # loads torch
    from cnnlab.train.inference import evaluate_checkpoint

    checkpoint = checkpoint_of(args.run, "cnnlab eval")
    result = evaluate_checkpoint(checkpoint, args.split, args.data, args.data_root, args.batch_size, args.device,
                                 args.precision)
    emit(result, args.json, _print_eval)


def _print_eval(result: dict[str, Any]) -> None:
    out.print(f"{result['model']} on {result['dataset']} {result['split']} ({result['samples']:,} images): "
              f"top-1 {result['top1']:.2%}, top-5 {result['top5']:.2%}, loss {result['loss']:.4f} "
              f"[{result['precision']['precision']}]", markup=False)
    show_table("per class", [("class", "left"), ("accuracy", "right")],
               [[name, f"{acc:.2%}"] for name, acc in result["per_class"].items()])
    out.print("confusion matrix (rows: true class, columns: predicted) in --json")


def _predict(args: argparse.Namespace) -> None:
    from cnnlab.sources import checkpoint_of  # loads torch
    from cnnlab.train.inference import predict

    results = predict(checkpoint_of(args.checkpoint, "cnnlab predict"), args.images, args.top)
    emit({"predictions": results}, args.json, _print_predictions)


def _print_predictions(doc: dict[str, Any]) -> None:
    from cnnlab.data.bundled import SAMPLES

    for r in doc["predictions"]:
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        image = Path(r["image"])
        shown = f"bundled test image {image.name}" if image.parent == SAMPLES else r["image"]
        out.print(f"{shown}: {best}", markup=False)


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the dataclass, with its comment as help."""
    hints = typing.get_type_hints(TrainConfig)
    for name in TrainConfig.__dataclass_fields__:
        if name in _NO_FLAG:
            continue
        flag = "--" + name.replace("_", "-")
        help_text = FIELD_HELP.get(name, "")
        if hints[name] in (bool, bool | None):
            p.add_argument(flag, dest=f"cfg_{name}", action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        else:
            p.add_argument(flag, dest=f"cfg_{name}", default=None, metavar="V", help=help_text)


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--recipe", default=None, help="recipe name (default lenet5-mnist; see `cnnlab recipes`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model option")
    p.add_argument("--resume", default=None, metavar="RUN",
                   help="continue a run folder (or a checkpoint in it) where it stopped, writing into that folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out/--name (without it, a taken --name is refused)")
    p.add_argument("--show-config", action="store_true", help="print the resolved config and stop")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    add_json_flag(p, "print the final result as one JSON document on stdout")
    _add_train_flags(p)
    p.set_defaults(func=_train)


def _recipes_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, help="print this recipe in full")
    add_json_flag(p)
    p.set_defaults(func=_recipes)


def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, metavar="RUN", help="show this run: its epochs and result")
    p.add_argument("--runs", default="runs", metavar="DIR", help="the runs folder (default ./runs)")
    add_json_flag(p)
    p.set_defaults(func=_runs)


def _experiment_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", default=None, metavar="NAME", help="degradation, families or kernels")
    p.add_argument("--list", action="store_true", help="the experiments with their protocol and expected time")
    p.add_argument("--budget", default="quick", choices=["quick", "full"],
                   help="quick (minutes on 2 CPU cores) or full (hours)")
    p.add_argument("--seeds", type=count(1, 100, example="3"), default=None,
                   help="runs per model, seeds 0..N-1 (default: the budget's)")
    p.add_argument("--out", default="runs", metavar="DIR", help="parent of the experiment folder (default ./runs)")
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    add_json_flag(p, "print the results as one JSON document on stdout")
    p.set_defaults(func=_experiment)


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("--split", default="test", choices=["test", "val", "train"], help="which split (default test)")
    p.add_argument("--data", default=None, help="another dataset name with the same classes")
    p.add_argument("--data-root", default=None, help="folder to read the data from")
    p.add_argument("--batch-size", type=BATCH, default=1000)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="as in training: auto is bf16 where the hardware does it natively, else fp32")
    add_json_flag(p)
    p.set_defaults(func=_eval)


def _predict_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files (default: a bundled test image, for runs on MNIST or Fashion-MNIST)")
    p.add_argument("--top", type=count(1, example="5"), default=5, help="how many classes (default 5)")
    add_json_flag(p)
    p.set_defaults(func=_predict)


_ARGS = {"train": _train_args, "recipes": _recipes_args, "runs": _runs_args, "experiment": _experiment_args,
         "eval": _eval_args,
         "predict": _predict_args}


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cnnlab train``, ``recipes``, ``runs``, ``experiment``, ``eval`` or ``predict``."""
    _ARGS[name](parser)
