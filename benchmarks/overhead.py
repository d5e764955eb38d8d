"""Harness overhead: the seed's two-dense, bare Keras (A) vs mnist-bench (B), in interleaved pairs.

Per backend, PAIRS pairs run back to back, alternating A B, B A, ... so that a slow drift of the
machine hits both sides alike. Each run is a fresh process; its steady epochs (all but the
first) give its median epoch time. A pair is dropped when either side cannot be trusted:

- contended: other processes and the hypervisor (steal) took more than a quarter of all cores
  while it ran (measured from here around each run, the same `ContentionProbe` as a record's);
- unstable: its steady epochs have a coefficient of variation of 10% or more (`UNSTABLE_CV`).

The ratio B / A is then each kept pair's ratio of medians, summarized by their geometric mean
with a 95% Student-t interval on the log ratios (a paired design: the pairs are the samples).
Goal: 1.02 or less, with the interval covering 1.

Across processes the ratio carries the spread between fresh processes (a process now and then
runs 10-20% slow throughout: docs/methodology.md), which no number of epochs averages away.
`--in-process` measures what the harness does inside the timed region without it: each of PAIRS
fresh processes trains one model with alternating one-epoch `fit` calls (A B, B A, ...), each
timed by a bare epoch timer (A) or by the worker's own clock callback with its timing windows
and its after-epoch test accuracy (B), EPOCHS + 1 a side, the first of each a warm-up; a pair is
then one process, its ratio the median over rounds of B / A (the two epochs of a round are
neighbours, so a slow spell of the process hits both: only contention drops such a pair). What
it leaves out is what happens outside a record's timed region (the worker's start, its
protocol), which cannot slow an epoch.

    python benchmarks/overhead.py [--pairs 6] [--epochs 4] [--backend jax ...] [--json OUT]
    python benchmarks/overhead.py --in-process [--pairs 8] [--epochs 6]
    python benchmarks/overhead.py --quick   # a smoke test: 2 pairs of 2,000 samples
    python benchmarks/overhead.py --keep-flagged   # flagged pairs counted too, still marked

Run it on an otherwise idle machine; dropped pairs say that it was not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mnist_bench.core.stats import t_quantile  # noqa: E402
from mnist_bench.execute.training import UNSTABLE_CV, ContentionProbe, steady_dispersion  # noqa: E402


@dataclass
class Side:
    """One run, bare or harness: its epochs and whether they can be trusted."""

    epoch_seconds: list[float]
    other_share: float
    steal_share: float | None
    contended: bool
    cv: float | None = None

    def __post_init__(self) -> None:
        dispersion = steady_dispersion(self.epoch_seconds)
        self.cv = dispersion[0] if dispersion else None

    @property
    def steady(self) -> float:
        return statistics.median(self.epoch_seconds[1:])

    @property
    def flags(self) -> list[str]:
        flags = ["contended"] if self.contended else []
        return flags + (["unstable"] if self.cv is not None and self.cv >= UNSTABLE_CV else [])


@dataclass
class Pair:
    bare: Side
    harness: Side
    order: str  # "AB" or "BA": which process ran first; "in-process": both in one
    flags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # In one process a slow spell hits the epochs of both sides next to each other, which
        # the ratio by round cancels: there only contention drops a pair.
        keep = ("contended",) if self.in_process else ("contended", "unstable")
        self.flags = [f"bare {f}" for f in self.bare.flags if f in keep]
        self.flags += [f"harness {f}" for f in self.harness.flags if f in keep]

    @property
    def in_process(self) -> bool:
        return self.order == "in-process"

    @property
    def ratio(self) -> float:
        """Across processes, the ratio of the steady medians; in one process, the median of
        each round's ratio (the harness's epoch over the bare epoch next to it)."""
        if self.in_process:
            rounds = zip(self.harness.epoch_seconds[1:], self.bare.epoch_seconds[1:], strict=True)
            return statistics.median(b / a for b, a in rounds)
        return self.harness.steady / self.bare.steady


def probed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, ContentionProbe]:
    """Run `cmd` to completion under a contention probe; its stdout. The probe counts this
    process's waited-for children (the run and its worker) as ours, everyone else as others."""
    with ContentionProbe() as probe:
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])}...: exit {out.returncode}: {out.stderr.strip()[-800:]}")
    return out.stdout, probe


def side(seconds: list[float], probe: ContentionProbe) -> Side:
    return Side(seconds, probe.share, probe.steal, probe.contended)


def bare(backend: str, args: argparse.Namespace) -> Side:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bare_keras.py"), str(args.epochs)]
    if args.train_limit:
        cmd.append(str(args.train_limit))
    stdout, probe = probed(cmd, env={**os.environ, "KERAS_BACKEND": backend})
    return side(json.loads(stdout.strip().splitlines()[-1]), probe)


def harness(backend: str, args: argparse.Namespace) -> Side:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "mnist_bench", "run", "-b", backend, "-v", "two-dense",
            "--epochs", str(args.epochs), "--infer-batch-sizes", "32", "--results-dir", tmp,
        ]  # fmt: skip
        if args.train_limit:
            cmd += ["--train-limit", str(args.train_limit), "--test-limit", "500"]
        _, probe = probed(cmd)
        (path,) = Path(tmp).glob("*.json")
        return side(json.loads(path.read_text())["records"][0]["epoch_seconds"], probe)


