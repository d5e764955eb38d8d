"""Noisy neighbours: does a run finish beside a busy process, what does it cost, is it flagged?

Per backend, the same short single-record run four times: quiet, with the backend's default
threads and with `--threads 1`; then both again beside busy-loop neighbour processes (pure
Python `while True: pass`, one unless told). Each is a plain `mnist-bench run` with no timeout
of ours: the no-progress watchdog is what decides. Prints the exit status, the steady epoch
time, the intra-op threads in force (from the record), the steady-epoch dispersion and the
`contended` / `unstable` flags, and the contention figures the record carries (other
processes' and the hypervisor's share of all cores, 1-minute load). The guard is right when
the quiet runs are not flagged contended and the neighbour runs are. The PyTorch rows answer
whether one intra-op thread is the better default on a machine with few cores (issue 12,
point 9).

`--quickstart` instead runs the README's Quickstart, `mnist-bench run` with its defaults (every
default variant on every installed backend, full MNIST), beside the neighbours, and shows that
it completes: exit status and every record.

    python benchmarks/contention.py [--quick] [--backend torch ...] [--neighbours N]
    python benchmarks/contention.py --quickstart [--neighbours N]

Run it on an otherwise idle machine: a quiet run that is flagged means something else was busy.
Exit status 1 when a run failed or a flag was wrong.
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
CASES = (
    ("quiet", False, None),
    ("quiet, --threads 1", False, 1),
    ("neighbours", True, None),
    ("neighbours, --threads 1", True, 1),
)


@contextlib.contextmanager
def neighbours(count: int) -> Iterator[None]:
    """`count` processes spinning a pure-Python busy loop until the block ends."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        if procs:
            time.sleep(1.0)  # let them reach full speed before the run starts
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def run(options: list[str]) -> tuple[int, float, list[dict], str]:
    """One `mnist-bench run OPTIONS` into a temporary folder: its exit status, wall seconds,
    records and the end of its stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "mnist_bench", "run", *options, "--results-dir", tmp]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - t0
        files = sorted(Path(tmp).glob("*.json"))
        records = json.loads(files[0].read_text())["records"] if files else []
        return out.returncode, seconds, records, out.stderr.strip()[-500:]


HEADER = (
    f"{'backend':<11} {'variant':<14} {'case':<24} {'status':<7} {'steady s':>9} {'threads':>7} "
    f"{'cv':>6} {'contended':>9} {'unstable':>8} {'other':>6} {'steal':>6} {'load':>5}"
)


def line(record: dict, case: str) -> str:
    contention = record.get("contention") or {}
    steady, cv = record.get("steady_epoch_seconds"), record.get("steady_epoch_cv")
    threads = (record.get("threads") or {}).get("intra_op", "-")
    job = record["job"]
    return (
        f"{job['backend']:<11} {job['variant']:<14} {case:<24} {record['status']:<7} "
        f"{'-' if steady is None else f'{steady:.3f}':>9} {threads!s:>7} "
        f"{'-' if cv is None else f'{cv:.1%}':>6} {record['contended']!s:>9} "
        f"{record.get('unstable', False)!s:>8} {_num(contention.get('other_cpu_share')):>6} "
        f"{_num(contention.get('steal_share')):>6} {_num(contention.get('loadavg_1m')):>5}"
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def cases(args: argparse.Namespace) -> int:
    from mnist_bench.core.environment import installed_backends

    backends = args.backend or [b for b in BACKENDS if b in installed_backends()]
    print(
        f"two-dense, {args.epochs} epochs, {args.train_limit} training samples; "
        f"{args.neighbours} busy-loop neighbour(s) on {os.cpu_count()} cores"
    )
    print(HEADER + "  guard")
    bad = 0
    for backend in backends:
        for case, busy, threads in CASES:
            options = [
                "-b", backend, "-v", "two-dense", "--epochs", str(args.epochs),
                "--train-limit", str(args.train_limit), "--test-limit", str(args.test_limit),
                "--infer-batch-sizes", "32",
            ]  # fmt: skip
            if threads:
                options += ["--threads", str(threads)]
            with neighbours(args.neighbours if busy else 0):
                code, _, records, err = run(options)
            if code != 0 or not records:
                print(f"{backend:<11} {'two-dense':<14} {case:<24} exit {code}: {err}")
                bad += 1
                continue
            record = records[0]
            right = record["contended"] == busy
            bad += not right
            print(line(record, case) + ("  ok" if right else "  WRONG"), flush=True)
    if bad:
        print(f"{bad} run(s) failed or flagged wrongly (a quiet run flagged: the machine was busy)")
    return 1 if bad else 0


def quickstart(args: argparse.Namespace) -> int:
    options = ["--train-limit", str(args.train_limit)] if args.train_limit else []
    what = f"{args.train_limit:,} training samples" if args.train_limit else "full MNIST"
    print(
        f"mnist-bench run (the Quickstart: default variants, backends and epochs; {what}) "
        f"beside {args.neighbours} busy-loop neighbour(s) on {os.cpu_count()} cores"
    )
    with neighbours(args.neighbours):
        code, seconds, records, err = run(options)
    print(HEADER)
    for record in records:
        print(line(record, f"{args.neighbours} neighbour(s)"))
    failed = [r for r in records if r["status"] != "ok"]
    print(f"exit {code} after {seconds:.0f} s; {len(records)} records, {len(failed)} not ok")
    for r in failed:
        print(f"  {r['job']['variant']} {r['job']['backend']}: {r['status']}: {r.get('error')}")
    if code != 0 and err:
        print(err)
    return 0 if code == 0 and records and not failed else 1


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
    parser.add_argument("--epochs", type=int, default=3, help="(default: 3, two steady epochs)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N")
    parser.add_argument("--test-limit", type=int, default=2000, metavar="N")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke test: 2,000 training and 500 test samples"
    )
    parser.add_argument(
        "--quickstart",
        action="store_true",
        help="run the Quickstart's `mnist-bench run` beside the neighbours instead",
    )
    args = parser.parse_args()
    if args.quick:
        args.train_limit, args.test_limit = 2000, 500
    sys.path.insert(0, str(ROOT))
    if args.quickstart:
        return quickstart(args)
    args.train_limit = args.train_limit or 20000
    return cases(args)


if __name__ == "__main__":
    sys.exit(main())
