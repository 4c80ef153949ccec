"""The ``cnnlab`` command. It parses arguments and calls library functions; no logic lives here.

Every command that prints results takes ``--json`` and then prints one JSON document on
stdout and nothing else. A mistake in the input ends in one line on stderr naming the
cause and the fix, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cnnlab import __version__
from cnnlab.errors import CnnlabError
from cnnlab.limits import MAX_CHANNELS, MAX_CLASSES, MAX_SIDE
from cnnlab.shapes import fmt_shape

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (cause and where to look), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(EXIT_USAGE)


def _hyper(text: str) -> int | tuple[int, ...]:
    """'3' -> 3, '3x5' -> (3, 5): a per-axis integer argument."""
    try:
        values = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or per-axis integers like 3x5, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _padding(text: str) -> int | tuple[int, ...] | str:
    if text.lower() in ("same", "valid"):
        return text.lower()
    try:
        return _hyper(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected an integer, per-axis integers, 'same' or 'valid', got {text!r}") from None


def _shape(text: str) -> tuple[int, ...]:
    from cnnlab.shapes import parse_shape

    try:
        return parse_shape(text)
    except CnnlabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(low: int, high: int | None = None, example: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            where = f"at least {low}" if high is None else f"from {low} to {high:,}"
            hint = f": e.g. {example}" if example else ""
            raise argparse.ArgumentTypeError(f"must be {where}, got {value}{hint}")
        return value

    return parse


def _finite(text: str) -> float:
    """An argparse type: a finite number (no nan, no inf)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


_CLASSES = _count(1, MAX_CLASSES, "10")
_CHANNELS = _count(1, MAX_CHANNELS, "3")
_BATCH = _count(1, 2**20, "64")


# --------------------------------------------------------------------------------------
# calc
# --------------------------------------------------------------------------------------


def _print_layer(result: Any, explain: bool) -> None:
    from cnnlab.console import fmt_int, fmt_shape, out

    out.print(f"[bold]{result.description}[/bold]: {fmt_shape(result.input_shape)} -> "
              f"[bold]{fmt_shape(result.output_shape)}[/bold]")
    if result.weight_params or result.bias_params:
        out.print(f"  params  {fmt_int(result.params)}  (weights {fmt_int(result.weight_params)}, "
                  f"biases {fmt_int(result.bias_params)})")
    else:
        out.print("  params  0")
    out.print(f"  MACs    {fmt_int(result.macs)}  per sample")
    if result.rf_kernel is not None:
        out.print(f"  RF step kernel {fmt_shape(result.rf_kernel)}, stride {fmt_shape(result.rf_stride)}, "
                  f"padding {fmt_shape(result.rf_padding)}")
    if explain:
        out.print()
        for line in result.lines:
            out.print(f"  {line}", markup=False)
    for note in result.notes:
        out.print(f"  {note}", markup=False)


def _cmd_calc_conv(args: argparse.Namespace) -> None:
    from cnnlab import shapes

    result = shapes.conv(args.input, args.out_channels, args.kernel, args.stride, args.padding, args.dilation,
                         args.groups, not args.no_bias, args.padding_mode)
    _emit_layer(result, args)


def _cmd_calc_pool(args: argparse.Namespace) -> None:
    from cnnlab import shapes

    if args.global_:
        result = shapes.global_pool(args.input, args.mode)
    elif args.adaptive is not None:
        result = shapes.adaptive_pool(args.input, args.adaptive, args.mode)
    else:
        if args.kernel is None:
            raise CnnlabError("pooling needs --kernel (or --global, or --adaptive OUT)")
        result = shapes.pool(args.input, args.kernel, args.stride, args.padding, args.dilation, args.ceil, args.mode)
    _emit_layer(result, args)


def _emit_layer(result: Any, args: argparse.Namespace) -> None:
    from cnnlab.console import print_json
    from cnnlab.shapes import CONVENTIONS

    if args.json:
        print_json({**result.to_dict(), "conventions": CONVENTIONS})
    else:
        _print_layer(result, args.explain)


def _cmd_calc_stack(args: argparse.Namespace) -> None:
    from cnnlab import shapes
    from cnnlab.console import print_json, print_stack

    result = shapes.stack(args.input, args.layers)
    if args.json:
        print_json(result.to_dict())
    else:
        print_stack(result, args.explain)


def _cmd_calc_tour(args: argparse.Namespace) -> None:
    from cnnlab.console import print_json
    from cnnlab.tour import calculator_tour, print_calculator_tour

    if args.json:
        print_json(calculator_tour())
    else:
        print_calculator_tour()


# --------------------------------------------------------------------------------------
# models, export
# --------------------------------------------------------------------------------------


