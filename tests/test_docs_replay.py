"""The documents cannot drift from the commands they show.

Every ```console block of README.md and docs/ (English and Korean) is a transcript: each `$ `
line is run from a scratch folder that sees the repository's docs/, and what it prints (stdout,
then stderr) must match the lines that follow. A line that is only `...` stands for any number
of lines, and `...` inside a line for any text within it; both are kept for what really varies
(a date, a time). Listings of commands without their output are ```sh blocks: each `cnnlab`
command in them must parse with the real argument parser, each `make` target must exist and
each script must be there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from clilib import leaf_parsers
from cnnlab.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
SHELL_CHARS = set("|><;&`")
# Commands that train or run experiments take minutes: their transcripts are replayed with the slow tests.
SLOW = re.compile(r"^cnnlab (train|experiment|scratch train)\b")


@dataclass(frozen=True)
class Step:
    command: str
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    kind: str  # "console" or "sh"
    lines: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    def steps(self) -> list[Step]:
        steps: list[Step] = []
        command: str | None = None
        expected: list[str] = []
        for text in self.lines:
            if text.startswith("$ "):
                if command is not None:
                    steps.append(Step(command, tuple(expected)))
                command, expected = text[2:], []
            elif command is None:
                raise AssertionError(f"{self.id}: a console block starts with a `$ ` command line, not {text!r}")
            else:
                expected.append(text)
        if command is not None:
            steps.append(Step(command, tuple(expected)))
        return steps


def _blocks() -> list[Block]:
    blocks = []
    for document in DOCUMENTS:
        fence: str | None = None
        start, body = 0, []
        for number, text in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            if fence is None:
                if text.startswith("```") and text[3:].strip() in ("console", "sh"):
                    fence, start, body = text[3:].strip(), number, []
            elif text.startswith("```"):
                blocks.append(Block(document, start, fence, tuple(body)))
                fence = None
            else:
                body.append(text)
    return blocks


BLOCKS = _blocks()
CONSOLE = [b for b in BLOCKS if b.kind == "console"]
LISTINGS = [b for b in BLOCKS if b.kind == "sh"]


def _pattern(expected: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for text in expected:
        if text == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*".join(re.escape(piece) for piece in text.rstrip().split("...")) + r"[ \t]*\n")
    return re.compile("".join(parts))


def _normalize(output: str) -> str:
    lines = [line.rstrip() for line in output.splitlines()]
    return "".join(line + "\n" for line in lines)


def _is_slow(block: Block) -> bool:
    return any(SLOW.match(step.command) for step in block.steps())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder like the repository root for what the commands read (docs/), and nothing they could overwrite."""
    folder = tmp_path_factory.mktemp("replay")
    (folder / "docs").symlink_to(ROOT / "docs")
    return folder


def _run(command: str, cwd: Path) -> str:
    """What the command prints, stdout then stderr, run as a user would type it with the venv active."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="160", NO_COLOR="1", TERM="dumb")
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return done.stdout + done.stderr


def _run_in_process(command: str, cwd: Path, cli, monkeypatch) -> str:
    monkeypatch.chdir(cwd)
    _, out, err = cli(*shlex.split(command)[1:])
    return out + err


def _replay(block: Block, cwd: Path, cli, monkeypatch) -> None:
    for step in block.steps():
        words = step.command
        if words.startswith("cnnlab ") and not SHELL_CHARS & set(words):
            printed = _run_in_process(words, cwd, cli, monkeypatch)
        else:
            printed = _run(words, cwd)
        actual = _normalize(printed)
        if not _pattern(step.expected).fullmatch(actual):
            shown = "\n".join(step.expected)
            raise AssertionError(f"{block.id}: `{words}` printed\n{actual}\nbut the document shows\n{shown}")


@pytest.mark.parametrize("block", [b for b in CONSOLE if not _is_slow(b)], ids=lambda b: b.id)
def test_console_blocks_print_what_the_documents_show(block, scratch, cli, monkeypatch) -> None:
    _replay(block, scratch, cli, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in CONSOLE if _is_slow(b)] or [None], ids=lambda b: b.id if b else "none")
def test_console_blocks_that_train_print_what_the_documents_show(block, scratch, cli, monkeypatch) -> None:
    if block is None:
        pytest.skip("no console block trains")
    _replay(block, scratch, cli, monkeypatch)


# ---------------------------------------------------------------------------------------------
# Listings: commands without output


def _commands(block: Block) -> list[str]:
    """The block's commands: prompts and comments removed, continuation lines joined."""
    commands, pending = [], ""
    for text in block.lines:
        text = text.removeprefix("$ ")
        pending += text.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        command = re.sub(r"\s+#.*$", "", pending).strip()
        pending = ""
        if command and not command.startswith("#"):
            commands.append(command)
    return commands


