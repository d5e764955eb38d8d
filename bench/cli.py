"""The `mnist-bench` command line: the top-level parser, and dispatch to the commands.

Each command is a module of `mnist_bench.commands` (its options, and a handler that parses,
calls the API and renders). Keep this module thin and fast: it imports no framework and no
command but the one it was given, so that `mnist-bench --help` and every command's `--help`
start within a few times a bare interpreter's start.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple

from mnist_bench.core import escape
from mnist_bench.core.console import closed_stdout, discard_stdout
from mnist_bench.core.errors import UserError

EPILOG = """examples:
  mnist-bench run                                   the seed notebook's three nets (not every
                                                    variant), on every installed backend
  mnist-bench run -b jax -v two-dense --epochs 1 --train-limit 6000
  mnist-bench run --seeds 0,1,2                     three seeds: mean ± 95% CI in the table
  mnist-bench list                                  variants, backends and devices
  mnist-bench report results/runs/*.json --format markdown
  mnist-bench compare results/baseline results/runs/NEW.json
  mnist-bench check results/runs/NEW.json --baseline results/baseline
  mnist-bench run --suite suites/ci.toml --shard 2/3  one of three CI shards; then
  mnist-bench merge shards/*.json -o merged.json     one run file from the three

exit codes: 0 ok; 1 a record failed, or a check found a regression; 2 bad input;
130/143 interrupted (the run file keeps every finished record: resume with --resume);
141 standard output closed early (e.g. piped into head): the output was cut short."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {escape.terminal(message)} (see {self.prog} --help)\n")


def _not_blank(text: str) -> str:
    """A command's options and arguments are names, paths and numbers, never blank: an empty
    path would mean the current folder, an empty name the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty value ({text!r})")
    return text


def build_parser(only: str | None = None) -> Parser:
    """The whole command line; with `only`, every command keeps its name and help but only that
    one gets its options, so that parsing it imports just what that command needs to describe
    itself (`main` passes the command it was given)."""
    parser = Parser(
        prog="mnist-bench",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Benchmark Keras 3 model variants on MNIST across TensorFlow, "
        "JAX and PyTorch: accuracy, training time, throughput.",
    )
    from mnist_bench import __version__

    parser.add_argument("--version", action="version", version=f"mnist-bench {__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    for spec in COMMANDS:
        command = sub.add_parser(spec.name, help=spec.help, description=spec.help)
        command.register("type", None, _not_blank)  # the type of every option given none
        if only is None or spec.name == only:
            spec.function("add")(command)
    return parser


class Command(NamedTuple):
    """A command: its name, its one-line help, and the module of `mnist_bench.commands` that
    holds its `add_NAME(parser)` (its options) and `cmd_NAME(args)` (its handler)."""

    name: str
    help: str
    module: str

    def function(self, kind: str) -> Callable:
        """`add_NAME` or `cmd_NAME` (`kind`: add or cmd), importing the command's module."""
        module = importlib.import_module(f"mnist_bench.commands.{self.module}")
        return getattr(module, f"{kind}_{self.name}")


COMMANDS: list[Command] = [
    Command(
        "run",
        "train and measure variants on backends (default: the seed notebook's three on every "
        "installed backend); writes one JSON run file",
        "run",
    ),
    Command(
        "list",
        "show the variants (parameters, FLOPs, defaults) and backends (versions, devices)",
        "listing",
    ),
    Command(
        "env", "show this machine's provenance block: CPU, memory, GPUs, versions, commit", "env"
    ),
    Command("report", "merge run files into a table, Markdown, CSV or HTML report", "report"),
    Command("compare", "compare two sets of runs row by row, with a verdict per row", "compare"),
    Command("check", "CI gate: exit 1 when accuracy regressed against a baseline", "compare"),
    Command(
        "merge",
        "join the run files of a sharded run (run --shard I/N) into one, naming any shard or "
        "job missing or doubled",
        "merge",
    ),
    Command(
        "history",
        "results over commits per configuration and machine: trends and the commits where "
        "accuracy or epoch time stepped",
        "history",
    ),
    Command(
        "parity",
        "do the backends agree? per-sample prediction agreement, accuracy spread and "
        "confusion-matrix differences of the same jobs on different backends",
        "parity",
    ),
    Command(
        "baseline",
        "refresh the committed CI baseline on purpose (runs suites/ci.toml)",
        "baseline",
    ),
    Command(
        "schema",
        "print the run file's JSON Schema (draft 2020-12), generated from the typed records",
        "schema",
    ),
    Command(
        "export",
        "run files to github-action-benchmark or Bencher JSON, or to an MLflow tracking server",
        "export",
    ),
    Command(
        "index",
        "build or refresh the run index, the cache that makes reading thousands of run files "
        "quick (every reader keeps it up to date)",
        "index",
    ),
    Command(
        "power",
        "power analysis of the accuracy gate: the smallest drop it catches per row and as a "
        "whole, its false-alarm rate, and the cheapest suite reaching a target, from seed spreads",
        "power",
    ),
]


# A reader that closed standard output (`mnist-bench history | head`): 128 + SIGPIPE, the code a
# Unix tool killed by the signal gives, for every command, never the command's own code: a gate
# cut short must not read as passed, nor output cut short as a regression. Quietly: a plain
# print stops the command there; the rich console lets it finish (a run saves every record).
CLOSED_STDOUT = 141


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            code = _command(argv)
        finally:  # a closed pipe shows here (--help too), not in the interpreter's last flush
            if sys.stdout is not None:
                sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()  # what is still buffered goes nowhere, not into an error at exit
        return CLOSED_STDOUT
    return CLOSED_STDOUT if closed_stdout() else code


def _command(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), "")  # no option takes a value here
    args = build_parser(only=command).parse_args(argv)
    handler = next(c for c in COMMANDS if c.name == args.command).function("cmd")
    try:
        return handler(args)
    except UserError as exc:
        print(f"mnist-bench {args.command}: error: {escape.terminal(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # `run` handles its own; anything else stops with nothing written
        print(f"mnist-bench {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
