"""`cnnlab calc`: real output, JSON alone on stdout, and one line for every mistake."""

from __future__ import annotations

import json
import subprocess
import sys

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
