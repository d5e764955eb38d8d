"""How well `mnist-bench history` finds steps: detection and false-alarm rates on series built
from real run files.

Each configuration of the real run files under `results/baseline`, `results/published` and
`tests/fixtures/report` with a measured spread gives a noise source:

- accuracy: the seed-to-seed spread of test accuracy (configurations with 2 or more seeds);
- steady epoch time: the seed-to-seed spread of the steady epoch seconds (log scale) among
  records that were neither contended nor unstable (what `history` reads), or, for a
  configuration with one such record, the dispersion of its epochs after the first (a lower
  bound on run-to-run noise).

(`tests/fixtures/gate` holds copies of the baseline, one of them edited by hand to regress, and
`tests/fixtures/schema1` the baseline in schema 1: not independent measurements.)

For each source: 20 commits, each the mean over as many seeds as the source has (1 for an
epoch-dispersion source), at the source's own level and noise (normal with the measured standard
deviation, or `--noise resample`: the measured deviations drawn with replacement). A -0.5-point
accuracy step or a +10% steady-epoch step starts at commit 11 (the middle) or at commit 20 (the
newest: what a CI check sees first), or nothing changes (flat). Each series goes through the
same test `history` runs (`changepoints.detect`, log scale for time) at `--alpha`:

- named: a significant step in the right direction at exactly the injected commit;
- ±1: at the injected commit or a neighbour;
- any step: a flat series got any significant step (false alarm);
- fail: a flat series got a worse step in the newest 5 commits (what `--fail-on-step` with the
  default `--recent 5` exits 1 on).

    .venv/bin/python benchmarks/history_eval.py                  # 200 series per cell
    .venv/bin/python benchmarks/history_eval.py --noise resample --series 500
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mnist_bench.analyse import changepoints, history
from mnist_bench.core import identity
from mnist_bench.runfile import collect

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("results/baseline", "results/published", "tests/fixtures/report")
COMMITS = 20
ACCURACY_STEP = -0.005  # half a point down
TIME_STEP = 1.10  # 10% slower


@dataclass
class Source:
    """One configuration's level and measured noise."""

    name: str
    metric: str  # accuracy or time
    kind: str  # seeds or epochs
    measured: list[float]  # per seed (or per epoch): accuracy, or log seconds
    seeds: int  # seeds averaged per commit
    epochs: int = 1  # an epoch source: a record's value is the median of this many epochs
    config: tuple = ()  # the configuration (`Job.config_key`) it was measured on

    @property
    def level(self) -> float:
        return float(np.mean(self.measured))

    @property
    def deviations(self) -> np.ndarray:
        """Deviations from the level, widened by sqrt(n / (n - 1)) so their spread is unbiased."""
        v = np.asarray(self.measured, dtype=float)
        return (v - v.mean()) * math.sqrt(len(v) / (len(v) - 1))

    @property
    def sd(self) -> float:
        return float(np.std(self.deviations, ddof=1))


def sources() -> list[Source]:
    runs = collect.load_runs([ROOT / p for p in SOURCES])
    out, seen = [], set()
    for loaded in runs:
        ok = [r for r in loaded.run.records if r.status == "ok" and not r.repeat]
        for key, records in identity.group(ok, lambda job: job.config_key).items():
            if (key, loaded.machine) in seen:
                continue
            seen.add((key, loaded.machine))
            r0 = records[0]
            name = f"{loaded.path.stem}: {r0.variant} · {r0.backend}"
            if r0.settings.train_limit:
                name += f" ({r0.settings.train_limit} samples)"
            accuracy = identity.seed_values(records, lambda r: r.test_accuracy)
            if len(accuracy) >= 2:
                out.append(Source(name, "accuracy", "seeds", accuracy, len(accuracy), config=key))
            clean = [r for r in records if not (r.contended or r.unstable)]
            steady = identity.seed_values(
                clean,
                lambda r: math.log(r.steady_epoch_seconds) if r.steady_epoch_seconds else None,
            )
            if len(steady) >= 2:
                out.append(Source(name, "time", "seeds", steady, len(steady), config=key))
            elif len(clean) == 1 and len(clean[0].epoch_seconds) >= 3:
                logs = [math.log(s) for s in clean[0].epoch_seconds[1:]]
                out.append(Source(name, "time", "epochs", logs, 1, len(logs), config=key))
    return _distinct(out)


