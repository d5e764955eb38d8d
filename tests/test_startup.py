"""Start-up: building the command line and printing any command's `--help` imports nothing the
help text does not need (no numpy, SciPy, rich, msgspec, matplotlib or framework, and none of
the run-file records, the job identities, the statistics, the run index or the API), which is
what keeps every `mnist-bench COMMAND --help` within a few times a bare interpreter's start.
The checks are on module names, not on timings: a machine's load does not move them."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import FRAMEWORKS, ROOT, cli_importing_none_of
from mnist_bench import cli

HEAVY = ("numpy", "scipy", "rich", "msgspec", "matplotlib", "pandas", "ray", *FRAMEWORKS)
# What only reading run files and analysing them needs: describing an option never does.
ANALYSIS = (
    "mnist_bench.api",
    "mnist_bench.results",
    "mnist_bench.runfile.records",
    "mnist_bench.runfile.collect",
    "mnist_bench.runfile.index",
    "mnist_bench.runfile.storage",
    "mnist_bench.core.identity",
    "mnist_bench.core.stats",
    "mnist_bench.analyse.rows",
    "mnist_bench.analyse.compare",
    "mnist_bench.analyse.report",
    "mnist_bench.analyse.history",
    "mnist_bench.analyse.parity",
    "mnist_bench.publish.export",
    "mnist_bench.execute.runner",
    "sqlite3",
)
CONFIG = "mnist_bench.core.config"  # `run`'s options are its fields: only `run` describes it
COMMANDS = ["", *(command[0] for command in cli.COMMANDS)]  # every command, new ones included


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "top")
def test_help_imports_nothing_heavy(command):
    banned = (*HEAVY, *ANALYSIS, *((CONFIG,) if command != "run" else ()))
    out = cli_importing_none_of(banned, *([command] if command else []), "--help")
    assert out.stdout.startswith(f"usage: mnist-bench {command}".rstrip()), out.stdout[:300]


def test_building_the_whole_parser_imports_nothing_heavy():
    script = (
        "import sys\n"
        "from mnist_bench.cli import build_parser\n"
        "parser = build_parser()\n"
        "commands = parser._subparsers._group_actions[0].choices\n"
        "print(len(commands), sum(len(p._actions) for p in commands.values()))\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0, out.stderr
    count, options = map(int, out.stdout.splitlines()[0].split())
    assert count == len(cli.COMMANDS) and options > 3 * count  # every command has its options
    assert out.stdout.splitlines()[1] == "[]"


def test_building_the_whole_parser_imports_no_analysis():
    script = (
        "import sys\n"
        "from mnist_bench.cli import build_parser\n"
        "build_parser()\n"
        f"print(sorted(m for m in {ANALYSIS!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert out.returncode == 0 and out.stdout == "[]\n", out.stdout + out.stderr


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda c: c.name)
def test_each_command_is_a_module_with_its_options_and_its_handler(command):
    """`bench/commands/MODULE.py` holds `add_NAME` and `cmd_NAME`; `cli.py` holds neither."""
    import importlib

    module = importlib.import_module(f"mnist_bench.commands.{command.module}")
    assert callable(getattr(module, f"add_{command.name}"))
    assert callable(getattr(module, f"cmd_{command.name}"))
    assert not any(name.startswith(("_add_", "_cmd_", "add_", "cmd_")) for name in vars(cli))


def test_a_command_parses_with_its_own_options_only():
    """`main` fills in only the command it was given; the others keep their name and help."""
    parser = cli.build_parser(only="history")
    commands = parser._subparsers._group_actions[0].choices
    assert any("--fail-on-step" in a.option_strings for a in commands["history"]._actions)
    assert [a.dest for a in commands["report"]._actions] == ["help"]
    full = cli.build_parser()._subparsers._group_actions[0].choices
    assert [a.dest for a in full["history"]._actions] == [
        a.dest for a in commands["history"]._actions
    ]
