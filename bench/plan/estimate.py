"""How long a job will take: learnt from earlier run files, else from its FLOPs."""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_bench.core import escape
from mnist_bench.core.errors import UserError
from mnist_bench.runfile.records import load_run, run_files_in

if TYPE_CHECKING:
    from mnist_bench.core.identity import Job

HISTORY_DIRS = (Path("results/runs"), Path("results/baseline"), Path("results/published"))
FALLBACK_GFLOPS = 15.0  # a middling backend on a 2-core CPU
STARTUP_SECONDS = 5.0  # worker start and first-epoch tracing, roughly
MEASURE_SECONDS = 6.0  # per-epoch test evaluation and the inference sweep, roughly
# One cost per training sample for a configuration with no history (about the seed's two-dense
# network): the parent counts no FLOPs, which needs a framework.
REFERENCE_FLOPS = 500_000


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
        for path in run_files_in(Path(folder)) if Path(folder).is_dir() else []:
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
    print(f"mnist-bench: note: {escape.terminal(message)}", file=sys.stderr)


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


def run_estimates(jobs: Sequence[Job], train_samples: int) -> dict[tuple, float]:
    """Estimated seconds of each job of a run, by job key: learnt from earlier run files
    (`history`) where the configuration ran before, else from a reference cost per training
    sample (the parent counts no FLOPs: that needs a framework)."""
    learnt = history(warn=lambda message: None)  # `list --suite` names the bad files
    out = {}
    for job in jobs:
        samples = min(train_samples, job.settings.train_limit or train_samples)
        seconds, _ = job_seconds(job, samples, learnt, {job.variant: REFERENCE_FLOPS})
        out[job.key] = seconds if math.isfinite(seconds) else STARTUP_SECONDS + MEASURE_SECONDS
    return out


class Countdown:
    """Seconds left in a run: the estimates of the jobs still to go, scaled by how long the
    finished ones really took against their estimates (a slower machine than the history's,
    a busy one, a first compilation), so the figure corrects itself as records land."""

    def __init__(self, estimates: dict[tuple, float], clock: Callable[[], float] = time.monotonic):
        self.left_jobs = dict(estimates)
        self.clock, self.started = clock, clock()
        self.estimated_done = 0.0

    def finish(self, job: Job) -> None:
        self.estimated_done += self.left_jobs.pop(job.key, 0.0)

    def seconds_left(self) -> float:
        pending = sum(self.left_jobs.values())
        if self.estimated_done <= 0:
            return pending
        return pending * (self.clock() - self.started) / self.estimated_done

    def text(self) -> str:
        """`about 3m 20s left`; empty once nothing is left."""
        if not self.left_jobs:
            return ""
        return f"about {duration(self.seconds_left())} left"


def duration(seconds: float) -> str:
    """`45s`, `3m 20s`, `2h 05m`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
