"""Timing loops. Framework-free: they time callables that bring their results to the host."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


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
