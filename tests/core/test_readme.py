"""The README's commands stay true: every `make` target it names exists, every `tirgym`
verb it shows exists and takes the options it is shown with, and every config it names
loads. (Running them is the job of the tests of each feature; this catches a renamed
target, verb, option or file.)"""

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tirgym.cli import app
from tirgym.trainer.config import load_config

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def shell_lines() -> list[str]:
    """Command lines of the README's bash blocks, comments stripped."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def tirgym_commands() -> list[list[str]]:
    """The argv after `tirgym` of each README line that runs the CLI."""
    cmds = []
    for line in shell_lines():
        words = shlex.split(line.replace("[", "").replace("]", ""))
        for i, w in enumerate(words):
            if w == "tirgym" and (i == 0 or words[i - 1] == "-m"):
                cmds.append(words[i + 1 :])
                break
    return cmds


def test_readme_make_targets_exist():
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    named = {line.split()[1] for line in shell_lines() if line.startswith("make ")}
    assert {"demo", "test"} <= named
    assert named <= targets, named - targets


def test_the_quickstart_is_exactly_two_commands():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quick, re.S).group(1)
    assert [line.split()[:2] for line in block.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]


@pytest.mark.parametrize("argv", tirgym_commands(), ids=lambda a: " ".join(a[:2]))
def test_readme_cli_lines_name_real_verbs_and_options(argv):
    path = [argv[0]]
    if argv[0] in ("model", "sandbox"):  # verb groups: the sub-verb is the next word
        path.append(argv[1])
    res = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert res.exit_code == 0, (argv, res.output)
    help_text = re.sub(r"\x1b\[[0-9;]*m", "", res.output)
    for opt in (w.split("=")[0] for w in argv if w.startswith("--")):
        assert opt in help_text, f"`tirgym {' '.join(path)}` has no option {opt}"


def test_readme_configs_exist_and_load():
    named = set(re.findall(r"configs/[\w.-]+\.yaml", README))
    assert "configs/smollm2_tir.yaml" in named
    for rel in named:
        load_config(ROOT / rel)
