"""``cnnlab models``, ``inspect``, ``compare`` and ``export``: the zoo and what a network costs."""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from cnnlab.analysis import fold
from cnnlab.analysis.inputs import parse_inputs
from cnnlab.analysis.render import human_bytes, markdown_table, print_report
from cnnlab.catalog import catalog
from cnnlab.cli.args import (
    BATCH,
    CHANNELS,
    CLASSES,
    add_json_flag,
    add_model_flags,
    add_output_flags,
    count,
    input_of,
    network_options,
    shape,
    source,
)
from cnnlab.cli.present import emit, show_table
from cnnlab.console import err, fmt_count, fmt_int, fmt_macs, fmt_shape, out, print_json
from cnnlab.errors import CnnlabError
from cnnlab.export import FORMATS, SUFFIX, check_target, export_model
from cnnlab.lab import OPTIMIZERS, Lab
from cnnlab.models import list_models, model_info
from cnnlab.models.inputs import check_input
from cnnlab.sources import KINDS


def short(paper: str) -> str:
    """"He et al. 2016, Deep Residual ..." -> "He et al. 2016"."""
    match = re.match(r"^(.*?\b(?:19|20)\d\d)\b", paper)
    return match.group(1) if match else paper


def _models(args: argparse.Namespace) -> None:
    families = sorted({model_info(n).family for n in list_models()})
    if args.family is not None and args.family not in families:
        raise CnnlabError(f"unknown family {args.family!r}: choose one of {', '.join(families)}")
    rows = catalog(args.family)
    emit({"models": rows, "count": len(rows), "params_convention": "trainable + non-trainable, "
          "buffers excluded, at the model's default num_classes", "macs_convention": "multiply-"
          "accumulates of convolutions and linear layers, bias excluded, one sample at default_input"},
         args.json, _print_models)


def _print_models(doc: dict[str, Any]) -> None:
    show_table(
        f"{doc['count']} models ({len(list_models())} registered); MACs per sample at the default input",
        [("name", "left"), ("family", "left"), ("params", "right"), ("MACs", "right"), ("default input", "left"),
         ("min input", "left"), ("torchvision", "left"), ("paper", "left")],
        [[r["name"], r["family"], fmt_int(r["params"]), fmt_macs(r["macs"]), fmt_shape(r["default_input"]),
          fmt_shape(r["min_input"]), r["torchvision"] or "-", short(r["paper"])] for r in doc["models"]],
    )


def _export(args: argparse.Namespace) -> None:
    src = source(args.model, KINDS, "cnnlab export", args)
    size = input_of(src, args.input)
    model = src.build(size)
    known = src.default_input[-1] if src.default_input else None
    if len(size) == 3:  # an image; other inputs (video clips: CxTxHxW) are checked by running the model
        check_input(model, size, src.name, known_side=known)
    stem = src.name if src.kind != "code" else src.name.rpartition(":")[2]
    target = check_target(args.out or f"{stem}{SUFFIX[args.format]}", args.format)

    def announce() -> None:
        if not args.json:
            err.print(f"exporting {src.label} as {args.format} at input {fmt_shape(size)} ...")

    result = export_model(model, args.format, target, size, rebuild=lambda: src.build(size),
                          metadata={"cnnlab_model": src.name, "input": fmt_shape(size)},
                          announce=announce)
    if args.json:
        print_json({**result.to_dict(), "model": src.name})
    else:
        out.print(f"wrote {result.path} ({fmt_int(result.bytes)} bytes); reloaded and checked: largest "
                  f"difference {result.max_abs_diff:.2g} at output scale {result.output_scale:.2g}")


