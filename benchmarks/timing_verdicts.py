"""Timing verdicts: how often `compare` and `check --max-slowdown` cry wolf, and how often they
catch a known slowdown.

Runs RUNS A/A reruns of one configuration (fresh worker processes, `mnist_bench.run`) and RUNS
runs at each injected slowdown (`MNIST_BENCH_INJECT_SLOWDOWN`: every timing window made that
fraction longer), interleaved round by round (A, +5%, +10%, +20%, A, ...) so that a drift of the
machine hits every side alike. Run i trains seed i (`--same-seed`: seed 0 throughout), so that a
side of K runs (`--per-side K`, 2 or more) is K seeds and `compare` uses Welch's test; with one
run a side it uses its 10% threshold (`--time-tolerance`).

Then PAIRINGS pairings are drawn for each question, resampling the runs: A vs A (K runs each,
all distinct), and A vs each slowdown. Each is judged as `compare` and `check --max-slowdown M`
judge it, on the training throughput alone (test accuracy and inference are set aside in the
copies judged: they do not change with the slowdown and would only add their own verdicts).
Reported per figure (`windows`: the record's `train_samples_per_second`, the median timing
window after the warm-up, its `unstable` flag; `epochs`: the same records' epoch-based rate,
the epochs after the first, with the epoch MAD flag) and pairing: how many pairings had a
verdict skipped (a contended or unstable record), `compare`'s `worse` and any-change rates, and
the gate's failure rate: false alarms for A vs A, power for each slowdown. `--calibrate K,K`
adds, per K runs a side, the smallest `check --max-slowdown` limit that keeps A/A false alarms
at `--false-alarms` and its power; and from the A runs' spread across processes it prints how
many runs a side power 0.9 would take at each slowdown (a normal approximation, for K beyond
the runs measured). `--shifts F,F` adds pairings of A runs against *other* A runs made F slower
by arithmetic (`A vs A+10%`): an exact slowdown with the processes' own spread, for where the
injected one is inexact (under JAX's asynchronous dispatch the busy wait overlaps the device's
work: asked +20%, realized +9%, and windows made ragged enough to flag the record); it assumes
a slowdown that scales every timing alike, which is what a slower step does.

    python benchmarks/timing_verdicts.py --train-limit 6000 --runs 4       # a smoke test
    python benchmarks/timing_verdicts.py --runs 10 --per-side 3 --json out.json
    python benchmarks/timing_verdicts.py ... --ignore-flags   # judge flagged records too

Run it on an otherwise idle machine: a contended record's timing is never judged, so a busy
machine shows up as skipped verdicts, not as an answer. Pairings drawn from few runs are not
independent: the rates are as good as the RUNS behind them.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mnist_bench.analyse import compare as cmp  # noqa: E402
from mnist_bench.execute.training import SLOWDOWN_ENV, is_unstable  # noqa: E402
from mnist_bench.runfile.records import Record  # noqa: E402

FIGURES = ("windows", "epochs")
BASE = 0.0  # the A side: no slowdown
# A side of the pairings: BASE, an injected slowdown (a float: runs trained with it), or
# ("shift", f): A runs held out of the base side with every timing made f longer by arithmetic.
Side = float | tuple[str, float]


def shifts(args: argparse.Namespace) -> list[Side]:
    return [("shift", f) for f in args.shifts]


def side_name(side: Side) -> str:
    """How tables name a side: A, +10% (injected), A+10% (shifted)."""
    if isinstance(side, tuple):
        return f"A+{side[1]:.0%}"
    return "A" if side == BASE else f"+{side:.0%}"


def shifted(view: Record, fraction: float) -> Record:
    """`view` made `fraction` slower by arithmetic: its throughput divided, its seconds
    multiplied by 1 + fraction; its flags and its spread stay its own."""
    f = 1 + fraction
    return dataclasses.replace(
        view,
        train_samples_per_second=view.train_samples_per_second
        and view.train_samples_per_second / f,
        train_seconds=view.train_seconds and view.train_seconds * f,
        epoch_seconds=[s * f for s in view.epoch_seconds],
        window_seconds=[s * f for s in view.window_seconds],
    )


def run_once(args: argparse.Namespace, seed: int, slowdown: float, folder: Path) -> Record:
    """One fresh run of the configuration at `slowdown`; its one record (read back from
    `folder` where a complete run of it is there already: --runs-dir keeps them)."""
    import mnist_bench

    if folder.is_dir() and any(folder.glob("*.json")):
        try:
            kept = mnist_bench.load(folder)
        except mnist_bench.Error as e:
            raise SystemExit(
                f"timing_verdicts: a kept run in {folder} cannot be read ({e}); remove that "
                f"folder to train the run again"
            ) from None
        if len(kept.records) == 1 and kept.records[0].status == "ok":
            return kept.records[0]

    if slowdown:
        os.environ[SLOWDOWN_ENV] = repr(slowdown)
    else:
        os.environ.pop(SLOWDOWN_ENV, None)
    try:
        results = mnist_bench.run(
            variants=[args.variant],
            backends=[args.backend],
            devices=[args.device],
            seeds=[seed],
            epochs=args.epochs,
            train_limit=args.train_limit,
            test_limit=args.test_limit,
            results_dir=folder,
            progress=False,
            figures=False,
        )
    finally:
        os.environ.pop(SLOWDOWN_ENV, None)
    (record,) = results.records
    if record.status != "ok":
        raise SystemExit(f"timing_verdicts: a run failed: {record.status}: {record.error}")
    return record


def as_figure(record: Record, figure: str, *, ignore_flags: bool = False) -> Record:
    """A copy of `record` judged on training time only: accuracy pinned, inference left out;
    for `epochs`, the throughput and flag from its epochs instead of its windows. With
    `ignore_flags`, neither contended nor unstable (judged all the same)."""
    fields: dict[str, Any] = {"test_accuracy": 1.0, "infer_samples_per_second": None}
    if figure == "epochs":
        steady = record.epoch_seconds[1:] or record.epoch_seconds
        assert record.train_samples is not None
        fields["train_samples_per_second"] = record.train_samples * len(steady) / sum(steady)
        fields["unstable"] = is_unstable(record.epoch_seconds)
    if ignore_flags:
        fields.update(contended=False, unstable=False)
    return dataclasses.replace(record, **fields)


def judge(base: list[Record], new: list[Record], args: argparse.Namespace) -> dict[str, bool]:
    """compare's verdict on training throughput and check's gate, for one pairing."""
    tol = cmp.Tolerances(time=args.time_tolerance)
    rows = cmp.compare(base, new, tol)
    (row,) = [r for r in rows if r.side == "both"]
    change = next(c for c in row.changes if c.metric.name == "train_samples_per_second")
    failures = cmp.gate(rows, tol, max_slowdown=args.max_slowdown)
    return {
        "skipped": change.skipped is not None,
        "worse": change.verdict == cmp.WORSE,
        "changed": change.verdict != cmp.SAME,
        "gate": bool(failures),
    }


def draw(
    views: dict[float, list[Record]], side: Side, k: int, rng: random.Random
) -> tuple[list[Record], list[Record]]:
    """One pairing of k runs a side: A against A (2k distinct runs), A against an injected
    slowdown's runs, or A against k other A runs shifted (`shifted`)."""
    if isinstance(side, tuple):
        picked = rng.sample(views[BASE], 2 * k)
        return picked[:k], [shifted(r, side[1]) for r in picked[k:]]
    if side == BASE:
        picked = rng.sample(views[BASE], 2 * k)
        return picked[:k], picked[k:]
    return rng.sample(views[BASE], k), rng.sample(views[side], k)


