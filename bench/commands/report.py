"""`mnist-bench report`: its options, and the handler that gets a `Report` from the API
(`mnist_bench.report`) and renders it as a table, Markdown, CSV or HTML (matplotlib only for
`--format html`).
"""

from __future__ import annotations

import argparse
import sys

from mnist_bench.analyse.defaults import GROUP_KEYS
from mnist_bench.commands import options
from mnist_bench.core import escape
from mnist_bench.core.errors import UserError
from mnist_bench.render import formats
from mnist_bench.runfile import output

# The API's keywords, as this command's flags name them in messages.
FLAGS = {"by": "--group-by", "skip_bad": "--skip-bad"}

EPILOG = """examples:
  mnist-bench report results/runs                              every run, one row per configuration
  mnist-bench report a.json b.json --group-by variant,backend,machine     machines side by side
  mnist-bench report results/runs --format markdown >> "$GITHUB_STEP_SUMMARY"
  mnist-bench report results/runs --format html -o report.html   tables and plots in one file

exit codes: 0 ok (failed records show as rows); 2 a bad file (see --skip-bad) or option."""


def add_report(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    options.add_runs(p)
    p.add_argument(
        "--format",
        choices=list(formats.FORMATS),
        default="table",
        help=formats.help_text(),
    )
    output.add_options(p, what="the report", note=" instead of standard output")
    p.add_argument(
        "--group-by",
        default="variant,backend,device",
        metavar="KEYS",
        help=f"comma-separated keys that make a row: {', '.join(GROUP_KEYS)} "
        "(default: variant,backend,device); seeds of a row show as mean ± 95%% CI half-width",
    )
    options.add_skip_bad(p)
    p.add_argument(
        "--raw",
        action="store_true",
        help=f"with --format {' or '.join(formats.RAW)}: one line per record instead of one per "
        "group",
    )


def cmd_report(args: argparse.Namespace) -> int:
    from mnist_bench.analyse.report import parse_group_by

    by = parse_group_by(args.group_by)
    if args.raw and not formats.FORMATS[args.format].raw:
        raise UserError(f"--raw goes with --format {' or '.join(formats.RAW)}")
    if args.format == "html" and not args.output and sys.stdout.isatty():
        raise UserError("--format html writes a whole page: give --output FILE (or pipe it)")

    output.check_force(args, "output")
    if args.output:
        output.check(args.output, force=args.force, inputs=args.runs)
    from mnist_bench import api

    # The html page draws what the table view leaves out (latency, the learning curves).
    with api.as_command("report", FLAGS, view="summary" if args.format == "html" else "table"):
        report = api.report(args.runs, by=by, skip_bad=args.skip_bad)
    if args.output:
        text = formats.render(report, args.format, raw=args.raw)
        inputs = [*args.runs, *(loaded.path for loaded in report.runs)]
        output.write(args.output, text, force=args.force, inputs=inputs, what="report")
        print(
            f"report: {escape.terminal(args.output)} ({len(report.rows)} rows from "
            f"{len(report.runs)} run file(s))",
            file=sys.stderr,
        )
        return 0
    if args.format == "table":
        from mnist_bench.core.console import make_console
        from mnist_bench.render.table import rows_table

        console = make_console()
        console.print(rows_table(report.rows, color=console.is_terminal, by=by))
        return 0
    sys.stdout.write(formats.render(report, args.format, raw=args.raw))
    return 0
