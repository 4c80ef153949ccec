"""``cnnlab scratch``: the NumPy reference engine. Nothing here imports torch (``scratch train`` says so)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cnnlab.cli.args import BATCH, Parser, add_json_flag, count, finite, hyper, positive
from cnnlab.cli.present import emit, plain
from cnnlab.console import err, out, print_json
from cnnlab.lab import Lab
from cnnlab.scratch.explain import explain_convolution
from cnnlab.scratch.train import train_lenet


def _explain(args: argparse.Namespace) -> None:
    if args.json:
        print_json(Lab().conv(args.input, args.kernel, args.stride, args.padding, args.dilation, args.bias))
        return
    bias = int(args.bias) if float(args.bias).is_integer() else args.bias
    plain(explain_convolution(args.input, args.kernel, args.stride, args.padding, bias, args.dilation).render())


def _train(args: argparse.Namespace) -> None:
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
    emit(result, args.json, lambda _: _print_trained(result, args))


def _print_trained(result: dict[str, Any], args: argparse.Namespace) -> None:
    torch_note = "torch was imported" if "torch" in sys.modules else "torch never imported"
    out.print(f"NumPy LeNet-5 on {args.data}: test accuracy {result['test_accuracy']:.2%} after "
              f"{args.epochs} epoch(s); training {result.get('train_seconds', 0):.1f} s, "
              f"{result.get('total_seconds', 0):.1f} s in all ({torch_note})"
              + (f"; weights in {result['saved']}" if result.get("saved") else ""))


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cnnlab scratch`` and its two commands."""
    sc_sub = parser.add_subparsers(dest="scratch_command", metavar="WHAT", parser_class=Parser)
    sc_sub.required = True
    se = sc_sub.add_parser("explain", help="every kernel placement of a small convolution, written out",
                           description="Rows are separated by ';' and values by ',' or spaces, e.g. "
                                       "--input '1,2,3;4,5,6;7,8,9' --kernel '1,0;0,-1'.")
    se.add_argument("--input", default=None, help="the input grid (default: the classic 5x5 example)")
    se.add_argument("--kernel", default=None, help="the kernel grid (default: the classic 3x3 example)")
    se.add_argument("--stride", type=hyper, default=1)
    se.add_argument("--padding", type=hyper, default=0)
    se.add_argument("--dilation", type=hyper, default=1)
    se.add_argument("--bias", type=finite, default=0)
    add_json_flag(se)
    se.set_defaults(func=_explain)
    st = sc_sub.add_parser("train", help="train LeNet-5 on MNIST with NumPy alone and report test accuracy")
    st.add_argument("--data", default="mnist", choices=["mnist", "mnist-5k"], help="mnist (60k/10k) or mnist-5k")
    st.add_argument("--epochs", type=count(1, 1000, "2"), default=2)
    st.add_argument("--batch-size", type=BATCH, default=64)
    st.add_argument("--lr", type=positive, default=0.05)
    st.add_argument("--seed", type=count(0, 2**63 - 1, "0"), default=0)
    st.add_argument("--limit", type=count(1, example="1000"), default=None, help="train on this many images only")
    st.add_argument("--log-every", type=count(1, example="100"), default=100)
    st.add_argument("--save", default=None, metavar="PATH", help="write the weights as .npz (torch names)")
    st.add_argument("--quiet", action="store_true")
    add_json_flag(st)
    st.set_defaults(func=_train)
