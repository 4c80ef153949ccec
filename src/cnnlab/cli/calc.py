"""``cnnlab calc``: exact layer arithmetic. It never imports torch (start-up stays fast)."""

from __future__ import annotations

import argparse

from cnnlab import shapes
from cnnlab.cli.args import Parser, add_output_flags, hyper, padding, shape
from cnnlab.cli.present import emit, plain, print_layer
from cnnlab.console import print_json, print_stack
from cnnlab.errors import CnnlabError
from cnnlab.lab import Lab, layer_document
from cnnlab.shapes import PADDING_MODES, POOL_MODES, STACK_GRAMMAR
from cnnlab.tour import LANGS, calculator_tour, print_calculator_tour


def _conv(args: argparse.Namespace) -> None:
    result = shapes.conv(args.input, args.out_channels, args.kernel, args.stride, args.padding, args.dilation,
                         args.groups, not args.no_bias, args.padding_mode)
    _emit_layer(result, args)


def _pool(args: argparse.Namespace) -> None:
    if args.values is not None:
        _pool_values(args)
        return
    if args.input is None:
        raise CnnlabError("pooling needs --input CxHxW (a shape), or --values 'ROWS' (a grid to pool, e.g. "
                          "'1,3;5,6')")
    if args.mode == "all":
        raise CnnlabError("--mode all pools values with the three modes side by side: give --values 'ROWS', or "
                          "one of max, avg, min")
    if args.global_:
        result = shapes.global_pool(args.input, args.mode)
    elif args.adaptive is not None:
        result = shapes.adaptive_pool(args.input, args.adaptive, args.mode)
    else:
        if args.kernel is None:
            raise CnnlabError("pooling needs --kernel (or --global, or --adaptive OUT)")
        result = shapes.pool(args.input, args.kernel, args.stride, args.padding, args.dilation, args.ceil, args.mode)
    _emit_layer(result, args)


def _pool_values(args: argparse.Namespace) -> None:
    for flag, given in (("--global", args.global_), ("--adaptive", args.adaptive is not None),
                        ("--ceil", args.ceil)):
        if given:
            raise CnnlabError(f"{flag} works on shapes only: drop it to pool --values, or give --input without "
                              "--values")
    if args.kernel is None:
        raise CnnlabError("pooling --values needs --kernel, e.g. --kernel 2")
    question = {"values": args.values, "kernel": args.kernel, "stride": args.stride, "padding": args.padding,
                "dilation": args.dilation, "mode": args.mode, "input": args.input}
    if args.json:
        print_json(Lab().pool(**question))
        return
    from cnnlab.scratch.explain import explain_pooling  # NumPy: loaded only when values are pooled

    plain(explain_pooling(args.values, args.kernel, args.stride, args.padding, args.dilation, args.mode,
                          args.input).render(args.explain))


def _emit_layer(result: shapes.LayerResult, args: argparse.Namespace) -> None:
    emit(layer_document(result), args.json, lambda _: print_layer(result, args.explain))


def _stack(args: argparse.Namespace) -> None:
    if args.json:
        print_json(Lab().stack(args.input, args.layers))
    else:
        print_stack(shapes.stack(args.input, args.layers), args.explain)


def _tour(args: argparse.Namespace) -> None:
    emit(calculator_tour(args.lang), args.json, lambda _: print_calculator_tour(args.lang))


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cnnlab calc`` and its calculations."""
    calc_sub = parser.add_subparsers(dest="calc_command", metavar="WHAT", parser_class=Parser)
    calc_sub.required = True

    c = calc_sub.add_parser("conv", help="one convolution layer (1d, 2d or 3d from the input shape)")
    c.add_argument("--input", type=shape, required=True, help="input shape, e.g. 3x227x227")
    c.add_argument("--out-channels", type=int, required=True, help="number of kernels (output channels)")
    c.add_argument("--kernel", type=hyper, required=True, help="kernel size, e.g. 11 or 3x5")
    c.add_argument("--stride", type=hyper, default=1, help="stride (default 1)")
    c.add_argument("--padding", type=padding, default=0, help="padding: integer(s), same or valid (default 0)")
    c.add_argument("--dilation", type=hyper, default=1, help="dilation (default 1)")
    c.add_argument("--groups", type=int, default=1, help="groups (default 1)")
    c.add_argument("--no-bias", action="store_true", help="no bias terms")
    c.add_argument("--padding-mode", choices=PADDING_MODES, default="zeros", help="what the padding holds")
    add_output_flags(c)
    c.set_defaults(func=_conv)

    p = calc_sub.add_parser("pool", help="one pooling layer (max, avg or min; global or adaptive), or the pooled "
                                         "values of your own grid",
                            description="The output shape of a pooling layer (--input), or the pooled values of a "
                                        "small grid (--values: rows separated by ';', values by ',' or spaces, e.g. "
                                        "--values '1,3,2,4;5,6,1,2;7,2,3,1;0,1,4,8' --kernel 2 --mode all "
                                        "--explain).")
    p.add_argument("--input", type=shape, default=None, help="input shape, e.g. 96x55x55 (with --values: "
                                                             "optional, 1xHxW of the grid)")
    p.add_argument("--values", default=None, metavar="ROWS",
                   help="a grid to pool, e.g. '1,3,2,4;5,6,1,2;7,2,3,1;0,1,4,8': prints the pooled values")
    p.add_argument("--kernel", type=hyper, help="window size, e.g. 3")
    p.add_argument("--stride", type=hyper, default=None, help="stride (default: the kernel size)")
    p.add_argument("--padding", type=hyper, default=0, help="padding (default 0, at most kernel//2)")
    p.add_argument("--dilation", type=hyper, default=1, help="dilation (max and min pooling only)")
    p.add_argument("--mode", choices=(*POOL_MODES, "all"), default="max",
                   help="max, avg or min (default max); all: the three side by side (with --values)")
    p.add_argument("--ceil", action="store_true", help="round the output size up (ceil_mode)")
    p.add_argument("--global", dest="global_", action="store_true", help="global pooling over the whole map")
    p.add_argument("--adaptive", type=hyper, default=None, metavar="OUT", help="adaptive pooling to size OUT")
    add_output_flags(p)
    p.set_defaults(func=_pool)

    s = calc_sub.add_parser("stack", help="a chain of layers: a table with totals",
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Apply layers in order and show every output shape, parameter count, "
                                        "MACs and the cumulative receptive field.\n\n" + STACK_GRAMMAR,
                            epilog='example: cnnlab calc stack --input 1x28x28 "conv 32 k5" "pool k2" '
                                   '"conv 64 k5 p2" "pool k2" flatten "fc 128" "fc 10"')
    s.add_argument("--input", type=shape, required=True, help="input shape, e.g. 1x28x28")
    s.add_argument("layers", nargs="+", metavar="LAYER", help="layers in the grammar below")
    add_output_flags(s)
    s.set_defaults(func=_stack)

    t = calc_sub.add_parser("tour", help="the classic hand calculations, worked by the calculator")
    t.add_argument("--lang", choices=LANGS, default="en", help="en (default) or ko: the tour in Korean")
    add_output_flags(t, explain=False)
    t.set_defaults(func=_tour)
