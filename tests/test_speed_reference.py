"""benchmarks/speed_reference.py: its reference units and its one-line errors (the script itself
trains, in fresh processes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, benchmark

sr = benchmark("speed_reference")


def test_each_unit_is_a_positive_rate_over_about_its_time():
    for unit in (sr.matmul_rate, sr.python_rate):
        assert unit(0.05) > 0


def test_cv_is_the_sample_coefficient_of_variation():
    assert sr.cv([90.0, 100.0, 110.0]) == pytest.approx(10 / 100)


def test_bad_options_are_one_line():
    script = str(ROOT / "benchmarks" / "speed_reference.py")
    for bad in (["--runs", "2"], ["--epochs", "1"], ["--backend", "x"]):
        done = subprocess.run([sys.executable, script, *bad], capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, bad
