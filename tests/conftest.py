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
