"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cnnlab.cli import main


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory) -> None:
    """Caches the package writes (the model catalogue) go to a folder of the test run."""
    import os

    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """Run the `cnnlab` command in-process: returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors and --help
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A finished LeNet-5 run on 2,000 MNIST-5k images (two epochs, about two seconds, ~90% test top-1)."""
    from cnnlab.train.config import override
    from cnnlab.train.loop import fit
    from cnnlab.train.recipes import get_recipe

    runs = tmp_path_factory.mktemp("runs")
    cfg = override(get_recipe("lenet5-mnist"), dict(
        dataset="mnist-5k", limit=2000, epochs=2, batch_size=50, eval_batch_size=500, log_every=5,
        out=str(runs), name="lenet-mnist", device="cpu", lr=0.05))
    return fit(cfg, quiet=True).run_dir


@pytest.fixture(scope="module")
def explorer_url(trained_run):
    """The explorer's real threaded server on a free loopback port, over the trained run's runs folder."""
    pytest.importorskip("flask")
    from cnnlab.web.server import serving

    with serving(trained_run.parent) as url:
        yield url
