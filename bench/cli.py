"""The `mnist-bench` command line: parse -> config -> runner -> records -> report.

Keep this module thin and fast: it imports no framework, and each command imports what it needs
only when it runs, so `mnist-bench --help`, `report` and `compare` start in well under a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from mnist_bench.commands import power as power_command
from mnist_bench.core import escape
from mnist_bench.core.console import closed_stdout, discard_stdout, make_console
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
    for name, help_text, add, _ in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.register("type", None, _not_blank)  # the type of every option given none
        if only is None or name == only:
            add(command)
    return parser


# ---------------------------------------------------------------------------------------- run
def _add_run(p: argparse.ArgumentParser) -> None:

    from mnist_bench.core.config import RunConfig

    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        if "cli" not in meta:
            continue
        cli = dict(meta["cli"])
        flags = cli.pop("flags", (f"--{f.name.replace('_', '-')}",))
        p.add_argument(*flags, dest=f.name, help=meta["help"], default=None, **cli)
    p.add_argument("--repeats", type=int, metavar="N", help="shorthand for --seeds 0,1,...,N-1")
    p.add_argument(
        "--resume",
        metavar="RUN.json",
        help="finish an interrupted run: only its missing records, same configuration",
    )
    cluster = p.add_argument_group("on a Ray cluster (pip install 'mnist-bench[ray]')")
    cluster.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: worker processes on this machine (default); ray: each record a Ray task "
        "on a node of the cluster at --address, in the same worker process",
    )
    cluster.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the Ray head's address (ray start --head prints it; port 6379 by default); any "
        "running cluster: a record takes a whole node, asking for all of its CPUs",
    )
    cluster.add_argument(
        "--jobs-per-node",
        type=int,
        metavar="K",
        help="records a node trains at once (default 1: a record has its node to itself; more "
        "only for accuracy-only grids, timings then share the node)",
    )
    cluster.add_argument(
        "--on-every-node",
        nargs="?",
        const="node",
        choices=("node", "kind"),
        help="the whole suite on every node (or with `kind`, on one node of each kind: CPU, "
        "cores, memory, GPUs), to compare machines; report --group-by machine shows them",
    )
    cluster.add_argument(
        "--node-resource",
        metavar="NAME",
        help="a record asks for all of the custom resource NAME a node offers instead of its "
        "CPUs, so only nodes started with ray start --resources '{\"NAME\": 1}' run records "
        "(a mixed cluster); default: mnist_bench_node where some node offers it, else CPU",
    )
    cluster.add_argument(
        "--runtime-env",
        metavar="JSON|FILE",
        help='Ray runtime environment for the tasks, e.g. \'{"pip": ["mnist-bench[jax]"]}\'',
    )
    p.add_argument(
        "--no-figures",
        dest="figures",
        action="store_false",
        help="write the run file only, no PNGs beside it (a CI gate, a large grid; `report "
        "--format html` draws from the run file at any time)",
    )
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table: progress and a table (default); json: one JSON object on standard output "
        "(run file, status, a row per configuration), progress and table on standard error",
    )


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The `run` options given on the command line: RunConfig field -> value."""
    from mnist_bench.api import CONFIG_OPTIONS

    values: dict[str, Any] = {}
    for name in CONFIG_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            if isinstance(value, list):  # repeatable options also take comma-separated lists
                value = [part.strip() for item in value for part in item.split(",")]
                value = tuple(dict.fromkeys(value))  # an empty name stays, to be refused
            values[name] = value
    return values


def _cmd_run(args: argparse.Namespace) -> int:
    from mnist_bench import api
    from mnist_bench.execute.runner import Interrupted, interruptible

    with interruptible():
        try:
            executor = _executor(args)  # connected before a run file exists
            run = api.open_run(
                options_from_args(args), repeats=args.repeats, resume=args.resume, argv=sys.argv
            )
            run.executor = executor
            return execute(run, fmt=args.format, figures=args.figures)
        except Interrupted as exc:
            print("interrupted before the run started", file=sys.stderr)
            return 128 + exc.signum


