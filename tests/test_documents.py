"""One question, one document: the command's --json and the explorer's JSON are equal.

Both are adapters over :mod:`cnnlab.lab`; these cases ask each query that both offer the same
question through each, and every such query must have a case here.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

pytest.importorskip("flask")

from cnnlab.lab import QUERIES
from cnnlab.web.app import ENDPOINTS, create_app


@pytest.fixture(scope="module")
def client(trained_run):
    return create_app(trained_run.parent).test_client()


def _api(client, method: str, path: str, body: dict | None = None) -> dict:
    response = client.get(path) if method == "GET" else client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _cli(cli, *argv: str) -> dict:
    code, out, err = cli(*argv)
    assert code == 0, err
    return json.loads(out)


LENET = ["conv 6 k5 p2", "pool k2", "conv 16 k5", "pool k2", "flatten", "fc 120"]

CASES = [
    ("analyze", ["inspect", "resnet20", "--input", "3x32x32", "--json"], "GET",
     "/api/analyze?model=resnet20&input=3x32x32", None),
    ("analyze", ["inspect", "googlenet", "--json"], "GET", "/api/analyze?model=googlenet", None),
    ("analyze", ["inspect", "vgg11", "--input", "3x64x64", "--batch", "8", "--optimizer", "adam", "--depth", "1",
                 "--json"], "GET", "/api/analyze?model=vgg11&input=3x64x64&batch=8&optimizer=adam&depth=1", None),
    ("analyze", ["inspect", "{run}", "--json"], "GET", "/api/analyze?run={name}", None),
    ("compare", ["compare", "resnet20", "nin_cifar", "--input", "3x32x32", "--json"], "GET",
     "/api/compare?models=resnet20,nin_cifar&input=3x32x32", None),
    ("compare", ["compare", "lenet5", "resnet20", "--batch", "4", "--json"], "GET",
     "/api/compare?models=lenet5,resnet20&batch=4", None),
    ("layer", ["calc", "conv", "--input", "3x227x227", "--out-channels", "96", "--kernel", "11", "--stride", "4",
               "--json"], "GET", "/api/layer?input=3x227x227&layer=" + quote("conv 96 k11 s4"), None),
    ("layer", ["calc", "conv", "--input", "3x32x32", "--out-channels", "8", "--kernel", "3", "--padding", "same",
               "--dilation", "2", "--no-bias", "--padding-mode", "reflect", "--json"], "GET",
     "/api/layer?input=3x32x32&layer=" + quote("conv 8 k3 psame d2 nobias reflect"), None),
    ("layer", ["calc", "pool", "--input", "96x55x55", "--kernel", "3", "--stride", "2", "--ceil", "--json"], "GET",
     "/api/layer?input=96x55x55&layer=" + quote("pool k3 s2 ceil"), None),
    ("layer", ["calc", "pool", "--input", "256x13x13", "--adaptive", "6", "--mode", "avg", "--json"], "GET",
     "/api/layer?input=256x13x13&layer=" + quote("adaptive 6 avg"), None),
    ("layer", ["calc", "pool", "--input", "512x7x7", "--global", "--json"], "GET",
     "/api/layer?input=512x7x7&layer=gmp", None),
    ("layer", ["calc", "pool", "--input", "512x7x7", "--global", "--mode", "min", "--json"], "GET",
     "/api/layer?input=512x7x7&layer=gmin", None),
    ("stack", ["calc", "stack", "--input", "1x28x28", *LENET, "--json"], "POST", "/api/stack",
     {"input": "1x28x28", "layers": LENET}),
    ("conv", ["scratch", "explain", "--input", "1,2,3;4,5,6;7,8,9", "--kernel", "1,0;0,-1", "--stride", "1",
              "--json"], "POST", "/api/conv", {"input": "1,2,3;4,5,6;7,8,9", "kernel": "1,0;0,-1", "stride": 1}),
    ("conv", ["scratch", "explain", "--padding", "1", "--stride", "2", "--bias", "1", "--json"], "POST", "/api/conv",
     {"padding": 1, "stride": 2, "bias": 1}),
    ("pool", ["calc", "pool", "--values", "1,3,2,4;5,6,1,2;7,2,3,1;0,1,4,8", "--kernel", "3", "--stride", "2",
              "--padding", "1", "--mode", "all", "--json"], "POST", "/api/pool",
     {"values": "1,3,2,4;5,6,1,2;7,2,3,1;0,1,4,8", "kernel": 3, "stride": 2, "padding": 1, "mode": "all"}),
    ("pool", ["calc", "pool", "--values", "1,2;3,4", "--kernel", "2", "--input", "1x2x2", "--json"], "POST",
     "/api/pool", {"values": [[1, 2], [3, 4]], "kernel": "2", "input": "1x2x2"}),
    ("runs", ["runs", "--runs", "{runs}", "--json"], "GET", "/api/runs", None),
    ("run", ["runs", "{name}", "--runs", "{runs}", "--json"], "GET", "/api/runs/{name}", None),
]


@pytest.mark.parametrize(("query", "argv", "method", "path", "body"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_the_command_and_the_explorer_answer_with_one_document(cli, client, trained_run, query, argv, method, path,
                                                               body) -> None:
    names = {"run": str(trained_run), "name": trained_run.name, "runs": str(trained_run.parent)}
    argv = [a.format(**names) if a.startswith("{") else a for a in argv]
    assert _cli(cli, *argv) == _api(client, method, path.format(**names), body)


def test_every_query_a_command_answers_has_a_case() -> None:
    answered = {q.name for q in QUERIES if q.command}
    assert answered == {c[0] for c in CASES}


def test_the_endpoint_table_is_the_list_of_queries(client) -> None:
    assert client.get("/api").get_json()["endpoints"] == ENDPOINTS
    listed = {route.split(" ")[1].split("?")[0] for route in ENDPOINTS}
    assert listed == {"/api", "/api/health", *(q.route for q in QUERIES)}
    for query in QUERIES:  # each documented route answers (a missing argument is a 400, never a 404)
        response = client.open(query.route.replace("<name>", "nothing-here"),
                               method="GET" if query.method == "GET" else "POST")
        assert response.status_code in (200, 400), (query.name, response.status_code)


@pytest.mark.parametrize(("flag", "form"), [("--csv", "csv"), ("--markdown", "md")])
@pytest.mark.parametrize("depth", [None, "1"])
def test_the_table_downloads_are_the_commands_tables(cli, client, flag, form, depth) -> None:
    argv = ["inspect", "resnet20", "--input", "3x32x32", flag, *(["--depth", depth] if depth else [])]
    code, out, err = cli(*argv)
    assert code == 0, err
    response = client.get(f"/api/analyze?model=resnet20&input=3x32x32&format={form}" + (f"&depth={depth}" if depth
                                                                                          else ""))
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == f'attachment; filename="resnet20-3x32x32.{form}"'
    assert response.get_data(as_text=True) == out
    assert len(out.splitlines()) > (5 if depth else 20)
