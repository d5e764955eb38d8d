"""Do the timing windows change what is trained? One configuration per backend, trained with the
windows on, off (`MNIST_BENCH_TIMING_WINDOWS=0`) and with an injected slowdown, each in a fresh
worker: the weights digests and loss curves must agree (exit 1 where they do not, or where two
runs without windows already disagree: the backend is not deterministic there, and the check
says nothing). Meant for a GPU, where asynchronous dispatch is deepest; tests/test_timing_windows.py
does the same on the CPU with 2,000 samples.

    python benchmarks/windows_check.py --device gpu --backend jax --backend torch [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mnist_bench.execute.training import SLOWDOWN_ENV, WINDOWS_ENV  # noqa: E402

CONDITIONS = {
    "windows": {},
    "no windows": {WINDOWS_ENV: "0"},
    "no windows again": {WINDOWS_ENV: "0"},
    "slowed 20%": {SLOWDOWN_ENV: "0.2"},
}


def train(args: argparse.Namespace, backend: str, env: dict[str, str]) -> dict:
    import mnist_bench

    for name in (WINDOWS_ENV, SLOWDOWN_ENV):
        os.environ.pop(name, None)
    os.environ.update(env)
    started = time.perf_counter()
    try:
        results = mnist_bench.run(
            variants=[args.variant],
            backends=[backend],
            devices=[args.device],
            epochs=args.epochs,
            train_limit=args.train_limit,
            test_limit=args.test_limit,
            results_dir=tempfile.mkdtemp(prefix="windows-check-"),
            progress=False,
            figures=False,
        )
    finally:
        for name in env:
            os.environ.pop(name, None)
    (r,) = results.records
    return {
        "status": r.status,
        "error": r.error,
        "device": r.device,
        "weights_sha256": r.weights_sha256,
        "loss_curve": r.loss_curve,
        "epoch_seconds": r.epoch_seconds,
        "epoch_cpu_seconds": r.epoch_cpu_seconds,
        "windows_per_1k": [
            1000 * s / n for s, n in zip(r.window_seconds, r.window_samples, strict=True)
        ],
        "warmup_windows": r.warmup_windows,
        "steady_seconds_per_1k": r.steady_seconds_per_1k,
        "steady_interval": r.steady_interval,
        "unstable": r.unstable,
        "injected": r.injected,
        "wall": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", dest="backends", metavar="NAME")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variant", default="two-dense")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=None, metavar="N")
    parser.add_argument("--test-limit", type=int, default=2000, metavar="N")
    parser.add_argument("--json", type=Path, metavar="OUT")
    args = parser.parse_args(argv)
    os.environ.setdefault("MNIST_BENCH_QUICK_MEASURE", "1")
    out: dict[str, dict[str, dict]] = {}
    bad = 0
    for backend in args.backends or ["jax"]:
        runs = {name: train(args, backend, env) for name, env in CONDITIONS.items()}
        out[backend] = runs
        for name, run in runs.items():
            interval = ", ".join(f"{v:.4g}" for v in run["steady_interval"]) or "none"
            print(
                f"{backend} {name}: {run['status']} on {run['device']}, weights "
                f"{(run['weights_sha256'] or '-')[:16]}, epochs "
                f"{', '.join(f'{s:.3f}' for s in run['epoch_seconds'])} s, steady "
                f"{run['steady_seconds_per_1k'] or 0:.4g} s/1k [{interval}], "
                f"warm-up {run['warmup_windows']} windows, unstable {run['unstable']}"
            )
        digests = {name: (run["weights_sha256"], run["loss_curve"]) for name, run in runs.items()}
        if digests["no windows"] != digests["no windows again"]:
            print(f"{backend}: two runs without windows disagree: not deterministic here")
            bad += 1
        elif len(set(map(repr, digests.values()))) != 1:
            print(f"{backend}: the windows or the slowdown changed what was trained")
            bad += 1
        else:
            print(f"{backend}: the same weights and losses in every condition")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