def _executor(args: argparse.Namespace):
    """None for the local executor; else the Ray executor, connected (Ray imported only here)."""
    cluster = {
        "--address": args.address,
        "--jobs-per-node": args.jobs_per_node,
        "--on-every-node": args.on_every_node,
        "--node-resource": args.node_resource,
        "--runtime-env": args.runtime_env,
    }
    if args.executor != "ray":
        given = [flag for flag, value in cluster.items() if value is not None]
        if given:
            raise UserError(f"{', '.join(given)}: only with --executor ray")
        return None
    if not args.address:
        raise UserError("--executor ray needs --address HOST:PORT (the Ray head's)")
    from mnist_bench.execute import ray_executor

    executor = ray_executor.RayExecutor(
        address=args.address,
        jobs_per_node=1 if args.jobs_per_node is None else args.jobs_per_node,
        on_every_node=args.on_every_node,
        runtime_env=ray_executor.runtime_env_option(args.runtime_env),
        node_resource=args.node_resource,
    )
    executor.connect()
    return executor


def execute(run, *, figures: bool = True, fmt: str = "table", finish: str | None = None) -> int:
    """Run with live progress; then figures, the table, and the exit code. Shared by `run` and
    `baseline update`. With `fmt="json"`, standard output gets one JSON object (`run_json`)
    and everything else goes to standard error. `finish`: the command an interrupted run is
    finished with (default: `mnist-bench run --resume RUN.json`).

    The first SIGINT or SIGTERM stops the run: the record in hand is dropped, its worker killed,
    and the run file marked `interrupted` with what is left. A second one, or any once the run
    file is final, kills the workers and exits at once.
    """
    from mnist_bench import api
    from mnist_bench.execute.runner import exit_at_once_on_signal, interruptible

    with interruptible():
        console = make_console(stderr=fmt == "json")
        results, signum = api.execute_run(
            run, console, figures=figures, when_final=exit_at_once_on_signal
        )
        records, drawn = results.records, results.figures
        console.print(
            results.table(title=f"mnist-bench run {run.file.run_id}", color=console.is_terminal)
        )
        if run.file.determinism_cost:
            from mnist_bench.execute.runner import cost_summary

            console.print(escape.message(cost_summary(run.file.determinism_cost)))
        folder = run.path.with_suffix("")
        console.print(
            escape.text(
                f"results: {run.path}" + (f" (+{len(drawn)} figures in {folder}/)" if drawn else "")
            )
        )
    code = 128 + signum if signum else 0
    if code:
        print(
            f"interrupted: {len(records)} record(s) saved, {len(run.file.pending)} left; "
            f"finish with: {escape.terminal(finish or f'mnist-bench run --resume {run.path}')}",
            file=sys.stderr,
        )
    elif bad := [r for r in records if r.status in ("failed", "diverged")]:
        print(f"error: {len(bad)} record(s) failed or diverged", file=sys.stderr)
        code = 1
    elif not any(r.status == "ok" for r in records):
        reasons = sorted({r.error for r in records if r.error})
        print(f"error: no record ran: {escape.terminal('; '.join(reasons))}", file=sys.stderr)
        code = 1
    if fmt == "json":
        from mnist_bench.core import jsonout

        print(jsonout.dumps(run_json(results, code)), end="")
    return code


def run_json(results, exit_code: int) -> dict[str, Any]:
    """`run --format json`: the run file, its status, the figures, and a row per configuration
    (`Results.summary`)."""
    run = results.runs[0].run
    counts = {status: 0 for status in ("ok", "skipped", "failed", "diverged")}
    for record in run.records:
        counts[record.status] += 1
    return {
        "run_file": str(results.path),
        "run_id": run.run_id,
        "status": run.status,
        "exit_code": exit_code,
        "records": counts,
        "pending": len(run.pending),
        "figures": [str(p) for p in results.figures],
        "rows": results.summary(),
    }


