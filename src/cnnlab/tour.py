"""A guided tour of the layer calculator: the hand calculations every CNN course asks for.

Each stop poses a question a learner meets in the first hours (AlexNet's first layer, padding,
stride, RGB filters, pooling, receptive fields, 3x3 stacks, 1x1 reductions, a whole small
network), answers it with :mod:`cnnlab.shapes`, and shows the command that gives the same
answer, so the reader can change the numbers and try again. The tour speaks English or Korean
(:data:`LANGS`); the numbers and the commands' output are the same in both. The picture tour
(:mod:`cnnlab.viz.tour`) quotes some stops by their key (:func:`stop`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab import shapes
from cnnlab.errors import CnnlabError
from cnnlab.shapes import fmt_shape

__all__ = ["HOMEWORK_INPUT", "HOMEWORK_LAYERS", "LANGS", "OWN_NETWORK", "Stop", "calculator_tour",
           "print_calculator_tour", "stop"]

LANGS = ("en", "ko")

# The small network of the "torch.Size after every layer" exercise, as cnnlab states it
# (docs/examples/mynet.py is the same network as a PyTorch file).
HOMEWORK_INPUT = (1, 28, 28)
HOMEWORK_LAYERS = ("conv 32 k5", "pool k2", "conv 64 k5 p2", "pool k2", "flatten", "fc 128", "fc 10")
# How a student asks the same question of their own network: shapes with the batch first.
OWN_NETWORK = "cnnlab inspect mynet.py:Net --input 1x28x28 --batch 64"

Text = dict[str, str]  # language -> text


@dataclass(frozen=True)
class Stop:
    key: str
    title: Text
    question: Text
    command: str
    answer: Text
    results: tuple[Any, ...]  # LayerResult or StackResult, shown in order
    note: Text | None = None

    def text(self, lang: str) -> dict[str, str | None]:
        """The stop's words in one language: title, question, answer and note (None without one)."""
        return {"title": self.title[lang], "question": self.question[lang], "answer": self.answer[lang],
                "note": self.note[lang] if self.note else None}


