"""Timing windows: the steady state from many short windows, its warm-up found by MSER-5, its
median's distribution-free interval, CPU time per epoch, and the injected slowdown."""

from __future__ import annotations

import math
import random
import re
import time

import pytest
from conftest import backend_params, make_record
from mnist_bench.core import stats
from mnist_bench.execute import timing
from mnist_bench.execute.training import (
    SLOWDOWN_ENV,
    WINDOWS_ENV,
    WINDOWS_PER_EPOCH,
    Windows,
    injected_slowdown,
)
from mnist_bench.runfile.records import SCHEMA_VERSION, RunFile, check_consistency


# ------------------------------------------------------------------------------ statistics
def test_median_and_mad_by_hand():
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    # median 2; deviations 1, 0, 0, 8 -> MAD 0.5; 0.5 / 2
    assert stats.mad_ratio([1.0, 2.0, 2.0, 10.0]) == 0.25
    assert stats.mad_ratio([1.0]) is None and stats.mad_ratio([0.0, 0.0]) is None
    with pytest.raises(ValueError):
        stats.median([])


def test_median_interval_by_hand():
    # n = 10: P(B <= 1) = 11/1024 <= 0.025 < P(B <= 2) = 56/1024, so ranks 2 and 9.
    values = [10.0, 1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0]
    assert stats.median_interval(values) == (2.0, 9.0)
    # n = 6: P(B <= 0) = 1/64 <= 0.025: the extremes. n = 5: 1/32 > 0.025, no interval.
    assert stats.median_interval([6.0, 1.0, 3.0, 4.0, 2.0, 5.0]) == (1.0, 6.0)
    assert stats.median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert stats.median_interval([]) is None
    # n = 20 at 90%: P(B <= 5) = 0.0207 <= 0.05 < P(B <= 6) = 0.0577: ranks 6 and 15.
    assert stats.median_interval([float(i) for i in range(1, 21)], 0.90) == (6.0, 15.0)


def test_median_interval_covers_the_median_about_as_often_as_it_says():
    rng = random.Random(1)
    hits = sum(
        low <= 0.0 <= high
        for low, high in (
            stats.median_interval([rng.gauss(0, 1) for _ in range(30)]) for _ in range(2000)
        )
    )
    assert 0.95 <= hits / 2000 <= 0.995  # 30 values: ranks 10 and 21, coverage 0.957


def _series(warmup: int, n: int = 60, *, seed: int = 0, noise: float = 0.02) -> list[float]:
    """`warmup` slow windows (3x, easing towards 1x), then n - warmup around 1.0."""
    rng = random.Random(seed)
    slow = [1.0 + 2.0 * (warmup - i) / warmup for i in range(warmup)]
    return slow + [1.0 + rng.gauss(0, noise) for _ in range(n - warmup)]


@pytest.mark.parametrize("warmup", [5, 10, 15, 25])
def test_mser_cuts_a_slow_start_of_any_length(warmup):
    """Never short of the warm-up; at times a batch or two past it (noise looks like a trend
    over a few batch means), which costs samples, not accuracy."""
    for seed in range(5):
        series = _series(warmup, seed=seed)
        cut = stats.mser(series)
        assert warmup <= cut <= min(warmup + 15, 30), (seed, cut)
        assert stats.median(series[cut:]) == pytest.approx(1.0, abs=0.01)
        assert warmup <= stats.mser(series, batch=1) <= warmup + 3


def test_mser_keeps_a_series_without_warm_up():
    """Noise alone cuts nothing in half the series and little in most (MSER on a stationary
    series cuts at random; what it cuts is noise, so the median barely moves)."""
    cuts = [stats.mser(_series(0, seed=seed)) for seed in range(20)]
    assert sorted(cuts)[10] <= 5 and sorted(cuts)[16] <= 10 and max(cuts) <= 30
    for seed, cut in enumerate(cuts):
        series = _series(0, seed=seed)
        assert stats.median(series[cut:]) == pytest.approx(1.0, abs=0.01)


