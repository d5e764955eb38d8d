"""`mnist-bench run`: its options (derived from `RunConfig`'s fields, plus the Ray cluster's),
and the handler that opens a run through the API (`mnist_bench.api.open_run`), executes it with
live progress and renders the table; `execute` is shared with `baseline update`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from mnist_bench.core import escape
from mnist_bench.core.console import make_console
from mnist_bench.core.errors import UserError


def add_run(p: argparse.ArgumentParser) -> None:
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


def cmd_run(args: argparse.Namespace) -> int:
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