def _quoted(layers: tuple[str, ...]) -> str:
    return " ".join(f'"{x}"' if " " in x else x for x in layers)


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
    net = shapes.stack(HOMEWORK_INPUT, list(HOMEWORK_LAYERS))

    alex_out = f"{alex.output_shape[1]}x{alex.output_shape[2]}x{alex.output_shape[0]}"
    tv_formula = f"floor((224 + 4 - 11)/4) + 1 = {alex_tv.output_shape[1]}"
    size = {name: f"{r.output_shape[1]}x{r.output_shape[2]}" for name, r in
            (("plain", plain), ("padded", padded), ("stride3", stride3), ("rgb", rgb), ("overlap", overlap))}
    rf = f"{rf3.receptive_field.size[0]}x{rf3.receptive_field.size[1]}"
    share = f"{two3.params / one5.params:.0%}"
    fewer, fewer_macs = f"{direct.params / reduce.params:.1f}", f"{direct.macs / reduce.macs:.1f}"
    chain = " -> ".join(fmt_shape(r.layer.output_shape) for r in net.rows)
    first = net.rows[0].layer.output_shape
    batched = f"64x{fmt_shape(first)}"
    torch_size = "torch.Size([" + ", ".join(str(d) for d in (64, *first)) + "])"
    return [
        Stop(
            "alexnet",
            {"en": "AlexNet's first layer", "ko": "AlexNet의 첫 번째 층"},
            {"en": "A 227x227 RGB image meets 96 kernels of 11x11 with stride 4 and no padding. "
                   "What comes out, and how many weights does the layer learn?",
             "ko": "227x227 RGB 이미지에 11x11 커널 96개를 스트라이드 4, 패딩 없이 적용합니다. "
                   "출력의 크기는 얼마이고, 이 층이 학습하는 파라미터는 몇 개일까요?"},
            "cnnlab calc conv --input 3x227x227 --out-channels 96 --kernel 11 --stride 4 --explain",
            {"en": f"{alex_out}, {alex.params:,} parameters ({alex.weight_params:,} weights + {alex.bias_params} "
                   "biases). The paper says 224x224, but (224 - 11)/4 + 1 is not whole; torchvision keeps 224 and "
                   f"pads 2: {tv_formula}.",
             "ko": f"{alex_out}, 파라미터 {alex.params:,}개(가중치 {alex.weight_params:,}개 + 편향 "
                   f"{alex.bias_params}개)입니다. 논문에는 224x224라고 적혀 있지만 (224 - 11)/4 + 1은 정수가 "
                   f"아닙니다. torchvision은 224를 그대로 두고 패딩 2를 더합니다: {tv_formula}."},
            (alex,),
        ),
        Stop(
            "padding",
            {"en": "Padding keeps the size", "ko": "패딩으로 크기 지키기"},
            {"en": "A 5x5 input and a 3x3 kernel: how large is the output, and with zero padding 1?",
             "ko": "5x5 입력에 3x3 커널을 적용하면 출력은 얼마나 클까요? 제로 패딩 1을 두르면 어떻게 될까요?"},
            "cnnlab calc conv --input 1x5x5 --out-channels 1 --kernel 3 --padding 1 --explain",
            {"en": f"{size['plain']} without padding, {size['padded']} with padding 1: "
                   "padding (K-1)/2 keeps the size at stride 1.",
             "ko": f"패딩이 없으면 {size['plain']}, 패딩 1이면 {size['padded']}입니다. 스트라이드가 1일 때 "
                   "패딩을 (K-1)/2로 두면 크기가 그대로 유지됩니다."},
            (plain, padded),
        ),
        Stop(
            "stride",
            {"en": "A stride that does not divide", "ko": "나누어떨어지지 않는 스트라이드"},
            {"en": "A 7x7 input, a 3x3 kernel and stride 3: what happens at the edge?",
             "ko": "7x7 입력에 3x3 커널을 스트라이드 3으로 움직이면 가장자리에서는 무슨 일이 생길까요?"},
            "cnnlab calc conv --input 1x7x7 --out-channels 1 --kernel 3 --stride 3 --explain",
            {"en": f"{size['stride3']}: PyTorch floors the division, so the last input row and column are never "
                   "seen.",
             "ko": f"{size['stride3']}입니다. PyTorch는 나눗셈을 내림하므로 입력의 마지막 행과 열은 커널이 한 번도 "
                   "보지 못합니다."},
            (stride3,),
        ),
        Stop(
            "rgb",
            {"en": "RGB input, several filters", "ko": "RGB 입력과 여러 개의 필터"},
            {"en": "A 32x32 RGB image and 6 filters of 5x5: each filter is 5x5x3, one output map per filter. "
                   "What comes out, and how many parameters are there?",
             "ko": "32x32 RGB 이미지에 5x5 필터 6개를 적용합니다. 필터 하나의 크기는 5x5x3이고, 필터마다 특징 맵이 "
                   "한 장씩 나옵니다. 출력 모양과 파라미터 수는 얼마일까요?"},
            "cnnlab calc conv --input 3x32x32 --out-channels 6 --kernel 5 --explain",
            {"en": f"{rgb.output_shape[0]} maps of {size['rgb']}, {rgb.params} parameters = 6 * (5*5*3) weights + "
                   "6 biases.",
             "ko": f"{size['rgb']} 특징 맵 {rgb.output_shape[0]}장, 파라미터 {rgb.params}개 = 가중치 6 * (5*5*3)개 "
                   "+ 편향 6개입니다."},
            (rgb,),
        ),
        Stop(
            "pool",
            {"en": "Overlapping pooling", "ko": "겹치는 풀링"},
            {"en": "AlexNet pools its 55x55 maps with 3x3 windows at stride 2, so the windows overlap. How large is "
                   "the output?",
             "ko": "AlexNet은 55x55 특징 맵을 3x3 윈도우, 스트라이드 2로 풀링하므로 윈도우가 서로 겹칩니다. "
                   "출력은 얼마나 클까요?"},
            "cnnlab calc pool --input 96x55x55 --kernel 3 --stride 2 --explain",
            {"en": f"{size['overlap']}; pooling has no parameters.",
             "ko": f"{size['overlap']}입니다. 풀링에는 학습할 파라미터가 없습니다."},
            (overlap,),
        ),
        Stop(
            "rf",
            {"en": "Receptive field of a 3x3 stack", "ko": "3x3을 쌓았을 때의 수용 영역"},
            {"en": "How much of the input does one unit see after three 3x3 convolutions?",
             "ko": "3x3 합성곱을 세 번 거치면 출력의 한 칸은 입력을 얼마만큼 볼까요?"},
            'cnnlab calc stack --input 1x32x32 "conv 1 k3" "conv 1 k3" "conv 1 k3"',
            {"en": f"{rf} = 1 + 3*(3-1): each stride-1 layer adds K-1.",
             "ko": f"{rf} = 1 + 3*(3-1)입니다. 스트라이드 1인 층을 하나 지날 때마다 K-1씩 넓어집니다."},
            (rf3,),
        ),
        Stop(
            "two3",
            {"en": "Two 3x3 or one 5x5", "ko": "3x3 두 번과 5x5 한 번"},
            {"en": "Both see 5x5. At 128 channels, which needs fewer weights?",
             "ko": "둘 다 5x5 영역을 봅니다. 채널이 128개일 때 가중치가 더 적은 쪽은 어느 것일까요?"},
            'cnnlab calc stack --input 128x32x32 "conv 128 k3 p1 nobias" "conv 128 k3 p1 nobias"',
            {"en": f"two 3x3: {two3.params:,} weights; one 5x5: {one5.params:,} ({share}), with a ReLU more "
                   "between them.",
             "ko": f"3x3 두 번은 가중치 {two3.params:,}개로 5x5 한 번({one5.params:,}개)의 {share}이고, 두 층 "
                   "사이에 ReLU도 하나 더 들어갑니다."},
            (two3, one5),
        ),
        Stop(
            "reduce",
            {"en": "A 1x1 reduction", "ko": "1x1 합성곱으로 채널 줄이기"},
            {"en": "GoogLeNet first reduces 128 channels to 32 with a 1x1 convolution, then applies 3x3 back to "
                   "128. How much does that save?",
             "ko": "GoogLeNet은 1x1 합성곱으로 128채널을 먼저 32채널로 줄이고, 3x3 합성곱으로 다시 128채널을 "
                   "만듭니다. 얼마나 아낄까요?"},
            'cnnlab calc stack --input 128x28x28 "conv 32 k1 nobias" "conv 128 k3 p1 nobias"',
            {"en": f"{reduce.params:,} weights against {direct.params:,} for a direct 3x3 ({fewer}x fewer), and "
                   f"{fewer_macs}x fewer MACs.",
             "ko": f"가중치는 {reduce.params:,}개로, 3x3을 바로 적용할 때의 {direct.params:,}개보다 {fewer}배 "
                   f"적고 MACs도 {fewer_macs}배 적습니다."},
            (reduce, direct),
        ),
        Stop(
            "homework",
            {"en": "torch.Size through a small network", "ko": "작은 네트워크를 지나며 바뀌는 torch.Size"},
            {"en": "A 28x28 digit through conv, pool, conv, pool, flatten and two fully connected layers: "
                   "what is the shape after each?",
             "ko": "28x28 숫자 이미지가 합성곱, 풀링, 합성곱, 풀링, 펼치기(flatten), 완전 연결 층 두 개를 차례로 "
                   "지납니다. 층마다 출력 모양은 어떻게 될까요?"},
            f"cnnlab calc stack --input {fmt_shape(HOMEWORK_INPUT)} {_quoted(HOMEWORK_LAYERS)}",
            {"en": f"{chain}; {net.params:,} parameters in all.",
             "ko": f"{chain}이고, 파라미터는 모두 {net.params:,}개입니다."},
            (net,),
            {"en": "this network is cnnlab's example (conv1 = Conv2d(1, 32, 5), conv2 = Conv2d(32, 64, 5, "
                   "padding=2), 2x2 max pooling after each, fc1 = Linear(2304, 128), fc2 = Linear(128, 10)). "
                   f"For your own network, `{OWN_NETWORK}` prints every layer's output with the batch first, "
                   f"as torch.Size has it: {batched} is {torch_size}.",
             "ko": "이 네트워크는 cnnlab이 준비한 예제입니다(conv1 = Conv2d(1, 32, 5), conv2 = Conv2d(32, 64, 5, "
                   "padding=2), 합성곱마다 뒤에 2x2 최대 풀링, fc1 = Linear(2304, 128), fc2 = Linear(128, 10)). "
                   f"직접 만든 네트워크라면 `{OWN_NETWORK}`가 층마다 출력 모양을 torch.Size처럼 배치 차원부터 "
                   f"보여 줍니다. {batched}는 {torch_size}입니다."},
        ),
    ]