def pairings(
    runs: dict[float, list[Record]], args: argparse.Namespace
) -> dict[str, dict[str, dict[str, float]]]:
    """Per figure and pairing (`A vs A`, `A vs +5%`...), the rate of each outcome of `judge`."""
    k = args.per_side
    rng = random.Random(args.resample_seed)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for figure in FIGURES:
        views = {
            s: [as_figure(r, figure, ignore_flags=args.ignore_flags) for r in rs]
            for s, rs in runs.items()
        }
        table: dict[str, dict[str, float]] = {}
        for side in [BASE, *args.slowdowns, *shifts(args)]:
            counts = dict.fromkeys(("skipped", "worse", "changed", "gate"), 0)
            for _ in range(args.pairings):
                base, new = draw(views, side, k, rng)
                for name, hit in judge(base, new, args).items():
                    counts[name] += hit
            label = f"A vs {side_name(side)}"
            table[label] = {name: n / args.pairings for name, n in counts.items()}
            table[label]["pairings"] = args.pairings
        out[figure] = table
    return out


LIMITS = [round(0.005 * i, 3) for i in range(1, 101)]  # 0.5% .. 50%


def relative_changes(
    views: dict[float, list[Record]], k: int, args: argparse.Namespace, rng: random.Random
) -> dict[Side, list[float | None]]:
    """Per side (BASE: A vs A), the training throughput's relative change in each of
    --pairings pairings of k runs a side, as `compare` computes it; None where it has no
    timing verdict (a contended or unstable record)."""
    out: dict[Side, list[float | None]] = {}
    for slowdown in [*views, *shifts(args)]:
        changes: list[float | None] = []
        for _ in range(args.pairings):
            base, new = draw(views, slowdown, k, rng)
            (row,) = [r for r in cmp.compare(base, new) if r.side == "both"]
            c = next(c for c in row.changes if c.metric.name == "train_samples_per_second")
            changes.append(None if c.skipped or c.relative is None else c.relative)
        out[slowdown] = changes
    return out


