"""A guided tour of the layer calculator: the hand calculations every CNN course asks for.

Each stop poses a question a learner meets in the first hours (AlexNet's first layer, padding,
stride, RGB filters, pooling, receptive fields, 3x3 stacks, 1x1 reductions, a whole small
network), answers it with :mod:`cnnlab.shapes`, and shows the command that gives the same
answer, so the reader can change the numbers and try again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab import shapes
from cnnlab.shapes import fmt_shape


@dataclass(frozen=True)
class Stop:
    title: str
    question: str
    command: str
    answer: str
    results: tuple[Any, ...]  # LayerResult or StackResult, shown in order


def _stops() -> list[Stop]:
    alex = shapes.conv((3, 227, 227), 96, 11, stride=4)
    alex_tv = shapes.conv((3, 224, 224), 64, 11, stride=4, padding=2)
    plain = shapes.conv((1, 5, 5), 1, 3)
    padded = shapes.conv((1, 5, 5), 1, 3, padding=1)
    stride3 = shapes.conv((1, 7, 7), 1, 3, stride=3)
    rgb = shapes.conv((3, 32, 32), 6, 5)
    overlap = shapes.pool((96, 55, 55), 3, 2)
    rf3 = shapes.stack((1, 32, 32), ["conv 1 k3", "conv 1 k3", "conv 1 k3"])
    two3 = shapes.stack((128, 32, 32), ["conv 128 k3 p1 nobias", "conv 128 k3 p1 nobias"])
    one5 = shapes.stack((128, 32, 32), ["conv 128 k5 p2 nobias"])
    reduce = shapes.stack((128, 28, 28), ["conv 32 k1 nobias", "conv 128 k3 p1 nobias"])
    direct = shapes.stack((128, 28, 28), ["conv 128 k3 p1 nobias"])
    net_layers = ["conv 32 k5", "pool k2", "conv 64 k5 p2", "pool k2", "flatten", "fc 128", "fc 10"]
    net = shapes.stack((1, 28, 28), net_layers)
    return [
        Stop(
            "AlexNet's first layer",
            "A 227x227 RGB image meets 96 kernels of 11x11 with stride 4 and no padding. "
            "What comes out, and how many weights does the layer learn?",
            "cnnlab calc conv --input 3x227x227 --out-channels 96 --kernel 11 --stride 4 --explain",
            f"{alex.output_shape[1]}x{alex.output_shape[2]}x{alex.output_shape[0]}, "
            f"{alex.params:,} parameters ({alex.weight_params:,} weights + {alex.bias_params} biases). "
            "The paper says 224x224, but (224 - 11)/4 + 1 is not whole; torchvision keeps 224 and pads 2: "
            f"floor((224 + 4 - 11)/4) + 1 = {alex_tv.output_shape[1]}.",
            (alex,),
        ),
        Stop(
            "Padding keeps the size",
            "A 5x5 input and a 3x3 kernel: how large is the output, and with zero padding 1?",
            "cnnlab calc conv --input 1x5x5 --out-channels 1 --kernel 3 --padding 1 --explain",
            f"{plain.output_shape[1]}x{plain.output_shape[2]} without padding, "
            f"{padded.output_shape[1]}x{padded.output_shape[2]} with padding 1: "
            "padding (K-1)/2 keeps the size at stride 1.",
            (plain, padded),
        ),
        Stop(
            "A stride that does not divide",
            "A 7x7 input, a 3x3 kernel and stride 3: what happens at the edge?",
            "cnnlab calc conv --input 1x7x7 --out-channels 1 --kernel 3 --stride 3 --explain",
            f"{stride3.output_shape[1]}x{stride3.output_shape[2]}: PyTorch floors the division, "
            "so the last input row and column are never seen.",
            (stride3,),
        ),
        Stop(
            "RGB input, several filters",
            "A 32x32 RGB image and 6 filters of 5x5: each filter is 5x5x3, one output map per filter.",
            "cnnlab calc conv --input 3x32x32 --out-channels 6 --kernel 5 --explain",
            f"{rgb.output_shape[0]} maps of {rgb.output_shape[1]}x{rgb.output_shape[2]}, "
            f"{rgb.params} parameters = 6 * (5*5*3) weights + 6 biases.",
            (rgb,),
        ),
        Stop(
            "Overlapping pooling",
            "AlexNet pools its 55x55 maps with 3x3 windows at stride 2: the windows overlap.",
            "cnnlab calc pool --input 96x55x55 --kernel 3 --stride 2 --explain",
            f"{overlap.output_shape[1]}x{overlap.output_shape[2]}; pooling has no parameters.",
            (overlap,),
        ),
        Stop(
            "Receptive field of a 3x3 stack",
            "How much of the input does one unit see after three 3x3 convolutions?",
            'cnnlab calc stack --input 1x32x32 "conv 1 k3" "conv 1 k3" "conv 1 k3"',
            f"{rf3.receptive_field.size[0]}x{rf3.receptive_field.size[1]} = 1 + 3*(3-1): "
            "each stride-1 layer adds K-1.",
            (rf3,),
        ),
        Stop(
            "Two 3x3 or one 5x5",
            "Both see 5x5. At 128 channels, which needs fewer weights?",
            'cnnlab calc stack --input 128x32x32 "conv 128 k3 p1 nobias" "conv 128 k3 p1 nobias"',
            f"two 3x3: {two3.params:,} weights; one 5x5: {one5.params:,} "
            f"({two3.params / one5.params:.0%}), with a ReLU more between them.",
            (two3, one5),
        ),
        Stop(
            "A 1x1 reduction",
            "GoogLeNet first reduces 128 channels to 32 with a 1x1 convolution, then applies 3x3 back to 128.",
            'cnnlab calc stack --input 128x28x28 "conv 32 k1 nobias" "conv 128 k3 p1 nobias"',
            f"{reduce.params:,} weights against {direct.params:,} for a direct 3x3 "
            f"({direct.params / reduce.params:.1f}x fewer), and {direct.macs / reduce.macs:.1f}x fewer MACs.",
            (reduce, direct),
        ),
        Stop(
            "torch.size through a small network",
            "A 28x28 digit through conv, pool, conv, pool, flatten and two fully connected layers: "
            "what is the shape after each?",
            "cnnlab calc stack --input 1x28x28 " + " ".join(f'"{x}"' if " " in x else x for x in net_layers),
            " -> ".join(fmt_shape(r.layer.output_shape) for r in net.rows)
            + f"; {net.params:,} parameters in all.",
            (net,),
        ),
    ]


def calculator_tour() -> dict[str, Any]:
    """The tour as one JSON-ready document."""
    return {
        "stops": [
            {
                "title": s.title,
                "question": s.question,
                "command": s.command,
                "answer": s.answer,
                "results": [r.to_dict() for r in s.results],
            }
            for s in _stops()
        ]
    }


def print_calculator_tour() -> None:
    from cnnlab.console import out, print_stack

    out.print("[bold]cnnlab calculator tour[/bold]: the classic hand calculations, checked against "
              "PyTorch's own rules\n")
    for i, s in enumerate(_stops(), 1):
        out.print(f"[bold]{i}. {s.title}[/bold]")
        out.print(f"   {s.question}", markup=False)
        out.print(f"   $ {s.command}", style="dim", markup=False)
        for r in s.results:
            if isinstance(r, shapes.StackResult):
                print_stack(r, title="")
            else:
                for line in r.lines:
                    out.print(f"   {line}", markup=False)
                for note in r.notes:
                    out.print(f"   {note}", markup=False)
        out.print(f"   [green]answer:[/green] {s.answer}\n")
