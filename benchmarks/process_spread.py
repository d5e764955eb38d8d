"""How much one configuration's training speed differs from process to process, per thread setting.

Runs the same single-record `mnist-bench run` (one variant, one backend, seed 0, the same
batches and weights every time) in RUNS fresh processes per condition, the conditions
interleaved round by round (default, default, ... in turn with the others) so that a drift of
the machine hits each alike, and reports per condition each process's steady training
throughput (the record's `train_samples_per_second`: the median timing window after warm-up),
the spread across processes (CV, slowest / fastest) and the within-record flags. A timing
verdict between two runs is only as sharp as this spread: it is the noise a cross-process
comparison (`compare`, `check --max-slowdown`) has to see through.

Conditions: `default` (mnist-bench's thread defaults: on a machine without a GPU, one fewer
intra-op thread than the usable cores for PyTorch and TensorFlow, TensorFlow's inter-op pool at
one, JAX's Eigen pool at one thread on 2 cores), `own` (`MNIST_BENCH_FRAMEWORK_THREADS=1`: each
framework's own pools), `intra1` (`--threads 1`: one intra-op thread), `intra2` (`--threads 2`),
`intra1-inter1` and `intra2-inter1` (also `TF_NUM_INTEROP_THREADS=1`, TensorFlow's inter-op
pool; JAX and PyTorch ignore it), `sync` (JAX's own pool with
`JAX_CPU_ENABLE_ASYNC_DISPATCH=false`: each step run inline on the calling thread instead of
dispatched to XLA's; the others ignore it), `intra1-sync` (both), `no-aslr` (the run and its
worker started by `setarch --addr-no-randomize`: the same memory layout in every process) and
`no-numpy-hugepages` (`NUMPY_MADVISE_HUGEPAGE=0`: NumPy's large arrays without transparent
huge pages).

    python benchmarks/process_spread.py --backend tensorflow --runs 6 [--json OUT]

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mnist_bench.execute.backends import FRAMEWORK_THREADS_ENV  # noqa: E402  (no framework)

OWN = {FRAMEWORK_THREADS_ENV: "1"}  # the framework's own pools, not mnist-bench's
SYNC = {"JAX_CPU_ENABLE_ASYNC_DISPATCH": "false"}
NO_ASLR = ["setarch", platform.machine(), "--addr-no-randomize"]  # inherited by the worker
# name: (extra `mnist-bench run` arguments, environment, command prefix)
CONDITIONS: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    "default": ([], {}, []),
    "own": ([], OWN, []),
    "intra1": (["--threads", "1"], {}, []),
    "intra2": (["--threads", "2"], {}, []),
    "intra1-inter1": (["--threads", "1"], {"TF_NUM_INTEROP_THREADS": "1"}, []),
    "intra2-inter1": (["--threads", "2"], {"TF_NUM_INTEROP_THREADS": "1"}, []),
    "sync": ([], {**OWN, **SYNC}, []),
    "intra1-sync": (["--threads", "1"], SYNC, []),
    "no-aslr": ([], {}, NO_ASLR),
    "no-numpy-hugepages": ([], {"NUMPY_MADVISE_HUGEPAGE": "0"}, []),
}


def one_run(args: argparse.Namespace, condition: str, folder: Path) -> dict:
    """One fresh `mnist-bench run` under `condition`; its record's timing figures."""
    extra, env, prefix = CONDITIONS[condition]
    command = [
        *prefix, sys.executable, "-m", "mnist_bench", "run", "-b", args.backend, "-v", args.variant,
        "--seeds", "0", "--epochs", str(args.epochs), "--test-limit", "1000", "--no-figures",
        "--results-dir", str(folder), *extra,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env}
    )
    if done.returncode != 0:
        raise SystemExit(f"process_spread: a run failed: {done.stderr.strip()[-500:]}")
    (path,) = folder.glob("*.json")
    (record,) = json.loads(path.read_text())["records"]
    return {
        "train_samples_per_second": record["train_samples_per_second"],
        "epoch_seconds": record["epoch_seconds"],
        "epoch_cpu_seconds": record.get("epoch_cpu_seconds", []),
        "unstable": record["unstable"],
        "contended": record["contended"],
        "threads": record["threads"],
    }


def summary(runs: list[dict]) -> dict:
    rates = [r["train_samples_per_second"] for r in runs]
    return {
        "runs": len(rates),
        "median": statistics.median(rates),
        "cv": statistics.stdev(rates) / statistics.fmean(rates) if len(rates) > 1 else None,
        "max_min": max(rates) / min(rates),
        "unstable": sum(r["unstable"] for r in runs),
        "contended": sum(r["contended"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--variant", default="two-dense")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=6, help="processes per condition")
    parser.add_argument(
        "--conditions", default=",".join(CONDITIONS), help=f"of {', '.join(CONDITIONS)}"
    )
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args(argv)
    names = [c for c in args.conditions.split(",") if c]
    unknown = [c for c in names if c not in CONDITIONS]
    if unknown or not names:
        parser.error(f"--conditions: of {', '.join(CONDITIONS)}, not {args.conditions!r}")
    if args.runs < 2 or args.epochs < 2:
        parser.error("--runs and --epochs must be 2 or more")
    os.environ.setdefault("MNIST_BENCH_QUICK_MEASURE", "1")
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {c: [] for c in names}
    with tempfile.TemporaryDirectory(prefix="process-spread-") as tmp:
        for i in range(args.runs):
            for condition in names:
                run = one_run(args, condition, Path(tmp) / f"{condition}-{i}")
                runs[condition].append(run)
                print(
                    f"{condition} {i + 1}/{args.runs}: {run['train_samples_per_second']:.0f} "
                    f"samples/s, unstable={run['unstable']} contended={run['contended']}",
                    file=sys.stderr,
                )
    load_after = os.getloadavg()[0]
    print(
        f"{args.variant} on {args.backend}, {args.epochs} epochs, seed 0, {args.runs} processes a "
        f"condition, interleaved; load average {load_before:.2f} before, {load_after:.2f} after"
    )
    print(f"{'condition':<15} {'median/s':>9} {'CV':>6} {'max/min':>8} {'unstable':>9}  each")
    out = {}
    for condition, rs in runs.items():
        s = summary(rs)
        out[condition] = {**s, "each": rs}
        each = ", ".join(f"{r['train_samples_per_second']:.0f}" for r in rs)
        print(
            f"{condition:<15} {s['median']:>9.0f} {s['cv']:>6.1%} {s['max_min']:>8.2f} "
            f"{s['unstable']:>9}  {each}"
        )
    if args.json:
        payload = {"settings": {k: str(v) for k, v in vars(args).items()}, "conditions": out}
        payload["loadavg_1m"] = [load_before, load_after]
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