def _fail_rate(changes: dict[Side, list[float | None]], slowdown: Side, limit: float) -> float:
    """The share of `slowdown`'s pairings whose throughput fell by more than `limit`."""
    hits = [c is not None and c < -limit for c in changes[slowdown]]
    return sum(hits) / len(hits)


def calibrate(runs: dict[float, list[Record]], args: argparse.Namespace) -> list[dict]:
    """Per figure and K (runs a side): the smallest `check --max-slowdown` limit (of LIMITS)
    whose A/A pairings fail at most --false-alarms of the time, and the share of pairings
    it fails at each slowdown (its power). A pairing without a verdict never fails."""
    rng = random.Random(args.resample_seed)
    out = []
    for figure in FIGURES:
        views = {
            s: [as_figure(r, figure, ignore_flags=args.ignore_flags) for r in rs]
            for s, rs in runs.items()
        }
        for k in args.calibrate:
            changes = relative_changes(views, k, args, rng)
            fails = functools.partial(_fail_rate, changes)
            skipped = {s: sum(c is None for c in cs) / len(cs) for s, cs in changes.items()}
            limit = None  # where no A/A pairing had a verdict there is nothing to calibrate on
            if skipped[BASE] < 1:
                limit = next((t for t in LIMITS if fails(BASE, t) <= args.false_alarms), None)
            out.append(
                {
                    "figure": figure,
                    "per_side": k,
                    "limit": limit,
                    "false_alarms": None if limit is None else fails(BASE, limit),
                    "power": {
                        side_name(s): None if limit is None else fails(s, limit)
                        for s in [*args.slowdowns, *shifts(args)]
                    },
                    "skipped": skipped[BASE],
                }
            )
    return out


def repeats_needed(
    cv: float, slowdown: float, *, false_alarms: float = 0.01, power: float = 0.9
) -> int:
    """Runs a side for a one-sided comparison of means to keep A/A false alarms at
    `false_alarms` and catch `slowdown` (every epoch that fraction longer: throughput down
    by 1 - 1 / (1 + slowdown)) with `power`, where each run's throughput varies from process to
    process with coefficient of variation `cv`: the normal approximation
    K = 2 ((z_fa + z_power) cv / drop)^2, rounded up. For K beyond the runs measured."""
    z = statistics.NormalDist().inv_cdf
    drop = 1 - 1 / (1 + slowdown)
    return max(1, math.ceil(2 * ((z(1 - false_alarms) + z(power)) * cv / drop) ** 2))


def process_cv(records: list[Record], figure: str) -> float:
    """The coefficient of variation of the runs' throughput (each a fresh process), flagged
    runs left out as the verdicts leave them out."""
    rates = [
        v.train_samples_per_second
        for v in (as_figure(r, figure) for r in records)
        if v.train_samples_per_second and not (v.unstable or v.contended)
    ]
    return statistics.stdev(rates) / statistics.fmean(rates) if len(rates) > 1 else math.nan


