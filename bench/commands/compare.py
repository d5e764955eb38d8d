"""`mnist-bench compare` and `mnist-bench check`: their options, and the handlers that get the
rows and the verdict from the API (`mnist_bench.compare`, `mnist_bench.check`) and render them
as tables, Markdown or JSON, with check's exit code. No framework; describing the options
imports no analysis (the records, the statistics), which the handlers import when they run.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mnist_bench.commands import options
from mnist_bench.core import escape
from mnist_bench.core.metrics import HEADLINE

if TYPE_CHECKING:
    from mnist_bench.analyse.compare import Row, Tolerances
    from mnist_bench.runfile.records import Record

METRICS = HEADLINE  # what compare judges: `analyse.compare.METRICS`, for the help's keys

# The API's keywords, as these commands' flags name them in messages.
FLAGS = {
    "accuracy_tolerance": "--accuracy-tolerance",
    "time_tolerance": "--time-tolerance",
    "max_slowdown": "--max-slowdown",
    "allow_missing": "--allow-missing",
    "match_on": "--match-on",
    "skip_bad": "--skip-bad",
    "pooled_alpha": "--pooled-alpha",
}

# --format json: the keys, stable (a key is only ever added), as `--help` documents them.
JSON_ROW_KEYS = (
    "each row: variant, backend, device (where it ran), dataset, machine (the node, where a "
    "side's records came from several machines; else null), configuration (every field "
    "of the job but the seed), side (both, base or new: on one side only), seeds {base, "
    "new}, verdict (better, worse, no significant change; null on one side only or when "
    "the sides ran on different devices), "
    "differences and near (lists of how the sides' configurations differ), failed_new "
    "([{seed, status, error}]: new records that did not finish where the baseline has a "
    "result), metrics {NAME: {base, new (per-seed means or null), delta, relative, verdict, "
    "p_value (Welch; null with fewer than two seeds a side), skipped (why no verdict, or "
    "null), left_out (timing: flagged records left out of the verdict, the rest judged), "
    "base_values, new_values (one value per seed judged)}} with NAME each of "
    + ", ".join(m.name for m in METRICS)
)
JSON_KEYS_COMPARE = (
    "--format json prints {command: compare, base, new, match_on, tolerances {accuracy, time, "
    "confidence}, warnings, rows}; " + JSON_ROW_KEYS
)
JSON_KEYS_CHECK = (
    "--format json prints {command: check, results, baseline, passed, failed (number of "
    "failing rows), matched (rows on both sides), match_on, allow_missing, tolerances "
    "{accuracy, time, confidence, max_slowdown}, warnings, rows} with every row, failing or "
    "not, and the exit code as above; each row also has failed (true or false) and reason "
    "(why it failed, or null); " + JSON_ROW_KEYS
)


def _fraction(text: str) -> float:
    """`0.1` or `10%`; its range is checked with the API's rule (`_tolerances`)."""
    try:
        return float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--accuracy-tolerance",
        type=_fraction,
        default=0.005,
        metavar="X",
        help="absolute test-accuracy change that counts (default 0.005, i.e. half a "
        "point; 0..1); used when a side has a single seed, and as the smallest drop "
        "`check` fails on",
    )
    p.add_argument(
        "--time-tolerance",
        type=_fraction,
        default=0.10,
        metavar="X",
        help="relative timing change that counts with a single seed, 0..10 (default 0.10, or "
        "write 10%%)",
    )
    options.add_skip_bad(p)
    p.add_argument(
        "--format",
        choices=("table", "markdown", "json"),
        default="table",
        help="table (rich, plain when piped), markdown (for CI job summaries) or json (one "
        "object on stdout, keys below)",
    )
    p.add_argument(
        "--match-on",
        type=_fields,
        default=None,
        metavar="FIELDS",
        help="compare across configurations on purpose: match rows on these fields only, e.g. "
        "variant,backend,device (default: the whole configuration: dataset, variant, backend, "
        "device and every training setting); the settings that differ show on every row",
    )


