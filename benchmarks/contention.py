"""Noisy neighbours: does the contention guard flag a run that shared the CPU, and what did it cost?

Per backend, the same short single-record run three times: quiet; beside busy-loop neighbour
processes (pure Python `while True: pass`, one unless told); and beside them again with
`--threads 1`. Prints the steady epoch time of each, whether the record was marked `contended`,
and the contention figures it carries (other processes' share of all cores, 1-minute load).
The guard is right when the quiet runs are not flagged and the neighbour runs are.

    python benchmarks/contention.py [--quick] [--backend jax ...] [--neighbours N]

Run it on an otherwise idle machine: a quiet run that is flagged means something else was busy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("torch", "jax", "tensorflow")
CASES = (("quiet", False, None), ("neighbours", True, None), ("neighbours, --threads 1", True, 1))


@contextlib.contextmanager
def neighbours(count: int) -> Iterator[None]:
    """`count` processes spinning a pure-Python busy loop until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let them reach full speed before the run starts
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def harness(backend: str, args: argparse.Namespace, threads: int | None) -> dict:
    """One single-record `mnist-bench run`; its record."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "bench",
            "run",
            "-b",
            backend,
            "-v",
            "two-dense",
            "--epochs",
            str(args.epochs),
            "--train-limit",
            str(args.train_limit),
            "--test-limit",
            str(args.test_limit),
            "--infer-batch-sizes",
            "32",
            "--results-dir",
            tmp,
            "--record-timeout",
            "1800",  # a contended PyTorch epoch can take many times the estimate
        ]
        if threads:
            cmd += ["--threads", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            sys.exit(
                f"{backend}: mnist-bench run failed ({out.returncode}): {out.stderr.strip()[-500:]}"
            )
        (path,) = Path(tmp).glob("*.json")
        return json.loads(path.read_text())["records"][0]


def row(backend: str, case: str, record: dict, expected: bool) -> str:
    contention = record.get("contention") or {}
    share, load = contention.get("other_cpu_share"), contention.get("loadavg_1m")
    verdict = "ok" if record["contended"] == expected else "WRONG"
    steady = record["steady_epoch_seconds"]
    return (
        f"{backend:<11} {case:<24} {steady:>9.3f} {str(record['contended']):>9} "
        f"{share if share is not None else '-':>11} {load if load is not None else '-':>8}"
        f"  {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend",
        action="append",
        choices=BACKENDS,
        help="backend to measure; repeat for several (default: every installed)",
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        default=1,
        metavar="N",
        help="busy-loop processes beside the run (default: 1, one other busy process)",
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=20000, metavar="N")
    parser.add_argument("--test-limit", type=int, default=2000, metavar="N")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: 2,000 training and 500 test samples"
    )
    args = parser.parse_args()
    if args.quick:
        args.train_limit, args.test_limit = 2000, 500
    sys.path.insert(0, str(ROOT))
    from mnist_bench.environment import installed_backends

    backends = args.backend or [b for b in BACKENDS if b in installed_backends()]
    print(
        f"two-dense, {args.epochs} epochs, {args.train_limit} training samples; "
        f"{args.neighbours} busy-loop neighbour(s) on {os.cpu_count()} cores"
    )
    print(
        f"{'backend':<11} {'case':<24} {'steady s':>9} {'contended':>9} "
        f"{'other share':>11} {'load 1m':>8}  guard"
    )
    wrong = 0
    for backend in backends:
        for case, busy, threads in CASES:
            with neighbours(args.neighbours if busy else 0):
                record = harness(backend, args, threads)
            line = row(backend, case, record, expected=busy)
            wrong += line.endswith("WRONG")
            print(line, flush=True)
    if wrong:
        print(f"{wrong} run(s) flagged wrongly (a quiet run flagged means the machine was busy)")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