def spread(records: list[Record], figure: str) -> dict[str, float]:
    """min / median / max of the runs' training throughput, and how many were flagged."""
    views = [as_figure(r, figure) for r in records]
    rates = sorted(v.train_samples_per_second or 0.0 for v in views)
    return {
        "min": rates[0],
        "median": statistics.median(rates),
        "max": rates[-1],
        "unstable": sum(v.unstable for v in views),
        "contended": sum(v.contended for v in views),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="two-dense")
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N")
    parser.add_argument("--test-limit", type=int, default=1000, metavar="N")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="runs per side (A, each slowdown)")
    parser.add_argument(
        "--slowdowns", default="0.05,0.10,0.20", help="injected fractions, comma-separated"
    )
    parser.add_argument("--per-side", type=int, default=1, metavar="K", help="runs a side")
    parser.add_argument(
        "--pairings",
        type=int,
        default=2000,
        help="pairings per question (the 1%% tail of 200 is two pairings: limits then move by "
        "points from one resampling to the next)",
    )
    parser.add_argument(
        "--shifts",
        default="",
        metavar="F,F",
        help="also pair A runs with other A runs made F slower by arithmetic (every timing x(1 "
        "+ F)): power at an exact slowdown with the processes' own spread, where the injected "
        "one is inexact (JAX's asynchronous dispatch); costs no runs",
    )
    parser.add_argument("--max-slowdown", type=float, default=0.03, help="check's limit")
    parser.add_argument("--time-tolerance", type=float, default=0.10, help="compare's, 1 a side")
    parser.add_argument("--same-seed", action="store_true", help="every run trains seed 0")
    parser.add_argument("--resample-seed", type=int, default=0)
    parser.add_argument(
        "--ignore-flags",
        action="store_true",
        help="judge contended and unstable records too (a busy machine's numbers, marked so)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        metavar="DIR",
        help="keep the run files here; runs already there are read, not trained again (judge "
        "the same runs another way: --per-side, --calibrate)",
    )
    parser.add_argument(
        "--calibrate",
        default="1,2,3",
        metavar="K,K",
        help="runs a side to calibrate check --max-slowdown for: per K, the smallest limit whose "
        "A/A false alarms are at most --false-alarms, and its power (default 1,2,3)",
    )
    parser.add_argument("--false-alarms", type=float, default=0.01, metavar="RATE")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write everything here")
    args = parser.parse_args(argv)
    for option in ("slowdowns", "shifts"):
        text = getattr(args, option)
        try:
            fractions = [float(s) for s in text.split(",") if s.strip()]
        except ValueError:
            parser.error(f"--{option}: not fractions: {text}")
        if any(not 0 < s <= 10 for s in fractions):
            parser.error(f"--{option}: each must be above 0 and at most 10")
        setattr(args, option, fractions)
    if args.per_side < 1 or args.runs < 2 * args.per_side:
        parser.error("--runs must be at least twice --per-side (A vs A takes distinct runs)")
    if args.pairings < 1:
        parser.error("--pairings must be 1 or more")
    try:
        args.calibrate = sorted({int(k) for k in args.calibrate.split(",") if k.strip()})
    except ValueError:
        parser.error(f"--calibrate: whole numbers, comma-separated, not {args.calibrate!r}")
    if any(k < 1 or 2 * k > args.runs for k in args.calibrate):
        parser.error("--calibrate: each K from 1 to half of --runs")
    if not 0 < args.false_alarms < 1:
        parser.error("--false-alarms: a rate between 0 and 1")
    os.environ.setdefault("MNIST_BENCH_QUICK_MEASURE", "1")  # training is what is studied

    load_before = os.getloadavg()
    runs: dict[float, list[Record]] = {s: [] for s in [BASE, *args.slowdowns]}
    with tempfile.TemporaryDirectory(prefix="timing-verdicts-") as tmp:
        where = args.runs_dir or Path(tmp)
        for i in range(args.runs):
            for slowdown in runs:
                seed = 0 if args.same_seed else i
                record = run_once(args, seed, slowdown, where / f"{slowdown}-{i}")
                runs[slowdown].append(record)
                print(
                    f"run {i + 1}/{args.runs} +{slowdown:.0%}: "
                    f"{record.train_samples_per_second:.0f} samples/s (windows), "
                    f"unstable={record.unstable} contended={record.contended}",
                    file=sys.stderr,
                )
    load_after = os.getloadavg()
    table = pairings(runs, args)
    realized = {
        f"+{s:.0%}": statistics.median(r.steady_seconds_per_1k or 0.0 for r in runs[s])
        / statistics.median(r.steady_seconds_per_1k or 0.0 for r in runs[BASE])
        - 1
        for s in args.slowdowns
    }

    flags = "flagged records judged too (--ignore-flags); " if args.ignore_flags else ""
    print(
        f"{args.variant} on {args.backend}, {args.epochs} epochs, train limit "
        f"{args.train_limit or 'all'}, {args.runs} runs a side, {args.per_side} a side per "
        f"pairing, {args.pairings} pairings; check --max-slowdown {args.max_slowdown}; "
        f"{flags}"
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("realized slowdown (median steady window vs A): " + ", ".join(
        f"{k} -> {v:+.1%}" for k, v in realized.items()
    ))  # fmt: skip
    for figure in FIGURES:
        s = {f"+{k:.0%}" if k else "A": spread(v, figure) for k, v in runs.items()}
        print(f"\n{figure}: training samples/s per side (min / median / max, flagged)")
        for name, v in s.items():
            print(
                f"  {name:>5}: {v['min']:.0f} / {v['median']:.0f} / {v['max']:.0f}, "
                f"unstable {v['unstable']}, contended {v['contended']}"
            )
        print(f"  {'pairing':<12} {'skipped':>8} {'worse':>8} {'changed':>8} {'gate':>8}")
        for label, rates in table[figure].items():
            print(
                f"  {label:<12} {rates['skipped']:>8.0%} {rates['worse']:>8.0%} "
                f"{rates['changed']:>8.0%} {rates['gate']:>8.0%}"
            )
    print(
        "\nA vs A: worse/changed/gate are false alarms; A vs +x% (injected) and A vs A+x% "
        "(other A runs, shifted): power. Skipped: no side had an unflagged record, no timing "
        "verdict."
    )
    calibrated = calibrate(runs, args)
    print(
        f"\ncheck --max-slowdown calibrated: per K runs a side, the smallest limit with A/A "
        f"false alarms <= {args.false_alarms:.0%}, and the share of slowed pairings it fails"
    )
    print(f"  {'figure':<8} {'K':>2} {'limit':>6} {'A/A':>6} {'skipped':>8} " + " ".join(
        f"{side_name(s):>6}" for s in [*args.slowdowns, *shifts(args)]
    ))  # fmt: skip
    for c in calibrated:
        limit = "-" if c["limit"] is None else f"{c['limit']:.1%}"
        aa = "-" if c["false_alarms"] is None else f"{c['false_alarms']:.1%}"
        power = " ".join(
            f"{'-' if p is None else format(p, '.0%'):>6}" for p in c["power"].values()
        )
        print(
            f"  {c['figure']:<8} {c['per_side']:>2} {limit:>6} {aa:>6} {c['skipped']:>8.0%} "
            + power
        )
    needed = {}
    for figure in FIGURES:
        cv = process_cv(runs[BASE], figure)
        needed[figure] = {
            "process_cv": cv,
            "runs_a_side": {
                f"+{s:.0%}": None
                if math.isnan(cv)
                else repeats_needed(cv, s, false_alarms=args.false_alarms, power=0.9)
                for s in sorted({*args.slowdowns, *args.shifts})
            },
        }
    print(
        f"\nruns a side for power 0.9 at <= {args.false_alarms:.0%} false alarms (normal "
        f"approximation from the A runs' spread across processes; beyond the K measured):"
    )
    for figure, n in needed.items():
        print(
            f"  {figure:<8} CV across processes {n['process_cv']:.1%}: "
            + ", ".join(f"{k} -> {v}" for k, v in n["runs_a_side"].items())
        )
    if args.json:
        out = {
            "settings": {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
                if k != "json"
            },
            "loadavg_1m": [load_before[0], load_after[0]],
            "realized_slowdown": realized,
            "verdicts": table,
            "calibrated": calibrated,
            "runs_needed": needed,
            "runs": {
                str(s): [
                    {
                        "seed": r.seed,
                        "train_samples_per_second": r.train_samples_per_second,
                        "epoch_seconds": r.epoch_seconds,
                        "steady_seconds_per_1k": r.steady_seconds_per_1k,
                        "steady_interval": r.steady_interval,
                        "warmup_windows": r.warmup_windows,
                        "unstable": r.unstable,
                        "contended": r.contended,
                        "injected": r.injected,
                    }
                    for r in rs
                ]
                for s, rs in runs.items()
            },
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
