"""Timing loops. Framework-free: they time callables that bring their results to the host."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from mnist_bench.core import stats

MIN_WINDOWS = 4  # fewer timing windows say nothing about a steady state
MSER_BATCH = 5  # MSER-5: the warm-up is found over means of 5 windows


def repeat_until(
    fn: Callable[[], Any],
    *,
    warmup: int = 2,
    min_count: int = 20,
    min_time: float = 0.5,
    max_count: int = 100_000,
) -> list[float]:
    """Call `fn` `warmup` times untimed, then time calls until both `min_count` calls and
    `min_time` seconds are reached (optimum-benchmark's rule). Returns seconds per call."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_count and (
        len(times) < min_count or time.perf_counter() - start < min_time
    ):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def throughput_summary(batch_size: int, seconds: list[float]) -> dict[str, Any]:
    """Samples per second of repeated calls at one batch size: median and interquartile range."""
    rates = batch_size / np.asarray(seconds)
    q1, median, q3 = np.percentile(rates, [25, 50, 75])
    return {
        "batch_size": batch_size,
        "samples_per_second": float(median),
        "iqr": float(q3 - q1),
        "calls": len(seconds),
    }


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Latency percentiles in milliseconds (MLPerf single-stream view)."""
    p50, p95, p99 = np.percentile(np.asarray(seconds) * 1000.0, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "queries": len(seconds)}


def time_to_accuracy(
    curve: list[float], epoch_seconds: list[float], targets: tuple[float, ...]
) -> list[dict[str, Any]]:
    """First epoch (1-based) and cumulative training seconds at which each target was reached."""
    out = []
    cumulative = np.cumsum(epoch_seconds).tolist()
    for target in targets:
        hit = next((i for i, acc in enumerate(curve) if acc >= target), None)
        out.append(
            {
                "target": target,
                "epoch": None if hit is None else hit + 1,
                "seconds": None if hit is None else cumulative[hit],
            }
        )
    return out


@dataclass(frozen=True)
class SteadyWindows:
    """The steady state of one record's timing windows.

    Attributes:
        warmup: leading windows left out as warm-up (MSER-5).
        median: median seconds per 1,000 samples of the windows after them.
        interval: its 95% distribution-free interval, None with fewer than 6 such windows.
        mad_ratio: their median absolute deviation over their median.
        unstable: the interval's half-width is `unstable_at` of the median or more (a wide
            spread, or two speeds, leave the median uncertain), or, with no interval,
            `mad_ratio` is.
    """

    warmup: int
    median: float
    interval: tuple[float, float] | None
    mad_ratio: float | None
    unstable: bool


def per_thousand(seconds: list[float], samples: list[int]) -> list[float]:
    """Seconds per 1,000 samples of each window."""
    return [1000 * s / n for s, n in zip(seconds, samples, strict=True)]


def steady_windows(
    seconds: list[float], samples: list[int], *, skip: int = 0, unstable_at: float = 0.10
) -> SteadyWindows | None:
    """The steady state of windows of `seconds` each over `samples`: the first `skip` left out
    (the first epoch's, where more follow: it compiles at its start and, in Keras, at its end,
    where MSER's half-series limit may not reach), further warm-up cut by MSER-5, then the
    median, its interval and the spread of the rest. None with fewer than MIN_WINDOWS windows
    after `skip`, or a window without samples or time.

    A window is short (a twentieth of an epoch), so its own spread is no measure of the
    record's: the flag asks how well the median is pinned down instead."""
    if len(seconds) - skip < MIN_WINDOWS or min(samples, default=0) <= 0 or min(seconds) <= 0:
        return None
    rates = per_thousand(seconds, samples)
    warmup = skip + stats.mser(rates[skip:], MSER_BATCH)
    steady = rates[warmup:]
    spread = stats.mad_ratio(steady)
    centre = stats.median(steady)
    interval = stats.median_interval(steady)
    if interval is not None:
        unstable = (interval[1] - interval[0]) / 2 >= unstable_at * centre
    else:
        unstable = spread is not None and spread >= unstable_at
    return SteadyWindows(warmup, centre, interval, spread, unstable)
