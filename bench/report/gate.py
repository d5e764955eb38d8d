"""`mnist-bench compare` and `mnist-bench check`: options, tables, exit codes. No framework."""

from __future__ import annotations

import argparse
import sys

from bench.errors import UserError
from bench.report import collect
from bench.report.compare import (
    BETTER,
    METRICS,
    WORSE,
    Row,
    Tolerances,
    compare,
    gate,
)

VERDICT_STYLE = {BETTER: "green", WORSE: "bold red"}


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError(f"out of range: {text!r}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accuracy-tolerance",
        type=_fraction,
        default=0.005,
        metavar="X",
        help="absolute test-accuracy change that counts (default 0.005, i.e. half a "
        "point); used when a side has a single seed, and as the smallest drop "
        "`check` fails on",
    )
    p.add_argument(
        "--time-tolerance",
        type=_fraction,
        default=0.10,
        metavar="X",
        help="relative timing change that counts with a single seed (default 0.10, or write 10%%)",
    )
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip (and name) unreadable or newer-schema run files instead of refusing them",
    )
    p.add_argument(
        "--format",
        choices=("table", "markdown"),
        default="table",
        help="table (rich, plain when piped) or markdown (for CI job summaries)",
    )


def add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE", help="run file or folder of run files")
    p.add_argument("new", metavar="NEW", help="run file or folder of run files")
    _add_common(p)
    p.epilog = (
        "verdicts: with two or more seeds on both sides, Welch's t-test at 95%% on the "
        "per-seed values; with one seed, the tolerances"
    )


def add_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", metavar="RESULTS", help="run file or folder of the new results")
    p.add_argument(
        "--baseline",
        required=True,
        metavar="BASELINE",
        help="run file or folder to check against, e.g. results/baseline",
    )
    p.add_argument(
        "--max-slowdown",
        type=_fraction,
        default=None,
        metavar="X",
        help="also fail when training or inference throughput falls by more than "
        "this fraction (e.g. 0.25); off by default, CI machines are noisy; "
        "contended records are never judged on timing",
    )
    _add_common(p)
    p.epilog = (
        "exit codes: 0 no regression; 1 a matched row regressed (table of the failing "
        "rows); 2 unusable input (missing or malformed file, newer schema, nothing to "
        "match). A row fails when its accuracy falls by more than the tolerance and, "
        "with two or more seeds on both sides, Welch's test calls the drop significant"
    )


def _load(paths: list[str], skip_bad: bool):
    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    return collect.records(collect.load_runs(paths, skip_bad=skip_bad, warn=warn))


def _tolerances(args: argparse.Namespace) -> Tolerances:
    return Tolerances(accuracy=args.accuracy_tolerance, time=args.time_tolerance)


def cmd_compare(args: argparse.Namespace) -> int:
    rows = compare(
        _load([args.base], args.skip_bad), _load([args.new], args.skip_bad), _tolerances(args)
    )
    _render(rows, args.format, title=f"{args.base} -> {args.new}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    tol = _tolerances(args)
    rows = compare(_load([args.baseline], args.skip_bad), _load([args.results], args.skip_bad), tol)
    matched = [r for r in rows if r.side == "both"]
    if not matched:
        raise UserError(
            f"nothing to match: no configuration of {args.results} is in {args.baseline}"
        )
    failures = gate(rows, tol, args.max_slowdown)
    unmatched = [r for r in rows if r.side != "both"]
    for row in unmatched:
        where = args.baseline if row.side == "base" else args.results
        print(f"note: {_name(row)} only in {where}", file=sys.stderr)
    if failures:
        _render(
            [f.row for f in failures],
            args.format,
            title=f"check FAILED: {len(failures)} of {len(matched)} row(s) regressed",
            reasons={id(f.row): f.reason for f in failures},
        )
        return 1
    print(
        f"check passed: {len(matched)} row(s) within tolerance of {args.baseline} "
        f"(accuracy tolerance {tol.accuracy:g}"
        + (f", max slowdown {args.max_slowdown:.0%}" if args.max_slowdown is not None else "")
        + ")"
    )
    return 0


def _name(row: Row) -> str:
    label = row.label
    return " · ".join(v for k, v in label.items() if k != "dataset" or v != "mnist")


# ------------------------------------------------------------------------------- rendering
def _cell(row: Row, metric, digits: int) -> str:
    change = row.change(metric)
    if change is None:
        values = row.base or row.new
        got = [getattr(r, metric.name) for r in values if getattr(r, metric.name) is not None]
        return f"{sum(got) / len(got):,.{digits}f}" if got else "-"
    if change.base_mean is None or change.new_mean is None:
        return "-"
    text = f"{change.base_mean:,.{digits}f}→{change.new_mean:,.{digits}f}"
    if change.delta is not None:
        text += f" {change.delta:+,.{digits}f}"
        text += f" {change.relative:+.1%}" if change.relative is not None else ""
    if change.skipped == "contended":
        text += " ‡"
    elif change.verdict != "no significant change":
        text += " ▲" if change.verdict == BETTER else " ▼"
    return text


def _verdict_text(row: Row, reasons: dict[int, str] | None) -> str:
    if reasons and id(row) in reasons:
        return reasons[id(row)]
    if row.side != "both":
        return f"only in {'BASE' if row.side == 'base' else 'NEW'}"
    if row.failed_new:
        return f"{row.failed_new[0].status} in NEW"
    return row.verdict


def _table_data(rows: list[Row], reasons) -> tuple[list[str], list[list[str]], list[str]]:
    digits = {"test_accuracy": 4, "train_seconds": 1}
    header = ["variant", "backend", "device", "seeds", *(m.label for m in METRICS), "verdict"]
    body, styles = [], []
    for row in rows:
        label = row.label
        variant = label["variant"] + (
            "" if label["dataset"] == "mnist" else f" ({label['dataset']})"
        )
        if "settings" in label:
            variant += f" {label['settings']}"
        seeds = f"{len(row.base)}/{len(row.new)}"
        cells = [_cell(row, m, digits.get(m.name, 0)) for m in METRICS]
        verdict = _verdict_text(row, reasons)
        body.append([variant, label["backend"], label["device"], seeds, *cells, verdict])
        styles.append(
            "bold red"
            if reasons
            else VERDICT_STYLE.get(row.verdict, "")
            if row.side == "both"
            else "yellow"
        )
    return header, body, styles


def _render(rows: list[Row], fmt: str, *, title: str, reasons=None) -> None:
    header, body, styles = _table_data(rows, reasons)
    if fmt == "markdown":
        from bench.report.markdown import escape

        print(f"**{escape(title)}**\n")
        print("| " + " | ".join(header) + " |")
        print(
            "| "
            + " | ".join("---:" if 3 <= i < len(header) - 1 else "---" for i in range(len(header)))
            + " |"
        )
        for line in body:
            print("| " + " | ".join(escape(c) for c in line) + " |")
        return
    from rich import box
    from rich.table import Table

    from bench.cli import make_console

    console = make_console()
    color = console.is_terminal
    table = Table(
        title=title,
        box=box.SIMPLE_HEAVY if color else box.ASCII,
        caption="cells: BASE→NEW delta relative; ▲ better, ▼ worse; ‡ contended: timing not judged",
    )
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if 3 <= i < len(header) - 1 else "left")
    for line, style in zip(body, styles, strict=True):
        table.add_row(*line, style=style if color else None)
    console.print(table)
