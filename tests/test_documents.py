"""One question, one document: the command's --json and the explorer's JSON are equal."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("flask")

from cnnlab.web.app import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return create_app(tmp_path_factory.mktemp("runs")).test_client()


def _api(client, method: str, path: str, body: dict | None = None) -> dict:
    response = client.get(path) if method == "GET" else client.post(path, json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _cli(cli, *argv: str) -> dict:
    code, out, err = cli(*argv)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(("argv", "method", "path", "body"), [
    (["inspect", "resnet20", "--input", "3x32x32", "--json", "--explain"], "GET",
     "/api/analyze?model=resnet20&input=3x32x32", None),
    (["inspect", "googlenet", "--json", "--explain"], "GET", "/api/analyze?model=googlenet&input=3x224x224", None),
    (["compare", "resnet20", "nin_cifar", "--input", "3x32x32", "--json"], "GET",
     "/api/compare?models=resnet20,nin_cifar&input=3x32x32", None),
    (["calc", "stack", "--input", "1x28x28", "conv 6 k5 p2", "pool k2", "conv 16 k5", "pool k2", "flatten", "fc 120",
      "--json"], "POST", "/api/stack", {"input": "1x28x28", "layers": ["conv 6 k5 p2", "pool k2", "conv 16 k5",
                                                                       "pool k2", "flatten", "fc 120"]}),
    (["scratch", "explain", "--input", "1,2,3;4,5,6;7,8,9", "--kernel", "1,0;0,-1", "--stride", "1", "--json"],
     "POST", "/api/conv", {"input": "1,2,3;4,5,6;7,8,9", "kernel": "1,0;0,-1", "stride": 1}),
], ids=["analyze", "analyze-branches", "compare", "stack", "conv"])
def test_the_command_and_the_explorer_answer_with_one_document(cli, client, argv, method, path, body) -> None:
    assert _cli(cli, *argv) == _api(client, method, path, body)
