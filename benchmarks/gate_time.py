"""How long CI's accuracy gate takes against the suite it replaced, timed on this machine.

Each side is a whole gate as CI runs it, in fresh processes: `mnist-bench run --suite SUITE
--results-dir TMP --no-figures`, then `mnist-bench check TMP --baseline BASELINE [...]`, its
wall clock from the first process's start to the second's end. The sides alternate, starting
and ending with the gate (gate, old, gate, old, gate for --rounds 2), so a drift of the machine
hits both; the ratio is reported for every pairing of a gate run with an old run, and median
to median.

    python benchmarks/gate_time.py [--rounds 2] [--json OUT]

Defaults: the gate `suites/gate.toml` against `results/gate-baseline` with `--pooled-alpha
0.001`; the old suite `suites/ci.toml` against `results/baseline`. Run it on an otherwise idle
machine; exit 1 when a gate or a check failed.
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

ROOT = Path(__file__).resolve().parent.parent


def timed_gate(suite: str, baseline: str, check_args: list[str], folder: Path) -> dict:
    """One whole gate (run, then check) in fresh processes: wall seconds and exit statuses."""
    mb = [sys.executable, "-m", "mnist_bench"]
    run = [*mb, "run", "--suite", suite, "--results-dir", str(folder), "--no-figures"]
    check = [*mb, "check", str(folder), "--baseline", baseline, *check_args]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    ran = subprocess.run(run, cwd=ROOT, capture_output=True, text=True)
    checked = subprocess.run(check, cwd=ROOT, capture_output=True, text=True)
    return {
        "seconds": time.perf_counter() - start,
        "run_exit": ran.returncode,
        "check_exit": checked.returncode,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def ratios(gate: list[float], old: list[float]) -> dict[str, float]:
    """Gate / old for every pairing, and median to median."""
    each = [g / o for g in gate for o in old]
    return {
        "min": min(each),
        "max": max(each),
        "median_to_median": statistics.median(gate) / statistics.median(old),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="old-suite runs (gate: one more)")
    parser.add_argument("--gate", default="suites/gate.toml")
    parser.add_argument("--gate-baseline", default="results/gate-baseline")
    parser.add_argument("--old", default="suites/ci.toml")
    parser.add_argument("--old-baseline", default="results/baseline")
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    for path in (args.gate, args.gate_baseline, args.old, args.old_baseline):
        if not (ROOT / path).exists():
            parser.error(f"{path}: not found (paths are relative to the repository)")
    gate_args = ["--pooled-alpha", "0.001"]
    sides: dict[str, list[dict]] = {"gate": [], "old": []}
    with tempfile.TemporaryDirectory(prefix="gate-time-") as tmp:
        for i in range(2 * args.rounds + 1):
            side = "gate" if i % 2 == 0 else "old"
            suite, baseline = (
                (args.gate, args.gate_baseline) if side == "gate" else (args.old, args.old_baseline)
            )
            result = timed_gate(
                suite, baseline, gate_args if side == "gate" else [], Path(tmp) / str(i)
            )
            sides[side].append(result)
            print(
                f"{side} {len(sides[side])}: {result['seconds']:.1f} s (run exit "
                f"{result['run_exit']}, check exit {result['check_exit']}, load "
                f"{result['load_before']:.2f} -> {result['load_after']:.2f})",
                flush=True,
            )
    summary = ratios([r["seconds"] for r in sides["gate"]], [r["seconds"] for r in sides["old"]])
    print(
        f"gate / old: {summary['min']:.2f}-{summary['max']:.2f} in any pairing, "
        f"{summary['median_to_median']:.2f} median to median"
    )
    if args.json:
        args.json.write_text(json.dumps({"sides": sides, "ratio": summary}, indent=1) + "\n")
    failed = any(r["run_exit"] or r["check_exit"] for rs in sides.values() for r in rs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
