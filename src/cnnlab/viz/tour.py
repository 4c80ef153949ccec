"""The picture tour: the study-note topics, each with the cnnlab command and the picture it makes.

    make_tour("docs/tour", "en", page="docs/tour.md")   # pictures and the English page
    make_tour("docs/tour", "ko", page="docs/ko/tour.md", draw=False)  # the Korean page, same pictures

Every number on the page is computed here by the library (the layer calculator and its tour, the
NumPy convolution and pooling explainers, the graph analyzer), and every picture is drawn by
:mod:`cnnlab.viz`, so
regenerating the page after a change keeps text and pictures in step. Seeds are fixed: two runs
write the same files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cnnlab import shapes
from cnnlab.atomic import atomic_write
from cnnlab.errors import CnnlabError
from cnnlab.scratch.explain import explain_pooling
from cnnlab.shapes import fmt_shape
from cnnlab.tour import OWN_NETWORK, stop
from cnnlab.viz.compare import draw_compare, model_costs
from cnnlab.viz.kernels import draw_conv_steps, draw_pooling
from cnnlab.viz.rf import ERF_STACKS, draw_erf_stacks, draw_rf, stack_fields

__all__ = ["FAMILIES", "LANGS", "PICTURES", "make_tour"]

FAMILIES = ("alexnet", "vgg16", "googlenet", "resnet50", "densenet121")
LANGS = ("en", "ko")  # the tour's languages: tour.md and tour.ko.md
POOL_INPUT = [[1, 3, 2, 1], [4, 6, 5, 0], [7, 2, 9, 8], [3, 1, 4, 6]]
_POOL_VALUES = ";".join(",".join(map(str, row)) for row in POOL_INPUT)
# Every picture, the command that draws it (shown next to it on the page) and the same call here;
# a test runs each command and compares its file with the tour's.
PICTURE_COMMANDS = {
    "conv_inner_product.png": "cnnlab viz conv-steps --steps 1 --out conv_inner_product.png",
    "padding_stride.png": "cnnlab viz conv-steps --padding 1 --stride 2 --steps 2 --out padding_stride.png",
    "pooling.png": f'cnnlab viz pool --values "{_POOL_VALUES}" --kernel 2 --out pooling.png',
    "erf_stacks.png": f"cnnlab viz erf-stacks {' '.join(ERF_STACKS)} --size 11 --out erf_stacks.png",
    "rf_resnet18.png": "cnnlab viz rf resnet18 --input 3x64x64 --out rf_resnet18.png",
    "compare.png": f"cnnlab viz compare {' '.join(FAMILIES)} --input 3x224x224 --out compare.png",
}
PICTURES = tuple(PICTURE_COMMANDS)
POOL_COMMAND = f'cnnlab calc pool --values "{_POOL_VALUES}" --kernel 2 --mode all --explain'


# --------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------


def pool_results() -> dict[str, list[list[float]]]:
    """Max, average and min pooling (2x2, stride 2) of the 4x4 example, as `POOL_COMMAND` prints them."""
    return explain_pooling(POOL_INPUT, 2, modes="all").outputs


def draw_pictures(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Write every tour picture into ``out_dir``, as its command in `PICTURE_COMMANDS` does; returns the page's facts."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    draw_conv_steps(out=folder / "conv_inner_product.png", max_panels=1)
    draw_conv_steps(stride=2, padding=1, out=folder / "padding_stride.png", max_panels=2)
    draw_pooling(POOL_INPUT, 2, out=folder / "pooling.png")
    draw_erf_stacks(ERF_STACKS, 11, folder / "erf_stacks.png")
    draw_rf("resnet18", (3, 64, 64), folder / "rf_resnet18.png")
    draw_compare(list(FAMILIES), (3, 224, 224), folder / "compare.png")
    return {"support": {name: int((erf > 0).sum()) for name, erf in stack_fields(ERF_STACKS, 11).items()}}


# --------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------


def _numbers() -> dict[str, Any]:
    from cnnlab.scratch.explain import explain_convolution

    ex = explain_convolution()
    padded = shapes.conv((1, 5, 5), 1, 3, padding=1)
    strided = shapes.conv((1, 7, 7), 1, 3, stride=2)
    rgb = shapes.conv((3, 32, 32), 6, 5)
    rf3 = shapes.stack((1, 32, 32), ["conv 1 k3", "conv 1 k3", "conv 1 k3"])
    two3 = shapes.stack((128, 32, 32), ["conv 128 k3 p1 nobias", "conv 128 k3 p1 nobias"])
    one5 = shapes.stack((128, 32, 32), ["conv 128 k5 p2 nobias"])
    reduce = shapes.stack((128, 28, 28), ["conv 32 k1 nobias", "conv 128 k3 p1 nobias"])
    direct = shapes.stack((128, 28, 28), ["conv 128 k3 p1 nobias"])
    return {
        "conv_output": ex.output, "padded": padded, "strided": strided, "rgb": rgb,
        "rf3": [r.receptive_field.size[0] for r in rf3.rows], "two3": two3.params, "one5": one5.params,
        "reduce": reduce.params, "direct": direct.params, "reduce_macs": reduce.macs,
        "direct_macs": direct.macs, "pool": explain_pooling(POOL_INPUT, 2, modes="all").render(explain=True),
        "costs": {c.name: c for c in model_costs(list(FAMILIES), (3, 224, 224))},
    }


def _m(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n < 1e9 else f"{n / 1e9:.2f}G"


def _block(text: str) -> str:
    return f"```text\n{text}\n```"


_FAMILY_NOTES = {
    "en": {
        "alexnet": "large early kernels (11x11 stride 4), ReLU, dropout; most weights sit in the fully "
                   "connected layers",
        "vgg16": "only 3x3 convolutions in five stages; simple and deep, but the heaviest here",
        "googlenet": "Inception modules run 1x1, 3x3, 5x5 and pooling side by side, with 1x1 reductions first",
        "resnet50": "residual connections (x + F(x)) and 1x1-3x3-1x1 bottlenecks make 50 layers trainable",
        "densenet121": "every layer receives the feature maps of all earlier layers in its block "
                       "(concatenation), so few channels per layer suffice",
    },
    "ko": {
        "alexnet": "앞쪽에 큰 커널(11x11, 스트라이드 4), ReLU와 드롭아웃을 사용하며, 가중치 대부분이 "
                   "완전 연결 층에 몰려 있습니다",
        "vgg16": "다섯 단계에 걸쳐 3x3 합성곱만 쌓은 단순하고 깊은 구조로, 여기서 가장 무겁습니다",
        "googlenet": "인셉션 모듈이 1x1, 3x3, 5x5 합성곱과 풀링을 나란히 실행하고, 그 앞에서 1x1로 채널을 줄입니다",
        "resnet50": "잔차 연결(x + F(x))과 1x1-3x3-1x1 병목 블록 덕분에 50층도 학습이 됩니다",
        "densenet121": "블록 안의 각 층이 앞선 모든 층의 특징 맵을 이어 붙여(concatenation) 받으므로 "
                       "층마다 적은 채널로도 충분합니다",
    },
}


def _page(lang: str, img: str, n: dict[str, Any], facts: dict[str, Any] | None) -> str:
    ko = lang == "ko"
    pad, strided, rgb = n["padded"], n["strided"], n["rgb"]
    from cnnlab.scratch.explain import explain_convolution

    expression = explain_convolution().placements[0].expression()  # the placement the picture shows
    out_grid = "\n".join("  ".join(f"{v:>3g}" for v in row) for row in n["conv_output"])
    alex, alex_words = stop("alexnet", lang)
    homework, homework_words = stop("homework", lang)
    (alex_layer,), (net,) = alex.results, homework.results
    net_text = "\n".join(f"{r.layer.description}: {fmt_shape(r.layer.output_shape)}" for r in net.rows)
    costs = n["costs"]
    fam_lines = "\n".join(
        f"- **{name}**: {_m(costs[name].params)} {'파라미터' if ko else 'parameters'}, "
        f"{_m(costs[name].macs)} MACs — {_FAMILY_NOTES[lang][name]}" for name in FAMILIES)
    saving = n["direct"] / n["reduce"]
    ratio = n["two3"] / n["one5"]
    cmd_conv_pad = "cnnlab calc conv --input 1x5x5 --out-channels 1 --kernel 3 --padding 1 --explain"
    cmd_conv_stride = "cnnlab calc conv --input 1x7x7 --out-channels 1 --kernel 3 --stride 2 --explain"
    cmd_rgb = "cnnlab calc conv --input 3x32x32 --out-channels 6 --kernel 5 --explain"
    cmd_rf = 'cnnlab calc stack --input 1x32x32 "conv 1 k3" "conv 1 k3" "conv 1 k3"'
    cmd_two3 = 'cnnlab calc stack --input 128x32x32 "conv 128 k3 p1 nobias" "conv 128 k3 p1 nobias"'
    cmd_one5 = 'cnnlab calc stack --input 128x32x32 "conv 128 k5 p2 nobias"'
    cmd_red = 'cnnlab calc stack --input 128x28x28 "conv 32 k1 nobias" "conv 128 k3 p1 nobias"'
    cmd_dir = 'cnnlab calc stack --input 128x28x28 "conv 128 k3 p1 nobias"'
    cmd_cmp = PICTURE_COMMANDS["compare.png"]
    rf = n["rf3"]
    if ko:
        parts = [
            "# 그림으로 보는 CNN 투어",
            "스터디 노트의 주제를 순서대로 따라가며, 각 주제를 재현하는 cnnlab 명령과 그 결과 그림을 함께 "
            "보여 줍니다. 이 페이지의 숫자와 그림은 모두 저장소의 코드가 만든 것입니다 "
            "(`python scripts/make-tour.py`, 또는 `cnnlab tour --out DIR`로 그림과 영어·한국어 페이지를 원하는 "
            "폴더에 생성). 스터디 노트의 예제와 연습 문제를 명령 하나씩으로 풀어 보는 강의는 저장소의 "
            "`docs/ko/course.md`에 있습니다.",
            "## 1. 합성곱은 내적이다",
            "3x3 필터(커널)를 5x5 입력 위에서 한 칸씩 옮기며, 겹치는 아홉 칸끼리 곱해 더한 값이 출력 한 칸이 "
            "됩니다. 아래 그림은 첫 위치의 계산입니다.",
            f"![5x5 입력, 3x3 커널, 3x3 출력]({img}/conv_inner_product.png)",
            f"```sh\n{PICTURE_COMMANDS['conv_inner_product.png']}\ncnnlab scratch explain\n```",
            _block(f"{expression}\n\n출력:\n{out_grid}"),
            "## 2. 패딩, 스트라이드, 출력 크기 공식",
            "패딩은 입력 테두리에 0을 덧대어 가장자리 정보도 충분히 쓰고 출력 크기를 유지하게 해 줍니다. "
            "스트라이드는 커널이 한 번에 움직이는 칸 수입니다. 출력 크기는 "
            "`O = floor((I + 2P - K) / S) + 1`로 계산합니다. 그림은 패딩 1, 스트라이드 2일 때 처음 두 위치입니다.",
            f"![패딩과 스트라이드]({img}/padding_stride.png)",
            f"```sh\n{PICTURE_COMMANDS['padding_stride.png']}\n{cmd_conv_pad}\n```",
            _block(pad.explain()),
            f"```sh\n{cmd_conv_stride}\n```",
            _block(strided.explain()),
            "## 3. RGB(3차 텐서) 합성곱과 여러 개의 필터",
            f"컬러 이미지는 채널이 3개이므로 필터도 깊이 3을 가집니다(5x5x3). 필터 하나가 특징 맵 하나를 만들고, "
            f"필터 {rgb.output_shape[0]}개를 쓰면 특징 맵 {rgb.output_shape[0]}장이 쌓여 출력 "
            f"{fmt_shape(rgb.output_shape)}가 됩니다. 파라미터는 {rgb.params:,}개입니다.",
            f"```sh\n{cmd_rgb}\n```",
            _block(rgb.explain()),
            f"**{alex_words['title']}.** {alex_words['question']}",
            f"```sh\n{alex.command}\n```",
            _block(alex_layer.explain()),
            f"답: {alex_words['answer']}",
            "## 4. 연습 문제: 층마다 바뀌는 torch.Size",
            f"{homework_words['question']} conv1, conv2, 펼치기, fc1, fc2를 지난 뒤의 모양을 "
            "계산기로 확인합니다.",
            f"```sh\n{homework.command}\n```",
            _block(net_text),
            f"답: {homework_words['answer']}",
            f"참고: {homework_words['note']}",
            f"```sh\n{OWN_NETWORK}\n```",
            "## 5. 풀링의 종류",
            "풀링은 학습할 파라미터 없이 특징 맵을 줄입니다. 최대 풀링은 윈도우에서 가장 큰 값, 평균 풀링은 평균, "
            "최소 풀링은 가장 작은 값을 고릅니다(최소 풀링 = -maxpool(-x)). 아래는 그림의 4x4 입력을 2x2 윈도우, "
            "스트라이드 2로 풀링한 명령과 그 출력입니다. `--values`에 자신의 행렬을 넣으면 같은 계산을 해 줍니다"
            "(테스트가 torch의 결과와 비교합니다).",
            f"![최대, 평균, 최소 풀링]({img}/pooling.png)",
            f"```sh\n{PICTURE_COMMANDS['pooling.png']}\n{POOL_COMMAND}\n```",
            _block(n["pool"]),
            "## 6. 수용 영역의 성장, 3x3 두 번 대 5x5 한 번",
            f"스트라이드 1인 3x3 합성곱을 하나씩 쌓을 때마다 수용 영역이 2씩 커집니다: {rf[0]}, {rf[1]}, {rf[2]}. "
            "3x3 두 번은 5x5 한 번과 같은 영역을 보지만, 가운데 픽셀일수록 더 많은 경로로 연결되어 영향이 큽니다 "
            "(유효 수용 영역, Luo et al. 2016). 가중치를 모두 1로 둔 그림에서 확인할 수 있습니다.",
            f"![3x3 하나, 3x3 둘, 5x5 하나의 유효 수용 영역]({img}/erf_stacks.png)",
            f"128채널에서 가중치 수는 3x3 두 번이 {n['two3']:,}개, 5x5 한 번이 {n['one5']:,}개로 "
            f"{ratio:.0%}에 불과하고, 사이에 ReLU도 하나 더 들어갑니다.",
            f"```sh\n{PICTURE_COMMANDS['erf_stacks.png']}\n{cmd_rf}\n{cmd_two3}\n{cmd_one5}\n```",
            "실제 네트워크(ResNet-18, 64x64 입력)에서 층별 이론적 수용 영역과 점프(입력 기준 스트라이드), "
            "초기화 상태의 유효 수용 영역은 다음과 같습니다. 이론적 영역이 입력보다 훨씬 커도 실제로 영향을 주는 "
            "영역은 가운데에 몰려 있습니다.",
            f"![ResNet-18의 수용 영역]({img}/rf_resnet18.png)",
            f"```sh\n{PICTURE_COMMANDS['rf_resnet18.png']}\n```",
            "## 7. 1x1 병목으로 줄이는 비용",
            f"128채널에 3x3 합성곱을 바로 적용하면 가중치가 {n['direct']:,}개지만, 먼저 1x1 합성곱으로 32채널로 "
            f"줄인 뒤 3x3을 적용하면 {n['reduce']:,}개로 {saving:.1f}배 줄어듭니다"
            f"(28x28에서 MACs {n['direct_macs']:,} 대 {n['reduce_macs']:,}).",
            f"```sh\n{cmd_red}\n{cmd_dir}\n```",
            "## 8. 아키텍처 계보",
            "224x224 입력 기준 파라미터와 MACs(곱셈-누산 횟수)는 다음과 같습니다.",
            fam_lines,
            f"![파라미터 대 MACs]({img}/compare.png)",
            f"```sh\n{cmd_cmp}\ncnnlab compare {' '.join(FAMILIES)} --input 3x224x224\n```",
        ]
    else:
        parts = [
            "# A picture tour of CNNs",
            "The study-note topics in order, each with the cnnlab command that reproduces it and the picture "
            "it makes. Every number and picture here is produced by the repository's own code "
            "(`python scripts/make-tour.py`; `cnnlab tour --out DIR` writes the pictures and the English and "
            "Korean pages anywhere). The course in the repository, `docs/course.md`, answers every worked "
            "example and exercise of the notes with one command each.",
            "## 1. Convolution is an inner product",
            "A 3x3 filter (kernel) slides over a 5x5 input; at each placement the nine overlapping values are "
            "multiplied pairwise and summed into one output value. The picture shows the first placement.",
            f"![5x5 input, 3x3 kernel, 3x3 output]({img}/conv_inner_product.png)",
            f"```sh\n{PICTURE_COMMANDS['conv_inner_product.png']}\ncnnlab scratch explain\n```",
            _block(f"{expression}\n\noutput:\n{out_grid}"),
            "## 2. Padding, stride and the output-size formula",
            "Padding adds a border of zeros so that edge pixels are used as often as inner ones and the size "
            "can be kept; the stride is how far the kernel moves each step. The output size is "
            "`O = floor((I + 2P - K) / S) + 1`. The picture shows the first two placements with padding 1 and "
            "stride 2.",
            f"![padding and stride]({img}/padding_stride.png)",
            f"```sh\n{PICTURE_COMMANDS['padding_stride.png']}\n{cmd_conv_pad}\n```",
            _block(pad.explain()),
            f"```sh\n{cmd_conv_stride}\n```",
            _block(strided.explain()),
            "## 3. RGB (order-3) convolution and multiple filters",
            f"A colour image has 3 channels, so each filter is 5x5x3 deep. One filter makes one feature map; "
            f"{rgb.output_shape[0]} filters stack {rgb.output_shape[0]} maps into an output of "
            f"{fmt_shape(rgb.output_shape)}, with {rgb.params:,} parameters.",
            f"```sh\n{cmd_rgb}\n```",
            _block(rgb.explain()),
            f"**{alex_words['title']}.** {alex_words['question']}",
            f"```sh\n{alex.command}\n```",
            _block(alex_layer.explain()),
            f"Answer: {alex_words['answer']}",
            "## 4. Exercise: torch.Size after every layer",
            f"{homework_words['question']} The calculator gives the shape after conv1, conv2, flattening, fc1 "
            "and fc2.",
            f"```sh\n{homework.command}\n```",
            _block(net_text),
            f"Answer: {homework_words['answer']}",
            f"Note: {homework_words['note']}",
            f"```sh\n{OWN_NETWORK}\n```",
            "## 5. Pooling types",
            "Pooling shrinks a feature map and learns nothing. Max pooling keeps the largest value of each "
            "window, average pooling the mean, min pooling the smallest (min pooling = -maxpool(-x)). Below, the "
            "picture's 4x4 input pooled with 2x2 windows at stride 2: the command and what it prints. Give "
            "`--values` your own grid for the same calculation (the tests check it against torch).",
            f"![max, average and min pooling]({img}/pooling.png)",
            f"```sh\n{PICTURE_COMMANDS['pooling.png']}\n{POOL_COMMAND}\n```",
            _block(n["pool"]),
            "## 6. Receptive fields grow; two 3x3 versus one 5x5",
            f"Each stride-1 3x3 convolution adds 2 to the receptive field: {rf[0]}, {rf[1]}, {rf[2]}. Two 3x3 "
            "layers see the same 5x5 window as one 5x5 layer, but the centre pixels reach the output through "
            "more paths and weigh more (the effective receptive field, Luo et al. 2016); with all weights set to "
            "1 the picture shows it exactly.",
            f"![effective receptive field of one 3x3, two 3x3, one 5x5]({img}/erf_stacks.png)",
            f"At 128 channels two 3x3 layers need {n['two3']:,} weights and one 5x5 layer {n['one5']:,} "
            f"({ratio:.0%}), and the stack puts one more ReLU in between.",
            f"```sh\n{PICTURE_COMMANDS['erf_stacks.png']}\n{cmd_rf}\n{cmd_two3}\n{cmd_one5}\n```",
            "In a real network (ResNet-18 on 64x64 inputs): the theoretical field and jump (stride in input "
            "pixels) per layer, and the effective field at initialisation. The theoretical field outgrows the "
            "input, yet the pixels that matter cluster in the centre.",
            f"![receptive fields of ResNet-18]({img}/rf_resnet18.png)",
            f"```sh\n{PICTURE_COMMANDS['rf_resnet18.png']}\n```",
            "## 7. 1x1 bottleneck savings",
            f"A 3x3 convolution applied directly to 128 channels needs {n['direct']:,} weights; reducing to 32 "
            f"channels with a 1x1 convolution first needs {n['reduce']:,}, {saving:.1f}x fewer "
            f"(MACs at 28x28: {n['direct_macs']:,} against {n['reduce_macs']:,}).",
            f"```sh\n{cmd_red}\n{cmd_dir}\n```",
            "## 8. The architecture families",
            "Parameters and MACs (multiply-accumulates) at 224x224:",
            fam_lines,
            f"![parameters against MACs]({img}/compare.png)",
            f"```sh\n{cmd_cmp}\ncnnlab compare {' '.join(FAMILIES)} --input 3x224x224\n```",
        ]
    return "\n\n".join(parts) + "\n"


def make_tour(out_dir: str | os.PathLike[str], lang: str = "en", page: str | os.PathLike[str] | None = None,
              draw: bool = True) -> Path:
    """Write the tour pictures into ``out_dir`` and the Markdown page; returns the page's path.

    ``lang`` is "en" or "ko"; ``page`` defaults to ``out_dir/tour.md`` (``tour.ko.md`` for Korean).
    Image links are relative to the page. ``draw=False`` reuses pictures already in ``out_dir``.
    """
    if lang not in LANGS:
        raise CnnlabError(f"lang must be one of {', '.join(LANGS)}, got {lang!r}")
    folder = Path(out_dir)
    page_path = Path(page) if page is not None else folder / ("tour.md" if lang == "en" else "tour.ko.md")
    if draw:
        facts = draw_pictures(folder)
    else:
        missing = [p for p in PICTURES if not (folder / p).is_file()]
        if missing:
            raise CnnlabError(f"{folder} lacks {', '.join(missing)}: run the tour with the pictures first")
        facts = None
    page_path.parent.mkdir(parents=True, exist_ok=True)
    img = Path(os.path.relpath(folder.resolve(), page_path.parent.resolve())).as_posix()
    with atomic_write(page_path, ".md") as tmp:
        tmp.write_text(_page(lang, img, _numbers(), facts), encoding="utf-8")
    return page_path
