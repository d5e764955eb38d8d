"""Does a reference unit of CPU work, timed right before and after a run, track the run's speed?

Processes of the same training differ in speed on a shared VM (docs/methodology.md), with CPU
seconds moving with wall seconds: the machine itself is faster or slower for a while. If that
drift is slow (minutes) a short fixed unit of work timed just before and just after a run sees
it too, and the run's throughput divided by the unit's rate would be steadier than the raw
throughput. This script measures whether it is: RUNS rounds of [unit, fresh `mnist-bench run`
of one record, unit]; the units run in this one long-lived process (the same memory layout
every time: a fixed yardstick), on one thread, 0.5 s of NumPy matrix products and 0.5 s of a
pure-Python loop each. It reports the correlation of the runs' throughput with each unit's
rate (the mean of before and after) and the CV across runs of the raw and of the normalized
throughput.

    python benchmarks/speed_reference.py --backend tensorflow --runs 12 [--json OUT]

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent


def matmul_rate(seconds: float = 0.5) -> float:
    """256x256 float32 matrix products per second, over about `seconds`."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256), dtype=np.float32)
    b = rng.standard_normal((256, 256), dtype=np.float32)
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            a @ b
        n += 20
    return n / elapsed


def python_rate(seconds: float = 0.5) -> float:
    """Iterations of a pure-Python loop per second, over about `seconds`."""
    n, start, total = 0, time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for i in range(20_000):
            total += i * i % 7
        n += 20_000
    return n / elapsed


def units() -> dict[str, float]:
    return {"matmul": matmul_rate(), "python": python_rate()}


def one_run(args: argparse.Namespace, folder: Path) -> float:
    command = [
        sys.executable, "-m", "mnist_bench", "run", "-b", args.backend, "-v", args.variant,
        "--seeds", "0", "--epochs", str(args.epochs), "--test-limit", "1000", "--no-figures",
        "--results-dir", str(folder),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"speed_reference: a run failed: {done.stderr.strip()[-500:]}")
    (path,) = folder.glob("*.json")
    (record,) = json.loads(path.read_text())["records"]
    return record["train_samples_per_second"]


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.fmean(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--variant", default="two-dense")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args(argv)
    if args.runs < 3 or args.epochs < 2:
        parser.error("--runs must be 3 or more and --epochs 2 or more")
    os.environ.setdefault("MNIST_BENCH_QUICK_MEASURE", "1")
    rounds = []
    with tempfile.TemporaryDirectory(prefix="speed-reference-") as tmp:
        for i in range(args.runs):
            before = units()
            rate = one_run(args, Path(tmp) / str(i))
            after = units()
            ref = {k: (before[k] + after[k]) / 2 for k in before}
            rounds.append({"rate": rate, "before": before, "after": after, "reference": ref})
            print(
                f"round {i + 1}/{args.runs}: {rate:.0f} samples/s; matmul "
                f"{before['matmul']:.0f} -> {after['matmul']:.0f}/s, python "
                f"{before['python'] / 1e6:.2f} -> {after['python'] / 1e6:.2f} M/s",
                file=sys.stderr,
            )
    rates = [r["rate"] for r in rounds]
    print(f"{args.variant} on {args.backend}, {args.runs} rounds; throughput CV {cv(rates):.1%}")
    out = {"rounds": rounds, "raw_cv": cv(rates), "units": {}}
    for kind in ("matmul", "python"):
        refs = [r["reference"][kind] for r in rounds]
        drift = [abs(r["after"][kind] / r["before"][kind] - 1) for r in rounds]
        normalized = [rate / ref for rate, ref in zip(rates, refs, strict=True)]
        row = {
            "correlation": statistics.correlation(rates, refs),
            "unit_cv": cv(refs),
            "before_after_change_median": statistics.median(drift),
            "normalized_cv": cv(normalized),
        }
        out["units"][kind] = row
        print(
            f"  {kind:<7} unit CV {row['unit_cv']:.1%}, before/after differ by "
            f"{row['before_after_change_median']:.1%} (median), correlation with the run "
            f"{row['correlation']:+.2f}, normalized throughput CV {row['normalized_cv']:.1%}"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