def _cnnlab_argv(command: str) -> list[str] | None:
    """The arguments a command gives `cnnlab`, optional parts `[...]` taken, or None if it does not call it."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command)
    words = shlex.split(command)
    for i, word in enumerate(words):
        if Path(word).name == "cnnlab":
            return words[i + 1:]
        if word == "-m" and i + 1 < len(words) and words[i + 1] == "cnnlab":
            return words[i + 2:]
    return None


def _check_listing(command: str) -> None:
    argv = _cnnlab_argv(command)
    words = shlex.split(re.sub(r"\[([^\]]*)\]", r"\1", command))
    if argv is not None:
        argv = [a for a in argv if a != "..."]
        try:
            build_parser(None).parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"`{command}` does not parse (exit {exc.code})") from None
    elif words[0] == "make":
        targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
        missing = [w for w in words[1:] if "=" not in w and w not in targets]
        assert not missing, f"`{command}`: no make target {missing}"
    elif words[0] in ("python", "python3"):
        script = next((w for w in words[1:] if w.endswith(".py")), None)
        if script is not None:
            assert (ROOT / script).is_file(), f"`{command}`: {script} does not exist"


@pytest.mark.parametrize("block", LISTINGS, ids=lambda b: b.id)
def test_listed_commands_parse(block, capsys) -> None:
    for command in _commands(block):
        _check_listing(command)


def test_every_block_is_checked() -> None:
    """A fence other than console or sh around a command would escape the checks above."""
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in re.finditer(r"^```(\w*)\n\$ ", text, re.M):
            assert match.group(1) in ("console", "sh"), f"{document.relative_to(ROOT)}: a `$ ` command in a ```{match.group(1)} block"


# ---------------------------------------------------------------------------------------------
# Numbers that benchmarks and commands produce


def _fill_docs():
    spec = importlib.util.spec_from_file_location("fill_docs", ROOT / "scripts" / "fill-docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numbers_in_the_documents_are_those_their_results_files_hold(capsys) -> None:
    code = _fill_docs().main(["--check"])
    assert code == 0, capsys.readouterr().out


def test_a_number_typed_over_its_source_is_found() -> None:
    fill_docs = _fill_docs()
    text = "LeNet-5 reaches <!--v:main-job.top1-->99.99%<!--/v--> here.\n<!--begin:counters-->\n| old |\n<!--end:counters-->\n"
    new, changes = fill_docs.fill(text, "x.md")
    assert [c.split(":")[1].strip() for c in changes] == ["main-job.top1", "block counters changed"]
    top1 = json.loads((ROOT / "bench" / "results" / "train_throughput.json").read_text())["main_job"]["test_top1"]
    assert f"<!--v:main-job.top1-->{top1:.2%}<!--/v-->" in new
    assert "| resnet50 | 4.089 | 4.089 |" in new


def test_every_command_but_serve_takes_json() -> None:
    """What the README promises: `--json` everywhere except the server, which prints no result."""
    without = [" ".join(path) for path, parser in leaf_parsers()
               if not any("--json" in a.option_strings for a in parser._actions)]
    assert without == ["serve"]


def _catalog(cli) -> dict[str, dict]:
    code, out, err = cli("models", "--json")
    assert code == 0, err
    return {m["name"]: m for m in json.loads(out)["models"]}


def test_the_family_pages_give_the_zoo_s_own_counts(cli) -> None:
    """Each model row of docs/models/*.md: its parameter count and GMACs are what `cnnlab models` computes."""
    catalog = _catalog(cli)
    checked = 0
    for page in sorted((ROOT / "docs" / "models").glob("*.md")):
        header: list[str] = []
        for text in page.read_text(encoding="utf-8").splitlines():
            cells = [c.strip() for c in text.strip().strip("|").split("|")]
            if text.startswith("| name "):
                header = cells
                continue
            name = cells[0].strip("`") if text.startswith("| `") else ""
            if name not in catalog:
                continue
            model = catalog[name]
            column = next(i for i, h in enumerate(header) if "param" in h)
            first = re.search(r"\d{1,3}(?:,\d{3})+", cells[column])
            assert first, f"{page.name}: {name}: no parameter count in {cells[column]!r}"
            assert int(first.group().replace(",", "")) in (model["params"], model["trainable_params"]), \
                f"{page.name}: {name}: the page says {first.group()}, cnnlab models says {model['params']:,}"
            if any("GMACs" in h for h in header):
                gmacs = cells[next(i for i, h in enumerate(header) if "GMACs" in h)]
                assert gmacs == f"{model['macs'] / 1e9:.3f}", f"{page.name}: {name}: GMACs {gmacs}"
            checked += 1
    assert checked >= 40