def _cmd_models(args: argparse.Namespace) -> None:
    from cnnlab.catalog import catalog
    from cnnlab.console import fmt_int, fmt_macs, fmt_shape, out, print_json, table
    from cnnlab.models import list_models

    families = _families()
    if args.family is not None and args.family not in families:
        raise CnnlabError(f"unknown family {args.family!r}: choose one of {', '.join(families)}")
    rows = catalog(args.family)
    if args.json:
        print_json({"models": rows, "count": len(rows), "params_convention": "trainable + non-trainable, "
                    "buffers excluded, at the model's default num_classes", "macs_convention": "multiply-"
                    "accumulates of convolutions and linear layers, bias excluded, one sample at default_input"})
        return
    import re

    def short(paper: str) -> str:  # "He et al. 2016, Deep Residual ..." -> "He et al. 2016"
        match = re.match(r"^(.*?\b(?:19|20)\d\d)\b", paper)
        return match.group(1) if match else paper

    out.print(table(
        f"{len(rows)} models ({len(list_models())} registered); MACs per sample at the default input",
        [("name", "left"), ("family", "left"), ("params", "right"), ("MACs", "right"), ("default input", "left"),
         ("min input", "left"), ("torchvision", "left"), ("paper", "left")],
        [[r["name"], r["family"], fmt_int(r["params"]), fmt_macs(r["macs"]), fmt_shape(r["default_input"]),
          fmt_shape(r["min_input"]), r["torchvision"] or "-", short(r["paper"])] for r in rows],
    ))


def _families() -> list[str]:
    from cnnlab.models import list_models, model_info

    return sorted({model_info(n).family for n in list_models()})


def _add_model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=_CLASSES, default=None, help="classes of the output layer")
    p.add_argument("--in-channels", type=_CHANNELS, default=None, help="channels of the input (1 for grayscale)")
    p.add_argument("--weights", default=None, metavar="PATH", help="state_dict file to load (.pt/.pth/.safetensors)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an architecture option, e.g. --set small_input=true --set shortcut=B")


def _source(spec: str, kinds: tuple[str, ...], command: str, args: argparse.Namespace | None = None) -> Any:
    """The network ``spec`` names (see cnnlab.sources), with the architecture flags ``args`` carries."""
    from cnnlab.models.source import parse_options
    from cnnlab.sources import resolve

    return resolve(spec, kinds, num_classes=getattr(args, "num_classes", None),
                   in_channels=getattr(args, "in_channels", None), weights=getattr(args, "weights", None),
                   options=parse_options(getattr(args, "set", None) or []), command=command)


def _input_of(source: Any, given: tuple[int, ...] | None) -> tuple[int, ...]:
    if given is not None:
        return given
    if source.default_input is None:
        raise CnnlabError(f"{source.spec} does not say what input it takes: give --input CxHxW, e.g. 3x224x224")
    return source.default_input


def _cmd_export(args: argparse.Namespace) -> None:
    from cnnlab.console import err, fmt_int, out, print_json
    from cnnlab.export import SUFFIX, check_target, export_model
    from cnnlab.models.inputs import check_input
    from cnnlab.sources import KINDS

    source = _source(args.model, KINDS, "cnnlab export", args)
    size = _input_of(source, args.input)
    model = source.build()
    known = source.default_input[-1] if source.default_input else None
    check_input(model, size, source.name, known_side=known)
    stem = source.name if source.kind != "code" else source.name.rpartition(":")[2]
    target = check_target(args.out or f"{stem}{SUFFIX[args.format]}", args.format)

    def announce() -> None:
        if not args.json:
            err.print(f"exporting {source.label} as {args.format} at input {fmt_shape(size)} ...")

    result = export_model(model, args.format, target, size, rebuild=source.build,
                          metadata={"cnnlab_model": source.name, "input": fmt_shape(size)},
                          announce=announce)
    if args.json:
        print_json({**result.to_dict(), "model": source.name})
    else:
        out.print(f"wrote {result.path} ({fmt_int(result.bytes)} bytes); reloaded and checked: largest "
                  f"difference {result.max_abs_diff:.2g} at output scale {result.output_scale:.2g}")


# --------------------------------------------------------------------------------------
# inspect, compare
# --------------------------------------------------------------------------------------


def _cmd_inspect(args: argparse.Namespace) -> None:
    from cnnlab.analysis import analyze, fold
    from cnnlab.analysis.render import print_report, report_markdown
    from cnnlab.console import print_json
    from cnnlab.sources import KINDS

    source = _source(args.model, KINDS, "cnnlab inspect", args)
    report = analyze(source.name, _input_of(source, args.input) if source.kind != "code" else args.input,
                     batch=args.batch, optimizer=args.optimizer, measure=args.measure, **source.kwargs)
    layers = fold(report, args.depth) if args.depth else report.layers
    if args.json:
        doc = report.to_dict(explain=args.explain)
        if args.depth:
            doc["layers"] = [r.to_dict(args.explain) for r in layers]
        print_json(doc)
    elif args.csv:
        sys.stdout.write(report.to_csv() if not args.depth else _csv_of(report, layers))
    elif args.markdown:
        sys.stdout.write(report_markdown(report, layers))
    else:
        print_report(report, layers, args.explain)


def _csv_of(report: Any, layers: Any) -> str:
    from dataclasses import replace

    return replace(report, layers=list(layers)).to_csv()


