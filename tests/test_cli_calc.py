"""`cnnlab calc`: real output, JSON alone on stdout, and one line for every mistake."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest


def test_conv_json_is_one_document(cli) -> None:
    code, out, err = cli("calc", "conv", "--input", "3x227x227", "--out-channels", "96", "--kernel", "11",
                         "--stride", "4", "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["output_shape"] == [96, 55, 55]
    assert doc["params"] == 34_944
    assert doc["macs"] == 105_415_200
    assert "OH = floor((227 + 2*0 - 1*(11-1) - 1)/4) + 1 = 55" in doc["explain"]
    assert "conventions" in doc


def test_conv_explain_prints_formulas(cli) -> None:
    code, out, _ = cli("calc", "conv", "--input", "3x227x227", "--out-channels", "96", "--kernel", "11",
                       "--stride", "4", "--explain")
    assert code == 0
    assert "96x55x55" in out
    assert "params = 34,848 + 96 = 34,944" in out


def test_conv_options_reach_the_calculation(cli) -> None:
    code, out, _ = cli("calc", "conv", "--input", "64x56x56", "--out-channels", "128", "--kernel", "3",
                       "--padding", "same", "--dilation", "2", "--groups", "4", "--no-bias",
                       "--padding-mode", "reflect", "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["output_shape"] == [128, 56, 56]
    assert doc["params"] == 128 * (64 // 4) * 9
    assert doc["rf_step"]["kernel"] == [5, 5]


def test_conv_1d_and_3d_from_the_input_shape(cli) -> None:
    _, out, _ = cli("calc", "conv", "--input", "16x100", "--out-channels", "8", "--kernel", "5", "--json")
    assert json.loads(out)["output_shape"] == [8, 96]
    _, out, _ = cli("calc", "conv", "--input", "3x16x112x112", "--out-channels", "64", "--kernel", "3x7x7",
                    "--stride", "1x2x2", "--padding", "1x3x3", "--json")
    assert json.loads(out)["output_shape"] == [64, 16, 56, 56]


def test_pool_modes(cli) -> None:
    _, out, _ = cli("calc", "pool", "--input", "96x55x55", "--kernel", "3", "--stride", "2", "--json")
    assert json.loads(out)["output_shape"] == [96, 27, 27]
    _, out, _ = cli("calc", "pool", "--input", "1x5x5", "--kernel", "2", "--mode", "min", "--ceil", "--json")
    doc = json.loads(out)
    assert doc["output_shape"] == [1, 3, 3] and doc["op"] == "minpool2d"
    _, out, _ = cli("calc", "pool", "--input", "512x7x7", "--global", "--json")
    assert json.loads(out)["output_shape"] == [512, 1, 1]
    _, out, _ = cli("calc", "pool", "--input", "256x13x13", "--adaptive", "6", "--json")
    assert json.loads(out)["output_shape"] == [256, 6, 6]


POOL_GRID = "1,3,2,4;5,6,1,2;7,2,3,1;0,1,4,8"


def _torch_pools(grid: list[list[float]], kernel, stride, padding, dilation) -> dict[str, list[list[float]]]:
    import torch
    import torch.nn.functional as F

    x = torch.tensor(grid, dtype=torch.float64)[None, None]
    pools = {"max": F.max_pool2d(x, kernel, stride, padding, dilation),
             "min": -F.max_pool2d(-x, kernel, stride, padding, dilation)}
    if dilation in (1, (1, 1)):
        pools["avg"] = F.avg_pool2d(x, kernel, stride, padding)
    return {mode: y[0, 0].tolist() for mode, y in pools.items()}


def _text(grid: list[list[float]]) -> str:
    return ";".join(",".join(f"{v:g}" for v in row) for row in grid)


@pytest.mark.parametrize(("shape", "kernel", "stride", "padding", "dilation"), [
    ((4, 4), 2, None, 0, 1),           # the classic 2x2 windows at stride 2
    ((5, 5), 3, 2, 0, 1),              # overlapping windows: stride below the kernel
    ((5, 6), 2, 3, 0, 1),              # stride above the kernel: inputs no window reads
    ((5, 5), 3, 2, 1, 1),              # padding: max never picks it, avg counts it as 0
    ((6, 7), (3, 2), (2, 1), (1, 1), 1),  # per-axis settings
    ((7, 7), 3, 1, 1, 2),              # dilation (max and min only)
    ((1, 9), (1, 3), (1, 2), 0, 1),    # one row
])
def test_pool_values_are_torchs(cli, shape, kernel, stride, padding, dilation) -> None:
    rng = np.random.default_rng(sum(shape) + (kernel if isinstance(kernel, int) else sum(kernel)))
    grid = rng.integers(-9, 10, size=shape).astype(float)
    grid[0, 0] += 0.5  # one fraction: values need not be whole
    mode = "all" if dilation == 1 else "min"

    def flag(v):
        return "x".join(map(str, v)) if isinstance(v, tuple) else str(v)

    # --values=: a grid that starts with a minus sign would read as an option
    argv = ["calc", "pool", f"--values={_text(grid.tolist())}", "--kernel", flag(kernel), "--padding", flag(padding),
            "--dilation", flag(dilation), "--mode", mode, "--json"]
    if stride is not None:
        argv += ["--stride", flag(stride)]
    code, out, err = cli(*argv)
    assert code == 0, err
    doc = json.loads(out)
    expected = _torch_pools(grid.tolist(), kernel, stride, padding, dilation)
    assert set(doc["outputs"]) == ({"max", "avg", "min"} if mode == "all" else {"min"})
    for name, pooled in doc["outputs"].items():
        np.testing.assert_allclose(pooled, expected[name], rtol=0, atol=1e-12)
    assert doc["output_shape"] == [1, len(expected["max"]), len(expected["max"][0])]
    # every window holds what the padded input holds under it, and gives the pooled value
    first = doc["windows"][0]
    assert first["output"] == [0, 0] and {m: first["results"][m] for m in doc["outputs"]} == {
        m: doc["outputs"][m][0][0] for m in doc["outputs"]}


def test_pool_values_text_and_explain(cli) -> None:
    code, out, err = cli("calc", "pool", "--values", POOL_GRID, "--kernel", "2", "--explain")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "MaxPool2d(kernel 2x2, stride 2): 1x4x4 -> 1x2x2"
    assert lines[1:3] == ["  input      max", "  1 3 2 4    6 4"]
    assert "  window rows 0-1, cols 0-1: max(1, 3, 5, 6) = 6" in lines
    assert "  window rows 2-3, cols 2-3: max(3, 1, 4, 8) = 8" in lines
    code, out, _ = cli("calc", "pool", "--values", POOL_GRID, "--kernel", "2", "--mode", "all", "--explain")
    assert "  window rows 2-3, cols 0-1: (7, 2, 0, 1) -> max 7, avg 10/4 = 2.5, min 0" in out.splitlines()
    code, out, _ = cli("calc", "pool", "--values", POOL_GRID, "--kernel", "3", "--stride", "2", "--padding", "1",
                       "--mode", "avg", "--explain")
    assert "window rows 0-2, cols 0-2: avg(pad, pad, pad, pad, 1, 3, pad, 5, 6) = 15/9 = 1.66667" in out


def test_pool_values_with_an_agreeing_input_shape(cli) -> None:
    with_shape = cli("calc", "pool", "--values", POOL_GRID, "--kernel", "2", "--input", "1x4x4", "--json")
    without = cli("calc", "pool", "--values", POOL_GRID, "--kernel", "2", "--json")
    assert with_shape == without and with_shape[0] == 0
    assert json.loads(without[1])["outputs"] == {"max": [[6, 4], [7, 8]]}


def test_stack_table_and_json(cli) -> None:
    layers = ["conv 32 k5", "pool k2", "conv 64 k5 p2", "pool k2", "flatten", "fc 128", "fc 10"]
    code, out, _ = cli("calc", "stack", "--input", "1x28x28", *layers)
    assert code == 0
    assert "2304" in out and "348,426" in out
    code, out, _ = cli("calc", "stack", "--input", "1x28x28", *layers, "--json")
    doc = json.loads(out)
    assert [layer["output_shape"] for layer in doc["layers"]][-3:] == [[2304], [128], [10]]
    assert doc["totals"]["params"] == 348_426
    assert doc["totals"]["receptive_field"]["size"] == [36, 36]


def test_tour_runs_and_has_json(cli) -> None:
    code, out, _ = cli("calc", "tour")
    assert code == 0 and "34,944" in out and "40,960" in out
    code, out, _ = cli("calc", "tour", "--json")
    assert len(json.loads(out)["stops"]) >= 8


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["calc", "conv", "--input", "3x5x5", "--out-channels", "8", "--kernel", "7"], "at least 7 along H"),
        (["calc", "conv", "--input", "3x32x32", "--out-channels", "8", "--kernel", "3", "--groups", "2"],
         "groups 2 does not divide"),
        (["calc", "conv", "--input", "3xfoo", "--out-channels", "8", "--kernel", "3"], "cannot read shape"),
        (["calc", "conv", "--input", "3x32x32", "--out-channels", "8", "--kernel", "abc"], "expected an integer"),
        (["calc", "conv", "--input", "3x32x32", "--kernel", "3"], "--out-channels"),
        (["calc", "pool", "--input", "3x32x32"], "pooling needs --kernel"),
        (["calc", "pool", "--input", "3x2x2", "--kernel", "3"], "at least 3 along H"),
        (["calc", "pool", "--values", "1,2;3", "--kernel", "1"], "every row needs the same number of values"),
        (["calc", "pool", "--values", "1,x;3,4", "--kernel", "1"], "'x' is not a number"),
        (["calc", "pool", "--values", POOL_GRID, "--kernel", "5"], "the input must be at least 5 along H"),
        (["calc", "pool", "--values", POOL_GRID, "--kernel", "2", "--input", "1x5x5"],
         "does not match the values, a 4x4 grid (1x4x4)"),
        (["calc", "pool", "--values", POOL_GRID, "--kernel", "2", "--mode", "avg", "--dilation", "2"],
         "average pooling has no dilation"),
        (["calc", "pool", "--kernel", "2"], "pooling needs --input CxHxW (a shape), or --values"),
        (["calc", "pool", "--input", "1x4x4", "--kernel", "2", "--mode", "all"], "--mode all pools values"),
        (["calc", "stack", "--input", "1x28x28", "conv 8 k3", "fc 10"], "add 'flatten' before it"),
        (["calc", "stack", "--input", "1x28x28", "conv 8 q3"], "cannot read 'q3'"),
        (["calc", "nothing"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_two(cli, argv: list[str], fragment: str) -> None:
    code, out, err = cli(*argv)
    assert code == 2
    assert out == ""
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_console_script_never_shows_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "calc", "conv", "--input", "3x4x4", "--out-channels", "2", "--kernel", "5"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("cnnlab: error: kernel (effective size 5)")
    assert "Traceback" not in proc.stderr


def test_the_calculator_never_imports_torch() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from cnnlab.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['calc', 'stack', '--input', '1x28x28', 'conv 6 k5 p2', 'pool k2', 'flatten', 'fc 10'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