# ----------------------------------------------------------------------------------- baseline
def _add_baseline(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "action",
        choices=("update",),
        help="update: run the suite and replace the committed baseline with it",
    )
    p.add_argument(
        "--suite",
        default="suites/ci.toml",
        metavar="FILE.toml",
        help="the suite that defines the baseline (default: suites/ci.toml)",
    )
    p.add_argument(
        "--baseline-dir",
        default="results/baseline",
        metavar="DIR",
        help="where the baseline lives (default: results/baseline); the run is staged in a "
        "hidden folder beside it (.baseline.update-XXXX) until it is complete",
    )
    p.add_argument(
        "--resume",
        metavar="RUN.json",
        help="finish an interrupted update: the staged run file it named",
    )


def _cmd_baseline(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mnist_bench.execute.baseline import Update
    from mnist_bench.execute.runner import Interrupted, interruptible

    update = Update(Path(args.suite), Path(args.baseline_dir))
    update.check()
    if not args.resume:
        for path in update.stopped():
            print(
                f"mnist-bench baseline: note: an earlier update stopped; finish it with: "
                f"{update.resume_command(path)} (or delete {path.parent})",
                file=sys.stderr,
            )
    with interruptible():
        try:
            run = update.resume(args.resume) if args.resume else update.start(sys.argv)
        except Interrupted as exc:
            print("interrupted before the run started; baseline not updated", file=sys.stderr)
            return 128 + exc.signum
    if isinstance(run, Path):  # staged and complete: only the rename was left
        update.finish(run)
    else:
        code = execute(run, figures=False, finish=update.resume_command(run.path))
        if code:
            if code == 1:  # failed records: nothing to resume, nothing worth keeping
                update.discard(run.path)
            print(
                f"error: baseline not updated (the run did not complete cleanly); "
                f"{escape.terminal(update.final)} is unchanged",
                file=sys.stderr,
            )
            return code
        update.finish(run.path)
    print(f"baseline updated: {escape.terminal(update.final)} (commit it)")
    return 0


# --------------------------------------------------------------------------------------- list
def _add_list(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-probe",
        action="store_true",
        help="skip starting each backend (no parameter counts, FLOPs or devices)",
    )
    p.add_argument(
        "--refresh",
        action="store_true",
        help="describe each backend afresh instead of from the cache (kept per backend in "
        "$MNIST_BENCH_CACHE_DIR, else $XDG_CACHE_HOME/mnist-bench or ~/.cache/mnist-bench, "
        "and renewed by itself when a package version changes)",
    )
    p.add_argument(
        "--suite",
        metavar="FILE.toml",
        help="print the suite's expanded grid and its estimated run time",
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from mnist_bench.execute import inventory

    console = make_console()
    if args.suite:
        from mnist_bench.plan import suite

        console.print(
            inventory.suite_table(
                suite.load(args.suite), probe=not args.no_probe, color=console.is_terminal
            )
        )
        return 0
    for table in inventory.tables(
        probe=not args.no_probe, color=console.is_terminal, refresh=args.refresh
    ):
        console.print(table)
    return 0


# ---------------------------------------------------------------------------------------- env
def _add_env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the environment block as JSON")
    p.add_argument(
        "--peak",
        action="store_true",
        help="measure this machine's float32 matmul peak (GFLOP/s) anew and cache it",
    )


def _cmd_env(args: argparse.Namespace) -> int:

    from mnist_bench.core import environment
    from mnist_bench.execute import inventory, peak

    env = environment.collect()
    env["peak_gflops"] = peak.peak_gflops(refresh=args.peak)
    if args.json:
        print(json.dumps(env, indent=2))
        return 0
    console = make_console()
    console.print(inventory.environment_table(env, color=console.is_terminal))
    return 0


# ------------------------------------------------------------------------------------- schema
def _add_schema(p: argparse.ArgumentParser) -> None:
    p.epilog = (
        "validate a run file with any JSON Schema validator, e.g. "
        "`mnist-bench schema > run.schema.json; check-jsonschema --schemafile run.schema.json "
        "results/runs/RUN.json`"
    )


def _cmd_schema(args: argparse.Namespace) -> int:

    from mnist_bench.runfile import schema

    print(json.dumps(schema.run_file_schema(), indent=2))
    return 0


# ------------------------------------------------------------------- report / compare / check
def _add_report(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import report as report_cmd

    report_cmd.add_report(p)


def _add_compare(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import compare as compare_cmd

    compare_cmd.add_compare(p)


def _add_check(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import compare as compare_cmd

    compare_cmd.add_check(p)


def _cmd_report(args: argparse.Namespace) -> int:
    from mnist_bench.commands import report as report_cmd

    return report_cmd.cmd_report(args)


def _cmd_compare(args: argparse.Namespace) -> int:
    from mnist_bench.commands import compare as compare_cmd

    return compare_cmd.cmd_compare(args)


def _cmd_check(args: argparse.Namespace) -> int:
    from mnist_bench.commands import compare as compare_cmd

    return compare_cmd.cmd_check(args)


# ------------------------------------------------------------------------------------- export
def _add_export(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import export

    export.add_export(p)


def _cmd_export(args: argparse.Namespace) -> int:
    from mnist_bench.commands import export

    return export.cmd_export(args)


# -------------------------------------------------------------------------------------- merge
def _add_merge(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import merge

    merge.add_merge(p)


def _cmd_merge(args: argparse.Namespace) -> int:
    from mnist_bench.commands import merge

    return merge.cmd_merge(args)


# ------------------------------------------------------------------------------------ history
def _add_history(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import history

    history.add_history(p)


def _cmd_history(args: argparse.Namespace) -> int:
    from mnist_bench.commands import history

    return history.cmd_history(args)


# ------------------------------------------------------------------------------------- parity
def _add_parity(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import parity

    parity.add_parity(p)


def _cmd_parity(args: argparse.Namespace) -> int:
    from mnist_bench.commands import parity

    return parity.cmd_parity(args)


# -------------------------------------------------------------------------------------- index
def _add_index(p: argparse.ArgumentParser) -> None:
    from mnist_bench.commands import index as index_cmd

    index_cmd.add_index(p)


def _cmd_index(args: argparse.Namespace) -> int:
    from mnist_bench.commands import index as index_cmd

    return index_cmd.cmd_index(args)


Command = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]
COMMANDS: list[Command] = [
    (
        "run",
        "train and measure variants on backends (default: the seed notebook's three on every "
        "installed backend); writes one JSON run file",
        _add_run,
        _cmd_run,
    ),
    (
        "list",
        "show the variants (parameters, FLOPs, defaults) and backends (versions, devices)",
        _add_list,
        _cmd_list,
    ),
    (
        "env",
        "show this machine's provenance block: CPU, memory, GPUs, versions, commit",
        _add_env,
        _cmd_env,
    ),
    (
        "report",
        "merge run files into a table, Markdown, CSV or HTML report",
        _add_report,
        _cmd_report,
    ),
    (
        "compare",
        "compare two sets of runs row by row, with a verdict per row",
        _add_compare,
        _cmd_compare,
    ),
    ("check", "CI gate: exit 1 when accuracy regressed against a baseline", _add_check, _cmd_check),
    (
        "merge",
        "join the run files of a sharded run (run --shard I/N) into one, naming any shard or "
        "job missing or doubled",
        _add_merge,
        _cmd_merge,
    ),
    (
        "history",
        "results over commits per configuration and machine: trends and the commits where "
        "accuracy or epoch time stepped",
        _add_history,
        _cmd_history,
    ),
    (
        "parity",
        "do the backends agree? per-sample prediction agreement, accuracy spread and "
        "confusion-matrix differences of the same jobs on different backends",
        _add_parity,
        _cmd_parity,
    ),
    (
        "baseline",
        "refresh the committed CI baseline on purpose (runs suites/ci.toml)",
        _add_baseline,
        _cmd_baseline,
    ),
    (
        "schema",
        "print the run file's JSON Schema (draft 2020-12), generated from the typed records",
        _add_schema,
        _cmd_schema,
    ),
    (
        "export",
        "run files to github-action-benchmark or Bencher JSON, or to an MLflow tracking server",
        _add_export,
        _cmd_export,
    ),
    (
        "index",
        "build or refresh the run index, the cache that makes reading thousands of run files "
        "quick (every reader keeps it up to date)",
        _add_index,
        _cmd_index,
    ),
    ("power", power_command.HELP, power_command.add_power, power_command.cmd_power),
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
    handler = {name: cmd for name, _, _, cmd in COMMANDS}[args.command]
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
