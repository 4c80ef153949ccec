"""How the commands print what they computed: one JSON document with ``--json``, else text for a person."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnnlab.console import fmt_int, fmt_shape, out, print_json, table


def emit(doc: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """``doc`` as JSON on stdout, or ``render(doc)``."""
    if as_json:
        print_json(doc)
    else:
        render(doc)


def plain(text: str) -> None:
    """Text on stdout as it is: no markup, no highlighting."""
    out.print(text, markup=False, highlight=False)


def show_table(title: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[str]]) -> None:
    """A table on stdout; ``columns`` holds (header, justify) pairs."""
    out.print(table(title, columns, rows))


def wrote(path: Any, as_json: bool, **extra: Any) -> None:
    """The path a command wrote (with ``extra`` in the JSON document)."""
    emit({"path": str(path), **extra}, as_json, lambda _: plain(f"wrote {path}"))


def print_layer(result: Any, explain: bool) -> None:
    """One layer of the calculator: shapes, parameters, MACs, receptive-field step."""
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
        for line in result.lines[1:]:  # the first is the headline printed above
            out.print(f"  {line}", markup=False)
    for note in result.notes:
        out.print(f"  {note}", markup=False)


def report_run(run: dict[str, Any], as_json: bool) -> None:
    """A finished training run: its epochs as a table, then the best and test accuracy."""
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 alone reports
    emit(run, as_json, _print_run)


def _print_run(run: dict[str, Any]) -> None:
    def cell(value: float | None, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    rows = [[str(h["epoch"]), cell(h["train_loss"], ".4f"), cell(h["train_top1"], ".2%"), cell(h["val_loss"], ".4f"),
             cell(h["val_top1"], ".2%"), f"{h['lr']:.3g}", f"{h['seconds']:.1f}"] for h in run["history"]]
    show_table(f"run {run['run_dir']} ({run['status']})",
               [("epoch", "right"), ("train loss", "right"), ("train acc", "right"), ("val loss", "right"),
                ("val acc", "right"), ("lr", "right"), ("s", "right")], rows)
    validated = bool(run["best_val"]) and run["best_val"]["val_top1"] is not None
    if validated:
        out.print(f"best validation accuracy {run['best_val']['val_top1']:.2%} at epoch {run['best_epoch']}")
    if run["test"]:
        out.print(f"test accuracy {run['test']['top1']:.2%} (top-5 {run['test']['top5']:.2%}) on "
                  f"{run['test']['samples']:,} images, with the "
                  + ("best-on-validation weights" if validated else "final weights (no validation split)"))
    out.print(f"{run['seconds']:.1f} s in all, {run['train_images_per_s']:,.0f} training images/s; "
              f"checkpoints, config and metrics in {run['run_dir']}")
    if run["status"] == "finished":
        _print_next(Path(run["run_dir"]))


def command_name() -> str:
    """``cnnlab`` as the user can type it again: the bare name when the shell finds this one, else its path."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if invoked is None or invoked.name != "cnnlab":
        return "cnnlab"
    found = shutil.which("cnnlab")
    if found and Path(found).resolve() == invoked.resolve():
        return "cnnlab"
    return os.path.relpath(invoked) if not invoked.is_absolute() else str(invoked)


def _print_next(run_dir: Path) -> None:
    """The three things to look at after a run: its curves, what its layers see, and the explorer."""
    cnnlab = command_name()
    runs = run_dir.parent
    serve = f"{cnnlab} serve" + ("" if runs.resolve() == Path("runs").resolve() else f" --runs {runs}")
    lines = [(f"{cnnlab} viz curves {run_dir}", "loss and accuracy per epoch, in curves.png"),
             (f"{cnnlab} viz features {run_dir}", "what its layers see in a test image, in features.png"),
             (serve, "the explorer in a browser, with this run in its runs list")]
    width = max(len(c) for c, _ in lines)
    out.print("next:", markup=False)
    for command, what in lines:
        out.print(f"  {command.ljust(width)}  # {what}", markup=False)
    if cnnlab != "cnnlab":
        out.print(f"  (or `source {Path(cnnlab).parent}/activate` once, then type `cnnlab ...`)", markup=False)