def _fields(text: str) -> tuple[str, ...]:
    from mnist_bench.core import identity

    try:
        return identity.check_match_fields(p.strip() for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE", help="run file or folder of run files")
    p.add_argument("new", metavar="NEW", help="run file or folder of run files")
    _add_common(p)
    p.epilog = (
        "rows are configurations: records match only when dataset, variant, backend, device "
        "and every training setting agree (see --match-on); a row on one side only says how "
        "the other side's nearest configuration differs. verdicts: with two or more seeds on "
        "both sides, Welch's t-test at 95% on the per-seed values (repeats of a seed "
        "averaged); with one seed, the tolerances. " + JSON_KEYS_COMPARE
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
        "this fraction (e.g. 0.25; 0..1); off by default, CI machines are noisy; "
        "contended and unstable records are never judged on timing",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="pass when a baseline row has no counterpart in the results (default: it fails)",
    )
    p.add_argument(
        "--pooled-alpha",
        type=float,
        default=None,
        metavar="ALPHA",
        help="judge accuracy once over all rows, not row by row: fail when a one-sided t-test "
        "of the mean drop over the matched rows rejects 'no drop' at ALPHA (e.g. 0.01; "
        "suites/gate.toml's rule, docs/ci.md says why), and fail a row whose accuracy spread "
        "across seeds is significantly wider (one-sided Brown-Forsythe) or whose seeds rank "
        "significantly lower (one-sided Mann-Whitney; both Bonferroni over rows, 3+ seeds a "
        "side); the tolerance is then not used",
    )
    _add_common(p)
    p.epilog = (
        "exit codes: 0 no regression (table of the rows); 1 a row failed (table of the failing "
        "rows); 2 unusable "
        "input (missing or malformed file, newer schema, results and baseline the same, "
        "nothing to match). A baseline row fails when the results lack it (see "
        "--allow-missing), when a new record failed, diverged, timed out or was skipped where "
        "the baseline has a result, or when its accuracy falls by more than the tolerance "
        "and, with two or more seeds on both sides, Welch's test calls the drop significant. "
        + JSON_KEYS_CHECK
    )


def _tolerances(args: argparse.Namespace) -> Tolerances:
    """The tolerances given (held to the API's rules when it is called)."""
    from mnist_bench.analyse.compare import Tolerances

    return Tolerances(accuracy=args.accuracy_tolerance, time=args.time_tolerance)


def _warn_into(warnings: list[str]):
    """Where the API's warnings go: standard error (`warning: ...`), and `warnings` for the
    JSON output."""

    def warn(message: str) -> None:
        print(f"warning: {escape.terminal(message)}", file=sys.stderr)
        warnings.append(message)

    return warn


def cmd_compare(args: argparse.Namespace) -> int:
    from mnist_bench import api

    warnings: list[str] = []
    with api.as_command("compare", FLAGS, view="table"):
        comparison = api.compare(
            args.base,
            args.new,
            accuracy_tolerance=args.accuracy_tolerance,
            time_tolerance=args.time_tolerance,
            match_on=args.match_on,
            skip_bad=args.skip_bad,
            warn=_warn_into(warnings),
        )
    rows = comparison.rows
    tol = _tolerances(args)
    if args.format == "json":
        _print_json(
            {
                "command": "compare",
                "base": args.base,
                "new": args.new,
                "match_on": list(args.match_on) if args.match_on else None,
                "tolerances": _tolerance_dict(tol),
                "warnings": warnings,
                "rows": [row_dict(r) for r in rows],
            }
        )
        return 0
    _render(rows, args.format, title=f"{args.base} -> {args.new}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from mnist_bench import api

    warnings: list[str] = []
    with api.as_command("check", FLAGS, view="table"):
        verdict = api.check(
            args.results,
            args.baseline,
            accuracy_tolerance=args.accuracy_tolerance,
            time_tolerance=args.time_tolerance,
            max_slowdown=args.max_slowdown,
            allow_missing=args.allow_missing,
            match_on=args.match_on,
            skip_bad=args.skip_bad,
            warn=_warn_into(warnings),
            pooled_alpha=args.pooled_alpha,
        )
    tol = _tolerances(args)
    rows, failures, missing = verdict.rows, verdict.failures, verdict.missing
    matched = [r for r in rows if r.side == "both"]
    if missing:
        print(
            f"note: {len(missing)} baseline row(s) have no counterpart in "
            f"{escape.terminal(args.results)} "
            "(--allow-missing)",
            file=sys.stderr,
        )
    for row in verdict.extra:
        print(
            f"note: {escape.terminal(_name(row))} is not in {escape.terminal(args.baseline)}",
            file=sys.stderr,
        )
    if args.format == "json":
        reasons = {id(f.row): f.reason for f in failures}
        _print_json(
            {
                "command": "check",
                "results": args.results,
                "baseline": args.baseline,
                "passed": not failures,
                "failed": len(failures),
                "matched": len(matched),
                "match_on": list(args.match_on) if args.match_on else None,
                "allow_missing": args.allow_missing,
                "tolerances": {**_tolerance_dict(tol), "max_slowdown": args.max_slowdown},
                "warnings": warnings,
                "rows": [
                    {**row_dict(r), "failed": id(r) in reasons, "reason": reasons.get(id(r))}
                    for r in rows
                ],
            }
        )
        return 1 if failures else 0
    if failures:
        _render(
            [f.row for f in failures],
            args.format,
            title=f"check FAILED: {len(failures)} of {len(rows) - len(missing)} row(s) failed",
            reasons={id(f.row): f.reason for f in failures},
        )
        return 1
    passed = (
        f"check passed: {len(matched)} row(s) within tolerance of {args.baseline} "
        f"(accuracy tolerance {tol.accuracy:g}"
        + (f", max slowdown {args.max_slowdown:.0%}" if args.max_slowdown is not None else "")
        + ")"
    )
    _render(rows, args.format, title=passed)  # the numbers, for a CI job summary too
    if args.format != "markdown":
        print(escape.terminal(passed))
    return 0


def _name(row: Row) -> str:
    label = row.label
    name = " · ".join(v for k, v in label.items() if k != "dataset" or v != "mnist")
    return f"{name} [{', '.join(row.near)}]" if row.near else name


# ------------------------------------------------------------------------------------ json
def _tolerance_dict(tol: Tolerances) -> dict[str, float]:
    return {"accuracy": tol.accuracy, "time": tol.time, "confidence": tol.confidence}


def row_dict(row: Row) -> dict[str, Any]:
    """A compared row as plain JSON data (the keys `--help` documents, `JSON_ROW_KEYS`)."""
    from operator import attrgetter

    from mnist_bench.analyse.compare import Change, unlike
    from mnist_bench.core import identity

    label = row.label
    metrics = {}
    for metric in METRICS:
        change = row.change(metric)
        if change is None:  # one side only, or unlike configurations: values, no verdict
            sides = {
                side: identity.seed_values(
                    [r for r in records if r.status == "ok"],
                    attrgetter(metric.name),
                )
                for side, records in (("base", row.base), ("new", row.new))
            }
            why = "unlike" if row.side == "both" else "one side only"
            change = Change(metric, sides["base"], sides["new"], skipped=why)
        metrics[metric.name] = {
            "base": change.base_mean,
            "new": change.new_mean,
            "delta": change.delta,
            "relative": change.relative,
            "verdict": change.verdict if change.skipped is None else None,
            "p_value": change.p_value,
            "skipped": change.skipped,
            "left_out": change.left_out,
            "base_values": change.base,
            "new_values": change.new,
        }
    return {
        "variant": label["variant"],
        "backend": label["backend"],
        "device": label["device"],
        "dataset": label["dataset"],
        "machine": row.machine or None,
        "configuration": row.job.fields(),
        "side": row.side,
        "seeds": {"base": _seeds(row.base), "new": _seeds(row.new)},
        "verdict": row.verdict if row.side == "both" and not unlike(row) else None,
        "differences": list(row.differences),
        "near": list(row.near),
        "failed_new": [
            {"seed": r.seed, "status": r.status, "error": r.error} for r in row.failed_new
        ],
        "metrics": metrics,
    }


def _print_json(data: dict[str, Any]) -> None:
    from mnist_bench.core import jsonout

    print(jsonout.dumps(data), end="")


# ------------------------------------------------------------------------------- rendering
def _cell(row: Row, metric, digits: int) -> str:
    from mnist_bench.analyse.compare import BETTER

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
    elif change.skipped == "unstable":
        text += " †"
    elif change.verdict != "no significant change":
        text += " ▲" if change.verdict == BETTER else " ▼"
    if change.left_out and not change.skipped:
        text += f" ({change.left_out} flagged left out)"
    return text


def _verdict_text(row: Row, reasons: dict[int, str] | None) -> str:
    if reasons and id(row) in reasons:
        shown = row.on is not None and row.differences and not reasons[id(row)].startswith("unlike")
        return reasons[id(row)] + (f" ({', '.join(row.differences)})" if shown else "")
    if row.side != "both":
        text = f"only in {'BASE' if row.side == 'base' else 'NEW'}"
        return text + (f" ({', '.join(row.near)})" if row.near else "")
    if row.failed_new:
        return f"{row.failed_new[0].status} in NEW"
    if row.differences:
        return f"{row.verdict} ({', '.join(row.differences)})"
    return row.verdict


def _table_data(rows: list[Row], reasons) -> tuple[list[str], list[list[str]], list[str]]:
    from mnist_bench.analyse.compare import BETTER, WORSE

    verdict_style = {BETTER: "green", WORSE: "bold red"}
    header = ["variant", "backend", "device", "seeds", *(m.label for m in METRICS), "verdict"]
    body, styles = [], []
    for row in rows:
        label = row.label
        variant = label["variant"] + (
            "" if label["dataset"] == "mnist" else f" ({label['dataset']})"
        )
        if row.machine:
            variant += f" @ {row.machine}"
        seeds = f"{_seeds(row.base)}/{_seeds(row.new)}"
        cells = [_cell(row, m, m.digits) for m in METRICS]
        verdict = _verdict_text(row, reasons)
        body.append([variant, label["backend"], label["device"], seeds, *cells, verdict])
        styles.append(
            "bold red"
            if reasons
            else verdict_style.get(row.verdict, "")
            if row.side == "both"
            else "yellow"
        )
    return header, body, styles


def _seeds(records: list[Record]) -> int:
    return len({r.seed for r in records})


def _render(rows: list[Row], fmt: str, *, title: str, reasons=None) -> None:
    header, body, styles = _table_data(rows, reasons)
    if fmt == "markdown":
        print(f"**{escape.markdown(title)}**\n")
        print("| " + " | ".join(header) + " |")
        print(
            "| "
            + " | ".join("---:" if 3 <= i < len(header) - 1 else "---" for i in range(len(header)))
            + " |"
        )
        for line in body:
            print("| " + " | ".join(escape.markdown(c) for c in line) + " |")
        return
    from mnist_bench.core.console import make_console
    from rich import box
    from rich.table import Table

    console = make_console()
    color = console.is_terminal
    table = Table(
        title=escape.text(title),
        box=box.SIMPLE_HEAVY if color else box.ASCII,
        caption="cells: BASE→NEW delta relative; ▲ better, ▼ worse; timing not judged: "
        "‡ contended, † unstable (where each side keeps two unflagged runs, the flagged are "
        "left out instead)",
    )
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if 3 <= i < len(header) - 1 else "left")
    for line, style in zip(body, styles, strict=True):
        table.add_row(*(escape.text(c) for c in line), style=style if color else None)
    console.print(table)
