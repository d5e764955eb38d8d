"""benchmarks/steady_cv.py: how steady finished runs' training time is, within a record and
across records."""

from __future__ import annotations

import statistics
import subprocess
import sys

import pytest
from conftest import ROOT, benchmark, make_record

sc = benchmark("steady_cv")


def _record(seed, per_1k, *, cv=0.02, backend="jax", variant="two-dense", **fields):
    return make_record(
        variant,
        backend,
        seed=seed,
        steady_seconds_per_1k=per_1k,
        steady_interval=[per_1k * 0.98, per_1k * 1.04],
        steady_epoch_cv=cv,
        **fields,
    )


def test_rows_per_configuration_within_and_across_processes():
    records = [_record(s, t, cv=c) for s, t, c in ((0, 0.010, 0.01), (1, 0.011, 0.03))]
    records += [_record(0, 0.040, backend="tensorflow", unstable=True, cv=0.12)]
    records += [_record(2, 0.5, status="failed")]  # never finished: left out
    jax, tf = sc.summarize(records)  # sorted by backend, variant, device
    assert (jax["backend"], tf["backend"]) == ("jax", "tensorflow")
    assert jax["records"] == 2 and jax["unstable"] == 0
    assert jax["epoch_cv_median"] == pytest.approx(0.02) and jax["epoch_cv_max"] == 0.03
    # the interval [0.98, 1.04] x the median: half-width 3% of it
    assert jax["window_half_width_median"] == pytest.approx(0.03)
    expected = statistics.stdev([0.010, 0.011]) / statistics.fmean([0.010, 0.011])
    assert jax["process_cv"] == pytest.approx(expected)
    assert jax["process_max_min"] == pytest.approx(1.1)
    # one process: no spread across processes to speak of
    assert tf["unstable"] == 1 and tf["process_cv"] is None and tf["process_max_min"] is None


def test_a_real_run_file_gives_a_table(tmp_path):
    script = ROOT / "benchmarks" / "steady_cv.py"
    out = tmp_path / "rows.json"
    folder = ROOT / "results" / "gate-baseline"
    done = subprocess.run(
        [sys.executable, str(script), str(folder), "--json", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "| jax | single-dense |" in done.stdout and "| jax | two-dense |" in done.stdout
    assert out.read_text().count('"records": 16') == 2  # 16 seeds a variant


def test_nothing_readable_is_one_line_and_exit_1(tmp_path):
    script = ROOT / "benchmarks" / "steady_cv.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.startswith("steady_cv: ") and len(done.stderr.strip().splitlines()) == 1
