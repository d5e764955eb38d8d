"""`mnist-bench report`: merge run files and render table, Markdown, CSV or HTML.

Reads run files and nothing else; imports no framework, and matplotlib only for `--format html`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_bench.analyse.rows import GROUP_KEYS
from mnist_bench.core.errors import UserError
from mnist_bench.render import formats
from mnist_bench.runfile import collect
from mnist_bench.runfile.records import Record

if TYPE_CHECKING:
    from mnist_bench.analyse.rows import Row

EPILOG = """examples:
  mnist-bench report results/runs                              every run, one row per configuration
  mnist-bench report a.json b.json --group-by variant,backend,machine     machines side by side
  mnist-bench report results/runs --format markdown >> "$GITHUB_STEP_SUMMARY"
  mnist-bench report results/runs --format html -o report.html   tables and plots in one file

exit codes: 0 ok (failed records show as rows); 2 a bad file (see --skip-bad) or option."""


def add_report(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("runs", nargs="+", metavar="RUN", help="run files or folders of them")
    p.add_argument(
        "--format",
        choices=list(formats.FORMATS),
        default="table",
        help=formats.help_text(),
    )
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write here (atomically) instead of standard output",
    )
    p.add_argument(
        "--group-by",
        default="variant,backend,device",
        metavar="KEYS",
        help=f"comma-separated keys that make a row: {', '.join(GROUP_KEYS)} "
        "(default: variant,backend,device); seeds of a row show as mean ± 95%% CI half-width",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="warn about and skip bad run files (malformed, truncated, newer schema) "
        "instead of stopping",
    )
    p.add_argument(
        "--raw",
        action="store_true",
        help=f"with --format {' or '.join(formats.RAW)}: one line per record instead of one per "
        "group",
    )


@dataclass
class Report:
    """What every format renders: the runs, their grouped rows, and where each record came from."""

    runs: list[collect.LoadedRun]
    by: tuple[str, ...]
    rows: list[Row]
    run_of: dict[int, collect.LoadedRun]  # id(record) -> its run
    machines: dict[str, str]  # run_id -> machine label

    def machine_of(self, record: Record) -> str:
        if record.machine is not None:  # a node of a cluster run
            return collect.node_label(record.machine)
        return self.machines[self.run_id(record)]

    def run_id(self, record: Record) -> str:
        return self.run_of[id(record)].run.run_id

    def class_names(self, record: Record) -> list[str] | None:
        dataset = self.run_of[id(record)].run.environment.get("dataset") or {}
        names = dataset.get("class_names")
        return [str(n) for n in names] if isinstance(names, list) else None


def parse_group_by(text: str) -> tuple[str, ...]:
    """`variant,machine` -> ("variant", "machine"); raises UserError naming the valid keys."""
    keys = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    bad = [k for k in keys if k not in GROUP_KEYS] or ([] if keys else [text])
    if bad:
        raise UserError(
            f"unknown --group-by key {bad[0]!r}; valid: {', '.join(GROUP_KEYS)} (comma-separated)"
        )
    return keys


def build(
    paths: list[str],
    *,
    by: tuple[str, ...],
    skip_bad: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Report:
    """Load, de-duplicate and group the runs under `paths`.

    Raises:
        UserError: a bad file (unless `skip_bad`), or no record to report.
    """
    from mnist_bench.analyse.rows import rows

    runs = collect.unique_runs(collect.load_runs(paths, skip_bad=skip_bad, warn=warn), warn)
    run_of = {id(r): loaded for loaded in runs for r in loaded.run.records}
    machines = {loaded.run.run_id: loaded.machine for loaded in runs}
    report = Report(runs, by, [], run_of, machines)
    report.rows = _ordered(rows(collect.records(runs), by=by, machine_of=report.machine_of), by)
    if not report.rows:
        raise UserError("no records to report in: " + ", ".join(paths))
    return report


def _ordered(all_rows: list[Row], by: tuple[str, ...]) -> list[Row]:
    """Rows sorted by each key in `by`, each key's values in order of first appearance."""
    first: dict[str, dict[str, int]] = {k: {} for k in by}
    for row in all_rows:
        for k in by:
            first[k].setdefault(getattr(row, k), len(first[k]))
    return sorted(all_rows, key=lambda row: [first[k][getattr(row, k)] for k in by])


def cmd_report(args: argparse.Namespace) -> int:
    by = parse_group_by(args.group_by)
    if args.raw and not formats.FORMATS[args.format].raw:
        raise UserError(f"--raw goes with --format {' or '.join(formats.RAW)}")
    if args.format == "html" and not args.output and sys.stdout.isatty():
        raise UserError("--format html writes a whole page: give --output FILE (or pipe it)")

    def warn(message: str) -> None:
        print(f"mnist-bench report: warning: {message}", file=sys.stderr)

    report = build(args.runs, by=by, skip_bad=args.skip_bad, warn=warn)
    if args.output:
        from mnist_bench.runfile.storage import write_atomic

        write_atomic(Path(args.output), formats.render(report, args.format, raw=args.raw).encode())
        print(
            f"report: {args.output} ({len(report.rows)} rows from {len(report.runs)} run file(s))",
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