def _cmd_compare(args: argparse.Namespace) -> None:
    from cnnlab.analysis import analyze
    from cnnlab.analysis.render import compare_document, compare_rows, human_bytes, markdown_table
    from cnnlab.console import fmt_int, fmt_macs, out, print_json, table
    from cnnlab.sources import KINDS

    sources = [_source(spec, KINDS, "cnnlab compare") for spec in args.models]
    reports = [analyze(s.name, args.input or s.default_input, batch=args.batch, **s.kwargs) for s in sources]
    rows = compare_rows(reports)
    if args.json:
        print_json(compare_document(reports, args.input, args.batch))
        return
    headers = ["model", "params", "MACs", "weighted depth", "receptive field", "activations"]
    cells = [[r["model"], fmt_int(r["params"]), fmt_macs(r["macs"]) + ("" if r["complete"] else " (incomplete)"),
              str(r["weighted_depth"]), fmt_shape(r["receptive_field"] or []) or "?",
              human_bytes(r["activation_bytes"])] for r in rows]
    if args.markdown:
        sys.stdout.write(markdown_table(headers, cells) + "\n")
    else:
        size = fmt_shape(args.input) if args.input else "each model's default input"
        out.print(table(f"at {size}, batch {args.batch}", [(h, "left" if i == 0 else "right")
                                                             for i, h in enumerate(headers)], cells))


# --------------------------------------------------------------------------------------
# train, recipes, eval, predict
# --------------------------------------------------------------------------------------


def _train_config(args: argparse.Namespace) -> Any:
    from cnnlab.train.config import TrainConfig, override
    from cnnlab.train.recipes import DEFAULT_RECIPE, get_recipe

    cfg = get_recipe(args.recipe or DEFAULT_RECIPE)
    changes = {}
    for f in TrainConfig.__dataclass_fields__:
        if f in ("recipe", "source", "model_options"):
            continue
        value = getattr(args, f"cfg_{f}", None)
        if value is not None:
            changes[f] = value
    if args.set:
        changes["model_options"] = {**cfg.model_options, **_options(args.set)}
    return override(cfg, changes).validate()


def _options(pairs: list[str]) -> dict[str, Any]:
    from cnnlab.models.source import parse_options

    return parse_options(pairs)


def _cmd_train(args: argparse.Namespace) -> None:
    from cnnlab.console import err, out, print_json

    if args.resume:
        from cnnlab.train.loop import fit

        given = [k[4:].replace("_", "-") for k, v in vars(args).items() if k.startswith("cfg_") and v is not None]
        if given or args.set or args.recipe or args.show_config or args.overwrite:
            extra = ", ".join(f"--{g}" for g in given) or "--recipe/--set/--show-config/--overwrite"
            raise CnnlabError(f"--resume continues a run with the config it saved: drop {extra}")

        result = fit(None, resume=args.resume, quiet=args.quiet)  # type: ignore[arg-type]
        _report_run(result.to_dict(), args.json)
        return
    cfg = _train_config(args)
    if args.show_config:
        if args.json:
            print_json(cfg.to_dict())
        else:
            out.print(cfg.to_json(), markup=False, highlight=False)
        return
    from cnnlab.train.loop import fit, fit_seeds

    if cfg.seeds > 1:
        summary = fit_seeds(cfg, quiet=args.quiet, overwrite=args.overwrite)
        if args.json:
            print_json(summary)
        else:
            for run in summary["runs"]:
                _report_run(run, False)
            if summary["test_top1_mean"] is not None:
                out.print(f"test accuracy over {cfg.seeds} seeds: {summary['test_top1_mean']:.2%} "
                          f"± {summary['test_top1_std']:.2%} (mean ± sample std)")
        return
    result = fit(cfg, quiet=args.quiet, overwrite=args.overwrite)
    if result.status == "interrupted":
        err.print(f"stopped at step {result.steps}; continue with: cnnlab train --resume {result.run_dir}")
    _report_run(result.to_dict(), args.json)


