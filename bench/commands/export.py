"""`mnist-bench export`: its options, and the handler that gets the benchmark JSON from the
API (`mnist_bench.export`) and writes it, or logs every record to MLflow (`--to mlflow`, the
command's alone).
"""

from __future__ import annotations

import argparse
import os
import sys

from mnist_bench.commands import options
from mnist_bench.core import escape
from mnist_bench.core.errors import UserError
from mnist_bench.core.metrics import METRICS
from mnist_bench.publish.targets import DEFAULT_EXPERIMENT, DIRECTIONS, TARGETS
from mnist_bench.runfile import output

# The API's keywords, as this command's flags name them in messages.
FLAGS = {"metrics": "--metric", "direction": "--direction", "to": "--to", "skip_bad": "--skip-bad"}

EPILOG = """examples:
  mnist-bench export RUN.json --to github-action-benchmark -o bigger.json
      accuracy and throughput, for the action's tool: customBiggerIsBetter
  mnist-bench export RUN.json --to github-action-benchmark --direction smaller -o smaller.json
      train time, for tool: customSmallerIsBetter (--metric steady_epoch_seconds adds more)
  mnist-bench export RUN.json --to bencher -o bmf.json
      every headline metric; then: bencher run --adapter json --file bmf.json
  mnist-bench export results/runs --to mlflow --tracking-uri http://127.0.0.1:5000

JSON formats: one entry per configuration (variant, backend, device and settings other than
the defaults make its name), the mean over seeds, its 95% CI as range / lower_value..upper_value;
accuracy and MFU in %. Records that did not finish ok are left out (a note on stderr).
mlflow: one run per record (failed and diverged ones as FAILED runs; never-started ones left
out); exporting the same run file again adds nothing (runs are tagged mnist_bench.key).

exit codes: 0 ok; 2 a bad file (see --skip-bad), option or tracking server."""


def add_export(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    options.add_runs(p)
    p.add_argument("--to", required=True, choices=TARGETS, help="the target format or tool")
    p.add_argument(
        "--direction",
        choices=DIRECTIONS,
        help="github-action-benchmark: bigger (accuracy, throughput: tool customBiggerIsBetter; "
        "the default) or smaller (times, loss: tool customSmallerIsBetter); one file each",
    )
    p.add_argument(
        "--metric",
        action="append",
        metavar="NAME",
        help="JSON formats: a metric to export; repeat or comma-separate; `all` for every one "
        f"(default: the headline ones, of --direction for github-action-benchmark): "
        f"{', '.join(m.name for m in METRICS)}",
    )
    output.add_options(p, what="the export (JSON formats)", note=" instead of standard output")
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="mlflow: the tracking server (default: $MLFLOW_TRACKING_URI)",
    )
    p.add_argument(
        "--experiment",
        metavar="NAME",
        help=f"mlflow: the experiment to log into, created if missing (default: "
        f"{DEFAULT_EXPERIMENT})",
    )
    options.add_skip_bad(p)


def cmd_export(args: argparse.Namespace) -> int:
    json_only = [
        flag
        for flag, given in (
            ("--direction", args.direction),
            ("--metric", args.metric),
            ("--output", args.output),
            ("--force", args.force),
        )
        if given
    ]
    mlflow_only = [
        flag
        for flag, given in (
            ("--tracking-uri", args.tracking_uri),
            ("--experiment", args.experiment),
        )
        if given is not None
    ]
    if args.to == "mlflow" and json_only:
        raise UserError(f"{json_only[0]} goes with the JSON formats, not --to mlflow")
    if args.to != "mlflow" and mlflow_only:
        raise UserError(f"{mlflow_only[0]} goes with --to mlflow")
    if args.direction and args.to != "github-action-benchmark":
        raise UserError("--direction goes with --to github-action-benchmark")
    output.check_force(args, "output")
    if args.to == "mlflow":
        return _to_mlflow(args)
    from mnist_bench.publish.export import select_metrics

    select_metrics(args.metric, args.to, args.direction or "bigger")  # before any file is read
    if args.output:
        output.check(args.output, force=args.force, inputs=args.runs)
    from mnist_bench import api

    with api.as_command("export", FLAGS):
        exported = api.export(
            args.runs,
            to=args.to,
            direction=args.direction,
            metrics=args.metric,
            skip_bad=args.skip_bad,
            warn=_warn,
        )
    for message in exported.notes:
        print(f"mnist-bench export: note: {escape.terminal(message)}", file=sys.stderr)
    for message in exported.warnings:
        _warn(message)
    text = exported.to_json()
    if args.output:
        inputs = [*args.runs, *(loaded.path for loaded in exported.report.runs)]
        output.write(args.output, text, force=args.force, inputs=inputs, what="export")
        print(f"export: {escape.terminal(args.output)} ({exported.count} values)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _to_mlflow(args: argparse.Namespace) -> int:
    """`--to mlflow`: every record logged as an MLflow run (not in the Python API: it writes
    to a server rather than making data)."""
    from mnist_bench.analyse.report import build
    from mnist_bench.publish.export import to_mlflow

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise UserError("--to mlflow needs --tracking-uri URI (or MLFLOW_TRACKING_URI)")
    report = build(
        args.runs, by=("variant", "backend", "device"), skip_bad=args.skip_bad, warn=_warn
    )
    exported = to_mlflow(report, uri, args.experiment or DEFAULT_EXPERIMENT)
    print(escape.terminal(exported.summary()))
    return 0


def _warn(message: str) -> None:
    print(f"mnist-bench export: warning: {escape.terminal(message)}", file=sys.stderr)