def _distinct(found: list[Source]) -> list[Source]:
    """Sources that are evidence of their own: not the same values as another (the CI suite's
    flatten-dense computes what two-dense computes, to the last digit), nor the same
    configuration with the same spread (the Intel fixture repeats the AMD one's JAX records,
    its timings halved)."""
    seen: set = set()
    out = []
    for source in found:
        keys = {
            (source.metric, tuple(np.round(source.measured, 9))),
            (source.metric, source.config, tuple(np.round(source.deviations, 9))),
        }
        if not keys & seen:
            seen |= keys
            out.append(source)
    return out


def simulate(source: Source, step_at: int | None, rng: np.random.Generator, noise: str) -> list:
    """One series of per-commit means (seconds for time), with a step from commit `step_at`."""
    shape = (COMMITS, source.seeds, source.epochs)
    if noise == "normal":
        draws = rng.normal(0.0, source.sd, shape)
    else:
        draws = rng.choice(source.deviations, shape)
    values = source.level + np.median(draws, axis=2)  # steady epoch: the median of its epochs
    if step_at is not None:
        shift = ACCURACY_STEP if source.metric == "accuracy" else math.log(TIME_STEP)
        values[step_at:] += shift
    if source.metric == "time":
        values = np.exp(values)  # seconds per seed; the commit's value is their mean
    return list(values.mean(axis=1))


def evaluate(
    source: Source, series: int, alpha: float, noise: str, seed: int, calibration: str
) -> dict:
    rng = np.random.default_rng(seed)
    is_time = source.metric == "time"
    worse = 1 if is_time else -1  # the sign of a worse step
    recent = COMMITS - history.DEFAULT_RECENT
    counts = dict.fromkeys(("mid", "mid1", "new", "new1", "any", "fail"), 0)
    for _ in range(series):
        for case, at in (("mid", COMMITS // 2), ("new", COMMITS - 1), ("flat", None)):
            values = simulate(source, at, rng, noise)
            steps = changepoints.detect(values, alpha=alpha, log=is_time, calibration=calibration)
            if at is None:
                counts["any"] += bool(steps)
                counts["fail"] += any(s.index >= recent and s.size * worse > 0 for s in steps)
                continue
            right = [s for s in steps if s.size * worse > 0]
            counts[case] += any(s.index == at for s in right)
            counts[case + "1"] += any(abs(s.index - at) <= 1 for s in right)
    return {k: 100 * v / series for k, v in counts.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200, help="series per cell (default 200)")
    parser.add_argument("--alpha", type=float, default=history.DEFAULT_ALPHA)
    parser.add_argument("--noise", choices=("normal", "resample"), default="normal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--calibration",
        choices=("normal", "permutation"),
        default="normal",
        help="how p-values are found (history uses normal; see mnist_bench.analyse.changepoints)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = sources()
    print(
        f"{COMMITS} commits per series, {args.series} series per cell, alpha {args.alpha:g}, "
        f"{args.noise} noise, {args.calibration} calibration; steps: accuracy "
        f"{ACCURACY_STEP * 100:+.1f} pt, time {(TIME_STEP - 1) * 100:+.0f}%\n"
    )
    totals: dict[str, list[dict]] = {}
    for metric, unit in (("accuracy", "sd (pt)"), ("time", "sd (%)")):
        chosen = [s for s in found if s.metric == metric]
        print(f"{metric}: {len(chosen)} sources")
        print(
            f"| source | noise from | seeds | {unit} | step at 11/20: named (±1) | "
            f"step at 20/20: named | flat: any step | flat: fail |"
        )
        print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for i, source in enumerate(chosen):
            r = evaluate(
                source, args.series, args.alpha, args.noise, args.seed + i, args.calibration
            )
            totals.setdefault(metric, []).append(r)
            sd = source.sd * 100
            kind = "seeds" if source.kind == "seeds" else f"{source.epochs} epochs of 1 record"
            print(
                f"| {source.name} | {kind} | {source.seeds} | {sd:.2f} | "
                f"{r['mid']:.0f}% ({r['mid1']:.0f}%) | {r['new']:.0f}% | {r['any']:.1f}% | "
                f"{r['fail']:.1f}% |"
            )
        rows = totals.get(metric, [])
        if rows:
            mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
            print(
                f"| **all {len(rows)}** | | | | {mean['mid']:.0f}% ({mean['mid1']:.0f}%) | "
                f"{mean['new']:.0f}% | {mean['any']:.1f}% | {mean['fail']:.1f}% |"
            )
        print()
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
