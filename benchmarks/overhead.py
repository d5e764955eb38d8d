"""Harness overhead: the seed's two-dense for 3 epochs, bare Keras (A) vs mnist-bench (B).

Runs A B A B ... interleaved (PAIRS pairs per backend, so drift hits both alike) and prints, per
backend, the median steady-state epoch time (epochs after the first) of each and their ratio
B / A. Goal: <= 1.02.

    python benchmarks/overhead.py [--pairs 3] [--backend jax ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EPOCHS = 3


def bare(backend: str) -> list[float]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bare_keras.py"), str(EPOCHS)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "KERAS_BACKEND": backend},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def harness(backend: str) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench",
                "run",
                "-b",
                backend,
                "-v",
                "two-dense",
                "--epochs",
                str(EPOCHS),
                "--infer-batch-sizes",
                "32",
                "--results-dir",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        (path,) = Path(tmp).glob("*.json")
        return json.loads(path.read_text())["records"][0]["epoch_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--backend", action="append")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from mnist_bench.environment import installed_backends

    print(f"{'backend':<11} {'bare s/epoch':>12} {'harness s/epoch':>15} {'ratio':>6}  pairs")
    for backend in args.backend or installed_backends():
        a, b = [], []
        for _ in range(args.pairs):
            a += bare(backend)[1:]
            b += harness(backend)[1:]
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{backend:<11} {ma:>12.3f} {mb:>15.3f} {mb / ma:>6.3f}  {args.pairs}", flush=True)


if __name__ == "__main__":
    main()
