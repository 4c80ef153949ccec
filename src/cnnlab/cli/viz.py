"""``cnnlab viz``: pictures written as PNG files, one handler per picture."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from cnnlab import viz
from cnnlab.cli.args import Parser, add_json_flag, add_model_flags, count, hyper, shape, source
from cnnlab.cli.present import wrote
from cnnlab.limits import MAX_SIDE
from cnnlab.sources import KINDS

# The handlers call viz.draw_* through the module, so that a test can replace one.


def _kernel(args: argparse.Namespace) -> None:
    wrote(viz.draw_kernel(args.image, args.kernel, args.out, args.stride, args.padding, args.padding_mode), args.json)


def _conv_steps(args: argparse.Namespace) -> None:
    wrote(viz.draw_conv_steps(args.input, args.kernel, args.stride, args.padding, args.out, args.steps), args.json)


def _pool(args: argparse.Namespace) -> None:
    wrote(viz.draw_pooling(args.values, args.kernel, args.stride, args.padding, args.out), args.json)


def _erf_stacks(args: argparse.Namespace) -> None:
    wrote(viz.draw_erf_stacks(args.stacks or viz.ERF_STACKS, args.size, args.out), args.json)


def _filters(args: argparse.Namespace) -> None:
    src = source(args.model, KINDS, "cnnlab viz filters", args)
    wrote(viz.draw_filters(src, args.out, args.layer), args.json)


def _features(args: argparse.Namespace) -> None:
    src = source(args.checkpoint, KINDS, "cnnlab viz features", args)
    wrote(viz.draw_features(src, args.image, args.out, args.layers), args.json)


def _gradcam(args: argparse.Namespace) -> None:
    src = source(args.checkpoint, KINDS, "cnnlab viz gradcam", args)
    wrote(viz.draw_gradcam(src, args.image, args.out, args.layer, args.class_index), args.json)


def _rf(args: argparse.Namespace) -> None:
    src = source(args.model, KINDS, "cnnlab viz rf", args)
    size = args.input or src.default_input or (3, 224, 224)
    wrote(viz.draw_rf(src, size, args.out, args.checkpoint, layer=args.layer), args.json)


def _curves(args: argparse.Namespace) -> None:
    wrote(viz.draw_curves(args.runs, args.out), args.json)


def _compare(args: argparse.Namespace) -> None:
    wrote(viz.draw_compare(args.models, args.input, args.out, args.acc or None), args.json)


def configure(name: str, parser: argparse.ArgumentParser) -> None:
    """The arguments of ``cnnlab viz`` and its pictures."""
    vz_sub = parser.add_subparsers(dest="viz_command", metavar="WHAT", parser_class=Parser)
    vz_sub.required = True

    def picture(what: str, help_text: str, default_out: str,
                func: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        p = vz_sub.add_parser(what, help=help_text)
        p.add_argument("--out", default=default_out, metavar="PATH", help=f"PNG to write (default {default_out})")
        add_json_flag(p, "print the written path as JSON on stdout")
        p.set_defaults(func=func)
        return p

    k = picture("kernel", "a classic kernel filtering a photo: input, kernel with its numbers, output", "kernel.png",
                _kernel)
    k.add_argument("image", nargs="?", default=None, help="an image file (default: a sample photo)")
    k.add_argument("--kernel", default="box3",
                   help="box3, gaussian5, sobel-x, sobel-y, laplacian, sharpen, or rows like '1,0,-1;2,0,-2;1,0,-1'")
    k.add_argument("--stride", type=count(1, example="1"), default=1)
    k.add_argument("--padding", type=count(0, MAX_SIDE, "1"), default=0)
    k.add_argument("--padding-mode", default="zeros", choices=["zeros", "reflect", "replicate", "circular"])
    cs = picture("conv-steps", "every placement of a small kernel, with the inner product written out",
                 "conv-steps.png", _conv_steps)
    cs.add_argument("--input", default=None, help="rows like '1,2,3;4,5,6;7,8,9' (default: the 5x5 example)")
    cs.add_argument("--kernel", default=None, help="rows like '1,0;0,1' (default: the 3x3 example)")
    cs.add_argument("--stride", type=count(1, example="1"), default=1)
    cs.add_argument("--padding", type=count(0, example="1"), default=0)
    cs.add_argument("--steps", type=count(1, example="2"), default=16, help="draw the first N placements (default 16)")
    po = picture("pool", "a small grid pooled by max, average and min, windows coloured", "pooling.png", _pool)
    po.add_argument("--values", required=True, help="rows like '1,3,2,1;4,6,5,0;7,2,9,8;3,1,4,6'")
    po.add_argument("--kernel", type=hyper, default=2, help="window size (default 2)")
    po.add_argument("--stride", type=hyper, default=None, help="stride (default: the window size)")
    po.add_argument("--padding", type=hyper, default=0, help="padding (default 0, at most half the window)")
    es = picture("erf-stacks", "effective receptive fields of small convolution stacks, side by side",
                 "erf-stacks.png", _erf_stacks)
    es.add_argument("stacks", nargs="*", metavar="STACK",
                    help="kernel sizes separated by commas, one stack each (default: 3  3,3  5)")
    es.add_argument("--size", type=count(1, 64, "11"), default=11, help="input side (default 11)")
    fl = picture("filters", "a layer's kernels as a grid (the first layer by default)", "filters.png", _filters)
    fl.add_argument("model", metavar="MODEL_OR_CHECKPOINT")
    fl.add_argument("--layer", default=None, help="a convolution's name (default: the first)")
    add_model_flags(fl)
    fe = picture("features", "activation maps of a shallow, a middle and a deep layer", "features.png", _features)
    fe.add_argument("checkpoint", metavar="CHECKPOINT_OR_MODEL")
    fe.add_argument("image", nargs="?", default=None,
                    help="an image file (default: a bundled test image for MNIST-like runs, else a sample photo)")
    fe.add_argument("--layers", default=None, help="comma-separated layer names (default: chosen per model)")
    add_model_flags(fe)
    gc = picture("gradcam", "Grad-CAM heat map of a class over the image", "gradcam.png", _gradcam)
    gc.add_argument("checkpoint", metavar="CHECKPOINT_OR_MODEL")
    gc.add_argument("image", nargs="?", default=None,
                    help="an image file (default: a bundled test image for MNIST-like runs, else a sample photo)")
    gc.add_argument("--layer", default=None, help="the layer to explain (default: the last convolutional block)")
    gc.add_argument("--class", dest="class_index", type=count(0, example="3"), default=None,
                    help="class index (default: predicted)")
    add_model_flags(gc)
    rfp = picture("rf", "theoretical receptive field per layer and the effective one as a heat map", "rf.png", _rf)
    rfp.add_argument("model", metavar="MODEL")
    rfp.add_argument("--input", type=shape, default=None, help="input CxHxW (default: the model's)")
    rfp.add_argument("--checkpoint", default=None, help="also the effective field of these trained weights")
    rfp.add_argument("--layer", default=None, help="measure this layer's central unit instead of the last map's")
    add_model_flags(rfp)
    cu = picture("curves", "loss and accuracy of runs against epochs", "curves.png", _curves)
    cu.add_argument("runs", nargs="+", metavar="RUN")
    co = picture("compare", "parameters against MACs (and accuracy), one point per model", "compare.png", _compare)
    co.add_argument("models", nargs="+", metavar="MODEL")
    co.add_argument("--input", type=shape, default=(3, 224, 224), help="input CxHxW (default 3x224x224)")
    co.add_argument("--acc", nargs="*", default=None, metavar="RUN", help="run folders whose test accuracy to plot")
