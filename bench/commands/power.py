"""`mnist-bench power`: the smallest accuracy drop the gate catches, from the seed spreads in
run files, and the cheapest suite that catches a given drop within a time budget."""

from __future__ import annotations

import argparse
import json
import math
import sys

from mnist_bench.commands import options

HELP = (
    "power analysis of the accuracy gate: the smallest drop it catches per row and as a whole, "
    "its false-alarm rate, and the cheapest suite reaching a target, from seed spreads"
)
FLAGS = {
    "drop": "--drop",
    "power": "--power",
    "alpha": "--alpha",
    "sides": "--sides",
    "tolerance": "--tolerance",
    "correction": "--correction",
    "pooled": "--pooled",
    "budget": "--budget",
    "max_seeds": "--max-seeds",
    "base_seeds": "--base-seeds",
    "skip_bad": "--skip-bad",
}
EPILOG = """examples:
  mnist-bench power results/baseline                    today's gate: 2-sided 95%, tolerance 0.005
  mnist-bench power results/baseline --drop 0.005 --power 0.9 --alpha 0.01 --sides 1 \\
      --tolerance 0 --budget 180                        the cheapest suite reaching the target
  mnist-bench power RUN.json --pooled --format json

exit codes: 0 ok; 2 bad input, or no row with two or more seeds."""


def add_power(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    options.add_runs(p)
    p.add_argument("--drop", type=float, default=0.005, help="the accuracy drop to catch (0.005)")
    p.add_argument("--power", type=float, default=0.9, help="chance of catching it (0.9)")
    p.add_argument(
        "--alpha", type=float, default=0.05, help="false-alarm rate per test (default 0.05)"
    )
    p.add_argument(
        "--sides",
        type=int,
        choices=(1, 2),
        default=2,
        help="1: a one-sided test of a drop; 2: two-sided, as check does (default)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.005,
        help="the observed drop must also exceed this (check's --accuracy-tolerance, 0.005)",
    )
    p.add_argument(
        "--correction",
        choices=("none", "bonferroni"),
        default="none",
        help="over rows: none (check's rule) or bonferroni (alpha / rows per row)",
    )
    p.add_argument("--pooled", action="store_true", help="one test of the mean drop over all rows")
    p.add_argument("--budget", type=float, default=180.0, help="seconds a gate run may take (180)")
    p.add_argument("--max-seeds", type=int, default=30, help="most seeds a suite is tried with")
    p.add_argument("--base-seeds", type=int, help="the baseline's seeds (default: the same)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    options.add_skip_bad(p)


def cmd_power(args: argparse.Namespace) -> int:
    from mnist_bench import api

    with api.as_command("power", FLAGS):
        report = api.power(
            args.runs,
            drop=args.drop,
            power=args.power,
            alpha=args.alpha,
            sides=args.sides,
            tolerance=args.tolerance,
            correction=args.correction,
            pooled=args.pooled,
            budget=args.budget,
            max_seeds=args.max_seeds,
            base_seeds=args.base_seeds,
            skip_bad=args.skip_bad,
        )
    if args.format == "json":
        data = {"command": "power", "runs": args.runs, **report.to_dict()}
        print(json.dumps(_finite(data), indent=2))
        return 0
    sys.stdout.write(render_text(report))
    return 0


def _points(value: float) -> str:
    return "never" if not math.isfinite(value) else f"{100 * value:.2f} pts"


def render_text(report) -> str:
    """The report as plain text: rule, rows, whole gate, cheapest suites, assumptions."""
    rule = report.rule
    how = "pooled over rows" if rule.pooled else f"per row, correction {rule.correction}"
    lines = [
        f"rule: {rule.sides}-sided t-test at alpha {rule.alpha}, tolerance "
        f"{100 * rule.tolerance:.2f} pts, {how}; gate run {report.seeds} seeds vs baseline "
        f"{report.base_seeds}",
        f"target: catch a {_points(report.drop)} drop with power {report.power}",
        "",
        f"{'row':<36} {'seeds':>5} {'mean':>7} {'sd':>9} {'s/seed':>7} {'min drop':>10}",
    ]
    for row, mdd in zip(report.rows, report.row_mdd, strict=True):
        lines.append(
            f"{row.label:<36} {row.seeds:>5} {row.mean:>7.4f} {_points(row.sigma):>9} "
            f"{row.seconds:>7.1f} {_points(mdd):>10}"
        )
    lines += [
        "",
        f"gate, every row dropping: min detectable drop {_points(report.gate_mdd_every_row)}",
        f"gate, only the noisiest row dropping: {_points(report.gate_mdd_one_row)}",
        f"gate false-alarm rate (no change): {report.false_alarm:.4f}",
        f"power against the target drop now: {report.target_power_now:.3f}",
        "",
        f"cheapest suites reaching the target within {report.budget:.0f} s:",
    ]
    if not report.candidates:
        lines.append("  none")
    for c in report.candidates:
        names = ", ".join(report.rows[i].label for i in c.rows)
        lines.append(
            f"  {c.seconds:6.0f} s  {c.seeds} seeds  power {c.power:.3f}  false alarm "
            f"{c.false_alarm:.4f}  [{names}]"
        )
    lines += ["", "assumptions:"] + [f"  - {a}" for a in report.assumptions]
    return "\n".join(lines) + "\n"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
