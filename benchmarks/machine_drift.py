"""How steady is this machine itself? A fixed unit of CPU work, timed again and again.

Before blaming a framework for epochs that wander, time work that cannot wander: the same
single-threaded matrix products (NumPy on one BLAS thread) and the same pure-Python loop,
repeated for MINUTES in one process. Each repeat records its wall seconds, this process's CPU
seconds, and the CPU share other processes and the hypervisor (steal) took meanwhile, with the
same probe a record uses. If the same work takes a varying number of *CPU* seconds while nothing
else runs, the machine's speed moves under every measurement (a busy host, shared caches, a
throttled vCPU), and no harness can report a steadier time than this probe's spread.

    python benchmarks/machine_drift.py [--minutes 3] [--unit 0.5] [--json OUT]

The report gives, per kind of work, the units' median, coefficient of variation, slowest and
fastest, for wall and for CPU seconds, and the CV of units that ran with nothing else on the
machine (other processes' share and steal under 2%).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUIET = 0.02  # a unit is quiet when other processes and steal took less than this share


def _matmul_unit(reps: int):
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256), dtype=np.float32)
    b = rng.standard_normal((256, 256), dtype=np.float32)

    def work() -> None:
        for _ in range(reps):
            a @ b

    return work


def _python_unit(reps: int):
    def work() -> None:
        total = 0
        for i in range(reps):
            total += i * i % 7

    return work


def _calibrate(make, seconds: float) -> int:
    reps = 16
    while True:
        work = make(reps)
        t0 = time.perf_counter()
        work()
        took = time.perf_counter() - t0
        if took >= seconds / 4:
            return max(1, int(reps * seconds / took))
        reps *= 4


def _spread(values: list[float]) -> dict[str, float]:
    med = statistics.median(values)
    cv = statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else 0.0
    return {
        "median": round(med, 5),
        "cv": round(cv, 4),
        "min": round(min(values), 5),
        "max": round(max(values), 5),
        "max_over_min": round(max(values) / min(values), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="how long to run (default 3)")
    parser.add_argument(
        "--unit", type=float, default=0.5, help="seconds of work per timed unit (default 0.5)"
    )
    parser.add_argument("--json", type=Path, help="write every unit's figures to this file")
    args = parser.parse_args(argv)
    if not (0 < args.minutes <= 120) or not (0.05 <= args.unit <= 30):
        parser.error("--minutes must be in (0, 120] and --unit in [0.05, 30]")

    from mnist_bench.execute.training import ContentionProbe

    kinds = {
        "matmul": _matmul_unit(_calibrate(_matmul_unit, args.unit)),
        "python": _python_unit(_calibrate(_python_unit, args.unit)),
    }
    units: list[dict[str, object]] = []
    deadline = time.monotonic() + args.minutes * 60
    print(f"load before: {os.getloadavg()}", file=sys.stderr)
    while time.monotonic() < deadline:
        for kind, work in kinds.items():
            with ContentionProbe() as probe:
                c0 = time.process_time()
                t0 = time.perf_counter()
                work()
                wall = time.perf_counter() - t0
                cpu = time.process_time() - c0
            units.append(
                {
                    "kind": kind,
                    "wall": wall,
                    "cpu": cpu,
                    "others": probe.share,
                    "steal": probe.steal or 0.0,
                    "at": time.time(),
                }
            )
    print(f"load after: {os.getloadavg()}", file=sys.stderr)

    report: dict[str, object] = {}
    for kind in kinds:
        mine = [u for u in units if u["kind"] == kind]
        quiet = [u for u in mine if u["others"] + u["steal"] < QUIET]  # type: ignore[operator]
        report[kind] = {
            "units": len(mine),
            "wall": _spread([u["wall"] for u in mine]),  # type: ignore[misc]
            "cpu": _spread([u["cpu"] for u in mine]),  # type: ignore[misc]
            "quiet_units": len(quiet),
            "quiet_wall": _spread([u["wall"] for u in quiet]) if len(quiet) > 1 else None,  # type: ignore[misc]
            "max_steal": round(max(u["steal"] for u in mine), 4),  # type: ignore[type-var]
            "max_others": round(max(u["others"] for u in mine), 4),  # type: ignore[type-var]
        }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": report, "units": units}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