def test_mser_does_not_chase_a_noisy_tail():
    """A burst of slow windows at the end is no reason to cut the series down to its last
    half: at most half the batches are ever truncated."""
    series = _series(0, seed=3)[:50] + [2.5, 0.4, 3.0, 0.5, 2.8, 0.3, 2.2, 0.6, 2.9, 0.5]
    assert stats.mser(series) <= 30
    assert stats.mser(series, batch=1) <= 30


def test_mser_edges():
    assert stats.mser([]) == 0 and stats.mser([5.0] * 9) == 0  # fewer than two batches
    assert stats.mser([1.0] * 20) == 0  # ties take the earliest
    assert stats.mser([9.0, 1.0, 1.0, 1.0], batch=1) == 1
    with pytest.raises(ValueError):
        stats.mser([1.0], batch=0)


# -------------------------------------------------------------------------- steady windows
def test_steady_windows_drop_the_warm_up_and_agree_on_a_quiet_series():
    rates = _series(10, noise=0.01)
    got = timing.steady_windows([r * 3 for r in rates], [3000] * len(rates))
    assert got is not None and 10 <= got.warmup <= 15
    assert got.median == pytest.approx(1.0, abs=0.01)
    assert got.interval is not None and got.interval[0] <= got.median <= got.interval[1]
    assert not got.unstable


def test_a_slow_second_epoch_is_warm_up_not_noise():
    """Epoch 1 compiles (one huge window), epoch 2 still runs 40% slow, epoch 3 and 4 are
    steady: the windows of epoch 2 are cut, not counted as noise."""
    rng = random.Random(2)
    rates = [30.0] + [1.4 + rng.gauss(0, 0.01) for _ in range(39)]  # epochs 1 and 2
    rates += [1.0 + rng.gauss(0, 0.01) for _ in range(40)]  # epochs 3 and 4
    got = timing.steady_windows(rates, [1000] * len(rates))
    assert got is not None and got.warmup == 40
    assert got.median == pytest.approx(1.0, abs=0.01) and not got.unstable


def test_the_first_epoch_is_left_out_where_more_follow():
    """Keras compiles at the start of the first epoch and again at its end (the metrics), so
    the first epoch's last window is slow too: at the middle of a 2-epoch series, past MSER's
    half-series limit. `skip` leaves the first epoch out before MSER looks."""
    rng = random.Random(5)
    epoch = [1.0 + rng.gauss(0, 0.01) for _ in range(23)]  # 23 windows, as 94 steps give
    first = [40.0, *epoch[1:-1], 25.0]
    rates = first + [1.0 + rng.gauss(0, 0.01) for _ in range(23)]
    whole = timing.steady_windows(rates, [1000] * 46)
    assert whole is not None and whole.warmup < 23  # the slow tail stays in
    got = timing.steady_windows(rates, [1000] * 46, skip=23)
    assert got is not None and got.warmup == 23 and max(rates[got.warmup :]) < 1.1
    assert timing.steady_windows(rates[:26], [1000] * 26, skip=23) is None  # 3 left


def test_two_speeds_and_heavy_noise_stay_unstable():
    two = [1.0] * 20 + [1.6] * 20 + [1.0] * 20 + [1.6] * 20  # TensorFlow's flips, by epoch
    got = timing.steady_windows(two, [1000] * 80)
    assert got is not None and got.unstable
    rng = random.Random(4)
    noisy = [rng.lognormvariate(0, 0.8) for _ in range(60)]
    got = timing.steady_windows(noisy, [1000] * 60)
    assert got is not None and got.unstable
    quiet = [1.0 + rng.gauss(0, 0.05) for _ in range(60)]
    got = timing.steady_windows(quiet, [1000] * 60)
    assert got is not None and not got.unstable


def test_steady_windows_need_windows_with_samples():
    assert timing.steady_windows([1.0, 1.0, 1.0], [10, 10, 10]) is None
    assert timing.steady_windows([1.0] * 5, [10, 10, 0, 10, 10]) is None
    got = timing.steady_windows([0.5, 1.0, 1.0, 1.0], [1000, 2000, 2000, 2000])
    assert got is not None and got.median == 0.5  # per 1,000 samples
    assert got.interval is None and got.mad_ratio == 0.0 and not got.unstable