def _report_run(run: dict[str, Any], as_json: bool) -> None:
    import os

    from cnnlab.console import out, print_json, table

    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 alone reports
    if as_json:
        print_json(run)
        return

    def cell(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = [[str(h["epoch"]), cell(h["train_loss"], ".4f"), cell(h["train_top1"], ".2%"), cell(h["val_loss"], ".4f"),
             cell(h["val_top1"], ".2%"), f"{h['lr']:.3g}", f"{h['seconds']:.1f}"] for h in run["history"]]
    out.print(table(f"run {run['run_dir']} ({run['status']})",
                    [("epoch", "right"), ("train loss", "right"), ("train acc", "right"), ("val loss", "right"),
                     ("val acc", "right"), ("lr", "right"), ("s", "right")], rows))
    validated = bool(run["best_val"]) and run["best_val"]["val_top1"] is not None
    if validated:
        out.print(f"best validation accuracy {run['best_val']['val_top1']:.2%} at epoch {run['best_epoch']}")
    if run["test"]:
        out.print(f"test accuracy {run['test']['top1']:.2%} (top-5 {run['test']['top5']:.2%}) on "
                  f"{run['test']['samples']:,} images, with the "
                  + ("best-on-validation weights" if validated else "final weights (no validation split)"))
    out.print(f"{run['seconds']:.1f} s in all, {run['train_images_per_s']:,.0f} training images/s; "
              f"checkpoints, config and metrics in {run['run_dir']}")


def _cmd_recipes(args: argparse.Namespace) -> None:
    from cnnlab.console import out, print_json, table
    from cnnlab.train.recipes import RECIPES, get_recipe

    if args.name:
        cfg = get_recipe(args.name)
        if args.json:
            print_json(cfg.to_dict())
        else:
            out.print(cfg.to_json(), markup=False, highlight=False)
        return
    if args.json:
        print_json({"recipes": [r.to_dict() for r in RECIPES.values()]})
        return
    rows = []
    for r in RECIPES.values():
        length = f"{r.iterations:,} it" if r.iterations else f"{r.epochs} ep"
        source = r.source.split(":")[0].split(", Sec.")[0]
        source = source if len(source) <= 60 else source[:57] + "..."
        rows.append([r.recipe, r.model, r.dataset, length, str(r.batch_size), f"{r.optimizer} {r.lr:g} {r.schedule}",
                     source])
    out.print(table("recipes (`cnnlab recipes NAME` prints one in full)",
                    [("recipe", "left"), ("model", "left"), ("data", "left"), ("length", "right"),
                     ("batch", "right"), ("optimisation", "left"), ("source", "left")], rows))


def _cmd_eval(args: argparse.Namespace) -> None:
    from cnnlab.console import out, print_json, table
    from cnnlab.sources import checkpoint_of
    from cnnlab.train.inference import evaluate_checkpoint

    checkpoint = checkpoint_of(args.run, "cnnlab eval")
    result = evaluate_checkpoint(checkpoint, args.split, args.data, args.data_root, args.batch_size, args.device)
    if args.json:
        print_json(result)
        return
    out.print(f"{result['model']} on {result['dataset']} {result['split']} ({result['samples']:,} images): "
              f"top-1 {result['top1']:.2%}, top-5 {result['top5']:.2%}, loss {result['loss']:.4f}")
    out.print(table("per class", [("class", "left"), ("accuracy", "right")],
                    [[name, f"{acc:.2%}"] for name, acc in result["per_class"].items()]))
    out.print("confusion matrix (rows: true class, columns: predicted) in --json")


def _cmd_predict(args: argparse.Namespace) -> None:
    from cnnlab.console import out, print_json
    from cnnlab.sources import checkpoint_of
    from cnnlab.train.inference import predict

    results = predict(checkpoint_of(args.checkpoint, "cnnlab predict"), args.images, args.top)
    if args.json:
        print_json({"predictions": results})
        return
    for r in results:
        best = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"])
        out.print(f"{r['image']}: {best}", markup=False)


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, typed from the dataclass, with its comment as help."""
    import typing

    from cnnlab.train.config import FIELD_HELP, TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for name in TrainConfig.__dataclass_fields__:
        if name in ("recipe", "source", "model_options"):
            continue
        flag = "--" + name.replace("_", "-")
        help_text = FIELD_HELP.get(name, "")
        if hints[name] is bool:
            p.add_argument(flag, dest=f"cfg_{name}", action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        else:
            p.add_argument(flag, dest=f"cfg_{name}", default=None, metavar="V", help=help_text)


# --------------------------------------------------------------------------------------
# scratch
# --------------------------------------------------------------------------------------


def _cmd_scratch_explain(args: argparse.Namespace) -> None:
    from cnnlab.console import out, print_json
    from cnnlab.scratch.explain import explain_convolution

    bias = int(args.bias) if float(args.bias).is_integer() else args.bias
    result = explain_convolution(args.input, args.kernel, args.stride, args.padding, bias, args.dilation)
    if args.json:
        print_json(result.to_dict())
    else:
        out.print(result.render(), markup=False, highlight=False)


def _cmd_scratch_train(args: argparse.Namespace) -> None:
    from cnnlab.console import err, out, print_json
    from cnnlab.scratch.train import train_lenet

    def progress(event: dict[str, Any]) -> None:
        if args.quiet:
            return
        kind = event.get("event")
        if kind == "step":
            err.print(f"step {event.get('step')} loss {event.get('loss', 0):.4f} lr {event.get('lr', 0):.4g} "
                      f"{event.get('images_per_s', 0):,.0f} img/s", markup=False, highlight=False)
        elif kind in ("epoch", "eval"):
            shown = {k: v for k, v in event.items() if k != "event" and not isinstance(v, (list, dict))}
            err.print(f"{kind}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in shown.items()), markup=False, highlight=False)

    result = train_lenet(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         limit=args.limit, data=args.data, log_every=args.log_every, progress=progress,
                         save=args.save)
    if args.json:
        print_json(result)
        return
    torch_note = "torch was imported" if "torch" in sys.modules else "torch never imported"
    out.print(f"NumPy LeNet-5 on {args.data}: test accuracy {result['test_accuracy']:.2%} after "
              f"{args.epochs} epoch(s); training {result.get('train_seconds', 0):.1f} s, "
              f"{result.get('total_seconds', 0):.1f} s in all ({torch_note})"
              + (f"; weights in {result['saved']}" if result.get("saved") else ""))


# --------------------------------------------------------------------------------------
# viz, tour
# --------------------------------------------------------------------------------------


def _wrote(path: Any, as_json: bool, **extra: Any) -> None:
    from cnnlab.console import out, print_json

    if as_json:
        print_json({"path": str(path), **extra})
    else:
        out.print(f"wrote {path}", markup=False, highlight=False)


def _cmd_viz(args: argparse.Namespace) -> None:
    from cnnlab import viz

    what = args.viz_command
    if what == "kernel":
        path = viz.draw_kernel(args.image, args.kernel, args.out, args.stride, args.padding, args.padding_mode)
    elif what == "conv-steps":
        path = viz.draw_conv_steps(args.input, args.kernel, args.stride, args.padding, args.out)
    elif what == "filters":
        path = viz.draw_filters(args.model, args.out, args.layer)
    elif what == "features":
        path = viz.draw_features(args.checkpoint, args.image, args.out, args.layers)
    elif what == "gradcam":
        path = viz.draw_gradcam(args.checkpoint, args.image, args.out, args.layer, args.class_index)
    elif what == "rf":
        from cnnlab.sources import KINDS

        source = _source(args.model, KINDS, "cnnlab viz rf")
        size = args.input or source.default_input or (3, 224, 224)
        path = viz.draw_rf(args.model, size, args.out, args.checkpoint, layer=args.layer)
    elif what == "curves":
        path = viz.draw_curves(args.runs, args.out)
    else:  # compare
        path = viz.draw_compare(args.models, args.input, args.out, args.acc or None)
    _wrote(path, args.json)


def _cmd_tour(args: argparse.Namespace) -> None:
    from cnnlab.viz import make_tour

    page = make_tour(args.out, args.lang)
    _wrote(page, args.json, pictures=args.out)


def _cmd_serve(args: argparse.Namespace) -> None:
    from cnnlab.web import serve

    serve(args.host, args.port, args.runs)


# --------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------


def _add_output_flags(p: argparse.ArgumentParser, explain: bool = True) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    if explain:
        p.add_argument("--explain", action="store_true", help="print every formula with the numbers substituted")


def build_parser() -> argparse.ArgumentParser:
    from cnnlab.shapes import PADDING_MODES, POOL_MODES, STACK_GRAMMAR

    parser = _Parser(prog="cnnlab", description="Build, inspect, train, look inside and compare the classic "
                                                "convolutional networks, with every number exact and explained.",
                     epilog="`cnnlab COMMAND --help` describes a command; `cnnlab calc tour` is a good start.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    calc = sub.add_parser("calc", help="exact layer arithmetic: output size, parameters, MACs, receptive field",
                          description="Exact layer arithmetic that explains itself. Shapes are CxHxW "
                                      "(CxL for 1d, CxDxHxW for 3d), without the batch.")
    calc_sub = calc.add_subparsers(dest="calc_command", metavar="WHAT", parser_class=_Parser)
    calc_sub.required = True

    c = calc_sub.add_parser("conv", help="one convolution layer (1d, 2d or 3d from the input shape)")
    c.add_argument("--input", type=_shape, required=True, help="input shape, e.g. 3x227x227")
    c.add_argument("--out-channels", type=int, required=True, help="number of kernels (output channels)")
    c.add_argument("--kernel", type=_hyper, required=True, help="kernel size, e.g. 11 or 3x5")
    c.add_argument("--stride", type=_hyper, default=1, help="stride (default 1)")
    c.add_argument("--padding", type=_padding, default=0, help="padding: integer(s), same or valid (default 0)")
    c.add_argument("--dilation", type=_hyper, default=1, help="dilation (default 1)")
    c.add_argument("--groups", type=int, default=1, help="groups (default 1)")
    c.add_argument("--no-bias", action="store_true", help="no bias terms")
    c.add_argument("--padding-mode", choices=PADDING_MODES, default="zeros", help="what the padding holds")
    _add_output_flags(c)
    c.set_defaults(func=_cmd_calc_conv)

    p = calc_sub.add_parser("pool", help="one pooling layer (max, avg or min; global or adaptive)")
    p.add_argument("--input", type=_shape, required=True, help="input shape, e.g. 96x55x55")
    p.add_argument("--kernel", type=_hyper, help="window size, e.g. 3")
    p.add_argument("--stride", type=_hyper, default=None, help="stride (default: the kernel size)")
    p.add_argument("--padding", type=_hyper, default=0, help="padding (default 0, at most kernel//2)")
    p.add_argument("--dilation", type=_hyper, default=1, help="dilation (max and min pooling only)")
    p.add_argument("--mode", choices=POOL_MODES, default="max", help="max, avg or min (default max)")
    p.add_argument("--ceil", action="store_true", help="round the output size up (ceil_mode)")
    p.add_argument("--global", dest="global_", action="store_true", help="global pooling over the whole map")
    p.add_argument("--adaptive", type=_hyper, default=None, metavar="OUT", help="adaptive pooling to size OUT")
    _add_output_flags(p)
    p.set_defaults(func=_cmd_calc_pool)

    s = calc_sub.add_parser("stack", help="a chain of layers: a table with totals",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Apply layers in order and show every output shape, parameter count, "
                                        "MACs and the cumulative receptive field.\n\n" + STACK_GRAMMAR,
                            epilog='example: cnnlab calc stack --input 1x28x28 "conv 32 k5" "pool k2" '
                                   '"conv 64 k5 p2" "pool k2" flatten "fc 128" "fc 10"')
    s.add_argument("--input", type=_shape, required=True, help="input shape, e.g. 1x28x28")
    s.add_argument("layers", nargs="+", metavar="LAYER", help="layers in the grammar below")
    _add_output_flags(s)
    s.set_defaults(func=_cmd_calc_stack)

    t = calc_sub.add_parser("tour", help="the classic hand calculations, worked by the calculator")
    _add_output_flags(t, explain=False)
    t.set_defaults(func=_cmd_calc_tour)

    m = sub.add_parser("models", help="every registered model with family, size, inputs and paper")
    m.add_argument("--family", default=None, help="only this family (e.g. resnet)")
    _add_output_flags(m, explain=False)
    m.set_defaults(func=_cmd_models)

    e = sub.add_parser("export", help="write a model as ONNX, TorchScript or safetensors and check the file")
    e.add_argument("model", metavar="MODEL_OR_CHECKPOINT", help="a registered model name or a cnnlab checkpoint")
    # cnnlab.export.FORMATS, spelled out so that building the parser does not import torch
    e.add_argument("--format", choices=("onnx", "torchscript", "safetensors"), required=True,
                   help="onnx, torchscript or safetensors")
    e.add_argument("--input", type=_shape, default=None, help="example input CxHxW (default: the model's)")
    e.add_argument("--out", default=None, metavar="PATH", help="file to write (default: MODEL.onnx/.pt/.safetensors)")
    _add_model_flags(e)
    _add_output_flags(e, explain=False)
    e.set_defaults(func=_cmd_export)

    i = sub.add_parser("inspect", help="shapes, parameters, MACs/FLOPs, memory and receptive field of every layer",
                       description="Analyse a model on the meta device: no real compute, any input size. MODEL is a "
                                   "registered name or path/to/file.py:factory (or package.module:name).")
    i.add_argument("model", metavar="MODEL")
    i.add_argument("--input", type=_shape, default=None, help="input CxHxW (default: the model's)")
    i.add_argument("--batch", type=_BATCH, default=1, help="batch size (default 1)")
    i.add_argument("--depth", type=_count(1, example="2"), default=None,
                   help="fold nodes into modules this many levels deep")
    i.add_argument("--optimizer", default="sgd", choices=["sgd", "sgd-nomomentum", "adam", "adamw", "none"],
                   help="optimizer state in the training-memory estimate (default sgd with momentum)")
    i.add_argument("--measure", action="store_true", help="also run one real training step and measure its peak")
    i.add_argument("--num-classes", type=_CLASSES, default=None, help="classes of the output layer")
    i.add_argument("--in-channels", type=_CHANNELS, default=None, help="channels of the input")
    i.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an architecture option")
    fmt = i.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    fmt.add_argument("--csv", action="store_true", help="one CSV row per node")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table")
    i.add_argument("--explain", action="store_true", help="the formula lines of every node")
    i.set_defaults(func=_cmd_inspect)

    cmp_ = sub.add_parser("compare", help="models side by side: parameters, MACs, depth, receptive field, memory")
    cmp_.add_argument("models", nargs="+", metavar="MODEL")
    cmp_.add_argument("--input", type=_shape, default=None, help="input CxHxW for all (default: each model's)")
    cmp_.add_argument("--batch", type=_BATCH, default=1, help="batch size (default 1)")
    cfmt = cmp_.add_mutually_exclusive_group()
    cfmt.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    cfmt.add_argument("--markdown", action="store_true", help="a Markdown table")
    cmp_.set_defaults(func=_cmd_compare)

    tr = sub.add_parser("train", help="train a zoo model on real data with a recipe (default: LeNet-5 on MNIST)",
                        description="Train with a named recipe; every field of the recipe can be overridden. "
                                    "Under torchrun, trains with DistributedDataParallel.")
    tr.add_argument("--recipe", default=None, help="recipe name (default lenet5-mnist; see `cnnlab recipes`)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model option")
    tr.add_argument("--resume", default=None, metavar="RUN",
                    help="continue a run folder (or a checkpoint in it) where it stopped, writing into that folder")
    tr.add_argument("--overwrite", action="store_true",
                    help="replace the run already in --out/--name (without it, a taken --name is refused)")
    tr.add_argument("--show-config", action="store_true", help="print the resolved config and stop")
    tr.add_argument("--quiet", action="store_true", help="no progress on stderr")
    tr.add_argument("--json", action="store_true", help="print the final result as one JSON document on stdout")
    _add_train_flags(tr)
    tr.set_defaults(func=_cmd_train)

    rc = sub.add_parser("recipes", help="the named training recipes and their sources")
    rc.add_argument("name", nargs="?", default=None, help="print this recipe in full")
    rc.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    rc.set_defaults(func=_cmd_recipes)

    ev = sub.add_parser("eval", help="top-1, top-5, per-class accuracy and confusion matrix of a run or checkpoint")
    ev.add_argument("run", metavar="RUN_OR_CHECKPOINT")
    ev.add_argument("--split", default="test", choices=["test", "val", "train"], help="which split (default test)")
    ev.add_argument("--data", default=None, help="another dataset name with the same classes")
    ev.add_argument("--data-root", default=None, help="folder to read the data from")
    ev.add_argument("--batch-size", type=_BATCH, default=1000)
    ev.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ev.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    ev.set_defaults(func=_cmd_eval)

    pr = sub.add_parser("predict", help="the most likely classes of image files")
    pr.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT")
    pr.add_argument("images", nargs="+", metavar="IMAGE")
    pr.add_argument("--top", type=_count(1, example="5"), default=5, help="how many classes (default 5)")
    pr.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    pr.set_defaults(func=_cmd_predict)

    sc = sub.add_parser("scratch", help="the NumPy reference engine: convolution as inner products, LeNet-5 "
                                         "trained without torch")
    sc_sub = sc.add_subparsers(dest="scratch_command", metavar="WHAT", parser_class=_Parser)
    sc_sub.required = True
    se = sc_sub.add_parser("explain", help="every kernel placement of a small convolution, written out",
                           description="Rows are separated by ';' and values by ',' or spaces, e.g. "
                                       "--input '1,2,3;4,5,6;7,8,9' --kernel '1,0;0,-1'.")
    se.add_argument("--input", default=None, help="the input grid (default: the classic 5x5 example)")
    se.add_argument("--kernel", default=None, help="the kernel grid (default: the classic 3x3 example)")
    se.add_argument("--stride", type=_hyper, default=1)
    se.add_argument("--padding", type=_hyper, default=0)
    se.add_argument("--dilation", type=_hyper, default=1)
    se.add_argument("--bias", type=_finite, default=0)
    se.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    se.set_defaults(func=_cmd_scratch_explain)
    st = sc_sub.add_parser("train", help="train LeNet-5 on MNIST with NumPy alone and report test accuracy")
    st.add_argument("--data", default="mnist", choices=["mnist", "mnist-5k"], help="mnist (60k/10k) or mnist-5k")
    st.add_argument("--epochs", type=_count(1, 1000, "2"), default=2)
    st.add_argument("--batch-size", type=_BATCH, default=64)
    st.add_argument("--lr", type=_positive, default=0.05)
    st.add_argument("--seed", type=_count(0, 2**63 - 1, "0"), default=0)
    st.add_argument("--limit", type=_count(1, example="1000"), default=None, help="train on this many images only")
    st.add_argument("--log-every", type=_count(1, example="100"), default=100)
    st.add_argument("--save", default=None, metavar="PATH", help="write the weights as .npz (torch names)")
    st.add_argument("--quiet", action="store_true")
    st.add_argument("--json", action="store_true", help="print one JSON document on stdout and nothing else")
    st.set_defaults(func=_cmd_scratch_train)

    vz = sub.add_parser("viz", help="pictures: kernels, convolution steps, filters, feature maps, Grad-CAM, "
                                    "receptive fields, curves, comparisons (PNG)")
    vz_sub = vz.add_subparsers(dest="viz_command", metavar="WHAT", parser_class=_Parser)
    vz_sub.required = True

    def picture(name: str, help_text: str, default_out: str) -> argparse.ArgumentParser:
        p = vz_sub.add_parser(name, help=help_text)
        p.add_argument("--out", default=default_out, metavar="PATH", help=f"PNG to write (default {default_out})")
        p.add_argument("--json", action="store_true", help="print the written path as JSON on stdout")
        p.set_defaults(func=_cmd_viz)
        return p

    k = picture("kernel", "a classic kernel filtering a photo: input, kernel with its numbers, output", "kernel.png")
    k.add_argument("image", nargs="?", default=None, help="an image file (default: a sample photo)")
    k.add_argument("--kernel", default="box3",
                   help="box3, gaussian5, sobel-x, sobel-y, laplacian, sharpen, or rows like '1,0,-1;2,0,-2;1,0,-1'")
    k.add_argument("--stride", type=_count(1, example="1"), default=1)
    k.add_argument("--padding", type=_count(0, MAX_SIDE, "1"), default=0)
    k.add_argument("--padding-mode", default="zeros", choices=["zeros", "reflect", "replicate", "circular"])
    cs = picture("conv-steps", "every placement of a small kernel, with the inner product written out",
                 "conv-steps.png")
    cs.add_argument("--input", default=None, help="rows like '1,2,3;4,5,6;7,8,9' (default: the 5x5 example)")
    cs.add_argument("--kernel", default=None, help="rows like '1,0;0,1' (default: the 3x3 example)")
    cs.add_argument("--stride", type=_count(1, example="1"), default=1)
    cs.add_argument("--padding", type=_count(0, example="1"), default=0)
    fl = picture("filters", "a layer's kernels as a grid (the first layer by default)", "filters.png")
    fl.add_argument("model", metavar="MODEL_OR_CHECKPOINT")
    fl.add_argument("--layer", default=None, help="a convolution's name (default: the first)")
    fe = picture("features", "activation maps of a shallow, a middle and a deep layer", "features.png")
    fe.add_argument("checkpoint", metavar="CHECKPOINT_OR_MODEL")
    fe.add_argument("image", nargs="?", default=None, help="an image file (default: a sample photo)")
    fe.add_argument("--layers", default=None, help="comma-separated layer names (default: chosen per model)")
    gc = picture("gradcam", "Grad-CAM heat map of a class over the image", "gradcam.png")
    gc.add_argument("checkpoint", metavar="CHECKPOINT_OR_MODEL")
    gc.add_argument("image", nargs="?", default=None, help="an image file (default: a sample photo)")
    gc.add_argument("--layer", default=None, help="the layer to explain (default: the last convolutional block)")
    gc.add_argument("--class", dest="class_index", type=_count(0, example="3"), default=None,
                    help="class index (default: predicted)")
    rfp = picture("rf", "theoretical receptive field per layer and the effective one as a heat map", "rf.png")
    rfp.add_argument("model", metavar="MODEL")
    rfp.add_argument("--input", type=_shape, default=None, help="input CxHxW (default: the model's)")
    rfp.add_argument("--checkpoint", default=None, help="also the effective field of these trained weights")
    rfp.add_argument("--layer", default=None, help="measure this layer's central unit instead of the last map's")
    cu = picture("curves", "loss and accuracy of runs against epochs", "curves.png")
    cu.add_argument("runs", nargs="+", metavar="RUN")
    co = picture("compare", "parameters against MACs (and accuracy), one point per model", "compare.png")
    co.add_argument("models", nargs="+", metavar="MODEL")
    co.add_argument("--input", type=_shape, default=(3, 224, 224), help="input CxHxW (default 3x224x224)")
    co.add_argument("--acc", nargs="*", default=None, metavar="RUN", help="run folders whose test accuracy to plot")

    sv = sub.add_parser("serve", help="the explorer: a local web page for models, convolution, runs and pictures",
                        description="Start the explorer, a web page on this machine: pick a model and input "
                                    "size and see every layer's shape, parameters, MACs and receptive field; "
                                    "step a kernel across an input; look inside a trained network; follow runs "
                                    "while they train; compare models. Ctrl-C stops it.")
    sv.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                         "network)")
    sv.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    sv.add_argument("--runs", default="runs", metavar="DIR",
                    help="runs folder whose runs and checkpoints the page shows (default ./runs); nothing "
                         "outside it is opened")
    sv.set_defaults(func=_cmd_serve)

    to = sub.add_parser("tour", help="write the guided tour's pictures and page to a folder")
    to.add_argument("--out", default="tour", metavar="DIR", help="folder to write (default ./tour)")
    to.add_argument("--lang", default="en", choices=["en", "ko"], help="page language: en or ko")
    to.add_argument("--json", action="store_true", help="print the written page as JSON on stdout")
    to.set_defaults(func=_cmd_tour)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], Any] = args.func
    try:
        func(args)
    except CnnlabError as exc:
        return _fail(str(exc))
    except BrokenPipeError:  # the reader of stdout went away (`cnnlab models | head`)
        return 0
    except OSError as exc:  # a file or folder the user named cannot be read or written
        return _fail(_os_error(exc))
    except MemoryError:
        return _fail(_out_of_memory(""))
    except RuntimeError as exc:
        if not _is_out_of_memory(exc):
            raise
        return _fail(_out_of_memory(str(exc)))
    except KeyboardInterrupt:
        sys.stderr.write("cnnlab: interrupted\n")
        return 130
    return 0


def _fail(message: str) -> int:
    line = " ".join(message.split())
    sys.stderr.write(f"cnnlab: error: {line}\n")
    return EXIT_USAGE


def _os_error(exc: OSError) -> str:
    import errno

    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device{where}: free space or write elsewhere"
    if exc.errno == errno.EDQUOT:
        return f"disk quota exceeded{where}: free space or write elsewhere"
    if isinstance(exc, PermissionError):
        return f"permission denied{where}: check the path's permissions, or use another path"
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}: write elsewhere"
    if isinstance(exc, FileExistsError):
        return f"something already exists there{where}: choose another path"
    if isinstance(exc, NotADirectoryError):
        return f"a part of the path is a file, not a folder{where}: choose another path"
    if isinstance(exc, IsADirectoryError):
        return f"a folder, not a file{where}: give the path of a file"
    if isinstance(exc, FileNotFoundError):
        return f"no such file or folder{where}: check the path"
    return f"{exc.strerror or exc}{where}: check the path and its permissions"


def _is_out_of_memory(exc: RuntimeError) -> bool:
    text = str(exc).lower()
    return (type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text
            or "can't allocate memory" in text or "cannot allocate memory" in text)


def _out_of_memory(detail: str) -> str:
    import re

    what = "GPU memory" if "cuda" in detail.lower() else "memory"
    wanted = re.search(r"tried to allocate (\d+) bytes", detail, re.IGNORECASE)
    if wanted:
        from cnnlab.limits import human_bytes

        size = f" (one allocation of {human_bytes(int(wanted.group(1)))})"
    else:
        given = re.search(r"tried to allocate ([\d.]+ ?[KMGTP]i?B)", detail, re.IGNORECASE)
        size = f" (one allocation of {given.group(1)})" if given else ""
    return f"out of {what}{size}: use a smaller input, batch or model"


if __name__ == "__main__":
    raise SystemExit(main())
