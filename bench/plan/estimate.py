"""How long a job will take: learnt from earlier run files, else from its FLOPs."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_bench.core.errors import UserError
from mnist_bench.runfile.records import load_run

if TYPE_CHECKING:
    from mnist_bench.core.identity import Job

HISTORY_DIRS = (Path("results/runs"), Path("results/baseline"), Path("results/published"))
FALLBACK_GFLOPS = 15.0  # a middling backend on a 2-core CPU
STARTUP_SECONDS = 5.0  # worker start and first-epoch tracing, roughly
MEASURE_SECONDS = 6.0  # per-epoch test evaluation and the inference sweep, roughly


def history(
    folders=HISTORY_DIRS, warn: Callable[[str], None] | None = None
) -> dict[tuple[str, str, int], float]:
    """Median steady-state seconds per training sample for each (variant, backend, batch), from
    the ok records of the run files in `folders`: the trusted timings (neither contended nor
    unstable) where a configuration has any, else all (a contended PyTorch epoch can take 60x
    its quiet time, and would make a grid look like months).

    Files are read as every reader reads them (`load_run`: bounded, typed, consistent); a bad
    one is skipped, and `warn` (default: a note on stderr) says which and why.
    """
    warn = _note if warn is None else warn
    samples: dict[tuple[str, str, int], list[float]] = {}
    trusted: dict[tuple[str, str, int], list[float]] = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.json")) if Path(folder).is_dir() else []:
            try:
                records = load_run(path).records
            except UserError as exc:
                warn(f"time estimate skips {exc}")
                continue
            for r in records:
                rate = r.train_samples_per_second
                if r.status == "ok" and rate and math.isfinite(1.0 / rate):
                    key = (r.variant, r.backend, r.settings.batch_size)
                    samples.setdefault(key, []).append(1.0 / rate)
                    if not (r.contended or r.unstable):
                        trusted.setdefault(key, []).append(1.0 / rate)
    return {k: statistics.median(trusted.get(k) or v) for k, v in samples.items()}


def _note(message: str) -> None:
    print(f"mnist-bench: note: {message}", file=sys.stderr)


def job_seconds(
    job: Job,
    train_samples: int,
    learnt: dict[tuple[str, str, int], float],
    flops_per_train_sample: dict[str, int],
) -> tuple[float, str]:
    """Estimated wall seconds of one job and where the estimate came from."""
    s = job.settings
    per_sample = learnt.get((job.variant, job.backend, s.batch_size))
    source = "history"
    if per_sample is None:
        flops = flops_per_train_sample.get(job.variant)
        if flops is None:
            return float("nan"), "unknown"
        per_sample, source = flops / (FALLBACK_GFLOPS * 1e9), "FLOPs"
    seconds = STARTUP_SECONDS + MEASURE_SECONDS + s.epochs * train_samples * per_sample
    return (seconds, source) if math.isfinite(seconds) else (float("nan"), "unknown")