# ---------------------------------------------------------------------- the window clock
class FakeClock:
    """A clock that moves 1 microsecond a read, and `step` seconds a training step."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1e-6
        return self.now


def _train(clock: Windows, epochs: int, step_seconds: float) -> list[float]:
    """Train `epochs` of steps of `step_seconds` each: on the fake clock where `clock` has one,
    else busy on the real one."""
    out = []
    for _ in range(epochs):
        clock.begin_epoch()
        for step in range(clock.steps):
            clock.begin_step(step)
            if isinstance(clock.clock, FakeClock):
                clock.clock.now += step_seconds
                continue
            deadline = time.perf_counter() + step_seconds
            while time.perf_counter() < deadline:
                pass
        out.append(clock.end_epoch())
    return out


def test_windows_partition_each_epoch():
    steps = 3 * WINDOWS_PER_EPOCH + 7  # every 3rd step; a last window of 1 step is folded
    record = make_record()
    clock = Windows(record, steps, 32, steps * 32 - 5, cut=True, slowdown=0.0)
    epochs = _train(clock, 2, 0.0005)
    per_epoch = len(record.window_seconds) // 2
    assert per_epoch == WINDOWS_PER_EPOCH + 2 == clock.first_epoch
    assert record.window_samples[:per_epoch] == [96] * (per_epoch - 1) + [96 + 32 - 5]
    assert sum(record.window_samples) == 2 * (steps * 32 - 5)
    for e, seconds in enumerate(epochs):
        windows = record.window_seconds[e * per_epoch : (e + 1) * per_epoch]
        assert math.fsum(windows) == pytest.approx(seconds, rel=1e-9)
    assert len(record.epoch_cpu_seconds) == 2
    cpu = zip(record.epoch_cpu_seconds, epochs, strict=True)
    assert all(0 <= c <= 2 * s + 0.05 for c, s in cpu)


def test_windows_off_record_only_epochs():
    record = make_record()
    clock = Windows(record, 30, 32, 960, cut=False, slowdown=0.0)
    _train(clock, 2, 0.0002)
    assert record.window_seconds == [] and record.window_samples == []
    assert len(record.epoch_cpu_seconds) == 2


@pytest.mark.parametrize("cut", [True, False])
def test_injected_slowdown_lengthens_every_window(cut):
    steps = WINDOWS_PER_EPOCH * 2
    plain, slowed = make_record(), make_record()

    def train(record, slowdown):
        windows = Windows(record, steps, 32, steps * 32, cut=cut, slowdown=slowdown)
        windows.clock = FakeClock()
        return _train(windows, 2, 0.01)

    base, slow = train(plain, 0.0), train(slowed, 0.5)
    for b, s in zip(base, slow, strict=True):
        assert s / b == pytest.approx(1.5, rel=1e-3)
    assert len(slowed.window_seconds) == (2 * WINDOWS_PER_EPOCH if cut else 0)
    for b, s in zip(plain.window_seconds, slowed.window_seconds, strict=True):
        assert b == pytest.approx(0.02, rel=1e-3) and s / b == pytest.approx(1.5, rel=1e-3)


def test_injected_slowdown_on_the_real_clock():
    record = make_record()
    epochs = _train(Windows(record, 20, 32, 640, cut=True, slowdown=1.0), 1, 0.002)
    assert epochs[0] >= 2 * 20 * 0.002  # waits, never less


def test_the_slowdown_hook_reads_a_fraction(monkeypatch):
    monkeypatch.delenv(SLOWDOWN_ENV, raising=False)
    assert injected_slowdown() == 0.0
    monkeypatch.setenv(SLOWDOWN_ENV, "0.1")
    assert injected_slowdown() == 0.1
    for bad in ("fast", "-0.1", "nan", "11"):
        monkeypatch.setenv(SLOWDOWN_ENV, bad)
        with pytest.raises(ValueError, match=SLOWDOWN_ENV):
            injected_slowdown()


# ------------------------------------------------------------------------- the records
def test_window_fields_are_checked():
    def run(**fields) -> RunFile:
        r = make_record(**fields)
        return RunFile("r", "2026-01-01T00:00:00Z", {}, {}, [r], schema_version=SCHEMA_VERSION)

    check_consistency(run(window_seconds=[1.0, 2.0], window_samples=[10, 10]))
    check_consistency(run(steady_interval=[1.0, 2.0], epoch_cpu_seconds=[0.5]))
    bad = {
        "window_samples": dict(window_seconds=[1.0], window_samples=[10, 10]),
        "window_seconds[0]": dict(window_seconds=[-1.0], window_samples=[10]),
        "steady_interval": dict(steady_interval=[2.0, 1.0]),
        "epoch_cpu_seconds[0]": dict(epoch_cpu_seconds=[-0.1]),
        "cpu_seconds_per_1k_samples": dict(cpu_seconds_per_1k_samples=-1.0),
        "warmup_windows": dict(warmup_windows=-1),
    }
    for where, fields in bad.items():
        with pytest.raises(ValueError, match=re.escape(f"records[0].{where}")):
            check_consistency(run(**fields))


def _train_once(tmp_path, backend: str, name: str, **env: str):
    import os

    import mnist_bench

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        results = mnist_bench.run(
            variants=["two-dense"],
            backends=[backend],
            results_dir=tmp_path / name,
            epochs=2,
            train_limit=2000,
            test_limit=300,
            progress=False,
            figures=False,
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    (record,) = results.records
    assert record.status == "ok", record.error
    return record


@pytest.mark.slow
@pytest.mark.parametrize("backend", backend_params())
def test_windows_change_nothing_that_is_trained(tmp_path, backend):
    """The same batches in the same order, to the same weights, with the windows and without
    (and with the injected slowdown, which only waits)."""
    on = _train_once(tmp_path, backend, "on")
    off = _train_once(tmp_path, backend, "off", **{WINDOWS_ENV: "0"})
    slowed = _train_once(tmp_path, backend, "slow", **{SLOWDOWN_ENV: "0.2"})
    assert on.weights_sha256 == off.weights_sha256 == slowed.weights_sha256
    assert on.loss_curve == off.loss_curve == slowed.loss_curve
    assert off.window_seconds == [] and off.steady_seconds_per_1k is None
    assert off.injected is None and on.injected is None and slowed.injected == {"slowdown": 0.2}
    assert len(on.window_seconds) >= 2 * min(WINDOWS_PER_EPOCH, 2000 // 32 // 2)
    assert sum(on.window_samples) == 2 * 2000
    assert math.fsum(on.window_seconds) == pytest.approx(sum(on.epoch_seconds), rel=1e-6)
    assert on.steady_seconds_per_1k is not None and on.warmup_windows is not None
    assert on.train_samples_per_second == pytest.approx(1000 / on.steady_seconds_per_1k)
    assert len(on.epoch_cpu_seconds) == 2 and on.cpu_seconds_per_1k_samples is not None
    assert on.cpu_seconds_per_1k_samples == pytest.approx(
        1000 * on.epoch_cpu_seconds[1] / on.train_samples
    )


def test_a_slowed_record_is_marked_in_tables():
    from mnist_bench.analyse import rows

    plain = make_record(test_accuracy=0.9, train_samples_per_second=100.0)
    slowed = make_record(
        seed=1, test_accuracy=0.9, train_samples_per_second=90.0, injected={"slowdown": 0.1}
    )
    (row,) = rows.rows([plain, slowed])
    assert row.injected and "(injected)" in rows.status_text(row)
    assert any("MNIST_BENCH_INJECT_SLOWDOWN" in line for line in rows.notes([row]))
    (quiet,) = rows.rows([plain])
    assert not quiet.injected and "(injected)" not in rows.status_text(quiet)