def alternating(backend: str, args: argparse.Namespace) -> tuple[Side, Side]:
    """One fresh process, both sides in it (`bare_keras.py --alternate`): (bare, harness)."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bare_keras.py"), str(args.epochs)]
    if args.train_limit:
        cmd.append(str(args.train_limit))
    stdout, probe = probed([*cmd, "--alternate"], env={**os.environ, "KERAS_BACKEND": backend})
    sides = json.loads(stdout.strip().splitlines()[-1])
    return side(sides["bare"], probe), side(sides["harness"], probe)


def ratio_interval(ratios: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean of `ratios` and its Student-t interval (computed on the logs);
    the interval is (nan, nan) for fewer than two ratios."""
    logs = [math.log(r) for r in ratios]
    mean = math.fsum(logs) / len(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = t_quantile(confidence, len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def measure(backend: str, args: argparse.Namespace) -> list[Pair]:
    pairs, verdict = [], "FLAGGED" if args.keep_flagged else "DROPPED"
    for i in range(args.pairs):
        if args.in_process:
            a, b = alternating(backend, args)
        elif i % 2 == 0:
            a = bare(backend, args)
            b = harness(backend, args)
        else:
            b = harness(backend, args)
            a = bare(backend, args)
        pair = Pair(a, b, "in-process" if args.in_process else "AB" if i % 2 == 0 else "BA")
        pairs.append(pair)
        print(
            f"  {backend:<11} pair {i + 1} ({pair.order}): bare {a.steady:.3f} s "
            f"(cv {_pct(a.cv)}, others {a.other_share:.2f}, steal {_share(a.steal_share)}), "
            f"harness {b.steady:.3f} s (cv {_pct(b.cv)}, others {b.other_share:.2f}, "
            f"steal {_share(b.steal_share)}): x{pair.ratio:.3f}"
            + (f"  {verdict}: {', '.join(pair.flags)}" if pair.flags else ""),
            flush=True,
        )
    return pairs


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="interleaved pairs per backend")
    parser.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="epochs per run, the first left out (>= 3); --in-process: timed epochs a side, "
        "after one warm-up epoch each",
    )
    parser.add_argument(
        "--backend",
        action="append",
        choices=("tensorflow", "jax", "torch"),
        help="repeat for several (default: every installed)",
    )
    parser.add_argument("--train-limit", type=int, default=None, metavar="N")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every pair here")
    parser.add_argument(
        "--keep-flagged",
        action="store_true",
        help="count flagged pairs in the ratio too (they stay marked); for a noisy machine",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="both sides in one fresh process a pair, one-epoch fits alternating: the harness's "
        "cost inside the timed region, without the spread between processes",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: 2 pairs, 3 epochs of 2,000 samples"
    )
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.epochs, args.train_limit = 2, 3, 2000
    if args.epochs < 3:
        parser.error("--epochs must be at least 3: two steady epochs to judge dispersion")
    from mnist_bench.core.environment import installed_backends

    data = "full MNIST" if not args.train_limit else f"{args.train_limit:,} samples"
    design = (
        "pairs of one process each, one-epoch fits alternating, the first of each side left out"
        if args.in_process
        else "interleaved pairs of fresh processes"
    )
    print(
        f"two-dense, {args.epochs} epochs of {data}, batch 32; {args.pairs} {design} "
        f"per backend; pairs {'flagged' if args.keep_flagged else 'dropped'} when a side is "
        + (
            "contended (the ratio by round cancels a slow spell of the process)"
            if args.in_process
            else f"contended or its steady-epoch CV >= {UNSTABLE_CV:.0%}"
        )
    )
    results, summary = {}, []
    for backend in args.backend or installed_backends():
        pairs = measure(backend, args)
        kept = [p for p in pairs if args.keep_flagged or not p.flags]
        results[backend] = [
            {"bare": asdict(p.bare), "harness": asdict(p.harness), "order": p.order,
             "ratio": p.ratio, "flags": p.flags}
            for p in pairs
        ]  # fmt: skip
        summary.append((backend, pairs, kept))
    print(
        f"\n{'backend':<11} {'bare s/epoch':>12} {'harness s/epoch':>15} {'ratio':>6} "
        f"{'95% CI':>15}  pairs counted"
    )
    short = 0
    for backend, pairs, kept in summary:
        if not kept:
            print(f"{backend:<11} {'-':>12} {'-':>15} {'-':>6} {'-':>15}  0 of {len(pairs)}")
            short += 1
            continue
        ratio, low, high = ratio_interval([p.ratio for p in kept])
        ci = "-" if math.isnan(low) else f"{low:.3f}-{high:.3f}"
        ma = statistics.median(p.bare.steady for p in kept)
        mb = statistics.median(p.harness.steady for p in kept)
        print(
            f"{backend:<11} {ma:>12.3f} {mb:>15.3f} {ratio:>6.3f} {ci:>15}  "
            f"{len(kept)} of {len(pairs)}"
        )
        short += len(kept) < 2
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    if short:
        print("fewer than 2 clean pairs for a backend: no interval; rerun on a quieter machine")
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
