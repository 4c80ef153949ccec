"""``cnnlab calc``: exact layer arithmetic. It never imports torch (start-up stays fast)."""

from __future__ import annotations

import argparse

from cnnlab import shapes
from cnnlab.cli.args import Parser, add_output_flags, hyper, padding, shape
from cnnlab.cli.present import emit, print_layer
from cnnlab.console import print_json, print_stack
from cnnlab.errors import CnnlabError
from cnnlab.lab import Lab, layer_document
from cnnlab.shapes import PADDING_MODES, POOL_MODES, STACK_GRAMMAR
from cnnlab.tour import calculator_tour, print_calculator_tour


def _conv(args: argparse.Namespace) -> None:
    result = shapes.conv(args.input, args.out_channels, args.kernel, args.stride, args.padding, args.dilation,
                         args.groups, not args.no_bias, args.padding_mode)
    _emit_layer(result, args)


def _pool(args: argparse.Namespace) -> None:
    if args.global_:
        result = shapes.global_pool(args.input, args.mode)
    elif args.adaptive is not None:
        result = shapes.adaptive_pool(args.input, args.adaptive, args.mode)
    else:
        if args.kernel is None:
            raise CnnlabError("pooling needs --kernel (or --global, or --adaptive OUT)")
        result = shapes.pool(args.input, args.kernel, args.stride, args.padding, args.dilation, args.ceil, args.mode)
    _emit_layer(result, args)


def _emit_layer(result: shapes.LayerResult, args: argparse.Namespace) -> None:
    emit(layer_document(result), args.json, lambda _: print_layer(result, args.explain))


def _stack(args: argparse.Namespace) -> None:
    if args.json:
        print_json(Lab().stack(args.input, args.layers))
    else:
        print_stack(shapes.stack(args.input, args.layers), args.explain)


def _tour(args: argparse.Namespace) -> None:
    emit(calculator_tour(), args.json, lambda _: print_calculator_tour())


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

    p = calc_sub.add_parser("pool", help="one pooling layer (max, avg or min; global or adaptive)")
    p.add_argument("--input", type=shape, required=True, help="input shape, e.g. 96x55x55")
    p.add_argument("--kernel", type=hyper, help="window size, e.g. 3")
    p.add_argument("--stride", type=hyper, default=None, help="stride (default: the kernel size)")
    p.add_argument("--padding", type=hyper, default=0, help="padding (default 0, at most kernel//2)")
    p.add_argument("--dilation", type=hyper, default=1, help="dilation (max and min pooling only)")
    p.add_argument("--mode", choices=POOL_MODES, default="max", help="max, avg or min (default max)")
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
    add_output_flags(t, explain=False)
    t.set_defaults(func=_tour)
