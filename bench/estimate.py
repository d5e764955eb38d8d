"""How long a job will take: learnt from earlier run files, else from its FLOPs."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from mnist_bench import files
from mnist_bench.errors import UserError

if TYPE_CHECKING:
    from mnist_bench.identity import Job

HISTORY_DIRS = (Path("results/runs"), Path("results/baseline"))
FALLBACK_GFLOPS = 15.0  # a middling backend on a 2-core CPU
STARTUP_SECONDS = 5.0  # worker start and first-epoch tracing, roughly
MEASURE_SECONDS = 6.0  # per-epoch test evaluation and the inference sweep, roughly


def history(folders=HISTORY_DIRS) -> dict[tuple[str, str, int], float]:
    """Median steady-state seconds per training sample for each (variant, backend, batch)."""
    samples: dict[tuple[str, str, int], list[float]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
            try:
                raw = files.read_bytes(path, limit=files.RUN_FILE_LIMIT, what="run file")
                records = json.loads(raw).get("records", [])
            except (OSError, ValueError, AttributeError, UserError):
                continue
            for r in records:
                if not isinstance(r, dict) or r.get("status") != "ok":
                    continue
                rate = r.get("train_samples_per_second")
                if rate:
                    key = (r.get("variant"), r.get("backend"), r.get("batch_size"))
                    samples.setdefault(key, []).append(1.0 / rate)
    return {k: statistics.median(v) for k, v in samples.items()}


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
    return STARTUP_SECONDS + MEASURE_SECONDS + s.epochs * train_samples * per_sample, source
