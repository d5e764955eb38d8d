"""`mnist-bench history`: its options, and the handler that gets the history from the API
(`mnist_bench.history`), renders it and says whether a recent step is worse (`--fail-on-step`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnist_bench.analyse import changepoints
from mnist_bench.analyse.defaults import DEFAULT_ALPHA, DEFAULT_RECENT, TRACKED
from mnist_bench.commands import options
from mnist_bench.core import escape
from mnist_bench.core.errors import UserError
from mnist_bench.render.history import (
    FORMATS,
    _title,
    fail_reason,
    format_change,
    format_p,
    format_value,
    plot_grid,
    render_json,
    rich_tables,
    summary_line,
)
from mnist_bench.runfile import output

# The API's keywords, as this command's flags name them in messages.
FLAGS = {"alpha": "--alpha", "skip_bad": "--skip-bad"}


EPILOG = f"""examples:
  mnist-bench history results/runs                     a trend per configuration and machine
  mnist-bench history ci-runs/ --format markdown >> "$GITHUB_STEP_SUMMARY"
  mnist-bench history ci-runs/ --fail-on-step          CI: exit 1 on a worse step lately
  mnist-bench history ci-runs/ --format html -o history.html --plot history.png

A step is the commit where a metric's level changed: the largest two-sample t over every split
of the per-commit means (accuracy; the logarithm of the steady epoch seconds), its p-value
simulated from independent normal values of the same count, and each side searched again where
a step is significant (binary segmentation). Timings of contended or unstable records are left
out. A series needs {changepoints.MIN_POINTS} commits to be tested.

exit codes: 0 ok; 1 --fail-on-step found a worse step (accuracy down, time up) in the latest
--recent commits; 2 a bad file (see --skip-bad) or option."""


# --format json: the keys, stable (a key is only ever added), as `--help` documents them.
JSON_KEYS = """--format json prints one object (keys are only ever added; non-finite numbers null):
  {command: history, runs (the RUN arguments), files (the run files read), alpha, warnings,
  commits, series, fail_on_step}
  commits, oldest first: {commit (the full hash; null for a run without one), label (as the
    tables show it), dirty, time (UTC, the first run at it), run_ids}
  series: {label, variant, backend, device, dataset, machine, configuration (every field of
    the job but the seed), tested {METRIC: had enough commits to be tested}, points, steps}
  points, in commit order: {commit, label, time, METRIC (the mean over seeds; null where
    none), values {METRIC: one value per seed}}
  steps, in commit order: {commit, label, time, metric, before, after, size (after - before),
    relative (size / before), p_value, direction (worse or better)}
  fail_on_step: null without --fail-on-step; else {recent, failed, reason (why, or null),
    steps (the worse steps it fails on: a step's keys and series {label, variant, backend,
    device, machine})}
  METRIC: """ + ", ".join(m.name for m in TRACKED)


# ------------------------------------------------------------------------------ command
def add_history(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG + "\n\n" + JSON_KEYS
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    options.add_runs(p)
    p.add_argument(
        "--format",
        choices=[*FORMATS, "json"],
        default="table",
        help="table (rich; plain ASCII when piped), markdown (GitHub tables), html (one "
        "self-contained page with a figure per series) or json (one object, keys below)",
    )
    output.add_options(p, what="the history", note=" instead of standard output")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw accuracy and steady epoch time against commit, every series, as a PNG "
        "(written as --output is: --force replaces an existing file)",
    )
    options.add_skip_bad(p)
    p.add_argument(
        "--alpha",
        type=float,
        default=DEFAULT_ALPHA,
        metavar="P",
        help=f"a step is significant below this p-value (default {DEFAULT_ALPHA:g})",
    )
    p.add_argument(
        "--fail-on-step",
        action="store_true",
        help="exit 1 when a significant worse step (accuracy down, steady epoch time up) is at "
        "one of the latest --recent commits",
    )
    p.add_argument(
        "--recent",
        type=int,
        default=DEFAULT_RECENT,
        metavar="N",
        help=f"with --fail-on-step: the newest N commits of all the runs count (default "
        f"{DEFAULT_RECENT}; 0: a worse step at any commit fails)",
    )


def cmd_history(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha:g} is not between 0 and 1")
    if args.recent < 0:
        raise UserError(f"--recent {args.recent} is negative (0: every commit)")
    if args.plot and Path(args.plot).suffix.lower() != ".png":
        raise UserError(f"--plot {args.plot}: writes a PNG; name a .png file")
    if args.format == "html" and not args.output and sys.stdout.isatty():
        raise UserError("--format html writes a whole page: give --output FILE (or pipe it)")
    output.check_force(args, "output", "plot")
    targets = [t for t in (args.output, args.plot) if t]
    if len(targets) == 2 and Path(args.output).absolute() == Path(args.plot).absolute():
        raise UserError(f"--output and --plot both name {args.plot}; name two files")
    for target in targets:
        output.check(target, force=args.force, inputs=args.runs)

    warnings: list[str] = []

    def warn(message: str) -> None:
        print(f"mnist-bench history: warning: {escape.terminal(message)}", file=sys.stderr)
        warnings.append(message)

    from mnist_bench import api

    with api.as_command("history", FLAGS, view="table"):
        history = api.history(args.runs, alpha=args.alpha, skip_bad=args.skip_bad, warn=warn)
    inputs = [*args.runs, *(loaded.path for loaded in history.runs)]
    if not any(t.tested for s in history.series for t in s.trends):
        warn(f"no series has {changepoints.MIN_POINTS} commits with values: nothing was tested")

    if args.format == "table" and not args.output:
        from mnist_bench.core.console import make_console

        console = make_console()
        for table in rich_tables(history, color=console.is_terminal):
            console.print(table)
        console.print(escape.message(summary_line(history)))
    else:
        if args.format == "json":
            recent = args.recent if args.fail_on_step else None
            text = render_json(history, runs=args.runs, warnings=warnings, recent=recent)
        else:
            text = FORMATS[args.format](history)
        if args.output:
            output.write(args.output, text, force=args.force, inputs=inputs, what="history")
            print(f"history: {escape.terminal(args.output)}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    if args.plot:
        from mnist_bench.render.figures import png

        figure = png(plot_grid(history))
        output.write(args.plot, figure, force=args.force, inputs=inputs, what="plot")
        print(f"plot: {escape.terminal(args.plot)}", file=sys.stderr)

    if args.fail_on_step:
        failing = history.failing(args.recent)
        for series, trend, step in failing:
            print(
                f"mnist-bench history: worse step at "
                f"{escape.terminal(trend.commit_of(step).label)}: "
                f"{escape.terminal(_title(series))}: {trend.metric.label} "
                f"{format_value(trend.metric, step.before)} -> "
                f"{format_value(trend.metric, step.after)} "
                f"({format_change(trend.metric, step.before, step.after)}, "
                f"p {format_p(step.p_value)})",
                file=sys.stderr,
            )
        if failing:
            print(f"mnist-bench history: {fail_reason(failing, args.recent)}", file=sys.stderr)
            return 1
    return 0