def _check_lang(lang: str) -> None:
    if lang not in LANGS:
        raise CnnlabError(f"the tour speaks {' or '.join(LANGS)}, not {lang!r}: use --lang en or --lang ko")


def stop(key: str, lang: str = "en") -> tuple[Stop, dict[str, str | None]]:
    """One stop by its key ("alexnet", "homework", ...) and its words in ``lang``."""
    _check_lang(lang)
    found = next((s for s in _stops() if s.key == key), None)
    if found is None:
        raise CnnlabError(f"the calculator tour has no stop {key!r}: use one of "
                          f"{', '.join(s.key for s in _stops())}")
    return found, found.text(lang)


def calculator_tour(lang: str = "en") -> dict[str, Any]:
    """The tour as one JSON-ready document, in English ("en") or Korean ("ko")."""
    _check_lang(lang)
    return {
        "lang": lang,
        "stops": [
            {
                "key": s.key,
                **s.text(lang),
                "command": s.command,
                "results": [r.to_dict() for r in s.results],
            }
            for s in _stops()
        ],
    }


_HEADER = {
    "en": ("[bold]cnnlab calculator tour[/bold]: the classic hand calculations, checked against PyTorch's own rules",
           "answer:", "note:"),
    "ko": ("[bold]cnnlab 계산기 투어[/bold]: 손으로 풀던 대표적인 계산을 PyTorch의 규칙 그대로 확인합니다",
           "답:", "참고:"),
}


def print_calculator_tour(lang: str = "en") -> None:
    from rich.markup import escape

    from cnnlab.console import out, print_stack

    _check_lang(lang)
    header, answer, note = _HEADER[lang]
    out.print(header + "\n")
    for i, s in enumerate(_stops(), 1):
        words = s.text(lang)
        out.print(f"[bold]{i}. {words['title']}[/bold]")
        out.print(f"   {words['question']}", markup=False)
        out.print(f"   $ {s.command}", style="dim", markup=False)
        for r in s.results:
            if isinstance(r, shapes.StackResult):
                print_stack(r, title="")
            else:
                for line in r.lines:
                    out.print(f"   {line}", markup=False)
                for line in r.notes:
                    out.print(f"   {line}", markup=False)
        out.print(f"   [green]{answer}[/green] {escape(words['answer'] or '')}", highlight=False)
        if words["note"]:
            out.print(f"   [green]{note}[/green] {escape(words['note'])}", highlight=False)
        out.print()