def _inspect(args: argparse.Namespace) -> None:
    lab = Lab()
    question = {"model": args.model, "input": args.input, "batch": args.batch, "optimizer": args.optimizer,
                "measure": args.measure, **network_options(args)}
    if args.json:
        print_json(lab.analyze(depth=args.depth, **question))
    elif args.csv or args.markdown:
        sys.stdout.write(lab.analyze_table("csv" if args.csv else "md", args.depth, **question)[0])
    else:
        report = lab.report(**question)
        print_report(report, fold(report, args.depth) if args.depth else report.layers, args.explain)


def _compare(args: argparse.Namespace) -> None:
    doc = Lab().compare(args.models, args.input, args.batch)
    if args.json:
        print_json(doc)
        return
    headers = ["model", "params", "MACs", "weighted depth", "receptive field", "activations"]
    cells = [[r["model"], fmt_int(r["params"]) + (f" (+{r['params_outside_graph']:,} training-only)"
                                                  if r["params_outside_graph"] else ""), fmt_macs(r["macs"]),
              fmt_count(r["weighted_depth"]), fmt_shape(r["receptive_field"] or []) or "unknown",
              human_bytes(r["activation_bytes"])] for r in doc["rows"]]
    if args.markdown:
        sys.stdout.write(markdown_table(headers, cells) + "\n")
    else:
        size = fmt_shape(args.input) if args.input else "each model's default input"
        show_table(f"at {size}, batch {args.batch}", [(h, "left" if i == 0 else "right")
                                                     for i, h in enumerate(headers)], cells)


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", default=None, help="only this family (e.g. resnet)")
    add_output_flags(p, explain=False)
    p.set_defaults(func=_models)


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT", help="a registered model name or a cnnlab checkpoint")
    p.add_argument("--format", choices=FORMATS, required=True, help="onnx, torchscript or safetensors")
    p.add_argument("--input", type=shape, default=None, help="example input CxHxW, or CxTxHxW for a video network (default: the model's)")
    p.add_argument("--out", default=None, metavar="PATH", help="file to write (default: MODEL.onnx/.pt/.safetensors)")
    add_model_flags(p)
    add_output_flags(p, explain=False)
    p.set_defaults(func=_export)


def _input_spec(text: str) -> str:
    """An argparse type: one input in the grammar of cnnlab.analysis.inputs, checked, kept as written."""
    try:
        parse_inputs(text)
    except CnnlabError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input", type=_input_spec, action="append", default=None, metavar="INPUT",
                   help="input without the batch, CxHxW (default: the model's); for other models "
                        "[NAME=]DIMS[:DTYPE], e.g. 128:int64 or mask=224x224:bool, once per input")
    p.add_argument("--batch", type=BATCH, default=1, help="batch size (default 1)")
    p.add_argument("--depth", type=count(1, example="2"), default=None,
                   help="fold nodes into modules this many levels deep")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS,
                   help="optimizer state in the training-memory estimate (default sgd with momentum)")
    p.add_argument("--measure", action="store_true", help="also run one real training step and measure its peak")
    p.add_argument("--num-classes", type=CLASSES, default=None, help="classes of the output layer")
    p.add_argument("--in-channels", type=CHANNELS, default=None, help="channels of the input")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an architecture option")
    fmt = p.add_mutually_exclusive_group()
    add_json_flag(fmt)
    fmt.add_argument("--csv", action="store_true", help="one CSV row per node")
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table")
    p.add_argument("--explain", action="store_true", help="the formula lines of every node")
    p.set_defaults(func=_inspect)


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--input", type=shape, default=None, help="input CxHxW for all (default: each model's)")
    p.add_argument("--batch", type=BATCH, default=1, help="batch size (default 1)")
    fmt = p.add_mutually_exclusive_group()
    add_json_flag(fmt)
    fmt.add_argument("--markdown", action="store_true", help="a Markdown table")
    p.set_defaults(func=_compare)


_ARGS = {"models": _models_args, "export": _export_args, "inspect": _inspect_args, "compare": _compare_args}


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cnnlab models``, ``export``, ``inspect`` or ``compare``."""
    _ARGS[name](parser)
