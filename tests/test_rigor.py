"""Measurement rigor: determinism across processes, seeds and intervals, timing helpers."""

from __future__ import annotations

import time

import pytest
from conftest import INSTALLED, backend_params, only_run, run_cli
from mnist_bench.execute import timing

pytestmark = pytest.mark.skipif("jax" not in INSTALLED, reason="jax not installed")


# About a minute a backend (three processes, with the determinism cost's extra worker): in
# .ci/run's slow step, to keep the default command under 10 minutes.
@pytest.mark.parametrize("backend", backend_params(slow=("tensorflow", "jax", "torch")))
def test_two_processes_give_bit_identical_weights(tmp_path, backend):
    out = run_cli(
        "run",
        "-b",
        backend,
        "--epochs",
        "1",
        "--train-limit",
        "2000",
        "--test-limit",
        "1000",
        "--infer-batch-sizes",
        "8",
        "--check-determinism",
        "--no-figures",
        "--results-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    records = [r for r in run.records if r.settings.op_determinism]
    # the seed's three variants, each trained in two processes, and once more with the
    # switches off for what they cost
    assert len(records) == 6 and len(run.records) == 9
    assert run.determinism_cost[backend].pairs == 3
    for variant in ("single-dense", "two-dense", "flatten-dense"):
        first, again = sorted((r for r in records if r.variant == variant), key=lambda r: r.repeat)
        assert (first.repeat, again.repeat) == (0, 1)
        assert first.weights_sha256 == again.weights_sha256
        assert first.predictions_sha256 == again.predictions_sha256
        assert first.deterministic is True and again.deterministic is True
        assert first.op_determinism  # what was switched on (or why nothing) is stated


def test_seeds_give_aggregates_with_intervals(tmp_path):
    out = run_cli(
        "run",
        "-b",
        "jax",
        "-v",
        "single-dense",
        "--epochs",
        "1",
        "--train-limit",
        "1500",
        "--test-limit",
        "1000",
        "--infer-batch-sizes",
        "8",
        "--seeds",
        "0,1,2",
        "--no-figures",
        "--results-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    run = only_run(tmp_path)
    assert sorted(r.seed for r in run.records) == [0, 1, 2]
    assert len({r.weights_sha256 for r in run.records}) == 3  # seeds matter
    (agg,) = run.aggregates
    acc = agg["test_accuracy"]
    assert acc["n"] == 3 and acc["ci_low"] < acc["mean"] < acc["ci_high"]
    values = [r.test_accuracy for r in run.records]
    assert acc["min"] == min(values) and acc["max"] == max(values)
    assert "±" in out.stdout  # the table shows mean ± half-width


def test_time_to_accuracy_by_hand():
    curve, secs = [0.95, 0.975, 0.985], [3.0, 1.0, 1.0]
    assert timing.time_to_accuracy(curve, secs, (0.97, 0.98, 0.99)) == [
        {"target": 0.97, "epoch": 2, "seconds": 4.0},
        {"target": 0.98, "epoch": 3, "seconds": 5.0},
        {"target": 0.99, "epoch": None, "seconds": None},
    ]


def test_repeat_until_reaches_count_and_time():
    calls = []
    seconds = timing.repeat_until(
        lambda: calls.append(time.sleep(0.001)), warmup=3, min_count=5, min_time=0.05
    )
    assert len(calls) == len(seconds) + 3
    assert len(seconds) >= 5 and sum(seconds) >= 0.04


def test_summaries_by_hand():
    t = timing.throughput_summary(10, [0.1, 0.2, 0.5, 1.0])  # rates 100, 50, 20, 10
    assert t["samples_per_second"] == 35.0 and t["iqr"] == pytest.approx(62.5 - 17.5)
    lat = timing.latency_summary([0.001] * 99 + [0.1])
    assert lat["p50"] == pytest.approx(1.0) and lat["queries"] == 100
